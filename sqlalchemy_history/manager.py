"""VersioningManager: versioning configuration and the registries it builds.

The manager holds what the user configured (options, plugins, the transaction and user
classes) and what configuration produced (model <-> version class, table <-> version
table, per-mapper write plans). Per-transaction state lives in ``UnitOfWork`` objects
keyed by the session's root transaction, never in module globals.
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session, SessionTransaction
from sqlalchemy.orm.exc import UnmappedColumnError

from . import configure
from . import context as _context
from . import options as _options
from .exc import ClassNotVersioned, ImproperlyConfigured
from .plugins.base import PluginCollection
from .tables import VersionTable, attribute_key
from .transaction import TransactionFactory
from .unit_of_work import UnitOfWork

#: One version table's columns as a mapper writes them:
#: (parent column, version column key, attribute key or ``None`` when not mapped).
ColumnPlan = list[tuple[sa.Column[Any], str, Optional[str]]]


@dataclasses.dataclass(frozen=True)
class MapperPlan:
    """How objects of one mapper become version rows, computed once per mapper."""

    tables: tuple[tuple[VersionTable, ColumnPlan], ...]
    #: Attribute keys of every versioned column; a change elsewhere writes no version.
    attribute_keys: frozenset[str]
    #: Attribute keys of the mapper's primary key, in identity key order.
    identity_keys: tuple[str, ...] = ()
    #: The table whose autoincrement column generates the key, and that column's attribute.
    generated_key: Optional[tuple[sa.Table, str]] = None

    def columns_of(self, info: VersionTable) -> ColumnPlan:
        for candidate, columns in self.tables:
            if candidate is info:
                return columns
        return []


class VersioningManager:
    """Configuration and registries of one versioning setup.

    :param options: manager-wide defaults for every option of ``VersioningOptions``.
    :param plugins: plugins, in the order their hooks run.
    :param transaction_cls: a ``TransactionFactory`` (default) describing the transaction
        model; after configuration this attribute holds the mapped ``Transaction`` class.
    :param user_cls: the user model (class or class name) referenced by
        ``Transaction.user``; ``None`` for no user column.
    """

    def __init__(
        self,
        unit_of_work_cls: type[UnitOfWork] = UnitOfWork,
        options: Optional[Mapping[str, Any]] = None,
        plugins: Optional[Iterable[Any]] = None,
        transaction_cls: Any = None,
        user_cls: Union[type, str, None] = "User",
    ) -> None:
        self.uow_class = unit_of_work_cls
        self._initial_transaction_cls = transaction_cls
        self._initial_user_cls = user_cls
        self.options: dict[str, Any] = {}
        self._plugins = PluginCollection()
        self._given_options = dict(options or {})
        self._given_plugins = list(plugins or [])
        self.reset()

    def reset(self) -> None:
        """Forget every model, table, class and transaction this manager knows."""
        self.options = {f.name: f.default for f in dataclasses.fields(_options.VersioningOptions)}
        self.options.update(self._given_options)
        self.plugins = self._given_plugins
        self.transaction_cls: Any = self._initial_transaction_cls or TransactionFactory()
        self.user_cls: Union[type, str, None] = self._initial_user_cls
        self.version_class_map: dict[type, type] = {}
        self.parent_class_map: dict[type, type] = {}
        self.version_table_map: dict[sa.Table, sa.Table] = {}
        self.units_of_work: weakref.WeakKeyDictionary[SessionTransaction, UnitOfWork] = (
            weakref.WeakKeyDictionary()
        )
        self.session_connection_map: weakref.WeakKeyDictionary[Session, Connection] = (
            weakref.WeakKeyDictionary()
        )
        self.transaction_table: Optional[sa.Table] = None
        #: Copies of ``transaction_table`` in the other MetaData holding version tables.
        self.transaction_copies: dict[sa.MetaData, sa.Table] = {}
        self.transaction_registry: Any = None
        self.user_mapper: Optional[Mapper[Any]] = None
        self.pending_classes: list[type] = []
        self.class_options: dict[type, _options.VersioningOptions] = {}
        self.version_tables: dict[sa.Table, VersionTable] = {}
        self._version_infos: dict[sa.Table, VersionTable] = {}
        self._plans: dict[Mapper[Any], MapperPlan] = {}
        #: Secondary (many-to-many) tables whose links are versioned -> their version table.
        self.association_tables: dict[sa.Table, VersionTable] = {}
        self._association_props: dict[Mapper[Any], list[tuple[Any, VersionTable]]] = {}
        #: Version classes whose temporal relationships are built after configuration.
        self.pending_relationships: list[tuple[Mapper[Any], type]] = []
        #: Versioned mappers whose late-resolved association tables are still to check.
        self.pending_associations: list[Mapper[Any]] = []
        #: What is derived per table from the MetaData and the mappers, by (kind, table):
        #: cascading foreign keys (``cascades.edges``), joined-inheritance siblings
        #: (``capture.inheritance_tables``). Rebuilt when version tables are added.
        self.table_cache: dict[tuple[str, sa.Table], tuple[Any, ...]] = {}

    @property
    def plugins(self) -> PluginCollection:
        """The plugins, in the order their hooks run; assign any iterable of plugins."""
        return self._plugins

    @plugins.setter
    def plugins(self, plugins: Optional[Iterable[Any]]) -> None:
        # SQLAlchemy-History test suites and apps assign a plain list after make_versioned().
        self._plugins = PluginCollection(plugins)

    # -- options -------------------------------------------------------------------

    def resolve_options(self, model: type) -> _options.VersioningOptions:
        """Return the typed options of ``model`` (manager options + ``__versioned__``)."""
        if model not in self.class_options:
            given = getattr(model, "__versioned__", {}) or {}
            where = model.__name__
            _options.check_keys(given, self.plugins.option_keys(), f"{where}.__versioned__")
            self.class_options[model] = _options.resolve(self.options, given, where)
        return self.class_options[model]

    def option(self, model: Any, name: str) -> Any:
        """Return option ``name`` of ``model`` (class or instance): class value, else ours."""
        cls = model if isinstance(model, type) else type(model)
        cls = self.parent_class_map.get(cls, cls)
        if name in _options.OPTION_NAMES:
            return getattr(self.resolve_options(cls), name)
        given = getattr(cls, "__versioned__", {}) or {}
        return given.get(name, self.options.get(name))

    # -- registries ----------------------------------------------------------------

    def is_versioned_class(self, cls: type) -> bool:
        """Return whether ``cls`` declares ``__versioned__`` with versioning switched on."""
        if getattr(cls, "__versioned__", None) is None:
            return False
        return bool(self.resolve_options(cls).versioning)

    def register_version_table(self, info: VersionTable) -> None:
        self.table_cache.clear()
        self.version_tables[info.parent] = info
        self._version_infos[info.table] = info
        self.version_table_map[info.parent] = info.table

    def register_association_table(self, info: VersionTable) -> None:
        self.association_tables[info.parent] = info
        self.register_version_table(info)
        self._association_props.clear()

    def association_props(self, mapper: Mapper[Any]) -> list[tuple[Any, VersionTable]]:
        """Return ``(relationship, association version table)`` for ``mapper``'s versioned
        many-to-many relationships (whatever side they are declared on)."""
        props = self._association_props.get(mapper)
        if props is None:
            props = []
            for prop in mapper.relationships:
                if prop.viewonly or prop.secondary is None:
                    continue
                info = self.association_tables.get(prop.secondary)  # type: ignore[call-overload]
                if info is not None:
                    props.append((prop, info))
            self._association_props[mapper] = props
        return props

    def version_info(self, version_table: sa.Table) -> Optional[VersionTable]:
        """Return the ``VersionTable`` of a version table."""
        return self._version_infos.get(version_table)

    def version_info_of_class(self, version_cls: type) -> Optional[VersionTable]:
        """Return the ``VersionTable`` of a version class's own table."""
        mapper: Mapper[Any] = sa.inspect(version_cls)
        table = mapper.local_table
        return self._version_infos.get(table) if isinstance(table, sa.Table) else None

    def plan_for(self, mapper: Mapper[Any]) -> MapperPlan:
        """Return (and cache) how objects of ``mapper`` are written as version rows."""
        plan = self._plans.get(mapper)
        if plan is None:
            tables = []
            keys: set[str] = set()
            for table in mapper.tables:
                info = self.version_tables.get(table)  # type: ignore[call-overload]
                if info is None:
                    continue
                columns: ColumnPlan = []
                for parent_column, version_column in info.columns.items():
                    found = attribute_key(parent_column, mapper)
                    key: Optional[str] = found if found in mapper.attrs else None
                    if key is not None:
                        keys.add(key)
                    columns.append((parent_column, version_column.key, key))
                tables.append((info, columns))
            identity = tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key)
            generated: Optional[tuple[sa.Table, str]] = None
            # The first table (inheritance root first) whose autoincrement column this
            # mapper maps: concrete subclasses map their own table only.
            for mapped in mapper.tables:
                if not isinstance(mapped, sa.Table) or mapped.autoincrement_column is None:
                    continue
                with contextlib.suppress(UnmappedColumnError):
                    attr = mapper.get_property_by_column(mapped.autoincrement_column).key
                    generated = (mapped, attr)
                    break
            plan = MapperPlan(tuple(tables), frozenset(keys), identity, generated)
            self._plans[mapper] = plan
        return plan

    def is_versioned_mapper(self, mapper: Mapper[Any]) -> bool:
        return mapper.class_ in self.class_options and self.class_options[mapper.class_].versioning

    # -- units of work -------------------------------------------------------------

    def unit_of_work(self, session: Session) -> UnitOfWork:
        """Return the unit of work of ``session``'s current database transaction."""
        root = session.get_transaction()
        if root is None:
            session.connection()
            root = session.get_transaction()
        assert root is not None
        uow = self.units_of_work.get(root)
        if uow is None:
            uow = self.uow_class(self, root)
            self.units_of_work[root] = uow
        return uow

    def get_uow(self, conn: Union[Connection, Session]) -> UnitOfWork:
        """Return the unit of work recording on connection ``conn`` (or of session ``conn``).

        SQLAlchemy-History's lookup for plugins and listeners that hold a connection.
        ``units_of_work`` itself is keyed by the session's root ``SessionTransaction``, not
        by connection, so that nothing is shared between sessions using one connection.

        :raises KeyError: no unit of work of an active transaction records on ``conn``.
        """
        if isinstance(conn, Session):
            return self.unit_of_work(conn)
        for root, uow in list(self.units_of_work.items()):
            if conn in uow.transaction_ids:
                return uow
            session = root.session
            if session.get_transaction() is not root or not root.is_active:
                continue
            try:
                bound = session.connection()
            except sa.exc.UnboundExecutionError:  # binds per mapper only
                continue
            if bound is conn or bound.connection is conn.connection:
                return uow
        raise KeyError(conn)

    def transaction_values(self, uow: UnitOfWork, session: Session) -> dict[str, Any]:
        """Return the column values of a new transaction row: plugins' ``transaction_args``,
        then the ``versioning_context`` in force (it wins)."""
        values: dict[str, Any] = {}
        for plugin_values in self.plugins.transaction_args(uow, session):
            values.update(plugin_values or {})
        values.update(_context.transaction_columns(self))
        return values

    def create_transaction_model(self) -> type:
        """Map and return the ``Transaction`` class now instead of at ``configure_mappers()``.

        SQLAlchemy-History's name; needs a versioned model mapped already (its MetaData
        holds the ``transaction`` table).
        """
        if isinstance(self.transaction_cls, TransactionFactory):
            if self.transaction_table is None:
                raise ImproperlyConfigured(
                    "the Transaction class is built from the transaction table, which is created "
                    "with the first versioned model: define a model with __versioned__ before "
                    "create_transaction_model(), or let configure_mappers() build it."
                )
            configure.map_transaction_class(self)
        return self.transaction_cls  # type: ignore[no-any-return]

    def version_class(self, model: Any) -> type:
        cls = model if isinstance(model, type) else type(model)
        try:
            return self.version_class_map[cls]
        except KeyError:
            raise ClassNotVersioned(
                f"{cls.__name__} has no version class; add __versioned__ = {{}} to it and "
                f"call sqlalchemy.orm.configure_mappers() before using its history."
            ) from None


#: The manager used when none is passed to ``make_versioned``.
versioning_manager = VersioningManager()
