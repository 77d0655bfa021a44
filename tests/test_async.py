"""Async SQLAlchemy end to end (SPEC §4, §5): an ``AsyncSession`` user gets what a sync user gets.

Every test runs once per database *and* async driver: aiosqlite; asyncpg and psycopg (async)
on PostgreSQL; aiomysql on MySQL/MariaDB. The synchronous ``versioned`` fixture builds the
models (``support_async``) and creates the tables on the test's database; ``async_engine``
points at the same database through the async driver. Each test body is a coroutine run
with ``asyncio.run`` (``run()`` below), which disposes the async engine inside its loop.
"""

from __future__ import annotations

import asyncio
import datetime
import re
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import relationship, selectinload
from test_dialects import typed_key_models

from conftest import count_statements, selected_databases
from sqlalchemy_history import Operation, version_class, versioning_manager
from sqlalchemy_history.reverter import ReverterException

# Tests that show the error of a synchronous query in async code leave the driver coroutine
# SQLAlchemy could not await behind; Python warns about it whenever it is collected.
pytestmark = pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")

INSERT, UPDATE, DELETE = int(Operation.INSERT), int(Operation.UPDATE), int(Operation.DELETE)

#: Async drivers per database of the suite (``conftest.selected_databases``).
ASYNC_DRIVERS = {
    "sqlite": ["aiosqlite"],
    "postgresql": ["asyncpg", "psycopg"],
    "mysql": ["aiomysql"],
}


def _targets() -> list[Any]:
    return [
        pytest.param((db, driver), id=f"{db}-{driver}")
        for db in selected_databases()
        for driver in ASYNC_DRIVERS[db]
    ]


@pytest.fixture(params=_targets())
def async_target(request: pytest.FixtureRequest) -> tuple[str, str]:
    return request.param


@pytest.fixture
def db_name(async_target: tuple[str, str]) -> str:
    """Narrow conftest's ``engine``/``versioned`` to the database of ``async_target``."""
    return async_target[0]


@pytest.fixture
def async_engine(async_target: tuple[str, str], engine: sa.Engine) -> Any:
    """An ``AsyncEngine`` on the test's database through the async driver of the param.

    The pool is large enough for the concurrency test (10 + 10 overflow connections, other
    tasks wait for one); SQLite writers wait for the file lock instead of failing, and
    MySQL/MariaDB give up on a row lock after 5 s so that a blocked writer fails quickly.
    """
    pytest.importorskip("greenlet")
    _, driver = async_target
    pytest.importorskip(driver)
    from sqlalchemy.ext.asyncio import create_async_engine

    url = engine.url.set(drivername=f"{engine.url.get_backend_name()}+{driver}")
    options: dict[str, Any] = {}
    if engine.dialect.name == "sqlite":
        options["connect_args"] = {"timeout": 60}
    else:
        options.update(pool_size=10, max_overflow=10, pool_timeout=60)
        if engine.dialect.name in ("mysql", "mariadb"):
            options["connect_args"] = {"init_command": "SET SESSION innodb_lock_wait_timeout = 5"}
    return create_async_engine(url, **options)


def run(async_engine: Any, main: Callable[[], Any]) -> Any:
    """Run ``main()`` in a fresh event loop; dispose the engine's connections inside it."""

    async def go() -> Any:
        try:
            return await main()
        finally:
            await async_engine.dispose()

    return asyncio.run(go())


def sessionmaker(async_engine: Any) -> Any:
    from sqlalchemy.ext.asyncio import async_sessionmaker

    # expire_on_commit=False: reading an expired attribute would be lazy I/O.
    return async_sessionmaker(async_engine, expire_on_commit=False)


def models(Base):
    article_tag = sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column("article_id", sa.ForeignKey("article.id"), primary_key=True),
        sa.Column("tag_id", sa.ForeignKey("tag.id"), primary_key=True),
    )

    class Category(Base):
        __versioned__ = {}
        __tablename__ = "category"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)
        category_id = sa.Column(sa.ForeignKey("category.id"))
        category = relationship(Category)
        tags = relationship(Tag, secondary=article_tag, order_by=Tag.id)

    return locals()


@pytest.fixture
def v(versioned):
    return versioned(models, options={"support_async": True})


async def tx_id(session: Any) -> int:
    """Id of the transaction row of ``session``'s current transaction (public API)."""
    return await session.run_sync(
        lambda s: int(versioning_manager.unit_of_work(s).current_transaction.id)
    )


# -- reading ---------------------------------------------------------------------------


def test_seed_example_flow(v, async_engine):
    """The seed's async example: write_only ``versions``, revert, ``await session.commit()``."""
    Session = sessionmaker(async_engine)

    async def main() -> None:
        async with Session() as session:
            article = v.Article(name="Some article", content="Some content")
            session.add(article)
            await session.commit()
            assert isinstance(article.versions, sa.orm.WriteOnlyCollection)
            versions = (await session.scalars(article.versions.select())).all()
            assert [x.name for x in versions] == ["Some article"]
            article.name = "Updated name"
            await session.commit()
            versions = (await session.scalars(article.versions.select())).all()
            assert [(x.name, x.operation_type) for x in versions] == [
                ("Some article", INSERT),
                ("Updated name", UPDATE),
            ]
            # The parent is in the identity map: a plain revert() needs no query.
            assert versions[0].revert() is article
            await session.commit()
            assert article.name == "Some article"
            versions = (await session.scalars(article.versions.select())).all()
            assert [x.name for x in versions] == ["Some article", "Updated name", "Some article"]

    run(async_engine, main)


def test_traversal_changeset_and_their_async_forms(v, async_engine):
    Session = sessionmaker(async_engine)
    AV = version_class(v.Article)

    async def main() -> None:
        async with Session() as session:
            article = v.Article(name="a", content="x")
            session.add(article)
            await session.commit()
            for name in ("b", "c"):
                article.name = name
                await session.commit()
            first, second, third = (await session.scalars(article.versions.select())).all()

            assert await first.aindex == 0
            assert await third.aindex == 2
            assert await first.aprevious is None
            assert (await second.aprevious) is first
            assert (await second.anext) is third
            assert await third.anext is None
            assert await second.achangeset == {"name": ["a", "b"]}
            assert await first.achangeset == {
                "id": [None, article.id],
                "name": [None, "a"],
                "content": [None, "x"],
            }
            # AsyncAttrs style reaches every attribute, properties included.
            assert (await third.awaitable_attrs.previous) is second
            assert await third.awaitable_attrs.changeset == {"name": ["b", "c"]}
            assert [c.key for c in await third.awaitable_attrs.changes] == ["name"]
            assert (await second.awaitable_attrs.version_parent) is article
            transaction = await second.awaitable_attrs.transaction
            assert transaction.id == second.transaction_id

            # A plain property would need lazy I/O: the error names the awaitable form.
            for attribute, form in [
                ("previous", "aprevious"),
                ("next", "anext"),
                ("index", "aindex"),
                ("changeset", "achangeset"),
            ]:
                with pytest.raises(sa.exc.MissingGreenlet, match=form):
                    getattr(second, attribute)

            # Never stale: a version written later by another session is seen by anext
            # (in a new transaction: MySQL's REPEATABLE READ keeps the old snapshot).
            async with Session() as other:
                again = await other.get(v.Article, article.id)
                again.name = "d"
                await other.commit()
            await session.commit()
            fourth = await third.anext
            assert isinstance(fourth, AV)
            assert (fourth.name, await fourth.aindex) == ("d", 3)

    run(async_engine, main)


def test_detached_version_has_a_clear_error(v, async_engine):
    Session = sessionmaker(async_engine)

    async def main() -> None:
        async with Session() as session:
            article = v.Article(name="a")
            session.add(article)
            await session.commit()
            (version,) = (await session.scalars(article.versions.select())).all()
            session.expunge(version)
        with pytest.raises(sa.orm.exc.DetachedInstanceError, match="AsyncSession"):
            await version.aprevious
        with pytest.raises(sa.orm.exc.DetachedInstanceError, match="AsyncSession"):
            await version.arevert()

    run(async_engine, main)


# -- temporal relationships ----------------------------------------------------------------


async def _history_with_relations(v: Any, Session: Any) -> int:
    """Write three versions of one article: tags and category change between them.

    tx1: category News, tags [python]; tx2: News renamed World, tags [python, sqlalchemy];
    tx3: category Sports, tags [sqlalchemy]. Returns the article's id.
    """
    async with Session() as session:
        news, python = v.Category(name="News"), v.Tag(name="python")
        article = v.Article(name="a1", category=news, tags=[python])
        session.add(article)
        await session.commit()
        news.name = "World"
        alchemy = v.Tag(name="sqlalchemy")
        article.tags.append(alchemy)
        article.name = "a2"
        await session.commit()
        article.category = v.Category(name="Sports")
        article.tags.remove(python)
        article.name = "a3"
        await session.commit()
        return int(article.id)


EXPECTED_RELATIONS = [
    ("a1", "News", ["python"]),
    ("a2", "World", ["python", "sqlalchemy"]),
    ("a3", "Sports", ["sqlalchemy"]),
]


def test_temporal_relationships_load_eagerly_without_lazy_io(v, async_engine):
    Session = sessionmaker(async_engine)
    AV = version_class(v.Article)

    async def main() -> None:
        article_id = await _history_with_relations(v, Session)
        async with Session() as session:
            statement = (
                sa.select(AV)
                .where(AV.id == article_id)
                .order_by(AV.transaction_id)
                .options(
                    selectinload(AV.category),
                    selectinload(AV.tags),
                    selectinload(AV.transaction),
                )
            )
            with count_statements(async_engine.sync_engine) as counter:
                versions = (await session.scalars(statement)).all()
                seen = [(x.name, x.category.name, [t.name for t in x.tags]) for x in versions]
                issued = [x.transaction.issued_at for x in versions]
            assert seen == EXPECTED_RELATIONS
            assert all(issued)
            # One query for the page of versions, one per eagerly loaded relationship.
            assert counter.count == 4, counter.statements

        async with Session() as session:
            versions = (
                await session.scalars(
                    sa.select(AV).where(AV.id == article_id).order_by(AV.transaction_id)
                )
            ).all()
            # Not loaded: a plain access would be lazy I/O, which asyncio refuses (bare or
            # wrapped in StatementError, depending on where the driver needed to await).
            with pytest.raises(sa.exc.SQLAlchemyError, match="greenlet_spawn"):
                _ = versions[0].category
            seen = []
            for x in versions:
                category = await x.awaitable_attrs.category
                tags = await x.awaitable_attrs.tags
                seen.append((x.name, category.name, [t.name for t in tags]))
            assert seen == EXPECTED_RELATIONS

    run(async_engine, main)


# -- revert --------------------------------------------------------------------------------


def revert_with_relations(v: Any, async_engine: Any, delete_category: bool) -> None:
    """``arevert(relations=...)`` brings back deleted objects; the caller awaits commit."""
    Session = sessionmaker(async_engine)
    AV = version_class(v.Article)

    async def main() -> None:
        async with Session() as session:
            news, python, orm = v.Category(name="News"), v.Tag(name="python"), v.Tag(name="orm")
            article = v.Article(name="first", content="c", category=news, tags=[python, orm])
            session.add(article)
            await session.commit()
            ids = {"article": article.id, "news": news.id, "python": python.id, "orm": orm.id}
            # Later: the old category renamed, another category and tag, the old tag
            # deleted outright; then the article deleted (and maybe its old category).
            news.name = "World"
            article.category = v.Category(name="Sports")
            article.tags = [python, v.Tag(name="new")]
            await session.delete(orm)
            article.name = "second"
            await session.commit()
            await session.delete(article)
            if delete_category:
                await session.delete(news)
            await session.commit()

        async with Session() as session:
            first = (
                await session.scalars(
                    sa.select(AV).where(AV.id == ids["article"]).order_by(AV.transaction_id)
                )
            ).first()
            with pytest.raises(ReverterException, match="Article has no relationship 'nope'"):
                await first.arevert(relations=["nope"])
            # Nothing is in the identity map: a plain revert() would need lazy I/O.
            with pytest.raises(sa.exc.MissingGreenlet, match="arevert"):
                first.revert(relations=["category", "tags"])
            restored = await first.arevert(relations=["category", "tags"])
            assert isinstance(restored, v.Article)
            await session.commit()

        async with Session() as session:
            article = (
                await session.scalars(
                    sa.select(v.Article)
                    .where(v.Article.id == ids["article"])
                    .options(selectinload(v.Article.category), selectinload(v.Article.tags))
                )
            ).one()
            assert (article.name, article.content) == ("first", "c")
            assert (article.category.id, article.category.name) == (ids["news"], "News")
            assert [(t.id, t.name) for t in article.tags] == [
                (ids["python"], "python"),
                (ids["orm"], "orm"),
            ]
            # The revert itself is history: the article and the old tag came back.
            ops = [x.operation_type for x in await session.scalars(article.versions.select())]
            assert ops == [INSERT, UPDATE, DELETE, INSERT]
            TV = version_class(v.Tag)
            orm_ops = (
                await session.scalars(
                    sa.select(TV.operation_type)
                    .where(TV.id == ids["orm"])
                    .order_by(TV.transaction_id)
                )
            ).all()
            assert orm_ops == [INSERT, DELETE, INSERT]

    run(async_engine, main)


def test_revert_with_relations_in_an_async_session(v, async_engine):
    revert_with_relations(v, async_engine, delete_category=False)


def test_revert_recreates_a_deleted_many_to_one_target(v, async_engine):
    # Regression: reading history during the revert autoflushed the recreated article
    # before its recreated category was back (a foreign key violation where enforced).
    revert_with_relations(v, async_engine, delete_category=True)


def test_revert_to_a_delete_version_deletes(v, async_engine):
    Session = sessionmaker(async_engine)

    async def main() -> None:
        async with Session() as session:
            article = v.Article(name="a")
            session.add(article)
            await session.commit()
            article_id = article.id
            await session.delete(article)
            await session.commit()
            article = v.Article(id=article_id, name="again")
            session.add(article)
            await session.commit()
            versions = (await session.scalars(article.versions.select())).all()
            assert [x.operation_type for x in versions] == [INSERT, DELETE, INSERT]
            assert await versions[1].arevert() is None
            await session.commit()
            assert await session.get(v.Article, article_id) is None

    run(async_engine, main)


# -- recording: the async path writes what the sync path writes --------------------------------


def scenario_sync(v: Any, session: Any) -> None:
    """Commits, a rolled-back savepoint, a released one, a rolled-back transaction."""
    news, python, alchemy = v.Category(name="news"), v.Tag(name="python"), v.Tag(name="sa")
    a = v.Article(name="a0", content="c0", category=news, tags=[python])
    b = v.Article(name="b0")
    session.add_all([a, b, alchemy])
    session.commit()
    # The first versioned flush of this transaction happens in a savepoint rolled back.
    savepoint = session.begin_nested()
    a.name = "rolled back"
    b.content = "rolled back"
    session.flush()
    savepoint.rollback()
    a.name = "a1"
    session.flush()
    with session.begin_nested():
        b.name = "b1"
    session.commit()
    a.name = "never"
    session.flush()
    session.rollback()
    session.refresh(a, ["tags"])
    a.tags.append(alchemy)
    session.delete(b)
    savepoint = session.begin_nested()
    news.name = "rolled back"
    session.flush()
    savepoint.rollback()
    session.commit()


async def scenario_async(v: Any, session: Any) -> None:
    """``scenario_sync`` as an AsyncSession user writes it."""
    news, python, alchemy = v.Category(name="news"), v.Tag(name="python"), v.Tag(name="sa")
    a = v.Article(name="a0", content="c0", category=news, tags=[python])
    b = v.Article(name="b0")
    session.add_all([a, b, alchemy])
    await session.commit()
    savepoint = await session.begin_nested()
    a.name = "rolled back"
    b.content = "rolled back"
    await session.flush()
    await savepoint.rollback()
    a.name = "a1"
    await session.flush()
    async with session.begin_nested():
        b.name = "b1"
    await session.commit()
    a.name = "never"
    await session.flush()
    await session.rollback()
    await session.refresh(a, ["tags"])
    a.tags.append(alchemy)
    await session.delete(b)
    savepoint = await session.begin_nested()
    news.name = "rolled back"
    await session.flush()
    await savepoint.rollback()
    await session.commit()


HISTORY_TABLES = {
    "article_version": ["id", "transaction_id"],
    "category_version": ["id", "transaction_id"],
    "tag_version": ["id", "transaction_id"],
    "article_tag_version": ["article_id", "tag_id", "transaction_id"],
}


def history(v: Any) -> dict[str, Any]:
    found: dict[str, Any] = {name: v.rows(name, order) for name, order in HISTORY_TABLES.items()}
    found["transaction"] = [r["id"] for r in v.rows("transaction")]
    return found


def shapes(counter: Any) -> list[tuple[str, str]]:
    """Each statement as (verb, first table), e.g. ``("UPDATE", "article_version")``.

    Drivers differ in placeholders (``?``, ``%s``, ``$1::INTEGER``) but not in this.
    """
    found = []
    for statement in counter.statements:
        verb = statement.split(None, 1)[0].upper()
        table = re.search(r"(?:INTO|UPDATE|FROM)\s+[`\"]?(\w+)", statement, re.IGNORECASE)
        found.append((verb, table.group(1).lower() if table else ""))
    return found


def history_statements(counter: Any) -> dict[str, int]:
    insert_transaction = re.compile(r"\s*insert into [`\"]?transaction\b", re.IGNORECASE)
    return {
        "total": counter.count,
        "version tables": len(counter.matching("_version")),
        "transaction inserts": sum(1 for s in counter.statements if insert_transaction.match(s)),
    }


def test_async_path_records_exactly_what_the_sync_path_records(v, async_engine):
    # Sync first, on fresh tables.
    with count_statements(v.engine) as sync_counter, v.session(expire_on_commit=False) as s:
        scenario_sync(v, s)
    sync_history = history(v)
    # Fresh tables again (identity/auto-increment counters restart), then the async run.
    v.metadata.drop_all(v.engine)
    v.metadata.create_all(v.engine)
    Session = sessionmaker(async_engine)

    async def main() -> Any:
        async with async_engine.connect():
            pass  # the dialect's first-connect queries are not part of the comparison
        with count_statements(async_engine.sync_engine) as counter:
            async with Session() as session:
                await scenario_async(v, session)
        return counter

    async_counter = run(async_engine, main)
    async_history = history(v)

    print(f"statements sync {history_statements(sync_counter)}")
    print(f"statements async {history_statements(async_counter)}")
    assert async_history == sync_history
    assert history_statements(async_counter) == history_statements(sync_counter)
    assert shapes(async_counter) == shapes(sync_counter)
    # Transaction rows: tx1; tx2 twice (the first, written in the rolled-back savepoint, is
    # undone); the rolled-back transaction; tx3.
    assert history_statements(async_counter)["transaction inserts"] == 5
    # And it is the right history: tx ordinals 1 (insert), 2 (savepoint work), 3 (tags,
    # delete); the rolled-back transaction and savepoints left nothing.
    tx = {t: n for n, t in enumerate(async_history["transaction"], 1)}
    assert len(tx) == 3
    articles = [
        (r["name"], r["content"], tx[r["transaction_id"]], r["operation_type"])
        for r in async_history["article_version"]
    ]
    assert articles == [
        ("a0", "c0", 1, INSERT),
        ("a1", "c0", 2, UPDATE),
        ("b0", None, 1, INSERT),
        ("b1", None, 2, UPDATE),
        ("b1", None, 3, DELETE),
    ]
    assert [(r["name"], tx[r["transaction_id"]]) for r in async_history["category_version"]] == [
        ("news", 1)
    ]
    links = [
        (tx[r["transaction_id"]], r["operation_type"]) for r in async_history["article_tag_version"]
    ]
    assert sorted(links) == [(1, INSERT), (3, INSERT)]
    assert len(versioning_manager.units_of_work) == 0


# -- concurrency ---------------------------------------------------------------------------

TASKS = 50
UPDATES = 2


async def _task(v: Any, Session: Any, number: int, shared: dict[str, Any]) -> Any:
    """Insert an article, update it UPDATES times (one savepoint rolled back), delete it.

    Returns the article's id and its expected history: (transaction id, name, operation).
    ``shared["open"]`` counts the tasks inside an update transaction right now.
    """
    expected: list[tuple[int, str, int]] = []
    async with Session() as session:
        article = v.Article(name=f"t{number}-0", content=f"task {number}")
        session.add(article)
        await session.flush()
        expected.append((await tx_id(session), f"t{number}-0", INSERT))
        await session.commit()
        article_id = article.id
        # SQLite reuses the highest rowid once deleted: nobody deletes before all inserted.
        shared["inserted"] += 1
        if shared["inserted"] == TASKS:
            shared["everyone"].set()
        await shared["everyone"].wait()
        for k in range(1, UPDATES + 1):
            if k == 2:
                async with session.begin_nested() as savepoint:
                    article.name = "rolled back"
                    await session.flush()
                    await savepoint.rollback()
            article.name = f"t{number}-{k}"
            await session.flush()
            shared["open"] += 1  # this task's update transaction holds its rows now
            shared["most open"] = max(shared["most open"], shared["open"])
            expected.append((await tx_id(session), f"t{number}-{k}", UPDATE))
            await asyncio.sleep(0)  # let the other tasks' transactions interleave
            await session.commit()
            shared["open"] -= 1
        await session.delete(article)
        await session.flush()
        expected.append((await tx_id(session), f"t{number}-{UPDATES}", DELETE))
        await session.commit()
    return article_id, expected


def test_concurrent_tasks_on_one_engine_keep_their_transactions_apart(v, async_engine):
    Session = sessionmaker(async_engine)

    shared: dict[str, Any] = {"inserted": 0, "open": 0, "most open": 0}

    async def main() -> list[Any]:
        shared["everyone"] = asyncio.Event()
        return list(await asyncio.gather(*(_task(v, Session, n, shared) for n in range(TASKS))))

    started = time.perf_counter()
    results = run(async_engine, main)
    elapsed = time.perf_counter() - started
    print(
        f"{TASKS} tasks x {UPDATES + 2} commits: {elapsed:.2f}s, {shared['most open']} open at once"
    )
    if async_engine.dialect.name != "sqlite":  # SQLite: one writing transaction at a time
        assert shared["most open"] > 1  # the transactions did overlap

    commits = UPDATES + 2
    transactions = {r["id"] for r in v.rows("transaction")}
    rows = v.rows("article_version", ["id", "transaction_id"])
    assert len(transactions) == TASKS * commits
    # Every version's transaction row exists, and no transaction row is empty.
    assert {r["transaction_id"] for r in rows} == transactions
    per_task = [{tx for tx, _, _ in expected} for _, expected in results]
    assert all(len(s) == commits for s in per_task)
    assert len(set().union(*per_task)) == TASKS * commits  # no transaction shared

    by_article: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_article[row["id"]].append(row)
    assert len(by_article) == TASKS
    for number, (article_id, expected) in enumerate(results):
        assert {r["content"] for r in by_article[article_id]} == {f"task {number}"}
        got = [
            (r["transaction_id"], r["name"], r["operation_type"]) for r in by_article[article_id]
        ]
        assert sorted(got) == sorted(expected)
        # Validity chain in commit order: each version closed by the next one.
        chain = [tx for tx, _, _ in expected]
        ends = {r["transaction_id"]: r["end_transaction_id"] for r in by_article[article_id]}
        assert [ends[tx] for tx in chain] == [*chain[1:], None]
    assert len(versioning_manager.units_of_work) == 0
    assert len(versioning_manager.session_connection_map) == 0


# -- composite key lists -------------------------------------------------------------------


def test_composite_keys_of_several_types_bind_through_the_driver(versioned, async_engine):
    """Composite key lists (dialects.py) bind through each async driver: on PostgreSQL one
    typed array per key column, which asyncpg and psycopg encode by the declared type."""
    v = versioned(typed_key_models, options={"support_async": True})
    Session = sessionmaker(async_engine)
    day = datetime.date(2024, 2, 29)
    keys = [
        (uuid.UUID(int=i % 3), f"c{i}", day + datetime.timedelta(days=i % 2)) for i in range(12)
    ]

    async def main() -> None:
        async with Session() as session:
            entries = [v.Entry(ledger=u, code=c, day=d, amount=1) for u, c, d in keys]
            session.add_all(entries)
            await session.commit()
            for entry in entries[::2]:
                entry.amount = 2
            await session.commit()
            for entry in entries[::3]:
                await session.delete(entry)
            await session.commit()

    run(async_engine, main)
    rows = v.rows("entry_version", ["ledger", "code", "day", "transaction_id"])
    tx1, tx2, tx3 = sorted({r["transaction_id"] for r in rows})
    by_key: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for r in rows:
        key = (r["ledger"], r["code"], r["day"])
        by_key[key].append((r["transaction_id"], r["operation_type"], r["end_transaction_id"]))
    assert set(by_key) == set(keys)
    for i, key in enumerate(keys):
        chain = [(tx1, INSERT)] + [(tx2, UPDATE)] * (i % 2 == 0) + [(tx3, DELETE)] * (i % 3 == 0)
        ends = [tx for tx, _ in chain[1:]] + [None]
        assert by_key[key] == [(tx, op, end) for (tx, op), end in zip(chain, ends)], key


# -- the example ---------------------------------------------------------------------------


def test_async_quickstart_example_prints_the_documented_results():
    pytest.importorskip("greenlet")
    pytest.importorskip("aiosqlite")
    example = Path(__file__).resolve().parent.parent / "examples" / "async_quickstart.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == [
        "versions[0].name: Some article",
        "versions[1].name: Updated name",
        "after revert: Some article",
        "index of the last version: 2",
        "its previous version's name: Updated name",
        "its changeset: {'name': ['Updated name', 'Some article']}",
        "restored after delete: Updated name",
        "operation types: [0, 1, 1, 2, 0]",
    ]
