"""``version.revert(relations=[...])``: restoring relationships with the object.

Gated by the ``revert_relations`` requirement.
"""

from __future__ import annotations

import pytest

from ._helpers import blog

__all__ = ["TestRevertRelations"]


def _article_with_tags(m, session):
    article = m.Article(name="a", tags=[m.Tag(name="t1"), m.Tag(name="t2")])
    session.add(article)
    session.commit()
    return article


@pytest.mark.requires("revert_relations")
class TestRevertRelations:
    def test_one_to_many_removed_and_added_objects_are_restored(self, conformance_models):
        m = conformance_models(blog)
        with m.session() as session:
            article = _article_with_tags(m, session)
            article.name = "b"
            article.tags = [t for t in article.tags if t.name == "t1"] + [m.Tag(name="t3")]
            article.tags[0].name = "t1 renamed"
            session.commit()
            article.versions[0].revert(relations=["tags"])
            session.commit()
            assert article.name == "a"
            assert sorted(t.name for t in article.tags) == ["t1", "t2"]
            assert {t.name for t in session.query(m.Tag)} == {"t1", "t2"}

    def test_many_to_many_is_restored(self, conformance_models):
        m = conformance_models(blog)
        with m.session() as session:
            first, second = m.Label(name="l1"), m.Label(name="l2")
            article = m.Article(name="a", labels=[first])
            session.add_all([article, second])
            session.commit()
            article.labels = [second]
            article.name = "b"
            session.commit()
            article.versions[0].revert(relations=["labels"])
            session.commit()
            assert [label.name for label in article.labels] == ["l1"]

    def test_one_to_one_is_restored(self, conformance_models):
        m = conformance_models(blog)
        with m.session() as session:
            article = m.Article(name="a", summary=m.Summary(text="s1"))
            session.add(article)
            session.commit()
            article.summary.text = "s2"
            article.name = "b"
            session.commit()
            article.versions[0].revert(relations=["summary"])
            session.commit()
            assert article.summary.text == "s1"

    def test_deeper_path_is_restored(self, conformance_models):
        m = conformance_models(blog)
        with m.session() as session:
            article = _article_with_tags(m, session)
            for tag in article.tags:
                tag.article = article
            category = m.Category(name="news")
            article.category = category
            session.commit()
            category.name = "sport"
            article.name = "b"
            session.commit()
            article.versions[1].revert(relations=["category"])
            session.commit()
            assert article.category.name == "news"

    @pytest.mark.requires("revert_deleted_with_relations")
    def test_deleted_object_comes_back_with_its_relations(self, history, conformance_models):
        m = conformance_models(blog)
        with m.session() as session:
            article = _article_with_tags(m, session)
            article_id = article.id
            version = article.versions[0]
            session.delete(article)
            session.commit()
            restored = version.revert(relations=["tags"])
            session.commit()
            assert restored.id == article_id
            assert sorted(t.name for t in restored.tags) == ["t1", "t2"]

    @pytest.mark.requires("revert_relation_path_check")
    def test_unknown_nested_relation_names_the_class(self, history, conformance_models):
        m = conformance_models(blog)
        with m.session() as session:
            article = _article_with_tags(m, session)
            with pytest.raises(history.reverter.ReverterException, match="nonexistent"):
                article.versions[0].revert(relations=["tags.nonexistent"])
