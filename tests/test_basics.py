"""The quick-start path on every database: insert, update, delete, read, revert."""

from __future__ import annotations

import sqlalchemy as sa

from sqlalchemy_history import Operation, version_class


def article_models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)

    return locals()


def test_insert_update_delete_are_recorded(versioned):
    v = versioned(article_models)
    with v.session() as session:
        article = v.Article(name="a", content="c")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        session.delete(article)
        session.commit()
    rows = v.rows("article_version", ["transaction_id"])
    assert [r["operation_type"] for r in rows] == [0, 1, 2]
    assert [r["name"] for r in rows] == ["a", "b", "b"]
    assert [r["end_transaction_id"] for r in rows] == [
        rows[1]["transaction_id"],
        rows[2]["transaction_id"],
        None,
    ]
    assert len(v.rows("transaction")) == 3


def test_versions_relationship_and_revert(versioned):
    v = versioned(article_models)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        assert [x.name for x in article.versions] == ["a", "b"]
        first = article.versions[0]
        assert isinstance(first, version_class(v.Article))
        assert first.operation_type == Operation.INSERT
        assert first.changeset == {"id": [None, article.id], "name": [None, "a"]}
        assert article.versions[1].changeset == {"name": ["a", "b"]}
        assert first.next.name == "b"
        assert article.versions[1].previous.name == "a"
        assert first.previous is None
        assert article.versions[1].index == 1
        first.revert()
        session.commit()
        assert article.name == "a"
        assert article.versions.count() == 3
