"""Many-to-many recording (SPEC §2, §3): association version tables and their rows."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, relationship

from sqlalchemy_history import Operation, make_versioned, remove_versioning, version_class

STRATEGIES = ["validity", "subquery"]

INSERT, DELETE = int(Operation.INSERT), int(Operation.DELETE)


@pytest.fixture(params=STRATEGIES)
def strategy(request):
    return request.param


def tagged_models(association="composite"):
    """Article <-> Tag through ``article_tag``.

    ``association``: "composite" (primary key = both foreign keys), "none" (no primary
    key at all) or "surrogate" (its own autoincrement ``id`` primary key).
    """

    def define(Base):
        columns = [
            sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id")),
            sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id")),
        ]
        if association == "composite":
            for column in columns:
                column.primary_key = True
        elif association == "surrogate":
            columns.insert(0, sa.Column("id", sa.Integer, primary_key=True, autoincrement=True))
        article_tag = sa.Table("article_tag", Base.metadata, *columns)

        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(100))
            tags = relationship("Tag", secondary=article_tag, back_populates="articles")

        class Tag(Base):
            __versioned__ = {}
            __tablename__ = "tag"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(100))
            articles = relationship(Article, secondary=article_tag, back_populates="tags")

        return locals()

    return define


def links(v):
    """Association version rows as (article_id, tag_id, operation_type, tx, end tx)."""
    rows = v.rows("article_tag_version", ["transaction_id", "article_id", "tag_id"])
    return [
        (
            r["article_id"],
            r["tag_id"],
            r["operation_type"],
            r["transaction_id"],
            r.get("end_transaction_id"),
        )
        for r in rows
    ]


def transaction_ids(v):
    return [r["id"] for r in v.rows("transaction", ["id"])]


def setup_article(v, session, tag_names=("t1", "t2", "t3"), linked=2):
    tags = [v.Tag(name=n) for n in tag_names]
    article = v.Article(name="a", tags=tags[:linked])
    session.add_all([article, *tags])
    session.commit()
    return article, tags


# -- adding links ------------------------------------------------------------------


def test_append_writes_insert_rows(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (t1, t2, t3) = setup_article(v, session)
        (tx1,) = transaction_ids(v)
        article.tags.append(t3)  # only the link changes
        session.commit()
        tx2 = transaction_ids(v)[-1]
        a, ids = article.id, (t1.id, t2.id, t3.id)
    assert tx2 != tx1
    end = None
    assert links(v) == [
        (a, ids[0], INSERT, tx1, end),
        (a, ids[1], INSERT, tx1, end),
        (a, ids[2], INSERT, tx2, end),
    ]
    # A link-only change leaves the article's own history alone.
    assert len(v.rows("article_version")) == 1


def test_association_version_table_columns(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    table = v.version_table("article_tag_version")
    expected = {"article_id", "tag_id", "transaction_id", "operation_type"}
    if strategy == "validity":
        expected.add("end_transaction_id")
    assert set(table.c.keys()) == expected
    assert {c.name for c in table.primary_key} == {"article_id", "tag_id", "transaction_id"}
    assert not table.c.operation_type.nullable


# -- removing links ----------------------------------------------------------------


def test_remove_writes_delete_row_and_closes_insert(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (t1, t2, _) = setup_article(v, session)
        article.tags.remove(t1)
        session.commit()
        tx1, tx2 = transaction_ids(v)
        a = article.id
        t1_id, t2_id = t1.id, t2.id
    validity = strategy == "validity"
    assert links(v) == [
        (a, t1_id, INSERT, tx1, tx2 if validity else None),
        (a, t2_id, INSERT, tx1, None),
        (a, t1_id, DELETE, tx2, None),
    ]
    assert v.rows("article_tag") == [{"article_id": a, "tag_id": t2_id}]


def test_clear_writes_delete_rows(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (t1, t2, _) = setup_article(v, session)
        article.tags.clear()
        session.commit()
        tx2 = transaction_ids(v)[-1]
        expected = {(article.id, t1.id, DELETE, tx2), (article.id, t2.id, DELETE, tx2)}
    assert {row[:4] for row in links(v) if row[3] == tx2} == expected
    assert v.rows("article_tag") == []


def test_reassigning_the_collection(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (t1, t2, t3) = setup_article(v, session)
        article.tags = [t2, t3]
        session.commit()
        tx2 = transaction_ids(v)[-1]
        a, ids = article.id, (t1.id, t2.id, t3.id)
    # t2 stays linked: no row for it.
    assert sorted(row[:3] for row in links(v) if row[3] == tx2) == sorted(
        [(a, ids[0], DELETE), (a, ids[2], INSERT)]
    )


def test_deleting_the_article_unlinks_its_tags(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (t1, t2, _) = setup_article(v, session)
        a, ids = article.id, (t1.id, t2.id)
        # After the commit the collection is expired: the ORM loads it to delete the links.
        session.delete(article)
        session.commit()
        tx2 = transaction_ids(v)[-1]
    assert sorted(row[:4] for row in links(v) if row[3] == tx2) == [
        (a, ids[0], DELETE, tx2),
        (a, ids[1], DELETE, tx2),
    ]
    if strategy == "validity":
        assert [row[4] for row in links(v) if row[3] != tx2] == [tx2, tx2]
    assert [r["operation_type"] for r in v.rows("article_version", ["transaction_id"])] == [
        INSERT,
        DELETE,
    ]


def test_deleting_a_tag_unlinks_it(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (t1, t2, _) = setup_article(v, session)
        a, ids = article.id, (t1.id, t2.id)
        session.delete(t1)
        session.commit()
        tx2 = transaction_ids(v)[-1]
    assert [row[:4] for row in links(v) if row[3] == tx2] == [(a, ids[0], DELETE, tx2)]
    assert v.rows("article_tag") == [{"article_id": a, "tag_id": ids[1]}]


def test_backref_side_changes_are_recorded_once(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (t1, _, t3) = setup_article(v, session)
        a, t1_id, t3_id = article.id, t1.id, t3.id
        article.tags  # noqa: B018 - loaded, so the backref updates it in memory as well
        t3.articles.append(article)
        session.commit()
        tx2 = transaction_ids(v)[-1]
        # The article's side is not loaded this time.
        t1.articles.remove(article)
        session.commit()
        tx3 = transaction_ids(v)[-1]
    assert [row[:4] for row in links(v) if row[3] in (tx2, tx3)] == [
        (a, t3_id, INSERT, tx2),
        (a, t1_id, DELETE, tx3),
    ]


# -- several flushes, no-ops -------------------------------------------------------


def test_several_flushes_in_one_transaction_are_merged(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (t1, t2, t3) = setup_article(v, session, linked=1)
        a, ids = article.id, (t1.id, t2.id, t3.id)
        article.tags.append(t2)
        session.flush()
        article.tags.append(t3)
        session.flush()
        article.tags.remove(t1)
        session.flush()
        session.commit()
        tx1, tx2 = transaction_ids(v)  # one transaction row for the three flushes
    rows = [row[:4] for row in links(v) if row[3] == tx2]
    assert sorted(rows) == sorted(
        [(a, ids[0], DELETE, tx2), (a, ids[1], INSERT, tx2), (a, ids[2], INSERT, tx2)]
    )
    if strategy == "validity":
        assert [row[4] for row in links(v) if row[3] == tx1] == [tx2]


def test_unlink_then_relink_in_one_transaction(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (t1, _, _) = setup_article(v, session, linked=1)
        a, t1_id = article.id, t1.id
        article.tags.remove(t1)
        session.flush()
        article.tags.append(t1)
        article.name = "b"
        session.commit()
        tx1, tx2 = transaction_ids(v)
    # Like an object deleted and re-inserted in one transaction: one UPDATE row.
    assert [row[:4] for row in links(v)] == [
        (a, t1_id, INSERT, tx1),
        (a, t1_id, int(Operation.UPDATE), tx2),
    ]
    with v.session() as session:
        AV = version_class(v.Article)
        second = session.scalars(sa.select(AV).where(AV.transaction_id == tx2)).one()
        assert [t.name for t in second.tags] == ["t1"]


def test_link_then_unlink_in_one_transaction_is_not_a_link(versioned, strategy):
    v = versioned(tagged_models(), options={"strategy": strategy})
    with v.session() as session:
        article, (_, t2, _) = setup_article(v, session, linked=1)
        article.tags.append(t2)
        session.flush()
        article.tags.remove(t2)
        article.name = "b"
        session.commit()
        _, tx2 = transaction_ids(v)
        t2_id = t2.id
    # At most a DELETE row: the link never existed for any committed transaction.
    later = [row[2] for row in links(v) if row[1] == t2_id]
    assert later in ([], [DELETE])
    with v.session() as session:
        AV = version_class(v.Article)
        second = session.scalars(sa.select(AV).where(AV.transaction_id == tx2)).one()
        assert [t.name for t in second.tags] == ["t1"]


def test_append_then_remove_before_flush_writes_nothing(versioned):
    v = versioned(tagged_models())
    with v.session() as session:
        article, (_, _, t3) = setup_article(v, session)
        article.tags.append(t3)
        article.tags.remove(t3)
        session.commit()
    assert len(transaction_ids(v)) == 1
    assert len(links(v)) == 2


def test_rollback_writes_no_link_rows(versioned):
    v = versioned(tagged_models())
    with v.session() as session:
        article, (_, _, t3) = setup_article(v, session)
        article.tags.append(t3)
        session.flush()
        session.rollback()
    assert len(transaction_ids(v)) == 1
    assert len(links(v)) == 2


# -- association table shapes ------------------------------------------------------


def test_association_table_without_primary_key(versioned, strategy):
    v = versioned(tagged_models("none"), options={"strategy": strategy})
    table = v.version_table("article_tag_version")
    assert {c.name for c in table.primary_key} == {"article_id", "tag_id", "transaction_id"}
    with v.session() as session:
        article, (t1, t2, t3) = setup_article(v, session)
        article.tags = [t2, t3]
        session.commit()
        tx1, tx2 = transaction_ids(v)
        a, ids = article.id, (t1.id, t2.id, t3.id)
    assert sorted(row[:4] for row in links(v)) == sorted(
        [
            (a, ids[0], INSERT, tx1),
            (a, ids[1], INSERT, tx1),
            (a, ids[0], DELETE, tx2),
            (a, ids[2], INSERT, tx2),
        ]
    )


def test_association_table_with_its_own_primary_key(versioned, strategy):
    v = versioned(tagged_models("surrogate"), options={"strategy": strategy})
    table = v.version_table("article_tag_version")
    assert {"id", "article_id", "tag_id"} <= set(table.c.keys())
    assert "transaction_id" in {c.name for c in table.primary_key}
    with v.session() as session:
        article, (t1, t2, t3) = setup_article(v, session)
        live = {(r["article_id"], r["tag_id"]): r["id"] for r in v.rows("article_tag")}
        article.tags.remove(t1)
        article.tags.append(t3)
        article.name = "b"
        session.commit()
        live.update({(r["article_id"], r["tag_id"]): r["id"] for r in v.rows("article_tag")})
        tx1, tx2 = transaction_ids(v)
        a, ids = article.id, (t1.id, t2.id, t3.id)
    rows = v.rows("article_tag_version", ["transaction_id", "tag_id"])
    assert [
        (r["id"], r["article_id"], r["tag_id"], r["operation_type"], r["transaction_id"])
        for r in rows
    ] == [
        (live[a, ids[0]], a, ids[0], INSERT, tx1),
        (live[a, ids[1]], a, ids[1], INSERT, tx1),
        (live[a, ids[0]], a, ids[0], DELETE, tx2),
        (live[a, ids[2]], a, ids[2], INSERT, tx2),
    ]
    with v.session() as session:
        AV = version_class(v.Article)
        first, second = session.scalars(sa.select(AV).order_by(AV.transaction_id)).all()
        assert sorted(t.name for t in first.tags) == ["t1", "t2"]
        assert sorted(t.name for t in second.tags) == ["t2", "t3"]


# -- the version table exists before configure_mappers() ---------------------------


@pytest.fixture
def unconfigured():
    """Declare models without configuring mappers; undo everything afterwards."""
    bases = []

    def build(define):
        make_versioned(user_cls=None)

        class Base(DeclarativeBase):
            pass

        bases.append(Base)
        define(Base)
        return Base

    yield build
    remove_versioning()
    for base in bases:
        base.registry.dispose()


def test_association_version_table_exists_before_configure_mappers(unconfigured):
    Base = unconfigured(tagged_models())
    assert "article_tag_version" in Base.metadata.tables
    table = Base.metadata.tables["article_tag_version"]
    assert {"article_id", "tag_id", "transaction_id", "operation_type"} <= set(table.c.keys())


def test_secondary_given_by_name_gets_version_table(versioned):
    def define(Base):
        sa.Table(
            "article_tag",
            Base.metadata,
            sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
            sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id"), primary_key=True),
        )

        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(100))
            tags = relationship("Tag", secondary="article_tag")
            tags_lazy = relationship(
                "Tag", secondary=lambda: Base.metadata.tables["article_tag"], viewonly=True
            )

        class Tag(Base):
            __versioned__ = {}
            __tablename__ = "tag"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(100))

        return locals()

    v = versioned(define)
    with v.session() as session:
        article = v.Article(name="a", tags=[v.Tag(name="t")])
        session.add(article)
        session.commit()
        (tx1,) = transaction_ids(v)
        a, t = article.id, article.tags[0].id
    assert [row[:4] for row in links(v)] == [(a, t, INSERT, tx1)]
