"""TransactionChangesPlugin: ``transaction_changes`` rows, ``changes`` and ``entity_names``."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import count_statements
from sqlalchemy_history import version_class
from sqlalchemy_history.plugins import TransactionChangesPlugin


def models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        note = sa.Column(sa.Unicode(255))

    class Tag(Base):
        __versioned__ = {"exclude": ["note"]}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        note = sa.Column(sa.Unicode(255))

    class TextItem(Base):
        __versioned__ = {}
        __tablename__ = "text_item"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        kind = sa.Column(sa.Unicode(20))
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "text_item"}

    class BlogPost(TextItem):
        __tablename__ = "blog_post"
        id = sa.Column(sa.Integer, sa.ForeignKey("text_item.id"), primary_key=True)
        title = sa.Column(sa.Unicode(50))
        __mapper_args__ = {"polymorphic_identity": "blog_post"}

    return locals()


@pytest.fixture
def v(versioned):
    plugin = TransactionChangesPlugin()
    v = versioned(models, plugins=[plugin])
    v.plugin = plugin
    return v


def test_table_layout(v):
    table = v.metadata.tables["transaction_changes"]
    assert [c.name for c in table.primary_key] == ["transaction_id", "entity_name"]
    assert set(table.c.keys()) == {"transaction_id", "entity_name"}
    assert v.plugin.model_class is v.manager.transaction_changes_cls
    assert sa.inspect(v.plugin.model_class).local_table is table


def test_changes_and_entity_names(v):
    with v.session() as session:
        article = v.Article(name="a")
        session.add_all([article, v.Tag(name="t")])
        session.commit()
        tx = article.versions[0].transaction
        assert tx.entity_names == ["Article", "Tag"]
        assert [c.entity_name for c in tx.changes] == ["Article", "Tag"]
        assert tx.changes[0].transaction is tx
        assert set(tx.changed_entities) == {version_class(v.Article), version_class(v.Tag)}


def test_subclass_name_is_recorded(v):
    with v.session() as session:
        post = v.BlogPost(title="p")
        session.add(post)
        session.commit()
        assert post.versions[0].transaction.entity_names == ["BlogPost"]


def test_one_statement_per_flush_and_no_duplicates_across_flushes(v):
    with v.session() as session:
        with count_statements(v.engine) as counter:
            session.add_all([v.Article(name=str(i)) for i in range(30)])
            session.flush()
            session.add_all([v.Article(name="more"), v.Tag(name="t")])
            session.flush()
            session.add(v.Article(name="only known names"))
            session.flush()
        inserts = counter.matching("INSERT INTO transaction_changes")
        # first flush: Article; second: Tag only; third: nothing new
        assert len(inserts) == 2
        session.commit()
    rows = v.rows("transaction_changes")
    assert [r["entity_name"] for r in rows] == ["Article", "Tag"]


def test_unchanged_objects_and_excluded_columns_record_nothing(v):
    with v.session() as session:
        article, tag = v.Article(name="a"), v.Tag(name="t")
        session.add_all([article, tag])
        session.commit()
        assert article.name == "a"  # loaded, so the core sees an unchanged value
        article.name = "a"
        tag.note = "excluded"
        session.commit()
        article.name = "b"
        session.commit()
    rows = v.rows("transaction_changes", ["transaction_id", "entity_name"])
    assert [r["entity_name"] for r in rows] == ["Article", "Tag", "Article"]
    assert len({r["transaction_id"] for r in rows}) == 2


def test_rollback_writes_nothing(v):
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.flush()
        session.rollback()
    assert v.rows("transaction_changes") == []


def test_savepoint_rollback_is_not_remembered(v):
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.flush()
        savepoint = session.begin_nested()
        session.add(v.Tag(name="t"))
        session.flush()
        savepoint.rollback()
        session.add(v.Tag(name="t2"))
        session.commit()
    assert [r["entity_name"] for r in v.rows("transaction_changes")] == ["Article", "Tag"]


def test_query_transactions_by_entity(v):
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.commit()
        session.add(v.Tag(name="t"))
        session.commit()
        Changes = v.plugin.model_class
        Transaction = v.Transaction
        with_tags = session.scalars(
            sa.select(Transaction)
            .join(Changes, Changes.transaction_id == Transaction.id)
            .where(Changes.entity_name == "Tag")
        ).all()
        assert [tx.entity_names for tx in with_tags] == [["Tag"]]
