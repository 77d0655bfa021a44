"""Retention: remove or overwrite history, set-based, leaving every remaining chain valid.

- ``prune``: versions no longer needed to answer reads at or after a point in time;
- ``purge``: every version (and many-to-many link version) of chosen rows, for the right
  to erasure;
- ``redact``: overwrite sensitive columns in history, keeping the versions.

``prune`` and ``purge`` remove, for each row, a *prefix* of its versions ordered by
transaction id (``purge``: all of them). What remains of a chain is therefore still a
chain: validity ranges stay contiguous (no ``end_transaction_id`` needs rewriting) and the
first remaining version, having no version before it, behaves as the start of the row's
history (``previous`` is ``None``, ``index`` 0). Transaction rows left with no version in
any version table are deleted afterwards, with the rows plugins keep per transaction
(``transaction_meta``, ``transaction_changes``, ``activity``); transactions that still
have versions are untouched.

Statements, whatever the number of rows: per version table one ``SELECT DISTINCT`` of the
transaction ids concerned and one ``DELETE``; then one ``SELECT`` of the transactions
left empty, one ``DELETE`` per plugin table and one of the transaction rows. Key and id
lists are chunked only past a backend's limits (``dialects.py``). Nothing uses RETURNING,
``UPDATE ... FROM`` or window functions; where a ``DELETE`` must read its own table
(``prune`` with ``keep_last`` > 1 or the subquery strategy), it reads it through a derived
table that MySQL materializes (see ``maintenance.py`` for the rule), so the same SQL runs
on every database.

One module, over the usual size: the three helpers share the chain-prefix argument above,
key handling and the removal of emptied transactions.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql import visitors

from .dialects import rules_for
from .exc import VersioningError
from .operations import Operation
from .scope import Link, hierarchy_tables, links
from .temporal import PointInTime, key_values, moment, resolve, transaction_table, version_info

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from .manager import VersioningManager
    from .tables import VersionTable

_LATER, _LAST, _LAST_DELETE = "sah_later", "sah_last_tx", "sah_last_delete_tx"


@dataclasses.dataclass(frozen=True)
class RetentionResult:
    """What a retention helper removed (``redact``: overwrote)."""

    #: Version rows per version table name.
    versions: Mapping[str, int] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}), hash=False
    )
    #: Transaction rows deleted because no version referenced them any more.
    transactions: int = 0

    @property
    def total(self) -> int:
        """Version rows in every table."""
        return sum(self.versions.values())


def _rowcount(result: Any) -> int:
    count = getattr(result, "rowcount", None)
    return int(count) if isinstance(count, int) and count > 0 else 0


def _connection(session: Session, model: type) -> Connection:
    # Pending changes are written first: what the session is about to record is history
    # too (a purge must not miss the DELETE versions of the rows it erases).
    session.flush()
    mapper: Mapper[Any] = sa.inspect(model)
    return session.connection(bind_arguments={"mapper": mapper})


def _current_transaction(session: Session, manager: VersioningManager) -> Optional[int]:
    """The transaction row this session's transaction wrote, never to be deleted here."""
    root = session.get_transaction()
    uow = manager.units_of_work.get(root) if root is not None else None
    return None if uow is None else uow.transaction_id


def _same_row(
    a: VersionTable, a_from: sa.FromClause, b: VersionTable, b_from: sa.FromClause
) -> list[sa.ColumnElement[bool]]:
    """The rows of ``a`` and ``b`` (tables of one hierarchy) are the same version."""
    pairs = zip(a.version_primary_key, b.version_primary_key)
    return [
        *(a_from.c[x.key] == b_from.c[y.key] for x, y in pairs),
        a_from.c[a.transaction_column.key] == b_from.c[b.transaction_column.key],
    ]


def _in_chunks(
    connection: Connection, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[Any]
) -> list[sa.ColumnElement[bool]]:
    if not keys:
        return []
    return list(rules_for(connection.dialect).key_chunks(columns, keys))


def _distinct_transactions(
    connection: Connection, info: VersionTable, where: sa.ColumnElement[bool]
) -> set[int]:
    """``SELECT DISTINCT transaction_id FROM <table> WHERE <where>``."""
    tx = info.transaction_column
    return {int(row[0]) for row in connection.execute(sa.select(tx).distinct().where(where))}


# -- transactions left empty -------------------------------------------------------------


def _plugin_tables(manager: VersioningManager) -> list[sa.Table]:
    """Tables plugins keep per transaction (``transaction_meta``, ``activity`` ...)."""
    found = []
    for plugin in manager.plugins:
        table = getattr(plugin, "table", None)
        if isinstance(table, sa.Table) and "transaction_id" in table.c and table not in found:
            found.append(table)
    return found


def drop_empty_transactions(
    connection: Connection,
    manager: VersioningManager,
    candidates: Iterable[int],
    keep: Iterable[Optional[int]] = (),
) -> int:
    """Delete the transactions among ``candidates`` that no version references any more.

    Emits, with the candidate ids chunked only past the backend's limits::

        SELECT transaction.id FROM transaction WHERE transaction.id IN (...)
          AND NOT (EXISTS (SELECT * FROM article_version
                           WHERE article_version.transaction_id = transaction.id)) AND ...
        DELETE FROM transaction_meta WHERE transaction_meta.transaction_id IN (...)
        DELETE FROM transaction WHERE transaction.id IN (...) AND NOT (EXISTS ...) AND ...

    :param keep: transaction ids never deleted (the session's own transaction; the point
        ``prune`` kept reads from).
    :returns: how many transaction rows were deleted.
    """
    transactions = transaction_table(manager)
    tx_id = transactions.c.id
    ids = sorted({int(i) for i in candidates} - set(keep))
    unused = [
        ~sa.exists().where(info.transaction_column == tx_id)
        for info in manager.version_tables.values()
    ]
    empty: list[tuple[int]] = []
    for predicate in _in_chunks(connection, [tx_id], [(i,) for i in ids]):
        statement = sa.select(tx_id).where(predicate, *unused)
        empty.extend((int(row[0]),) for row in connection.execute(statement))
    if not empty:
        return 0
    for table in _plugin_tables(manager):
        for predicate in _in_chunks(connection, [table.c.transaction_id], empty):
            connection.execute(table.delete().where(predicate))
    deleted = 0
    for predicate in _in_chunks(connection, [tx_id], empty):
        deleted += _rowcount(connection.execute(transactions.delete().where(predicate, *unused)))
    return deleted


# -- prune -------------------------------------------------------------------------------


def _ranked(info: VersionTable, at: int) -> sa.Subquery:
    """A derived table of the versions written at or before ``at``, with, per version, how
    many versions of its row follow it up to ``at`` and the row's last (DELETE) version::

        (SELECT r.id, r.transaction_id,
                (SELECT count(*) FROM article_version AS n WHERE n.id = r.id
                 AND n.transaction_id > r.transaction_id AND n.transaction_id <= :at)
                    AS sah_later,
                (SELECT max(m.transaction_id) ... m.transaction_id <= :at) AS sah_last_tx,
                (SELECT max(d.transaction_id) ... d.transaction_id <= :at
                 AND d.operation_type = 2) AS sah_last_delete_tx
         FROM article_version AS r WHERE r.transaction_id <= :at) AS anon_1

    Its select-list subqueries make MySQL materialize it, so a ``DELETE`` of the same table
    may read it (maintenance.py explains the rule).
    """
    table, tx, op = info.table, info.transaction_column.key, info.operation_column.key
    keys = [c.key for c in info.version_primary_key]
    row = table.alias()

    def about(other: sa.FromClause) -> list[sa.ColumnElement[bool]]:
        return [other.c[k] == row.c[k] for k in keys]

    later_ = table.alias()
    last_ = table.alias()
    deleted_ = table.alias()
    later = (
        sa.select(sa.func.count())
        .select_from(later_)
        .where(*about(later_), later_.c[tx] > row.c[tx], later_.c[tx] <= at)
        .scalar_subquery()
    )
    last = (
        sa.select(sa.func.max(last_.c[tx])).where(*about(last_), last_.c[tx] <= at)
    ).scalar_subquery()
    last_delete = (
        sa.select(sa.func.max(deleted_.c[tx])).where(
            *about(deleted_), deleted_.c[tx] <= at, deleted_.c[op] == int(Operation.DELETE)
        )
    ).scalar_subquery()
    return (
        sa.select(
            *(row.c[k] for k in keys),
            row.c[tx],
            later.label(_LATER),
            last.label(_LAST),
            last_delete.label(_LAST_DELETE),
        )
        .where(row.c[tx] <= at)
        .subquery()
    )


def superseded(
    info: VersionTable, at: int, keep_last: int, target: Optional[sa.FromClause] = None
) -> sa.ColumnElement[bool]:
    """The versions of ``info`` (read through ``target``, default the table) that reads at
    or after ``at`` do not need, keeping ``keep_last`` per row.

    Validity strategy, ``keep_last=1``: the version was closed at or before ``at``, or it is
    the DELETE version valid at ``at``::

        transaction_id <= :at AND (end_transaction_id <= :at
          OR (operation_type = 2 AND (end_transaction_id > :at OR end_transaction_id IS NULL)))

    Otherwise: more than ``keep_last - 1`` versions of its row follow it up to ``at``, or
    the row's last version at ``at`` is a DELETE (``EXISTS`` over ``_ranked``).
    """
    row = info.table if target is None else target
    tx = row.c[info.transaction_column.key]
    op = row.c[info.operation_column.key]
    end_column = info.end_transaction_column
    if end_column is not None and keep_last == 1:
        end = row.c[end_column.key]
        deleted_then = sa.and_(op == int(Operation.DELETE), sa.or_(end > at, end.is_(None)))
        return sa.and_(tx <= at, sa.or_(end <= at, deleted_then))
    ranked = _ranked(info, at)
    return sa.and_(
        tx <= at,
        sa.exists().where(
            *(ranked.c[c.key] == row.c[c.key] for c in info.version_primary_key),
            ranked.c[info.transaction_column.key] == tx,
            sa.or_(ranked.c[_LATER] >= keep_last, ranked.c[_LAST] == ranked.c[_LAST_DELETE]),
        ),
    )


def _groups(manager: VersioningManager, mapper: Mapper[Any]) -> list[list[VersionTable]]:
    """The hierarchy's tables (base first, deciding for all), then each link table alone."""
    return [hierarchy_tables(manager, mapper), *([link.info] for link in links(manager, mapper))]


def prune_versions(
    connection: Connection,
    manager: VersioningManager,
    mapper: Mapper[Any],
    at: int,
    keep_last: int = 1,
    keep_transaction: Optional[int] = None,
) -> RetentionResult:
    """``prune`` on a connection, with ``at`` a transaction id (see ``prune``).

    The transaction row ``at`` stays even if it is left with no version: a datetime read
    at or after ``before`` resolves to the greatest transaction id issued by then, which
    must not move below ``at``.
    """
    removed: dict[str, int] = {}
    candidates: set[int] = set()
    for group in _groups(manager, mapper):
        base, children = group[0], group[1:]
        doomed = superseded(base, at, keep_last)
        candidates |= _distinct_transactions(connection, base, doomed)
        for child in reversed(children):
            decided = base.table.alias()
            of_pruned = sa.exists().where(
                *_same_row(base, decided, child, child.table),
                superseded(base, at, keep_last, decided),
            )
            result = connection.execute(child.table.delete().where(of_pruned))
            removed[child.table.name] = _rowcount(result)
        removed[base.table.name] = _rowcount(connection.execute(base.table.delete().where(doomed)))
    dropped = drop_empty_transactions(connection, manager, candidates, (at, keep_transaction))
    return RetentionResult(types.MappingProxyType(removed), dropped)


def prune(
    session: Session, model: type, before: PointInTime, keep_last: int = 1
) -> RetentionResult:
    """Remove the versions of ``model`` no longer needed to answer reads at or after
    ``before``.

    For each row, the versions written at or before ``before`` are dropped except the last
    ``keep_last`` of them; the first kept one is the version valid at ``before``, so every
    ``as_of`` at or after ``before``, traversal from there on and the temporal
    relationships answer exactly as before. A row deleted at ``before`` needs none of them
    and loses them all. The model's many-to-many link versions are pruned the same way.
    Transactions left with no version are deleted (module docstring), except the one
    ``before`` stands for, so that reads at a datetime after it resolve as before.

    :param before: a transaction id, a ``Transaction`` or a ``datetime`` (the last
        transaction issued at or before it, as for ``as_of``).
    :param keep_last: versions kept per row among those written at or before ``before``
        (at least 1).
    :returns: the version rows removed per table, and the transaction rows removed.

    Pending changes are flushed first; the caller commits. Version objects already loaded
    in the session are not expired.
    """
    if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
        raise ValueError(
            f"prune(keep_last={keep_last!r}): keep at least 1 version per row (the one valid "
            f"at `before`, which reads at or after it need); to erase rows use purge()."
        )
    manager, version_cls, _ = version_info(model)
    parent = manager.parent_class_map[version_cls]
    connection = _connection(session, parent)
    at = resolve(session, transaction_table(manager), moment(before, "before"))
    if at is None:  # no transaction issued before that moment: nothing to prune
        return RetentionResult()
    keep = _current_transaction(session, manager)
    return prune_versions(connection, manager, sa.inspect(parent), at, keep_last, keep)


async def aprune(
    session: AsyncSession, model: type, before: PointInTime, keep_last: int = 1
) -> RetentionResult:
    """``await aprune(session, ...)``: ``prune`` for ``AsyncSession`` users."""
    return await session.run_sync(prune, model, before, keep_last)


# -- purge -------------------------------------------------------------------------------


def _link_predicates(
    connection: Connection, link: Link, keys: Sequence[tuple[Any, ...]]
) -> list[sa.ColumnElement[bool]]:
    return [p for side in link.sides for p in _in_chunks(connection, side, keys)]


def purge_versions(
    connection: Connection,
    manager: VersioningManager,
    mapper: Mapper[Any],
    keys: Sequence[tuple[Any, ...]],
    keep_transaction: Optional[int] = None,
) -> RetentionResult:
    """``purge`` on a connection, with ``keys`` as tuples in primary key order."""
    removed: dict[str, int] = {}
    candidates: set[int] = set()
    tables = hierarchy_tables(manager, mapper)
    base = tables[0]
    for predicate in _in_chunks(connection, base.version_primary_key, keys):
        candidates |= _distinct_transactions(connection, base, predicate)
    for info in reversed(tables):
        count = 0
        for predicate in _in_chunks(connection, info.version_primary_key, keys):
            count += _rowcount(connection.execute(info.table.delete().where(predicate)))
        removed[info.table.name] = count
    for link in links(manager, mapper):
        predicates = _link_predicates(connection, link, keys)
        for predicate in predicates:
            candidates |= _distinct_transactions(connection, link.info, predicate)
        count = 0
        for predicate in predicates:
            count += _rowcount(connection.execute(link.info.table.delete().where(predicate)))
        removed[link.info.table.name] = count
    dropped = drop_empty_transactions(connection, manager, candidates, (keep_transaction,))
    return RetentionResult(types.MappingProxyType(removed), dropped)


def purge(session: Session, model: type, keys: Iterable[Any]) -> RetentionResult:
    """Erase every version of the rows of ``model`` with primary keys ``keys``.

    For the right to erasure: their versions in every table of the model's hierarchy and
    every many-to-many link version that references them go; transaction rows left with
    no version go too, with plugin rows of those transactions; other transactions are
    untouched. History of other rows stays valid (their chains are not touched).

    Purge erases history only: delete the live rows yourself (before, so that their
    DELETE versions are erased too; pending changes are flushed first). The caller
    commits.

    :param keys: primary keys: values, tuples for composite keys, or dicts of column keys.
    :returns: the version rows removed per table, and the transaction rows removed.
    """
    manager, version_cls, info = version_info(model)
    parent = manager.parent_class_map[version_cls]
    values = [key_values(info, key, parent.__name__) for key in keys]
    connection = _connection(session, parent)
    keep = _current_transaction(session, manager)
    return purge_versions(connection, manager, sa.inspect(parent), values, keep)


async def apurge(session: AsyncSession, model: type, keys: Iterable[Any]) -> RetentionResult:
    """``await apurge(session, ...)``: ``purge`` for ``AsyncSession`` users."""
    return await session.run_sync(purge, model, list(keys))


# -- redact ------------------------------------------------------------------------------


def _redacted_columns(
    tables: Sequence[VersionTable],
    columns: Union[Iterable[Any], Mapping[Any, Any]],
    replacement: Any,
    model: str,
) -> dict[VersionTable, dict[sa.Column[Any], Any]]:
    # Pairs, not a dict: ORM attributes (``Article.email``) overload ``==``.
    given = (
        list(columns.items())
        if isinstance(columns, Mapping)
        else [(c, replacement) for c in columns]
    )
    if not given:
        raise ValueError(f"redact({model}, columns=...): name at least one column.")
    found: dict[VersionTable, dict[sa.Column[Any], Any]] = {}
    for name, value in given:
        key = getattr(name, "key", name)
        matches = [
            (info, column)
            for info in tables
            for column in info.columns.values()
            if key in (column.key, column.name)
        ]
        if not matches:
            known = sorted({c.key for info in tables for c in info.columns.values()})
            raise VersioningError(
                f"{model} has no versioned column {key!r} to redact; versioned columns: "
                f"{', '.join(known)}."
            )
        for info, column in matches:
            if column in info.version_primary_key:
                raise VersioningError(
                    f"{model}.{key} is part of the primary key, which identifies each "
                    f"version; it cannot be redacted (purge the rows instead)."
                )
            found.setdefault(info, {})[column] = value
    return found


def _translate(tables: Sequence[VersionTable], where: Any) -> Any:
    """Rewrite columns of the parent tables in ``where`` onto their version tables."""
    copies = {parent: copied for info in tables for parent, copied in info.columns.items()}

    def replace(element: Any) -> Any:
        if isinstance(element, sa.Column) and element in copies:
            return copies[element]
        return None

    return visitors.replacement_traverse(where, {}, replace)  # type: ignore[call-overload]


def _restricted(
    info: VersionTable, tables: Sequence[VersionTable], where: Any
) -> Optional[sa.ColumnElement[bool]]:
    """``where`` for the rows of ``info``: as is when it reads only ``info``'s table, else
    an ``EXISTS`` joining the other tables of the hierarchy on key and transaction (never
    a subquery reading the updated table itself, which MySQL refuses)."""
    if where is None:
        return None
    read = {
        element.table
        for element in visitors.iterate(where)
        if isinstance(element, sa.Column) and isinstance(element.table, sa.Table)
    }
    others = [t for t in tables if t.table in read and t is not info]
    if not others:
        return where  # type: ignore[no-any-return]
    joined = [c for other in others for c in _same_row(other, other.table, info, info.table)]
    return sa.exists().where(*joined, where).correlate(info.table)


def redact_versions(
    connection: Connection,
    tables: Sequence[VersionTable],
    columns: Mapping[VersionTable, Mapping[sa.Column[Any], Any]],
    where: Any,
) -> RetentionResult:
    """``redact`` on a connection: one ``UPDATE`` per version table holding a column."""
    changed: dict[str, int] = {}
    for info, values in columns.items():
        statement = info.table.update().values(dict(values))
        restriction = _restricted(info, tables, where)
        if restriction is not None:
            statement = statement.where(restriction)
        changed[info.table.name] = _rowcount(connection.execute(statement))
    return RetentionResult(types.MappingProxyType(changed))


def redact(
    session: Session,
    model: type,
    columns: Union[Iterable[Any], Mapping[Any, Any]],
    where: Any = None,
    replacement: Any = None,
) -> RetentionResult:
    """Overwrite ``columns`` in the versions of ``model`` (all of them, or those ``where``
    selects), keeping the versions.

    One ``UPDATE`` per version table holding one of the columns::

        UPDATE article_version SET email=:email WHERE article_version.author_id = :id

    :param columns: attribute names (or attributes, ``Article.email``) to set to
        ``replacement``; or a dict ``{name: value}`` giving each its own value.
    :param where: a condition on the version class or on the model itself
        (``Article.author_id == 5`` is read on ``article_version``); default: every version.
    :param replacement: the value written (default NULL), e.g. ``"[redacted]"``.
    :returns: the version rows overwritten per table.

    Changesets compare stored values, so a redacted column shows no change between
    redacted versions. Pending changes are flushed first; the caller commits.
    """
    manager, version_cls, _ = version_info(model)
    parent = manager.parent_class_map[version_cls]
    tables = hierarchy_tables(manager, sa.inspect(parent))
    chosen = _redacted_columns(tables, columns, replacement, parent.__name__)
    condition = None if where is None else _translate(tables, where)
    connection = _connection(session, parent)
    return redact_versions(connection, tables, chosen, condition)


async def aredact(
    session: AsyncSession,
    model: type,
    columns: Union[Iterable[Any], Mapping[Any, Any]],
    where: Any = None,
    replacement: Any = None,
) -> RetentionResult:
    """``await aredact(session, ...)``: ``redact`` for ``AsyncSession`` users."""
    return await session.run_sync(redact, model, columns, where, replacement)
