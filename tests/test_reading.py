"""Reading history (SPEC §4): ``obj.versions``, version objects, traversal, changeset.

Temporal relationships and many-to-many are covered elsewhere.
"""

from __future__ import annotations

import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import count_statements
from sqlalchemy_history import Operation, version_class

CUSTOM_NAMES = {
    "transaction_column_name": "tx_id",
    "end_transaction_column_name": "end_tx_id",
    "operation_type_column_name": "op",
}

CONFIGS = {
    "validity": {},
    "subquery": {"strategy": "subquery"},
    "custom-names": dict(CUSTOM_NAMES),
    "custom-names-subquery": {**CUSTOM_NAMES, "strategy": "subquery"},
}


def article_models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)

    return locals()


@pytest.fixture(params=list(CONFIGS), ids=list(CONFIGS))
def config(request):
    return CONFIGS[request.param]


def names_of(options):
    """Return (transaction, end transaction, operation) column names for ``options``."""
    return (
        options.get("transaction_column_name", "transaction_id"),
        options.get("end_transaction_column_name", "end_transaction_id"),
        options.get("operation_type_column_name", "operation_type"),
    )


def three_versions(v, session):
    """Insert an article, then update it twice (three transactions); return it."""
    article = v.Article(name="a", content="x")
    session.add(article)
    session.commit()
    article.name = "b"
    session.commit()
    article.name = "c"
    article.content = None
    session.commit()
    return article


def select_versions(AV, article_id, tx_name="transaction_id"):
    return sa.select(AV).where(AV.id == article_id).order_by(getattr(AV, tx_name))


# -- obj.versions ------------------------------------------------------------------


def test_versions_is_a_dynamic_relationship_ordered_by_transaction(versioned):
    v = versioned(article_models)
    AV = version_class(v.Article)
    with v.session() as session:
        article = three_versions(v, session)
        other = v.Article(name="other")
        session.add(other)
        session.commit()

        assert article.versions.count() == 3
        assert other.versions.count() == 1
        versions = article.versions.all()
        assert [x.name for x in versions] == ["a", "b", "c"]
        tx_ids = [x.transaction_id for x in versions]
        assert tx_ids == sorted(tx_ids)
        assert len(set(tx_ids)) == 3
        assert article.versions[0].name == "a"
        assert article.versions[2].name == "c"
        assert [x.name for x in article.versions[1:]] == ["b", "c"]
        # Filtering on the dynamic relationship stays within this object's history.
        assert article.versions.filter(AV.name == "b").one().transaction_id == tx_ids[1]
        assert [x.name for x in article.versions.filter_by(operation_type=1)] == ["b", "c"]
        assert article.versions.filter(AV.name == "other").all() == []


def test_versions_is_write_only_with_support_async(versioned):
    v = versioned(article_models, options={"support_async": True})
    AV = version_class(v.Article)
    with v.session() as session:
        article = three_versions(v, session)
        assert isinstance(article.versions, sa.orm.WriteOnlyCollection)
        assert not hasattr(article.versions, "count")
        versions = session.scalars(article.versions.select()).all()
        assert [x.name for x in versions] == ["a", "b", "c"]
        assert [x.operation_type for x in versions] == [0, 1, 1]
        picked = session.scalars(article.versions.select().where(AV.name == "b")).all()
        assert [x.name for x in picked] == ["b"]


# -- version objects -----------------------------------------------------------------


def test_version_parent_is_the_live_object_and_none_after_delete(versioned):
    v = versioned(article_models)
    AV = version_class(v.Article)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article_id = article.id
        version = article.versions[0]
        assert version.version_parent is article
        session.delete(article)
        session.commit()
    with v.session() as session:
        versions = session.scalars(select_versions(AV, article_id)).all()
        assert [x.operation_type for x in versions] == [0, 2]
        assert all(x.version_parent is None for x in versions)


def test_version_transaction_is_issued_now_in_naive_utc(versioned):
    v = versioned(article_models)
    with v.session() as session:
        before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        after = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        first, second = article.versions.all()
        tx = first.transaction
        assert isinstance(tx, v.Transaction)
        assert tx.id == first.transaction_id
        assert second.transaction.id == second.transaction_id != tx.id
        issued = tx.issued_at
        assert isinstance(issued, datetime.datetime)
        assert issued.tzinfo is None
        # Databases may drop fractional seconds; a UTC clock is within seconds of ours,
        # a local-time clock would be off by the UTC offset (unless the machine runs UTC).
        slack = datetime.timedelta(seconds=5)
        assert before - slack <= issued <= after + slack
        assert second.transaction.issued_at >= issued - datetime.timedelta(seconds=1)


def test_traversal_and_changeset(versioned, config):
    v = versioned(article_models, options=config)
    AV = version_class(v.Article)
    tx_name, _, op_name = names_of(config)
    with v.session() as session:
        article = three_versions(v, session)
        article_id = article.id
        session.delete(article)
        session.commit()
    with v.session() as session:
        versions = session.scalars(select_versions(AV, article_id, tx_name)).all()
        assert len(versions) == 4
        assert [getattr(x, op_name) for x in versions] == [
            Operation.INSERT,
            Operation.UPDATE,
            Operation.UPDATE,
            Operation.DELETE,
        ]
        assert [x.index for x in versions] == [0, 1, 2, 3]
        assert versions[0].previous is None
        assert versions[3].next is None
        for earlier, later in zip(versions, versions[1:]):
            assert earlier.next is later
            assert later.previous is earlier
        assert versions[0].changeset == {
            "id": [None, article_id],
            "name": [None, "a"],
            "content": [None, "x"],
        }
        assert versions[1].changeset == {"name": ["a", "b"]}
        assert versions[2].changeset == {"name": ["b", "c"], "content": ["x", None]}
        # A delete that changed nothing beforehand shows no change.
        assert versions[3].changeset == {}


def test_changeset_of_insert_leaves_out_null_values(versioned):
    v = versioned(article_models)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        assert article.versions[0].changeset == {"id": [None, article.id], "name": [None, "a"]}


def test_traversal_is_per_object(versioned, config):
    v = versioned(article_models, options=config)
    with v.session() as session:
        first = v.Article(name="first")
        session.add(first)
        session.commit()
        second = v.Article(name="second")
        session.add(second)
        session.commit()
        first.name = "first-2"
        session.commit()
        second.name = "second-2"
        session.commit()
        v1, v2 = first.versions.all()
        w1, w2 = second.versions.all()
        assert v1.next is v2
        assert v2.previous is v1
        assert w1.next is w2
        assert w2.previous is w1
        assert v2.index == w2.index == 1
        assert w2.changeset == {"name": ["second", "second-2"]}


def test_next_is_never_stale(versioned, config):
    """A version loaded before newer history was written still finds its successors."""
    v = versioned(article_models, options=config)
    _, end_name, _ = names_of(config)
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.commit()

    first = Session(v.engine, expire_on_commit=False)
    try:
        article = first.scalars(sa.select(v.Article)).one()
        v1 = article.versions[0]
        assert v1.next is None
        if "strategy" not in config:
            assert getattr(v1, end_name) is None
        # End the database transaction (so a new snapshot is read later) while keeping
        # every loaded attribute of v1 as it was.
        first.commit()

        with v.session() as other:
            same = other.get(v.Article, article.id)
            same.name = "b"
            other.commit()
            same.name = "c"
            other.commit()

        following = v1.next
        assert following is not None
        assert following.name == "b"
        assert following.next is not None
        assert following.next.name == "c"
        assert following.next.next is None
        assert v1.index == 0
        assert following.next.index == 2
    finally:
        first.close()


def test_traversal_answers_are_kept_until_the_session_flushes(versioned, config):
    """``previous``/``index`` ask the database once per session transaction; a flush, a
    rollback or a new transaction asks again; a ``next`` that found nothing is never kept."""
    v = versioned(article_models, options=config)
    with v.session() as session:
        article = three_versions(v, session)
        v1, v2, v3 = article.versions.all()
        with count_statements(v.engine) as counter:
            assert v3.previous is v2 and v2.previous is v1 and v1.previous is None
            assert v2.index == 1
        asked = counter.count
        assert asked == 4
        with count_statements(v.engine) as counter:
            assert v3.previous is v2 and v1.previous is None and v2.index == 1
            # the changeset reuses the previous version already read
            assert v3.changeset == {"name": ["b", "c"], "content": ["x", None]}
            assert v3.next is None and v3.next is None  # nothing found: asked each time
        assert counter.count == 2

        article.name = "d"
        session.flush()  # history changed: every answer is asked again
        with count_statements(v.engine) as counter:
            v4 = v3.next
            assert v4 is not None and v4.name == "d" and v4.previous is v3
        assert counter.count == 2
        session.rollback()  # the new version is gone, and so are the answers about it
        assert v3.name == "c"  # (the rollback expired v3: reloaded here, not counted)
        with count_statements(v.engine) as counter:
            assert v3.next is None and v3.previous is not None
        assert counter.count == 2


def test_a_rolled_back_savepoint_drops_traversal_answers(versioned):
    v = versioned(article_models)
    with v.session() as session:
        article = three_versions(v, session)
        last = article.versions.all()[-1]
        savepoint = session.begin_nested()
        article.name = "in savepoint"
        session.flush()
        following = last.next
        assert following is not None and following.previous is last
        savepoint.rollback()
        assert last.next is None


# -- version classes are ordinary mapped classes -----------------------------------


def test_version_classes_can_be_queried(versioned):
    v = versioned(article_models)
    AV = version_class(v.Article)
    Transaction = v.Transaction
    with v.session() as session:
        article = three_versions(v, session)
        tx_ids = [x.transaction_id for x in article.versions]

        found = session.scalars(sa.select(AV).where(AV.name == "b")).all()
        assert [(x.id, x.transaction_id) for x in found] == [(article.id, tx_ids[1])]

        found = session.query(AV).filter_by(transaction_id=tx_ids[2]).one()
        assert found.name == "c"

        rows = session.execute(
            sa.select(AV.name, Transaction.id)
            .join(Transaction, AV.transaction_id == Transaction.id)
            .order_by(Transaction.id)
        ).all()
        assert rows == [("a", tx_ids[0]), ("b", tx_ids[1]), ("c", tx_ids[2])]

        joined = session.scalars(
            sa.select(AV).join(AV.transaction).where(Transaction.id == tx_ids[0])
        ).all()
        assert [x.name for x in joined] == ["a"]
