"""The context API: ``versioning_context`` fills transaction rows, per thread and per task."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from conftest import count_statements
from sqlalchemy_history import ImproperlyConfigured, versioning_context
from sqlalchemy_history.context import current_context
from sqlalchemy_history.plugins import Plugin, TransactionMetaPlugin
from sqlalchemy_history.transaction import TransactionFactory

ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql"}


def models(Base):
    class User(Base):
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))

    return locals()


@pytest.fixture
def v(versioned):
    v = versioned(models, user_cls="User", plugins=[TransactionMetaPlugin()])
    with v.session() as session:
        session.add_all([v.User(name=f"user{i}") for i in range(1, 11)])
        session.commit()
    return v


def engine_options(dialect_name: str) -> dict:
    """Options for engines whose sessions write at the same time.

    SQLite allows one writer at a time: let writers wait for each other instead of failing.
    """
    if dialect_name == "sqlite":
        return {"connect_args": {"timeout": 60}}
    return {}


def concurrent_engine(v) -> sa.Engine:
    return sa.create_engine(v.engine.url, **engine_options(v.engine.dialect.name))


def transactions(v) -> dict[int, dict]:
    return {row["id"]: row for row in v.rows("transaction")}


def meta_of(v) -> dict[int, dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    for row in v.rows("transaction_meta"):
        found.setdefault(row["transaction_id"], {})[row["key"]] = row["value"]
    return found


# -- the API itself ----------------------------------------------------------------------


def test_nesting_merges_and_restores():
    assert not current_context()
    with versioning_context(user_id=1, meta={"a": "1", "b": "1"}) as outer:
        assert dict(outer.columns) == {"user_id": 1}
        with versioning_context(remote_addr="::1", meta={"b": "2"}) as inner:
            assert dict(inner.columns) == {"user_id": 1, "remote_addr": "::1"}
            assert dict(inner.meta) == {"a": "1", "b": "2"}
            assert current_context() == inner
            with versioning_context(user_id=None):
                assert current_context().columns["user_id"] is None
        assert current_context() == outer
    assert not current_context()


def test_decorator_for_functions_and_coroutines():
    @versioning_context(user_id=7)
    def sync_job():
        return dict(current_context().columns)

    @versioning_context(user_id=8, meta={"job": "async"})
    async def async_job():
        await asyncio.sleep(0)
        return dict(current_context().columns), dict(current_context().meta)

    assert sync_job() == {"user_id": 7}
    assert sync_job.__name__ == "sync_job"
    assert asyncio.run(async_job()) == ({"user_id": 8}, {"job": "async"})
    assert not current_context()


def test_async_with():
    async def main():
        async with versioning_context(user_id=3):
            return current_context().columns["user_id"]

    assert asyncio.run(main()) == 3


def test_one_instance_entered_by_many_threads():
    shared = versioning_context(user_id=5)
    start = threading.Barrier(8)

    @shared
    def job(n):
        start.wait(5)
        with versioning_context(meta={"n": str(n)}):
            return current_context().columns["user_id"], current_context().meta["n"]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(job, range(8))) == [(5, str(n)) for n in range(8)]


def test_exit_out_of_order_is_an_error():
    outer, inner = versioning_context(user_id=1), versioning_context(user_id=2)
    outer.__enter__()
    inner.__enter__()
    with pytest.raises(RuntimeError, match="innermost first"):
        outer.__exit__(None, None, None)
    inner.__exit__(None, None, None)
    outer.__exit__(None, None, None)
    assert not current_context()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"meta": {"attempt": 3}}, "attempt"),
        ({"meta": {1: "x"}}, "keys must be strings"),
        ({"id": 5}, "transaction id"),
    ],
)
def test_bad_values_are_rejected_at_once(kwargs, message):
    with pytest.raises(TypeError, match=message):
        versioning_context(**kwargs)


# -- filling transaction rows -------------------------------------------------------------


def test_fills_user_remote_addr_and_meta(v):
    with v.session() as session:
        user = session.get(v.User, 1)
        with versioning_context(user_id=1, remote_addr="192.0.2.7", meta={"reason": "edit"}):
            article = v.Article(name="a")
            session.add(article)
            session.commit()
        article.name = "outside"
        session.commit()
        inside, outside = [version.transaction for version in article.versions]
        assert (inside.user, inside.remote_addr, dict(inside.meta)) == (
            user,
            "192.0.2.7",
            {"reason": "edit"},
        )
        assert (outside.user_id, outside.remote_addr, dict(outside.meta)) == (None, None, {})


def test_context_costs_no_statement(v):
    def commit_articles():
        with v.session() as session:
            session.add_all([v.Article(name=str(i)) for i in range(10)])
            with count_statements(v.engine) as counter:
                session.commit()
        return counter.count

    plain = commit_articles()
    with versioning_context(user_id=2, remote_addr="10.1.1.1"):
        assert commit_articles() == plain
    assert [(t["user_id"], t["remote_addr"]) for t in transactions(v).values()] == [
        (None, None),
        (2, "10.1.1.1"),
    ]


def test_values_are_read_when_the_transaction_row_is_written(v):
    with v.session() as session:
        session.add(v.Article(name="a"))  # transaction begun, nothing flushed yet
        with versioning_context(user_id=3):
            session.flush()  # first versioned flush: the row is written now
        with versioning_context(user_id=4):
            session.add(v.Article(name="b"))
            session.commit()  # same transaction row: already written
    assert [t["user_id"] for t in transactions(v).values()] == [3]


def test_explicit_values_on_create_transaction_win(v):
    with v.session() as session, versioning_context(user_id=1, remote_addr="10.0.0.1"):
        session.add(v.Article(name="a"))
        tx = v.manager.unit_of_work(session).create_transaction(session)
        assert (tx.user_id, tx.remote_addr) == (1, "10.0.0.1")
        tx.user_id = 2
        session.commit()
    assert [(t["user_id"], t["remote_addr"]) for t in transactions(v).values()] == [(2, "10.0.0.1")]


def test_none_for_a_missing_column_is_fine(versioned):
    v = versioned(models, user_cls=None)
    with v.session() as session, versioning_context(user_id=None, remote_addr="::1"):
        session.add(v.Article(name="a"))
        session.commit()
    assert [t["remote_addr"] for t in transactions(v).values()] == ["::1"]


def test_context_wins_over_plugin_transaction_args(versioned):
    class RemoteAddr(Plugin):
        def transaction_args(self, uow, session):
            return {"remote_addr": "from-plugin"}

    v = versioned(models, user_cls="User", plugins=[RemoteAddr()])
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.commit()
        with versioning_context(remote_addr="from-context"):
            session.add(v.Article(name="b"))
            session.commit()
    assert [t["remote_addr"] for t in transactions(v).values()] == ["from-plugin", "from-context"]


@pytest.mark.parametrize(
    "kwargs, setup, message",
    [
        ({"user_id": 1}, {"user_cls": None}, "user_cls"),
        ({"remote_addr": "x"}, {"transaction_cls": False}, "remote_addr"),
        ({"meta": {"a": "b"}}, {"plugins": []}, "TransactionMetaPlugin"),
        ({"nope": 1}, {}, "'nope'"),
    ],
    ids=["user-without-user-cls", "remote-addr-without-column", "meta-without-plugin", "unknown"],
)
def test_missing_feature_is_a_clear_error(versioned, kwargs, setup, message):
    def define(Base):
        if setup.get("transaction_cls") is False:
            from sqlalchemy_history import versioning_manager

            versioning_manager.transaction_cls = TransactionFactory(remote_addr=False)
        return models(Base)

    v = versioned(
        define,
        user_cls=setup.get("user_cls", "User"),
        plugins=setup.get("plugins", [TransactionMetaPlugin()]),
    )
    with v.session() as session, versioning_context(**kwargs):
        session.add(v.Article(name="a"))
        with pytest.raises(ImproperlyConfigured, match=message):
            session.commit()
        session.rollback()
    assert v.rows("article_version") == []
    assert v.rows("transaction") == []


# -- concurrency ----------------------------------------------------------------------------


def test_threads_never_see_each_others_context(v):
    engine = concurrent_engine(v)
    threads, commits = 6, 4
    start = threading.Barrier(threads)
    written: dict[int, list[int]] = {}

    def work(n: int) -> None:
        start.wait(10)
        ids = []
        # Thread 0 records without a context while the others have theirs.
        context = versioning_context(user_id=n, meta={"thread": str(n)}) if n else None
        for i in range(commits):
            with sa.orm.Session(engine) as session:
                if context is not None:
                    context.__enter__()
                try:
                    session.add(v.Article(name=f"{n}-{i}"))
                    session.flush()
                    ids.append(v.manager.unit_of_work(session).current_transaction.id)
                    session.commit()
                finally:
                    if context is not None:
                        context.__exit__(None, None, None)
        written[n] = ids

    try:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(work, range(threads)))
    finally:
        engine.dispose()
    rows, meta = transactions(v), meta_of(v)
    assert len(rows) == threads * commits
    for n, ids in written.items():
        assert [rows[i]["user_id"] for i in ids] == [n or None] * commits
        assert [meta.get(i) for i in ids] == [{"thread": str(n)} if n else None] * commits


def test_asyncio_tasks_never_see_each_others_context(v):
    backend = v.engine.dialect.name
    pytest.importorskip(ASYNC_DRIVERS[backend])
    from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

    url = v.engine.url.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}")
    tasks, commits = 5, 3

    async def work(engine, n: int, start: asyncio.Event) -> list[int]:
        await start.wait()
        ids = []
        for i in range(commits):
            async with AsyncSession(engine) as session:
                if n:
                    context = versioning_context(user_id=n, meta={"task": str(n)})
                    context.__enter__()
                session.add(v.Article(name=f"{n}-{i}"))
                await session.flush()
                tx = await session.run_sync(lambda s: v.manager.unit_of_work(s).current_transaction)
                ids.append(tx.id)
                await asyncio.sleep(0)  # let the other tasks run inside their contexts
                await session.commit()
                if n:
                    context.__exit__(None, None, None)
        return ids

    async def main() -> list[list[int]]:
        engine = create_async_engine(url, **engine_options(backend))
        start = asyncio.Event()
        try:
            running = [asyncio.create_task(work(engine, n, start)) for n in range(tasks)]
            start.set()
            return list(await asyncio.gather(*running))
        finally:
            await engine.dispose()

    written = asyncio.run(main())
    rows, meta = transactions(v), meta_of(v)
    assert len(rows) == tasks * commits
    for n, ids in enumerate(written):
        assert [rows[i]["user_id"] for i in ids] == [n or None] * commits
        assert [meta.get(i) for i in ids] == [{"task": str(n)} if n else None] * commits
