"""Reverting with relations (SPEC §5): ``version.revert(relations=[...])``."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import relationship

from sqlalchemy_history import Operation, VersioningError, version_class
from sqlalchemy_history.exc import ReverterException

STRATEGIES = ["validity", "subquery"]

INSERT, UPDATE, DELETE = int(Operation.INSERT), int(Operation.UPDATE), int(Operation.DELETE)


@pytest.fixture(params=STRATEGIES)
def strategy(request):
    return request.param


def blog(*parts):
    """Models around a versioned ``Article`` with only the ``parts`` a test needs.

    Parts: "category" (many-to-one; with "tags" also ``Tag.category``), "tags"
    (many-to-many), "comments" (one-to-many; with "authors" ``Comment.author``), "detail"
    (one-to-one, unique foreign key). Fewer tables keep the per-test DDL cheap.
    """
    wanted = set(parts)

    def define(Base):
        if "category" in wanted:

            class Category(Base):
                __versioned__ = {}
                __tablename__ = "category"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                name = sa.Column(sa.Unicode(100))

        if "authors" in wanted:

            class Author(Base):
                __versioned__ = {}
                __tablename__ = "author"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                name = sa.Column(sa.Unicode(100))

        if "tags" in wanted:
            article_tag = sa.Table(
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
            if "category" in wanted:
                category_id = sa.Column(sa.Integer, sa.ForeignKey("category.id"))
                category = relationship("Category")
            if "tags" in wanted:
                tags = relationship("Tag", secondary=article_tag, back_populates="articles")
            if "comments" in wanted:
                comments = relationship(
                    "Comment", back_populates="article", cascade="all, delete-orphan"
                )
            if "detail" in wanted:
                detail = relationship(
                    "Detail", uselist=False, back_populates="article", cascade="all, delete-orphan"
                )

        if "tags" in wanted:

            class Tag(Base):
                __versioned__ = {}
                __tablename__ = "tag"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                name = sa.Column(sa.Unicode(100))
                if "category" in wanted:
                    category_id = sa.Column(sa.Integer, sa.ForeignKey("category.id"))
                    category = relationship("Category")
                articles = relationship(Article, secondary=article_tag, back_populates="tags")

        if "comments" in wanted:

            class Comment(Base):
                __versioned__ = {}
                __tablename__ = "comment"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                body = sa.Column(sa.Unicode(100))
                article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"))
                article = relationship(Article, back_populates="comments")
                if "authors" in wanted:
                    author_id = sa.Column(sa.Integer, sa.ForeignKey("author.id"))
                    author = relationship("Author")

        if "detail" in wanted:

            class Detail(Base):
                __versioned__ = {}
                __tablename__ = "detail"
                id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
                text = sa.Column(sa.Unicode(100))
                article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"), unique=True)
                article = relationship(Article, back_populates="detail")

        return locals()

    return define


def first_version(session, v, article_id, index=0):
    AV = version_class(v.Article)
    versions = session.scalars(
        sa.select(AV).where(AV.id == article_id).order_by(AV.transaction_id)
    ).all()
    return versions[index]


def table(v, name, *columns):
    """Rows of ``name`` as sorted tuples of ``columns``."""
    return sorted(tuple(r[c] for c in columns) for r in v.rows(name))


def last_transaction(v):
    return max(r["id"] for r in v.rows("transaction"))


def written_in(v, name, tx, *columns):
    """Version rows of ``name`` written by transaction ``tx``, as sorted tuples."""
    return sorted(tuple(r[c] for c in columns) for r in v.rows(name) if r["transaction_id"] == tx)


# -- one-to-many -------------------------------------------------------------------


def test_one_to_many_children_deleted_restored_and_removed(versioned, strategy):
    v = versioned(blog("comments"), options={"strategy": strategy})
    with v.session() as session:
        c1, c2 = v.Comment(body="c1"), v.Comment(body="c2")
        article = v.Article(name="a1", comments=[c1, c2])
        session.add(article)
        session.commit()  # tx1
        ids = article.id, c1.id, c2.id
        c3 = v.Comment(body="c3")
        article.comments.remove(c1)  # delete-orphan: c1 is deleted
        article.comments.append(c3)
        c2.body = "c2 changed"
        article.name = "a2"
        session.commit()  # tx2
        c3_id = c3.id

    with v.session() as session:
        result = first_version(session, v, ids[0]).revert(relations=["comments"])
        assert result is session.get(v.Article, ids[0])
        session.commit()
        revert_tx = last_transaction(v)
        assert sorted(c.body for c in result.comments) == ["c1", "c2"]

    assert table(v, "article", "id", "name") == [(ids[0], "a1")]
    assert table(v, "comment", "id", "body", "article_id") == [
        (ids[1], "c1", ids[0]),
        (ids[2], "c2", ids[0]),
    ]
    # The revert is a transaction of its own, with versions for everything it changed.
    assert written_in(v, "article_version", revert_tx, "id", "operation_type") == [(ids[0], UPDATE)]
    assert written_in(v, "comment_version", revert_tx, "id", "operation_type") == sorted(
        [(ids[1], INSERT), (ids[2], UPDATE), (c3_id, DELETE)]
    )


# -- many-to-many ------------------------------------------------------------------


def test_many_to_many_links_restored_and_removed(versioned, strategy):
    v = versioned(blog("tags"), options={"strategy": strategy})
    with v.session() as session:
        t1, t2, t3 = v.Tag(name="t1"), v.Tag(name="t2"), v.Tag(name="t3")
        article = v.Article(name="a1", tags=[t1, t2])
        session.add_all([article, t3])
        session.commit()  # tx1
        a, ids = article.id, (t1.id, t2.id, t3.id)
        article.tags = [t2, t3]
        t2.name = "t2 changed"
        article.name = "a2"
        session.commit()  # tx2

    with v.session() as session:
        article = first_version(session, v, a).revert(relations=["tags"])
        session.commit()
        revert_tx = last_transaction(v)
        assert sorted(t.name for t in article.tags) == ["t1", "t2"]

    assert table(v, "article_tag", "article_id", "tag_id") == [(a, ids[0]), (a, ids[1])]
    # Unlinked, not deleted: t3 still exists; t2's columns are restored too.
    assert table(v, "tag", "id", "name") == [(ids[0], "t1"), (ids[1], "t2"), (ids[2], "t3")]
    assert written_in(v, "article_tag_version", revert_tx, "tag_id", "operation_type") == [
        (ids[0], INSERT),
        (ids[2], DELETE),
    ]
    assert written_in(v, "tag_version", revert_tx, "id", "operation_type") == [(ids[1], UPDATE)]


def test_many_to_many_deleted_tag_comes_back(versioned, strategy):
    v = versioned(blog("tags"), options={"strategy": strategy})
    with v.session() as session:
        t1 = v.Tag(name="t1")
        article = v.Article(name="a1", tags=[t1])
        session.add(article)
        session.commit()  # tx1
        a, t1_id = article.id, t1.id
        session.delete(t1)
        article.name = "a2"
        session.commit()  # tx2

    with v.session() as session:
        first_version(session, v, a).revert(relations=["tags"])
        session.commit()
        revert_tx = last_transaction(v)

    assert table(v, "tag", "id", "name") == [(t1_id, "t1")]
    assert table(v, "article_tag", "article_id", "tag_id") == [(a, t1_id)]
    assert written_in(v, "tag_version", revert_tx, "id", "operation_type") == [(t1_id, INSERT)]


def test_nested_path_through_many_to_many(versioned, strategy):
    v = versioned(blog("tags", "category"), options={"strategy": strategy})
    with v.session() as session:
        old, new = v.Category(name="old"), v.Category(name="new")
        t1 = v.Tag(name="t1", category=old)
        article = v.Article(name="a1", tags=[t1])
        session.add_all([article, new])
        session.commit()  # tx1
        a, t1_id, old_id = article.id, t1.id, old.id
        t1.category = new
        old.name = "old renamed"
        article.name = "a2"
        session.commit()  # tx2

    with v.session() as session:
        first_version(session, v, a).revert(relations=["tags", "tags.category"])
        session.commit()

    assert table(v, "tag", "id", "category_id") == [(t1_id, old_id)]
    assert dict(table(v, "category", "id", "name"))[old_id] == "old"


# -- many-to-one and one-to-one ----------------------------------------------------


def test_many_to_one_restored(versioned, strategy):
    v = versioned(blog("category"), options={"strategy": strategy})
    with v.session() as session:
        old, new = v.Category(name="old"), v.Category(name="new")
        article = v.Article(name="a1", category=old)
        session.add_all([article, new])
        session.commit()  # tx1
        a, old_id, new_id = article.id, old.id, new.id
        article.category = new
        old.name = "old renamed"
        session.commit()  # tx2

    with v.session() as session:
        first_version(session, v, a).revert(relations=["category"])
        session.commit()

    assert table(v, "article", "id", "category_id") == [(a, old_id)]
    # Many-to-one targets are restored, never deleted.
    assert table(v, "category", "id", "name") == [(old_id, "old"), (new_id, "new")]


def test_one_to_one_restored(versioned, strategy):
    v = versioned(blog("detail"), options={"strategy": strategy})
    with v.session() as session:
        # Explicit ids: SQLite would reuse the deleted row's id.
        article = v.Article(name="a1", detail=v.Detail(id=10, text="d1"))
        session.add(article)
        session.commit()  # tx1
        a, d1_id = article.id, article.detail.id
        article.detail = None  # delete-orphan: d1 is deleted
        session.flush()  # before d2 takes the unique article_id
        article.detail = v.Detail(id=20, text="d2")
        article.name = "a2"
        session.commit()  # tx2
        d2_id = article.detail.id
    assert d2_id != d1_id

    with v.session() as session:
        article = first_version(session, v, a).revert(relations=["detail"])
        session.commit()
        revert_tx = last_transaction(v)
        assert article.detail.text == "d1"

    assert table(v, "detail", "id", "text", "article_id") == [(d1_id, "d1", a)]
    assert written_in(v, "detail_version", revert_tx, "id", "operation_type") == sorted(
        [(d1_id, INSERT), (d2_id, DELETE)]
    )


def test_one_to_one_that_did_not_exist_is_removed(versioned, strategy):
    v = versioned(blog("detail"), options={"strategy": strategy})
    with v.session() as session:
        article = v.Article(name="a1")
        session.add(article)
        session.commit()  # tx1
        a = article.id
        article.detail = v.Detail(text="later")
        session.commit()  # tx2

    with v.session() as session:
        article = first_version(session, v, a).revert(relations=["detail"])
        session.commit()
        assert article.detail is None
    assert v.rows("detail") == []


# -- nested paths and cycles -------------------------------------------------------


def test_nested_path_comments_author(versioned, strategy):
    v = versioned(blog("comments", "authors"), options={"strategy": strategy})
    with v.session() as session:
        ann, bob = v.Author(name="Ann"), v.Author(name="Bob")
        c1 = v.Comment(body="c1", author=ann)
        article = v.Article(name="a1", comments=[c1])
        session.add_all([article, bob])
        session.commit()  # tx1
        a, c1_id, ann_id, bob_id = article.id, c1.id, ann.id, bob.id
        c1.author = bob
        ann.name = "Ann renamed"
        article.name = "a2"
        session.commit()  # tx2

    with v.session() as session:
        first_version(session, v, a).revert(relations=["comments", "comments.author"])
        session.commit()

    assert table(v, "comment", "id", "author_id") == [(c1_id, ann_id)]
    assert table(v, "author", "id", "name") == [(ann_id, "Ann"), (bob_id, "Bob")]


def test_only_named_paths_are_reverted(versioned):
    v = versioned(blog("comments", "authors"))
    with v.session() as session:
        ann = v.Author(name="Ann")
        article = v.Article(name="a1", comments=[v.Comment(body="c1", author=ann)])
        session.add(article)
        session.commit()
        a = article.id
        ann.name = "Ann renamed"
        article.comments[0].body = "c1 changed"
        article.name = "a2"
        session.commit()

    with v.session() as session:
        first_version(session, v, a).revert(relations=["comments"])
        session.commit()

    assert table(v, "comment", "body") == [("c1",)]
    assert table(v, "author", "name") == [("Ann renamed",)]


def test_cyclic_paths_terminate(versioned, strategy):
    v = versioned(blog("tags"), options={"strategy": strategy})
    with v.session() as session:
        t1, t2 = v.Tag(name="t1"), v.Tag(name="t2")
        article = v.Article(name="a1", tags=[t1, t2])
        other = v.Article(name="b1", tags=[t1])
        session.add_all([article, other])
        session.commit()  # tx1
        a, b, ids = article.id, other.id, (t1.id, t2.id)
        article.tags = [t2]
        other.tags = [t2]
        other.name = "b2"
        article.name = "a2"
        session.commit()  # tx2

    with v.session() as session:
        first_version(session, v, a).revert(
            relations=["tags", "tags.articles", "tags.articles.tags"]
        )
        session.commit()

    assert table(v, "article", "id", "name") == [(a, "a1"), (b, "b1")]
    assert table(v, "article_tag", "article_id", "tag_id") == sorted(
        [(a, ids[0]), (a, ids[1]), (b, ids[0])]
    )


# -- deleted parent ----------------------------------------------------------------


def test_revert_recreates_deleted_parent_with_relations(versioned, strategy):
    v = versioned(blog("tags", "comments", "detail"), options={"strategy": strategy})
    with v.session() as session:
        t1 = v.Tag(name="t1")
        article = v.Article(
            name="a1",
            tags=[t1],
            comments=[v.Comment(body="c1"), v.Comment(body="c2")],
            detail=v.Detail(text="d1"),
        )
        session.add(article)
        session.commit()  # tx1
        a, t1_id = article.id, t1.id
        comment_ids = sorted(c.id for c in article.comments)
        detail_id = article.detail.id
        session.delete(article)  # cascades to comments and detail, unlinks t1
        session.commit()  # tx2
    assert v.rows("article") == [] and v.rows("comment") == [] and v.rows("article_tag") == []

    with v.session() as session:
        article = first_version(session, v, a).revert(relations=["tags", "comments", "detail"])
        assert article.id == a
        session.commit()
        revert_tx = last_transaction(v)

    assert table(v, "article", "id", "name") == [(a, "a1")]
    assert table(v, "comment", "id", "body", "article_id") == [
        (comment_ids[0], "c1", a),
        (comment_ids[1], "c2", a),
    ]
    assert table(v, "detail", "id", "text", "article_id") == [(detail_id, "d1", a)]
    assert table(v, "article_tag", "article_id", "tag_id") == [(a, t1_id)]
    assert written_in(v, "article_version", revert_tx, "id", "operation_type") == [(a, INSERT)]
    assert written_in(v, "article_tag_version", revert_tx, "tag_id", "operation_type") == [
        (t1_id, INSERT)
    ]
    # The recreated article's history reads the restored relations.
    with v.session() as session:
        latest = first_version(session, v, a, index=-1)
        assert latest.operation_type == Operation.INSERT
        assert sorted(c.body for c in latest.comments) == ["c1", "c2"]
        assert [t.name for t in latest.tags] == ["t1"]


def test_revert_to_version_before_relation_changes_of_later_versions(versioned, strategy):
    """Reverting to the middle version restores the relations as of that transaction."""
    v = versioned(blog("tags"), options={"strategy": strategy})
    with v.session() as session:
        t1, t2, t3 = v.Tag(name="t1"), v.Tag(name="t2"), v.Tag(name="t3")
        article = v.Article(name="a1", tags=[t1])
        session.add_all([article, t2, t3])
        session.commit()  # tx1
        a, ids = article.id, (t1.id, t2.id, t3.id)
        article.tags.append(t2)
        article.name = "a2"
        session.commit()  # tx2
        article.tags = [t3]
        article.name = "a3"
        session.commit()  # tx3

    with v.session() as session:
        first_version(session, v, a, index=1).revert(relations=["tags"])
        session.commit()

    assert table(v, "article", "name") == [("a2",)]
    assert table(v, "article_tag", "article_id", "tag_id") == [(a, ids[0]), (a, ids[1])]


# -- errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relation", "owner", "name"),
    [
        ("nonexistent", "Article", "nonexistent"),
        ("tags.bogus", "Tag", "bogus"),
        ("comments.author.bogus", "Author", "bogus"),
    ],
)
def test_unknown_relation_raises_reverter_exception(versioned, relation, owner, name):
    v = versioned(blog("tags", "comments", "authors"))
    with v.session() as session:
        author = v.Author(name="Ann")
        article = v.Article(
            name="a1", tags=[v.Tag(name="t1")], comments=[v.Comment(body="c", author=author)]
        )
        session.add(article)
        session.commit()
        version = article.versions[0]
        with pytest.raises(ReverterException) as caught:
            version.revert(relations=[relation])
    assert isinstance(caught.value, VersioningError)
    message = str(caught.value)
    assert owner in message
    assert name in message
