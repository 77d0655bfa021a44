"""Rows the database deletes or changes by ``ON DELETE`` rules, read before it does.

A foreign key declared with ``ondelete="CASCADE"`` (or ``"SET NULL"`` / ``"SET
DEFAULT"``) makes the database delete (or change) child rows when a parent row is deleted,
without the ORM seeing them: with ``passive_deletes=True`` (the usual setting for such
keys), with an ORM bulk ``delete()``, for association rows of a many-to-many relationship.
Their versions are written like any other:

1. ``edges`` lists, from the MetaData, the foreign keys whose rule reaches a versioned
   table from a parent table, directly or through other cascading tables;
2. before the parent rows are deleted, ``CascadeRead.follow`` reads the child rows those
   keys match, level by level (children of deleted children, and so on), with one locking
   ``SELECT`` per foreign key and level; keys already seen are not followed again, so
   cycles (self-referential trees, mutual keys) end;
3. after the DELETE, ``CascadeRead.changes`` gives the version rows: DELETE versions
   (with the values read) for rows a ``CASCADE`` rule removed, UPDATE versions (copied
   from the row) for rows a ``SET NULL`` / ``SET DEFAULT`` rule changed.

Where the rules are switched off on the connection (SQLite without ``PRAGMA
foreign_keys = ON``, MySQL with ``foreign_key_checks = 0``) the database changes nothing
and nothing is recorded (``dialects.enforces_foreign_keys``).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.interfaces import ONETOMANY

from . import writer
from .operations import Operation
from .rows import RowChange, referenced_value
from .statements import same_property

if TYPE_CHECKING:
    from sqlalchemy.orm import InstanceState, Session

    from .manager import VersioningManager
    from .tables import VersionTable
    from .unit_of_work import UnitOfWork

#: ``ON DELETE`` rules that change child rows (``RESTRICT`` / ``NO ACTION`` fail instead).
DELETES = "CASCADE"
CHANGES = ("SET NULL", "SET DEFAULT")


@dataclasses.dataclass(frozen=True, eq=False)
class Edge:
    """A foreign key from ``child`` to a parent table with a rule that changes ``child``."""

    child: sa.Table
    rule: str
    #: The child's foreign key columns and the parent columns they reference, in order.
    child_columns: tuple[sa.Column[Any], ...]
    parent_columns: tuple[sa.Column[Any], ...]


def edges(manager: VersioningManager, table: sa.Table) -> tuple[Edge, ...]:
    """Return the foreign keys into ``table`` whose ``ON DELETE`` rule reaches a versioned
    table (the child itself, or, through further ``CASCADE`` rules, its descendants)."""
    cache = manager.table_cache
    found = cache.get(("cascades", table))
    if found is not None:
        return found
    cache[("cascades", table)] = ()  # a cycle back to this table adds nothing new
    result: list[Edge] = []
    for child in list(table.metadata.tables.values()):
        for constraint in child.foreign_key_constraints:
            rule = (constraint.ondelete or "").upper()
            if rule != DELETES and rule not in CHANGES:
                continue
            try:
                referred = constraint.referred_table
            except sa.exc.NoReferencedTableError:
                continue
            if referred is not table:
                continue
            versioned = child in manager.version_tables
            if not versioned and not (rule == DELETES and edges(manager, child)):
                continue
            pairs = [(e.parent, e.column) for e in constraint.elements]
            result.append(
                Edge(
                    child,
                    rule,
                    tuple(c for c, _ in pairs),
                    tuple(p for _, p in pairs),
                )
            )
    cache[("cascades", table)] = tuple(result)
    return cache[("cascades", table)]


def has_edges(manager: VersioningManager, mapper: Mapper[Any]) -> bool:
    """Return whether deleting an object of ``mapper`` can reach a versioned table."""
    return any(isinstance(t, sa.Table) and edges(manager, t) for t in mapper.tables)


def referenced_columns(manager: VersioningManager, table: sa.Table) -> list[sa.Column[Any]]:
    """Return the columns of ``table`` that cascading foreign keys reference."""
    columns: list[sa.Column[Any]] = []
    for edge in edges(manager, table):
        for column in edge.parent_columns:
            if column not in columns:
                columns.append(column)
    return columns


def orm_handles(mapper: Mapper[Any], edge: Edge) -> bool:
    """Return whether deleting an object of ``mapper`` makes the ORM itself delete or
    change the rows of ``edge`` first (a relationship over that foreign key without
    ``passive_deletes``, which loads the children and writes them in the flush)."""
    wanted = set(edge.child_columns)
    for prop in mapper.relationships:
        if prop.viewonly or prop.passive_deletes:
            continue
        written = {dest for _, dest in prop.synchronize_pairs}
        if prop.secondary is not None:
            if prop.secondary is edge.child and written == wanted:
                return True
        elif prop.direction is ONETOMANY and edge.child in prop.mapper.tables and written == wanted:
            return True
    return False


def identity_columns(manager: VersioningManager, table: sa.Table) -> list[sa.Column[Any]]:
    """Return the columns that identify a row of ``table`` (a versioned table's key)."""
    info = manager.version_tables.get(table)
    if info is not None:
        return info.primary_key
    if table.primary_key.columns:
        return list(table.primary_key.columns)
    return list(table.columns)


def needed_columns(manager: VersioningManager, table: sa.Table) -> list[sa.Column[Any]]:
    """Return what to read of a row about to disappear: its key, its versioned columns
    and the columns its own cascading children reference."""
    columns = list(identity_columns(manager, table))
    info = manager.version_tables.get(table)
    extra = list(info.columns) if info is not None else []
    for column in (*extra, *referenced_columns(manager, table)):
        if column not in columns:
            columns.append(column)
    return columns


@dataclasses.dataclass
class _Reached:
    """Rows of one table that the rules reach, by key."""

    rows: dict[tuple[Any, ...], dict[sa.Column[Any], Any]] = dataclasses.field(default_factory=dict)
    deleted: set[tuple[Any, ...]] = dataclasses.field(default_factory=set)
    #: Keys changed by SET NULL / SET DEFAULT, with the columns the rule sets.
    changed: dict[tuple[Any, ...], set[sa.Column[Any]]] = dataclasses.field(
        default_factory=lambda: defaultdict(set)
    )


class CascadeRead:
    """Child rows the database will delete or change when parent rows are deleted."""

    def __init__(self, manager: VersioningManager, connection: Connection) -> None:
        self.manager = manager
        self.connection = connection
        self.reached: dict[sa.Table, _Reached] = defaultdict(_Reached)

    def follow(
        self,
        table: sa.Table,
        rows: Iterable[dict[sa.Column[Any], Any]],
        skip: Optional[Sequence[Edge]] = None,
    ) -> None:
        """Read (and lock) the rows reached from the deleted ``rows`` of ``table``.

        ``rows`` hold at least the columns ``referenced_columns`` names. Emits, per
        foreign key and level::

            SELECT comment.id, comment.article_id, comment.text FROM comment
            WHERE comment.article_id IN (...) FOR UPDATE

        :param skip: foreign keys of the first level the ORM deletes or changes itself.
        """
        frontier: list[tuple[sa.Table, list[dict[sa.Column[Any], Any]], Sequence[Edge]]] = [
            (table, list(rows), skip or ())
        ]
        while frontier:
            parent, parent_rows, skipped = frontier.pop(0)
            for edge in edges(self.manager, parent):
                if edge in skipped:
                    continue
                values = {
                    value
                    for value in (
                        tuple(row.get(c) for c in edge.parent_columns) for row in parent_rows
                    )
                    if all(v is not None for v in value)
                }
                if not values:
                    continue
                deleted = self._read(edge, sorted(values, key=repr))
                if deleted and edges(self.manager, edge.child):
                    frontier.append((edge.child, deleted, ()))

    def _read(self, edge: Edge, values: list[tuple[Any, ...]]) -> list[dict[sa.Column[Any], Any]]:
        """Read the rows of ``edge`` matching ``values``; return those newly deleted."""
        columns = needed_columns(self.manager, edge.child)
        key_columns = identity_columns(self.manager, edge.child)
        found = writer.fetch_rows(
            self.connection, edge.child, columns, edge.child_columns, values, lock=True
        )
        reached = self.reached[edge.child]
        deleted: list[dict[sa.Column[Any], Any]] = []
        for values_read in found:
            row = dict(zip(columns, values_read))
            key = tuple(row[c] for c in key_columns)
            reached.rows.setdefault(key, row)
            if edge.rule == DELETES:
                if key not in reached.deleted:
                    reached.deleted.add(key)
                    deleted.append(row)
            else:
                reached.changed[key].update(edge.child_columns)
        return deleted

    @property
    def empty(self) -> bool:
        return not any(r.rows for r in self.reached.values())

    def tables(self) -> list[sa.Table]:
        """Versioned tables with rows reached."""
        return [t for t, r in self.reached.items() if r.rows and t in self.manager.version_tables]

    def changes(self, verify: Iterable[sa.Table] = ()) -> list[RowChange]:
        """Return the version rows of what the rules did, once the DELETE ran.

        :param verify: tables the same flush also wrote through the ORM: their rows are
            checked (one ``SELECT`` per table), since the ORM may have moved a child to
            another parent or deleted it itself before the parent's DELETE.
        """
        verify = set(verify)
        changes: list[RowChange] = []
        for table, reached in self.reached.items():
            info = self.manager.version_tables.get(table)
            if info is None or not reached.rows:
                continue
            deleted = set(reached.deleted)
            changed = {k for k in reached.changed if k not in deleted}
            if table in verify:
                present = set(writer.fetch_missing(self.connection, info, list(reached.rows), []))
                # A row still there was moved away before the DELETE (or only changed);
                # a row gone is deleted, whichever rule or the flush itself removed it.
                deleted = {k for k in reached.rows if k not in present}
                changed = {k for k in changed if k in present}
            for key in sorted(deleted, key=repr):
                values = row_values(info, reached.rows[key])
                changes.append(RowChange(info, key, Operation.DELETE, True, values))
            for key in sorted(changed, key=repr):
                set_columns = reached.changed[key]
                versioned = {info.columns[c].key for c in set_columns if c in info.columns}
                if versioned:
                    changes.append(
                        RowChange(info, key, Operation.UPDATE, True, changed=frozenset(versioned))
                    )
        return changes


def row_values(info: VersionTable, row: dict[sa.Column[Any], Any]) -> dict[str, Any]:
    """Version column values (by key) of a parent row read before it disappeared."""
    return {version.key: row.get(parent) for parent, version in info.columns.items()}


def follow_flush_deletes(
    uow: UnitOfWork, session: Session, deleted: Iterable[InstanceState[Any]]
) -> None:
    """Read (and lock) the rows the database's ON DELETE rules will delete or change when
    the flush in progress deletes the rows of ``deleted`` objects (versioned or not).

    Runs in ``before_flush``, after the deleted rows were read. Foreign keys the ORM writes
    itself (a relationship without ``passive_deletes``) are left to the flush; objects
    whose rows are gone already reach nothing. One locking ``SELECT`` per foreign key and
    level; the unit of work writes the versions at the end of the flush.
    """
    manager = uow.manager
    parents: dict[tuple[Connection, sa.Table], list[dict[sa.Column[Any], Any]]] = defaultdict(list)
    skipped: dict[tuple[Connection, sa.Table], list[Edge]] = {}
    for state in deleted:
        if state.key is None or uow.is_gone(state):
            continue
        mapper = state.mapper
        connection = session.connection(bind_arguments={"mapper": mapper})
        identity: dict[Any, Any] = dict(zip(mapper.primary_key, state.key[1]))
        for table in mapper.tables:
            if not isinstance(table, sa.Table):
                continue
            found = edges(manager, table)
            if not found:
                continue
            skip = [e for e in found if orm_handles(mapper, e)]
            if len(skip) == len(found) or not uow.foreign_keys_enforced(connection):
                continue
            skipped[(connection, table)] = skip
            row: dict[sa.Column[Any], Any] = {
                c: value
                for c in table.primary_key
                for p, value in identity.items()
                if same_property(mapper, c, p)
            }
            before = uow.prefetched.get(state, {})
            for column in referenced_columns(manager, table):
                if column not in row:
                    row[column] = referenced_value(state, column, before)
            parents[(connection, table)].append(row)
    reads: dict[Connection, CascadeRead] = {}
    for (connection, table), rows in parents.items():
        read = reads.get(connection)
        if read is None:
            read = reads[connection] = CascadeRead(manager, connection)
        read.follow(table, rows, skip=skipped[(connection, table)])
    for connection, read in reads.items():
        if not read.empty:
            uow.add_cascades(connection, read)
