"""The only module that calls ``event.listen``/``event.remove``: every listener and why.

``make_versioned`` installs, per manager:

=========================  ==========  ========================================================
event                      target      why
=========================  ==========  ========================================================
after_mapper_constructed   Mapper      build version tables as each class is mapped, so
                                       ``create_all``/Alembic see them (MapperEvents docs: "the
                                       mapper is constructed, before configure")
before_configured          Mapper      map Transaction and version classes; mappers created
                                       here are configured in the same pass
after_configured           Mapper      relationships are resolved: association tables named
                                       late, temporal relationships on version classes
after_insert/update/delete Mapper      note each written object; "receive an object instance
                                       after ... statements" are emitted, per object, without
                                       any SQL of ours (rows are written once per flush)
before_delete              Mapper      rare path: read unloaded values of an orphan deleted by
                                       cascade before its row disappears
before_flush               Session     "before flush process has started": read (and lock) the
                                       rows of deleted and re-keyed objects and the old values
                                       of attributes assigned while expired, in one SELECT per
                                       table, while the rows still hold them
after_flush                Session     "the session's state is still in pre-flush", so history
                                       tells what changed; write version rows on the flush's
                                       connection
before_commit              Session     "before commit is called": flush, then check that version
                                       order is commit order for rows written after the
                                       transaction id was taken (moving it to a fresh id if not)
after_transaction_create   Session     a SAVEPOINT began: mark the unit of work's undo log
after_rollback             Session     fires for ROLLBACK TO SAVEPOINT too, before the nested
                                       transaction closes: undo bookkeeping since the mark
after_transaction_end      Session     forget a savepoint mark / the whole unit of work
before_create              Table       give copied foreign-key-only columns the type their
                                       parent column resolved to (NullType until then)
before_flush (watchdog)    Session     only with ``make_versioned(session=MySession)``: warn
                                       once when another Session flushes versioned objects,
                                       which nothing records
do_orm_execute             Session     "intercept statement executions that occur on behalf of
                                       an ORM Session", lazy and selectin loads included: bind
                                       the point in time of an ``as_of`` query for the
                                       relationships it loads (temporal.bind_as_of)
=========================  ==========  ========================================================

One listener is installed when the package is imported and never removed:
``before_mapper_configured`` on ``Mapper`` warns about a class that declares
``__versioned__`` but that no manager saw being mapped (``make_versioned()`` forgotten, or
called after the class was defined), since that class would silently get no history
("called for each mapper ... before the mapper's configure step", MapperEvents docs).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any, Optional

from sqlalchemy import event, inspect
from sqlalchemy.orm import (
    InstanceState,
    Mapper,
    Session,
    SessionTransaction,
    scoped_session,
    sessionmaker,
)

from . import configure, temporal
from .exc import UnrecordedSessionWarning, UnversionedModelWarning
from .manager import VersioningManager
from .operations import Operation
from .tables import refresh_types
from .unit_of_work import needs_prefetch

_Listener = tuple[Any, str, Callable[..., Any]]
_listeners: dict[VersioningManager, list[_Listener]] = {}


def active_managers() -> list[VersioningManager]:
    """Return the managers whose listeners are installed."""
    return list(_listeners)


def _root(transaction: SessionTransaction) -> SessionTransaction:
    while transaction.parent is not None:
        transaction = transaction.parent
    return transaction


def _listen(manager: VersioningManager, target: Any, name: str, fn: Callable[..., Any]) -> None:
    event.listen(target, name, fn)
    _listeners[manager].append((target, name, fn))


def _session_class(target: Any) -> Optional[type]:
    """Return the Session class whose sessions the listeners on ``target`` see.

    ``target`` is what ``make_versioned(session=...)`` received: a Session class, a
    ``sessionmaker`` (its own generated subclass) or a ``scoped_session``.
    """
    if isinstance(target, type):
        return target
    if isinstance(target, scoped_session):
        target = target.session_factory
    if isinstance(target, sessionmaker):
        return target.class_
    return None


def _watch_unrecorded_sessions(manager: VersioningManager, session: Any) -> None:
    """With ``make_versioned(session=MySession)``, warn once when a Session of another class
    flushes versioned objects: nothing records them (SQLAlchemy-History and Continuum
    fail on such a flush; we record nothing and say so)."""
    recorded = _session_class(session)
    if recorded is None or recorded is Session:
        return
    warned: list[bool] = []

    def before_flush(session_: Session, flush_context: Any, instances: Any) -> None:
        if warned or isinstance(session_, recorded):
            return
        changed = (*session_.new, *session_.dirty, *session_.deleted)
        names = sorted(
            {type(o).__name__ for o in changed if manager.is_versioned_mapper(_mapper_of(o))}
        )
        if names:
            warned.append(True)
            warnings.warn(
                f"a {type(session_).__name__} flushes versioned objects ({', '.join(names)}) "
                f"but make_versioned(session={recorded.__name__}) records only that session "
                f"class: this change has no history. Use {recorded.__name__}, or call "
                f"make_versioned() without session= to record every Session.",
                UnrecordedSessionWarning,
                stacklevel=2,
            )

    _listen(manager, Session, "before_flush", before_flush)


def _check_configured(mapper: Mapper[Any], cls: type) -> None:
    """Warn when ``cls`` declares ``__versioned__`` but no active manager versions it."""
    versioned = getattr(cls, "__versioned__", None)
    if versioned is None:
        return
    if isinstance(versioned, Mapping) and versioned.get("versioning", True) is False:
        return
    for manager in _listeners:
        if cls in manager.class_options or cls in manager.parent_class_map:
            return
    if _listeners:
        why = "make_versioned() was called after the class was defined"
    else:
        why = "make_versioned() was not called (or remove_versioning() was)"
    warnings.warn(
        f"{cls.__name__} declares __versioned__ but has no history: {why}, so it has no "
        f"version table and no 'versions'. Call make_versioned() before the versioned models "
        f"are defined (imported).",
        UnversionedModelWarning,
        stacklevel=2,
    )


# Installed once, for every manager and for none: a forgotten make_versioned() has no
# manager to listen.
event.listen(Mapper, "before_mapper_configured", _check_configured)


def listen(manager: VersioningManager, mapper: Any = Mapper, session: Any = Session) -> None:
    """Install every listener of ``manager`` on ``mapper`` and ``session`` (idempotent)."""
    if manager in _listeners:
        return
    _listeners[manager] = []
    _watch_unrecorded_sessions(manager, session)

    def mapper_constructed(mapper_: Mapper[Any], cls: type) -> None:
        known = set(manager.version_tables)
        configure.mapper_constructed(manager, mapper_, cls)
        for parent in set(manager.version_tables) - known:
            _watch_table(manager, manager.version_tables[parent])

    def before_configured() -> None:
        configure.before_configured(manager)

    def after_configured() -> None:
        configure.after_configured(manager)

    def recorder(operation: Operation) -> Callable[..., None]:
        def record(mapper_: Mapper[Any], connection: Any, target: Any) -> None:
            if not manager.is_versioned_mapper(mapper_):
                return
            state = mapper_.class_manager.state_getter()(target)
            if operation is Operation.UPDATE:
                # SQLAlchemy calls after_update for every dirty object, changed or not:
                # skip the ones whose versioned columns were not even assigned.
                keys = manager.plan_for(mapper_).attribute_keys
                if not keys - state.unmodified_intersection(keys):
                    return
            session_ = state.session
            if session_ is not None:
                manager.unit_of_work(session_).record(state, operation, connection)

        return record

    def before_delete(mapper_: Mapper[Any], connection: Any, target: Any) -> None:
        if not manager.is_versioned_mapper(mapper_):
            return
        state = mapper_.class_manager.state_getter()(target)
        if state.session is not None:
            manager.unit_of_work(state.session).prefetch_one(state, connection)

    def before_flush(session_: Session, flush_context: Any, instances: Any) -> None:
        if not manager.options.get("versioning", True):
            return  # switched off at run time (see after_flush)
        deleted = [
            state
            for state in map(_state_of, session_.deleted)
            if manager.is_versioned_mapper(state.mapper)
        ]
        changed = [
            state
            for state in map(_state_of, session_.dirty)
            if manager.is_versioned_mapper(state.mapper)
            and needs_prefetch(state, manager.plan_for(state.mapper))
        ]
        if not deleted and not changed and not manager.plugins:
            return
        uow = manager.unit_of_work(session_)
        uow.pending.clear()
        uow.prefetch(session_, deleted, changed)
        manager.plugins.before_flush(uow, session_)

    def after_flush(session_: Session, flush_context: Any) -> None:
        root = session_.get_transaction()
        uow = manager.units_of_work.get(root) if root is not None else None
        if not manager.options.get("versioning", True):
            # ``versioning_manager.options["versioning"] = False`` pauses recording for every
            # session, as SQLAlchemy-History checks it at each flush (bulk imports do this).
            if uow is not None:
                uow.pending.clear()
                uow.deleted_identities.clear()
            return
        if uow is None and manager.association_tables:
            # a flush that only changed many-to-many links recorded no object
            uow = manager.unit_of_work(session_)
        if uow is not None:
            uow.make_versions(session_)

    def before_commit(session_: Session) -> None:
        root = session_.get_transaction()
        uow = manager.units_of_work.get(root) if root is not None else None
        if uow is not None:
            uow.before_commit(session_)

    def after_transaction_create(session_: Session, transaction: SessionTransaction) -> None:
        if transaction.nested:
            manager.unit_of_work(session_).begin_savepoint(transaction)

    def after_rollback(session_: Session) -> None:
        root = session_.get_transaction()
        uow = manager.units_of_work.get(root) if root is not None else None
        if uow is None:
            return
        nested = session_.get_nested_transaction()
        if nested is not None:
            uow.rollback_savepoint(nested)
        else:
            uow.pending.clear()

    def after_transaction_end(session_: Session, transaction: SessionTransaction) -> None:
        root = _root(transaction)
        uow = manager.units_of_work.get(root)
        if transaction.nested:
            if uow is not None:
                uow.end_savepoint(transaction)
        elif transaction.parent is None:
            manager.units_of_work.pop(transaction, None)
            manager.session_connection_map.pop(session_, None)

    def do_orm_execute(execute_state: Any) -> Any:
        # A closure per manager: remove() of one manager must not remove another's.
        return temporal.bind_as_of(execute_state)

    _listen(manager, mapper, "after_mapper_constructed", mapper_constructed)
    _listen(manager, mapper, "before_configured", before_configured)
    _listen(manager, mapper, "after_configured", after_configured)
    _listen(manager, mapper, "after_insert", recorder(Operation.INSERT))
    _listen(manager, mapper, "after_update", recorder(Operation.UPDATE))
    _listen(manager, mapper, "after_delete", recorder(Operation.DELETE))
    _listen(manager, mapper, "before_delete", before_delete)
    _listen(manager, session, "before_flush", before_flush)
    _listen(manager, session, "after_flush", after_flush)
    _listen(manager, session, "before_commit", before_commit)
    _listen(manager, session, "after_transaction_create", after_transaction_create)
    _listen(manager, session, "after_rollback", after_rollback)
    _listen(manager, session, "after_transaction_end", after_transaction_end)
    _listen(manager, session, "do_orm_execute", do_orm_execute)


def _watch_table(manager: VersioningManager, info: Any) -> None:
    def before_create(table: Any, connection: Any, **kw: Any) -> None:
        refresh_types(info)

    _listen(manager, info.table, "before_create", before_create)


def _mapper_of(obj: Any) -> Mapper[Any]:
    state: InstanceState[Any] = inspect(obj)
    return state.mapper


def _state_of(obj: Any) -> InstanceState[Any]:
    state: InstanceState[Any] = inspect(obj)
    return state


def remove(manager: VersioningManager) -> None:
    """Remove every listener of ``manager``."""
    for target, name, fn in _listeners.pop(manager, []):
        if event.contains(target, name, fn):
            event.remove(target, name, fn)
