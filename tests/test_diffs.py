"""diff(older, newer, relations=[...]) (SPEC §6a): any two versions of one object."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from history_scenarios import blog, record

from conftest import count_statements
from sqlalchemy_history import Change, VersioningError, diff, version_class


@pytest.fixture(params=["validity", "subquery"])
def v(versioned, request):
    return versioned(blog, options={"strategy": request.param})


def versions(v, session, model, key):
    V = version_class(model)
    return session.scalars(sa.select(V).where(V.id == key).order_by(V.transaction_id)).all()


def test_columns_between_any_two_versions(v):
    record(v)
    with v.session() as session:
        with v.session() as other:
            a2 = versions(v, other, v.Article, 2)
        first, deleted, revived = versions(v, session, v.Article, 2)
        assert [x.operation_type for x in (first, deleted, revived)] == [0, 2, 0]
        found = diff(first, revived)
        assert found.changes == (Change("name", "A2", "A2 again"), Change("category_id", None, 1))
        assert found.changeset == {"name": ["A2", "A2 again"], "category_id": [None, 1]}
        assert found and not diff(first, deleted)
        # any direction, any pair; versions from another session compare by value
        assert diff(revived, a2[0]).changeset == {
            "name": ["A2 again", "A2"],
            "category_id": [1, None],
        }


def test_relationship_members_added_and_removed(v):
    with v.session() as session:
        t1, t2, t3 = (v.Tag(id=i, name=f"T{i}") for i in (1, 2, 3))
        news, sport = v.Category(id=1, name="News"), v.Category(id=2, name="Sport")
        article = v.Article(id=1, name="a", category=news, tags=[t1, t2])
        session.add(article)
        session.commit()
        article.name = "b"
        t1.name = "T1 renamed"  # still a member: neither added nor removed
        session.commit()
        article.tags = [t1, t3]
        article.category = sport
        session.commit()
        first, _, last = versions(v, session, v.Article, 1)
        with count_statements(v.engine) as counter:
            found = diff(first, last, relations=["tags", "category", "comments"])
        assert counter.count == 6  # two loads per relationship
        tags = found.relations["tags"]
        assert [t.name for t in tags.added] == ["T3"]
        assert [t.name for t in tags.removed] == ["T2"]
        category = found.relations["category"]
        assert [c.name for c in category.added] == ["Sport"]
        assert [c.name for c in category.removed] == ["News"]
        assert not found.relations["comments"]
        assert found.changeset == {"name": ["a", "b"], "category_id": [1, 2]}
        unchanged = diff(first, first, relations=["tags"])
        assert not unchanged and not unchanged.relations["tags"]


def test_errors_name_what_to_do(v):
    record(v)
    with v.session() as session:
        a1 = versions(v, session, v.Article, 1)[0]
        a2 = versions(v, session, v.Article, 2)[0]
        tag = versions(v, session, v.Tag, 1)[0]
        with pytest.raises(VersioningError, match="two versions of one object"):
            diff(a1, a2)
        with pytest.raises(VersioningError, match="two versions of one object"):
            diff(a1, tag)
        with pytest.raises(VersioningError, match=r"no relationship 'labels'.*tags"):
            diff(a1, a1, relations=["labels"])
        with pytest.raises(VersioningError, match="compares versions"):
            diff(session.get(v.Article, 1), a1)
