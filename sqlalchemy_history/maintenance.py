"""History maintenance: set-based repairs of version tables.

Four operations, each a constant number of statements per version table, whatever the
number of rows, built from plain Core SQL that every supported database accepts:

1. ``rebuild_end_transaction_ids``: one ``UPDATE`` per table;
2. ``recompute_mod_flags``: one ``UPDATE`` per table;
3. ``backfill``: one ``INSERT`` of a transaction row, then one ``INSERT ... SELECT`` per
   table (and one ``DELETE`` of the transaction row when nothing needed a version);
4. ``vacuum_versions``: one ``DELETE`` and one ``UPDATE`` per table.

Versions of one object are ordered by ``transaction_id`` here: these helpers exist to
repair history whose ``end_transaction_id`` chain may be wrong, so they cannot trust it.

MySQL refuses a subquery that reads the table an ``UPDATE``/``DELETE`` modifies (error
1093, "You can't specify target table ... for update in FROM clause") unless the rows are
read through a derived table that MySQL *materializes* rather than merges into the outer
statement. Every self-reference below therefore goes through ``_snapshot``, a derived
table whose select list holds a subquery (the next transaction id of each row): a
subquery in the select list is one of the constructs that keep MySQL from merging it.
The same SQL runs unchanged on SQLite, PostgreSQL, MariaDB, SQL Server and Oracle.

``sqlalchemy_history.alembic`` exposes these helpers for migrations (``op.get_bind()``);
``sqlalchemy_history.schema`` keeps SQLAlchemy-History's names for two of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session

from .exc import TableNotVersioned
from .inspection import get_versioning_manager
from .operations import Operation
from .scope import hierarchy_tables
from .tables import copy_value
from .transaction import utc_now

if TYPE_CHECKING:
    from .manager import VersioningManager
    from .tables import VersionTable

#: What a helper accepts to name the history to work on: a versioned model (or its
#: version class), a parent or version ``Table``, or the name of a parent table.
Target = Union[type, sa.Table, str]

_NEXT = "_sah_next_tx"

#: Keyword arguments naming the columns and tables of history that no model describes
#: (a ``Table`` written in a migration, or a table name to reflect).
NAME_DEFAULTS: Mapping[str, str] = {
    "transaction_column_name": "transaction_id",
    "end_transaction_column_name": "end_transaction_id",
    "operation_type_column_name": "operation_type",
    "table_name": "%s_version",
    "mod_suffix": "_mod",
}


@dataclasses.dataclass(frozen=True, eq=False)
class HistoryTable:
    """One version table as the maintenance statements see it."""

    table: sa.Table
    #: Columns identifying the object (the parent's primary key), in order.
    key: tuple[sa.Column[Any], ...]
    transaction: sa.Column[Any]
    #: ``None`` with the subquery strategy.
    end_transaction: Optional[sa.Column[Any]]
    operation: sa.Column[Any]
    #: Versioned columns other than the key: what vacuum and ``_mod`` flags compare.
    values: tuple[sa.Column[Any], ...]
    #: The parent table (``None`` when unknown: a bare version table).
    parent: Optional[sa.Table] = None
    #: (parent column, version column) pairs copied by backfill, key included.
    copies: tuple[tuple[sa.Column[Any], sa.Column[Any]], ...] = ()
    #: ``<column>_mod`` flag columns by the versioned column they track.
    flags: tuple[tuple[sa.Column[Any], sa.Column[Any]], ...] = ()

    @property
    def name(self) -> str:
        return self.table.name


# -- resolving what to work on ---------------------------------------------------------


def _names(given: Mapping[str, str]) -> dict[str, str]:
    unknown = sorted(set(given) - set(NAME_DEFAULTS))
    if unknown:
        raise TypeError(
            f"unknown keyword argument(s) {', '.join(unknown)}; history helpers accept "
            f"{', '.join(sorted(NAME_DEFAULTS))}."
        )
    return {**NAME_DEFAULTS, **given}


def _flags(
    table: sa.Table, values: Iterable[sa.Column[Any]], suffix: str
) -> tuple[tuple[sa.Column[Any], sa.Column[Any]], ...]:
    by_name = {column.name: column for column in table.c}
    return tuple((c, by_name[c.name + suffix]) for c in values if c.name + suffix in by_name)


def _from_info(info: VersionTable, suffix: str) -> HistoryTable:
    key = tuple(info.version_primary_key)
    values = tuple(c for c in info.columns.values() if c not in key)
    return HistoryTable(
        table=info.table,
        key=key,
        transaction=info.transaction_column,
        end_transaction=info.end_transaction_column,
        operation=info.operation_column,
        values=values,
        parent=info.parent,
        copies=tuple(info.columns.items()),
        flags=_flags(info.table, values, suffix),
    )


def _from_table(
    table: sa.Table, names: Mapping[str, str], parent: Optional[sa.Table] = None
) -> HistoryTable:
    """Describe a version table that no versioned model registered (by column names)."""
    tx_name = names["transaction_column_name"]
    end_name = names["end_transaction_column_name"]
    op_name = names["operation_type_column_name"]
    suffix = names["mod_suffix"]
    for needed in (tx_name, op_name):
        if needed not in table.c:
            raise TableNotVersioned(
                f"table {table.name!r} has no column {needed!r}, so it is not a version "
                f"table; pass the version table (or a versioned model), or name its columns "
                f"with transaction_column_name= / operation_type_column_name=."
            )
    tx = table.c[tx_name]
    if tx not in set(table.primary_key.columns):
        raise TableNotVersioned(
            f"version table {table.name!r}: {tx_name!r} must be part of the primary key "
            f"(the parent's primary key + {tx_name!r}); declare the primary key on the Table."
        )
    key = tuple(c for c in table.primary_key.columns if c is not tx)
    end = table.c.get(end_name)
    bookkeeping = {tx, end, table.c[op_name]}
    candidates = [c for c in table.c if c not in key and c not in bookkeeping]
    flag_columns = {flag for _, flag in _flags(table, candidates, suffix)}
    values = tuple(c for c in candidates if c not in flag_columns)
    copies: tuple[tuple[sa.Column[Any], sa.Column[Any]], ...] = ()
    if parent is not None:
        missing = [c.name for c in key if c.name not in parent.c]
        if missing:
            raise TableNotVersioned(
                f"version table {table.name!r} has key column(s) {missing} that parent "
                f"table {parent.name!r} lacks; is {parent.name!r} really its parent?"
            )
        copies = tuple((parent.c[c.name], c) for c in (*key, *values) if c.name in parent.c)
    return HistoryTable(
        table=table,
        key=key,
        transaction=tx,
        end_transaction=end,
        operation=table.c[op_name],
        values=values,
        parent=parent,
        copies=copies,
        flags=_flags(table, values, suffix),
    )


def _managers() -> list[VersioningManager]:
    from .events import active_managers

    return active_managers()


def _registered(table: sa.Table) -> Optional[tuple[VersioningManager, VersionTable]]:
    for manager in _managers():
        info = manager.version_info(table) or manager.version_tables.get(table)
        if info is not None:
            return manager, info
    return None


def _reflect(connection: Connection, name: str, schema: Optional[str], what: str) -> sa.Table:
    try:
        return sa.Table(name, sa.MetaData(), schema=schema, autoload_with=connection)
    except sa.exc.NoSuchTableError:
        where = f"{schema}.{name}" if schema else name
        raise TableNotVersioned(
            f"{what} {where!r} does not exist in the database; a table name given to a "
            f"history helper names the parent table, whose version table is "
            f"'table_name' % name (set table_name= if yours differ)."
        ) from None


def resolve(
    connection: Connection, target: Target, schema: Optional[str] = None, **names: str
) -> list[HistoryTable]:
    """Return the version tables ``target`` stands for, base tables first.

    ``target`` is a versioned model or version class (every version table of its
    inheritance hierarchy), a parent or version ``Table`` known to a manager, a version
    ``Table`` described by column names (``names``), or the name of a parent table, which
    is reflected together with its version table (``names["table_name"]`` template).
    """
    given = _names(names)
    suffix = given["mod_suffix"]
    if isinstance(target, str):
        parent = _reflect(connection, target, schema, "parent table")
        version = _reflect(connection, given["table_name"] % target, schema, "version table")
        return [_from_table(version, given, parent)]
    if isinstance(target, type):
        manager = get_versioning_manager(target)
        cls = manager.parent_class_map.get(target, target)
        mapper: Mapper[Any] = sa.inspect(cls)
        infos = hierarchy_tables(manager, mapper)
        if not infos:
            raise TableNotVersioned(f"{cls.__name__} has no version table")
        return [_from_info(info, suffix) for info in infos]
    if isinstance(target, sa.Table):
        found = _registered(target)
        if found is not None:
            return [_from_info(found[1], suffix)]
        return [_from_table(target, given)]
    raise TypeError(
        f"expected a versioned model, a Table or a table name, got {target!r}; pass e.g. "
        f"Article, article_version_table or 'article'."
    )


# -- statement building blocks ---------------------------------------------------------


def _comparable(column: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    # PostgreSQL's json type has no equality operator; its text form compares equal for
    # equal stored values, on every backend.
    if isinstance(column.type, sa.JSON):
        return sa.cast(column, sa.Text)
    return column


def _same(a: sa.ColumnElement[Any], b: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """``a`` equals ``b``, NULL equal to NULL: ``a = b OR (a IS NULL AND b IS NULL)``."""
    return sa.or_(_comparable(a) == _comparable(b), sa.and_(a.is_(None), b.is_(None)))


def _differs(a: sa.ColumnElement[Any], b: sa.ColumnElement[Any]) -> sa.ColumnElement[bool]:
    """``a`` and ``b`` differ, NULL distinct from any value (never NULL itself)."""
    return sa.or_(
        _comparable(a) != _comparable(b),
        sa.and_(a.is_(None), b.is_not(None)),
        sa.and_(a.is_not(None), b.is_(None)),
    )


def _snapshot(h: HistoryTable, columns: Sequence[sa.Column[Any]] = ()) -> sa.Subquery:
    """A derived table of the version rows with the next transaction id of each::

        (SELECT s.id, s.transaction_id, s.<columns>,
                (SELECT min(n.transaction_id) FROM article_version AS n
                 WHERE n.id = s.id AND n.transaction_id > s.transaction_id) AS _sah_next_tx
         FROM article_version AS s) AS anon_1

    The select-list subquery is what makes MySQL materialize it (see the module docstring).
    """
    row = h.table.alias()
    later = h.table.alias()
    next_tx = (
        sa.select(sa.func.min(later.c[h.transaction.key]))
        .where(
            *(later.c[c.key] == row.c[c.key] for c in h.key),
            later.c[h.transaction.key] > row.c[h.transaction.key],
        )
        .scalar_subquery()
    )
    selected = [*h.key, h.transaction, *(c for c in columns if c not in h.key)]
    return sa.select(*(row.c[c.key] for c in selected), next_tx.label(_NEXT)).subquery()


def _same_object(
    snapshot: sa.Subquery, h: HistoryTable, key: Sequence[sa.ColumnElement[Any]]
) -> list[sa.ColumnElement[bool]]:
    return [snapshot.c[c.key] == k for c, k in zip(h.key, key)]


def _unchanged(
    h: HistoryTable,
    row: sa.FromClause,
    key: Sequence[sa.ColumnElement[Any]],
    tx: sa.ColumnElement[Any],
) -> sa.ColumnElement[bool]:
    """The version ``(key, tx)`` of ``h``, read through ``row`` (the table or an alias of
    it), repeats column for column the version before it."""
    before = _snapshot(h, h.values)
    return sa.exists().where(
        *_same_object(before, h, key),
        before.c[_NEXT] == tx,
        *(_same(before.c[c.key], row.c[c.key]) for c in h.values),
    )


def _rowcount(result: Any) -> int:
    count = getattr(result, "rowcount", None)
    return int(count) if isinstance(count, int) and count > 0 else 0


# -- 1. end_transaction_id -------------------------------------------------------------


def end_transaction_statement(h: HistoryTable) -> sa.Update:
    """Build the ``UPDATE`` setting each version's end to the next version's transaction::

        UPDATE article_version SET end_transaction_id = (
            SELECT anon_1._sah_next_tx FROM (<snapshot>) AS anon_1
            WHERE anon_1.id = article_version.id
              AND anon_1.transaction_id = article_version.transaction_id)
        WHERE EXISTS (SELECT 1 FROM (<snapshot>) AS anon_2 WHERE <same row>
                      AND <anon_2._sah_next_tx differs from end_transaction_id>)

    Only rows whose value changes are written; the last version of an object stays open.
    """
    end = h.end_transaction
    if end is None:
        raise TableNotVersioned(
            f"version table {h.name!r} has no end transaction column (subquery strategy); "
            f"there is nothing to rebuild."
        )
    table = h.table
    own_key = [table.c[c.key] for c in h.key]
    tx = table.c[h.transaction.key]
    value_of = _snapshot(h)
    wanted = (
        sa.select(value_of.c[_NEXT])
        .where(*_same_object(value_of, h, own_key), value_of.c[h.transaction.key] == tx)
        .scalar_subquery()
    )
    check = _snapshot(h)
    stale = sa.exists().where(
        *_same_object(check, h, own_key),
        check.c[h.transaction.key] == tx,
        _differs(check.c[_NEXT], table.c[end.key]),
    )
    return table.update().where(stale).values({end: wanted})


def rebuild_end_transaction_ids(
    connection: Connection, target: Target, schema: Optional[str] = None, **names: str
) -> int:
    """Recompute ``end_transaction_id`` of every version of ``target``; one UPDATE per table.

    Each version ends where the next version of the same object (by transaction id)
    begins; the last one stays open (NULL). Returns how many rows changed.
    """
    changed = 0
    for h in resolve(connection, target, schema, **names):
        if h.end_transaction is not None:
            changed += _rowcount(connection.execute(end_transaction_statement(h)))
    return changed


# -- 2. <column>_mod flags ---------------------------------------------------------------


def mod_flags_statement(
    h: HistoryTable, flags: Sequence[tuple[sa.Column[Any], sa.Column[Any]]]
) -> sa.Update:
    """Build the ``UPDATE`` setting each flag true where that version changed its column::

        UPDATE article_version SET
            name_mod = CASE WHEN (operation_type = 1 AND EXISTS (
                                  SELECT 1 FROM (<snapshot>) AS anon_1
                                  WHERE <previous version> AND <same name>))
                       THEN false ELSE true END, ...
        WHERE name_mod IS NULL OR name_mod != CASE ... END OR ...

    A first version (no previous one) has every flag true.
    """
    table = h.table
    own_key = [table.c[c.key] for c in h.key]
    tx = table.c[h.transaction.key]
    wanted: dict[sa.Column[Any], sa.ColumnElement[Any]] = {}
    for value, flag in flags:
        before = _snapshot(h, [value])
        same_as_before = sa.exists().where(
            *_same_object(before, h, own_key),
            before.c[_NEXT] == tx,
            _same(before.c[value.key], table.c[value.key]),
        )
        # As PropertyModTrackerPlugin writes them (SQLAlchemy-Continuum's rule): INSERT and
        # DELETE versions flag every column; an UPDATE flags what differs from the version
        # before it.
        is_update = table.c[h.operation.key] == int(Operation.UPDATE)
        wanted[flag] = sa.case((sa.and_(is_update, same_as_before), sa.false()), else_=sa.true())
    stale = sa.or_(*(sa.or_(flag.is_(None), flag != new) for flag, new in wanted.items()))
    return table.update().where(stale).values(wanted)


def recompute_mod_flags(
    connection: Connection,
    target: Target,
    columns: Optional[Iterable[str]] = None,
    schema: Optional[str] = None,
    **names: str,
) -> int:
    """Recompute ``<column>_mod`` flags of ``target``'s versions; one UPDATE per table.

    A flag is true where its version changed that column compared with the version
    before it (by transaction id), and on every INSERT and DELETE version, as
    ``PropertyModTrackerPlugin`` records them.

    :param columns: the tracked column names (default: every versioned column that has a
        ``<name><mod_suffix>`` column in the version table).
    :returns: how many version rows changed.
    """
    wanted = None if columns is None else list(columns)
    changed = 0
    tables = resolve(connection, target, schema, **names)
    for h in tables:
        flags = list(h.flags)
        if wanted is not None:
            by_name = {value.name: (value, flag) for value, flag in h.flags}
            flags = [by_name[name] for name in wanted if name in by_name]
            missing = [n for n in wanted if n not in by_name and n in h.table.c]
            if missing:
                raise TableNotVersioned(
                    f"version table {h.name!r} has no flag column for {missing}; expected "
                    f"{', '.join(repr(n + _names(names)['mod_suffix']) for n in missing)}."
                )
        if flags:
            changed += _rowcount(connection.execute(mod_flags_statement(h, flags)))
    if wanted is not None:
        known = {c.name for h in tables for c in h.table.c}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise TableNotVersioned(
                f"{', '.join(h.name for h in tables)} has no column {unknown}; name versioned "
                f"columns whose '_mod' flags should be recomputed."
            )
    return changed


# -- 3. backfill -----------------------------------------------------------------------


def backfill_statement(
    h: HistoryTable, transaction_id: Any, values: Optional[Mapping[str, Any]] = None
) -> sa.Insert:
    """Build the ``INSERT ... SELECT`` giving unversioned parent rows an INSERT version::

        INSERT INTO article_version (id, name, ..., transaction_id, operation_type)
        SELECT article.id, article.name, ..., :tx, 0 FROM article
        WHERE NOT (EXISTS (SELECT 1 FROM article_version
                           WHERE article_version.id = article.id))

    ``_mod`` flags are set true (a first version changes every column); ``values`` gives
    constant values for other version columns.
    """
    parent = h.parent
    if parent is None or not h.copies:
        raise TableNotVersioned(
            f"version table {h.name!r}: its parent table is unknown, so there is nothing to "
            f"copy from; pass the versioned model or the parent table's name instead."
        )
    table = h.table
    targets: list[sa.Column[Any]] = []
    sources: list[sa.ColumnElement[Any]] = []
    for parent_column, version_column in h.copies:
        targets.append(version_column)
        sources.append(copy_value(parent_column, version_column))
    targets.append(h.transaction)
    sources.append(sa.literal(transaction_id, h.transaction.type))
    targets.append(h.operation)
    sources.append(sa.literal(int(Operation.INSERT), h.operation.type))
    for _, flag in h.flags:
        targets.append(flag)
        sources.append(sa.true())
    for name, value in (values or {}).items():
        if name not in table.c:
            raise TableNotVersioned(f"version table {h.name!r} has no column {name!r}")
        targets.append(table.c[name])
        sources.append(sa.literal(value, table.c[name].type))
    parent_key = {version: source for source, version in h.copies}
    missing = [c.name for c in h.key if c not in parent_key]
    if missing:
        raise TableNotVersioned(f"version table {h.name!r}: parent lacks key column(s) {missing}")
    has_version = sa.exists().where(*(c == parent_key[c] for c in h.key))
    rows = sa.select(*sources).select_from(parent).where(~has_version)
    return table.insert().from_select(targets, rows)


def _transaction_table(
    connection: Connection,
    tables: Sequence[HistoryTable],
    given: Union[sa.Table, str, None],
    schema: Optional[str],
    targets: Sequence[Target],
) -> sa.Table:
    if isinstance(given, sa.Table):
        return given
    if given is None:
        for target in targets:
            manager: Optional[VersioningManager] = None
            if isinstance(target, type):
                manager = get_versioning_manager(target)
            elif isinstance(target, sa.Table):
                found = _registered(target)
                manager = found[0] if found else None
            if manager is not None and manager.transaction_table is not None:
                return manager.transaction_table
        given = "transaction"
    if schema is None and tables:
        schema = tables[0].table.schema
    return _reflect(connection, given, schema, "transaction table")


def backfill(
    connection: Connection,
    *targets: Target,
    transaction_id: Optional[int] = None,
    transaction_values: Optional[Mapping[str, Any]] = None,
    values: Optional[Mapping[str, Any]] = None,
    transaction_table: Union[sa.Table, str, None] = None,
    schema: Optional[str] = None,
    **names: str,
) -> int:
    """Give every parent row of ``targets`` that has no version an INSERT version.

    All of them share ONE new transaction row (``issued_at`` now, plus
    ``transaction_values`` such as ``{"user_id": 1}``), or ``transaction_id`` if you pass
    one. Statements: one transaction INSERT, one ``INSERT ... SELECT`` per version table;
    when no row needed a version the transaction row is deleted again (one DELETE), so
    nothing is left behind. Returns the number of version rows written.

    Rows that already have any version are left alone: run it once, right after creating
    the version tables of a populated table (or after switching versioning on for it).
    """
    if not targets:
        raise TypeError("backfill() needs at least one model, table or table name")
    tables: list[HistoryTable] = []
    for target in targets:
        for h in resolve(connection, target, schema, **names):
            if h not in tables and all(h.table is not t.table for t in tables):
                tables.append(h)
    statements_need_tx = transaction_id is None
    created: Optional[tuple[sa.Table, Any]] = None
    if statements_need_tx:
        tx_table = _transaction_table(connection, tables, transaction_table, schema, targets)
        row: dict[str, Any] = {"issued_at": utc_now()}
        row.update(transaction_values or {})
        unknown = [k for k in row if k not in tx_table.c]
        if unknown:
            raise TableNotVersioned(
                f"transaction table {tx_table.name!r} has no column(s) {unknown}; "
                f"transaction_values must name its columns."
            )
        result = connection.execute(tx_table.insert().values(row))
        assert result.inserted_primary_key is not None
        transaction_id = result.inserted_primary_key[0]
        created = (tx_table, transaction_id)
    written = 0
    for h in tables:
        written += _rowcount(connection.execute(backfill_statement(h, transaction_id, values)))
    if created is not None and written == 0:
        tx_table, tx_id = created
        id_column = next(iter(tx_table.primary_key.columns))
        connection.execute(tx_table.delete().where(id_column == tx_id))
    return written


# -- 4. vacuum -------------------------------------------------------------------------


def vacuum_statements(group: Sequence[HistoryTable]) -> list[Union[sa.Delete, sa.Update]]:
    """Build the statements removing versions that changed nothing, in execution order.

    ``group`` holds the version tables of one object's rows (several with joined-table
    inheritance, base first). A version goes when it is an UPDATE and, in every table of
    the group holding a row for it, that row repeats the row before it. Child tables are
    cleared first; then each table re-points ``end_transaction_id`` that referenced a
    removed version at the next remaining one::

        DELETE FROM article_version WHERE article_version.operation_type = 1
          AND EXISTS (SELECT 1 FROM (<snapshot>) AS anon_1 WHERE <previous version>
                      AND <every versioned column the same>)
        UPDATE article_version SET end_transaction_id = (<next transaction id>)
        WHERE end_transaction_id IS NOT NULL AND NOT (EXISTS (<the version it names>))
    """
    for h in group[1:]:
        if len(h.key) != len(group[0].key):
            raise TableNotVersioned(
                f"version tables {group[0].name!r} and {h.name!r} have keys of different "
                f"widths; vacuum cannot tell which rows belong to the same version."
            )
    statements: list[Union[sa.Delete, sa.Update]] = []
    for h in reversed(group):
        table = h.table
        own_key = [table.c[c.key] for c in h.key]
        tx = table.c[h.transaction.key]
        conditions: list[sa.ColumnElement[bool]] = [
            table.c[h.operation.key] == int(Operation.UPDATE),
            _unchanged(h, table, own_key, tx),
        ]
        for other in group:
            if other is h:
                continue
            row = other.table.alias()
            row_key = [row.c[c.key] for c in other.key]
            row_tx = row.c[other.transaction.key]
            changed_there = sa.exists().where(
                *(a == b for a, b in zip(row_key, own_key)),
                row_tx == tx,
                ~_unchanged(other, row, row_key, row_tx),
            )
            conditions.append(~changed_there)
        statements.append(table.delete().where(*conditions))
    for h in group:
        end = h.end_transaction
        if end is None:
            continue
        table = h.table
        own_key = [table.c[c.key] for c in h.key]
        value_of = _snapshot(h)
        following = (
            sa.select(value_of.c[_NEXT])
            .where(
                *_same_object(value_of, h, own_key),
                value_of.c[h.transaction.key] == table.c[h.transaction.key],
            )
            .scalar_subquery()
        )
        target = _snapshot(h)
        dangling = ~sa.exists().where(
            *_same_object(target, h, own_key),
            target.c[h.transaction.key] == table.c[end.key],
        )
        statements.append(
            table.update().where(table.c[end.key].is_not(None), dangling).values({end: following})
        )
    return statements


def vacuum_versions(
    connection: Connection, target: Target, schema: Optional[str] = None, **names: str
) -> int:
    """Delete the UPDATE versions of ``target`` that repeat the version before them.

    With the validity strategy the version before a removed one takes over its end, so
    the history stays continuous. Two statements per version table. Returns how many
    versions were removed.
    """
    group = resolve(connection, target, schema, **names)
    removed = 0
    statements = vacuum_statements(group)
    deletes = len(group)
    for index, statement in enumerate(statements):
        result = connection.execute(statement)
        if index == deletes - 1:
            # The last DELETE is the base table's: one row per removed version.
            removed = _rowcount(result)
    return removed


def vacuum(session: Session, model: type, yield_per: Optional[int] = None) -> int:
    """Delete the versions of ``model`` that changed nothing, on ``session``'s connection.

    An UPDATE version identical in every versioned column to the version before it is
    removed; with the validity strategy the version before it takes over its
    ``end_transaction_id``, so the history stays continuous. Set-based: one DELETE and one
    UPDATE per version table, whatever the number of versions. Version objects of the
    hierarchy already in the session are expired, so none shows a removed row or an old
    ``end_transaction_id``. Returns how many versions were removed. The caller commits.

    :param yield_per: SQLAlchemy-History's batch size for its row-by-row scan; accepted so
        that its calls keep working, and unused: nothing is loaded into Python here.
    """
    mapper: Mapper[Any] = sa.inspect(model)
    connection = session.connection(bind_arguments={"mapper": mapper})
    removed = vacuum_versions(connection, model)
    manager = get_versioning_manager(model)
    parent = manager.parent_class_map.get(model, model)
    root: Mapper[Any] = sa.inspect(parent).base_mapper
    version_classes = tuple(
        v for p, v in manager.version_class_map.items() if sa.inspect(p).base_mapper is root
    )
    for obj in list(session.identity_map.values()):
        if isinstance(obj, version_classes):
            session.expire(obj)
    return removed
