"""Transactions, flush merging, rollback and savepoints."""

from __future__ import annotations

import pytest

from ._helpers import DELETE, INSERT, UPDATE, add, articles, pick, tx_ids, versions

__all__ = ["TestConcurrentSessions", "TestFlushMerging", "TestRollback", "TestSavepoints"]


class TestFlushMerging:
    @pytest.mark.requires("multi_flush_merge")
    def test_several_flushes_merge_into_one_version_per_object(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "b"
            session.flush()
            article.content = "c"
            session.flush()
            article.name = "d"
            session.commit()
        assert pick(versions(m), "name", "content", "operation_type") == [
            ("a", None, INSERT),
            ("d", "c", UPDATE),
        ]
        assert len(tx_ids(m)) == 2

    @pytest.mark.requires("insert_then_update_is_one_insert")
    def test_insert_then_update_is_one_insert_with_final_values(self, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            article = m.Article(name="a")
            session.add(article)
            session.flush()
            article.name = "b"
            session.commit()
        assert pick(versions(m), "name", "operation_type", "end_transaction_id") == [
            ("b", INSERT, None)
        ]

    @pytest.mark.requires("multi_flush_merge")
    def test_update_then_delete_is_one_delete(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "b"
            session.flush()
            session.delete(article)
            session.commit()
        assert pick(versions(m), "name", "operation_type") == [("a", INSERT), ("b", DELETE)]

    @pytest.mark.requires("delete_then_insert_is_one_update")
    def test_delete_then_reinsert_with_same_key_is_one_update(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            session.delete(session.get(m.Article, article_id))
            session.flush()
            session.add(m.Article(id=article_id, name="back"))
            session.commit()
        rows = versions(m)
        assert pick(rows, "id", "name", "operation_type") == [
            (article_id, "a", INSERT),
            (article_id, "back", UPDATE),
        ]
        assert rows[0]["end_transaction_id"] == rows[1]["transaction_id"]

    def test_one_transaction_row_per_database_transaction(self, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            first = m.Article(name="a")
            session.add(first)
            session.flush()
            session.add(m.Article(name="b"))
            session.flush()
            first.name = "c"
            session.commit()
        rows = versions(m)
        assert len(tx_ids(m)) == 1
        assert sorted(r["name"] for r in rows) == ["b", "c"]
        assert {r["transaction_id"] for r in rows} == set(tx_ids(m))


class TestRollback:
    def test_rollback_after_flush_leaves_nothing(self, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            session.add(m.Article(name="a"))
            session.flush()
            session.rollback()
        assert versions(m) == []
        assert tx_ids(m) == []
        add(m, m.Article(name="b"))  # the control: a committed insert is recorded
        assert pick(versions(m), "name", "operation_type") == [("b", INSERT)]
        assert len(tx_ids(m)) == 1

    def test_next_transaction_after_rollback_records_normally(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "lost"
            session.flush()
            session.rollback()
            article.name = "kept"
            session.commit()
        assert pick(versions(m), "name", "operation_type") == [("a", INSERT), ("kept", UPDATE)]
        assert len(tx_ids(m)) == 2


@pytest.mark.requires("savepoints")
class TestSavepoints:
    def test_rolled_back_savepoint_leaves_no_version_and_no_transaction(self, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            nested = session.begin_nested()
            session.add(m.Article(name="a"))
            session.flush()
            nested.rollback()
            session.commit()
        assert versions(m) == []
        assert tx_ids(m) == []
        add(m, m.Article(name="b"))  # the control: the next transaction records normally
        assert pick(versions(m), "name", "operation_type") == [("b", INSERT)]
        assert len(tx_ids(m)) == 1

    def test_change_before_savepoint_survives_its_rollback(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "before"
            session.flush()
            nested = session.begin_nested()
            article.name = "inside"
            session.flush()
            nested.rollback()
            session.commit()
        assert pick(versions(m), "name", "operation_type") == [("a", INSERT), ("before", UPDATE)]

    def test_released_savepoint_keeps_its_rows(self, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            with session.begin_nested():
                session.add(m.Article(name="a"))
            session.commit()
        assert pick(versions(m), "name", "operation_type") == [("a", INSERT)]
        assert len(tx_ids(m)) == 1

    def test_nested_savepoints_inner_rolled_back(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            outer = session.begin_nested()
            article.name = "outer"
            session.flush()
            inner = session.begin_nested()
            article.name = "inner"
            session.add(m.Article(name="gone"))
            session.flush()
            inner.rollback()
            outer.commit()
            session.commit()
        assert pick(versions(m), "name", "operation_type") == [("a", INSERT), ("outer", UPDATE)]

    @pytest.mark.requires("savepoint_rollback_bookkeeping")
    def test_insert_after_a_rolled_back_savepoint(self, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            nested = session.begin_nested()
            session.add(m.Article(name="gone"))
            session.flush()
            nested.rollback()
            session.add(m.Article(name="kept"))
            session.commit()
        assert pick(versions(m), "name", "operation_type") == [("kept", INSERT)]
        assert len(tx_ids(m)) == 1

    @pytest.mark.requires("savepoint_rollback_bookkeeping")
    def test_delete_inside_rolled_back_savepoint_then_update(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            nested = session.begin_nested()
            session.delete(article)
            session.flush()
            nested.rollback()
            article.name = "b"
            session.commit()
        assert pick(versions(m), "name", "operation_type") == [("a", INSERT), ("b", UPDATE)]


@pytest.mark.requires("concurrent_transactions")
class TestConcurrentSessions:
    def test_interleaved_sessions_get_their_own_transactions(self, conformance_models):
        m = conformance_models(articles)
        first_id = add(m, m.Article(name="one"))
        second_id = add(m, m.Article(name="two"))
        with m.session() as s1, m.session() as s2:
            s1.get(m.Article, first_id).name = "one-b"
            s1.flush()
            s2.get(m.Article, second_id).name = "two-b"
            s2.flush()
            s2.commit()
            s1.commit()
        rows = versions(m)
        updates = {r["id"]: r["transaction_id"] for r in rows if r["operation_type"] == UPDATE}
        assert set(updates) == {first_id, second_id}
        assert updates[first_id] != updates[second_id]
        assert len(tx_ids(m)) == 4
        assert history_is_closed_by(rows, first_id, updates[first_id])

    @pytest.mark.requires("non_blocking_concurrent_writes")
    def test_rollback_of_one_session_leaves_the_other_intact(self, conformance_models):
        m = conformance_models(articles)
        with m.session() as s1, m.session() as s2:
            s1.add(m.Article(name="kept"))
            s1.flush()
            s2.add(m.Article(name="lost"))
            s2.flush()
            s2.rollback()
            s1.commit()
        assert pick(versions(m), "name", "operation_type") == [("kept", INSERT)]
        assert len(tx_ids(m)) == 1


def history_is_closed_by(rows, article_id, transaction_id):
    """Whether the INSERT version of ``article_id`` was closed by ``transaction_id``."""
    (insert,) = [r for r in rows if r["id"] == article_id and r["operation_type"] == INSERT]
    return insert["end_transaction_id"] == transaction_id
