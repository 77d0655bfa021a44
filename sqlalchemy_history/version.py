"""The Version mixin: traversal (previous, next, index), changeset and revert of one version.

Every generated version class inherits it. Traversal asks the database (with
``populate_existing``), so a version loaded before newer history was written never answers
from stale attributes. Its answers are kept until the session flushes, commits or rolls
back (``traversal_answers``): history written since is then read again, and a ``changeset``
reuses the ``previous`` a walk already read. One statement per class and question, built
once and run with bound parameters.

Async: the ``a*`` forms and ``awaitable_attrs`` run the same synchronous code in the
``AsyncSession``'s greenlet (``run_sync``); nothing here imports asyncio until they are used.
A synchronous query reached from async code fails with a ``MissingGreenlet`` that names the
awaitable form to use.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, object_session
from sqlalchemy.orm.util import identity_key

from . import strategies
from .changeset import Change, as_dict, diff
from .operations import Operation

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from .manager import VersioningManager
    from .tables import VersionTable


_F = TypeVar("_F", bound=Callable[..., Any])


class _NeedsAwait(sa.exc.MissingGreenlet):
    """``MissingGreenlet`` from a history query of a version in an ``AsyncSession``."""


def _outside_greenlet(obj: Any) -> bool:
    """Return whether ``obj`` belongs to an ``AsyncSession`` and this code runs outside the
    greenlet that session's queries need (plain attribute access from a coroutine)."""
    session = object_session(obj)
    if session is None:
        return False
    try:
        from sqlalchemy.ext.asyncio import async_session
        from sqlalchemy.util.concurrency import in_greenlet
    except ImportError:  # no greenlet installed: no AsyncSession either
        return False
    return async_session(session) is not None and not in_greenlet()


def _awaitable_form(form: str, queries: Optional[Callable[..., bool]] = None) -> Callable[[_F], _F]:
    """Name ``form`` in the ``MissingGreenlet`` a synchronous history query raises in async code.

    An ``AsyncSession`` runs queries only inside its greenlet; reached from plain attribute
    access (``version.previous``) SQLAlchemy raises ``MissingGreenlet`` (or a
    ``StatementError`` wrapping it) without saying what to do instead. It is re-raised as a
    ``MissingGreenlet`` naming the awaitable spelling.

    :param queries: ``queries(self, *args, **kwargs)`` tells whether this call will query
        (default: always); a call that will not may run outside the greenlet.
    """

    def decorate(method: _F) -> _F:
        def needs_await(self: Any) -> _NeedsAwait:
            return _NeedsAwait(
                f"{type(self).__name__}.{method.__name__} queries the database, and this "
                f"version belongs to an AsyncSession: in async code use `{form}` instead."
            )

        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            if _outside_greenlet(self) and (queries is None or queries(self, *args, **kwargs)):
                # Refuse before any I/O: a query started here would leave the driver's
                # coroutine un-awaited ("coroutine ... was never awaited" warnings).
                raise needs_await(self)
            try:
                return method(self, *args, **kwargs)
            except (sa.exc.MissingGreenlet, sa.exc.StatementError) as error:
                # On a connection already checked out, SQLAlchemy wraps it in StatementError.
                cause = error if isinstance(error, sa.exc.MissingGreenlet) else error.orig
                if not isinstance(cause, sa.exc.MissingGreenlet):
                    raise
                # Raised again by an enclosing call (changeset -> previous): the outermost
                # name is the one the user wrote.
                origin = error.__cause__ if isinstance(error, _NeedsAwait) else error
                raise needs_await(self) from origin

        return cast(_F, wrapper)

    return decorate


#: ``Session.info`` key of the traversal answers: (root transaction, answers).
_ANSWERS = "sqlalchemy_history.traversal"


def traversal_answers(session: Session) -> dict[Any, Any]:
    """What traversal read in ``session``'s current transaction since its last flush.

    Answers belong to the session's root transaction: a commit or rollback starts a new
    one, and ``forget_traversal`` (called at every flush and rollback) drops them.
    """
    root = session.get_transaction()
    kept = session.info.get(_ANSWERS)
    if kept is not None and kept[0]() is root and root is not None:
        answers: dict[Any, Any] = kept[1]
        return answers
    answers = {}
    if root is not None:
        session.info[_ANSWERS] = (weakref.ref(root), answers)
    return answers


def forget_traversal(session: Session) -> None:
    """Drop the traversal answers of ``session`` (history may have changed)."""
    session.info.pop(_ANSWERS, None)


class VersionMixin:
    """Behaviour of every version object (``ArticleVersion`` and friends)."""

    __versioning_manager__: ClassVar[VersioningManager]

    # -- helpers -------------------------------------------------------------------

    @classmethod
    def _version_info(cls) -> VersionTable:
        mapper: Mapper[Any] = sa.inspect(cls)
        table = mapper.local_table if mapper.concrete else mapper.base_mapper.local_table
        assert isinstance(table, sa.Table)
        info = cls.__versioning_manager__.version_info(table)
        assert info is not None, f"{cls.__name__} is not a mapped version class"
        return info

    def _session(self) -> Session:
        session = object_session(self)
        if session is None:
            raise sa.orm.exc.DetachedInstanceError(
                f"{type(self).__name__} is not attached to a session; history traversal "
                f"needs one to query the database."
            )
        return session

    def _pk(self) -> list[Any]:
        return [getattr(self, c.key) for c in self._version_info().version_primary_key]

    def _tx(self) -> Any:
        return getattr(self, self._version_info().options.transaction_column_name)

    @classmethod
    def _traversal_statement(cls, question: str) -> Any:
        """The statement answering ``question`` ("previous", "next", "index") for versions
        of ``cls``, built once; its parameters are ``sah_pk_<n>`` and ``sah_tx``."""
        statements: dict[str, Any] = cls.__dict__.get("_sah_traversal", {})
        if not statements:
            type.__setattr__(cls, "_sah_traversal", statements)
        statement = statements.get(question)
        if statement is None:
            info = cls._version_info()
            pk: list[sa.BindParameter[Any]] = [
                sa.bindparam(f"sah_pk_{i}") for i in range(len(info.version_primary_key))
            ]
            tx: sa.BindParameter[Any] = sa.bindparam("sah_tx")
            if question == "index":
                statement = (
                    sa.select(sa.func.count())
                    .select_from(info.table)
                    .where(strategies.earlier_versions(info, pk, tx))
                )
            else:
                predicate = (
                    strategies.previous_version(info, pk, tx)
                    if question == "previous"
                    else strategies.next_version(info, pk, tx)
                )
                statement = (
                    sa.select(cls).where(predicate).execution_options(populate_existing=True)
                )
            statements[question] = statement
        return statement

    def _ask(self, question: str) -> Any:
        """Run the ``question`` statement for this version, or answer it from what the
        session read since its last flush, commit or rollback."""
        session = self._session()
        answers = traversal_answers(session)
        me = sa.inspect(self).identity_key
        if (me, question) in answers:
            answer = answers[(me, question)]
            if question == "index" or answer is None:
                return answer
            found = session.identity_map.get(answer)
            if found is not None:
                return found
        parameters = {f"sah_pk_{i}": value for i, value in enumerate(self._pk())}
        parameters["sah_tx"] = self._tx()
        result = session.execute(self._traversal_statement(question), parameters)
        if question == "index":
            answer = int(result.scalar() or 0)
            answers[(me, question)] = answer
            return answer
        found = result.scalars().first()
        # Another writer may still add the next version; every other answer stays true.
        if found is not None or question == "previous":
            answers[(me, question)] = None if found is None else sa.inspect(found).identity_key
        return found

    # -- traversal -----------------------------------------------------------------

    @property
    @_awaitable_form("await version.aprevious")
    def previous(self) -> Optional[VersionMixin]:
        """The version before this one, or ``None`` (one query, kept until the session
        flushes, commits or rolls back)."""
        found: Optional[VersionMixin] = self._ask("previous")
        return found

    @property
    @_awaitable_form("await version.anext")
    def next(self) -> Optional[VersionMixin]:
        """The version after this one, or ``None`` (one query; kept until the session
        flushes, commits or rolls back, unless there is none yet)."""
        found: Optional[VersionMixin] = self._ask("next")
        return found

    @property
    @_awaitable_form("await version.aindex")
    def index(self) -> int:
        """Position of this version in the object's history, from 0 (one query, kept
        until the session flushes, commits or rolls back)."""
        return int(self._ask("index"))

    @property
    def operation(self) -> Operation:
        """``operation_type`` as an ``Operation``."""
        name = self._version_info().options.operation_type_column_name
        return Operation(getattr(self, name))

    # -- changes -------------------------------------------------------------------

    @classmethod
    def _attribute_keys(cls) -> list[str]:
        manager = cls.__versioning_manager__
        keys = []
        for prop in sa.inspect(cls).column_attrs:
            if all(
                isinstance(c.table, sa.Table)
                and manager.version_info(c.table) is not None
                and c.info.get("sqlalchemy_history") == "copy"
                for c in prop.columns
            ):
                keys.append(prop.key)
        return keys

    @property
    @_awaitable_form("await version.awaitable_attrs.changes")
    def changes(self) -> tuple[Change, ...]:
        """What this version changed, as ``Change(key, old, new)`` values."""
        return diff(self._attribute_keys(), self.previous, self)

    @property
    @_awaitable_form("await version.achangeset")
    def changeset(self) -> dict[str, list[Any]]:
        """``{attribute: [old, new]}`` against the previous version (insert: ``[None, new]``)."""
        data = as_dict(self.changes)
        self.__versioning_manager__.plugins.after_construct_changeset(self, data)
        return data

    # -- revert --------------------------------------------------------------------

    def _reverts_from_memory(self, relations: Optional[list[str]] = None) -> bool:
        """Whether ``revert(relations)`` needs no query: no relations, parent in the session."""
        if relations:
            return False
        session = self._session()
        parent_cls = self.__versioning_manager__.parent_class_map[type(self)]
        pk = tuple(self._pk())
        return identity_key(parent_cls, pk) in session.identity_map

    @_awaitable_form(
        "await version.arevert(relations=...)",
        queries=lambda self, relations=None: not self._reverts_from_memory(relations),
    )
    def revert(self, relations: Optional[list[str]] = None) -> Any:
        """Restore the parent object to this version and return it (the caller commits).

        A deleted parent is recreated; reverting to a DELETE version deletes the parent
        and returns ``None``.
        """
        from .revert import revert

        return revert(self, relations or [])

    # -- async forms ---------------------------------------------------------------

    def arevert(self, relations: Optional[list[str]] = None) -> Awaitable[Any]:
        """``await version.arevert(relations=[...])``: ``revert`` for ``AsyncSession`` users.

        Runs the synchronous revert in the session's greenlet, so relationship queries
        work without ``MissingGreenlet``; the caller still awaits ``session.commit()``.
        """
        return self._in_greenlet(lambda: self.revert(relations))

    def _run_async(self, name: str) -> Awaitable[Any]:
        return self._in_greenlet(lambda: getattr(self, name))

    def _in_greenlet(self, call: Callable[[], Any]) -> Awaitable[Any]:
        """Run ``call`` (sync code that may query) in this object's ``AsyncSession``."""
        from sqlalchemy.ext.asyncio import async_object_session

        session = async_object_session(self)
        if session is None:
            raise sa.orm.exc.DetachedInstanceError(
                f"{type(self).__name__} is not attached to an AsyncSession."
            )
        return session.run_sync(lambda _: call())

    @property
    def aprevious(self) -> Awaitable[Optional[VersionMixin]]:
        """``await version.aprevious``: ``previous`` for ``AsyncSession`` users."""
        return self._run_async("previous")

    @property
    def anext(self) -> Awaitable[Optional[VersionMixin]]:
        """``await version.anext``: ``next`` for ``AsyncSession`` users."""
        return self._run_async("next")

    @property
    def aindex(self) -> Awaitable[int]:
        """``await version.aindex``: ``index`` for ``AsyncSession`` users."""
        return self._run_async("index")

    @property
    def achangeset(self) -> Awaitable[dict[str, list[Any]]]:
        """``await version.achangeset``: ``changeset`` for ``AsyncSession`` users."""
        return self._run_async("changeset")

    @property
    def awaitable_attrs(self) -> Any:
        """``await version.awaitable_attrs.<name>``: any attribute, loaded from async code.

        SQLAlchemy's ``AsyncAttrs`` accessor, so version classes have it whatever their
        ``base_classes``: temporal relationships (``category``, ``tags``), ``version_parent``,
        ``transaction``, ``previous``, ``changeset`` ... are read in the session's greenlet.
        """
        from sqlalchemy.ext.asyncio import AsyncAttrs

        accessor = cast(property, vars(AsyncAttrs)["awaitable_attrs"])
        return accessor.__get__(self, type(self))

    def __repr__(self) -> str:
        """``ArticleVersion(id=1, transaction_id=2, operation_type=0)``, SQLAlchemy-History's
        format; an attribute not loaded shows ``<not loaded>`` (a repr never queries)."""
        info = self._version_info()
        keys = [c.key for c in info.version_primary_key]
        keys += [info.options.transaction_column_name, info.options.operation_type_column_name]
        loaded = sa.inspect(self).dict
        values = (f"{k}={loaded[k]!r}" if k in loaded else f"{k}=<not loaded>" for k in keys)
        return f"{type(self).__name__}({', '.join(values)})"


#: SQLAlchemy-Continuum's name for the base of every version class (its API page).
VersionClassBase = VersionMixin
