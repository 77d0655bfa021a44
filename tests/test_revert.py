"""Reverting (SPEC §5): an object's own columns; unknown relation names.

Reverting relationships (``relations=[...]``) is covered elsewhere.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from sqlalchemy_history import Operation, VersioningError, version_class
from sqlalchemy_history.reverter import ReverterException

STRATEGIES = ["validity", "subquery"]


def article_models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)

    return locals()


@pytest.fixture(params=STRATEGIES)
def strategy(request):
    return request.param


def history(v, article_id):
    """Return (operation_type, name, content) of every version of one article, in order."""
    rows = v.rows("article_version", ["transaction_id"])
    return [(r["operation_type"], r["name"], r["content"]) for r in rows if r["id"] == article_id]


def versions_of(session, v, article_id):
    AV = version_class(v.Article)
    return session.scalars(
        sa.select(AV).where(AV.id == article_id).order_by(AV.transaction_id)
    ).all()


def test_revert_to_earlier_version_restores_columns(versioned, strategy):
    v = versioned(article_models, options={"strategy": strategy})
    with v.session() as session:
        article = v.Article(name="a", content="first")
        session.add(article)
        session.commit()
        article.name = "b"
        article.content = "second"
        session.commit()
        article.name = "c"
        session.commit()

        result = article.versions[0].revert()
        assert result is article
        assert (article.name, article.content) == ("a", "first")
        session.commit()
        article_id = article.id

    assert v.rows("article") == [{"id": article_id, "name": "a", "content": "first"}]
    assert history(v, article_id) == [
        (Operation.INSERT, "a", "first"),
        (Operation.UPDATE, "b", "second"),
        (Operation.UPDATE, "c", "second"),
        (Operation.UPDATE, "a", "first"),
    ]


def test_revert_does_not_commit(versioned):
    v = versioned(article_models)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        article.versions[0].revert()
        assert article in session.dirty
        session.rollback()
        assert article.name == "b"
        assert article.versions.count() == 2
    assert [r["name"] for r in v.rows("article")] == ["b"]


def test_revert_recreates_a_deleted_object(versioned, strategy):
    v = versioned(article_models, options={"strategy": strategy})
    with v.session() as session:
        article = v.Article(name="a", content="x")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        article_id = article.id
        session.delete(article)
        session.commit()

    with v.session() as session:
        versions = versions_of(session, v, article_id)
        assert [x.operation_type for x in versions] == [0, 1, 2]
        restored = versions[1].revert()
        assert isinstance(restored, v.Article)
        assert (restored.id, restored.name, restored.content) == (article_id, "b", "x")
        session.commit()
        assert session.get(v.Article, article_id) is restored

    assert v.rows("article") == [{"id": article_id, "name": "b", "content": "x"}]
    # The row did not exist before that transaction: it is inserted again.
    assert history(v, article_id)[-1] == (Operation.INSERT, "b", "x")
    assert len(history(v, article_id)) == 4


def test_revert_to_delete_version_deletes_the_object(versioned, strategy):
    v = versioned(article_models, options={"strategy": strategy})
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article_id = article.id
        session.delete(article)
        session.commit()
    with v.session() as session:
        versions_of(session, v, article_id)[0].revert()
        session.commit()
    assert [r["name"] for r in v.rows("article")] == ["a"]

    with v.session() as session:
        delete_version = versions_of(session, v, article_id)[1]
        assert delete_version.operation_type == Operation.DELETE
        delete_version.revert()
        session.commit()
        assert session.get(v.Article, article_id) is None

    assert v.rows("article") == []
    assert [op for op, _, _ in history(v, article_id)] == [
        Operation.INSERT,
        Operation.DELETE,
        Operation.INSERT,
        Operation.DELETE,
    ]


def test_revert_leaves_excluded_columns_alone(versioned):
    def define(Base):
        class Article(Base):
            __versioned__ = {"exclude": ["views"]}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(255))
            views = sa.Column(sa.Integer)

        return locals()

    v = versioned(define)
    with v.session() as session:
        article = v.Article(name="a", views=1)
        session.add(article)
        session.commit()
        article.name = "b"
        article.views = 2
        session.commit()
        article.versions[0].revert()
        session.commit()
        assert (article.name, article.views) == ("a", 2)
    assert [(r["name"], r["views"]) for r in v.rows("article")] == [("a", 2)]


def test_revert_with_column_alias(versioned):
    def define(Base):
        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            title = sa.Column("name", sa.Unicode(255))

        return locals()

    v = versioned(define)
    with v.session() as session:
        article = v.Article(title="a")
        session.add(article)
        session.commit()
        article.title = "b"
        session.commit()
        article.versions[0].revert()
        session.commit()
        assert article.title == "a"
    assert [r["name"] for r in v.rows("article")] == ["a"]
    assert [r["name"] for r in v.rows("article_version", ["transaction_id"])] == ["a", "b", "a"]


def membership_models(Base):
    class Membership(Base):
        __versioned__ = {}
        __tablename__ = "membership"
        group_id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        user_id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        role = sa.Column(sa.Unicode(50))

    return locals()


def test_revert_composite_primary_key(versioned, strategy):
    v = versioned(membership_models, options={"strategy": strategy})
    with v.session() as session:
        mine = v.Membership(group_id=1, user_id=2, role="member")
        theirs = v.Membership(group_id=1, user_id=3, role="guest")
        session.add_all([mine, theirs])
        session.commit()
        mine.role = "admin"
        theirs.role = "member"
        session.commit()
        mine.role = "owner"
        session.commit()

        assert mine.versions[0].revert() is mine
        session.commit()
        assert mine.role == "member"
        assert theirs.role == "member"

        session.delete(mine)
        session.commit()
    with v.session() as session:
        MV = version_class(v.Membership)
        last = session.scalars(
            sa.select(MV)
            .where(MV.group_id == 1, MV.user_id == 2, MV.operation_type != Operation.DELETE)
            .order_by(MV.transaction_id.desc())
        ).first()
        assert last.role == "member"
        last.revert()
        session.commit()
    assert [(r["user_id"], r["role"]) for r in v.rows("membership")] == [
        (2, "member"),
        (3, "member"),
    ]
    roles = [
        (r["operation_type"], r["role"])
        for r in v.rows("membership_version", ["transaction_id"])
        if r["user_id"] == 2
    ]
    assert roles == [
        (Operation.INSERT, "member"),
        (Operation.UPDATE, "admin"),
        (Operation.UPDATE, "owner"),
        (Operation.UPDATE, "member"),
        (Operation.DELETE, "member"),
        (Operation.INSERT, "member"),
    ]


@pytest.mark.parametrize("relation", ["nope", "nope.deeper"])
def test_revert_unknown_relation_names_class_and_relation(versioned, relation):
    def define(Base):
        class Category(Base):
            __versioned__ = {}
            __tablename__ = "category"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)

        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(255))
            category_id = sa.Column(sa.Integer, sa.ForeignKey(Category.id))
            category = sa.orm.relationship(Category)

        return locals()

    v = versioned(define)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        version = article.versions[0]
        with pytest.raises(ReverterException) as caught:
            version.revert(relations=[relation])
        assert isinstance(caught.value, VersioningError)
        message = str(caught.value)
        assert "Article" in message
        assert "nope" in message
        # Nothing was changed by the failed revert.
        assert article.name == "b"
        assert not session.dirty
