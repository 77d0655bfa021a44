"""Temporal queries: the state of a table as of a transaction, with plain SELECTs.

Version classes are ordinary mapped classes, so "every article as it was after transaction
T" is one query with the strategy's predicate, written here the way users write it:

- validity: ``transaction_id <= T AND (end_transaction_id > T OR end_transaction_id IS NULL)``
- subquery: ``transaction_id = (SELECT max(transaction_id) ... WHERE same id AND <= T)``

and ``operation_type != DELETE`` in both. Relationship-based temporal reads are in
``test_relationships`` (requirement ``temporal_relationships``).
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import aliased

from ._helpers import CONFIGS, DELETE, StatementCounter, articles, tx_ids

__all__ = ["TestAsOfQueries", "TestTransactionJoins"]


def as_of(version_cls, transaction_id, tx, end):
    """The predicate selecting each object's version valid at ``transaction_id``."""
    tx_col = getattr(version_cls, tx)
    if end is not None:
        end_col = getattr(version_cls, end)
        valid = sa.and_(
            tx_col <= transaction_id, sa.or_(end_col > transaction_id, end_col.is_(None))
        )
    else:
        older = aliased(version_cls)
        latest = (
            sa.select(sa.func.max(getattr(older, tx)))
            .where(older.id == version_cls.id, getattr(older, tx) <= transaction_id)
            .correlate(version_cls)
            .scalar_subquery()
        )
        valid = tx_col == latest
    return valid


def _timeline(m, op):
    """T1: a1, a2 inserted. T2: a1 renamed. T3: a2 deleted, a3 inserted. T4: a3 renamed."""
    with m.session() as session:
        a1, a2 = m.Article(name="a1"), m.Article(name="a2")
        session.add_all([a1, a2])
        session.commit()
        a1.name = "a1-v2"
        session.commit()
        session.delete(a2)
        a3 = m.Article(name="a3")
        session.add(a3)
        session.commit()
        a3.name = "a3-v2"
        session.commit()
    return tx_ids(m)


# Both strategies, one of them with custom column names (test_strategies covers the rest).
@pytest.mark.parametrize("config", ["validity", "subquery-custom-names"])
class TestAsOfQueries:
    def test_state_of_the_table_after_each_transaction(self, history, conformance_models, config):
        options, tx, end, op = CONFIGS[config]
        m = conformance_models(articles, options=options)
        t1, t2, t3, t4 = _timeline(m, op)
        ArticleVersion = history.version_class(m.Article)
        expected = {
            t1: ["a1", "a2"],
            t2: ["a1-v2", "a2"],
            t3: ["a1-v2", "a3"],
            t4: ["a1-v2", "a3-v2"],
        }
        with m.session() as session:
            for transaction_id, names in expected.items():
                statement = (
                    sa.select(ArticleVersion.name)
                    .where(
                        as_of(ArticleVersion, transaction_id, tx, end),
                        getattr(ArticleVersion, op) != DELETE,
                    )
                    .order_by(ArticleVersion.name)
                )
                assert session.scalars(statement).all() == names, transaction_id
            deleted = session.scalars(
                sa.select(ArticleVersion.name).where(
                    as_of(ArticleVersion, t4, tx, end), getattr(ArticleVersion, op) == DELETE
                )
            ).all()
            assert deleted == ["a2"]

    def test_one_query_for_every_object(self, history, conformance_models, config):
        options, tx, end, op = CONFIGS[config]
        m = conformance_models(articles, options=options)
        t1, *_ = _timeline(m, op)
        ArticleVersion = history.version_class(m.Article)
        with m.session() as session, StatementCounter(m.engine) as counter:
            rows = session.scalars(
                sa.select(ArticleVersion).where(as_of(ArticleVersion, t1, tx, end))
            ).all()
            assert sorted(r.name for r in rows) == ["a1", "a2"]
        assert len(counter.statements) == 1


class TestTransactionJoins:
    def test_versions_joined_to_their_transactions(self, history, conformance_models):
        m = conformance_models(articles)
        t1, t2, t3, t4 = _timeline(m, "operation_type")
        ArticleVersion = history.version_class(m.Article)
        Transaction = history.transaction_class(m.Article)
        with m.session() as session:
            rows = session.execute(
                sa.select(Transaction.id, sa.func.count())
                .join(ArticleVersion, ArticleVersion.transaction_id == Transaction.id)
                .group_by(Transaction.id)
                .order_by(Transaction.id)
            ).all()
            assert [tuple(r) for r in rows] == [(t1, 2), (t2, 1), (t3, 2), (t4, 1)]
            issued = session.scalars(sa.select(Transaction.issued_at).order_by(Transaction.id))
            times = list(issued)
            assert times == sorted(times)
