"""Issue 11, cases 1-6: each reproduced on its own, checked against the database.

Concurrency cases use two sessions interleaved deterministically in one thread (no sleeps):
a session's statements run only when the other holds no lock they would wait for. Tests
that need two open write transactions skip on databases that allow one at a time
(SQLite); case-specific behaviour is asked of the database (``capabilities.py``).

Each test failed on the code before the fix of its case.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session

from sqlalchemy_history import version_class, version_table
from sqlalchemy_history.plugins import ActivityPlugin, NullDeletePlugin, PropertyModTrackerPlugin

from .capabilities import Capabilities
from .conftest import workload_models
from .ground_truth import DELETE, INSERT, UPDATE
from .workload import Models, define


def history(engine: sa.Engine, table: sa.Table, *where: Any) -> list[dict[str, Any]]:
    """Version rows of ``table``'s rows matching ``where`` (on the version table), oldest
    transaction first."""
    version = version_table(table)
    query = (
        sa.select(version).where(*(w(version) for w in where)).order_by(version.c.transaction_id)
    )
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def by_id(key: Any) -> Any:
    return lambda version: version.c.id == key


def seed(engine: sa.Engine, models: Models, *articles: dict[str, Any], tags: int = 0) -> None:
    with Session(engine) as session:
        session.add_all(models.Tag(id=t, name=f"tag {t}") for t in range(1, tags + 1))
        session.flush()
        for values in articles:
            linked = [session.get(models.Tag, t) for t in values.pop("tags", [])]
            session.add(models.Article(tags=linked, **values))
        session.commit()


def open_versions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("end_transaction_id", "no column") is None]


def assert_chain(rows: list[dict[str, Any]]) -> None:
    """Validity: each version is closed by the next one's transaction, the last is open."""
    if not rows or "end_transaction_id" not in rows[0]:
        return
    ends = [r["end_transaction_id"] for r in rows]
    assert ends == [r["transaction_id"] for r in rows[1:]] + [None]


def requires_concurrent_writers(caps: Capabilities) -> None:
    if not caps.concurrent_write_transactions:
        pytest.skip(f"{caps.dialect} allows one writing transaction at a time")


# -- case 1: history order is commit order --------------------------------------------------


def test_history_order_is_commit_order_when_tx_id_taken_early(versioned, engine, caps, strategy):
    requires_concurrent_writers(caps)
    M = workload_models(versioned, strategy)
    seed(engine, M, {"id": 1, "name": "b0"}, {"id": 2, "name": "x0"})
    first, second = Session(engine), Session(engine)
    try:
        first.get(M.Article, 1).name = "b1"
        first.flush()  # the first session's transaction writes history now ...
        second.get(M.Article, 2).name = "x by second"
        second.commit()  # ... but the second one commits first,
        first.get(M.Article, 2).name = "x by first"
        first.commit()  # so the first session's change of row 2 is the newer one.
    finally:
        first.close()
        second.close()

    rows = history(engine, M.Article.__table__, by_id(2))
    assert [r["name"] for r in rows] == ["x0", "x by second", "x by first"]
    assert_chain(rows)
    with Session(engine) as session:
        versions = session.get(M.Article, 2).versions.all()
        assert [v.name for v in versions] == ["x0", "x by second", "x by first"]
        assert versions[-1].previous.name == "x by second"
        assert versions[1].next.name == "x by first"
        assert versions[-1].changeset["name"] == ["x by second", "x by first"]


# -- case 2: stale in-memory values --------------------------------------------------------


def stale_article(engine: sa.Engine, M: Models) -> tuple[Session, Any]:
    """Article 1 loaded by a session that keeps it across commits, then changed (``content``
    c0 -> c1) and committed by another session: the first session's object is stale."""
    seed(engine, M, {"id": 1, "name": "n0", "content": "c0", "rank": 0})
    session = Session(engine, expire_on_commit=False)
    article = session.get(M.Article, 1)
    session.commit()
    with Session(engine) as other:
        other.get(M.Article, 1).content = "c1"
        other.commit()
    assert article.content == "c0"  # stale in memory
    return session, article


def live_row(engine: sa.Engine, M: Models, key: Any) -> dict[str, Any]:
    table = M.Article.__table__
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(table).where(table.c.id == key)).mappings().one())


def assert_newest_version_is_live_row(engine: sa.Engine, M: Models) -> None:
    rows = history(engine, M.Article.__table__, by_id(1))
    live = live_row(engine, M, 1)
    newest = rows[-1]
    assert {c: newest[c] for c in live} == live
    assert_chain(rows)


def test_stale_value_not_recorded_in_single_flush(versioned, engine, strategy):
    M = workload_models(versioned, strategy)
    session, article = stale_article(engine, M)
    with session:
        article.name = "n1"
        session.commit()
    assert live_row(engine, M, 1)["content"] == "c1"
    assert_newest_version_is_live_row(engine, M)


def test_stale_value_not_recorded_in_multi_flush(versioned, engine, strategy):
    M = workload_models(versioned, strategy)
    session, article = stale_article(engine, M)
    with session:
        article.name = "n1"
        session.flush()
        article.rank = 1
        session.commit()
    assert live_row(engine, M, 1)["content"] == "c1"
    assert_newest_version_is_live_row(engine, M)


def test_stale_value_not_recorded_in_delete(versioned, engine, strategy):
    M = workload_models(versioned, strategy)
    session, article = stale_article(engine, M)
    with session:
        session.delete(article)
        session.commit()
    rows = history(engine, M.Article.__table__, by_id(1))
    assert [(r["operation_type"], r["content"]) for r in rows] == [
        (INSERT, "c0"),
        (UPDATE, "c1"),
        (DELETE, "c1"),
    ]
    assert_chain(rows)


@pytest.mark.parametrize(
    "plugin", [PropertyModTrackerPlugin, NullDeletePlugin, ActivityPlugin], ids=lambda p: p.__name__
)
def test_stale_value_not_recorded_with_plugin(versioned, engine, strategy, plugin):
    v = versioned(define, options={"strategy": strategy}, plugins=[plugin()])
    M = Models.of(v.models, v.Transaction)
    session, article = stale_article(engine, M)
    with session:
        article.name = "n1"
        session.commit()
    assert_newest_version_is_live_row(engine, M)


# -- case 3: delete and re-add in one flush keeps a many-to-many link ------------------------


def readd_linked_article(engine: sa.Engine, M: Models, flushes: int, loaded: bool) -> None:
    seed(engine, M, {"id": 1, "name": "a", "tags": [1]}, tags=1)
    with Session(engine) as session:
        article = session.get(M.Article, 1)
        if loaded:
            assert [t.id for t in article.tags] == [1]
        session.delete(article)
        if flushes == 2:
            session.flush()
        session.add(M.Article(id=1, name="again", tags=[session.get(M.Tag, 1)]))
        session.commit()


@pytest.mark.parametrize("loaded", [True, False], ids=["tags-loaded", "tags-not-loaded"])
@pytest.mark.parametrize("flushes", [1, 2], ids=["one-flush", "two-flushes"])
def test_delete_and_readd_keeps_m2m_link(versioned, engine, strategy, flushes, loaded):
    """Deleting an article and adding it back with the same key and tag: the link was
    removed and added again, it existed before and after, so its version is an UPDATE
    (as the article's is), never a DELETE of a link that exists."""
    M = workload_models(versioned, strategy)
    readd_linked_article(engine, M, flushes, loaded)
    rows = history(engine, M.article_tag, lambda v: v.c.article_id == 1)
    assert [r["operation_type"] for r in rows] == [INSERT, UPDATE]
    assert_chain(rows)
    articles = history(engine, M.Article.__table__, by_id(1))
    assert [r["operation_type"] for r in articles] == [INSERT, UPDATE]
    with Session(engine) as session:
        newest = session.get(M.Article, 1).versions.all()[-1]
        assert [t.id for t in newest.tags] == [1]


# -- case 4: rows committed after a transaction's snapshot (MariaDB) --------------------------


def snapshot_then(engine: sa.Engine, M: Models) -> Session:
    """A session whose transaction has read (InnoDB REPEATABLE READ: taken its snapshot)."""
    seed(engine, M, {"id": 1, "name": "other"})
    session = Session(engine)
    session.get(M.Article, 1)
    return session


def lock_and_update(session: Session, M: Models, key: int, name: str) -> None:
    """The job-queue pattern: SELECT ... FOR UPDATE sees rows committed after the snapshot."""
    query = sa.select(M.Article).where(M.Article.id == key).with_for_update()
    job = session.scalars(query.execution_options(populate_existing=True)).one()
    job.name = name
    session.commit()


def test_row_created_after_snapshot_then_updated_has_one_open_version(versioned, engine, caps):
    M = workload_models(versioned, "validity")
    session = snapshot_then(engine, M)
    with session:
        with Session(engine) as other:
            other.add(M.Article(id=2, name="queued"))
            other.commit()
        lock_and_update(session, M, 2, "done")
    rows = history(engine, M.Article.__table__, by_id(2))
    assert [(r["name"], r["operation_type"]) for r in rows] == [
        ("queued", INSERT),
        ("done", UPDATE),
    ]
    assert len(open_versions(rows)) == 1
    assert_chain(rows)


def test_key_recreated_after_snapshot_has_one_open_version(versioned, engine, caps):
    M = workload_models(versioned, "validity")
    session = snapshot_then(engine, M)
    with session:
        with Session(engine) as other:
            other.add(M.Article(id=2, name="short-lived"))
            other.commit()
            other.delete(other.get(M.Article, 2))
            other.commit()
        session.add(M.Article(id=2, name="again"))
        session.commit()
    rows = history(engine, M.Article.__table__, by_id(2))
    assert [r["operation_type"] for r in rows] == [INSERT, DELETE, INSERT]
    assert len(open_versions(rows)) == 1
    assert_chain(rows)


# -- case 5: primary key update -------------------------------------------------------------


@pytest.mark.parametrize("also_changed", [False, True], ids=["key-only", "key-and-name"])
def test_primary_key_update_chain(versioned, engine, strategy, also_changed):
    """Changing a primary key ends the old key's history with a DELETE version and starts
    the new key's with an INSERT version, both in the changing transaction."""
    M = workload_models(versioned, strategy)
    seed(engine, M, {"id": 1, "name": "a", "content": "c"})
    with Session(engine) as session:
        article = session.get(M.Article, 1)
        article.id = 2
        if also_changed:
            article.name = "b"
        session.commit()
    old = history(engine, M.Article.__table__, by_id(1))
    new = history(engine, M.Article.__table__, by_id(2))
    assert [(r["operation_type"], r["name"], r["content"]) for r in old] == [
        (INSERT, "a", "c"),
        (DELETE, "a", "c"),
    ]
    name = "b" if also_changed else "a"
    assert [(r["operation_type"], r["name"], r["content"]) for r in new] == [(INSERT, name, "c")]
    assert new[0]["transaction_id"] == old[1]["transaction_id"]
    assert_chain(old)
    assert_chain(new)
    with Session(engine) as session:
        assert [v.operation_type for v in session.get(M.Article, 2).versions] == [INSERT]
        ArticleVersion = version_class(M.Article)
        gone = session.scalars(
            sa.select(ArticleVersion)
            .where(ArticleVersion.id == 1)
            .order_by(ArticleVersion.transaction_id)
        ).all()
        assert gone[-1].operation_type == DELETE
        assert gone[-1].version_parent is None


# -- case 6: keys the database compares case-insensitively or without trailing spaces --------


def coded(Base: type[DeclarativeBase]) -> dict[str, Any]:
    class Code(Base):
        __versioned__ = {}
        __tablename__ = "code"
        code = sa.Column(sa.String(20), primary_key=True)
        label = sa.Column(sa.String(20))

    return {"Code": Code}


@pytest.mark.parametrize("how", ["one-flush", "two-flushes", "key-change"])
@pytest.mark.parametrize(
    "old, new, comparison",
    [("Ab", "AB", "case-insensitive"), ("q", "q ", "trailing spaces ignored")],
    ids=["case", "trailing-space"],
)
def test_case_and_trailing_space_keys_mariadb(
    versioned, engine, caps, strategy, old, new, comparison, how
):
    """Where the database holds ``old`` and ``new`` to be the same key (MariaDB's default
    collations), replacing one by the other in a transaction is one row deleted and
    re-inserted: one UPDATE version carrying the new spelling, as without versioning the
    statements simply succeed."""
    case_insensitive, pad_space = caps.key_comparison
    if not (case_insensitive if comparison == "case-insensitive" else pad_space):
        pytest.skip(f"{engine.dialect.name} compares {old!r} and {new!r} as different keys")
    v = versioned(coded, options={"strategy": strategy})
    Code = v.Code
    with Session(engine) as session:
        session.add(Code(code=old, label="first"))
        session.commit()
    if how == "one-flush":
        # The ORM inserts new objects before it deletes others in one flush: the parent
        # INSERT of `new` hits `old`, which the database holds to be the same key. That is
        # the ORM's statement order (it happens without versioning), not history.
        with Session(engine) as session, pytest.raises(sa.exc.IntegrityError) as failed:
            session.delete(session.get(Code, old))
            session.add(Code(code=new, label="second"))
            session.flush()
        assert str(failed.value.statement).startswith("INSERT INTO code ")
        assert len(history(engine, Code.__table__, lambda version: version.c.code == old)) == 1
        return
    with Session(engine) as session:
        row = session.get(Code, old)
        if how == "key-change":
            row.code = new
            row.label = "second"
        else:
            session.delete(row)
            if how == "two-flushes":
                session.flush()
            session.add(Code(code=new, label="second"))
        session.commit()
    rows = history(engine, Code.__table__, lambda version: version.c.code == new)
    assert [(r["code"], r["label"], r["operation_type"]) for r in rows] == [
        (old, "first", INSERT),
        (new, "second", UPDATE),
    ]
    assert_chain(rows)
