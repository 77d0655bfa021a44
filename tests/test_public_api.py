"""The public API (SPEC §1, §6, §10): names and the import paths users already rely on."""

from __future__ import annotations

import importlib

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers

import sqlalchemy_history
from sqlalchemy_history import (
    ImproperlyConfigured,
    make_versioned,
    remove_versioning,
    version_class,
    versioning_manager,
)

# Changing this list is an API decision: a new public name must be added here on purpose.
PUBLIC_NAMES = [
    "AuditEntry",
    "AuditPage",
    "Change",
    "ClassNotVersioned",
    "ImproperlyConfigured",
    "Operation",
    "RelationChange",
    "RetentionResult",
    "TableNotVersioned",
    "TransactionFactory",
    "UnitOfWork",
    "VersionChange",
    "VersionDiff",
    "VersioningError",
    "VersioningManager",
    "VersioningOptions",
    "achanges",
    "adiff",
    "aobject_as_of",
    "aprune",
    "apurge",
    "aredact",
    "as_of",
    "changes",
    "changeset",
    "count_versions",
    "diff",
    "end_tx_column_name",
    "get_versioning_manager",
    "is_modified",
    "is_modified_or_deleted",
    "is_session_modified",
    "is_versioned",
    "make_versioned",
    "object_as_of",
    "parent_class",
    "prune",
    "purge",
    "redact",
    "remove_versioning",
    "transaction_class",
    "tx_column_name",
    "vacuum",
    "version_class",
    "version_table",
    "versioned_objects",
    "versioning_context",
    "versioning_manager",
]

# What SPEC §1, §6 and §10 require from the top-level package.
REQUIRED_TOP_LEVEL = {
    "make_versioned",
    "remove_versioning",
    "versioning_manager",
    "version_class",
    "parent_class",
    "transaction_class",
    "version_table",
    "versioned_objects",
    "count_versions",
    "changeset",
    "is_modified",
    "is_modified_or_deleted",
    "is_session_modified",
    "is_versioned",
    "get_versioning_manager",
    "tx_column_name",
    "end_tx_column_name",
    "vacuum",
    "VersioningError",
    "ClassNotVersioned",
    "TableNotVersioned",
    "ImproperlyConfigured",
    "Operation",
    "UnitOfWork",
    "TransactionFactory",
}

REQUIRED_UTILS = [
    "version_class",
    "parent_class",
    "transaction_class",
    "version_table",
    "parent_table",
    "versioned_objects",
    "count_versions",
    "changeset",
    "is_modified",
    "is_modified_or_deleted",
    "is_session_modified",
    "is_versioned",
    "get_versioning_manager",
    "tx_column_name",
    "end_tx_column_name",
    "end_tx_attr",
    "option",
    "get_association_proxies",
    "vacuum",
    # SQLAlchemy-History 2.2.1's utils that applications and plugins import
    "version_obj",
    "versioned_column_properties",
    "versioned_relationships",
    "is_internal_column",
    "is_table_column",
]


def article_models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))

    return locals()


# -- names ---------------------------------------------------------------------------------


def test_all_is_pinned_and_sorted():
    assert sqlalchemy_history.__all__ == PUBLIC_NAMES
    assert sorted(PUBLIC_NAMES) == PUBLIC_NAMES


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_every_public_name_is_importable(name):
    namespace: dict = {}
    exec(f"from sqlalchemy_history import {name}", namespace)
    assert namespace[name] is getattr(sqlalchemy_history, name)
    assert namespace[name] is not None


def test_spec_names_are_public():
    assert set(sqlalchemy_history.__all__) >= REQUIRED_TOP_LEVEL


def test_utils_module():
    utils = importlib.import_module("sqlalchemy_history.utils")
    for name in REQUIRED_UTILS:
        assert callable(getattr(utils, name)), name
    for name in REQUIRED_UTILS:
        if name in REQUIRED_TOP_LEVEL:
            assert getattr(utils, name) is getattr(sqlalchemy_history, name), name


def test_operation_module():
    from sqlalchemy_history.operation import Operation

    assert Operation is sqlalchemy_history.Operation
    assert Operation.INSERT == 0
    assert Operation.UPDATE == 1
    assert Operation.DELETE == 2
    assert Operation(2) is Operation.DELETE
    assert [int(o) for o in Operation] == [0, 1, 2]


def test_exc_module():
    from sqlalchemy_history import exc

    assert exc.VersioningError is sqlalchemy_history.VersioningError
    assert issubclass(exc.VersioningError, Exception)
    for name in ["ClassNotVersioned", "TableNotVersioned", "ImproperlyConfigured"]:
        cls = getattr(exc, name)
        assert cls is getattr(sqlalchemy_history, name)
        assert issubclass(cls, exc.VersioningError)
    assert issubclass(exc.ReverterException, exc.VersioningError)
    assert issubclass(exc.NoChangesAttribute, exc.VersioningError)


def test_unit_of_work_module(versioned):
    from sqlalchemy_history.unit_of_work import UnitOfWork

    assert UnitOfWork is sqlalchemy_history.UnitOfWork
    v = versioned(article_models)
    with v.session() as session:
        uow = v.manager.unit_of_work(session)
        assert isinstance(uow, UnitOfWork)
        assert v.manager.unit_of_work(session) is uow
    assert len(v.manager.units_of_work) == 0


# -- sqlalchemy_history.manager ------------------------------------------------------------


def test_own_versioning_manager(engine):
    from sqlalchemy_history import get_versioning_manager
    from sqlalchemy_history.manager import VersioningManager
    from sqlalchemy_history.plugins import Plugin
    from sqlalchemy_history.transaction import TransactionFactory

    class Recorder(Plugin):
        def __init__(self):
            self.built = []

        def after_build_models(self, manager):
            self.built.append(manager)

    recorder = Recorder()
    manager = VersioningManager(
        options={"table_name": "%s_history"},
        plugins=[recorder],
        transaction_cls=TransactionFactory(remote_addr=False),
        user_cls=None,
    )
    assert manager.user_cls is None
    assert manager.options["table_name"] == "%s_history"
    assert list(manager.plugins) == [recorder]
    assert isinstance(manager.transaction_cls, TransactionFactory)

    make_versioned(manager=manager, user_cls=None)

    class Base(DeclarativeBase):
        pass

    try:

        class ApiArticle(Base):
            __versioned__ = {}
            __tablename__ = "api_article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(255))

        configure_mappers()
        history = Base.metadata.tables["api_article_history"]
        assert "api_article_version" not in Base.metadata.tables
        assert "remote_addr" not in Base.metadata.tables["transaction"].c
        assert recorder.built == [manager]
        assert get_versioning_manager(ApiArticle) is manager
        assert manager.version_class_map[ApiArticle] is version_class(ApiArticle)
        assert manager.version_table_map[ApiArticle.__table__] is history
        assert ApiArticle not in versioning_manager.version_class_map
        assert manager.option(ApiArticle, "table_name") == "%s_history"

        Base.metadata.drop_all(engine)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            article = ApiArticle(name="a")
            session.add(article)
            session.commit()
            article.name = "b"
            session.commit()
            assert [x.name for x in article.versions] == ["a", "b"]
        assert len(manager.units_of_work) == 0
        assert len(manager.session_connection_map) == 0
        with engine.connect() as conn:
            rows = conn.execute(
                sa.select(history.c.name, history.c.operation_type).order_by(
                    history.c.transaction_id
                )
            ).all()
        assert rows == [("a", 0), ("b", 1)]
    finally:
        remove_versioning(manager=manager)
        Base.metadata.drop_all(engine)
        Base.registry.dispose()


# -- sqlalchemy_history.transaction ----------------------------------------------------------


def test_transaction_factory_default_has_remote_addr(versioned):
    from sqlalchemy_history.transaction import TransactionFactory

    assert TransactionFactory is sqlalchemy_history.TransactionFactory
    v = versioned(article_models)
    column = v.metadata.tables["transaction"].c["remote_addr"]
    assert isinstance(column.type, sa.String)
    assert column.type.length == 50


@pytest.mark.parametrize("when", ["before-models", "after-models"])
def test_assigned_transaction_factory_replaces_transaction_class(versioned, when):
    from sqlalchemy_history.transaction import TransactionFactory

    def define(Base):
        if when == "before-models":
            versioning_manager.transaction_cls = TransactionFactory(remote_addr=False)
        found = article_models(Base)
        if when == "after-models":
            # Still before configure_mappers(), which the fixture calls next.
            versioning_manager.transaction_cls = TransactionFactory(remote_addr=False)
        return found

    v = versioned(define)
    Transaction = versioning_manager.transaction_cls
    assert isinstance(Transaction, type)
    assert not isinstance(Transaction, TransactionFactory)
    assert sa.inspect(Transaction).local_table is v.metadata.tables["transaction"]
    assert "remote_addr" not in v.metadata.tables["transaction"].c
    columns = {c["name"] for c in sa.inspect(v.engine).get_columns("transaction")}
    assert "remote_addr" not in columns
    assert {"id", "issued_at"} <= columns
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        assert isinstance(article.versions[0].transaction, Transaction)
    assert len(v.rows("transaction")) == 1


def test_user_cls_assigned_after_make_versioned(versioned):
    def define(Base):
        class User(Base):
            __tablename__ = "app_user"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)

        versioning_manager.user_cls = User
        return {**article_models(Base), "User": User}

    v = versioned(define, user_cls=None)
    column = v.metadata.tables["transaction"].c["user_id"]
    assert [fk.column for fk in column.foreign_keys] == [v.User.__table__.c.id]
    with v.session() as session:
        user = v.User()
        session.add(user)
        session.flush()
        uow = v.manager.unit_of_work(session)
        tx = uow.create_transaction(session)
        tx.user_id = user.id
        session.add(v.Article(name="a"))
        session.commit()
        assert tx.user is user


@pytest.mark.parametrize("how", ["make_versioned", "assigned"])
def test_unknown_user_cls_raises_improperly_configured(versioned, how):
    bases = []

    def define(Base):
        bases.append(Base)
        if how == "assigned":
            versioning_manager.user_cls = "NoSuchUser"
        return article_models(Base)

    try:
        with pytest.raises(ImproperlyConfigured) as caught:
            versioned(define, user_cls="NoSuchUser" if how == "make_versioned" else None)
        assert "NoSuchUser" in str(caught.value)
    finally:
        for base in bases:
            base.registry.dispose()


# -- sqlalchemy_history.schema ----------------------------------------------------------------


@pytest.mark.parametrize(
    "names",
    [{}, {"transaction_column_name": "tx_id", "end_transaction_column_name": "end_tx_id"}],
    ids=["default-names", "custom-names"],
)
def test_update_end_tx_column_rebuilds_broken_values(versioned, names):
    from sqlalchemy_history.schema import update_end_tx_column

    v = versioned(article_models, options=names or None)
    tx_name = names.get("transaction_column_name", "transaction_id")
    end_name = names.get("end_transaction_column_name", "end_transaction_id")
    with v.session() as session:
        first, second = v.Article(name="a"), v.Article(name="x")
        session.add_all([first, second])
        session.commit()
        first.name = "b"
        session.commit()
        second.name = "y"
        session.commit()
        first.name = "c"
        session.commit()
        session.delete(second)
        session.commit()
    table = v.metadata.tables["article_version"]
    order = ["id", tx_name]
    correct = v.rows("article_version", order)
    assert len(correct) == 6
    assert sum(r[end_name] is None for r in correct) == 2

    with v.engine.begin() as conn:
        conn.execute(table.update().values({end_name: None}))
        conn.execute(
            table.update()
            .where(table.c.id == correct[-1]["id"], table.c[tx_name] == correct[-1][tx_name])
            .values({end_name: 999999})
        )
    broken = v.rows("article_version", order)
    assert [r[end_name] for r in broken] != [r[end_name] for r in correct]

    with v.engine.begin() as conn:
        if names:
            update_end_tx_column(
                table, end_tx_column_name=end_name, tx_column_name=tx_name, conn=conn
            )
        else:
            update_end_tx_column(table, conn=conn)
    assert v.rows("article_version", order) == correct


def test_update_property_mod_flags_recomputes_flags(engine):
    from sqlalchemy_history.schema import update_property_mod_flags

    metadata = sa.MetaData()
    table = sa.Table(
        "modflag_version",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("end_transaction_id", sa.BigInteger),
        sa.Column("operation_type", sa.SmallInteger, nullable=False),
        sa.Column("name", sa.Unicode(50)),
        sa.Column("name_mod", sa.Boolean),
        sa.Column("content", sa.Unicode(50)),
        sa.Column("content_mod", sa.Boolean),
    )
    rows = [
        # id, tx, name, content, (wrong) name_mod, content_mod
        (1, 1, "a", "x", False, None),
        (1, 2, "b", "x", True, True),
        (1, 3, "b", "y", None, False),
        (2, 2, "c", "z", False, False),
        (2, 4, "c", None, True, None),
    ]
    expected = [
        (1, 1, True, True),
        (1, 2, True, False),
        (1, 3, False, True),
        (2, 2, True, True),
        (2, 4, False, True),
    ]
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(
                table.insert(),
                [
                    {
                        "id": i,
                        "transaction_id": tx,
                        "operation_type": 1,
                        "name": name,
                        "content": content,
                        "name_mod": name_mod,
                        "content_mod": content_mod,
                    }
                    for i, tx, name, content, name_mod, content_mod in rows
                ],
            )
        with engine.begin() as conn:
            update_property_mod_flags(table, ["name", "content"], conn=conn)
        with engine.connect() as conn:
            found = conn.execute(
                sa.select(
                    table.c.id, table.c.transaction_id, table.c.name_mod, table.c.content_mod
                ).order_by(table.c.id, table.c.transaction_id)
            ).all()
        assert [tuple(r) for r in found] == expected
    finally:
        metadata.drop_all(engine)


# -- sqlalchemy_history.reverter ---------------------------------------------------------------


def test_reverter_module(versioned):
    from sqlalchemy_history import exc
    from sqlalchemy_history.reverter import Reverter, ReverterException

    assert ReverterException is exc.ReverterException
    v = versioned(article_models)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        with pytest.raises(ReverterException):
            Reverter(article.versions[0], ["nope"])()
        assert Reverter(article.versions[0])() is article
        session.commit()
        assert article.name == "a"
    assert [r["name"] for r in v.rows("article_version", ["transaction_id"])] == ["a", "b", "a"]


# -- sqlalchemy_history.plugins -----------------------------------------------------------------


def test_plugin_collection_is_list_like():
    from sqlalchemy_history.plugins import Plugin, PluginCollection

    first, second, third = Plugin(), Plugin(), Plugin()
    plugins = PluginCollection([first])
    plugins.append(second)
    plugins.append(third)
    assert len(plugins) == 3
    assert plugins[0] is first
    assert plugins[1] is second
    assert plugins[-1] is third
    assert list(plugins) == [first, second, third]
    del plugins[1]
    assert list(plugins) == [first, third]
    del plugins[0]
    assert len(plugins) == 1
    assert plugins[0] is third


def test_manager_plugins_can_be_changed_at_runtime(versioned):
    from sqlalchemy_history.plugins import Plugin, PluginCollection

    class RemoteAddr(Plugin):
        def transaction_args(self, uow, session):
            return {"remote_addr": "192.0.2.1"}

    plugin = RemoteAddr()
    v = versioned(article_models, plugins=[plugin])
    assert isinstance(v.manager.plugins, PluginCollection)
    assert v.manager.plugins[0] is plugin
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        del v.manager.plugins[0]
        assert len(v.manager.plugins) == 0
        article.name = "b"
        session.commit()
        v.manager.plugins.append(plugin)
        assert v.manager.plugins[0] is plugin
        article.name = "c"
        session.commit()
    assert [t["remote_addr"] for t in v.rows("transaction")] == ["192.0.2.1", None, "192.0.2.1"]
