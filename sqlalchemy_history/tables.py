"""Build ``<table>_version`` tables and the ``transaction`` table in the models' MetaData.

Version tables are built as soon as each versioned class is mapped, so
``Base.metadata.create_all()`` and Alembic autogenerate see them without
``configure_mappers()``. Our own columns are tagged in ``column.info`` so the rest of the
package (and plugins) can tell them from copied parent columns.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.exc import UnmappedColumnError
from sqlalchemy.sql.schema import SchemaItem

from . import naming
from .dialects.postgresql import EnumCopy
from .exc import ImproperlyConfigured
from .options import VersioningOptions

#: ``column.info`` key marking the columns that sqlalchemy_history adds to a version table.
INFO_KEY = "sqlalchemy_history"
TRANSACTION = "transaction"
END_TRANSACTION = "end_transaction"
OPERATION = "operation"
COPY = "copy"


@dataclasses.dataclass(eq=False)
class VersionTable:
    """A versioned parent table, its version table and how their columns correspond."""

    parent: sa.Table
    table: sa.Table
    options: VersioningOptions
    #: The model that owns ``parent``, named in messages.
    model_name: str
    #: Parent column -> version column, for every versioned column (primary key included).
    columns: dict[sa.Column[Any], sa.Column[Any]]
    #: Columns identifying a parent row when it is not the primary key (association tables).
    key_columns: Optional[list[sa.Column[Any]]] = None

    # Read for every row a flush writes: computed once (the tables are complete when a
    # VersionTable is made). Callers must not change the lists.

    @functools.cached_property
    def primary_key(self) -> list[sa.Column[Any]]:
        """The parent columns identifying a row (its primary key), in order."""
        if self.key_columns is not None:
            return list(self.key_columns)
        return list(self.parent.primary_key.columns)

    @functools.cached_property
    def version_primary_key(self) -> list[sa.Column[Any]]:
        """The version table columns copying the parent's primary key, in order."""
        return [self.columns[c] for c in self.primary_key]

    @property
    def transaction_column(self) -> sa.Column[Any]:
        return self.table.c[self.options.transaction_column_name]

    @property
    def end_transaction_column(self) -> Optional[sa.Column[Any]]:
        """The ``end_transaction_id`` column (``None`` with the subquery strategy)."""
        if self.options.strategy != "validity":
            return None
        return self.table.c[self.options.end_transaction_column_name]

    @property
    def operation_column(self) -> sa.Column[Any]:
        return self.table.c[self.options.operation_type_column_name]


def _names(column: sa.Column[Any], mapper: Optional[Mapper[Any]]) -> set[str]:
    names = {column.name, column.key}
    if mapper is not None:
        with contextlib.suppress(UnmappedColumnError):
            names.add(mapper.get_property_by_column(column).key)
    return names


def attribute_key(column: sa.Column[Any], mapper: Optional[Mapper[Any]]) -> str:
    """Return the attribute name under which ``mapper`` maps ``column`` (else its key)."""
    if mapper is not None:
        try:
            return mapper.get_property_by_column(column).key
        except UnmappedColumnError:
            pass
    return column.key


def versioned_columns(
    parent: sa.Table, options: VersioningOptions, mapper: Optional[Mapper[Any]], where: str
) -> list[sa.Column[Any]]:
    """Return the parent columns that are versioned: all but ``exclude``, plus ``include``."""
    reserved = {
        options.transaction_column_name,
        options.end_transaction_column_name,
        options.operation_type_column_name,
    }
    result = []
    known: set[str] = set()
    for column in parent.columns:
        names = _names(column, mapper)
        known |= names
        if column.name in reserved:
            raise ImproperlyConfigured(
                f"{where}: column {column.name!r} of table {parent.name!r} collides with the "
                f"column that versioning adds; rename it or set the "
                f"'transaction_column_name', 'end_transaction_column_name' or "
                f"'operation_type_column_name' option."
            )
        excluded = bool(names & set(options.exclude)) and not names & set(options.include)
        if excluded and column.primary_key:
            raise ImproperlyConfigured(
                f"{where}: primary key column {column.name!r} cannot be excluded from versioning."
            )
        if not excluded:
            result.append(column)
    return result


def version_type(type_: Any) -> Any:
    """Return the type of a version column copying a parent column of type ``type_``.

    A named ``Enum`` becomes a copy named ``history_<name>``: on PostgreSQL that is the
    version table's own ``CREATE TYPE``, named as SQLAlchemy-History names it, so databases
    and Alembic migrations made for it keep applying. Every other type is shared as is.
    """
    if isinstance(type_, sa.Enum) and type_.name is not None:
        copied = type_.copy()  # type: ignore[no-untyped-call]
        copied.name = f"history_{type_.name}"
        return copied
    return type_


def copy_value(source: sa.ColumnElement[Any], target: sa.Column[Any]) -> sa.ColumnElement[Any]:
    """Return ``source`` (a parent column) as a value for version column ``target`` in an
    ``INSERT ... SELECT``: wrapped in ``EnumCopy`` when ``target`` is a native enum of
    another type (``history_<name>``), which PostgreSQL only accepts through text."""
    target_type = target.type
    if (
        isinstance(target_type, sa.Enum)
        and target_type.native_enum
        and getattr(source.type, "name", None) != target_type.name
    ):
        return EnumCopy(source, target_type)
    return source


def _copy(column: sa.Column[Any], key: str, primary_key: Optional[bool] = None) -> sa.Column[Any]:
    # Same name and type; no defaults, server defaults, autoincrement, unique constraints or
    # foreign keys: a version row records values, it never generates or enforces them. A
    # column indexed in its parent (``index=True``) is indexed here too, as in
    # SQLAlchemy-History, so searching history by it stays fast and schemas match.
    if primary_key is None:
        primary_key = column.primary_key
    return sa.Column(
        column.name,
        version_type(column.type),
        key=key,
        primary_key=primary_key,
        nullable=not primary_key,
        autoincrement=False,
        index=bool(column.index) and not primary_key,
        comment=column.comment,
        info={INFO_KEY: COPY},
    )


def build_version_table(
    parent: sa.Table,
    options: VersioningOptions,
    mapper: Optional[Mapper[Any]],
    where: str,
    key_columns: Optional[list[sa.Column[Any]]] = None,
) -> VersionTable:
    """Create the version table of ``parent`` in the parent's MetaData and schema.

    :param key_columns: the columns identifying a row (default: the primary key).
    """
    name = naming.version_table_name(parent.name, options)
    naming.check_identifier(name, "version table name", where, options.max_identifier_length)
    metadata = parent.metadata
    key = name if parent.schema is None else f"{parent.schema}.{name}"
    if not options.create_tables:
        if key not in metadata.tables:
            raise ImproperlyConfigured(
                f"{where}: 'create_tables' is False but table {key!r} is not in the MetaData; "
                f"define it or let sqlalchemy_history create it."
            )
        table = metadata.tables[key]
        columns = {c: table.c[c.name] for c in versioned_columns(parent, options, mapper, where)}
        return VersionTable(parent, table, options, where, columns, key_columns)
    if key in metadata.tables:
        raise ImproperlyConfigured(
            f"{where}: table {key!r} already exists in the MetaData; set a different "
            f"'table_name' template for the version tables."
        )

    keys = list(parent.primary_key.columns) if key_columns is None else key_columns
    columns = {
        c: _copy(c, attribute_key(c, mapper), primary_key=c in keys)
        for c in versioned_columns(parent, options, mapper, where)
    }
    extra: list[SchemaItem] = [
        sa.Column(
            options.transaction_column_name,
            sa.BigInteger,
            primary_key=True,
            autoincrement=False,
            info={INFO_KEY: TRANSACTION},
        ),
    ]
    if options.strategy == "validity":
        extra.append(
            sa.Column(
                options.end_transaction_column_name,
                sa.BigInteger,
                nullable=True,
                info={INFO_KEY: END_TRANSACTION},
            )
        )
    extra.append(
        sa.Column(
            options.operation_type_column_name,
            sa.SmallInteger,
            nullable=False,
            info={INFO_KEY: OPERATION},
        )
    )
    table = sa.Table(
        name,
        metadata,
        *columns.values(),
        *extra,
        schema=parent.schema,
        comment=f"History of {parent.name} (sqlalchemy_history)",
    )
    indexed = [options.transaction_column_name, options.operation_type_column_name]
    if options.strategy == "validity":
        indexed.insert(1, options.end_transaction_column_name)
    for column_name in indexed:
        sa.Index(naming.index_name(name, column_name, options), table.c[column_name])
    return VersionTable(parent, table, options, where, columns, key_columns)


def build_association_table(
    secondary: sa.Table, options: VersioningOptions, where: str
) -> VersionTable:
    """Create the version table of a many-to-many ``secondary`` table.

    A link is identified by its foreign key columns (what the relationship writes), even
    when the table has a surrogate primary key of its own: that one is generated by the
    database and is copied as an ordinary column. Without foreign keys, the primary key.
    """
    key_columns = [c for c in secondary.columns if c.foreign_keys] or list(
        secondary.primary_key.columns
    )
    if not key_columns:
        raise ImproperlyConfigured(
            f"{where}: association table {secondary.name!r} has neither a primary key nor "
            f"foreign keys, so its links cannot be versioned; give it a primary key."
        )
    return build_version_table(secondary, options, None, where, key_columns=key_columns)


def sync_version_table(
    info: VersionTable, mapper: Optional[Mapper[Any]], options: VersioningOptions, where: str
) -> None:
    """Add to the version table the parent columns added since it was built.

    Single-table inheritance subclasses add their columns to the parent's table when they
    are mapped, after the parent's version table exists.
    """
    for column in versioned_columns(info.parent, options, mapper, where):
        if column in info.columns:
            continue
        if not info.options.create_tables:
            info.columns[column] = info.table.c[column.name]
            continue
        copy = _copy(column, attribute_key(column, mapper))
        info.table.append_column(copy)
        info.columns[column] = copy


def refresh_types(info: VersionTable) -> None:
    """Give copied columns the type their parent column has resolved to since the copy.

    A column declared only with a ``ForeignKey`` has ``NullType`` until the referenced
    table exists; the version table may have been built before that.
    """
    for parent_column, copy in info.columns.items():
        if isinstance(copy.type, sa.types.NullType) and not isinstance(
            parent_column.type, sa.types.NullType
        ):
            copy.type = version_type(parent_column.type)


def table_key(metadata: sa.MetaData, name: str, schema: Optional[str] = None) -> str:
    """Return the key under which ``metadata.tables`` holds table ``name``.

    A table declared without a schema gets the MetaData's default schema
    (``MetaData(schema="app")``), and its key names it: ``"app.transaction"``.
    """
    if schema is None:
        schema = metadata.schema
    return name if schema is None else f"{schema}.{name}"


def build_transaction_table(
    metadata: sa.MetaData, remote_addr: bool, schema: Optional[str] = None
) -> sa.Table:
    """Create the ``transaction`` table: one row per database transaction that changed history.

    ``id`` is an identity column; SQLite only autoincrements ``INTEGER PRIMARY KEY``, hence
    the type variant (no Sequence object is ever created).
    """
    key = table_key(metadata, "transaction", schema)
    if key in metadata.tables:
        return metadata.tables[key]
    columns: list[SchemaItem] = [
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.Identity(),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("issued_at", sa.DateTime),
    ]
    if remote_addr:
        columns.append(sa.Column("remote_addr", sa.String(50)))
    table = sa.Table("transaction", metadata, *columns, schema=schema)
    table.info[INFO_KEY] = TRANSACTION
    return table


def copy_transaction_table(source: sa.Table, metadata: sa.MetaData) -> sa.Table:
    """Return the transaction table ``source`` copied into another ``metadata``.

    Versioned models on a second declarative base (another MetaData) need the table in
    their MetaData too, so that its ``create_all()`` and Alembic autogenerate create it.
    The copy has ``source``'s name, schema, columns and indexes: it describes the same
    database table, where every transaction row is written (through ``source``). A foreign
    key to a table of another MetaData (a user table on the first base) is left out, since
    this MetaData could not create it. A copy that no longer matches ``source`` is rebuilt.
    """
    schema = source.schema if source.schema is not None else sa.schema.BLANK_SCHEMA
    existing = metadata.tables.get(source.key)
    if existing is not None:
        if existing.info.get(INFO_KEY) != TRANSACTION or existing.c.keys() == source.c.keys():
            return existing
        metadata.remove(existing)
    columns = []
    for column in source.columns:
        args: list[SchemaItem] = [sa.Identity()] if column.identity is not None else []
        args += [
            sa.ForeignKey(fk.column)
            for fk in column.foreign_keys
            if fk.column.table.metadata is metadata
        ]
        columns.append(
            sa.Column(
                column.name,
                column.type,
                *args,
                key=column.key,
                primary_key=column.primary_key,
                nullable=column.nullable,
                autoincrement=column.autoincrement,
            )
        )
    copy = sa.Table(source.name, metadata, *columns, schema=schema, info={INFO_KEY: TRANSACTION})
    for index in source.indexes:
        sa.Index(index.name, *(copy.c[c.key] for c in index.columns))
    return copy


def add_user_column(transaction_table: sa.Table, user_table: sa.Table, where: str) -> None:
    """Add ``user_id``, a foreign key to the user table's single-column primary key."""
    if "user_id" in transaction_table.c:
        return
    pk: Sequence[sa.Column[Any]] = list(user_table.primary_key.columns)
    if len(pk) != 1:
        raise ImproperlyConfigured(
            f"{where}: the user class's table {user_table.name!r} must have a single-column "
            f"primary key to be referenced by transaction.user_id."
        )
    column = sa.Column("user_id", pk[0].type, sa.ForeignKey(pk[0]), nullable=True)
    transaction_table.append_column(column)
    sa.Index(naming.fit(f"ix_{transaction_table.name}_user_id", naming.INDEX_NAME_LIMIT), column)
