"""as_of, the audit log, diffs and retention from an AsyncSession (SPEC §6a, docs/async.md):
the async forms run the sync core in the session's greenlet and answer exactly the same.

Every test runs per database and async driver (fixtures of tests/test_async.py); the
history is written with the sync session of the ``versioned`` fixture, then read and
changed through the async driver.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
import test_async
from history_scenarios import EXPECTED, blog, record, snapshot
from sqlalchemy.orm import selectinload
from test_audit import expected_log, flat

from sqlalchemy_history import (
    RetentionResult,
    achanges,
    adiff,
    aobject_as_of,
    aprune,
    apurge,
    aredact,
    as_of,
    version_class,
)

pytestmark = test_async.pytestmark

# The async fixtures of tests/test_async.py, for this module too.
async_target = test_async.async_target
db_name = test_async.db_name
async_engine = test_async.async_engine


@pytest.fixture
def v(versioned):
    return versioned(blog, options={"support_async": True})


def test_as_of_eager_and_awaited_relationships(v, async_engine):
    recorded = record(v)
    AV = version_class(v.Article)
    Session = test_async.sessionmaker(async_engine)

    async def main() -> None:
        for step, expected in EXPECTED.items():
            async with Session() as session:
                statement = as_of(v.Article, recorded[step]).options(
                    selectinload(AV.category), selectinload(AV.tags), selectinload(AV.comments)
                )
                rows = (await session.scalars(statement)).all()
                assert snapshot(rows) == expected, step
        async with Session() as session:
            row = await aobject_as_of(session, v.Article, 1, recorded["rename"])
            assert row.transaction_id == recorded["create"]
            category = await row.awaitable_attrs.category  # a lazy load, as of "rename"
            assert category.name == "World"
            assert await aobject_as_of(session, v.Article, 2, recorded["delete"]) is None

    test_async.run(async_engine, main)


def test_audit_log(v, async_engine):
    recorded = record(v)
    Session = test_async.sessionmaker(async_engine)

    async def main() -> None:
        async with Session() as session:
            page = await achanges(session, limit=4)
            rest = await achanges(session, limit=4, cursor=page.next_cursor)
            assert flat(page) + flat(rest) == expected_log(recorded)
            tagged = await achanges(session, entities=[v.Tag], newest_first=True, limit=1)
            assert [e.id for e in tagged] == [recorded["retag"]]

    test_async.run(async_engine, main)


def test_diff_with_relations(v, async_engine):
    record(v)
    AV = version_class(v.Article)
    Session = test_async.sessionmaker(async_engine)

    async def main() -> None:
        async with Session() as session:
            first, last = (
                await session.scalars(sa.select(AV).where(AV.id == 1).order_by(AV.transaction_id))
            ).all()
            found = await adiff(first, last, relations=["comments", "category"])
            assert found.changeset == {"name": ["A1", "A1b"]}
            assert [c.body for c in found.relations["comments"].added] == ["first"]
            assert not found.relations["category"]  # same member (renamed, not replaced)

    test_async.run(async_engine, main)


def test_retention(v, async_engine):
    recorded = record(v)
    Session = test_async.sessionmaker(async_engine)

    async def main() -> list[RetentionResult]:
        async with Session() as session:
            results = [
                await aprune(session, v.Article, before=recorded["edit"]),
                await aredact(session, v.Article, ["email"], replacement="x"),
                await apurge(session, v.Tag, [1]),
            ]
            await session.commit()
            return results

    pruned, redacted, purged = test_async.run(async_engine, main)
    assert pruned == RetentionResult(
        versions={"article_version": 3, "article_tag_version": 2}, transactions=2
    )
    assert redacted.versions == {"article_version": 2}
    assert purged.versions == {"tag_version": 2, "article_tag_version": 1}
    assert {r["email"] for r in v.rows("article_version")} == {"x"}
    assert v.rows("tag_version") == []
