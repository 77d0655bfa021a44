"""Per-database-transaction recorder: which objects changed, and how, until commit.

A ``UnitOfWork`` lives as long as one root ``SessionTransaction``. During a flush the
mapper events append each written object to ``pending``; ``after_flush`` turns them into
version rows (``make_versions``), merging with what earlier flushes of the same transaction
wrote. Savepoints are handled with an undo log: a rolled-back savepoint undoes exactly the
bookkeeping done since it began, just as the database undoes the rows.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstanceState, Session, SessionTransaction
from sqlalchemy.orm.base import NEVER_SET, NO_VALUE

from . import writer
from .operations import Operation, fold
from .transaction import utc_now

if TYPE_CHECKING:
    from .manager import MapperPlan, VersioningManager
    from .tables import VersionTable

_MISSING: Any = object()


@dataclasses.dataclass(frozen=True)
class _Written:
    """What this transaction already wrote for one version row."""

    existed_before: bool
    operation: Operation


@dataclasses.dataclass
class _Entry:
    """One version row produced by the flush in progress."""

    values: dict[str, Any]
    operation: Operation
    #: Whether the row existed before this flush touched it (first event decides).
    existed: bool


class _FlushRows:
    """Version rows of one flush on one connection, by version table and primary key."""

    def __init__(self) -> None:
        self.tables: dict[VersionTable, dict[tuple[Any, ...], _Entry]] = defaultdict(dict)
        #: Parent columns the flush left unloaded, to fetch per table and key.
        self.missing: dict[VersionTable, dict[tuple[Any, ...], set[sa.Column[Any]]]] = defaultdict(
            dict
        )
        #: Keys of new INSERT/UPDATE versions written by copying the parent row.
        self.copied: dict[VersionTable, set[tuple[Any, ...]]] = defaultdict(set)
        #: Parent columns of rows the flush removed, to take from their last version.
        self.historic: dict[VersionTable, dict[tuple[Any, ...], set[sa.Column[Any]]]] = defaultdict(
            dict
        )

    def add(
        self,
        info: VersionTable,
        key: tuple[Any, ...],
        values: dict[str, Any],
        operation: Operation,
        existed: bool,
    ) -> None:
        same_flush = self.tables[info].get(key)
        if same_flush is not None:
            existed = same_flush.existed
        self.tables[info][key] = _Entry(values, operation, existed)


def _association_values(
    prop: Any, info: VersionTable, local: InstanceState[Any], remote: InstanceState[Any]
) -> dict[str, Any]:
    """Return an association row (by version column key) linking ``local`` to ``remote``."""
    values: dict[str, Any] = {c.key: None for c in info.columns.values()}
    for pairs, state in (
        (prop.synchronize_pairs, local),
        (prop.secondary_synchronize_pairs, remote),
    ):
        for source, dest in pairs:
            values[info.columns[dest].key] = _column_value(state, source)
    return values


def _extra_columns(prop: Any, info: VersionTable) -> set[sa.Column[Any]]:
    """Association columns the relationship does not write (ids, defaults, extra data)."""
    written = {dest for _, dest in (*prop.synchronize_pairs, *prop.secondary_synchronize_pairs)}
    return {c for c in info.columns if c not in written}


def _column_value(state: InstanceState[Any], column: sa.Column[Any]) -> Any:
    mapper = state.mapper
    key = mapper.get_property_by_column(column).key
    if key in state.dict:
        return state.dict[key]
    if state.key is not None and column in mapper.primary_key:
        return state.key[1][list(mapper.primary_key).index(column)]
    return state.attrs[key].loaded_value


@dataclasses.dataclass
class _Change:
    state: InstanceState[Any]
    operation: Operation
    connection: Connection


_UndoEntry = Union[
    tuple[str, "VersionTable", tuple[Any, ...], Optional[_Written]],
    tuple[str, Connection, Optional[int]],
]


class UnitOfWork:
    """History bookkeeping of one database transaction of one session."""

    def __init__(self, manager: VersioningManager, session_transaction: SessionTransaction):
        self.manager = manager
        self._session_transaction = weakref.ref(session_transaction)
        #: Transaction row id per connection (one per database transaction).
        self.transaction_ids: dict[Connection, int] = {}
        #: Objects written by the flush in progress.
        self.pending: list[_Change] = []
        #: Last database values of objects about to be deleted, read before the DELETE.
        self.prefetched: dict[InstanceState[Any], dict[str, Any]] = {}
        #: Identity keys of versioned objects deleted by the flush in progress.
        self.deleted_identities: set[Any] = set()
        self._written: dict[VersionTable, dict[tuple[Any, ...], _Written]] = defaultdict(dict)
        self._undo: list[_UndoEntry] = []
        self._savepoints: dict[SessionTransaction, int] = {}
        self._transaction_obj: Any = None

    # -- the transaction row -------------------------------------------------------

    @property
    def transaction_id(self) -> Optional[int]:
        """Id of the first transaction row written by this unit of work, if any."""
        return next(iter(self.transaction_ids.values()), None)

    @property
    def current_transaction(self) -> Any:
        """The ``Transaction`` object of this database transaction (``None`` before any)."""
        if self._transaction_obj is not None:
            return self._transaction_obj
        tx_id = self.transaction_id
        session_tx = self._session_transaction()
        if tx_id is None or session_tx is None:
            return None
        self._transaction_obj = session_tx.session.get(self.manager.transaction_cls, tx_id)
        return self._transaction_obj

    def create_transaction(self, session: Session) -> Any:
        """Write the transaction row now and return its ``Transaction`` object.

        Call it before the first flush to set attributes (``user_id``, or plugin metadata)
        on the transaction: changes are flushed with the session like any object.
        """
        cls = self.manager.transaction_cls
        connection = session.connection(bind_arguments={"mapper": sa.inspect(cls)})
        values = self.ensure_transaction(connection, session)
        if self._transaction_obj is None:
            obj = sa.inspect(cls).class_manager.new_instance()
            for key, value in values.items():
                setattr(obj, key, value)
            sa.orm.make_transient_to_detached(obj)
            session.add(obj)
            self._transaction_obj = obj
        return self._transaction_obj

    def ensure_transaction(self, connection: Connection, session: Session) -> dict[str, Any]:
        """Insert this database transaction's row on ``connection`` unless it exists."""
        if connection in self.transaction_ids:
            return {"id": self.transaction_ids[connection]}
        table = self.manager.transaction_table
        assert table is not None
        given: dict[str, Any] = {"issued_at": utc_now()}
        given.update(self.manager.transaction_values(self, session))
        values = {k: v for k, v in given.items() if k in table.c and k != "id"}
        result = connection.execute(table.insert().values(values))
        assert result.inserted_primary_key is not None
        tx_id = int(result.inserted_primary_key[0])
        self._log(("tx", connection, None))
        self.transaction_ids[connection] = tx_id
        self.manager.session_connection_map[session] = connection
        row = {"id": tx_id, **values}
        self.manager.plugins.after_create_transaction(self, session, connection, row)
        return row

    # -- savepoints ----------------------------------------------------------------

    def _log(self, entry: _UndoEntry) -> None:
        if self._savepoints:
            self._undo.append(entry)

    def begin_savepoint(self, transaction: SessionTransaction) -> None:
        self._savepoints[transaction] = len(self._undo)

    def end_savepoint(self, transaction: SessionTransaction) -> None:
        self._savepoints.pop(transaction, None)
        if not self._savepoints:
            self._undo.clear()

    def rollback_savepoint(self, transaction: SessionTransaction) -> None:
        """Undo the bookkeeping done since ``transaction`` (a savepoint) began."""
        mark = self._savepoints.get(transaction)
        self.pending.clear()
        self.manager.plugins.after_rollback_savepoint(self, transaction.session)
        if mark is None:
            return
        while len(self._undo) > mark:
            entry = self._undo.pop()
            if entry[0] == "tx":
                self.transaction_ids.pop(entry[1], None)  # type: ignore[arg-type]
                obj, self._transaction_obj = self._transaction_obj, None
                session_tx = self._session_transaction()
                if obj is not None and session_tx is not None and obj in session_tx.session:
                    session_tx.session.expunge(obj)
            else:
                _, info, key, previous = entry  # type: ignore[misc]
                if previous is None:
                    self._written[info].pop(key, None)
                else:
                    self._written[info][key] = previous
        for later in [t for t, m in self._savepoints.items() if m > mark]:
            del self._savepoints[later]

    # -- recording -----------------------------------------------------------------

    def record(
        self, state: InstanceState[Any], operation: Operation, connection: Connection
    ) -> None:
        self.pending.append(_Change(state, operation, connection))

    def make_versions(self, session: Session) -> None:
        """Write version rows for everything the flush in progress changed."""
        pending, self.pending = self.pending, []
        deleted_identities, self.deleted_identities = self.deleted_identities, set()
        manager = self.manager
        flushes: dict[Connection, _FlushRows] = defaultdict(_FlushRows)
        # New INSERT/UPDATE versions are copied from the parent rows in the database
        # (INSERT ... SELECT): exact values, nothing to fetch, only keys sent. Plugins that
        # adjust each row (``after_version_row``) need the values: the row-by-row path.
        copy = not manager.plugins.overrides("after_version_row")
        for change in pending:
            plan = manager.plan_for(change.state.mapper)
            if change.operation is Operation.UPDATE and not self._has_versioned_change(
                change.state, plan
            ):
                continue
            self._entity_rows(flushes[change.connection], change, plan, deleted_identities, copy)
        if manager.association_tables:
            self._association_rows(session, pending, flushes)
        if not flushes:
            return
        manager.plugins.before_create_version_objects(self, session)
        for connection, rows in flushes.items():
            self._write(session, connection, rows)
        manager.plugins.after_create_version_objects(self, session)
        for change in pending:
            self.prefetched.pop(change.state, None)

    def _has_versioned_change(self, state: InstanceState[Any], plan: MapperPlan) -> bool:
        keys = plan.attribute_keys
        modified = keys - state.unmodified_intersection(keys)
        committed = state.committed_state
        for key in modified:
            old = committed.get(key, NO_VALUE)
            if old is NO_VALUE or old is NEVER_SET or key not in state.dict:
                return True  # the old value is unknown: assume a change
            # What attribute history does, without building History objects per key
            # (the no-op check runs for every updated object of every flush).
            if not state.manager[key].impl.is_equal(old, state.dict[key]):
                return True
        return False

    def _entity_rows(
        self,
        rows: _FlushRows,
        change: _Change,
        plan: MapperPlan,
        deleted_identities: set[Any],
        copy: bool,
    ) -> None:
        state = change.state
        deleted = change.operation is Operation.DELETE
        prefetched = self.prefetched.get(state, {})
        # A delete and an insert of the same identity in one flush reach us as an insert
        # ("row switch"); the object existed before, so it is an UPDATE.
        reinserted = (
            change.operation is Operation.INSERT
            and state.key is not None
            and state.key in deleted_identities
        )
        existed = change.operation is not Operation.INSERT or reinserted
        for info, columns in plan.tables:
            pk_keys = {c.key for c in info.version_primary_key}
            key = tuple(
                self._value(state, attr_key, deleted, prefetched)
                for c in info.version_primary_key
                for _, version_key, attr_key in columns
                if version_key == c.key and attr_key is not None
            )
            # A first version this transaction, not a delete: copied from the database
            # row, so only its key is needed (a rewrite needs every value).
            copied = copy and not deleted and key not in self._written[info]
            values: dict[str, Any] = dict(zip((c.key for c in info.version_primary_key), key))
            absent: set[sa.Column[Any]] = set()
            for parent_column, version_key, attr_key in columns:
                if copied or version_key in pk_keys:
                    continue
                if attr_key is None:
                    values[version_key] = None
                    continue
                value = self._value(state, attr_key, deleted, prefetched)
                if value is _MISSING:
                    absent.add(parent_column)
                values[version_key] = value
            if copied:
                rows.copied[info].add(key)
            elif absent:
                rows.missing[info][key] = absent
            rows.add(info, key, values, change.operation, existed)

    def _association_rows(
        self, session: Session, pending: list[_Change], flushes: dict[Connection, _FlushRows]
    ) -> None:
        """Add association version rows from many-to-many collection history.

        ``after_flush`` still sees the pre-flush history: ``added`` members were linked,
        ``deleted`` members unlinked, and every member of a deleted object unlinked.
        """
        deleted_states = {c.state for c in pending if c.operation is Operation.DELETE}
        states: dict[InstanceState[Any], None] = dict.fromkeys(c.state for c in pending)
        # Session.deleted builds a new set on every access: once, not once per object.
        deleted = session.deleted
        for obj in (*session.new, *session.dirty, *deleted):
            state: InstanceState[Any] = sa.inspect(obj)
            states.setdefault(state)
            if obj in deleted:
                deleted_states.add(state)
        for state in states:
            props = self.manager.association_props(state.mapper)
            if not props:
                continue
            connection: Optional[Connection] = None
            for prop, info in props:
                history = state.attrs[prop.key].history
                if state in deleted_states:
                    linked: tuple[Any, ...] = ()
                    unlinked = (*history.unchanged, *history.deleted)
                else:
                    linked, unlinked = tuple(history.added), tuple(history.deleted)
                if not linked and not unlinked:
                    continue
                if connection is None:
                    connection = session.connection(bind_arguments={"mapper": state.mapper})
                rows = flushes[connection]
                for target, operation in [
                    *((t, Operation.INSERT) for t in linked),
                    *((t, Operation.DELETE) for t in unlinked),
                ]:
                    if target is None:
                        continue
                    values = _association_values(prop, info, state, sa.inspect(target))
                    key = tuple(values[c.key] for c in info.version_primary_key)
                    rows.add(info, key, values, operation, operation is Operation.DELETE)
                    extra = _extra_columns(prop, info)
                    if extra:
                        # Columns the relationship does not write (a surrogate id, a server
                        # default): read back from the new row, or, for a removed link,
                        # from its last version; one SELECT per table.
                        source = rows.missing if operation is Operation.INSERT else rows.historic
                        source[info][key] = extra

    def _write(self, session: Session, connection: Connection, rows: _FlushRows) -> None:
        tx_id = self.ensure_transaction(connection, session)["id"]
        copied: dict[VersionTable, dict[int, list[tuple[Any, ...]]]] = {}
        for info, keys in rows.copied.items():
            for key in keys:
                entry = rows.tables[info][key]
                if entry.operation is not Operation.DELETE:
                    final = fold(entry.existed, deleted_now=False)
                    copied.setdefault(info, {}).setdefault(int(final), []).append(key)
        for source, fetch in (
            (rows.missing, writer.fetch_missing),
            (rows.historic, partial(writer.fetch_from_history, transaction_id=tx_id)),
        ):
            for info, keyed in source.items():
                wanted: set[sa.Column[Any]] = set().union(*keyed.values())
                fetched = fetch(connection, info, list(keyed), wanted)
                for key, absent in keyed.items():
                    found = fetched.get(key, {})
                    target = rows.tables[info][key].values
                    for column in absent:
                        target[info.columns[column].key] = found.get(column)

        for info, entries in rows.tables.items():
            written = self._written[info]
            by_copy = {k for keys in copied.get(info, {}).values() for k in keys}
            new_rows: list[dict[str, Any]] = []
            rewritten: list[dict[str, Any]] = []
            for key, entry in entries.items():
                earlier = written.get(key)
                existed_before = earlier.existed_before if earlier is not None else entry.existed
                final = fold(existed_before, entry.operation is Operation.DELETE)
                self._log(("row", info, key, earlier))
                written[key] = _Written(existed_before, final)
                if key in by_copy:
                    continue
                row: dict[str, Any] = dict(entry.values)
                row[info.transaction_column.key] = tx_id
                row[info.operation_column.key] = final
                self.manager.plugins.after_version_row(self, info, row, earlier is not None)
                if earlier is None:
                    end = info.end_transaction_column
                    if end is not None:
                        row[end.key] = None
                    new_rows.append(row)
                else:
                    rewritten.append(row)
            # Insert first, then close: the closing UPDATE excludes this transaction's rows,
            # and on InnoDB (REPEATABLE READ) its range scan then takes its gap locks after
            # our inserts, instead of gap-locking where concurrent writers insert.
            for operation, copy_keys in sorted(copied.get(info, {}).items()):
                writer.copy_versions(connection, info, copy_keys, tx_id, operation)
            writer.insert_versions(connection, info, new_rows)
            closing = [*by_copy, *(_key(info, r) for r in new_rows)]
            writer.close_versions(connection, info, closing, tx_id)
            writer.rewrite_versions(connection, info, rewritten)

    @staticmethod
    def _value(
        state: InstanceState[Any], key: str, deleted: bool, prefetched: dict[str, Any]
    ) -> Any:
        if key in prefetched:
            return prefetched[key]
        if deleted:
            # The database still holds the value from before any unflushed change.
            history = state.attrs[key].history
            if history.deleted:
                return history.deleted[0]
            if history.unchanged:
                return history.unchanged[0]
            if history.added:
                return _MISSING
        return state.dict.get(key, _MISSING)

    # -- deletes -------------------------------------------------------------------

    def prefetch_deleted(self, session: Session, states: Iterable[InstanceState[Any]]) -> None:
        """Read, in one ``SELECT`` per table, what deleted objects have not loaded.

        Runs in ``before_flush``: once the flush has deleted the rows, their values are gone.
        """
        known = [state for state in states if state.key is not None]
        self.deleted_identities.update(state.key for state in known)
        self._prefetch(
            known, lambda state: session.connection(bind_arguments={"mapper": state.mapper})
        )

    def prefetch_one(self, state: InstanceState[Any], connection: Connection) -> None:
        """Read the unloaded values of one object about to be deleted.

        Only for objects that ``before_flush`` could not see: delete-orphan cascades
        decided during the flush whose attributes were expired. One ``SELECT`` each.
        """
        if state not in self.prefetched and state.key is not None:
            self._prefetch([state], lambda _: connection)

    def _prefetch(
        self,
        states: list[InstanceState[Any]],
        connection_for: Callable[[InstanceState[Any]], Connection],
    ) -> None:
        wanted: dict[VersionTable, dict[tuple[Any, ...], InstanceState[Any]]] = defaultdict(dict)
        columns_of: dict[VersionTable, set[sa.Column[Any]]] = defaultdict(set)
        connections: dict[VersionTable, Connection] = {}
        for state in states:
            assert state.key is not None
            for info, columns in self.manager.plan_for(state.mapper).tables:
                absent = {
                    parent_column
                    for parent_column, _, attr_key in columns
                    if attr_key is not None and self._value(state, attr_key, True, {}) is _MISSING
                }
                if absent:
                    wanted[info][tuple(state.key[1])] = state
                    columns_of[info] |= absent
                    connections.setdefault(info, connection_for(state))
        for info, states_by_key in wanted.items():
            fetched = writer.fetch_missing(
                connections[info], info, list(states_by_key), columns_of[info]
            )
            for key, state in states_by_key.items():
                row = fetched.get(key, {})
                values = self.prefetched.setdefault(state, {})
                for parent_column, _, attr_key in self.manager.plan_for(state.mapper).columns_of(
                    info
                ):
                    if attr_key is not None and parent_column in row:
                        values[attr_key] = row[parent_column]


def _key(info: VersionTable, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c.key] for c in info.version_primary_key)
