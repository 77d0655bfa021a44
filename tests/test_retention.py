"""prune / purge / redact (SPEC §6a): set-based, every remaining chain valid, reads at or
after the pruning point unchanged; both strategies, transactions left empty removed.
"""

from __future__ import annotations

import datetime
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from history_scenarios import (
    EXPECTED,
    assert_valid_chains,
    blog,
    chains,
    issued,
    last_tx,
    record,
    shapes,
    snapshot,
    spread_issued_at,
)

from conftest import count_statements
from sqlalchemy_history import (
    RetentionResult,
    VersioningError,
    as_of,
    object_as_of,
    prune,
    purge,
    redact,
    version_class,
)
from sqlalchemy_history.plugins import TransactionMetaPlugin

STRATEGIES = ["validity", "subquery"]
KEYS = {
    "article_version": ["id"],
    "category_version": ["id"],
    "tag_version": ["id"],
    "comment_version": ["id"],
    "article_tag_version": ["article_id", "tag_id"],
}


@pytest.fixture(params=STRATEGIES)
def strategy(request):
    return request.param


@pytest.fixture
def v(versioned, strategy):
    return versioned(blog, options={"strategy": strategy})


def world(v, session, at):
    """Everything ``as_of`` answers at ``at``: articles with their relations, and the
    other models' rows."""
    others = {}
    for model in (v.Category, v.Tag, v.Comment):
        rows = session.scalars(as_of(model, at)).all()
        others[model.__name__] = sorted(
            (r.id, getattr(r, "name", None) or getattr(r, "body", None)) for r in rows
        )
    return snapshot(session.scalars(as_of(v.Article, at)).all()), others


def transaction_ids(v, session):
    table = v.manager.transaction_table
    return set(session.scalars(sa.select(table.c.id)))


def assert_all_chains_valid(v):
    for name, keys in KEYS.items():
        assert_valid_chains(v, name, keys)


# -- prune ------------------------------------------------------------------------------


@pytest.mark.parametrize("keep_last", [1, 2])
def test_prune_keeps_every_read_at_or_after_before(v, keep_last):
    recorded = record(v)
    steps = list(EXPECTED)
    for position, step in enumerate(steps):
        later = [recorded[s] for s in steps[position:]] + [recorded["retag"] + 5]
        with v.session() as session:
            before = {at: world(v, session, at) for at in later}
            session.expunge_all()
            removed = [
                prune(session, model, before=recorded[step], keep_last=keep_last)
                for model in (v.Article, v.Category, v.Tag, v.Comment)
            ]
            session.expunge_all()
            after = {at: world(v, session, at) for at in later}
            assert after == before, (step, removed)
            session.rollback()


def test_prune_result_chains_and_transactions(v):
    recorded = record(v)
    with v.session() as session:
        result = prune(session, v.Article, before=recorded["edit"])
        session.commit()
        remaining = transaction_ids(v, session)
    # Article 1: "create" superseded by "edit". Article 2: deleted at "edit", all its
    # versions up to then go. Link (2, 1): unlinked at "delete", gone. Link (1, 1) stays.
    assert result == RetentionResult(
        versions={"article_version": 3, "article_tag_version": 2}, transactions=2
    )
    assert result.total == 5
    assert remaining == set(recorded.tx.values()) - {recorded["link"], recorded["delete"]}
    assert_all_chains_valid(v)
    found = chains(v, v.Article)
    assert [r["transaction_id"] for r in found[(1,)]] == [recorded["edit"]]
    assert [r["transaction_id"] for r in found[(2,)]] == [recorded["revive"]]
    with v.session() as session:
        # the first remaining version behaves as the start of the row's history
        edit = object_as_of(session, v.Article, 1, recorded["edit"])
        assert edit.previous is None and edit.index == 0
        assert edit.changeset["name"] == [None, edit.name]
        revived = object_as_of(session, v.Article, 2, recorded["revive"])
        assert revived.previous is None and revived.index == 0
        assert revived.changeset["name"] == [None, "A2 again"]
        assert session.scalars(as_of(v.Article, recorded["rename"])).all() == []


def test_prune_keep_last_two_and_datetimes(v):
    recorded = record(v)
    spread_issued_at(v)
    with v.session() as session:
        assert prune(session, v.Tag, before=issued(0)) == RetentionResult()
        result = prune(session, v.Article, before=issued(recorded["retag"]), keep_last=2)
        session.commit()
    # Article 1 keeps create+edit; article 2 (alive at "retag") keeps delete+revive.
    # Link (2, 1) was unlinked before "retag": gone entirely.
    assert result.versions == {"article_version": 1, "article_tag_version": 2}
    found = chains(v, v.Article)
    assert [r["transaction_id"] for r in found[(2,)]] == [recorded["delete"], recorded["revive"]]
    assert_all_chains_valid(v)


def test_prune_keeps_datetime_reads_when_issued_at_disagrees_with_ids(v):
    """A transaction issued early may commit (and get its id) late: reads at a datetime
    after ``before`` still resolve to the same transaction after pruning."""
    hours = {}
    with v.session() as session:
        tag = v.Tag(id=1, name="a")
        session.add(tag)
        session.commit()
        hours[last_tx(v, session)] = 1
        tag.name = "b"
        session.commit()
        hours[last_tx(v, session)] = 9  # issued after the pruning point, id before it
        session.add(v.Tag(id=2, name="x"))
        session.commit()
        hours[last_tx(v, session)] = 3
        session.delete(session.get(v.Tag, 2))
        session.commit()
        hours[last_tx(v, session)] = 4
    table = v.manager.transaction_table
    with v.engine.begin() as conn:
        for tx_id, hour in hours.items():
            at = issued(0) + datetime.timedelta(hours=hour)
            conn.execute(table.update().where(table.c.id == tx_id).values(issued_at=at))
    moment = issued(0) + datetime.timedelta(hours=4)
    with v.session() as session:
        assert [t.name for t in session.scalars(as_of(v.Tag, moment))] == ["b"]
        result = prune(session, v.Tag, before=moment)
        session.commit()
        assert result.versions["tag_version"] == 3 and result.transactions == 2
        assert [t.name for t in session.scalars(as_of(v.Tag, moment))] == ["b"]


def test_prune_needs_a_version_to_keep(v):
    with v.session() as session, pytest.raises(ValueError, match="keep at least 1"):
        prune(session, v.Article, before=10, keep_last=0)


# -- purge ------------------------------------------------------------------------------


def test_purge_erases_a_row_and_its_links(v):
    recorded = record(v)
    with v.session() as session:
        before = {at: world(v, session, at) for at in recorded.tx.values()}
        result = purge(session, v.Article, [2])
        session.commit()
        remaining = transaction_ids(v, session)
    assert result == RetentionResult(
        versions={"article_version": 3, "article_tag_version": 2}, transactions=3
    )
    assert remaining == set(recorded.tx.values()) - {
        recorded["link"],
        recorded["delete"],
        recorded["revive"],
    }
    assert (2,) not in chains(v, v.Article)
    assert all(r["article_id"] != 2 for r in v.rows("article_tag_version"))
    assert_all_chains_valid(v)
    with v.session() as session:
        for at, (articles, others) in before.items():
            if at not in remaining:
                continue
            found = world(v, session, at)
            assert found == ([a for a in articles if a[0] != 2], others), at


def test_purge_finds_links_declared_on_the_other_side(v):
    recorded = record(v)
    with v.session() as session:
        # Tag declares no relationship: the links come from Article.tags.
        result = purge(session, v.Tag, [{"id": 1}])
        session.commit()
    assert result.versions == {"tag_version": 2, "article_tag_version": 3}
    assert v.rows("article_tag_version") == []
    assert result.transactions == 2  # "link" and "retag" had nothing else
    with v.session() as session:
        assert snapshot(session.scalars(as_of(v.Article, recorded["create"])).all())[0][3] == ()


def test_purge_after_deleting_the_live_row_in_the_same_transaction(v):
    record(v)
    with v.session() as session:
        session.delete(session.get(v.Article, 2))
        result = purge(session, v.Article, [2])  # flushes the DELETE first, then erases it
        session.commit()
    assert result.versions["article_version"] == 4
    assert (2,) not in chains(v, v.Article)
    # this session's own transaction row is kept (it may still write versions)
    assert len(v.rows("transaction")) == 5


@pytest.mark.parametrize("size", [10, 10_000])
def test_purge_statements_do_not_grow_with_rows(v, size):
    with v.session() as session:
        session.add_all(v.Article(id=i, name=f"a{i}") for i in range(1, size + 1))
        session.commit()
        for article in session.scalars(sa.select(v.Article)):
            article.name += "!"
        session.commit()
        keys = list(range(1, size + 1))
        with count_statements(v.engine) as counter:
            result = purge(session, v.Article, keys)
        session.commit()
    assert result.versions["article_version"] == 2 * size
    assert result.transactions == 2
    # key lookup, delete, link lookup, link delete, empty transactions, their delete
    assert counter.count == 6, counter.statements


def test_purge_removes_plugin_rows_of_removed_transactions(versioned):
    plugin = TransactionMetaPlugin()
    v = versioned(blog, plugins=[plugin])
    with v.session() as session:
        session.add(v.Tag(id=1, name="a"))
        uow = v.manager.unit_of_work(session)
        uow.create_transaction(session).meta = {"why": "one"}
        session.commit()
        session.add(v.Tag(id=2, name="b"))
        uow = v.manager.unit_of_work(session)
        uow.create_transaction(session).meta = {"why": "two"}
        session.commit()
        purge(session, v.Tag, [1])
        session.commit()
    assert [r["value"] for r in v.rows("transaction_meta")] == ["two"]


def test_purge_key_errors(v):
    with v.session() as session, pytest.raises(VersioningError, match="1-column primary key"):
        purge(session, v.Article, [(1, 2)])


# -- redact -----------------------------------------------------------------------------


def test_redact_overwrites_columns_and_keeps_versions(v):
    record(v)
    AV = version_class(v.Article)
    count = len(v.rows("article_version"))
    with v.session() as session:
        everywhere = redact(session, v.Article, ["email"])
        marked = redact(session, v.Article, {AV.name: "[redacted]"}, where=v.Article.id == 2)
        none = redact(session, v.Article, [v.Article.name], where=AV.name == "nobody")
        session.commit()
    assert everywhere.versions == {"article_version": count}
    assert marked.versions == {"article_version": 3} and marked.transactions == 0
    assert none.total == 0
    rows = v.rows("article_version")
    assert len(rows) == count
    assert {r["email"] for r in rows} == {None}
    assert {r["name"] for r in rows if r["id"] == 2} == {"[redacted]"}
    assert {r["name"] for r in rows if r["id"] == 1} == {"A1", "A1b"}
    assert v.rows("article")[1]["email"] == "a2@example.com"  # live rows untouched


def test_redact_errors(v):
    with v.session() as session:
        with pytest.raises(VersioningError, match="primary key"):
            redact(session, v.Article, ["id"])
        with pytest.raises(VersioningError, match=r"no versioned column 'secret'.*email"):
            redact(session, v.Article, ["secret"])
        with pytest.raises(ValueError, match="at least one column"):
            redact(session, v.Article, [])


# -- inheritance ----------------------------------------------------------------------


def test_inheritance(versioned, strategy):
    v = versioned(shapes, options={"strategy": strategy})
    with v.session() as session:
        circle = v.Circle(id=1, name="c", radius=1)
        square = v.Square(id=2, name="s", side=1)
        session.add_all([circle, square])
        session.commit()
        for radius in (2, 3):
            circle.radius = radius
            circle.name = f"c{radius}"
            session.commit()
        last = session.scalar(sa.select(sa.func.max(v.manager.transaction_table.c.id)))
        assert prune(session, v.Circle, before=last).versions == {
            "shape_version": 2,
            "circle_version": 2,
        }
        assert redact(session, v.Shape, ["radius"], where=v.Shape.name == "c3").versions == {
            "circle_version": 1
        }
        session.commit()
        (only,) = session.scalars(as_of(v.Shape, last).where(version_class(v.Shape).id == 1))
        assert (type(only).__name__, only.name, only.radius) == ("CircleVersion", "c3", None)
        assert purge(session, v.Shape, [1, 2]).versions == {
            "shape_version": 2,
            "circle_version": 1,
        }
        session.commit()
    assert v.rows("shape_version") == [] and v.rows("circle_version") == []
    assert v.rows("transaction") == []


# -- the example ------------------------------------------------------------------------


def test_retention_example_runs_its_checks():
    example = Path(__file__).resolve().parent.parent / "examples" / "retention.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.splitlines() == [
        "recorded: 55 versions in 13 transactions",
        "prune before 03 Oct: removed 39 versions, 9 transactions; 16 versions in 4 transactions",
        "purge customer 2: removed 5 versions, 1 transactions; 12 versions in 4 transactions",
        "redact e-mail: overwrote 12 versions; 12 versions in 4 transactions",
        "live e-mail kept: c1@example.com",
        "reads from the cutoff on unchanged, every chain contiguous",
    ]
