"""changes(): the audit log (SPEC §6a), by transaction, paginated, in a constant number of
statements per page whatever the number of versioned classes; both strategies.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from history_scenarios import (
    blog,
    issued,
    last_tx,
    record,
    shapes,
    spread_issued_at,
    start_article_1_with_an_update,
)

from conftest import count_statements
from sqlalchemy_history import (
    ClassNotVersioned,
    ImproperlyConfigured,
    Operation,
    changes,
    version_class,
    versioning_context,
)

STRATEGIES = ["validity", "subquery"]
INSERT, UPDATE, DELETE = Operation.INSERT, Operation.UPDATE, Operation.DELETE


@pytest.fixture(params=STRATEGIES)
def strategy(request):
    return request.param


@pytest.fixture
def v(versioned, strategy):
    return versioned(blog, options={"strategy": strategy}, user_cls="User")


def flat(page):
    return [
        (entry.id, [(c.entity, c.key, c.operation, c.changeset) for c in entry.versions])
        for entry in page
    ]


def expected_log(recorded):
    a1 = {"id": [None, 1], "name": [None, "A1"], "email": [None, "a1@example.com"]}
    return [
        (
            recorded["create"],
            [
                ("Article", (1,), INSERT, {**a1, "category_id": [None, 1]}),
                (
                    "Article",
                    (2,),
                    INSERT,
                    {"id": [None, 2], "name": [None, "A2"], "email": [None, "a2@example.com"]},
                ),
                ("Category", (1,), INSERT, {"id": [None, 1], "name": [None, "News"]}),
                ("Tag", (1,), INSERT, {"id": [None, 1], "name": [None, "T1"]}),
                ("article_tag", (1, 1), INSERT, {"article_id": [None, 1], "tag_id": [None, 1]}),
            ],
        ),
        (recorded["rename"], [("Category", (1,), UPDATE, {"name": ["News", "World"]})]),
        (
            recorded["link"],
            [("article_tag", (2, 1), INSERT, {"article_id": [None, 2], "tag_id": [None, 1]})],
        ),
        (
            recorded["delete"],
            [("Article", (2,), DELETE, {}), ("article_tag", (2, 1), DELETE, {})],
        ),
        (
            recorded["edit"],
            [
                ("Article", (1,), UPDATE, {"name": ["A1", "A1b"]}),
                (
                    "Comment",
                    (1,),
                    INSERT,
                    {"id": [None, 1], "body": [None, "first"], "article_id": [None, 1]},
                ),
            ],
        ),
        (
            recorded["revive"],
            # compared with the version before it: the DELETE version's last values
            [("Article", (2,), INSERT, {"name": ["A2", "A2 again"], "category_id": [None, 1]})],
        ),
        (recorded["retag"], [("Tag", (1,), UPDATE, {"name": ["T1", "T1b"]})]),
    ]


def test_the_whole_log(v):
    recorded = record(v)
    with v.session() as session:
        page = changes(session, limit=100)
        assert flat(page) == expected_log(recorded)
        assert page.next_cursor is None
        # Entries agree with each version's own changeset.
        AV = version_class(v.Article)
        for version in session.scalars(sa.select(AV).order_by(AV.id, AV.transaction_id)):
            entry = next(e for e in page if e.id == version.transaction_id)
            (change,) = [
                c for c in entry.versions if c.entity == "Article" and c.key == (version.id,)
            ]
            assert change.changeset == version.changeset
            assert change.model is v.Article
            assert change.values["name"] == version.name
        assert page[0].transaction.id == recorded["create"]
        assert page[0].issued_at == page[0].transaction.issued_at


def test_pages_follow_the_cursor_both_ways(v):
    recorded = record(v)
    everything = expected_log(recorded)
    with v.session() as session:
        seen, cursor = [], None
        while True:
            page = changes(session, limit=3, cursor=cursor)
            seen.extend(flat(page))
            cursor = page.next_cursor
            if cursor is None:
                break
            assert len(page) == 3
        assert seen == everything
        newest = changes(session, limit=4, newest_first=True)
        assert flat(newest) == everything[::-1][:4]
        rest = changes(session, limit=4, newest_first=True, cursor=newest.next_cursor)
        assert flat(rest) == everything[::-1][4:]
        assert rest.next_cursor is None


def test_filters(v):
    recorded = record(v)
    spread_issued_at(v)
    everything = dict(expected_log(recorded))
    with v.session() as session:
        ids = [e.id for e in changes(session, since=recorded["link"], until=recorded["edit"])]
        assert ids == [recorded["link"], recorded["delete"], recorded["edit"]]
        by_time = changes(session, since=issued(recorded["link"]), until=issued(recorded["edit"]))
        assert [e.id for e in by_time] == ids
        one = changes(session, transaction=recorded["rename"])
        assert flat(one) == [(recorded["rename"], everything[recorded["rename"]])]
        tx = session.get(v.Transaction, recorded["retag"])
        assert [e.id for e in changes(session, transaction=tx)] == [recorded["retag"]]
        # Tag has no relationship to Article, yet its links are part of its history.
        tags = flat(changes(session, entities=[v.Tag]))
        assert [tx_id for tx_id, _ in tags] == [
            recorded[s] for s in ("create", "link", "delete", "retag")
        ]
        assert {entity for _, found in tags for entity, *_ in found} == {"Tag", "article_tag"}
        comments = flat(changes(session, entities=[v.Comment]))
        assert comments == [
            (recorded["edit"], [c for c in everything[recorded["edit"]] if c[0] == "Comment"])
        ]


def test_user_filter_and_who(v):
    with v.session() as session:
        alice, bob = v.User(name="alice"), v.User(name="bob")
        session.add_all([alice, bob])
        session.commit()
        with versioning_context(user_id=alice.id):
            session.add(v.Tag(id=1, name="one"))
            session.commit()
        alice_tx = last_tx(v, session)
        with versioning_context(user_id=bob.id):
            session.add(v.Tag(id=2, name="two"))
            session.commit()
        page = changes(session, user=alice)
        assert [e.id for e in page] == [alice_tx]
        assert page[0].transaction.user is alice
        assert [e.transaction.user.name for e in changes(session, user=bob.id)] == ["bob"]


def test_statements_per_page_do_not_grow(v):
    with v.session() as session:
        user = v.User(name="u")
        session.add(user)
        session.commit()
        with versioning_context(user_id=user.id):
            for i in range(1, 31):
                session.add(v.Tag(id=i, name=f"t{i}"))
                session.add(v.Article(id=i, name=f"a{i}", tags=[session.get(v.Tag, i)]))
                session.add(v.Comment(id=i, body="c", article_id=i))
                session.commit()
    counts = set()
    for limit, entities in ((2, None), (25, None), (25, [v.Tag]), (25, [v.Article, v.Comment])):
        with v.session() as session, count_statements(v.engine) as counter:
            page = changes(session, limit=limit, entities=entities)
            assert len(page) == limit
            assert all(e.transaction.user.name == "u" for e in page)
            assert all(e.versions for e in page)
        counts.add(counter.count)
    # transactions, their users (selectinload), every version of the page in one UNION
    assert counts == {3}


def test_history_that_starts_with_an_update_shows_every_value_as_new(v):
    """As ``version.changeset`` (and SQLAlchemy-History) does for a first version."""
    recorded = record(v)
    start_article_1_with_an_update(v, recorded)
    with v.session() as session:
        (entry,) = changes(session, transaction=recorded["edit"], entities=[v.Article])
        ((version),) = entry.versions
        assert (version.entity, version.operation) == ("Article", UPDATE)
        assert version.changes, "a first version shows its values"
        assert all(c.old is None and c.new is not None for c in version.changes)
        assert {c.key: c.new for c in version.changes}["name"] == "A1b"


def test_errors(versioned):
    v = versioned(blog, user_cls=None)
    with v.session() as session:
        with pytest.raises(ImproperlyConfigured, match="user_cls"):
            changes(session, user=1)
        with pytest.raises(ValueError, match="positive"):
            changes(session, limit=0)
        with pytest.raises(TypeError, match="since= and until="):
            changes(session, transaction=issued(1))
        with pytest.raises(ClassNotVersioned, match="User"):
            changes(session, entities=[v.User])


# -- inheritance and composite keys ---------------------------------------------------


def test_inheritance_merges_tables_and_names_the_subclass(versioned, strategy):
    v = versioned(shapes, options={"strategy": strategy})
    with v.session() as session:
        circle = v.Circle(id=1, name="c", radius=2)
        session.add_all(
            [circle, v.Square(id=2, name="s", side=3), v.Line(order_id=1, line_no=2, qty=5)]
        )
        session.commit()
        circle.radius = 4
        session.commit()
        first, second = changes(session)
        assert [(c.entity, c.model, c.key, c.operation) for c in first.versions] == [
            ("Circle", v.Circle, (1,), INSERT),
            ("Line", v.Line, (1, 2), INSERT),
            ("Square", v.Square, (2,), INSERT),
        ]
        assert first.versions[0].changeset == {
            "id": [None, 1],
            "kind": [None, "circle"],
            "name": [None, "c"],
            "radius": [None, 2],
        }
        assert first.versions[1].changeset == {
            "order_id": [None, 1],
            "line_no": [None, 2],
            "qty": [None, 5],
        }
        assert [(c.entity, c.changeset) for c in second.versions] == [
            ("Circle", {"radius": [2, 4]})
        ]
        assert [e.id for e in changes(session, entities=[v.Line])] == [first.id]


# -- the example ------------------------------------------------------------------------


def test_audit_log_example_prints_who_changed_what():
    example = Path(__file__).resolve().parent.parent / "examples" / "audit_log.py"
    done = subprocess.run(
        [sys.executable, str(example)], capture_output=True, text=True, timeout=120, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[lines.index("Audit log") + 1] == "  #1 2025-03-01 09:00 by alice"
    assert "  #4 2025-03-04 09:00 by bob" in lines
    assert "      UPDATE Tag[1] name: 'python' -> 'Python'" in lines
    assert "      DELETE Article[2]" in lines
    assert lines[lines.index("What bob did, newest first") + 1 :][:2] == [
        "  #4 ['Tag']",
        "  #2 ['Article', 'Tag', 'article_tag']",
    ]
    assert "  tags added: ['release'] removed: ['news']" in lines
    assert lines[-2:] == [
        "  1: SQLAlchemy 2.1 released [published] tags=['python', 'release']",
        "  2: Weekly notes [draft] tags=[]",
    ]
