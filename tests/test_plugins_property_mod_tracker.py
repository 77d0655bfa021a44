"""PropertyModTrackerPlugin: ``<column>_mod`` flags on insert, update, delete, across flushes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from conftest import count_statements
from sqlalchemy_history import ImproperlyConfigured, remove_versioning, version_class
from sqlalchemy_history.plugins import NullDeletePlugin, PropertyModTrackerPlugin


def user_models(Base):
    class User(Base):
        __versioned__ = {"exclude": ["secret"]}
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        age = sa.Column(sa.Integer)
        alias = sa.Column("nick_name", sa.Unicode(50), key="nick_name")
        secret = sa.Column(sa.Unicode(50))

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        user_id = sa.Column(sa.Integer, sa.ForeignKey("app_user.id"))
        user = sa.orm.relationship(User)

    return locals()


def flags(version):
    return {k: getattr(version, k) for k in ("name_mod", "age_mod", "alias_mod")}


def last_version(user):
    return user.versions.all()[-1]


@pytest.fixture
def v(versioned):
    return versioned(user_models, plugins=[PropertyModTrackerPlugin()])


def test_flag_columns_are_added_for_versioned_non_key_columns(v):
    table = version_class(v.User).__table__
    flag_names = sorted(c.name for c in table.c if c.name.endswith("_mod"))
    assert flag_names == ["age_mod", "name_mod", "nick_name_mod"]
    column = table.c.name_mod
    assert isinstance(column.type, sa.Boolean)
    assert not column.nullable
    # The attribute follows the version column's key (the parent attribute name).
    assert hasattr(version_class(v.User), "alias_mod")
    reflected = {c["name"] for c in sa.inspect(v.engine).get_columns("app_user_version")}
    assert {"name_mod", "age_mod", "nick_name_mod"} <= reflected
    assert "id_mod" not in reflected
    assert "secret_mod" not in reflected


def test_insert_sets_every_flag(v):
    with v.session() as session:
        user = v.User(name="John")
        session.add(user)
        session.commit()
        assert flags(last_version(user)) == {"name_mod": True, "age_mod": True, "alias_mod": True}


def test_update_sets_only_changed_flags(v):
    with v.session() as session:
        user = v.User(name="John", age=3)
        session.add(user)
        session.commit()
        user.age = 14
        user.secret = "excluded columns are not flagged"
        session.commit()
        assert flags(last_version(user)) == {
            "name_mod": False,
            "age_mod": True,
            "alias_mod": False,
        }
        user.alias = "jj"
        session.commit()
        assert flags(last_version(user)) == {
            "name_mod": False,
            "age_mod": False,
            "alias_mod": True,
        }


def test_delete_sets_every_flag(v):
    with v.session() as session:
        user = v.User(name="John")
        session.add(user)
        session.commit()
        session.delete(user)
        session.commit()
        UserVersion = version_class(v.User)
        version = session.scalars(
            sa.select(UserVersion).order_by(UserVersion.transaction_id.desc())
        ).first()
        assert version.operation_type == 2
        assert flags(version) == {"name_mod": True, "age_mod": True, "alias_mod": True}


def test_flags_of_several_flushes_in_one_transaction_are_ored(v):
    with v.session() as session:
        user = v.User(name="John")
        session.add(user)
        session.commit()
        user.name = "Jack"
        session.flush()
        user.age = 15
        session.flush()
        user.age = 16
        session.commit()
        assert user.versions.count() == 2
        assert flags(last_version(user)) == {"name_mod": True, "age_mod": True, "alias_mod": False}


def test_insert_then_update_in_one_transaction_keeps_every_flag(v):
    with v.session() as session:
        user = v.User(name="John")
        session.add(user)
        session.flush()
        user.age = 15
        session.commit()
        assert flags(last_version(user)) == {"name_mod": True, "age_mod": True, "alias_mod": True}


def test_foreign_key_changed_by_relationship_is_flagged(v):
    with v.session() as session:
        tag = v.Tag(name="t", user=v.User(name="u"))
        session.add(tag)
        session.commit()
        tag.user = None  # the flush sets tag.user_id
        session.commit()
        version = tag.versions.all()[-1]
        assert version.user_id is None
        assert version.user_id_mod is True
        assert version.name_mod is False


def test_query_by_flag(v):
    with v.session() as session:
        user = v.User(name="a", age=1)
        session.add(user)
        session.commit()
        user.age = 2
        session.commit()
        user.name = "b"
        session.commit()
        UserVersion = version_class(v.User)
        found = session.scalars(
            sa.select(UserVersion.transaction_id)
            .where(UserVersion.name_mod, UserVersion.id == user.id)
            .order_by(UserVersion.transaction_id)
        ).all()
        assert len(found) == 2  # the insert and the rename, not the age change
        not_name = session.scalars(sa.select(UserVersion).where(~UserVersion.name_mod)).all()
        assert [x.age for x in not_name] == [2]


def test_flags_never_appear_in_changesets(v):
    with v.session() as session:
        user = v.User(name="a")
        session.add(user)
        session.commit()
        user.name = "b"
        session.commit()
        first, second = user.versions.all()
        assert first.changeset == {"id": [None, user.id], "name": [None, "a"]}
        assert second.changeset == {"name": ["a", "b"]}


def test_flags_cost_no_statement(versioned):
    def count_for(plugins):
        v = versioned(user_models, plugins=plugins)
        with v.session() as session:
            users = [v.User(name=str(i)) for i in range(50)]
            session.add_all(users)
            session.commit()
            with count_statements(v.engine) as counter:
                for user in users:
                    user.age = 1
                session.flush()
                for user in users[:10]:
                    user.name = "again"
                session.commit()
        return counter.count

    without = count_for([])
    remove_versioning()
    assert count_for([PropertyModTrackerPlugin()]) == without


def test_savepoint_rollback_forgets_flags_of_the_rolled_back_flush(v):
    with v.session() as session:
        user = v.User(name="a", age=1)
        session.add(user)
        session.commit()
        user.name = "b"
        session.flush()
        savepoint = session.begin_nested()
        user.age = 2
        session.flush()
        savepoint.rollback()
        user.alias = "x"
        with count_statements(v.engine) as counter:
            session.flush()
        # one SELECT re-reads the flags written before the savepoint
        assert len([s for s in counter.matching("name_mod") if s.startswith("SELECT")]) == 1
        session.commit()
        version = last_version(user)
        assert (version.name, version.age, version.alias) == ("b", 1, "x")
        assert flags(version) == {"name_mod": True, "age_mod": False, "alias_mod": True}


def test_works_with_null_delete(versioned):
    v = versioned(user_models, plugins=[PropertyModTrackerPlugin(), NullDeletePlugin()])
    with v.session() as session:
        user = v.User(name="a", age=1)
        session.add(user)
        session.commit()
        session.delete(user)
        session.commit()
    rows = v.rows("app_user_version", ["transaction_id"])
    assert (rows[-1]["name"], rows[-1]["age"], rows[-1]["name_mod"]) == (None, None, True)


def test_single_table_subclass_columns_get_flags(versioned):
    def define(Base):
        class Item(Base):
            __versioned__ = {}
            __tablename__ = "item"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            kind = sa.Column(sa.Unicode(20))
            __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "item"}

        class Book(Item):
            __mapper_args__ = {"polymorphic_identity": "book"}
            title = sa.Column(sa.Unicode(50))

        return locals()

    v = versioned(define, plugins=[PropertyModTrackerPlugin()])
    assert "title_mod" in v.metadata.tables["item_version"].c
    with v.session() as session:
        book = v.Book(title="t")
        session.add(book)
        session.commit()
        book.title = "u"
        session.commit()
        assert book.versions.all()[-1].title_mod is True
        assert book.versions.all()[-1].kind_mod is False


def test_colliding_column_name_is_an_error(versioned):
    bases = []

    def define(Base):
        bases.append(Base)

        class Clash(Base):
            __versioned__ = {}
            __tablename__ = "clash"
            id = sa.Column(sa.Integer, primary_key=True)
            name = sa.Column(sa.Unicode(20))
            name_mod = sa.Column(sa.Unicode(20))

        return locals()

    try:
        with pytest.raises(ImproperlyConfigured, match="name_mod"):
            versioned(define, plugins=[PropertyModTrackerPlugin()])
    finally:
        for base in bases:
            base.registry.dispose()
