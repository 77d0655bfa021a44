"""``AsyncSession`` users: write_only ``versions``, awaitable traversal, revert.

These tests are ``async def``; the plugin runs them on the run's event loop through the
database's asyncio driver (asyncpg, aiomysql, aiosqlite ...), whatever the target's own
driver. Sync code (building models, reverting) goes through ``run_sync``/``greenlet_spawn``
exactly as an application's would. Sessions that keep objects across commits use
``expire_on_commit=False``, as SQLAlchemy's asyncio documentation recommends; what a test
checks after a commit is read back from the database.
"""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from ._helpers import INSERT, UPDATE, blog, pick, pk

__all__ = ["TestAsyncSession"]

ASYNC = {"support_async": True}


def async_articles(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = pk()
        name = sa.Column(sa.Unicode(255))

    return locals()


@pytest.mark.requires("asyncio")
@pytest.mark.requires("async_sessions")
class TestAsyncSession:
    @pytest.mark.requires("support_async_option")
    @pytest.mark.requires("async_traversal")
    async def test_versions_select_and_awaitable_traversal(self, conformance_models):
        m = await conformance_models.abuild(async_articles, options=ASYNC)
        async with m.async_session(expire_on_commit=False) as session:
            article = m.Article(name="a")
            session.add(article)
            await session.commit()
            article.name = "b"
            await session.commit()
            first, second = (await session.scalars(article.versions.select())).all()
            assert (first.name, second.name) == ("a", "b")
            assert (await first.anext).name == "b"
            assert (await second.aprevious).name == "a"
            assert await first.aprevious is None
            assert [await first.aindex, await second.aindex] == [0, 1]
        rows = await m.arows("article_version", ["transaction_id"])
        assert pick(rows, "name", "operation_type") == [("a", INSERT), ("b", UPDATE)]

    @pytest.mark.requires("support_async_option")
    async def test_revert_with_run_sync(self, conformance_models):
        m = await conformance_models.abuild(async_articles, options=ASYNC)
        async with m.async_session(expire_on_commit=False) as session:
            article = m.Article(name="a")
            session.add(article)
            await session.commit()
            article.name = "b"
            await session.commit()
            first = (await session.scalars(article.versions.select())).first()
            await session.run_sync(lambda _: first.revert())
            await session.commit()
            await session.refresh(article)  # read back from the database
            assert article.name == "a"
        rows = await m.arows("article_version", ["transaction_id"])
        assert [r["name"] for r in rows] == ["a", "b", "a"]

    @pytest.mark.requires("savepoints")
    @pytest.mark.requires("savepoint_rollback_bookkeeping")
    async def test_rolled_back_savepoint(self, conformance_models):
        m = await conformance_models.abuild(async_articles)
        async with m.async_session() as session:
            nested = await session.begin_nested()
            session.add(m.Article(name="gone"))
            await session.flush()
            await nested.rollback()
            session.add(m.Article(name="kept"))
            await session.commit()
        rows = await m.arows("article_version", ["transaction_id"])
        assert [r["name"] for r in rows] == ["kept"]
        assert len(await m.arows("transaction")) == 1

    @pytest.mark.requires("concurrent_transactions")
    async def test_concurrent_tasks_record_separately(self, history, conformance_models):
        m = await conformance_models.abuild(async_articles)

        async def write(n):
            async with m.async_session() as session:
                session.add(m.Article(name=f"a{n}"))
                await session.flush()
                await asyncio.sleep(0)  # let the other tasks flush inside their transactions
                await session.commit()

        await asyncio.gather(*(write(n) for n in range(4)))
        rows = await m.arows("article_version", ["transaction_id"])
        assert sorted(r["name"] for r in rows) == ["a0", "a1", "a2", "a3"]
        assert len({r["transaction_id"] for r in rows}) == 4
        assert len(await m.arows("transaction")) == 4
        assert len(history.versioning_manager.units_of_work) == 0

    @pytest.mark.requires("revert_relations")
    async def test_revert_relations_in_an_async_session(self, conformance_models):
        m = await conformance_models.abuild(blog)
        async with m.async_session() as session:
            article = m.Article(name="a", tags=[m.Tag(name="t1"), m.Tag(name="t2")])
            session.add(article)
            await session.commit()
            await session.run_sync(lambda _: setattr(article, "tags", [m.Tag(name="t3")]))
            await session.commit()

            def revert(sync_session):
                article.versions[0].revert(relations=["tags"])

            await session.run_sync(revert)
            await session.commit()
            names = await session.run_sync(lambda _: sorted(t.name for t in article.tags))
            assert names == ["t1", "t2"]
