"""Ground truth for history: what committed, replayed in commit order, checked against the database.

Writers describe each transaction as a list of ``Write`` (insert / update / delete / rekey of
one row, in the order they reached the database) and log it with ``Log``. After the run,
``check_history(engine, schema, log)`` compares the version tables, the transaction table
and the live tables with what the log says must be there, and returns a ``Report`` of
anomalies (counts per kind, with examples). Nothing here imports sqlalchemy_history: the
tables are described by a ``HistorySchema``, so the conformance suite can reuse the
checker for any implementation.

Identifying transactions
    Each attempt of a transaction carries a unique *tag*, stored in a column of its
    transaction row (``remote_addr`` by default). The checker maps transaction ids to tags,
    so it never depends on ids the implementation reported before commit (an
    implementation may renumber its transaction at commit).

Commit order, and why the log's order is trustworthy
    A writer takes a ticket (``Log.ticket()``, a global counter) *after its last write*
    (its final flush) and *before* ``commit()``, and logs the transaction with that ticket
    once ``commit()`` returned. Commit order matters only between transactions that wrote
    the same row, and those are ordered by the row lock: if T1 and T2 both write row R and
    T1 commits first, T2's write to R waited for T1's commit, so T2's ticket (taken after
    that write) is greater than T1's (taken before T1's commit). The same holds for
    inserts of a key another transaction deletes or inserts (unique-index waits). So, per
    row, ticket order is the database's commit order, and no lock is held across
    ``commit()`` (which would serialize, and hide races in, commit-time work of the
    implementation). On SQLite transactions are serial anyway.

    Per row, replaying the writes in ticket order gives the row's value at each commit:
    an UPDATE sets only the assigned columns on top of the latest committed row (also under
    MariaDB's REPEATABLE READ, where UPDATE reads the latest row, not the snapshot).
    Writers must log only writes that reached a row (lock before delete, so a DELETE that
    matched nothing is not logged). As a self-check, the replayed final state is compared
    with the live tables (``ground_truth_*`` anomalies mean the log, not the history, is
    wrong).

Expected history (SPEC §3)
    Per row and committed transaction that wrote it: one version row. Its operation folds
    what the transaction did: INSERT (absent before, present after), UPDATE (present before
    and after, also delete + re-insert), DELETE (absent after; insert + delete in one
    transaction is a DELETE too). Values: the row's values at commit; for a DELETE, the
    values the row had when it was deleted. A primary key change (``rekey``) is a DELETE of
    the old key and an INSERT of the new one. Ordered by transaction id, a row's versions
    are in commit order; with the validity strategy every ``end_transaction_id`` is the
    next version's ``transaction_id`` (NULL for the last), a live row has exactly one open
    version and a deleted row's open version, if any, is a DELETE.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, Union

import sqlalchemy as sa

#: ``operation_type`` values as stored in version tables.
INSERT, UPDATE, DELETE = 0, 1, 2
OPERATION_NAMES = {INSERT: "INSERT", UPDATE: "UPDATE", DELETE: "DELETE"}

Key = tuple[Any, ...]
RowId = tuple[str, Key]

#: Anomaly kinds about the log itself (the checker's input), not about history.
GROUND_TRUTH_KINDS = frozenset(
    {
        "ground_truth_inconsistent",
        "ground_truth_row_missing_live",
        "ground_truth_unknown_live_row",
        "ground_truth_live_values_differ",
    }
)


@dataclasses.dataclass(frozen=True)
class Write:
    """What one statement did to one row.

    ``op`` is ``insert`` (``values`` holds every non-key column; missing ones are NULL),
    ``update`` (``values`` holds the assigned columns), ``delete``, or ``rekey`` (the
    primary key changed to ``new_key``; ``values`` holds other columns assigned with it).
    """

    table: str
    key: Key
    op: str
    values: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    new_key: Optional[Key] = None

    @classmethod
    def insert(cls, table: str, key: Key, **values: Any) -> Write:
        return cls(table, tuple(key), "insert", values)

    @classmethod
    def update(cls, table: str, key: Key, **values: Any) -> Write:
        return cls(table, tuple(key), "update", values)

    @classmethod
    def delete(cls, table: str, key: Key) -> Write:
        return cls(table, tuple(key), "delete")

    @classmethod
    def rekey(cls, table: str, key: Key, new_key: Key, **values: Any) -> Write:
        return cls(table, tuple(key), "rekey", values, tuple(new_key))


@dataclasses.dataclass(frozen=True)
class Committed:
    """A committed transaction: its commit-order ticket, its tag and its writes in order."""

    seq: int
    tag: str
    writes: tuple[Write, ...]


class Log:
    """The ground-truth log, shared by every writer (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tickets = itertools.count(1)
        self.committed: list[Committed] = []
        self.rolled_back: set[str] = set()

    def ticket(self) -> int:
        """Return the next commit-order ticket; take it after the last write, before commit."""
        with self._lock:
            return next(self._tickets)

    def commit(self, ticket: int, tag: str, writes: Iterable[Write]) -> None:
        """Log a transaction whose ``commit()`` returned."""
        with self._lock:
            self.committed.append(Committed(ticket, tag, tuple(writes)))

    def rollback(self, tag: str) -> None:
        """Log an attempt that was rolled back (its tag must leave no trace)."""
        with self._lock:
            self.rolled_back.add(tag)

    def copy(self) -> Log:
        """Return an independent copy that continues the ticket numbering."""
        other = Log()
        with self._lock:
            other.committed = list(self.committed)
            other.rolled_back = set(self.rolled_back)
            last = max((c.seq for c in self.committed), default=0)
        other._tickets = itertools.count(last + 1)
        return other

    def record(self, tag: str, writes: Iterable[Write]) -> None:
        """Log a transaction committed by a single thread: ticket and commit in one step."""
        self.commit(self.ticket(), tag, writes)


@dataclasses.dataclass(frozen=True)
class Tracked:
    """One versioned table: its live table, its version table, key and compared columns.

    Column names are the same in both tables (as SPEC §2 requires).
    """

    name: str
    parent: sa.Table
    version: sa.Table
    key: tuple[str, ...]
    columns: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class HistorySchema:
    """Where history lives: the tracked tables and the transaction table's columns."""

    tables: tuple[Tracked, ...]
    transaction: sa.Table
    tag_column: str = "remote_addr"
    transaction_column: str = "transaction_id"
    end_transaction_column: str = "end_transaction_id"
    operation_column: str = "operation_type"

    def table(self, name: str) -> Tracked:
        for tracked in self.tables:
            if tracked.name == name:
                return tracked
        raise KeyError(f"no tracked table named {name!r}; known: {[t.name for t in self.tables]}")


@dataclasses.dataclass(frozen=True)
class Expected:
    """One version row the log says must exist."""

    seq: int
    tag: str
    op: int
    values: Mapping[str, Any]


@dataclasses.dataclass
class Report:
    """Anomalies per kind, with the first few examples of each."""

    max_examples: int = 5
    counts: Counter[str] = dataclasses.field(default_factory=Counter)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=lambda: defaultdict(list))
    #: What was checked: version rows, consecutive version pairs, transaction rows.
    versions: int = 0
    pairs: int = 0
    transactions: int = 0

    def add(self, kind: str, example: str) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < self.max_examples:
            self.examples[kind].append(example)

    @property
    def ok(self) -> bool:
        return not self.counts

    def history_anomalies(self) -> int:
        """Anomalies about history (not about the log)."""
        return sum(n for kind, n in self.counts.items() if kind not in GROUND_TRUTH_KINDS)

    def summary(self) -> str:
        head = (
            f"{self.transactions} transactions, {self.versions} version rows, "
            f"{self.pairs} consecutive version pairs checked"
        )
        if self.ok:
            return f"{head}: no anomalies"
        lines = [f"{head}: {sum(self.counts.values())} anomalies"]
        for kind, count in sorted(self.counts.items()):
            rate = f" ({100.0 * count / self.pairs:.2f}% of pairs)" if kind == "order" else ""
            lines.append(f"  {kind}: {count}{rate}")
            lines.extend(f"      e.g. {example}" for example in self.examples[kind])
        return "\n".join(lines)


def _fold(existed_before: bool, exists_after: bool) -> int:
    if not exists_after:
        return DELETE
    return UPDATE if existed_before else INSERT


def replay(
    log: Log, schema: HistorySchema, report: Report
) -> tuple[dict[RowId, list[Expected]], dict[RowId, dict[str, Any]]]:
    """Replay the committed transactions in ticket order.

    Return the expected versions per row (in commit order) and the final live state. Writes
    that cannot have happened (an update of an absent row) are reported as
    ``ground_truth_inconsistent``.
    """
    state: dict[RowId, dict[str, Any]] = {}
    expected: dict[RowId, list[Expected]] = defaultdict(list)
    seen_seq: set[int] = set()
    for tx in sorted(log.committed, key=lambda c: c.seq):
        if tx.seq in seen_seq:
            report.add("ground_truth_inconsistent", f"ticket {tx.seq} used twice")
        seen_seq.add(tx.seq)
        # Whether each row the transaction touched existed before it (first touch decides).
        existed: dict[RowId, bool] = {}
        deleted_values: dict[RowId, dict[str, Any]] = {}
        for write in tx.writes:
            columns = schema.table(write.table).columns
            row = (write.table, write.key)
            existed.setdefault(row, row in state)
            current = state.get(row)
            problem = None
            if write.op == "insert":
                if current is not None:
                    problem = "insert of an existing row"
                state[row] = {c: write.values.get(c) for c in columns}
            elif write.op == "update":
                if current is None:
                    problem = "update of an absent row"
                else:
                    current.update({c: v for c, v in write.values.items() if c in columns})
            elif write.op in ("delete", "rekey"):
                if current is None:
                    problem = f"{write.op} of an absent row"
                else:
                    deleted_values[row] = dict(current)
                    del state[row]
                    if write.op == "rekey":
                        assert write.new_key is not None
                        new_row = (write.table, write.new_key)
                        existed.setdefault(new_row, new_row in state)
                        if new_row in state:
                            problem = "rekey onto an existing row"
                        moved = dict(current)
                        moved.update({c: v for c, v in write.values.items() if c in columns})
                        state[new_row] = moved
            else:
                problem = f"unknown op {write.op!r}"
            if problem:
                report.add(
                    "ground_truth_inconsistent",
                    f"{problem}: {write.table} {write.key} in {tx.tag} (ticket {tx.seq})",
                )
        for row, before in existed.items():
            after = row in state
            values = state[row] if after else deleted_values.get(row, {})
            expected[row].append(Expected(tx.seq, tx.tag, _fold(before, after), dict(values)))
    return expected, state


def _describe(row: Mapping[str, Any], schema: HistorySchema, tags: Mapping[Any, str]) -> str:
    tx = row[schema.transaction_column]
    op = OPERATION_NAMES.get(row[schema.operation_column], row[schema.operation_column])
    return f"tx {tx} ({tags.get(tx, '?')}) {op}"


def check_history(
    bind: Union[sa.Engine, sa.Connection],
    schema: HistorySchema,
    log: Log,
    *,
    max_examples: int = 5,
) -> Report:
    """Compare the database's history with the log; return the anomalies found.

    Reads every version, transaction and live row of the tracked tables (one ``SELECT``
    each), so run it when the writers are done. ``bind`` is an engine, or a connection
    (whose transaction, if any, it reads within).
    """
    report = Report(max_examples=max_examples)
    expected, final = replay(log, schema, report)
    committed = {c.tag: c for c in log.committed}
    tx_col = schema.transaction_column

    opened = bind.connect() if isinstance(bind, sa.Engine) else contextlib.nullcontext(bind)
    with opened as conn:
        tx_table = schema.transaction
        tag_of: dict[Any, str] = {}
        ids_of_tag: dict[str, list[Any]] = defaultdict(list)
        for tx_id, tag in conn.execute(sa.select(tx_table.c.id, tx_table.c[schema.tag_column])):
            tag_of[tx_id] = tag
            ids_of_tag[tag].append(tx_id)
        report.transactions = len(tag_of)
        used: set[Any] = set()
        versions: dict[str, list[dict[str, Any]]] = {}
        live: dict[str, list[dict[str, Any]]] = {}
        for tracked in schema.tables:
            order = [tracked.version.c[k] for k in tracked.key] + [tracked.version.c[tx_col]]
            versions[tracked.name] = [
                dict(r)
                for r in conn.execute(sa.select(tracked.version).order_by(*order)).mappings()
            ]
            live[tracked.name] = [
                dict(r) for r in conn.execute(sa.select(tracked.parent)).mappings()
            ]

    for tx_id, tag in tag_of.items():
        if tag is None:
            report.add("untagged_transaction", f"transaction {tx_id} has no tag")
        elif tag in log.rolled_back and tag not in committed:
            report.add("rolled_back_transaction", f"transaction {tx_id} of rolled-back {tag}")
        elif tag not in committed:
            report.add("unknown_transaction", f"transaction {tx_id} tagged {tag!r}")
    for tag, ids in ids_of_tag.items():
        if tag is not None and len(ids) > 1:
            report.add("duplicate_transaction", f"{tag} has transaction rows {sorted(ids)}")

    for tracked in schema.tables:
        has_end = schema.end_transaction_column in tracked.version.c
        by_key: dict[Key, list[dict[str, Any]]] = defaultdict(list)
        for row in versions[tracked.name]:
            by_key[tuple(row[k] for k in tracked.key)].append(row)
            used.add(row[tx_col])
        report.versions += len(versions[tracked.name])
        live_rows = {tuple(r[k] for k in tracked.key): r for r in live[tracked.name]}
        keys = set(by_key) | {key for (name, key) in expected if name == tracked.name}
        for key in sorted(keys, key=repr):
            _check_row(
                report,
                schema,
                tracked,
                key,
                by_key.get(key, []),
                expected.get((tracked.name, key), []),
                committed,
                log.rolled_back,
                tag_of,
                live_rows.get(key),
                has_end,
            )
        _check_live(report, tracked, live_rows, final)

    for tx_id in tag_of:
        if tx_id not in used:
            report.add(
                "empty_transaction", f"transaction {tx_id} ({tag_of[tx_id]}) has no versions"
            )
    present_tags = set(ids_of_tag)
    for tx in log.committed:
        if tx.writes and tx.tag not in present_tags:
            report.add("missing_transaction", f"committed {tx.tag} (ticket {tx.seq}) has no row")
    return report


def _check_row(
    report: Report,
    schema: HistorySchema,
    tracked: Tracked,
    key: Key,
    actual: Sequence[dict[str, Any]],
    expected: Sequence[Expected],
    committed: Mapping[str, Committed],
    rolled_back: set[str],
    tag_of: Mapping[Any, str],
    live_row: Optional[Mapping[str, Any]],
    has_end: bool,
) -> None:
    tx_col = schema.transaction_column
    op_col = schema.operation_column
    where = f"{tracked.name} {key}"
    # Versions in transaction-id order, with the commit ticket of their transaction.
    matched: dict[int, dict[str, Any]] = {}
    tickets: list[tuple[int, dict[str, Any]]] = []
    for row in actual:
        tag = tag_of.get(row[tx_col])
        if row[tx_col] not in tag_of:
            report.add("orphan_version", f"{where}: tx {row[tx_col]} has no transaction row")
        elif tag in committed:
            seq = committed[tag].seq
            if seq in matched:
                report.add(
                    "duplicate_version",
                    f"{where}: {tag} wrote {_describe(matched[seq], schema, tag_of)} and "
                    f"{_describe(row, schema, tag_of)}",
                )
            matched[seq] = row
            tickets.append((seq, row))
        elif tag in rolled_back:
            report.add("rolled_back_version", f"{where}: {_describe(row, schema, tag_of)}")
        else:
            report.add("unknown_version", f"{where}: {_describe(row, schema, tag_of)}")

    for (seq_a, row_a), (seq_b, row_b) in zip(tickets, tickets[1:]):
        report.pairs += 1
        if seq_a > seq_b:
            report.add(
                "order",
                f"{where}: {_describe(row_a, schema, tag_of)} committed after "
                f"{_describe(row_b, schema, tag_of)} (tickets {seq_a} > {seq_b})",
            )

    wanted = {e.seq: e for e in expected}
    for seq, exp in wanted.items():
        row = matched.get(seq)
        if row is None:
            report.add(
                "missing_version",
                f"{where}: no {OPERATION_NAMES[exp.op]} version for {exp.tag} (ticket {seq})",
            )
            continue
        if row[op_col] != exp.op:
            report.add(
                "wrong_operation",
                f"{where}: {_describe(row, schema, tag_of)}, expected {OPERATION_NAMES[exp.op]}",
            )
        differing = {
            c: (row[c], exp.values.get(c)) for c in tracked.columns if row[c] != exp.values.get(c)
        }
        if differing:
            report.add(
                "wrong_values",
                f"{where}: {_describe(row, schema, tag_of)} holds (recorded, real) {differing}",
            )
    for seq, row in matched.items():
        if seq not in wanted:
            report.add("unexpected_version", f"{where}: {_describe(row, schema, tag_of)}")

    if actual:
        # Independent of the log: the newest version is the live row, or a DELETE.
        last = actual[-1]
        if live_row is None:
            if last[op_col] != DELETE:
                report.add(
                    "latest_version_not_live_row",
                    f"{where}: the row is gone, its newest version is "
                    f"{_describe(last, schema, tag_of)}",
                )
        else:
            differing = [c for c in tracked.columns if last[c] != live_row[c]]
            if last[op_col] == DELETE or differing:
                report.add(
                    "latest_version_not_live_row",
                    f"{where}: {_describe(last, schema, tag_of)} differs from the live row "
                    f"in {differing or 'operation'}",
                )

    if not has_end:
        return
    end_col = schema.end_transaction_column
    for row, following in zip(actual, [*actual[1:], None]):
        wanted_end = None if following is None else following[tx_col]
        if row[end_col] != wanted_end:
            report.add(
                "end_transaction_id",
                f"{where}: {_describe(row, schema, tag_of)} has end_transaction_id "
                f"{row[end_col]}, the next version's transaction is {wanted_end}",
            )
    open_rows = [r for r in actual if r[end_col] is None]
    is_live = live_row is not None
    if is_live and len(open_rows) != 1:
        report.add(
            "open_versions",
            f"{where} (live): {len(open_rows)} open versions "
            f"{[_describe(r, schema, tag_of) for r in open_rows]}",
        )
    elif not is_live and (len(open_rows) > 1 or any(r[op_col] != DELETE for r in open_rows)):
        report.add(
            "open_versions",
            f"{where} (deleted): open versions {[_describe(r, schema, tag_of) for r in open_rows]}",
        )


def _check_live(
    report: Report,
    tracked: Tracked,
    live_rows: Mapping[Key, Mapping[str, Any]],
    final: Mapping[RowId, Mapping[str, Any]],
) -> None:
    """Self-check of the log: the replayed final state is what the live table holds."""
    for key, row in live_rows.items():
        model = final.get((tracked.name, key))
        if model is None:
            report.add("ground_truth_unknown_live_row", f"{tracked.name} {key}: {dict(row)}")
            continue
        differing = {c: (model.get(c), row[c]) for c in tracked.columns if model.get(c) != row[c]}
        if differing:
            report.add(
                "ground_truth_live_values_differ",
                f"{tracked.name} {key}: (replayed, live) {differing}",
            )
    for name, key in final:
        if name == tracked.name and key not in live_rows:
            report.add("ground_truth_row_missing_live", f"{tracked.name} {key}")
