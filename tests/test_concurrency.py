"""SPEC §3: several sessions and threads record at the same time without mixing their state.

Each thread has its own ``Session`` on the test's engine; every commit's transaction id is
noted (``unit_of_work(session).current_transaction``) so the history of each object can be
checked exactly: which versions, which values and which transaction wrote each one.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from sqlalchemy_history import Operation, versioning_manager

INSERT, UPDATE, DELETE = int(Operation.INSERT), int(Operation.UPDATE), int(Operation.DELETE)

THREADS = 8
COMMITS = 20


def models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)

    return locals()


def current_tx_id(session) -> int:
    transaction = versioning_manager.unit_of_work(session).current_transaction
    assert transaction is not None
    return int(transaction.id)


def lock_timeouts(engine: sa.Engine) -> None:
    """SQLite: let writers wait for each other (one writer at a time) instead of failing.

    MySQL/MariaDB: give up on a row lock after 5 s instead of 50, so that a blocked
    writer fails the test quickly.
    """
    if engine.dialect.name == "sqlite":
        statement = "PRAGMA busy_timeout = 30000"
    elif engine.dialect.name in ("mysql", "mariadb"):
        statement = "SET SESSION innodb_lock_wait_timeout = 5"
    else:
        return

    @sa.event.listens_for(engine, "connect")
    def _timeout(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(statement)
        cursor.close()

    engine.dispose()


def results_of(futures: list[Any]) -> list[Any]:
    """Return every result; re-raise the first real error (not a barrier broken by it)."""
    errors = [f.exception(timeout=120) for f in futures]
    real = [e for e in errors if e is not None and not isinstance(e, threading.BrokenBarrierError)]
    if real:
        raise real[0]
    return [f.result() for f in futures]


def worker(v, number: int, start: threading.Barrier) -> dict[str, Any]:
    try:
        return commits(v, number, start)
    except BaseException:
        start.abort()  # the other threads stop waiting for this one
        raise


def commits(v, number: int, start: threading.Barrier) -> dict[str, Any]:
    """Write COMMITS transactions; return the expected history of this thread's objects.

    Commit 0 inserts two articles; commits 1..COMMITS-2 update them (some touch only one,
    every fifth is preceded by a rolled-back flush); the last commit deletes the second
    article and updates the first.
    """
    expected: dict[str, list[tuple[int, str, Any, int]]] = {"a": [], "b": []}
    tx_ids: list[int] = []
    start.wait(timeout=30)
    with v.session() as session:
        a = v.Article(name=f"t{number}-a-0", content="x")
        b = v.Article(name=f"t{number}-b-0")
        session.add_all([a, b])
        session.flush()
        tx_ids.append(current_tx_id(session))
        session.commit()
        ids = {"a": a.id, "b": b.id}
        # SQLite reuses the highest rowid once it is deleted: no thread deletes before
        # every thread has inserted, so that each id names one object.
        start.wait(timeout=60)
        expected["a"].append((tx_ids[-1], f"t{number}-a-0", "x", INSERT))
        expected["b"].append((tx_ids[-1], f"t{number}-b-0", None, INSERT))
        b_content = None
        for k in range(1, COMMITS - 1):
            if k % 5 == 0:
                a.name = "rolled back"
                b.content = "rolled back"
                session.flush()
                session.rollback()
            a.name = f"t{number}-a-{k}"
            session.flush()
            if k % 2 == 0:
                b_content = f"t{number}-b-{k}"
                b.content = b_content
                session.flush()
            tx_ids.append(current_tx_id(session))
            session.commit()
            expected["a"].append((tx_ids[-1], f"t{number}-a-{k}", "x", UPDATE))
            if k % 2 == 0:
                expected["b"].append((tx_ids[-1], f"t{number}-b-0", b_content, UPDATE))
        a.name = f"t{number}-a-last"
        session.delete(b)
        session.flush()
        tx_ids.append(current_tx_id(session))
        session.commit()
        expected["a"].append((tx_ids[-1], f"t{number}-a-last", "x", UPDATE))
        expected["b"].append((tx_ids[-1], f"t{number}-b-0", b_content, DELETE))
    return {"tx_ids": tx_ids, "ids": ids, "expected": expected}


def test_threads_record_at_the_same_time(versioned):
    v = versioned(models)
    lock_timeouts(v.engine)
    start = threading.Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(worker, v, n, start) for n in range(THREADS)]
        results = results_of(futures)

    all_tx = set(r["id"] for r in v.rows("transaction"))
    rows = v.rows("article_version", ["id", "transaction_id"])
    # Every version row belongs to a recorded transaction, and no transaction is empty.
    assert {r["transaction_id"] for r in rows} == all_tx
    assert len(all_tx) == THREADS * COMMITS

    per_thread = [set(r["tx_ids"]) for r in results]
    assert all(len(s) == COMMITS for s in per_thread)
    assert len(set().union(*per_thread)) == THREADS * COMMITS  # no transaction shared

    history: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        history[row["id"]].append(row)
    assert len(history) == 2 * THREADS
    for result in results:
        for which in ("a", "b"):
            object_rows = history[result["ids"][which]]
            got = [
                (r["transaction_id"], r["name"], r["content"], r["operation_type"])
                for r in object_rows
            ]
            expected = result["expected"][which]
            assert sorted(got) == sorted(expected)
            # Validity chain in commit order: each version closed by the next one.
            by_tx = {r["transaction_id"]: r for r in object_rows}
            chain = [tx for tx, *_ in expected]
            for earlier, later in zip(chain, chain[1:]):
                assert by_tx[earlier]["end_transaction_id"] == later
            assert by_tx[chain[-1]]["end_transaction_id"] is None

    assert len(versioning_manager.units_of_work) == 0
    assert len(versioning_manager.session_connection_map) == 0


# -- two sessions interleaved in one thread ---------------------------------------------------


@pytest.fixture
def second_engine(engine, tmp_path):
    """An engine for session B that may write while session A's transaction is open.

    SQLite allows one writer per database file, so there B uses a second file with the same
    schema (and the test still checks that A's and B's recording stay apart); elsewhere B
    uses the same database through its own engine.
    """
    if engine.dialect.name == "sqlite":
        other = sa.create_engine(f"sqlite:///{tmp_path / 'second.db'}")
    else:
        other = sa.create_engine(engine.url)
    lock_timeouts(engine)
    lock_timeouts(other)
    yield other
    other.dispose()


def two_articles(v, engine: sa.Engine) -> tuple[int, int]:
    with sa.orm.Session(engine) as session:
        x, y = v.Article(name="x0"), v.Article(name="y0")
        session.add_all([x, y])
        session.commit()
        return x.id, y.id


def history_of(engine: sa.Engine, v) -> tuple[list[dict[str, Any]], list[int]]:
    table = v.version_table("article_version")
    tx_table = v.version_table("transaction")
    with engine.connect() as conn:
        rows = [
            dict(r)
            for r in conn.execute(
                sa.select(table).order_by(table.c.transaction_id, table.c.id)
            ).mappings()
        ]
        txs = list(conn.execute(sa.select(tx_table.c.id).order_by(tx_table.c.id)).scalars())
    return rows, txs


@pytest.mark.parametrize("a_commits", [True, False], ids=["a-commits", "b-commits"])
def test_two_sessions_interleaved_in_one_thread(versioned, second_engine, a_commits):
    v = versioned(models)
    same_database = second_engine.url == v.engine.url
    if not same_database:
        v.metadata.create_all(second_engine)
    x_id, y_id = two_articles(v, v.engine)
    if not same_database:
        assert two_articles(v, second_engine) == (x_id, y_id)

    session_a = sa.orm.Session(v.engine)
    session_b = sa.orm.Session(second_engine)
    try:
        session_a.get(v.Article, x_id).name = "x by A"
        session_a.add(v.Article(name="new by A"))
        session_a.flush()
        session_b.get(v.Article, y_id).name = "y by B"
        session_b.add(v.Article(name="new by B"))
        session_b.flush()
        session_a.get(v.Article, x_id).content = "A again"
        session_a.flush()
        session_b.get(v.Article, y_id).content = "B again"
        session_b.flush()
        a_tx = current_tx_id(session_a)
        b_tx = current_tx_id(session_b)
        assert a_tx != b_tx or not same_database
        if a_commits:
            session_a.commit()
            session_b.rollback()
        else:
            session_b.commit()
            session_a.rollback()
    finally:
        session_a.close()
        session_b.close()

    winner_engine, loser_engine = (
        (v.engine, second_engine) if a_commits else (second_engine, v.engine)
    )
    winner_tx, mark = (a_tx, "A") if a_commits else (b_tx, "B")
    touched_id = x_id if a_commits else y_id
    touched_name = "x by A" if a_commits else "y by B"

    rows, txs = history_of(winner_engine, v)
    first_tx = txs[0]
    assert txs == [first_tx, winner_tx]
    last = [r for r in rows if r["transaction_id"] == winner_tx]
    assert sorted((r["name"], r["content"], r["operation_type"]) for r in last) == sorted(
        [(touched_name, f"{mark} again", UPDATE), (f"new by {mark}", None, INSERT)]
    )
    first = {r["id"]: r for r in rows if r["transaction_id"] == first_tx}
    assert first[touched_id]["end_transaction_id"] == winner_tx
    untouched = y_id if a_commits else x_id
    assert first[untouched]["end_transaction_id"] is None

    if not same_database:
        loser_rows, loser_txs = history_of(loser_engine, v)
        assert len(loser_txs) == 1
        assert [(r["operation_type"], r["end_transaction_id"]) for r in loser_rows] == [
            (INSERT, None),
            (INSERT, None),
        ]
    assert len(versioning_manager.units_of_work) == 0
    assert len(versioning_manager.session_connection_map) == 0
