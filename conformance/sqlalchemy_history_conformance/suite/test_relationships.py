"""Relationships on version classes "as of" a version, and many-to-many history.

Gated by the ``temporal_relationships`` (and ``eager_temporal_relationships``),
``many_to_many_history`` and ``many_to_many_validity`` requirements.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import selectinload

from ._helpers import DELETE, INSERT, StatementCounter, blog

__all__ = ["TestManyToManyHistory", "TestTemporalRelationships"]


def _history_of_article(m, session):
    """Three transactions: create with two tags and a label; rename; change tags and label."""
    category = m.Category(name="news")
    author = m.Author(name="ann")
    first_label, second_label = m.Label(name="l1"), m.Label(name="l2")
    article = m.Article(
        name="a",
        category=category,
        author=author,
        tags=[m.Tag(name="t1"), m.Tag(name="t2")],
        labels=[first_label],
        summary=m.Summary(text="s1"),
    )
    session.add_all([article, second_label])
    session.commit()
    article.name = "b"
    session.commit()
    article.tags = [t for t in article.tags if t.name == "t1"] + [m.Tag(name="t3")]
    article.labels = [second_label]
    article.summary.text = "s2"
    article.category = m.Category(name="sport")
    session.commit()
    return article


@pytest.mark.requires("temporal_relationships")
class TestTemporalRelationships:
    def test_every_kind_of_relationship_as_of_each_version(self, conformance_models):
        m = conformance_models(blog)
        with m.session() as session:
            article = _history_of_article(m, session)
            first, second, third = article.versions.all()
            # one-to-many (a removed tag stays visible in old versions, as it was)
            assert sorted(t.name for t in first.tags) == ["t1", "t2"]
            assert sorted(t.name for t in second.tags) == ["t1", "t2"]
            assert sorted(t.name for t in third.tags) == ["t1", "t3"]
            assert all(t.operation_type != DELETE for t in first.tags)
            # many-to-one, both directions
            assert (first.category.name, third.category.name) == ("news", "sport")
            assert article.tags[0].versions[0].article.name == "a"
            # one-to-one
            assert (first.summary.text, third.summary.text) == ("s1", "s2")
            # many-to-many, through the association version table
            assert [label.name for label in first.labels] == ["l1"]
            assert [label.name for label in third.labels] == ["l2"]
            # a class that is not versioned: the live object
            assert first.author is article.author

    @pytest.mark.requires("eager_temporal_relationships")
    def test_selectinload_costs_one_query_per_relationship(self, history, conformance_models):
        m = conformance_models(blog)
        with m.session() as session:
            for n in range(3):
                article = _history_of_article(m, session)
                article.name = f"article {n}"
                session.commit()
            session.expunge_all()
            ArticleVersion = history.version_class(m.Article)
            with StatementCounter(m.engine) as counter:
                loaded = session.scalars(
                    sa.select(ArticleVersion).options(selectinload(ArticleVersion.tags))
                ).all()
                tags = [t.name for v in loaded for t in v.tags]
            assert len(loaded) == 12
            assert tags
            assert len(counter.statements) == 2


@pytest.mark.requires("many_to_many_history")
class TestManyToManyHistory:
    def test_adding_and_removing_an_association_writes_association_versions(
        self, conformance_models
    ):
        m = conformance_models(blog)
        with m.session() as session:
            article = m.Article(name="a")
            label = m.Label(name="l")
            session.add_all([article, label])
            session.commit()
            article.labels.append(label)
            session.commit()
            article.labels.remove(label)
            session.commit()
            ids = (article.id, label.id)
        rows = m.rows("article_label_version", ["transaction_id"])
        assert [(r["article_id"], r["label_id"], r["operation_type"]) for r in rows] == [
            (*ids, INSERT),
            (*ids, DELETE),
        ]

    @pytest.mark.requires("many_to_many_validity")
    def test_removing_an_association_closes_its_version(self, conformance_models):
        m = conformance_models(blog)
        with m.session() as session:
            article = m.Article(name="a", labels=[m.Label(name="l")])
            session.add(article)
            session.commit()
            article.labels = []
            session.commit()
        insert, delete = m.rows("article_label_version", ["transaction_id"])
        assert (insert["operation_type"], delete["operation_type"]) == (INSERT, DELETE)
        assert insert["end_transaction_id"] == delete["transaction_id"]
        assert delete["end_transaction_id"] is None
