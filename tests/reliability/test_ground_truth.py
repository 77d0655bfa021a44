"""The checker itself: it passes a true history and names each kind of damage done to one.

A single writer (no concurrency, and without the operations of issue 11 that are broken
today) leaves a history that must check clean on every database and strategy. Then each
kind of damage is done to it inside a transaction, checked through that connection, and
rolled back: the checker must report exactly the expected kinds.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import sqlalchemy as sa

from .conftest import workload_models
from .ground_truth import (
    DELETE,
    INSERT,
    UPDATE,
    HistorySchema,
    Log,
    Report,
    Tracked,
    Write,
    check_history,
    replay,
)
from .workload import Models, RunResult, Settings, run_threads

#: Operations that move a row between keys: two transactions swapped by a damage test then
#: also show as versions missing under one key and unexpected under another, so the damage
#: tests leave them out to get one kind of anomaly per kind of damage.
MOVES_KEYS = frozenset({"primary key change", "re-insert in one flush"})


def serial_history(
    versioned: Any, engine: sa.Engine, strategy: str, without: frozenset[str] = frozenset()
) -> tuple[Models, RunResult]:
    models = workload_models(versioned, strategy)
    settings = Settings(writers=1, seconds=120, seed=5, transactions=40, without=without)
    return models, run_threads(engine, models, settings, strategy)


def test_a_single_writer_leaves_true_history(versioned, prepared_engine, strategy):
    _, result = serial_history(versioned, prepared_engine, strategy)
    assert not result.crashed, result.summary()
    assert result.stats.commits == 40 - result.stats.rollbacks
    assert result.report.versions > 100
    assert result.report.ok, result.summary()


# -- damage ---------------------------------------------------------------------------


def _versions_of_a_row(conn: sa.Connection, schema: HistorySchema, count: int) -> list[Any]:
    """Versions (oldest first) of an article with at least ``count`` versions."""
    version = schema.table("article").version
    counts = (
        sa.select(version.c.id)
        .group_by(version.c.id)
        .having(sa.func.count() >= count)
        .order_by(version.c.id)
    )
    article_id = conn.scalars(counts).first()
    assert article_id is not None, f"no article has {count} versions"
    query = sa.select(version).where(version.c.id == article_id)
    return list(conn.execute(query.order_by(version.c.transaction_id)).mappings())


def swap_two_transactions(conn, schema, log):
    """Swap the tags of two transactions that wrote the same row: out of commit order."""
    first, second = _versions_of_a_row(conn, schema, 3)[1:3]
    tx = schema.transaction
    tags = {
        r.id: r.remote_addr
        for r in conn.execute(
            sa.select(tx).where(tx.c.id.in_([first.transaction_id, second.transaction_id]))
        )
    }
    for tx_id, other in ((first.transaction_id, second), (second.transaction_id, first)):
        conn.execute(
            tx.update().where(tx.c.id == tx_id).values(remote_addr=tags[other.transaction_id])
        )


def delete_a_middle_version(conn, schema, log):
    middle = _versions_of_a_row(conn, schema, 3)[1]
    version = schema.table("article").version
    conn.execute(
        version.delete().where(
            version.c.id == middle.id, version.c.transaction_id == middle.transaction_id
        )
    )


def change_a_recorded_value(conn, schema, log):
    first = _versions_of_a_row(conn, schema, 2)[0]
    version = schema.table("article").version
    conn.execute(
        version.update()
        .where(version.c.id == first.id, version.c.transaction_id == first.transaction_id)
        .values(name="not what was written")
    )


def change_an_operation(conn, schema, log):
    first = _versions_of_a_row(conn, schema, 2)[0]
    assert first.operation_type == INSERT
    version = schema.table("article").version
    conn.execute(
        version.update()
        .where(version.c.id == first.id, version.c.transaction_id == first.transaction_id)
        .values(operation_type=UPDATE)
    )


def reopen_a_closed_version(conn, schema, log):
    first = _versions_of_a_row(conn, schema, 2)[0]
    version = schema.table("article").version
    conn.execute(
        version.update()
        .where(version.c.id == first.id, version.c.transaction_id == first.transaction_id)
        .values(end_transaction_id=None)
    )


def add_an_empty_transaction(conn, schema, log):
    conn.execute(schema.transaction.insert().values(remote_addr="nobody wrote this"))


def add_a_rolled_back_transaction(conn, schema, log):
    conn.execute(schema.transaction.insert().values(remote_addr="gone"))
    log.rollback("gone")


def change_a_live_row_behind_the_logs_back(conn, schema, log):
    article = schema.table("article").parent
    key = conn.scalars(sa.select(article.c.id).order_by(article.c.id)).first()
    conn.execute(article.update().where(article.c.id == key).values(name="edited by hand"))


def log_an_impossible_write(conn, schema, log):
    log.record("made up", [Write.update("article", (-1,), name="x")])


def log_a_commit_that_left_no_trace(conn, schema, log):
    article = schema.table("article").parent
    key = conn.scalars(sa.select(article.c.id).order_by(article.c.id)).first()
    log.record("lost", [Write.update("article", (key,), name="never written")])


#: (damage, kinds the checker must report, kinds it may report too, validity strategy only)
DAMAGE: list[tuple[Callable[..., None], set[str], set[str], bool]] = [
    (swap_two_transactions, {"order"}, {"wrong_values", "end_transaction_id"}, False),
    # Also "empty_transaction" when the transaction wrote only that row.
    (
        delete_a_middle_version,
        {"missing_version"},
        {"end_transaction_id", "empty_transaction"},
        False,
    ),
    (change_a_recorded_value, {"wrong_values"}, set(), False),
    (change_an_operation, {"wrong_operation"}, set(), False),
    (reopen_a_closed_version, {"end_transaction_id", "open_versions"}, set(), True),
    (add_an_empty_transaction, {"unknown_transaction", "empty_transaction"}, set(), False),
    (add_a_rolled_back_transaction, {"rolled_back_transaction", "empty_transaction"}, set(), False),
    (
        change_a_live_row_behind_the_logs_back,
        {"ground_truth_live_values_differ", "latest_version_not_live_row"},
        set(),
        False,
    ),
    (
        log_an_impossible_write,
        {"ground_truth_inconsistent"},
        {"missing_version", "missing_transaction"},
        False,
    ),
    (
        log_a_commit_that_left_no_trace,
        {"missing_version", "missing_transaction", "ground_truth_live_values_differ"},
        {"end_transaction_id"},
        False,
    ),
]


def test_checker_names_each_kind_of_damage(versioned, prepared_engine, strategy):
    models, result = serial_history(versioned, prepared_engine, strategy, MOVES_KEYS)
    assert result.report.ok, result.summary()
    schema = models.schema()
    wrong = []
    for damage, must, may, validity_only in DAMAGE:
        if validity_only and strategy != "validity":
            continue
        log = result.log.copy()
        with prepared_engine.connect() as conn, conn.begin() as transaction:
            damage(conn, schema, log)
            report = check_history(conn, schema, log)
            transaction.rollback()
        if not must <= set(report.counts) <= must | may:
            wrong.append(
                f"{damage.__name__}: expected {sorted(must)} (and maybe {sorted(may)}), "
                f"got\n{report.summary()}"
            )
    assert not wrong, "\n".join(wrong)
    # And nothing was left behind.
    assert check_history(prepared_engine, schema, result.log).ok


def test_replay_folds_operations_per_transaction():
    """Insert + update is one INSERT, delete + insert one UPDATE, insert + delete one DELETE
    (SPEC §3); a key change is a DELETE of the old key and an INSERT of the new one."""
    meta = sa.MetaData()
    table = sa.Table(
        "t", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String)
    )
    schema = HistorySchema((Tracked("t", table, table, ("id",), ("v",)),), table)
    log = Log()
    log.record("a", [Write.insert("t", (1,), v="a"), Write.update("t", (1,), v="b")])
    log.record("b", [Write.delete("t", (1,)), Write.insert("t", (1,), v="c")])
    log.record("c", [Write.insert("t", (2,), v="x"), Write.delete("t", (2,))])
    log.record("d", [Write.rekey("t", (1,), (3,), v="d")])
    report = Report()
    expected, final = replay(log, schema, report)
    assert report.ok
    assert [(e.tag, e.op, e.values) for e in expected[("t", (1,))]] == [
        ("a", INSERT, {"v": "b"}),
        ("b", UPDATE, {"v": "c"}),
        ("d", DELETE, {"v": "c"}),
    ]
    assert [(e.tag, e.op, e.values) for e in expected[("t", (2,))]] == [("c", DELETE, {"v": "x"})]
    assert [(e.tag, e.op, e.values) for e in expected[("t", (3,))]] == [("d", INSERT, {"v": "d"})]
    assert final == {("t", (3,)): {"v": "d"}}


@pytest.mark.parametrize(
    "writes, problem",
    [
        ([Write.update("t", (9,), v="x")], "update of an absent row"),
        ([Write.insert("t", (1,)), Write.insert("t", (1,))], "insert of an existing row"),
        ([Write.delete("t", (9,))], "delete of an absent row"),
    ],
)
def test_replay_reports_writes_that_cannot_have_happened(writes, problem):
    meta = sa.MetaData()
    table = sa.Table(
        "t", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String)
    )
    schema = HistorySchema((Tracked("t", table, table, ("id",), ("v",)),), table)
    log = Log()
    log.record("x", writes)
    report = Report()
    replay(log, schema, report)
    assert report.counts == {"ground_truth_inconsistent": 1}
    assert problem in report.examples["ground_truth_inconsistent"][0]
