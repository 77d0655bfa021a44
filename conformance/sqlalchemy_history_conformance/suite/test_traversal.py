"""Reading history: ``versions``, traversal, changeset, version classes, utilities."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ._helpers import CONFIGS, DELETE, INSERT, UPDATE, add, articles, tx_ids

__all__ = ["TestChangeset", "TestTraversal", "TestUtilities", "TestVersionClasses"]


def three_versions(m, session):
    """Insert an article, then update it twice (three transactions); return it."""
    article = m.Article(name="a", content="x")
    session.add(article)
    session.commit()
    article.name = "b"
    session.commit()
    article.name = "c"
    article.content = None
    session.commit()
    return article


# Strategies with custom names are covered in test_strategies; here both strategies run
# the traversal cases whose SQL differs between them.
STRATEGIES = pytest.mark.parametrize("config", ["validity", "subquery"])


class TestTraversal:
    def test_versions_are_ordered_by_transaction(self, history, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            article = three_versions(m, session)
            assert [v.name for v in article.versions] == ["a", "b", "c"]
            assert article.versions.count() == 3
            assert article.versions[0].name == "a"
            assert all(isinstance(v, history.version_class(m.Article)) for v in article.versions)

    @STRATEGIES
    def test_previous_next_index(self, conformance_models, config):
        m = conformance_models(articles, options=CONFIGS[config][0])
        with m.session() as session:
            article = three_versions(m, session)
            first, second, third = article.versions.all()
            assert first.previous is None
            assert second.previous.name == "a"
            assert first.next.name == "b"
            assert second.next.name == "c"
            assert third.next is None
            assert [v.index for v in (first, second, third)] == [0, 1, 2]

    @STRATEGIES
    def test_traversal_stays_within_one_object(self, conformance_models, config):
        m = conformance_models(articles, options=CONFIGS[config][0])
        with m.session() as session:
            one, two = m.Article(name="one"), m.Article(name="two")
            session.add_all([one, two])
            session.commit()
            two.name = "two-b"
            session.commit()
            one.name = "one-b"
            session.commit()
            assert one.versions[0].next.name == "one-b"
            assert one.versions[1].previous.name == "one"
            assert two.versions[1].next is None
            assert two.versions[0].previous is None

    @STRATEGIES
    @pytest.mark.requires("version_index_per_object")
    def test_index_counts_the_versions_of_one_object(self, conformance_models, config):
        m = conformance_models(articles, options=CONFIGS[config][0])
        with m.session() as session:
            one, two = m.Article(name="one"), m.Article(name="two")
            session.add_all([one, two])
            session.commit()
            two.name = "two-b"
            session.commit()
            one.name = "one-b"
            session.commit()
            assert [v.index for v in one.versions] == [0, 1]
            assert [v.index for v in two.versions] == [0, 1]

    @pytest.mark.parametrize(
        "config",
        [
            pytest.param(name, marks=pytest.mark.requires("traversal_reads_database", name))
            for name in ("validity", "subquery")
        ],
    )
    def test_next_is_never_stale(self, conformance_models, config):
        m = conformance_models(articles, options=CONFIGS[config][0])
        article_id = add(m, m.Article(name="a"))
        with m.session(expire_on_commit=False) as session:
            first = session.get(m.Article, article_id).versions[0]
            assert first.next is None
            with m.session() as other:
                other.get(m.Article, article_id).name = "b"
                other.commit()
            # End the read transaction (MySQL's REPEATABLE READ snapshot) without
            # expiring ``first``: its answer must come from the database, not from memory.
            session.commit()
            assert first.next.name == "b"
            assert first.next.previous.name == "a"

    def test_version_parent_and_transaction(self, history, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            article = m.Article(name="a")
            session.add(article)
            session.commit()
            version = article.versions[0]
            assert version.version_parent is article
            assert version.transaction.id == tx_ids(m)[0]
            assert version.transaction.issued_at is not None
            session.delete(article)
            session.commit()
            deleted = session.scalars(
                sa.select(history.version_class(m.Article)).where(
                    history.version_class(m.Article).operation_type == DELETE
                )
            ).one()
            assert deleted.version_parent is None


class TestChangeset:
    def test_changeset_of_insert_update_delete(self, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            article = three_versions(m, session)
            article_id = article.id
            first, second, third = article.versions.all()
            assert first.changeset == {
                "id": [None, article_id],
                "name": [None, "a"],
                "content": [None, "x"],
            }
            assert second.changeset == {"name": ["a", "b"]}
            assert third.changeset == {"name": ["b", "c"], "content": ["x", None]}

    def test_pending_changes_of_a_live_object(self, history, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a", views=1))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            assert not history.is_modified(article)
            assert not history.is_session_modified(session)
            article.views = 2
            assert not history.is_modified(article)
            article.name = "b"
            assert history.is_modified(article)
            assert history.utils.is_modified_or_deleted(article)
            # SQLAlchemy-History's order for pending changes: [new, old].
            assert history.changeset(article)["name"] == ["b", "a"]
            assert history.is_session_modified(session)

    @pytest.mark.requires("changeset_skips_excluded_columns")
    def test_pending_changeset_leaves_out_excluded_columns(self, history, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a", views=1))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.views = 2
            assert history.changeset(article) == {}
            article.name = "b"
            assert history.changeset(article) == {"name": ["b", "a"]}


class TestVersionClasses:
    def test_version_class_is_an_ordinary_mapped_class(self, history, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            article = three_versions(m, session)
            ArticleVersion = history.version_class(m.Article)
            assert history.parent_class(ArticleVersion) is m.Article
            txs = tx_ids(m)
            by_tx = session.scalars(
                sa.select(ArticleVersion).filter_by(transaction_id=txs[1])
            ).one()
            assert (by_tx.name, by_tx.operation_type) == ("b", UPDATE)
            Transaction = history.transaction_class(m.Article)
            joined = session.execute(
                sa.select(ArticleVersion.name, Transaction.id)
                .join(Transaction, Transaction.id == ArticleVersion.transaction_id)
                .where(ArticleVersion.id == article.id)
                .order_by(Transaction.id)
            ).all()
            assert [tuple(r) for r in joined] == list(zip(["a", "b", "c"], txs))

    def test_changed_entities(self, history, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            session.add_all([m.Article(name="a"), m.Article(name="b")])
            session.commit()
            transaction = session.get(m.Transaction, tx_ids(m)[0])
            changed = transaction.changed_entities
            ArticleVersion = history.version_class(m.Article)
            assert list(changed) == [ArticleVersion]
            assert sorted(v.name for v in changed[ArticleVersion]) == ["a", "b"]


class TestUtilities:
    def test_count_versions_and_is_versioned(self, history, conformance_models):
        m = conformance_models(articles)
        with m.session() as session:
            article = three_versions(m, session)
            assert history.count_versions(article) == 3
            assert history.utils.is_versioned(m.Article)
            assert not history.utils.is_versioned(m.Note)
            with pytest.raises(history.ClassNotVersioned):
                history.version_class(m.Note)

    @pytest.mark.requires("vacuum")
    def test_vacuum_removes_versions_that_changed_nothing(self, history, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            session.get(m.Article, article_id).name = "b"
            session.commit()
        first, second = m.rows("article_version", ["transaction_id"])
        duplicate_tx = second["transaction_id"] + 1000
        table = m.table("article_version")
        # Data surgery leaves a version identical to the one before it.
        with m.engine.begin() as connection:
            connection.execute(
                table.update()
                .where(table.c.transaction_id == second["transaction_id"])
                .values(end_transaction_id=duplicate_tx)
            )
            connection.execute(
                table.insert().values(
                    {**second, "transaction_id": duplicate_tx, "end_transaction_id": None}
                )
            )
        assert len(m.rows("article_version")) == 3
        with m.session() as session:
            history.vacuum(session, m.Article)
            session.commit()
        rows = m.rows("article_version", ["transaction_id"])
        assert [(r["name"], r["operation_type"]) for r in rows] == [("a", INSERT), ("b", UPDATE)]
        assert rows[0]["end_transaction_id"] == second["transaction_id"]
        assert rows[1]["end_transaction_id"] is None
        assert first["transaction_id"] == rows[0]["transaction_id"]
