"""The audit log: transactions in order, each with the versions it wrote and what changed.

``changes(session, ...)`` returns one page of it. Statements per page, whatever the number
of versioned classes:

1. the page of transactions, one more than asked to know whether another page follows::

       SELECT transaction.* FROM transaction WHERE <filters> ORDER BY transaction.id LIMIT :n

2. their users, when the transaction class has a ``user`` relationship (``selectinload``;
   skipped by SQLAlchemy when no transaction of the page has one);
3. every version those transactions wrote, in ONE ``UNION ALL`` with a branch per version
   table. Each branch joins a version to the one before it
   (``strategies.previous_version``), so changesets need no further query::

       SELECT 3 AS sah_entity, cur.transaction_id, cur.operation_type,
              article_version.transaction_id, cur.id, cur.name, article_version.id,
              article_version.name, NULL, ...
       FROM article_version AS cur LEFT OUTER JOIN article_version
            ON article_version.id = cur.id
           AND article_version.end_transaction_id = cur.transaction_id
       WHERE cur.transaction_id IN (SELECT transaction.id FROM transaction
                                    WHERE <filters> AND transaction.id BETWEEN :lo AND :hi)
       UNION ALL SELECT 4, ..., NULL, NULL, cur.tag_id, ... FROM tag_version AS cur ...

   Branches have different columns. Each value goes into a slot shared by columns of the
   same type in other branches (NULL where a branch has none), so the statement is as wide
   as the widest table per type, not as all tables together.

One module for the log's result types, its single statement and the rows it turns into
entries: they change together whenever the UNION's layout does.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session, selectinload

from . import strategies
from .changeset import Change, as_dict
from .changeset import diff_values as compare
from .dialects import DialectRules, rules_for
from .exc import ImproperlyConfigured, VersioningError
from .inspection import get_versioning_manager
from .operations import Operation
from .scope import hierarchy_tables, links
from .temporal import Moment, PointInTime, moment, transaction_table

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect
    from sqlalchemy.ext.asyncio import AsyncSession
    from sqlalchemy.types import TypeEngine

    from .manager import VersioningManager
    from .tables import VersionTable

_ENTITY, _TX, _OPERATION, _PREVIOUS = "sah_entity", "sah_tx", "sah_operation", "sah_previous"
_FIXED = 4


@dataclasses.dataclass(frozen=True)
class VersionChange:
    """One version a transaction wrote: which row, what happened to it, what changed."""

    #: The model's class name, or the association table's name for a many-to-many link.
    entity: str
    #: The versioned class; ``None`` for a many-to-many link.
    model: Optional[type]
    #: The row's primary key (a link: its key columns), in column order.
    key: tuple[Any, ...]
    operation: Operation
    #: What changed against the version before it (with none before it, an INSERT or the
    #: first version of a history that starts later: every non-null value).
    changes: tuple[Change, ...]
    #: The values this version holds, by attribute name (a DELETE: the last values).
    values: Mapping[str, Any] = dataclasses.field(
        default_factory=lambda: types.MappingProxyType({}), hash=False
    )

    @property
    def changeset(self) -> dict[str, list[Any]]:
        """``{attribute: [old, new]}``, like ``version.changeset``."""
        return as_dict(self.changes)


@dataclasses.dataclass(frozen=True)
class AuditEntry:
    """One transaction of the audit log and the versions it wrote."""

    #: The ``Transaction`` object (``id``, ``issued_at``, ``user`` ...).
    transaction: Any
    #: Ordered by entity name, then key.
    versions: tuple[VersionChange, ...]

    @property
    def id(self) -> int:
        return int(self.transaction.id)

    @property
    def issued_at(self) -> Any:
        return self.transaction.issued_at


@dataclasses.dataclass(frozen=True)
class AuditPage:
    """One page of the audit log; iterate it for its entries."""

    entries: tuple[AuditEntry, ...]
    #: Pass as ``cursor=`` for the next page; ``None`` on the last page.
    next_cursor: Optional[int]

    def __iter__(self) -> Iterator[AuditEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> AuditEntry:
        return self.entries[index]


# -- which tables, and how their rows fit one UNION ------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class _Branch:
    """One version table's branch of the UNION and where its values land."""

    info: VersionTable
    #: Rows of tables sharing a group (joined inheritance) merge into one entry.
    group: Any
    #: The class of this table's rows (``None``: association table).
    model: Optional[type]
    #: (attribute key, slot of the new value, slot of the old value) per copied column.
    columns: tuple[tuple[str, int, int], ...]
    #: Positions, in ``columns``, of the primary key columns.
    key: tuple[int, ...]


def _type_key(type_: TypeEngine[Any]) -> str:
    return f"{type(type_).__module__}.{type(type_).__qualname__}:{type_!r}"


class _Slots:
    """Assigns result columns to branches: a slot holds one type, shared across branches."""

    def __init__(self) -> None:
        self.types: list[TypeEngine[Any]] = []
        self._by_type: dict[str, list[int]] = {}

    def allocate(self, columns: Sequence[sa.Column[Any]]) -> list[int]:
        used: dict[str, int] = {}
        found = []
        for column in columns:
            key = _type_key(column.type)
            taken = used.get(key, 0)
            used[key] = taken + 1
            pool = self._by_type.setdefault(key, [])
            if taken == len(pool):
                pool.append(len(self.types))
                self.types.append(column.type)
            found.append(pool[taken])
        return found


def _root(mapper: Mapper[Any]) -> Mapper[Any]:
    while mapper.inherits is not None and not mapper.concrete:
        mapper = mapper.inherits
    return mapper


def _tables(
    manager: VersioningManager, entities: Optional[Iterable[type]]
) -> list[tuple[VersionTable, Any, Optional[type]]]:
    """``(version table, group, model)`` for every table the log reads, in a stable order."""
    found: dict[VersionTable, tuple[Any, Optional[type]]] = {}
    mappers: list[Mapper[Any]]
    if entities is None:
        mappers = [sa.inspect(cls) for cls in manager.version_class_map]
    else:
        mappers = []
        for entity in entities:
            owner = get_versioning_manager(entity)
            if owner is not manager:
                raise VersioningError(
                    f"{entity.__name__} is versioned by another VersioningManager than the "
                    f"other entities; read each manager's log separately."
                )
            cls = manager.parent_class_map.get(entity, entity)
            manager.version_class(cls)  # raises ClassNotVersioned with advice
            mappers.append(sa.inspect(cls))
    # Parents first, so a table's model is its least derived class.
    for mapper in sorted(mappers, key=lambda m: len(list(m.iterate_to_root()))):
        root = _root(mapper)
        for info in hierarchy_tables(manager, mapper):
            if info not in found:
                found[info] = (root, _model_of(manager, info, root))
    association_infos: list[VersionTable] = []
    if entities is None:
        association_infos = list(manager.association_tables.values())
    else:
        for mapper in mappers:
            association_infos.extend(link.info for link in links(manager, mapper))
    for info in association_infos:
        found.setdefault(info, (info, None))
    return [(info, group, model) for info, (group, model) in found.items()]


def _model_of(manager: VersioningManager, info: VersionTable, root: Mapper[Any]) -> type:
    for mapper in root.self_and_descendants:
        if mapper.local_table is info.parent and mapper.class_ in manager.version_class_map:
            return mapper.class_
    return root.class_


def _branches(
    tables: Sequence[tuple[VersionTable, Any, Optional[type]]],
) -> tuple[list[_Branch], _Slots]:
    slots = _Slots()
    branches = []
    for info, group, model in tables:
        copied = list(info.columns.values())
        # New and old values in one call: a table never puts two values in one slot.
        allocated = slots.allocate([*copied, *copied])
        new, old = allocated[: len(copied)], allocated[len(copied) :]
        key_columns = info.version_primary_key
        branches.append(
            _Branch(
                info=info,
                group=group,
                model=model,
                columns=tuple((c.key, n, o) for c, n, o in zip(copied, new, old)),
                key=tuple(next(i for i, c in enumerate(copied) if c is k) for k in key_columns),
            )
        )
    return branches, slots


def _branch_select(
    index: int, branch: _Branch, slots: _Slots, transactions: sa.Select[Any], rules: DialectRules
) -> sa.Select[Any]:
    info = branch.info
    current = info.table.alias()
    # strategies.previous_of predicates on the unaliased table: it is "the version before",
    # found for each ``current`` row.
    before = info.table
    tx = info.transaction_column
    previous = strategies.previous_of(info, current)
    values = [rules.typed_null(t) for t in slots.types]
    copied = list(info.columns.values())
    for column, (_, new, old) in zip(copied, branch.columns):
        values[new] = current.c[column.key]
        values[old] = before.c[column.key]
    return (
        sa.select(
            sa.literal_column(str(index), sa.Integer()).label(_ENTITY),
            current.c[tx.key].label(_TX),
            current.c[info.operation_column.key].label(_OPERATION),
            before.c[tx.key].label(_PREVIOUS),
            *(value.label(f"sah_{i}") for i, value in enumerate(values)),
        )
        .select_from(current.outerjoin(before, previous))
        .where(current.c[tx.key].in_(transactions))
    )


def versions_statement(
    branches: Sequence[_Branch], slots: _Slots, transactions: sa.Select[Any], dialect: Dialect
) -> sa.Executable:
    """The ``UNION ALL`` of every branch, for the transactions ``transactions`` selects."""
    rules = rules_for(dialect)
    selects = [_branch_select(i, b, slots, transactions, rules) for i, b in enumerate(branches)]
    return selects[0] if len(selects) == 1 else sa.union_all(*selects)


# -- filters -----------------------------------------------------------------------------


def _bound(column_id: Any, column_time: Any, at: Moment, upper: bool) -> sa.ColumnElement[bool]:
    column = column_id if isinstance(at, int) else column_time
    return column <= at if upper else column >= at  # type: ignore[no-any-return]


def _user_value(manager: VersioningManager, transactions: sa.Table, user: Any) -> Any:
    if "user_id" not in transactions.c:
        raise ImproperlyConfigured(
            "changes(user=...) needs a user column on the transaction table; pass "
            "make_versioned(user_cls=YourUser) to record who made each transaction."
        )
    state = sa.inspect(user, raiseerr=False)
    mapper = getattr(state, "mapper", None)
    if mapper is not None:
        key = mapper.primary_key_from_instance(user)
        if key[0] is None:
            raise VersioningError(f"changes(user={user!r}): the user has no id yet; flush first.")
        return key[0]
    return user


def _filters(
    manager: VersioningManager,
    transactions: sa.Table,
    since: Optional[PointInTime],
    until: Optional[PointInTime],
    user: Any,
    transaction: Any,
) -> list[sa.ColumnElement[bool]]:
    found: list[sa.ColumnElement[bool]] = []
    tx_id, issued = transactions.c.id, transactions.c.issued_at
    if since is not None:
        found.append(_bound(tx_id, issued, moment(since, "since"), upper=False))
    if until is not None:
        found.append(_bound(tx_id, issued, moment(until, "until"), upper=True))
    if user is not None:
        value = _user_value(manager, transactions, user)
        found.append(transactions.c.user_id == value)
    if transaction is not None:
        one = moment(transaction, "transaction")
        if not isinstance(one, int):
            raise TypeError(
                "changes(transaction=...) takes a transaction id or a Transaction; for a "
                "time range pass since= and until=."
            )
        found.append(tx_id == one)
    return found


def _manager(entities: Optional[Sequence[type]]) -> VersioningManager:
    if entities:
        return get_versioning_manager(entities[0])
    from .events import active_managers

    managers = [m for m in active_managers() if m.transaction_table is not None]
    if len(managers) != 1:
        raise VersioningError(
            "changes() without entities= needs exactly one configured VersioningManager "
            f"(found {len(managers)}); name the versioned classes with entities=[...]."
        )
    return managers[0]


# -- the log -----------------------------------------------------------------------------


def changes(
    session: Session,
    since: Optional[PointInTime] = None,
    until: Optional[PointInTime] = None,
    entities: Optional[Iterable[type]] = None,
    user: Any = None,
    transaction: Optional[PointInTime] = None,
    *,
    limit: int = 50,
    cursor: Optional[int] = None,
    newest_first: bool = False,
) -> AuditPage:
    """Return one page of the audit log: transactions with the versions each wrote.

    Three statements per page at most, whatever the number of versioned classes (see the
    module docstring).

    :param since: from this transaction id, ``Transaction`` or ``datetime`` (inclusive;
        a datetime compares with ``issued_at``).
    :param until: up to this transaction id, ``Transaction`` or ``datetime`` (inclusive).
    :param entities: only transactions that wrote versions of these classes, and only
        those versions (their many-to-many links included). Default: everything.
    :param user: only transactions of this user (an object of ``user_cls`` or its id).
    :param transaction: only this transaction (an id or a ``Transaction``).
    :param limit: transactions per page.
    :param cursor: ``next_cursor`` of the previous page.
    :param newest_first: newest transactions first (default: oldest first).
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"changes(limit={limit!r}): pass a positive number of transactions.")
    chosen = None if entities is None else list(entities)
    manager = _manager(chosen)
    transactions = transaction_table(manager)
    tables = _tables(manager, chosen)
    filters = _filters(manager, transactions, since, until, user, transaction)
    tx_id = transactions.c.id
    page_filters = list(filters)
    if chosen is not None:
        page_filters.append(
            sa.or_(
                sa.false(),
                *(sa.exists().where(info.transaction_column == tx_id) for info, _, _ in tables),
            )
        )
    if cursor is not None:
        page_filters.append(tx_id < cursor if newest_first else tx_id > cursor)
    transaction_cls = manager.transaction_cls
    statement = (
        sa.select(transaction_cls)
        .where(*page_filters)
        .order_by(tx_id.desc() if newest_first else tx_id)
        .limit(limit + 1)
    )
    if "user" in sa.inspect(transaction_cls).relationships:
        statement = statement.options(selectinload(transaction_cls.user))
    found: list[Any] = list(session.scalars(statement))
    more = len(found) > limit
    page = found[:limit]
    written: dict[int, list[VersionChange]] = {int(t.id): [] for t in page}
    if page and tables:
        ids = list(written)
        in_page = sa.select(tx_id).where(*filters, tx_id >= min(ids), tx_id <= max(ids))
        branches, slots = _branches(tables)
        dialect = session.connection(bind_arguments={"mapper": sa.inspect(transaction_cls)}).dialect
        rows = session.execute(versions_statement(branches, slots, in_page, dialect))
        for tx, change in _collect(branches, rows):
            if tx in written:
                written[tx].append(change)
    entries = tuple(AuditEntry(t, tuple(_ordered(written[int(t.id)]))) for t in page)
    return AuditPage(entries, int(page[-1].id) if more else None)


async def achanges(
    session: AsyncSession,
    since: Optional[PointInTime] = None,
    until: Optional[PointInTime] = None,
    entities: Optional[Iterable[type]] = None,
    user: Any = None,
    transaction: Optional[PointInTime] = None,
    *,
    limit: int = 50,
    cursor: Optional[int] = None,
    newest_first: bool = False,
) -> AuditPage:
    """``await achanges(session, ...)``: ``changes`` for ``AsyncSession`` users."""
    return await session.run_sync(
        changes,
        since,
        until,
        entities,
        user,
        transaction,
        limit=limit,
        cursor=cursor,
        newest_first=newest_first,
    )


def _collect(
    branches: Sequence[_Branch], rows: Iterable[Any]
) -> Iterator[tuple[int, VersionChange]]:
    """Turn UNION rows into changes, merging the rows of one version across the tables of
    a joined-inheritance hierarchy."""
    # Result positions per branch, computed once: (name, new value, old value) and the key.
    positions = [
        [(name, _FIXED + new, _FIXED + old) for name, new, old in b.columns] for b in branches
    ]
    keys = [[positions[i][k][1] for k in b.key] for i, b in enumerate(branches)]
    merged: dict[tuple[Any, tuple[Any, ...], int], list[Any]] = {}
    for row in rows:
        index = row[0]
        key = tuple(row[p] for p in keys[index])
        merged.setdefault((branches[index].group, key, int(row[1])), []).append(row)
    for (_, key, tx), parts in merged.items():
        if len(parts) > 1:
            parts.sort(key=lambda part: part[0])  # base table first
        new: dict[str, Any] = {}
        old: dict[str, Any] = {}
        for row in reversed(parts):  # the base table's value wins for a shared column
            for name, new_at, old_at in positions[row[0]]:
                new[name] = row[new_at]
                old[name] = row[old_at]
        first = branches[parts[0][0]]
        operation = Operation(parts[0][2])
        model = _resolve_model(first, new, [branches[row[0]] for row in parts])
        previous = old if any(row[3] is not None for row in parts) else None
        yield (
            tx,
            VersionChange(
                entity=model.__name__ if model is not None else first.info.parent.name,
                model=model,
                key=key,
                operation=operation,
                changes=compare(new, previous, new),
                values=types.MappingProxyType(new),
            ),
        )


def _resolve_model(base: _Branch, values: Mapping[str, Any], parts: list[_Branch]) -> Any:
    """The most specific class of a version: its discriminator, else its deepest table."""
    if base.model is None:
        return None
    root: Mapper[Any] = base.group
    discriminator = root.polymorphic_on
    if isinstance(discriminator, sa.Column):
        copied = base.info.columns.get(discriminator)
        if copied is not None and values.get(copied.key) in root.polymorphic_map:
            return root.polymorphic_map[values[copied.key]].class_
    return parts[-1].model


def _ordered(found: list[VersionChange]) -> list[VersionChange]:
    try:
        return sorted(found, key=lambda c: (c.entity, c.key))
    except TypeError:  # keys of one entity that do not compare (mixed types)
        return sorted(found, key=lambda c: (c.entity, repr(c.key)))
