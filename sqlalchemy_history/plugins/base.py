"""Plugin base class with a closed list of hooks, and the ordered plugin collection."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar, Optional, Union, overload

from ..exc import ImproperlyConfigured

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

    from ..tables import VersionTable
    from ..unit_of_work import UnitOfWork

#: Method name prefixes reserved for hooks: a plugin method with one of these prefixes
#: that is not a hook is almost certainly a misspelt hook, so registration rejects it.
_HOOK_PREFIXES = ("before_", "after_", "transaction_", "is_")


class Plugin:
    """Base class of plugins; override the hooks you need, each is a no-op here.

    Set ``option_keys`` to the ``__versioned__``/``options`` keys your plugin reads, so
    they are not reported as unknown.
    """

    option_keys: ClassVar[frozenset[str]] = frozenset()

    def after_build_tx_class(self, manager: Any) -> None:
        """The transaction class has been mapped (``manager.transaction_cls``)."""

    def after_build_models(self, manager: Any) -> None:
        """Every pending version class has been built and mapped."""

    def after_build_version_table_columns(self, info: VersionTable) -> None:
        """A version table was built; add columns to ``info.table`` here.

        Runs again for the same table when a single-table inheritance subclass added
        columns to it, so implementations must be idempotent. ``info.table.metadata`` is
        also where a plugin creates its own tables, early enough for ``create_all()``.
        """

    def after_version_class_built(self, parent_cls: type, version_cls: type) -> None:
        """``version_cls``, the version class of ``parent_cls``, has been mapped."""

    def before_flush(self, uow: UnitOfWork, session: Session) -> None:
        """A session with versioned changes is about to flush."""

    def before_create_version_objects(self, uow: UnitOfWork, session: Session) -> None:
        """Version rows of the current flush are about to be written."""

    def after_create_version_objects(self, uow: UnitOfWork, session: Session) -> None:
        """Version rows of the current flush have been written."""

    def after_version_row(
        self, uow: UnitOfWork, info: VersionTable, row: dict[str, Any], rewrite: bool
    ) -> None:
        """Adjust one version row (a dict by column key) before it is written.

        ``rewrite`` is true when the row replaces one an earlier flush of the same
        transaction wrote. Runs once per row: keep it to dictionary work, no SQL.
        """

    def after_create_transaction(
        self, uow: UnitOfWork, session: Session, connection: Connection, values: dict[str, Any]
    ) -> None:
        """A transaction row was inserted on ``connection``; ``values`` holds its columns.

        ``values["id"]`` is the new transaction id. Rows that belong to the transaction
        (metadata, say) can be written here on ``connection``.
        """

    def after_move_transaction(
        self, uow: UnitOfWork, session: Session, connection: Connection, old_id: int, new_id: int
    ) -> None:
        """The transaction moved from id ``old_id`` to the fresh id ``new_id``.

        It happens when another writer took a later id but committed a version of a row
        this transaction writes first: the transaction takes an id after it, so that
        version order stays commit order (the version rows are already moved). Rows a
        plugin keeps per transaction must be moved on ``connection`` too, and what it
        remembers in memory re-keyed. Rare; never in a one-flush transaction.
        """

    def after_rollback_savepoint(self, uow: UnitOfWork, session: Session) -> None:
        """A savepoint was rolled back: the database forgot what was written since it began.

        A plugin that remembers what it wrote in this transaction must forget or re-read it.
        Runs before the unit of work drops its own bookkeeping of the savepoint.
        """

    def transaction_args(self, uow: UnitOfWork, session: Session) -> dict[str, Any]:
        """Return extra column values for a new transaction row."""
        return {}

    def after_construct_changeset(self, version: Any, changeset: dict[str, Any]) -> None:
        """Adjust a version's ``changeset`` dict in place."""

    def is_session_modified(self, session: Session) -> bool:
        """Return True to make ``is_session_modified`` report a change."""
        return False


HOOKS: frozenset[str] = frozenset(
    name for name, _ in inspect.getmembers(Plugin, inspect.isfunction) if not name.startswith("_")
)


def _check(plugin: Any) -> Any:
    """Accept ``plugin``: any object (duck typing), checked further if it is a ``Plugin``.

    A ``Plugin`` subclass whose method looks like a hook but is none (``after_flsuh``)
    fails here, at registration, rather than being silently never called. Plain objects
    implementing some hooks are accepted as SQLAlchemy-History accepts them; only the hooks
    they have are called.
    """
    if not isinstance(plugin, Plugin):
        return plugin
    for name, _ in inspect.getmembers(type(plugin), inspect.isfunction):
        if name.startswith(_HOOK_PREFIXES) and name not in HOOKS:
            raise ImproperlyConfigured(
                f"{type(plugin).__name__}.{name} looks like a hook but no such hook exists; "
                f"hooks are: {', '.join(sorted(HOOKS))}."
            )
    return plugin


@dataclasses.dataclass
class ReferenceTableBuilder:
    """What SQLAlchemy-History's ``after_build_version_table_columns(table_builder, columns)``
    hook receives as ``table_builder``; given to duck-typed plugins written for it."""

    manager: Any
    parent_table: Any
    #: The versioned class, ``None`` for a many-to-many association table.
    model: Optional[type]
    table_name: str

    def option(self, name: str) -> Any:
        if self.model is None:
            return self.manager.options[name]
        return self.manager.option(self.model, name)


def build_version_table_columns(
    plugins: PluginCollection, manager: Any, info: VersionTable, model: Optional[type]
) -> None:
    """Run ``after_build_version_table_columns`` on every plugin that has it.

    A plugin written for SQLAlchemy-History (not a ``Plugin`` subclass) whose hook takes
    ``(table_builder, columns)`` gets those, and the columns it appends to ``columns`` are
    added to the version table, as they were there.
    """
    for plugin in plugins:
        hook = getattr(plugin, "after_build_version_table_columns", None)
        if hook is None:
            continue
        if isinstance(plugin, Plugin) or len(inspect.signature(hook).parameters) < 2:
            hook(info)
            continue
        builder = ReferenceTableBuilder(manager, info.parent, model, info.table.name)
        columns: list[Any] = []
        hook(builder, columns)
        for column in columns:
            if column.key not in info.table.c:
                info.table.append_column(column)


class PluginCollection:
    """The plugins of a manager, in order: a list-like container (``append``, indexing,
    assignment, ``del``) where calling a hook name runs it on every plugin that has it::

        >>> versioning_manager.plugins
        <PluginCollection [<PropertyModTrackerPlugin ...>]>
        >>> versioning_manager.plugins.before_flush(uow, session)  # each plugin's, in order
    """

    def __init__(self, plugins: Optional[Iterable[Any]] = None) -> None:
        given = plugins.plugins if isinstance(plugins, PluginCollection) else plugins or ()
        self._plugins: list[Any] = [_check(p) for p in given]

    @property
    def plugins(self) -> list[Any]:
        """The plugins as a list (SQLAlchemy-History's attribute)."""
        return self._plugins

    def append(self, plugin: Any) -> None:
        self._plugins.append(_check(plugin))

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...
    def __getitem__(self, index: Union[int, slice]) -> Any:
        return self._plugins[index]

    def __setitem__(self, index: int, plugin: Any) -> None:
        self._plugins[index] = _check(plugin)

    def __delitem__(self, index: Union[int, slice]) -> None:
        del self._plugins[index]

    def __len__(self) -> int:
        return len(self._plugins)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._plugins)

    def __repr__(self) -> str:
        return f"<PluginCollection [{', '.join(map(repr, self._plugins))}]>"

    def overrides(self, hook: str) -> bool:
        """Return whether any plugin implements ``hook`` (rather than inheriting the no-op)."""
        default = getattr(Plugin, hook)
        return any(
            getattr(type(p), hook, default) is not default
            for p in self._plugins
            if callable(getattr(p, hook, None))
        )

    def option_keys(self) -> frozenset[str]:
        keys: frozenset[str] = frozenset()
        for plugin in self._plugins:
            keys |= frozenset(getattr(plugin, "option_keys", ()))
        return keys

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def call_all(*args: Any, **kwargs: Any) -> list[Any]:
            results = []
            for plugin in self._plugins:
                hook = getattr(plugin, name, None)
                if hook is not None:
                    results.append(hook(*args, **kwargs))
            return results

        return call_all
