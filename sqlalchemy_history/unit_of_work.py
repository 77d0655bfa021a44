"""Per-database-transaction recorder: which rows changed, and how, until commit.

A ``UnitOfWork`` lives as long as one root ``SessionTransaction``. The steps of a flush:

1. ``prefetch`` (``before_flush``): rows whose values the database is about to lose or
   whose old values the session does not know (deleted objects, objects whose primary
   key changes, attributes assigned while expired) are read with one locking ``SELECT``
   per table, while they still exist;
2. the mapper events ``record`` each written object in ``pending`` (no SQL);
3. ``make_versions`` (``after_flush``) turns them into version rows per table and key,
   merges them with what earlier flushes of the transaction wrote (``_written``), and
   ``_write`` hands them to ``writer``.

Writes that bypass the flush (ORM bulk statements, legacy bulk methods, rows removed or
changed by the database's ``ON DELETE`` rules) are read around the statement by
``capture`` and ``cascades`` and handed to ``write_rows``: the same merge with what the
transaction wrote, the same statements, the same transaction row.

Savepoints are handled with an undo log: a rolled-back savepoint undoes exactly the
bookkeeping done since it began, just as the database undoes the rows.

Why one module (over 400 lines): the transaction row, what the transaction wrote per key,
the keys to check for commit order and the undo log are one piece of state that every
step reads and changes; what the rows of a flush look like, and how keys and values are
read from ORM states, is in ``rows.py``; the SQL is in ``writer.py``.

Version order is commit order (SPEC §3): the transaction id is taken at the first
versioned flush, after that flush's own statements locked its rows, so no other writer
can commit a version of those rows before this transaction does. Rows a later flush
writes first were not locked when the id was taken: before the COMMIT, ``check_order``
asks whether a writer with a higher id committed a version of one of them meanwhile and,
if one did, moves the whole transaction to a fresh id (``_move_transaction``).
docs/internals.md explains why.
"""

from __future__ import annotations

import dataclasses
import weakref
from collections import defaultdict
from collections.abc import Hashable, Iterable
from typing import TYPE_CHECKING, Any, Callable, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import InstanceState, Session, SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.base import NEVER_SET, NO_VALUE

from . import rows as _rows
from . import writer
from .dialects import rules_for
from .exc import VersioningError
from .operations import Operation, fold
from .rows import (
    MISSING,
    FlushRows,
    Row,
    RowChange,
    TableWrite,
    Written,
    association_values,
    extra_columns,
    loaded_value,
    table_key,
)
from .transaction import utc_now

if TYPE_CHECKING:
    from . import cascades
    from .manager import MapperPlan, VersioningManager
    from .tables import VersionTable

#: Beyond this many distinct combinations of plugin values per table and flush, copied
#: rows are written without them and the values set by one executemany UPDATE instead.
_MAX_COPY_GROUPS = 4

#: How often a fresh transaction id is drawn when it is not above a conflicting one
#: (only an id generator that is not monotonic, e.g. Oracle RAC sequences with NOORDER).
_MOVE_ATTEMPTS = 3


@dataclasses.dataclass
class _Change:
    state: InstanceState[Any]
    operation: Operation
    connection: Connection


_UndoEntry = Union[
    tuple[str, "VersionTable", Hashable, Optional[Written]],
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
        #: Database values (by attribute key) of rows read before the flush changed them.
        self.prefetched: dict[InstanceState[Any], dict[str, Any]] = {}
        #: Identity keys of versioned objects deleted by the flush in progress.
        self.deleted_identities: set[Any] = set()
        self._written: dict[VersionTable, dict[Hashable, Written]] = defaultdict(dict)
        #: Version tables this transaction wrote to, per connection.
        self._tables: dict[Connection, set[VersionTable]] = defaultdict(set)
        #: Keys first written after the transaction id was taken, still to check for a
        #: newer version by another writer (see ``check_order``).
        self._late: dict[Connection, dict[VersionTable, list[tuple[Any, ...]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        #: ``Session.commit()`` has begun: check the order after every flush.
        self._committing = False
        self._undo: list[_UndoEntry] = []
        self._savepoints: dict[SessionTransaction, int] = {}
        self._transaction_obj: Any = None
        #: States whose row the flush in progress deletes, found gone before it did.
        self._gone: set[InstanceState[Any]] = set()
        #: Rows the database's ON DELETE rules will change in the flush in progress.
        self._cascades: dict[Connection, cascades.CascadeRead] = {}
        #: Whether each connection applies foreign key rules (asked once per transaction).
        self._foreign_keys: dict[Connection, bool] = {}
        #: While ``write_rows`` writes: version column keys each row's statement changed,
        #: by ``(version table, key)``, for plugins (the rows have no objects behind them).
        self.statement_changes: Optional[dict[tuple[sa.Table, tuple[Any, ...]], frozenset[str]]] = (
            None
        )

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
        result = connection.execute(writer.insert_statement(table), values)
        assert result.inserted_primary_key is not None
        tx_id = int(result.inserted_primary_key[0])
        self._log(("tx", connection, None))
        self.transaction_ids[connection] = tx_id
        self.manager.session_connection_map[session] = connection
        row = {"id": tx_id, **values}
        self.manager.plugins.after_create_transaction(self, session, connection, row)
        return row

    def _move_transaction(self, session: Session, connection: Connection, above: int) -> None:
        """Give this transaction a fresh id greater than ``above``, moving its rows.

        Another writer took id ``above`` after ours but committed a version of a row we
        write first. A fresh id drawn now is greater (ids are handed out in order), and
        no one can commit a newer version of our rows before us (we hold their locks).
        Emits a SELECT and an INSERT on ``transaction``, two UPDATEs per version table
        written, the plugins' moves, and a DELETE of the old transaction row.
        """
        table = self.manager.transaction_table
        assert table is not None
        old = self.transaction_ids[connection]
        found = connection.execute(sa.select(table).where(table.c.id == old)).mappings().one()
        values = {k: v for k, v in found.items() if k != "id"}
        for _ in range(_MOVE_ATTEMPTS):
            result = connection.execute(writer.insert_statement(table), values)
            assert result.inserted_primary_key is not None
            new = int(result.inserted_primary_key[0])
            if new > above:
                break
            connection.execute(table.delete().where(table.c.id == new))
        else:
            raise VersioningError(
                f"the database handed out transaction id {new} after id {above} was taken; "
                f"version order needs ids that grow over time (an ordered sequence or "
                f"identity, e.g. Oracle's ORDER on RAC)."
            )
        for info in self._tables[connection]:
            writer.move_versions(connection, info, old, new)
        self.manager.plugins.after_move_transaction(self, session, connection, old, new)
        connection.execute(table.delete().where(table.c.id == old))
        self._log(("moved", connection, old))
        self.transaction_ids[connection] = new
        self._rekey_objects(session, old, new)

    def _rekey_objects(self, session: Session, old: int, new: int) -> None:
        """Make the session's objects follow a move from transaction ``old`` to ``new``."""
        cls = self.manager.transaction_cls
        obj = session.identity_map.get(sa.orm.util.identity_key(cls, old))
        if obj is not None:
            session.expunge(obj)
            sa.orm.make_transient(obj)
            set_committed_value(obj, "id", new)
            sa.orm.make_transient_to_detached(obj)
            session.add(obj)
        versions = set(self.manager.version_class_map.values())
        for stale in list(session.identity_map.values()):
            if type(stale) in versions:
                info = self.manager.version_info_of_class(type(stale))
                if info is not None and stale.__dict__.get(info.transaction_column.key) == old:
                    session.expunge(stale)

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
                self._forget_transaction_object()
            elif entry[0] == "moved":
                self.transaction_ids[entry[1]] = entry[2]  # type: ignore[index,assignment]
                self._forget_transaction_object()
            else:
                _, info, key, previous = entry  # type: ignore[misc]
                if previous is None:
                    self._written[info].pop(key, None)
                else:
                    self._written[info][key] = previous
        for later in [t for t, m in self._savepoints.items() if m > mark]:
            del self._savepoints[later]

    def _forget_transaction_object(self) -> None:
        obj, self._transaction_obj = self._transaction_obj, None
        session_tx = self._session_transaction()
        if obj is not None and session_tx is not None and obj in session_tx.session:
            session_tx.session.expunge(obj)

    # -- recording -----------------------------------------------------------------

    def record(
        self, state: InstanceState[Any], operation: Operation, connection: Connection
    ) -> None:
        self.pending.append(_Change(state, operation, connection))

    def make_versions(self, session: Session) -> None:
        """Write version rows for everything the flush in progress changed."""
        pending, self.pending = self.pending, []
        deleted_identities, self.deleted_identities = self.deleted_identities, set()
        gone, self._gone = self._gone, set()
        cascaded, self._cascades = self._cascades, {}
        manager = self.manager
        flushes: dict[Connection, FlushRows] = defaultdict(FlushRows)
        try:
            for change in pending:
                if change.operation is Operation.DELETE and change.state in gone:
                    continue  # a bulk statement deleted the row already: nothing deleted now
                plan = manager.plan_for(change.state.mapper)
                if change.operation is Operation.UPDATE and not self._has_versioned_change(
                    change.state, plan
                ):
                    continue
                self._entity_rows(flushes[change.connection], change, plan, deleted_identities)
            if manager.association_tables:
                self._association_rows(session, pending, flushes)
            if cascaded:
                touched = {
                    t
                    for change in pending
                    for t in change.state.mapper.tables
                    if isinstance(t, sa.Table)
                }
                for connection, read in cascaded.items():
                    rows = flushes[connection]
                    touched.update(info.parent for info in rows.tables)
                    self._add_changes(rows, connection, read.changes(verify=touched))
            if not any(rows.tables for rows in flushes.values()):
                return
            manager.plugins.before_create_version_objects(self, session)
            for connection, rows in flushes.items():
                if rows.tables:
                    self._write(session, connection, rows)
            manager.plugins.after_create_version_objects(self, session)
        finally:
            self.prefetched.clear()

    def write_rows(
        self, session: Session, connection: Connection, changes: Iterable[RowChange]
    ) -> None:
        """Write the version rows of changes made outside a flush, on ``connection``.

        For a bulk statement (``capture``) or rows the database changed by itself
        (``cascades``): the rows go through the same steps as a flush's (merge with what
        the transaction already wrote, copy from the parent rows, close previous versions,
        commit-order check), in one batch, with the plugins' hooks around it.
        """
        rows = FlushRows()
        changed = self._add_changes(rows, connection, changes)
        if not rows.tables:
            return
        self.statement_changes = changed
        try:
            self.manager.plugins.before_create_version_objects(self, session)
            self._write(session, connection, rows)
            self.manager.plugins.after_create_version_objects(self, session)
        finally:
            self.statement_changes = None

    def _add_changes(
        self, rows: FlushRows, connection: Connection, changes: Iterable[RowChange]
    ) -> dict[tuple[sa.Table, tuple[Any, ...]], frozenset[str]]:
        changed: dict[tuple[sa.Table, tuple[Any, ...]], frozenset[str]] = {}
        normalizers: dict[VersionTable, Callable[..., Hashable]] = {}
        for change in changes:
            normalize = normalizers.get(change.info)
            if normalize is None:
                normalize = normalizers[change.info] = self._normalizer(connection, change.info)
            same = normalize(change.key)
            row = Row(change.key, change.operation, change.existed, change.values, change.new_key)
            if change.operation is Operation.DELETE and change.values is not None:
                rows.remove(change.info, same, row)
            else:
                rows.add(change.info, same, row)
            if change.changed is not None:
                changed[(change.info.table, change.key)] = change.changed
        return changed

    def foreign_keys_enforced(self, connection: Connection) -> bool:
        """Return whether ``connection`` applies ON DELETE rules (asked once)."""
        found = self._foreign_keys.get(connection)
        if found is None:
            found = rules_for(connection.dialect).enforces_foreign_keys(connection)
            self._foreign_keys[connection] = found
        return found

    def _has_versioned_change(self, state: InstanceState[Any], plan: MapperPlan) -> bool:
        keys = plan.attribute_keys
        modified = keys - state.unmodified_intersection(keys)
        committed = state.committed_state
        before = self.prefetched.get(state, {})
        for key in modified:
            old = committed.get(key, NO_VALUE)
            if old is NO_VALUE or old is NEVER_SET:
                # Assigned while expired: the value read from the database before the flush.
                old = before.get(key, old)
            if old is NO_VALUE or old is NEVER_SET or key not in state.dict:
                return True  # the old value is unknown: assume a change
            # What attribute history does, without building History objects per key
            # (the no-op check runs for every updated object of every flush).
            if not state.manager[key].impl.is_equal(old, state.dict[key]):
                return True
        return False

    def _normalizer(self, connection: Connection, info: VersionTable) -> Callable[..., Hashable]:
        found = rules_for(connection.dialect).key_normalizer(connection, info)
        return found if found is not None else _rows.same

    def _entity_rows(
        self,
        rows: FlushRows,
        change: _Change,
        plan: MapperPlan,
        deleted_identities: set[Any],
    ) -> None:
        state = change.state
        connection = change.connection
        operation = change.operation
        before = self.prefetched.get(state, {})
        identity = _rows.identity(state, plan)
        if operation is Operation.DELETE:
            for info, columns in plan.tables:
                key = table_key(info, columns, lambda a: identity.get(a, MISSING))
                values = self._old_values(state, columns, before)
                row = Row(key, Operation.DELETE, existed=True, values=values)
                rows.add(info, self._normalizer(connection, info)(key), row)
            return
        # A delete and an insert of the same identity in one flush reach us as an insert
        # ("row switch"); the object existed before, so it is an UPDATE.
        reinserted = (
            operation is Operation.INSERT
            and state.key is not None
            and state.key in deleted_identities
        )
        existed = operation is not Operation.INSERT or reinserted
        new_key = (
            operation is Operation.INSERT
            and not reinserted
            and self._generated(state, plan, connection)
        )
        for info, columns in plan.tables:
            normalize = self._normalizer(connection, info)
            key = table_key(info, columns, lambda a: state.dict.get(a, identity.get(a)))
            if operation is Operation.UPDATE and identity:
                old_key = table_key(info, columns, lambda a: identity.get(a, MISSING))
                if normalize(old_key) != normalize(key):
                    # The primary key changed: the old key's row is gone (a DELETE
                    # version with its last values), the new key's row is new.
                    values = self._old_values(state, columns, before)
                    deleted = Row(old_key, Operation.DELETE, existed=True, values=values)
                    rows.add(info, normalize(old_key), deleted)
                    rows.add(info, normalize(key), Row(key, Operation.INSERT, existed=False))
                    continue
            rows.add(info, normalize(key), Row(key, operation, existed, new_key=new_key))

    def _generated(
        self, state: InstanceState[Any], plan: MapperPlan, connection: Connection
    ) -> bool:
        """Return whether the database generated the new object's key in this flush."""
        if plan.generated_key is None:
            return False
        table, attr = plan.generated_key
        if state.attrs[attr].history.added:
            return False  # the application chose the key: it may have been used before
        return rules_for(connection.dialect).generated_key_is_new(table)

    @staticmethod
    def _old_values(
        state: InstanceState[Any], columns: Any, before: dict[str, Any]
    ) -> dict[str, Any]:
        """Version column values of a row as the database held it before the flush."""
        values: dict[str, Any] = {}
        for _, version_key, attr in columns:
            if attr is None:
                values[version_key] = None
            elif attr in before:
                values[version_key] = before[attr]
            else:
                value = loaded_value(state, attr)
                values[version_key] = None if value is MISSING else value
        return values

    def _association_rows(
        self, session: Session, pending: list[_Change], flushes: dict[Connection, FlushRows]
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
        # One connection per mapper (resolving it is not free), and the association columns
        # a relationship does not write, per relationship: not per object and link.
        connections: dict[Any, Connection] = {}
        extras: dict[Any, set[sa.Column[Any]]] = {}
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
                    connection = connections.get(state.mapper)
                    if connection is None:
                        connection = session.connection(bind_arguments={"mapper": state.mapper})
                        connections[state.mapper] = connection
                rows = flushes[connection]
                normalize = self._normalizer(connection, info)
                for target in linked:
                    if target is not None:
                        values = association_values(prop, info, state, sa.inspect(target))
                        key = tuple(values[c.key] for c in info.version_primary_key)
                        # copied from the new association row: extra columns included
                        rows.add(info, normalize(key), Row(key, Operation.INSERT, False))
                for target in unlinked:
                    if target is None:
                        continue
                    values = association_values(prop, info, state, sa.inspect(target))
                    key = tuple(values[c.key] for c in info.version_primary_key)
                    rows.add(info, normalize(key), Row(key, Operation.DELETE, True, values))
                    extra = extras.get(prop)
                    if extra is None:
                        extra = extras[prop] = extra_columns(prop, info)
                    if extra:
                        # Columns the relationship does not write (a surrogate id, extra
                        # data): the row is gone, its last version holds them.
                        rows.historic[info][key] = extra

    # -- writing -------------------------------------------------------------------

    def _write(self, session: Session, connection: Connection, rows: FlushRows) -> None:
        """Write one flush's version rows on ``connection`` (steps in ``writer``)."""
        # Was the id taken before this flush, i.e. before this flush's rows were locked?
        late = connection in self.transaction_ids
        tx_id = self.ensure_transaction(connection, session)["id"]
        self._fill_historic(connection, rows, tx_id)
        for info, entries in rows.tables.items():
            batch = self._plan(info, entries, tx_id)
            self._tables[connection].add(info)
            writer.delete_own_versions(connection, info, batch.rewritten, tx_id)
            for (operation, constants), keys in batch.copies.items():
                writer.copy_versions(connection, info, keys, tx_id, operation, dict(constants))
            writer.insert_versions(connection, info, batch.inserts)
            writer.update_versions(connection, info, batch.updates)
            normalize = rules_for(connection.dialect).key_normalizer(connection, info)
            writer.close_versions(connection, info, batch.closes, tx_id, normalize)
            if late and batch.closes:
                self._late[connection][info].extend(batch.closes)
        if self._committing:
            self.check_order(session)

    def before_commit(self, session: Session) -> None:
        """Flush, then make sure version order is commit order before the COMMIT.

        From here on every flush checks at once (``before_commit`` listeners of the
        application may still change objects, flushed after this).
        """
        session.flush()
        self._committing = True
        self.check_order(session)

    def check_order(self, session: Session) -> None:
        """Move the transaction to a fresh id if a writer with a higher id committed a
        version of a row this transaction wrote after taking its id.

        One ``SELECT`` per version table with such rows (``writer.newest_other_version``),
        once per transaction; nothing at all when every row was written by the flush
        that took the id (a transaction with one flush).
        """
        late, self._late = self._late, defaultdict(lambda: defaultdict(list))
        for connection, tables in late.items():
            tx_id = self.transaction_ids.get(connection)
            if tx_id is None:
                continue  # a rolled-back savepoint took the transaction row with it
            newest: Optional[int] = None
            for info, keys in tables.items():
                found = writer.newest_other_version(connection, info, keys, tx_id)
                if found is not None and (newest is None or found > newest):
                    newest = found
            if newest is not None:
                self._move_transaction(session, connection, newest)

    def _fill_historic(self, connection: Connection, rows: FlushRows, tx_id: int) -> None:
        """Fill in columns of removed association rows from their last version."""
        for info, keyed in rows.historic.items():
            wanted: set[sa.Column[Any]] = set().union(*keyed.values())
            fetched = writer.fetch_from_history(connection, info, list(keyed), wanted, tx_id)
            normalize = self._normalizer(connection, info)
            for key, absent in keyed.items():
                values = rows.tables[info][normalize(key)].values
                if values is None:
                    continue  # linked again in this flush: copied from the row
                found = fetched.get(key, {})
                for column in absent:
                    values[info.columns[column].key] = found.get(column)

    def _plan(self, info: VersionTable, entries: dict[Hashable, Row], tx_id: int) -> TableWrite:
        """Fold ``entries`` into what this transaction wrote and plan the statements."""
        written = self._written[info]
        batch = TableWrite()
        key_names = [c.key for c in info.version_primary_key]
        tx_name, op_name = info.transaction_column.key, info.operation_column.key
        base = {*key_names, tx_name, op_name}
        end = info.end_transaction_column
        if end is not None:
            base.add(end.key)
        plugins = self.manager.plugins
        # Without plugins a copied row is its key and operation: no dict per row (a bulk
        # statement's batch can hold every row of a table).
        rows_for_plugins = len(plugins) > 0
        copied: list[tuple[int, tuple[Any, ...], dict[str, Any]]] = []
        for same_key, entry in entries.items():
            earlier = written.get(same_key)
            existed_before = earlier.existed_before if earlier is not None else entry.existed
            final = fold(existed_before, entry.operation is Operation.DELETE)
            if self._savepoints:
                self._log(("row", info, same_key, earlier))
            written[same_key] = Written(existed_before, final, entry.key)
            if earlier is not None:
                batch.rewritten.append(earlier.key)
            elif not entry.new_key:
                batch.closes.append(entry.key)
            if entry.values is None and not rows_for_plugins:
                copied.append((int(final), entry.key, {}))
                continue
            row: dict[str, Any] = dict(entry.values or {})
            row.update(zip(key_names, entry.key))
            row[tx_name] = tx_id
            row[op_name] = final
            if end is not None:
                row[end.key] = None
            plugins.after_version_row(self, info, row, earlier is not None)
            if entry.values is None:
                constants = {k: v for k, v in row.items() if k not in base}
                copied.append((int(final), entry.key, constants))
            else:
                batch.inserts.append(row)
        self._group_copies(info, copied, tx_id, batch)
        return batch

    @staticmethod
    def _group_copies(
        info: VersionTable,
        copied: list[tuple[int, tuple[Any, ...], dict[str, Any]]],
        tx_id: int,
        batch: TableWrite,
    ) -> None:
        """Group copied rows into ``copy_versions`` calls by operation and plugin values."""
        groups: set[tuple[int, tuple[tuple[str, Any], ...]]] = set()
        try:
            keyed = [(op, key, tuple(sorted(constants.items()))) for op, key, constants in copied]
            groups = {(op, constants) for op, _, constants in keyed}
        except TypeError:  # unhashable plugin values
            keyed = []
        if keyed and len(groups) <= _MAX_COPY_GROUPS:
            for op, key, constants in keyed:
                batch.copies[(op, constants)].append(key)
            return
        for op, key, values in copied:
            batch.copies[(op, ())].append(key)
            if values:
                row = dict(zip((c.key for c in info.version_primary_key), key))
                row[info.transaction_column.key] = tx_id
                row.update(values)
                batch.updates.append(row)

    # -- reading rows before the flush changes them ------------------------------------

    def prefetch(
        self,
        session: Session,
        deleted: Iterable[InstanceState[Any]],
        changed: Iterable[InstanceState[Any]] = (),
    ) -> None:
        """Read, in one locking ``SELECT`` per table, rows the flush needs the old values of.

        ``deleted``: objects marked for deletion (their DELETE versions hold the values
        removed). ``changed``: objects whose primary key changes (the old key's DELETE
        version) or with versioned attributes assigned while expired (is it a change at
        all?). Runs in ``before_flush``, while the rows hold what the flush will change;
        the lock keeps concurrent transactions from changing them before the flush does.
        """
        self.prefetched.clear()
        known = [state for state in deleted if state.key is not None]
        self.deleted_identities.update(state.key for state in known)
        deleted_versioned = list(known)
        known.extend(state for state in changed if state.key is not None)
        self._prefetch(
            known, lambda state: session.connection(bind_arguments={"mapper": state.mapper})
        )
        self._gone = {s for s in deleted_versioned if s not in self.prefetched}

    def add_cascades(self, connection: Connection, read: cascades.CascadeRead) -> None:
        """Keep the rows ``read`` found for the flush in progress (written at its end)."""
        self._cascades[connection] = read

    def is_gone(self, state: InstanceState[Any]) -> bool:
        """Whether the flush in progress deletes an object whose row was already gone."""
        return state in self._gone

    def prefetch_one(self, state: InstanceState[Any], connection: Connection) -> None:
        """Read the row of one object about to be deleted.

        Only for objects that ``before_flush`` could not see: delete-orphan cascades
        decided during the flush. One ``SELECT`` each.
        """
        if state not in self.prefetched and state.key is not None:
            self._prefetch([state], lambda _: connection)

    def _prefetch(
        self,
        states: list[InstanceState[Any]],
        connection_for: Callable[[InstanceState[Any]], Connection],
    ) -> None:
        wanted: dict[VersionTable, dict[tuple[Any, ...], InstanceState[Any]]] = defaultdict(dict)
        connections: dict[VersionTable, Connection] = {}
        for state in states:
            plan = self.manager.plan_for(state.mapper)
            for info, columns in plan.tables:
                key = table_key(info, columns, _rows.identity(state, plan).get)
                wanted[info][key] = state
                if info not in connections:
                    connections[info] = connection_for(state)
        for info, states_by_key in wanted.items():
            fetched = writer.fetch_missing(
                connections[info], info, list(states_by_key), info.columns, lock=True
            )
            for key, state in states_by_key.items():
                row = fetched.get(key)
                if row is None:
                    continue  # gone already: the flush will fail on it
                values = self.prefetched.setdefault(state, {})
                for parent_column, _, attr in self.manager.plan_for(state.mapper).columns_of(info):
                    if attr is not None and parent_column in row:
                        values[attr] = row[parent_column]
