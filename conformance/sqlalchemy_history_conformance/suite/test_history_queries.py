"""Questions asked of history: as-of reads, the audit log, diffs, retention.

Requirements, one per family of functions (reached through ``history``, with their
``AsyncSession`` forms):

- ``as_of_queries``: ``as_of(Article, at)``, a ``Select`` of the versions valid at ``at``
  whose relationships answer as of ``at`` too; ``object_as_of`` / ``aobject_as_of``;
- ``audit_log``: ``changes(session, ...)`` / ``achanges``, transactions in order with the
  versions each wrote, paginated and filtered;
- ``version_diffs``: ``diff(older, newer, relations=[...])`` / ``adiff``;
- ``retention``: ``prune``, ``purge``, ``redact`` (``aprune`` ...), which leave every
  remaining chain valid.

Every test runs on both strategies over a scripted history (``record``) holding what trips
naive implementations: a row deleted then re-created with the same key, a row whose last
change is a DELETE, a transaction that touched only association rows, a related row
renamed while the article itself stays unchanged.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import relationship, selectinload

from ._helpers import DELETE, INSERT, UPDATE, StatementCounter, given_pk, pk

__all__ = [
    "TestAsOfReads",
    "TestAsyncHistoryQueries",
    "TestAuditLog",
    "TestRetention",
    "TestVersionDiffs",
    "TestWhoChangedWhat",
]

#: Every class runs on both strategies; the tests of one strategy run together (module
#: scope), so that they share their tables.
STRATEGIES = pytest.mark.parametrize("strategy", ["validity", "subquery"], scope="module")


def catalogue(Base: Any) -> dict[str, Any]:
    """``Article``: many-to-one ``category``, many-to-many ``tags`` (``Tag`` declares no
    relationship back), one-to-many ``comments``."""
    article_tag = sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id"), primary_key=True),
    )

    class Category(Base):
        __versioned__ = {}
        __tablename__ = "category"
        id = given_pk()
        name = sa.Column(sa.Unicode(100))

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = given_pk()
        name = sa.Column(sa.Unicode(100))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = given_pk()
        name = sa.Column(sa.Unicode(100))
        email = sa.Column(sa.Unicode(100))
        category_id = sa.Column(sa.Integer, sa.ForeignKey("category.id"))
        category = relationship(Category)
        tags = relationship(Tag, secondary=article_tag, order_by=Tag.id)
        comments = relationship("Comment", back_populates="article", order_by="Comment.id")

    class Comment(Base):
        __versioned__ = {}
        __tablename__ = "comment"
        id = given_pk()
        body = sa.Column(sa.Unicode(100))
        article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"))
        article = relationship(Article, back_populates="comments")

    return locals()


SUBQUERY = {"strategy": "subquery"}


def build(conformance_models: Any, strategy: str, **kwargs: Any) -> Any:
    return conformance_models(catalogue, options={"strategy": strategy}, **kwargs)


def last_transaction(m: Any, session: Any) -> int:
    return int(session.scalar(sa.select(sa.func.max(m.table("transaction").c.id))))


def record(m: Any) -> dict[str, int]:
    """Write the scripted history, one transaction per step; return their ids by step.

    ======= ===========================================================================
    create  category 1 "News"; article 1 "A1" (News, tag 1 "T1"); article 2 "A2"
    rename  category 1 -> "World" (the articles unchanged)
    link    article 2 gets tag 1 (association rows only)
    delete  article 2 (its last change is a DELETE; its link goes with it)
    edit    article 1 -> "A1b"; comment 1 "first" on it
    revive  article 2 again (same key) as "A2 again", category 1
    retag   tag 1 -> "T1b"
    ======= ===========================================================================
    """
    steps: dict[str, int] = {}
    with m.session() as session:

        def step(name: str) -> None:
            session.commit()
            steps[name] = last_transaction(m, session)

        news, t1 = m.Category(id=1, name="News"), m.Tag(id=1, name="T1")
        a1 = m.Article(id=1, name="A1", email="a1@example.com", category=news, tags=[t1])
        a2 = m.Article(id=2, name="A2", email="a2@example.com")
        session.add_all([a1, a2])
        step("create")
        news.name = "World"
        step("rename")
        a2.tags.append(t1)
        step("link")
        session.delete(a2)
        step("delete")
        a1.name = "A1b"
        session.add(m.Comment(id=1, body="first", article=a1))
        step("edit")
        session.add(m.Article(id=2, name="A2 again", email="a2@example.com", category_id=1))
        step("revive")
        t1.name = "T1b"
        step("retag")
    return steps


#: What ``snapshot(as_of(Article, <step>))`` shows after ``record``.
EXPECTED = {
    "create": [(1, "A1", "News", ("T1",), ()), (2, "A2", None, (), ())],
    "rename": [(1, "A1", "World", ("T1",), ()), (2, "A2", None, (), ())],
    "link": [(1, "A1", "World", ("T1",), ()), (2, "A2", None, ("T1",), ())],
    "delete": [(1, "A1", "World", ("T1",), ())],
    "edit": [(1, "A1b", "World", ("T1",), ("first",))],
    "revive": [(1, "A1b", "World", ("T1",), ("first",)), (2, "A2 again", "World", (), ())],
    "retag": [(1, "A1b", "World", ("T1b",), ("first",)), (2, "A2 again", "World", (), ())],
}


def snapshot(rows: Any) -> list[tuple[Any, ...]]:
    """What article versions show, relationships included."""
    return [
        (
            r.id,
            r.name,
            None if r.category is None else r.category.name,
            tuple(sorted(t.name for t in r.tags)),
            tuple(sorted(c.body for c in r.comments)),
        )
        for r in sorted(rows, key=lambda r: r.id)
    ]


def eager(history: Any, m: Any) -> list[Any]:
    """``selectinload`` of every relationship of the article versions."""
    ArticleVersion = history.version_class(m.Article)
    return [
        selectinload(ArticleVersion.category),
        selectinload(ArticleVersion.tags),
        selectinload(ArticleVersion.comments),
    ]


#: ``spread_issued_at`` puts transaction ``n`` at ``BASE + n`` hours.
BASE = datetime.datetime(2030, 1, 1)


def issued(transaction_id: int) -> datetime.datetime:
    return BASE + datetime.timedelta(hours=transaction_id)


def spread_issued_at(m: Any) -> None:
    """Transaction ``n`` issued at ``BASE + n`` hours: distinct even where ``issued_at``
    keeps whole seconds (MySQL/MariaDB ``DATETIME``). Before a reading session starts:
    MySQL's REPEATABLE READ keeps the snapshot taken at a transaction's first read."""
    table = m.table("transaction")
    with m.engine.begin() as connection:
        for (transaction_id,) in connection.execute(sa.select(table.c.id)).all():
            at = issued(transaction_id)
            connection.execute(
                table.update().where(table.c.id == transaction_id).values(issued_at=at)
            )


def drop_first_version(m: Any, steps: dict[str, int], article: int) -> None:
    """Delete an article's INSERT version: its history now starts with an UPDATE (as after
    versioning was switched on for existing rows)."""
    table = m.table("article_version")
    with m.engine.begin() as connection:
        connection.execute(
            table.delete().where(table.c.id == article, table.c.transaction_id == steps["create"])
        )


def article_versions(history: Any, m: Any, session: Any, article: int) -> list[Any]:
    """Every version of one article, oldest first."""
    ArticleVersion = history.version_class(m.Article)
    return list(
        session.scalars(
            sa.select(ArticleVersion)
            .where(ArticleVersion.id == article)
            .order_by(ArticleVersion.transaction_id)
        )
    )


# -- as_of ------------------------------------------------------------------------------


@STRATEGIES
@pytest.mark.requires("as_of_queries")
class TestAsOfReads:
    def test_every_step_lazy_and_eager(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        steps = record(m)
        for step, expected in EXPECTED.items():
            with m.session() as session:
                rows = session.scalars(history.as_of(m.Article, steps[step])).all()
                assert snapshot(rows) == expected, (step, "lazy")
            statement = history.as_of(m.Article, steps[step]).options(*eager(history, m))
            with m.session() as session, StatementCounter(m.engine) as counter:
                rows = session.scalars(statement).all()
                assert snapshot(rows) == expected, (step, "selectinload")
            # the rows, then each relationship once; nothing lazy afterwards
            assert len(counter.statements) == 4, (step, counter.statements)
        with m.session() as session:
            transaction = session.get(m.Transaction, steps["rename"])
            rows = session.scalars(history.as_of(m.Article, transaction)).all()
            assert snapshot(rows) == EXPECTED["rename"]
            assert session.scalars(history.as_of(m.Article, steps["create"] - 1)).all() == []
            later = session.scalars(history.as_of(m.Article, steps["retag"] + 1000)).all()
            assert snapshot(later) == EXPECTED["retag"]

    def test_relationships_follow_at_and_the_select_composes(
        self, history, conformance_models, strategy
    ):
        m = build(conformance_models, strategy)
        steps = record(m)
        ArticleVersion = history.version_class(m.Article)
        CategoryVersion = history.version_class(m.Category)
        TagVersion = history.version_class(m.Tag)
        with m.session() as session:
            statement = history.as_of(m.Article, steps["rename"]).where(ArticleVersion.id == 1)
            (row,) = session.scalars(statement).all()
            # the article has not changed since "create" ...
            assert (row.transaction_id, row.name) == (steps["create"], "A1")
            # ... its category is read as of "rename"
            assert row.category.name == "World"
            assert row.category.transaction_id == steps["rename"]
        with m.session() as session:
            at = steps["link"]  # a transaction that wrote only association rows
            # joined through a relationship: the tags as of `at`, not of the row
            tagged = session.scalars(
                history.as_of(m.Article, at)
                .join(ArticleVersion.tags)
                .where(TagVersion.name == "T1")
                .order_by(ArticleVersion.id.desc())
            ).all()
            assert [(r.id, r.transaction_id) for r in tagged] == [
                (2, steps["create"]),
                (1, steps["create"]),
            ]
            in_world = session.scalars(
                history.as_of(m.Article, at)
                .join(ArticleVersion.category)
                .where(CategoryVersion.name == "World")
            ).all()
            assert [r.id for r in in_world] == [1]
            count = sa.select(sa.func.count()).select_from(history.as_of(m.Article, at).subquery())
            assert session.scalar(count) == 2
            page = history.as_of(m.Article, at).order_by(ArticleVersion.id).limit(1).offset(1)
            assert [r.name for r in session.scalars(page)] == ["A2"]

    def test_one_object(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        steps = record(m)
        with m.session() as session:
            linked = history.object_as_of(session, m.Article, 2, steps["link"])
            assert (linked.name, [t.name for t in linked.tags]) == ("A2", ["T1"])
            assert history.object_as_of(session, m.Article, (1,), steps["edit"]).name == "A1b"
            assert history.object_as_of(session, m.Article, {"id": 2}, steps["delete"]) is None
            revived = history.object_as_of(session, m.Article, 2, steps["revive"])
            assert (revived.name, revived.category.name) == ("A2 again", "World")
            with pytest.raises(history.exc.VersioningError):
                history.object_as_of(session, m.Article, (1, 2), steps["create"])
        drop_first_version(m, steps, article=1)  # its history now starts with an UPDATE
        with m.session() as session:
            rows = session.scalars(history.as_of(m.Article, steps["rename"])).all()
            assert [r.id for r in rows] == [2]
            row = history.object_as_of(session, m.Article, 1, steps["edit"])
            assert (row.name, row.operation_type) == ("A1b", UPDATE)
            assert row.previous is None

    def test_datetimes_naive_utc_aware_and_equal(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        steps = record(m)
        spread_issued_at(m)
        naive = issued(steps["link"]) + datetime.timedelta(minutes=30)
        aware = naive.replace(tzinfo=datetime.timezone.utc).astimezone(
            datetime.timezone(datetime.timedelta(hours=-5))
        )
        with m.session() as session:
            for at in (naive, aware):
                rows = session.scalars(history.as_of(m.Article, at)).all()
                assert snapshot(rows) == EXPECTED["link"], at
            before_any = issued(steps["create"]) - datetime.timedelta(minutes=30)
            assert session.scalars(history.as_of(m.Article, before_any)).all() == []
        # several transactions issued at one instant: "at or before" means the last of them
        moment = datetime.datetime(2030, 1, 1, 12, 0, 0)
        second = datetime.timedelta(seconds=1)
        issued_at = {steps["create"]: moment - second}
        issued_at.update({steps[s]: moment for s in ("rename", "link", "delete")})
        issued_at.update({steps[s]: moment + second for s in ("edit", "revive", "retag")})
        table = m.table("transaction")
        with m.engine.begin() as connection:
            for transaction_id, at in issued_at.items():
                statement = table.update().where(table.c.id == transaction_id)
                connection.execute(statement.values(issued_at=at))
        with m.session() as session:
            rows = session.scalars(history.as_of(m.Article, moment)).all()
            assert snapshot(rows) == EXPECTED["delete"]
            earlier = moment - datetime.timedelta(microseconds=1)
            rows = session.scalars(history.as_of(m.Article, earlier)).all()
            assert snapshot(rows) == EXPECTED["create"]

    def test_a_page_costs_the_same_whatever_its_size(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        ArticleVersion = history.version_class(m.Article)
        with m.session() as session:
            tags = [m.Tag(id=i, name=f"t{i}") for i in range(1, 4)]
            categories = [m.Category(id=i, name=f"c{i}") for i in (1, 2)]
            session.add_all(
                m.Article(id=i, name=f"a{i}", category=categories[i % 2], tags=tags[i % 3 :])
                for i in range(1, 31)
            )
            session.commit()
            first = last_transaction(m, session)
            for tag in tags:
                tag.name += "!"
            for category in categories:
                category.name += "!"
            session.commit()
        counts = {}
        for size in (5, 20):
            statement = (
                history.as_of(m.Article, first)
                .options(selectinload(ArticleVersion.category), selectinload(ArticleVersion.tags))
                .order_by(ArticleVersion.id)
                .limit(size)
                .offset(3)
            )
            with m.session() as session, StatementCounter(m.engine) as counter:
                rows = session.scalars(statement).all()
                names = [(r.category.name, *(t.name for t in r.tags)) for r in rows]
            assert [r.id for r in rows] == list(range(4, 4 + size))
            assert not any("!" in name for group in names for name in group)  # as of `first`
            counts[size] = len(counter.statements)
        assert counts == {5: 3, 20: 3}


# -- the audit log ------------------------------------------------------------------------


def flat(page: Any) -> list[tuple[int, list[tuple[Any, ...]]]]:
    """``(transaction id, [(entity, key, operation, changeset) ...])`` per entry."""
    return [
        (
            entry.id,
            sorted(
                ((c.entity, c.key, c.operation, c.changeset) for c in entry.versions),
                key=lambda c: (c[0], repr(c[1])),
            ),
        )
        for entry in page
    ]


def expected_log(steps: dict[str, int]) -> list[tuple[int, list[tuple[Any, ...]]]]:
    a1 = {"id": [None, 1], "name": [None, "A1"], "email": [None, "a1@example.com"]}
    a2 = {"id": [None, 2], "name": [None, "A2"], "email": [None, "a2@example.com"]}
    return [
        (
            steps["create"],
            [
                ("Article", (1,), INSERT, {**a1, "category_id": [None, 1]}),
                ("Article", (2,), INSERT, a2),
                ("Category", (1,), INSERT, {"id": [None, 1], "name": [None, "News"]}),
                ("Tag", (1,), INSERT, {"id": [None, 1], "name": [None, "T1"]}),
                ("article_tag", (1, 1), INSERT, {"article_id": [None, 1], "tag_id": [None, 1]}),
            ],
        ),
        (steps["rename"], [("Category", (1,), UPDATE, {"name": ["News", "World"]})]),
        (
            steps["link"],
            [("article_tag", (2, 1), INSERT, {"article_id": [None, 2], "tag_id": [None, 1]})],
        ),
        # a DELETE version holds the last values: nothing changed against the one before
        (steps["delete"], [("Article", (2,), DELETE, {}), ("article_tag", (2, 1), DELETE, {})]),
        (
            steps["edit"],
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
        # compared with the version before it: the DELETE version's last values
        (
            steps["revive"],
            [("Article", (2,), INSERT, {"name": ["A2", "A2 again"], "category_id": [None, 1]})],
        ),
        (steps["retag"], [("Tag", (1,), UPDATE, {"name": ["T1", "T1b"]})]),
    ]


@STRATEGIES
@pytest.mark.requires("audit_log")
class TestAuditLog:
    def test_the_whole_log_page_by_page(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        steps = record(m)
        everything = expected_log(steps)
        with m.session() as session:
            page = history.changes(session, limit=100)
            assert flat(page) == everything
            assert page.next_cursor is None
            assert page[0].transaction.id == steps["create"]
            # each entry agrees with the version's own changeset and values
            for version in article_versions(history, m, session, 2):
                (entry,) = [e for e in page if e.id == version.transaction_id]
                (change,) = [c for c in entry.versions if (c.entity, c.key) == ("Article", (2,))]
                assert change.changeset == version.changeset
                assert (change.model, change.values["name"]) == (m.Article, version.name)
            seen, cursor = [], None
            while True:
                page = history.changes(session, limit=3, cursor=cursor)
                seen.extend(flat(page))
                cursor = page.next_cursor
                if cursor is None:
                    break
                assert len(page) == 3
            assert seen == everything
            newest = history.changes(session, limit=4, newest_first=True)
            assert flat(newest) == everything[::-1][:4]
            rest = history.changes(session, limit=4, newest_first=True, cursor=newest.next_cursor)
            assert flat(rest) == everything[::-1][4:]
            assert rest.next_cursor is None
        drop_first_version(m, steps, article=1)  # its history now starts with an UPDATE
        with m.session() as session:
            (entry,) = history.changes(session, transaction=steps["edit"], entities=[m.Article])
            (change,) = entry.versions
            assert (change.entity, change.key, change.operation) == ("Article", (1,), UPDATE)
            (version,) = article_versions(history, m, session, 1)
            # as the version's own changeset shows it: every value new
            assert change.changeset == version.changeset
            assert change.changeset["name"] == [None, "A1b"]

    def test_filters_and_statements_per_page(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        steps = record(m)
        spread_issued_at(m)
        everything = dict(expected_log(steps))
        with m.session() as session:
            by_id = history.changes(session, since=steps["link"], until=steps["edit"])
            ids = [steps[s] for s in ("link", "delete", "edit")]
            assert [e.id for e in by_id] == ids
            by_time = history.changes(
                session, since=issued(steps["link"]), until=issued(steps["edit"])
            )
            assert [e.id for e in by_time] == ids
            one = history.changes(session, transaction=steps["rename"])
            assert flat(one) == [(steps["rename"], everything[steps["rename"]])]
            transaction = session.get(m.Transaction, steps["retag"])
            assert [e.id for e in history.changes(session, transaction=transaction)] == [
                steps["retag"]
            ]
            # Tag declares no relationship to Article, yet its links are its history
            tags = flat(history.changes(session, entities=[m.Tag]))
            assert [tx for tx, _ in tags] == [
                steps[s] for s in ("create", "link", "delete", "retag")
            ]
            assert {c[0] for _, found in tags for c in found} == {"Tag", "article_tag"}
            comments = flat(history.changes(session, entities=[m.Comment]))
            assert comments == [
                (steps["edit"], [c for c in everything[steps["edit"]] if c[0] == "Comment"])
            ]
        counts = {}
        for limit, entities in ((1, None), (6, None), (3, [m.Tag]), (3, [m.Article, m.Comment])):
            with m.session() as session, StatementCounter(m.engine) as counter:
                page = history.changes(session, limit=limit, entities=entities)
                assert len(page) == limit
                assert all(entry.versions for entry in page)
            counts[(limit, len(entities or ()))] = len(counter.statements)
        # whatever the page size and the number of classes
        assert len(set(counts.values())) == 1, counts


@STRATEGIES
@pytest.mark.requires("version_diffs")
class TestVersionDiffs:
    def test_columns_between_any_two_versions(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        record(m)
        with m.session() as session:
            first, deleted, revived = article_versions(history, m, session, 2)
            assert [v.operation_type for v in (first, deleted, revived)] == [
                INSERT,
                DELETE,
                INSERT,
            ]
            found = history.diff(first, revived)
            assert found.changeset == {"name": ["A2", "A2 again"], "category_id": [None, 1]}
            # a DELETE version holds the last values
            assert history.diff(first, deleted).changeset == {}
            backwards = history.diff(revived, first).changeset
            assert backwards == {"name": ["A2 again", "A2"], "category_id": [1, None]}
            other = article_versions(history, m, session, 1)[0]
            with pytest.raises(history.exc.VersioningError):
                history.diff(other, first)  # two objects
            with pytest.raises(history.exc.VersioningError, match="labels"):
                history.diff(first, revived, relations=["labels"])

    def test_relationship_members_added_and_removed(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        with m.session() as session:
            t1, t2, t3 = (m.Tag(id=i, name=f"T{i}") for i in (1, 2, 3))
            news, sport = m.Category(id=1, name="News"), m.Category(id=2, name="Sport")
            article = m.Article(id=1, name="a", category=news, tags=[t1, t2])
            session.add(article)
            session.commit()
            article.name = "b"
            t1.name = "T1 renamed"  # still a member: neither added nor removed
            session.commit()
            article.tags = [t1, t3]
            article.category = sport
            session.commit()
        with m.session() as session:
            first, _, last = article_versions(history, m, session, 1)
            found = history.diff(first, last, relations=["tags", "category", "comments"])
            assert found.changeset == {"name": ["a", "b"], "category_id": [1, 2]}
            tags = found.relations["tags"]
            assert ([t.name for t in tags.added], [t.name for t in tags.removed]) == (
                ["T3"],
                ["T2"],
            )
            category = found.relations["category"]
            assert [c.name for c in category.added] == ["Sport"]
            assert [c.name for c in category.removed] == ["News"]
            comments = found.relations["comments"]
            assert (comments.added, comments.removed) == ((), ())


# -- retention ----------------------------------------------------------------------------


def world(history: Any, m: Any, session: Any, at: int) -> tuple[Any, ...]:
    """Everything ``as_of`` answers at ``at``: articles with their relationships, and the
    rows of the other models."""
    articles = session.scalars(history.as_of(m.Article, at).options(*eager(history, m)))
    others = {}
    for model, column in ((m.Category, "name"), (m.Tag, "name"), (m.Comment, "body")):
        rows = session.scalars(history.as_of(model, at)).all()
        others[model.__name__] = sorted((r.id, getattr(r, column)) for r in rows)
    return snapshot(articles.all()), others


def removed(result: Any) -> dict[str, int]:
    """Version rows removed per table (tables with none left out)."""
    return {name: count for name, count in result.versions.items() if count}


def assert_chains_valid(m: Any) -> None:
    """Every remaining chain is contiguous and ends open (validity strategy)."""
    for name, key in (
        ("article_version", ["id"]),
        ("category_version", ["id"]),
        ("tag_version", ["id"]),
        ("comment_version", ["id"]),
        ("article_tag_version", ["article_id", "tag_id"]),
    ):
        if "end_transaction_id" not in m.table(name).c:
            return
        chains: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
        for row in m.rows(name, [*key, "transaction_id"]):
            chains.setdefault(tuple(row[k] for k in key), []).append(row)
        for chain in chains.values():
            for earlier, later in zip(chain, chain[1:]):
                assert earlier["end_transaction_id"] == later["transaction_id"], (name, chain)
            assert chain[-1]["end_transaction_id"] is None, (name, chain)


def transaction_ids(m: Any) -> set[int]:
    return {r["id"] for r in m.rows("transaction")}


@STRATEGIES
@pytest.mark.requires("retention")
class TestRetention:
    @pytest.mark.parametrize("keep_last", [1, 2])
    def test_prune_leaves_every_read_at_or_after_before(
        self, history, conformance_models, strategy, keep_last
    ):
        m = build(conformance_models, strategy)
        steps = record(m)
        names = list(EXPECTED)
        points = [steps[s] for s in names] + [steps["retag"] + 5]
        with m.session() as session:
            before = {at: world(history, m, session, at) for at in points}
        for position, step in enumerate(names):
            with m.session() as session:
                results = [
                    history.prune(session, model, before=steps[step], keep_last=keep_last)
                    for model in (m.Article, m.Category, m.Tag, m.Comment)
                ]
                # at `before`, at the transaction after it, and after the last one
                for at in {*points[position : position + 2], points[-1]}:
                    found = world(history, m, session, at)
                    assert found == before[at], (step, at, [removed(r) for r in results])
                session.rollback()

    def test_prune_removes_what_no_later_read_needs(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        steps = record(m)
        with m.session() as session:
            result = history.prune(session, m.Article, before=steps["edit"])
            session.commit()
        # article 1: "create" is superseded by "edit"; article 2, deleted at "edit", loses
        # everything up to then; link (2, 1), removed at "delete", goes; (1, 1) stays
        assert removed(result) == {"article_version": 3, "article_tag_version": 2}
        assert result.transactions == 2
        assert transaction_ids(m) == set(steps.values()) - {steps["link"], steps["delete"]}
        assert_chains_valid(m)
        with m.session() as session:
            assert [v.transaction_id for v in article_versions(history, m, session, 1)] == [
                steps["edit"]
            ]
            assert [v.transaction_id for v in article_versions(history, m, session, 2)] == [
                steps["revive"]
            ]
            # the first remaining version behaves as the start of the row's history
            edit = history.object_as_of(session, m.Article, 1, steps["edit"])
            assert edit.previous is None and edit.index == 0
            assert session.scalars(history.as_of(m.Article, steps["rename"])).all() == []

    def test_prune_keep_last_two_before_a_datetime(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        steps = record(m)
        spread_issued_at(m)
        with m.session() as session:
            early = issued(steps["create"]) - datetime.timedelta(hours=1)
            assert removed(history.prune(session, m.Tag, before=early)) == {}
            result = history.prune(session, m.Article, before=issued(steps["retag"]), keep_last=2)
            session.commit()
        # article 1 keeps "create" and "edit"; article 2 (alive at "retag") "delete" and
        # "revive"; link (2, 1) ended before "retag": gone
        assert removed(result) == {"article_version": 1, "article_tag_version": 2}
        assert_chains_valid(m)
        with m.session() as session:
            versions = article_versions(history, m, session, 2)
            assert [v.transaction_id for v in versions] == [steps["delete"], steps["revive"]]

    def test_purge_erases_rows_their_links_and_emptied_transactions(
        self, history, conformance_models, strategy
    ):
        m = build(conformance_models, strategy)
        steps = record(m)
        with m.session() as session:
            before = {at: world(history, m, session, at) for at in steps.values()}
        with m.session() as session:
            result = history.purge(session, m.Article, [2])
            session.commit()
        assert removed(result) == {"article_version": 3, "article_tag_version": 2}
        # "link", "delete" and "revive" wrote nothing else
        assert result.transactions == 3
        remaining = transaction_ids(m)
        gone = {steps[s] for s in ("link", "delete", "revive")}
        assert remaining == set(steps.values()) - gone
        assert [r for r in m.rows("article_version") if r["id"] == 2] == []
        assert [r for r in m.rows("article_tag_version") if r["article_id"] == 2] == []
        assert_chains_valid(m)
        with m.session() as session:
            for at in sorted(remaining):
                articles, others = before[at]
                expected = ([a for a in articles if a[0] != 2], others)
                assert world(history, m, session, at) == expected, at
        with m.session() as session:
            # Tag declares no relationship: its links are found through Article.tags
            result = history.purge(session, m.Tag, [{"id": 1}])
            session.commit()
        assert removed(result) == {"tag_version": 2, "article_tag_version": 1}
        assert result.transactions == 1  # "retag" wrote nothing else
        assert m.rows("article_tag_version") == []
        with m.session() as session:
            rows = session.scalars(history.as_of(m.Article, steps["create"])).all()
            assert [(r.id, list(r.tags)) for r in rows] == [(1, [])]

    def test_purge_statements_do_not_grow_with_rows(self, history, conformance_models, strategy):
        m = build(conformance_models, strategy)
        counts = {}
        for size in (5, 50):
            keys = range(size * 100, size * 100 + size)
            with m.session() as session:
                session.add_all(m.Article(id=k, name="a") for k in keys)
                session.commit()
                for article in session.scalars(sa.select(m.Article).where(m.Article.id.in_(keys))):
                    article.name = "b"
                session.commit()
            with m.session() as session, StatementCounter(m.engine) as counter:
                result = history.purge(session, m.Article, list(keys))
                session.commit()
            assert removed(result) == {"article_version": 2 * size}
            assert result.transactions == 2
            counts[size] = len(counter.statements)
        assert counts[5] == counts[50], counts

    def test_redact_overwrites_columns_and_keeps_the_versions(
        self, history, conformance_models, strategy
    ):
        m = build(conformance_models, strategy)
        record(m)
        ArticleVersion = history.version_class(m.Article)
        count = len(m.rows("article_version"))
        with m.session() as session:
            everywhere = history.redact(session, m.Article, ["email"])
            marked = history.redact(
                session, m.Article, {"name": "[redacted]"}, where=m.Article.id == 2
            )
            nothing = history.redact(
                session, m.Article, ["name"], where=ArticleVersion.name == "nobody"
            )
            session.commit()
        assert removed(everywhere) == {"article_version": count}
        assert removed(marked) == {"article_version": 3}
        assert marked.transactions == 0
        assert removed(nothing) == {}
        rows = m.rows("article_version")
        assert len(rows) == count
        assert {r["email"] for r in rows} == {None}
        assert {r["name"] for r in rows if r["id"] == 2} == {"[redacted]"}
        assert {r["name"] for r in rows if r["id"] == 1} == {"A1", "A1b"}
        assert {r["email"] for r in m.rows("article")} == {"a1@example.com", "a2@example.com"}


# -- AsyncSession -------------------------------------------------------------------------


@pytest.mark.requires("asyncio")
class TestAsyncHistoryQueries:
    """The ``AsyncSession`` forms (one strategy: the sync tests cover both; the subquery
    strategy's tables are those the tests before left)."""

    @pytest.mark.requires("as_of_queries")
    async def test_as_of(self, history, conformance_models):
        from sqlalchemy.util import greenlet_spawn

        m = await conformance_models.abuild(catalogue, options=SUBQUERY)
        steps = await greenlet_spawn(record, m)
        for step, expected in EXPECTED.items():
            statement = history.as_of(m.Article, steps[step]).options(*eager(history, m))
            async with m.async_session() as session:
                rows = (await session.scalars(statement)).all()
                assert snapshot(rows) == expected, step
        async with m.async_session() as session:
            row = await history.aobject_as_of(session, m.Article, 2, steps["link"])
            assert row.name == "A2"
            tags = await session.run_sync(lambda _: [t.name for t in row.tags])
            assert tags == ["T1"]
            assert await history.aobject_as_of(session, m.Article, 2, steps["delete"]) is None

    @pytest.mark.requires("audit_log")
    async def test_audit_log(self, history, conformance_models):
        from sqlalchemy.util import greenlet_spawn

        m = await conformance_models.abuild(catalogue, options=SUBQUERY)
        steps = await greenlet_spawn(record, m)
        async with m.async_session() as session:
            page = await history.achanges(session, limit=4)
            assert flat(page) == expected_log(steps)[:4]
            rest = await history.achanges(session, cursor=page.next_cursor)
            assert flat(rest) == expected_log(steps)[4:]

    @pytest.mark.requires("version_diffs")
    async def test_diff(self, history, conformance_models):
        from sqlalchemy.util import greenlet_spawn

        m = await conformance_models.abuild(catalogue, options=SUBQUERY)
        await greenlet_spawn(record, m)
        ArticleVersion = history.version_class(m.Article)
        async with m.async_session() as session:
            first, _, revived = (
                await session.scalars(
                    sa.select(ArticleVersion)
                    .where(ArticleVersion.id == 2)
                    .order_by(ArticleVersion.transaction_id)
                )
            ).all()
            found = await history.adiff(first, revived, relations=["category", "tags"])
            assert found.changeset == {"name": ["A2", "A2 again"], "category_id": [None, 1]}
            assert [c.name for c in found.relations["category"].added] == ["World"]
            assert not found.relations["tags"].added and not found.relations["tags"].removed

    @pytest.mark.requires("retention")
    async def test_retention(self, history, conformance_models):
        from sqlalchemy.util import greenlet_spawn

        m = await conformance_models.abuild(catalogue, options=SUBQUERY)
        steps = await greenlet_spawn(record, m)
        async with m.async_session() as session:
            pruned = await history.aprune(session, m.Article, before=steps["edit"])
            purged = await history.apurge(session, m.Tag, [1])
            redacted = await history.aredact(session, m.Article, ["email"])
            await session.commit()
        assert removed(pruned) == {"article_version": 3, "article_tag_version": 2}
        assert removed(purged) == {"tag_version": 2, "article_tag_version": 1}
        assert removed(redacted) == {"article_version": 2}
        rows = await m.arows("article_version")
        assert [(r["id"], r["name"], r["email"]) for r in rows] == [
            (1, "A1b", None),
            (2, "A2 again", None),
        ]


# -- who: the transaction's user ----------------------------------------------------------


def catalogue_with_users(Base: Any) -> dict[str, Any]:
    class User(Base):
        __tablename__ = "app_user"
        id = pk()
        name = sa.Column(sa.Unicode(50))

    return {**catalogue(Base), "User": User}


@pytest.mark.requires("audit_log")
@pytest.mark.requires("transaction_user")
class TestWhoChangedWhat:
    def test_filter_by_user(self, history, conformance_models):
        m = conformance_models(catalogue_with_users, user_cls="User")
        with m.session() as session:
            alice, bob = m.User(name="alice"), m.User(name="bob")
            session.add_all([alice, bob])
            session.commit()
            written = {}
            for user, tag in ((alice, 1), (bob, 2), (alice, 3)):
                uow = history.versioning_manager.unit_of_work(session)
                uow.create_transaction(session).user_id = user.id
                session.add(m.Tag(id=tag, name=f"t{tag}"))
                session.commit()
                written[tag] = last_transaction(m, session)
            page = history.changes(session, user=alice)
            assert [e.id for e in page] == [written[1], written[3]]
            assert {e.transaction.user.name for e in page} == {"alice"}
            by_id = history.changes(session, user=bob.id)
            assert [e.id for e in by_id] == [written[2]]
