"""ActivityPlugin: activities with actor, object, target and their versions at the time."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import count_statements
from sqlalchemy_history import VersioningError, is_session_modified, versioning_context
from sqlalchemy_history.plugins import ActivityPlugin


def models(Base):
    class User(Base):
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"))
        article = sa.orm.relationship(Article)

    class Note(Base):  # not versioned
        __tablename__ = "note"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        text = sa.Column(sa.Unicode(50))

    class Pair(Base):
        __tablename__ = "pair"
        a = sa.Column(sa.Integer, primary_key=True)
        b = sa.Column(sa.Integer, primary_key=True)

    return locals()


@pytest.fixture
def v(versioned):
    plugin = ActivityPlugin()
    v = versioned(models, plugins=[plugin], user_cls="User")
    v.Activity = plugin.activity_cls
    with v.session() as session:
        session.add(v.User(name="ann"))
        session.commit()
    return v


def test_table_and_class(v):
    table = v.metadata.tables["activity"]
    assert set(table.c.keys()) == {
        "id",
        "verb",
        "data",
        "transaction_id",
        "object_type",
        "object_id",
        "object_tx_id",
        "target_type",
        "target_id",
        "target_tx_id",
    }
    assert v.Activity.__name__ == "Activity"
    assert v.manager.activity_cls is v.Activity


def test_create_activity_in_the_same_flush_as_the_object(v):
    with v.session() as session, versioning_context(user_id=1):
        article = v.Article(name="Some article")
        session.add(article)
        activity = v.Activity(verb="create", object=article, data={"source": "api", "n": [1]})
        session.add(activity)
        assert is_session_modified(session)
        session.commit()
        assert activity.transaction_id == article.versions[0].transaction_id
        assert activity.object is article
        assert activity.object_id == article.id
        assert activity.object_version == article.versions[0]
        assert activity.actor is session.get(v.User, 1)
        assert activity.transaction.activities == [activity]
    with v.session() as session:
        loaded = session.scalars(sa.select(v.Activity)).one()
        assert loaded.data == {"source": "api", "n": [1]}
        assert loaded.verb == "create"
        assert loaded.object.name == "Some article"


def test_update_activity_keeps_the_version_of_its_time(v):
    with v.session() as session:
        article = v.Article(name="Some article")
        session.add(article)
        session.flush()
        first = v.Activity(verb="create", object=article)
        session.add(first)
        session.commit()
        article.name = "Some article updated!"
        session.flush()
        second = v.Activity(verb="update", object=article)
        session.add(second)
        session.commit()
        assert second.object.name == "Some article updated!"
        assert first.object.name == "Some article updated!"
        assert first.object_version.name == "Some article"
        assert second.object_version.name == "Some article updated!"


def test_delete_activity_reaches_the_deleted_object_through_its_version(v):
    with v.session() as session:
        article = v.Article(name="gone soon")
        session.add(article)
        session.commit()
        session.delete(article)
        activity = v.Activity(verb="delete", object=article)
        session.add(activity)
        session.commit()
        assert activity.object is None
        assert activity.object_version.name == "gone soon"
        assert activity.object_version.operation_type == 2


def test_activity_about_an_unchanged_object_looks_up_its_last_transaction(v):
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        first_tx = article.versions[0].transaction_id
        session.add(v.Article(name="other"))
        session.commit()
        activity = v.Activity(verb="view", object=article)
        session.add(activity)
        with count_statements(v.engine) as counter:
            session.commit()
        assert activity.object_tx_id == first_tx
        assert activity.transaction_id != first_tx
        assert len(counter.matching("max(")) == 1
        assert counter.matching("UPDATE activity") == []


def test_target_and_queries(v):
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.add(v.Activity(verb="create", object=article))
        session.commit()
        tag = v.Tag(name="t", article=article)
        session.add(tag)
        activity = v.Activity(verb="create", object=tag, target=article)
        session.add(activity)
        session.commit()
        assert activity.target is article
        assert activity.target_version == article.versions[0]
        assert activity.object_version == tag.versions[0]
        Activity = v.Activity
        about_article = session.scalars(
            sa.select(Activity)
            .where(sa.or_(Activity.object == article, Activity.target == article))
            .order_by(Activity.id)
        ).all()
        assert [a.verb for a in about_article] == ["create", "create"]
        assert session.scalars(sa.select(Activity).where(Activity.object == tag)).all() == [
            activity
        ]
        assert session.scalars(sa.select(Activity).where(Activity.target != article)).all() == []


def test_many_activities_cost_a_constant_number_of_statements(v):
    def run(n):
        with v.session() as session:
            articles = [v.Article(name=str(i)) for i in range(n)]
            session.add_all(articles)
            session.commit()
            for article in articles:
                article.name += "!"
            session.add_all([v.Activity(verb="update", object=a) for a in articles])
            with count_statements(v.engine) as counter:
                session.commit()
            for a in articles:
                assert a.versions.count() == 2
                assert (
                    a.versions[1].transaction_id
                    == a.versions[1].transaction.activities[0].object_tx_id
                )
        # SQLAlchemy inserts ORM rows with autoincrement keys one by one on SQLite (it cannot
        # match RETURNING rows to parameters there): count what the flush adds besides.
        return [s for s in counter.statements if not s.startswith("INSERT INTO activity")]

    small, large = run(3), run(40)
    assert len(small) == len(large)
    # No lookup of the objects' last transactions ("GROUP BY") and no rewrite of activities.
    assert [s for s in large if "GROUP BY" in s or s.startswith("UPDATE activity")] == []


def test_pending_objects_get_their_ids_after_the_flush(v):
    with v.session() as session:
        activities = [
            v.Activity(verb="create", object=v.Article(name=str(i)), target=v.Article(name="t"))
            for i in range(5)
        ]
        for activity in activities:
            session.add(activity.object)
            session.add(activity.target)
            session.add(activity)
        with count_statements(v.engine) as counter:
            session.commit()
        assert len(counter.matching("UPDATE activity")) == 1
        for activity in activities:
            assert activity.object_id == activity.object.id
            assert activity.object_tx_id == activity.transaction_id
            assert activity.target_version.name == "t"
    rows = v.rows("activity")
    assert all(r["object_id"] is not None and r["target_tx_id"] is not None for r in rows)


def test_non_versioned_objects(v):
    with v.session() as session:
        note = v.Note(text="n")
        session.add(note)
        session.commit()
        activity = v.Activity(verb="comment", object=note)
        session.add(activity)
        session.commit()
        assert activity.object is note
        assert activity.object_tx_id is None
        assert activity.object_version is None
        session.add(v.Activity(verb="comment", object=v.Note(text="pending")))
        with pytest.raises(VersioningError, match="flush the session"):
            session.flush()


def test_bad_objects_are_rejected(v):
    with pytest.raises(VersioningError, match="single integer primary key"):
        v.Activity(verb="x", object=v.Pair(a=1, b=2))
    with pytest.raises(VersioningError, match="mapped object"):
        v.Activity(verb="x", object="not an object")
    with pytest.raises(TypeError, match="nope"):
        v.Activity(nope=1)


def test_activity_without_any_versioned_change(v):
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        session.add(v.Activity(verb="share", object=article))
        session.commit()
    transactions = v.rows("transaction")
    activity = v.rows("activity")[0]
    assert activity["transaction_id"] == transactions[-1]["id"]
    assert activity["object_tx_id"] == transactions[0]["id"]
