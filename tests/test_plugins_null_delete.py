"""NullDeletePlugin: DELETE versions keep the primary key and NULL everything else."""

from __future__ import annotations

import sqlalchemy as sa

from conftest import count_statements
from sqlalchemy_history import Operation, remove_versioning
from sqlalchemy_history.plugins import NullDeletePlugin


def models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)

    class Pair(Base):
        __versioned__ = {}
        __tablename__ = "pair"
        left = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        right = sa.Column(sa.Unicode(20), primary_key=True)
        label = sa.Column(sa.Unicode(20))

    return locals()


def test_delete_version_stores_nulls(versioned):
    v = versioned(models, plugins=[NullDeletePlugin()])
    with v.session() as session:
        article = v.Article(name="a", content="c")
        pair = v.Pair(left=1, right="r", label="l")
        session.add_all([article, pair])
        session.commit()
        article.name = "b"
        session.commit()
        session.delete(article)
        session.delete(pair)
        session.commit()
    rows = v.rows("article_version", ["transaction_id"])
    assert [(r["operation_type"], r["name"], r["content"]) for r in rows] == [
        (Operation.INSERT, "a", "c"),
        (Operation.UPDATE, "b", "c"),
        (Operation.DELETE, None, None),
    ]
    assert rows[-1]["id"] == rows[0]["id"]
    pairs = v.rows("pair_version", ["transaction_id"])
    assert [(r["left"], r["right"], r["label"]) for r in pairs] == [(1, "r", "l"), (1, "r", None)]


def test_update_then_delete_in_one_transaction(versioned):
    v = versioned(models, plugins=[NullDeletePlugin()])
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.flush()
        session.delete(article)
        session.commit()
    rows = v.rows("article_version", ["transaction_id"])
    assert [(r["operation_type"], r["name"]) for r in rows] == [
        (Operation.INSERT, "a"),
        (Operation.DELETE, None),
    ]


def test_without_plugin_delete_keeps_last_values(versioned):
    v = versioned(models)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        session.delete(article)
        session.commit()
    assert v.rows("article_version", ["transaction_id"])[-1]["name"] == "a"


def test_costs_no_statement(versioned):
    def count_for(plugins):
        v = versioned(models, plugins=plugins)
        with v.session() as session:
            articles = [v.Article(name=str(i)) for i in range(20)]
            session.add_all(articles)
            session.commit()
            for article in articles:
                session.delete(article)
            with count_statements(v.engine) as counter:
                session.commit()
        return counter.count

    without = count_for([])
    remove_versioning()
    assert count_for([NullDeletePlugin()]) == without
