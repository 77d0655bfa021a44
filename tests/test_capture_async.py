"""Bulk statements and cascades through an ``AsyncSession`` record what the sync path does.

Each test runs once per database and async driver (aiosqlite; asyncpg and psycopg on
PostgreSQL; aiomysql on MariaDB), with the fixtures of ``test_async``: the same scenario
runs on a sync ``Session`` and on an ``AsyncSession`` over fresh tables, and the version
tables read back must be equal.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import relationship
from test_async import (  # noqa: F401 - fixtures, used by name
    async_engine,
    async_target,
    db_name,
    run,
    sessionmaker,
)

from conftest import history, reset

pytestmark = pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")


def models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)
        comments = relationship("Comment", passive_deletes=True)

    class Comment(Base):
        __versioned__ = {}
        __tablename__ = "comment"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        article_id = sa.Column(sa.ForeignKey("article.id", ondelete="CASCADE"))
        text = sa.Column(sa.Unicode(50))

    return locals()


def foreign_keys_on(engine: sa.Engine) -> None:
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _on(dbapi_connection: Any, record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()


def steps(v) -> list[tuple[Any, Any]]:
    """The statements of the scenario, each committed on its own."""
    article = v.Article
    return [
        (sa.insert(article), [{"name": f"a{i}", "content": "c"} for i in range(4)]),
        (sa.insert(v.Comment), [{"article_id": 3, "text": f"t{i}"} for i in range(2)]),
        (sa.update(article).where(article.id >= 2).values(name="x"), None),
        (sa.update(article), [{"id": 1, "content": "k"}, {"id": 2, "content": "c"}]),
        (sa.delete(article).where(article.id == 3), None),
    ]


def test_async_bulk_statements_record_what_the_sync_path_records(versioned, async_engine):  # noqa: F811
    v = versioned(models, options={"support_async": True})
    foreign_keys_on(v.engine)
    foreign_keys_on(async_engine.sync_engine)
    v.engine.dispose()
    legacy = [{"id": 4, "content": "bulk"}]
    with v.session() as session:
        for statement, parameters in steps(v):
            session.execute(statement, parameters)
            session.commit()
        session.bulk_update_mappings(v.Article, legacy)
        session.commit()
    sync_history = history(v)
    reset(v)
    Session = sessionmaker(async_engine)

    async def main() -> None:
        async with Session() as session:
            for statement, parameters in steps(v):
                await session.execute(statement, parameters)
                await session.commit()
            # a legacy bulk method runs on the sync session behind the async one
            await session.run_sync(lambda s: s.bulk_update_mappings(v.Article, legacy))
            await session.commit()

    run(async_engine, main)
    async_history = history(v)
    assert async_history == sync_history
    articles = [dict(r) for r in sync_history["article_version"]]
    assert sorted((r["id"], r["operation_type"]) for r in articles) == [
        (1, 0),
        (1, 1),
        (2, 0),
        (2, 1),
        (3, 0),
        (3, 1),
        (3, 2),
        (4, 0),
        (4, 1),
        (4, 1),
    ]
    comments = [dict(r) for r in sync_history["comment_version"]]
    assert sorted(r["operation_type"] for r in comments) == [0, 0, 2, 2]
