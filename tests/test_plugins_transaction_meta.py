"""TransactionMetaPlugin: ``tx.meta`` dict access, queryable ``transaction_meta`` rows."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import count_statements
from sqlalchemy_history import versioning_context
from sqlalchemy_history.plugins import TransactionMetaPlugin


def models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))

    return locals()


@pytest.fixture
def v(versioned):
    plugin = TransactionMetaPlugin()
    v = versioned(models, plugins=[plugin])
    v.plugin = plugin
    return v


def test_table_layout(v):
    table = v.metadata.tables["transaction_meta"]
    assert [c.name for c in table.primary_key] == ["transaction_id", "key"]
    assert isinstance(table.c.value.type, sa.UnicodeText)
    assert v.manager.transaction_meta_cls is v.plugin.model_class


def test_meta_of_an_existing_transaction(v):
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        tx = article.versions[0].transaction
        assert dict(tx.meta) == {}
        tx.meta = {"some key": "some value"}
        session.commit()
        session.expire_all()
        assert dict(tx.meta) == {"some key": "some value"}


def test_meta_set_on_create_transaction(v):
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.commit()
    with v.session() as session:
        article = session.scalars(sa.select(v.Article)).one()
        article.name = "b"
        uow = v.manager.unit_of_work(session)
        tx = uow.create_transaction(session)
        tx.meta = {"reason": "typo", "ticket": "42"}
        tx.meta["ticket"] = "43"
        session.commit()
        last = article.versions.all()[-1].transaction
        assert dict(last.meta) == {"reason": "typo", "ticket": "43"}
    rows = v.rows("transaction_meta", ["transaction_id", "key"])
    assert [(r["key"], r["value"]) for r in rows] == [("reason", "typo"), ("ticket", "43")]


def test_query_transactions_by_meta(v):
    with v.session() as session:
        for reason in ["import", "fix", "import"]:
            session.add(v.Article(name=reason))
            tx = v.manager.unit_of_work(session).create_transaction(session)
            tx.meta = {"reason": reason}
            session.commit()
        Meta = v.plugin.model_class
        Transaction = v.Transaction
        found = session.scalars(
            sa.select(Transaction)
            .join(Transaction.meta_relation)
            .where(Meta.key == "reason", Meta.value == "import")
            .order_by(Transaction.id)
        ).all()
        assert len(found) == 2
        assert all(tx.meta["reason"] == "import" for tx in found)


def test_context_meta_is_written_with_the_transaction_row(v):
    with v.session() as session:
        with versioning_context(meta={"reason": "bulk", "source": "api"}):
            session.add_all([v.Article(name=str(i)) for i in range(20)])
            with count_statements(v.engine) as counter:
                session.commit()
        assert len(counter.matching("INSERT INTO transaction_meta")) == 1
        tx = session.scalars(sa.select(v.Transaction)).one()
        assert dict(tx.meta) == {"reason": "bulk", "source": "api"}


def test_no_context_meta_costs_no_statement(v):
    with v.session() as session:
        session.add(v.Article(name="a"))
        with count_statements(v.engine) as counter:
            session.commit()
        assert counter.matching("transaction_meta") == []


def test_explicit_meta_wins_over_context(v):
    with v.session() as session:
        with versioning_context(meta={"reason": "context", "source": "api"}):
            session.add(v.Article(name="a"))
            tx = v.manager.unit_of_work(session).create_transaction(session)
            tx.meta["reason"] = "explicit"
            session.commit()
        assert dict(tx.meta) == {"reason": "explicit", "source": "api"}
    rows = v.rows("transaction_meta", ["key"])
    assert [(r["key"], r["value"]) for r in rows] == [("reason", "explicit"), ("source", "api")]


def test_replacing_meta_replaces_context_pairs(v):
    with v.session() as session, versioning_context(meta={"reason": "context", "source": "api"}):
        session.add(v.Article(name="a"))
        tx = v.manager.unit_of_work(session).create_transaction(session)
        tx.meta = {"reason": "explicit"}
        session.commit()
    assert [(r["key"], r["value"]) for r in v.rows("transaction_meta")] == [("reason", "explicit")]


def test_savepoint_rollback_of_the_transaction_row_rewrites_context_meta(v):
    with v.session() as session, versioning_context(meta={"reason": "r"}):
        savepoint = session.begin_nested()
        session.add(v.Article(name="gone"))
        session.flush()
        savepoint.rollback()
        session.add(v.Article(name="kept"))
        session.commit()
    transactions = v.rows("transaction")
    assert len(transactions) == 1
    assert [(r["transaction_id"], r["key"]) for r in v.rows("transaction_meta")] == [
        (transactions[0]["id"], "reason")
    ]
