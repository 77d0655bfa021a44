"""Reverting one object: earlier values, deleted objects, DELETE versions.

Reverting relationships (``revert(relations=[...])``) is in ``test_revert_relations``.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ._helpers import DELETE, INSERT, UPDATE, add, articles, pick, pk, versions

__all__ = ["TestRevert"]


class TestRevert:
    def test_revert_restores_earlier_values_and_records_a_version(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a", content="x"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "b"
            article.content = "y"
            session.commit()
            restored = article.versions[0].revert()
            assert restored is article
            session.commit()
            assert (article.name, article.content) == ("a", "x")
        assert pick(versions(m), "name", "content", "operation_type") == [
            ("a", "x", INSERT),
            ("b", "y", UPDATE),
            ("a", "x", UPDATE),
        ]

    def test_revert_leaves_excluded_columns_alone(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a", views=1))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "b"
            article.views = 5
            session.commit()
            article.versions[0].revert()
            session.commit()
            assert (article.name, article.views) == ("a", 5)

    def test_revert_does_not_commit(self, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            article = session.get(m.Article, article_id)
            article.name = "b"
            session.commit()
            article.versions[0].revert()
            session.rollback()
            assert article.name == "b"
        assert len(versions(m)) == 2

    def test_revert_recreates_a_deleted_object(self, history, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a", content="x"))
        with m.session() as session:
            session.delete(session.get(m.Article, article_id))
            session.commit()
        with m.session() as session:
            ArticleVersion = history.version_class(m.Article)
            last_alive = session.scalars(
                sa.select(ArticleVersion).where(
                    ArticleVersion.id == article_id, ArticleVersion.operation_type == INSERT
                )
            ).one()
            assert last_alive.version_parent is None
            restored = last_alive.revert()
            session.commit()
            assert (restored.id, restored.name, restored.content) == (article_id, "a", "x")
        with m.session() as session:
            assert session.get(m.Article, article_id).name == "a"
        rows = versions(m)
        assert pick(rows, "name", "operation_type") == [("a", INSERT), ("a", DELETE), ("a", INSERT)]
        assert rows[1]["end_transaction_id"] == rows[2]["transaction_id"]

    def test_reverting_a_delete_version_deletes_the_object(self, history, conformance_models):
        m = conformance_models(articles)
        article_id = add(m, m.Article(name="a"))
        with m.session() as session:
            session.delete(session.get(m.Article, article_id))
            session.commit()
            session.add(m.Article(id=article_id, name="again"))
            session.commit()
            ArticleVersion = history.version_class(m.Article)
            delete_version = session.scalars(
                sa.select(ArticleVersion).where(ArticleVersion.operation_type == DELETE)
            ).one()
            assert delete_version.revert() is None
            session.commit()
            assert session.get(m.Article, article_id) is None

    def test_revert_with_composite_primary_key(self, conformance_models):
        def define(Base):
            class Slot(Base):
                __versioned__ = {}
                __tablename__ = "slot"
                day = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
                room = sa.Column(sa.Unicode(20), primary_key=True)
                label = sa.Column(sa.Unicode(100))

            return locals()

        m = conformance_models(define)
        with m.session() as session:
            slot = m.Slot(day=2, room="r", label="x")
            session.add(slot)
            session.commit()
            slot.label = "y"
            session.commit()
            slot.versions[0].revert()
            session.commit()
            assert slot.label == "x"

    def test_unknown_relation_names_the_class_and_relation(self, history, conformance_models):
        def define(Base):
            class Article(Base):
                __versioned__ = {}
                __tablename__ = "article"
                id = pk()
                name = sa.Column(sa.Unicode(255))

            return locals()

        m = conformance_models(define)
        with m.session() as session:
            article = m.Article(name="a")
            session.add(article)
            session.commit()
            with pytest.raises(history.reverter.ReverterException, match=r"Article.*nonexistent"):
                article.versions[0].revert(relations=["nonexistent"])
