"""The plugin hook list, the hooks added for plugins, and all five plugins together."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite

from sqlalchemy_history import (
    ImproperlyConfigured,
    Operation,
    VersioningManager,
    versioning_context,
)
from sqlalchemy_history.plugins import (
    HOOKS,
    ActivityPlugin,
    NullDeletePlugin,
    Plugin,
    PluginCollection,
    PropertyModTrackerPlugin,
    TransactionChangesPlugin,
    TransactionMetaPlugin,
)

DIALECTS = [
    sqlite.dialect(),
    postgresql.dialect(),
    mysql.dialect(),
    mssql.dialect(),
    oracle.dialect(),
]


def models(Base):
    class User(Base):
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)

    return locals()


def all_plugins():
    return [
        PropertyModTrackerPlugin(),
        TransactionChangesPlugin(),
        TransactionMetaPlugin(),
        ActivityPlugin(),
        NullDeletePlugin(),
    ]


def test_hook_list_is_closed():
    assert {
        "after_create_transaction",
        "after_rollback_savepoint",
        "after_version_row",
        "transaction_args",
        "before_flush",
    } <= HOOKS

    class Misspelt(Plugin):
        def after_create_transactions(self, uow, session, connection, values):
            pass

    with pytest.raises(ImproperlyConfigured, match="after_create_transactions"):
        PluginCollection([Misspelt()])


def test_assigning_a_list_to_manager_plugins_makes_a_checked_collection():
    # SQLAlchemy-History and Continuum accept `manager.plugins = [...]`; so must we.
    manager = VersioningManager()
    manager.plugins = [NullDeletePlugin()]
    assert isinstance(manager.plugins, PluginCollection)
    assert [type(p) for p in manager.plugins] == [NullDeletePlugin]

    class Misspelt(Plugin):
        def after_flsuh(self, *args):
            pass

    with pytest.raises(ImproperlyConfigured, match="after_flsuh"):
        manager.plugins = [Misspelt()]


def test_transaction_and_savepoint_hooks(versioned):
    calls = []

    class Recorder(Plugin):
        def after_create_transaction(self, uow, session, connection, values):
            calls.append(("tx", values["id"], values["remote_addr"], connection is not None))

        def after_rollback_savepoint(self, uow, session):
            calls.append(("rollback", uow.transaction_id))

    v = versioned(models, plugins=[Recorder()], user_cls="User")
    with v.session() as session, versioning_context(remote_addr="::1"):
        savepoint = session.begin_nested()
        session.add(v.Article(name="a"))
        session.flush()
        savepoint.rollback()
        session.add(v.Article(name="b"))
        session.commit()
    tx_id = v.rows("transaction")[0]["id"]
    rolled_back = calls[0][1]
    # The hook runs before the unit of work forgets the rolled-back transaction row.
    assert calls == [
        ("tx", rolled_back, "::1", True),
        ("rollback", rolled_back),
        ("tx", tx_id, "::1", True),
    ]


def test_all_plugins_together(versioned):
    plugins = all_plugins()
    v = versioned(models, plugins=plugins, user_cls="User")
    Activity = v.manager.activity_cls
    with v.session() as session:
        user = v.User()
        session.add(user)
        session.commit()
        with versioning_context(user_id=user.id, meta={"reason": "create"}):
            article = v.Article(name="a", content="c")
            session.add_all([article, Activity(verb="create", object=article)])
            session.commit()
        article.name = "b"
        session.commit()
        session.delete(article)
        session.add(Activity(verb="delete", object=article))
        session.commit()
        versions = session.scalars(
            sa.select(type(article).versions.property.mapper.class_).order_by(
                sa.text("transaction_id")
            )
        ).all()
        assert [(x.operation_type, x.name, x.name_mod, x.content_mod) for x in versions] == [
            (Operation.INSERT, "a", True, True),
            (Operation.UPDATE, "b", True, False),
            (Operation.DELETE, None, True, True),
        ]
        assert [x.changeset for x in versions[1:2]] == [{"name": ["a", "b"]}]
        first_tx = versions[0].transaction
        assert first_tx.user is user
        assert dict(first_tx.meta) == {"reason": "create"}
        assert first_tx.entity_names == ["Article"]
        deleting = sa.select(Activity).where(Activity.verb == "delete")
        delete_activity = session.scalars(deleting).one()
        assert delete_activity.object is None
        assert delete_activity.object_version is versions[2]


@pytest.mark.parametrize("dialect", DIALECTS, ids=lambda d: d.name)
def test_plugin_tables_compile_for_every_dialect(versioned, dialect):
    v = versioned(models, plugins=all_plugins(), user_cls="User", create=False)
    for name in ["transaction_changes", "transaction_meta", "activity", "article_version"]:
        table = v.metadata.tables[name]
        ddl = str(sa.schema.CreateTable(table).compile(dialect=dialect))
        assert "SEQUENCE" not in ddl.upper()
        for index in table.indexes:
            str(sa.schema.CreateIndex(index).compile(dialect=dialect))
            assert len(index.name) <= 63
    version = v.metadata.tables["article_version"]
    assert "name_mod" in str(sa.schema.CreateTable(version).compile(dialect=dialect))
    activity = v.metadata.tables["activity"]
    statement = (
        sa.select(version.c.id, sa.func.max(version.c.transaction_id))
        .where(version.c.id.in_([1, 2]))
        .group_by(version.c.id)
    )
    str(statement.compile(dialect=dialect))
    update = activity.update().where(activity.c.id == sa.bindparam("_sah_activity_id"))
    assert "RETURNING" not in str(update.values(object_id=1).compile(dialect=dialect))
