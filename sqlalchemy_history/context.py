"""Who did it: values for the transaction rows written inside a ``versioning_context``.

``versioning_context(user_id=..., remote_addr=..., meta={...})`` puts values in a
``contextvars.ContextVar``. Each thread starts with an empty context and each asyncio task
works on a copy of the context it was created in, so concurrent requests, jobs and tasks
never see each other's values. When a database transaction writes its ``transaction``
row (at its first versioned flush, or at ``uow.create_transaction(session)``), the values
in force *at that moment* fill the row: columns directly, ``meta`` as
``transaction_meta`` rows (``TransactionMetaPlugin``). Contexts nest: an inner context
adds to and overrides the outer one, ``meta`` key by key.

Precedence, lowest first: plugins' ``transaction_args``, the context, then attributes
set explicitly on the object returned by ``uow.create_transaction(session)`` (they are
flushed after the row was written, so they win).
"""

from __future__ import annotations

import contextvars
import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, cast

from .exc import ImproperlyConfigured

if TYPE_CHECKING:
    from .manager import VersioningManager

_F = TypeVar("_F", bound=Callable[..., Any])
_UNSET: Any = object()


@dataclasses.dataclass(frozen=True)
class ContextValues:
    """The versioning context in force: transaction columns and transaction metadata."""

    #: Transaction table columns to fill, e.g. ``{"user_id": 7, "remote_addr": "10.0.0.1"}``.
    columns: Mapping[str, Any]
    #: Key/value metadata for ``transaction_meta`` (needs ``TransactionMetaPlugin``).
    meta: Mapping[str, Optional[str]]

    def __bool__(self) -> bool:
        return bool(self.columns or self.meta)


_EMPTY = ContextValues(MappingProxyType({}), MappingProxyType({}))


@dataclasses.dataclass
class _Frame:
    values: ContextValues
    owner: VersioningContext
    token: Optional[contextvars.Token[Optional[_Frame]]] = None


_current: contextvars.ContextVar[Optional[_Frame]] = contextvars.ContextVar(
    "sqlalchemy_history_versioning_context", default=None
)


def current_context() -> ContextValues:
    """Return the versioning context values in force in this thread or task."""
    frame = _current.get()
    return _EMPTY if frame is None else frame.values


def _check_meta(meta: Mapping[str, Any]) -> dict[str, Optional[str]]:
    checked: dict[str, Optional[str]] = {}
    for key, value in meta.items():
        if not isinstance(key, str):
            raise TypeError(f"versioning_context(meta=...): keys must be strings, got {key!r}.")
        if value is not None and not isinstance(value, str):
            raise TypeError(
                f"versioning_context(meta=...): the value of {key!r} must be a string or None "
                f"(transaction_meta.value is a text column), got {type(value).__name__}; "
                f"convert it, e.g. str(value)."
            )
        checked[key] = value
    return checked


class VersioningContext:
    """Values for the transaction rows written while it is active; build it with
    ``versioning_context()``.

    Use it as ``with``/``async with`` block or as a decorator of a function or coroutine
    function. One instance may be entered by many threads and tasks at once: what it
    sets is kept in each one's own context.
    """

    def __init__(self, columns: Mapping[str, Any], meta: Mapping[str, Optional[str]]) -> None:
        self._columns = dict(columns)
        self._meta = dict(meta)

    def __repr__(self) -> str:
        return f"versioning_context(columns={self._columns!r}, meta={self._meta!r})"

    # -- with ------------------------------------------------------------------------

    def __enter__(self) -> ContextValues:
        parent = _current.get()
        base = _EMPTY if parent is None else parent.values
        values = ContextValues(
            MappingProxyType({**base.columns, **self._columns}),
            MappingProxyType({**base.meta, **self._meta}),
        )
        frame = _Frame(values, self)
        frame.token = _current.set(frame)
        return values

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        frame = _current.get()
        if frame is None or frame.owner is not self or frame.token is None:
            raise RuntimeError(
                "versioning_context exited out of order: leave nested contexts innermost first."
            )
        _current.reset(frame.token)

    async def __aenter__(self) -> ContextValues:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        self.__exit__(exc_type, exc, traceback)

    # -- decorator -------------------------------------------------------------------

    def __call__(self, func: _F) -> _F:
        """Run ``func`` (a function or coroutine function) inside this context."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self:
                    return await cast(Callable[..., Awaitable[Any]], func)(*args, **kwargs)

            return cast(_F, run_async)

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return cast(_F, run)


def versioning_context(
    user_id: Any = _UNSET,
    remote_addr: Any = _UNSET,
    meta: Optional[Mapping[str, Optional[str]]] = None,
    **columns: Any,
) -> VersioningContext:
    """Fill the transaction rows written inside the returned context (``with`` or decorator).

    :param user_id: ``transaction.user_id``; the table has it when ``user_cls`` is set.
        ``None`` explicitly clears a value set by an outer context.
    :param remote_addr: ``transaction.remote_addr`` (a ``String(50)`` column).
    :param meta: key/value pairs stored as ``transaction_meta`` rows; needs
        ``TransactionMetaPlugin``. Keys and values are strings (a value may be ``None``).
    :param columns: values for other columns of a custom transaction table.

    A value (other than ``None``) for a column the transaction table lacks raises
    ``ImproperlyConfigured`` when a transaction row is written, naming what to enable.

    ::

        with versioning_context(user_id=current_user.id, meta={"reason": "import"}):
            session.add(article)
            session.commit()  # transaction.user_id == current_user.id
    """
    given = dict(columns)
    if user_id is not _UNSET:
        given["user_id"] = user_id
    if remote_addr is not _UNSET:
        given["remote_addr"] = remote_addr
    if "id" in given:
        raise TypeError("versioning_context() cannot set the transaction id.")
    return VersioningContext(given, _check_meta(meta or {}))


_HINTS = {
    "user_id": (
        "pass user_cls=<your user model> to make_versioned() (or set "
        "versioning_manager.user_cls before configure_mappers()) to get transaction.user_id"
    ),
    "remote_addr": (
        "use TransactionFactory(remote_addr=True), the default, to get transaction.remote_addr"
    ),
}


def check_columns(manager: VersioningManager, columns: Mapping[str, Any], source: str) -> None:
    """Raise ``ImproperlyConfigured`` when ``columns`` gives a value (other than ``None``)
    for a column that ``manager``'s transaction table lacks, saying what to enable.

    :param source: names where the value comes from, with ``{name}`` for the column, e.g.
        ``"versioning_context({name}=...)"``.
    """
    table = manager.transaction_table
    if table is None:
        return
    for name, value in columns.items():
        if name not in table.c and value is not None:
            hint = _HINTS.get(name, f"the table's columns are {', '.join(table.c.keys())}")
            raise ImproperlyConfigured(
                f"{source.format(name=name)} is set but the {table.name!r} table has no "
                f"{name!r} column; {hint}."
            )


def transaction_columns(manager: VersioningManager) -> dict[str, Any]:
    """Return the transaction column values of the context in force, checked against
    ``manager``'s transaction table.

    :raises ImproperlyConfigured: the context names a column the table lacks, or gives
        ``meta`` without ``TransactionMetaPlugin``.
    """
    frame = _current.get()
    if frame is None:
        return {}
    values = frame.values
    check_columns(manager, values.columns, "versioning_context({name}=...)")
    if values.meta:
        from .plugins.transaction_meta import TransactionMetaPlugin

        if not any(isinstance(p, TransactionMetaPlugin) for p in manager.plugins):
            raise ImproperlyConfigured(
                "versioning_context(meta=...) is set but no TransactionMetaPlugin is "
                "registered; add sqlalchemy_history.plugins.TransactionMetaPlugin() to "
                "make_versioned(plugins=[...]) to store transaction metadata."
            )
    return dict(values.columns)
