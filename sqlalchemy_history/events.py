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
                                       table, while the rows still hold them; and the rows the
                                       database's ON DELETE rules will reach (``cascades``)
after_flush                Session     "the session's state is still in pre-flush", so history
                                       tells what changed; write version rows on the flush's
                                       connection; forget traversal answers read before
before_commit              Session     "before commit is called": flush, then check that version
                                       order is commit order for rows written after the
                                       transaction id was taken (moving it to a fresh id if not)
do_orm_execute             Session     "Intercept statement executions that occur on behalf of
                                       an ORM Session object": every ORM bulk UPDATE/DELETE/
                                       INSERT/upsert and Core DML run through the Session;
                                       read around it and write its versions (``capture``),
                                       the statement run with ``invoke_statement()``. For
                                       SELECTs, lazy and selectin loads included: bind the
                                       point in time of an ``as_of`` query for the
                                       relationships it loads (temporal.bind_as_of)
after_begin                Session     "a transaction is begun on a connection": remember the
                                       session transaction's connections, to watch them
                                       during a legacy bulk method
after_transaction_create   Session     a SAVEPOINT began: mark the unit of work's undo log; a
                                       subtransaction not opened by a flush is a legacy bulk
                                       method (``bulk_save_objects``, ``bulk_insert_mappings``,
                                       ``bulk_update_mappings``: no flush, no do_orm_execute):
                                       watch the session's connections until it ends
after_rollback             Session     fires for ROLLBACK TO SAVEPOINT too, before the nested
                                       transaction closes: undo bookkeeping since the mark;
                                       forget traversal answers
after_transaction_end      Session     forget a savepoint mark / the whole unit of work; stop
                                       watching connections for a legacy bulk method
before_create              Table       give copied foreign-key-only columns the type their
                                       parent column resolved to (NullType until then)
before_flush (watchdog)    Session     only with ``make_versioned(session=MySession)``: warn
                                       once when another Session flushes versioned objects,
                                       which nothing records
before_execute (retval)    Connection  only while a legacy bulk method runs, on the session's
                                       connections: "Intercept high level execute() events,
                                       receiving uncompiled SQL constructs ... prior to
                                       rendering": read before each INSERT/UPDATE and ask for
                                       generated keys (``capture.LegacyBulk``)
after_execute              Connection  "Intercept high level execute() events after execute":
                                       during a legacy bulk method, write the statement's
                                       versions; during an ORM bulk INSERT, take the keys the
                                       database generated (``inserted_primary_key_rows``)
=========================  ==========  ========================================================

One listener is installed when the package is imported and never removed:
``before_mapper_configured`` on ``Mapper`` warns about a class that declares
``__versioned__`` but that no manager saw being mapped (``make_versioned()`` forgotten, or
called after the class was defined), since that class would silently get no history
("called for each mapper ... before the mapper's configure step", MapperEvents docs).
"""

from __future__ import annotations

import contextlib
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Optional

from sqlalchemy import event, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.orm import (
    InstanceState,
    Mapper,
    ORMExecuteState,
    Session,
    SessionTransaction,
    SessionTransactionOrigin,
    scoped_session,
    sessionmaker,
)
from sqlalchemy.sql.dml import Delete, Insert, Update, UpdateBase

from . import cascades, configure, temporal
from .capture import LegacyBulk, Recorder
from .exc import UnrecordedSessionWarning, UnversionedModelWarning, VersioningError
from .manager import VersioningManager
from .operations import Operation
from .rows import needs_prefetch
from .tables import refresh_types
from .version import forget_traversal

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

    # Sessions whose flush is starting, with (weakly) that flush's UOWTransaction: the flush
    # opens its subtransaction right after before_flush (Session._flush) while it is alive;
    # a flush with nothing to do returns without one, and its UOWTransaction is gone. Any
    # other subtransaction is a legacy bulk method's.
    flushing: weakref.WeakKeyDictionary[Session, weakref.ReferenceType[Any]] = (
        weakref.WeakKeyDictionary()
    )
    # Connections each root session transaction has begun (after_begin), and the legacy
    # bulk method being recorded, per session.
    connections: weakref.WeakKeyDictionary[SessionTransaction, list[Connection]] = (
        weakref.WeakKeyDictionary()
    )
    bulks: weakref.WeakKeyDictionary[Session, tuple[SessionTransaction, LegacyBulk, list[Any]]] = (
        weakref.WeakKeyDictionary()
    )

    def before_flush(session_: Session, flush_context: Any, instances: Any) -> None:
        # Marked first: the flush's subtransaction must never pass for a legacy bulk method.
        flushing[session_] = weakref.ref(flush_context)
        if not manager.options.get("versioning", True):
            return  # switched off at run time (see after_flush)
        all_deleted = [_state_of(obj) for obj in session_.deleted]
        deleted = [state for state in all_deleted if manager.is_versioned_mapper(state.mapper)]
        changed = [
            state
            for state in map(_state_of, session_.dirty)
            if manager.is_versioned_mapper(state.mapper)
            and needs_prefetch(state, manager.plan_for(state.mapper))
        ]
        cascading = [s for s in all_deleted if cascades.has_edges(manager, s.mapper)]
        if not deleted and not changed and not cascading and not manager.plugins:
            return
        uow = manager.unit_of_work(session_)
        uow.pending.clear()
        uow.prefetch(session_, deleted, changed)
        if cascading:
            cascades.follow_flush_deletes(uow, session_, cascading)
        manager.plugins.before_flush(uow, session_)

    def do_orm_execute(state: ORMExecuteState) -> Any:
        statement = state.statement
        if not isinstance(statement, (Insert, Update, Delete)):
            _refuse_from_statement(manager, state)
            return temporal.bind_as_of(state)
        mapper = state.bind_mapper
        if not manager.options.get("versioning", True):
            return None  # switched off at run time (see after_flush)
        if not Recorder.concerns(manager, statement, mapper):
            return None
        session_ = state.session
        autoflush = session_.autoflush and state.execution_options.get("autoflush", True)
        if state.is_orm_statement and autoflush:
            # What the ORM would autoflush inside invoke_statement(): flushed now, so
            # that the rows read below are the ones the statement changes. (A Core
            # statement is not autoflushed: it and our reads see the same rows.)
            session_.flush()
        connection = session_.connection(bind_arguments=state.bind_arguments)
        uow = manager.unit_of_work(session_)
        recorder = Recorder(uow, session_, connection, statement, state.parameters, mapper)
        to_run = recorder.prepare()
        with _collecting(connection, recorder.collect):
            result = state.invoke_statement(statement=to_run)
        recorder.finish(result)
        return result

    def after_begin(session_: Session, transaction: SessionTransaction, connection: Any) -> None:
        connections.setdefault(_root(transaction), []).append(connection)
        running = bulks.get(session_)
        if running is not None:
            running[2].append(_watch(connection, running[1]))

    def after_flush(session_: Session, flush_context: Any) -> None:
        forget_traversal(session_)
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
        elif transaction.origin is SessionTransactionOrigin.SUBTRANSACTION:
            flush = flushing.pop(session_, None)
            if flush is not None and flush() is not None:
                return  # the flush's own
            if not manager.options.get("versioning", True):
                return  # switched off at run time (see after_flush)
            # Session.bulk_save_objects / bulk_insert_mappings / bulk_update_mappings
            bulk = LegacyBulk(manager.unit_of_work(session_), session_)
            watched = [_watch(c, bulk) for c in connections.get(_root(transaction), [])]
            bulks[session_] = (transaction, bulk, watched)

    def after_rollback(session_: Session) -> None:
        forget_traversal(session_)
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
        running = bulks.get(session_)
        if running is not None and running[0] is transaction:
            del bulks[session_]
            for unwatch in running[2]:
                unwatch()
        root = _root(transaction)
        uow = manager.units_of_work.get(root)
        if transaction.nested:
            if uow is not None:
                uow.end_savepoint(transaction)
        elif transaction.parent is None:
            manager.units_of_work.pop(transaction, None)
            manager.session_connection_map.pop(session_, None)
            connections.pop(transaction, None)

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
    _listen(manager, session, "do_orm_execute", do_orm_execute)
    _listen(manager, session, "after_begin", after_begin)
    _listen(manager, session, "after_transaction_create", after_transaction_create)
    _listen(manager, session, "after_rollback", after_rollback)
    _listen(manager, session, "after_transaction_end", after_transaction_end)


def _refuse_from_statement(manager: VersioningManager, state: ORMExecuteState) -> None:
    """``select(Article).from_statement(update(Article)...)``: the DML inside cannot be
    recorded (its rows come back as objects, not to us); say so rather than lose it.
    (``ORMExecuteState.is_from_statement`` exists from SQLAlchemy 2.0.30 only.)"""
    inner = getattr(state.statement, "element", None)
    if not isinstance(inner, UpdateBase):
        return
    if Recorder.concerns(manager, inner, state.bind_mapper):
        raise VersioningError(
            f"a {type(inner).__name__.upper()} on a versioned table inside "
            f"select().from_statement() is not recorded; execute it directly "
            f"(session.execute(statement.returning(...))) so that its history is written."
        )


def _watch(connection: Connection, bulk: LegacyBulk) -> Callable[[], None]:
    """Pass the statements run on ``connection`` to ``bulk`` until the returned function
    is called. A Connection is used by one thread at a time, so adding and removing its
    own listeners while other connections run is safe."""

    def before_execute(
        conn: Any, clauseelement: Any, multiparams: Any, params: Any, execution_options: Any
    ) -> tuple[Any, Any, Any]:
        parameters = multiparams or params
        return bulk.before_execute(conn, clauseelement, parameters), multiparams, params

    def after_execute(
        conn: Any, clauseelement: Any, multiparams: Any, params: Any, options: Any, result: Any
    ) -> None:
        bulk.after_execute(result)

    event.listen(connection, "before_execute", before_execute, retval=True)
    event.listen(connection, "after_execute", after_execute)

    def unwatch() -> None:
        event.remove(connection, "before_execute", before_execute)
        event.remove(connection, "after_execute", after_execute)

    return unwatch


@contextlib.contextmanager
def _collecting(connection: Connection, collect: Callable[[Any], None]) -> Iterator[None]:
    """Pass the result of every statement run on ``connection`` to ``collect``."""

    def after_execute(
        conn: Any, clauseelement: Any, multiparams: Any, params: Any, options: Any, result: Any
    ) -> None:
        collect(result)

    event.listen(connection, "after_execute", after_execute)
    try:
        yield
    finally:
        event.remove(connection, "after_execute", after_execute)


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
