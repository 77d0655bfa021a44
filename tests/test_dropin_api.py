"""Drop-in, API: what code written for SQLAlchemy-History 2.2.1 and SQLAlchemy-Continuum
calls, with the arguments it passes, gets what it expects.

Lookups of aliased classes, tables and instances; ``__versioning_manager__``; plugin
collections of any objects; the unit-of-work lookup; ``repr(transaction)``; naming of
version classes, association version tables and enum types; the maintenance helpers'
signatures; and the names of Continuum's API (``VersionClassBase``, ``FlaskPlugin``,
``native_versioning``, ``dialects.postgresql``).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased, configure_mappers, relationship
from sqlalchemy.schema import CreateTable
from test_dropin_reading import article_tag_table, tag_model

import sqlalchemy_history
from sqlalchemy_history import (
    ClassNotVersioned,
    ImproperlyConfigured,
    TableNotVersioned,
    get_versioning_manager,
    make_versioned,
    parent_class,
    remove_versioning,
    transaction_class,
    utils,
    version_class,
    versioning_manager,
)
from sqlalchemy_history.plugins import Plugin, PluginCollection, TransactionChangesPlugin
from sqlalchemy_history.reverter import ReverterException


def blog(Base):
    article_tag = article_tag_table(Base)
    Tag = tag_model(Base)

    class Article(Base):
        __tablename__ = "article"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        kind = sa.Column(sa.Enum("news", "blog", name="article_kind"))
        tags = relationship(Tag, secondary=article_tag)

    class Unversioned(Base):
        __tablename__ = "unversioned"
        id = sa.Column(sa.Integer, primary_key=True)

    return locals()


# -- lookups ---------------------------------------------------------------------------


def test_lookups_accept_aliased_classes_tables_and_instances(versioned):
    v = versioned(blog)
    Article, Unversioned = v.Article, v.Unversioned
    ArticleVersion = version_class(Article)
    article_table = v.metadata.tables["article"]
    version_table_ = v.metadata.tables["article_version"]
    association = v.metadata.tables["article_tag"]
    manager = versioning_manager

    assert version_class(aliased(Article)) is ArticleVersion
    assert version_class(Article(name="x")) is ArticleVersion
    assert parent_class(aliased(ArticleVersion)) is Article
    assert parent_class(ArticleVersion()) is Article
    for item in (
        Article,
        aliased(Article),
        Article(),
        ArticleVersion,
        aliased(ArticleVersion),
        article_table,
        version_table_,
        association,
        v.metadata.tables["article_tag_version"],
    ):
        assert get_versioning_manager(item) is manager, item
    assert utils.option(aliased(Article), "table_name") == "%s_version"
    assert utils.option(aliased(ArticleVersion), "transaction_column_name") == "transaction_id"
    assert utils.option(Article(), "strategy") == "validity"
    assert sqlalchemy_history.tx_column_name(aliased(ArticleVersion)) == "transaction_id"
    assert transaction_class(aliased(Article)) is manager.transaction_cls
    assert utils.version_table(article_table) is version_table_
    assert utils.version_table(association).name == "article_tag_version"
    assert utils.parent_table(version_table_) is article_table
    assert utils.parent_table(v.metadata.tables["article_tag_version"]) is association

    with pytest.raises(ClassNotVersioned, match="Unversioned"):
        version_class(Unversioned)
    with pytest.raises(ClassNotVersioned, match="Unversioned"):
        get_versioning_manager(aliased(Unversioned))
    with pytest.raises(TableNotVersioned, match="unversioned"):
        get_versioning_manager(Unversioned.__table__)
    with pytest.raises(TableNotVersioned, match="unversioned"):
        utils.version_table(Unversioned.__table__)
    with pytest.raises(TableNotVersioned, match="is a version table"):
        utils.version_table(version_table_)
    with pytest.raises(ClassNotVersioned, match="not a version class"):
        parent_class(Article)


def inheritance(Base):
    class Article(Base):
        __tablename__ = "article"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        type = sa.Column(sa.Unicode(20))
        __mapper_args__ = {"polymorphic_on": type, "polymorphic_identity": "article"}

    class FirstLevel(Article):
        __tablename__ = "first_level"
        __versioned__ = {}
        id = sa.Column(sa.Integer, sa.ForeignKey("article.id"), primary_key=True)
        extra = sa.Column(sa.Unicode(50))
        __mapper_args__ = {"polymorphic_identity": "first"}

    class SecondLevel(FirstLevel):
        __versioned__ = {}
        __mapper_args__ = {"polymorphic_identity": "second"}

    class Concrete(Base):
        __tablename__ = "concrete"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)

    return locals()


def test_versioning_manager_attribute_and_multi_level_tables(versioned):
    v = versioned(inheritance)
    for model in (v.Article, v.FirstLevel, v.SecondLevel, v.Concrete):
        assert model.__versioning_manager__ is versioning_manager
        assert version_class(model).__versioning_manager__ is versioning_manager
    # The lowest level has no table of its own: its version class is mapped to the
    # version table of the level above, and says so in __table__.
    SecondLevelVersion = version_class(v.SecondLevel)
    assert SecondLevelVersion.__name__ == "SecondLevelVersion"
    assert SecondLevelVersion.__table__ is v.metadata.tables["first_level_version"]
    with v.session() as session:
        obj = v.SecondLevel(name="n", extra="e")
        session.add(obj)
        session.commit()
        obj.extra = "f"
        session.commit()
        versions = obj.versions.all()
        assert [type(x) for x in versions] == [SecondLevelVersion, SecondLevelVersion]
        assert [(x.name, x.extra) for x in versions] == [("n", "e"), ("n", "f")]
        found = session.scalars(
            sa.select(SecondLevelVersion).where(SecondLevelVersion.extra == "f")
        ).all()
        assert found == [versions[1]]


# -- plugins ---------------------------------------------------------------------------


class DuckPlugin:
    """A plugin that does not subclass Plugin and has only some hooks (duck typing)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def before_flush(self, uow, session):
        self.calls.append("before_flush")

    def transaction_args(self, uow, session):
        self.calls.append("transaction_args")
        return {"remote_addr": "duck"}


def test_plugin_collection_is_a_list_of_any_objects():
    duck, real = DuckPlugin(), TransactionChangesPlugin()
    plugins = PluginCollection([duck])
    plugins.append(real)
    assert list(plugins) == [duck, real] and len(plugins) == 2
    assert plugins[0] is duck and plugins.plugins == [duck, real]
    assert repr(plugins) == f"<PluginCollection [{duck!r}, {real!r}]>"
    replacement = DuckPlugin()
    plugins[0] = replacement
    assert plugins[0] is replacement
    del plugins[0]
    assert list(plugins) == [real]
    assert list(PluginCollection(plugins)) == [real]
    # A hook is called on every plugin that has it.
    plugins = PluginCollection([DuckPlugin(), Plugin(), object()])
    assert plugins.transaction_args(None, None) == [{"remote_addr": "duck"}, {}]
    assert plugins.after_build_models(None) == [None]


def test_misspelt_hook_of_a_plugin_subclass_is_still_an_error():
    class Misspelt(Plugin):
        def before_flsuh(self, uow, session):
            pass

    with pytest.raises(ImproperlyConfigured, match="before_flsuh"):
        PluginCollection([Misspelt()])


def test_duck_plugin_and_plain_list_assigned_after_make_versioned(versioned):
    duck = DuckPlugin()

    def define(Base):
        versioning_manager.plugins = [duck]  # a plain list, as the reference's tests assign
        return blog(Base)

    v = versioned(define)
    assert isinstance(versioning_manager.plugins, PluginCollection)
    assert list(versioning_manager.plugins) == [duck]
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        assert article.versions[0].transaction.remote_addr == "duck"
    assert duck.calls == ["before_flush", "transaction_args"]


# -- the unit of work ------------------------------------------------------------------


def test_units_of_work_and_get_uow(versioned):
    v = versioned(blog)
    manager = versioning_manager
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.flush()
        uow = manager.unit_of_work(session)
        connection = session.connection()
        assert manager.get_uow(connection) is uow
        assert manager.get_uow(session) is uow
        assert list(manager.units_of_work.values()) == [uow]
        assert manager.session_connection_map[session] is connection
        assert uow.current_transaction.id == uow.transaction_id
        session.commit()
    assert len(manager.units_of_work) == 0
    assert len(manager.session_connection_map) == 0
    with v.engine.connect() as other, pytest.raises(KeyError):
        manager.get_uow(other)


# -- reading what the reference prints ---------------------------------------------------


def test_transaction_repr(versioned):
    v = versioned(blog)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        tx = article.versions[0].transaction
        assert repr(tx) == f"<Transaction id={tx.id!r}, issued_at={tx.issued_at!r}>"


def test_transaction_changes_class_on_every_versioned_model(versioned):
    """``Article.__versioned__['transaction_changes']``, as both peers' query pages use it."""
    plugin = TransactionChangesPlugin()
    v = versioned(blog, plugins=[plugin])
    TransactionChanges = v.Article.__versioned__["transaction_changes"]
    assert TransactionChanges is plugin.model_class
    assert v.Tag.__versioned__["transaction_changes"] is TransactionChanges
    with v.session() as session:
        article = v.Article(name="a", tags=[v.Tag(name="t")])
        session.add(article)
        session.commit()
        tx_id = article.versions[0].transaction_id
        names = session.scalars(
            sa.select(TransactionChanges.entity_name)
            .where(TransactionChanges.transaction_id == tx_id)
            .order_by(TransactionChanges.entity_name)
        ).all()
        assert names == ["Article", "Tag"]


def test_version_class_base_is_importable_under_continuums_name():
    from sqlalchemy_history.version import VersionClassBase, VersionMixin

    assert VersionClassBase is VersionMixin


# -- naming -----------------------------------------------------------------------------


def test_names_follow_the_table_name_option(versioned):
    """Class suffix and association version table follow ``table_name`` as in 2.2.1."""
    v = versioned(blog, options={"table_name": "%s_history"})
    assert version_class(v.Article).__name__ == "ArticleHistory"
    history = v.metadata.tables["article_tag_history"]
    assert utils.version_table(v.metadata.tables["article_tag"]) is history
    assert "article_tag_version" not in v.metadata.tables
    with v.session() as session:
        session.add(v.Article(name="a", tags=[v.Tag(name="t")]))
        session.commit()
    assert len(v.rows("article_tag_history")) == 1


def test_association_table_uses_the_manager_wide_template(versioned):
    def define(Base):
        models = blog(Base)
        return models

    v = versioned(define, options={"table_name": "%s_log"})
    assert "article_tag_log" in v.metadata.tables


def test_enum_types_are_named_like_the_reference(versioned, db_name):
    v = versioned(blog)
    parent_type = v.metadata.tables["article"].c.kind.type
    version_type = v.metadata.tables["article_version"].c.kind.type
    assert parent_type.name == "article_kind"
    assert version_type.name == "history_article_kind"
    assert version_type.enums == ["news", "blog"]
    ddl = str(
        CreateTable(v.metadata.tables["article_version"]).compile(dialect=postgresql.dialect())
    )
    assert re.search(r"kind history_article_kind", ddl)
    if db_name == "postgresql":
        with v.engine.connect() as conn:
            types = set(conn.scalars(sa.text("SELECT typname FROM pg_type WHERE typtype = 'e'")))
        assert {"article_kind", "history_article_kind"} <= types
    with v.session() as session:
        article = v.Article(name="a", kind="news")
        session.add(article)
        session.commit()
        article.kind = "blog"
        session.commit()
        assert [x.kind for x in article.versions] == ["news", "blog"]


# -- revert and maintenance signatures ------------------------------------------------------


def test_revert_unknown_relation_names_it(versioned):
    v = versioned(blog)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        with pytest.raises(ReverterException, match="no_such_relation"):
            article.versions[0].revert(relations=["no_such_relation"])


def test_vacuum_accepts_yield_per_and_keeps_the_chain_valid(versioned):
    v = versioned(blog)
    table = v.metadata.tables["article_version"]
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        for name in ("b", "c"):
            article.name = name
            session.commit()
        loaded = article.versions.all()
        with v.engine.begin() as conn:  # "c" -> "b": the last version now repeats the one before
            conn.execute(table.update().where(table.c.name == "c").values(name="b"))
        assert utils.vacuum(session, v.Article, yield_per=10) == 1
        assert sqlalchemy_history.vacuum(session, v.Article, 500) == 0
        session.commit()
        assert [(x.name, x.end_transaction_id) for x in article.versions] == [
            ("a", loaded[1].transaction_id),
            ("b", None),
        ]


def test_schema_helpers_on_association_tables(versioned):
    from sqlalchemy_history.schema import update_end_tx_column, update_property_mod_flags

    v = versioned(blog)
    association = v.metadata.tables["article_tag_version"]
    with v.session() as session:
        article = v.Article(name="a", tags=[v.Tag(name="t1")])
        session.add(article)
        session.commit()
        article.tags = []
        session.commit()
        article.tags = [session.scalars(sa.select(v.Tag)).one()]
        session.commit()
    expected = v.rows("article_tag_version", ["transaction_id"])
    assert [r["operation_type"] for r in expected] == [0, 2, 0]
    assert [r["end_transaction_id"] for r in expected] == [
        expected[1]["transaction_id"],
        expected[2]["transaction_id"],
        None,
    ]
    with v.engine.begin() as conn:
        conn.execute(association.update().values(end_transaction_id=None))
        update_end_tx_column(association, conn=conn)
        assert update_property_mod_flags(association, [], conn=conn) == 0
    assert v.rows("article_tag_version", ["transaction_id"]) == expected
    with v.session() as session:  # a Session is accepted too, as in the reference
        session.execute(association.update().values(end_transaction_id=None))
        update_end_tx_column(association, conn=session)
        session.commit()
    assert v.rows("article_tag_version", ["transaction_id"]) == expected


def test_schema_helpers_without_conn_outside_a_migration_say_what_to_pass(versioned):
    from sqlalchemy_history.schema import update_end_tx_column

    v = versioned(blog)
    with pytest.raises(TypeError, match="needs conn="):
        update_end_tx_column(v.metadata.tables["article_version"])


# -- Continuum's trigger mode -----------------------------------------------------------------


@pytest.mark.parametrize("where", ["make_versioned", "__versioned__"])
def test_native_versioning_is_refused(where):
    Base: Any = sa.orm.declarative_base()
    try:
        if where == "make_versioned":
            with pytest.raises(ImproperlyConfigured, match=r"native_versioning.*migrating\.md"):
                make_versioned(user_cls=None, options={"native_versioning": True})
        else:
            make_versioned(user_cls=None)
            with pytest.raises(ImproperlyConfigured, match=r"Article.*native_versioning"):

                class Article(Base):
                    __tablename__ = "article"
                    __versioned__ = {"native_versioning": True}
                    id = sa.Column(sa.Integer, primary_key=True)

    finally:
        remove_versioning()
        Base.registry.dispose()


def test_native_versioning_false_is_accepted_silently(recwarn):
    Base: Any = sa.orm.declarative_base()
    make_versioned(user_cls=None, options={"native_versioning": False})
    try:

        class Article(Base):
            __tablename__ = "article"
            __versioned__ = {"native_versioning": False}
            id = sa.Column(sa.Integer, primary_key=True)

        configure_mappers()
        assert hasattr(Article, "versions")
        assert not [w for w in recwarn if "native_versioning" in str(w.message)]
    finally:
        remove_versioning()
        Base.registry.dispose()


def test_continuum_trigger_helpers_fail_with_a_clear_import_error():
    with pytest.raises(ImportError, match=r"sync_trigger.*no trigger.*migrating\.md"):
        from sqlalchemy_history.dialects.postgresql import sync_trigger  # noqa: F401


def test_flask_plugin_is_importable_from_plugins():
    from sqlalchemy_history.plugins import FlaskPlugin

    assert issubclass(FlaskPlugin, Plugin)


def test_session_for_the_schema_helpers_is_a_plain_session(versioned):
    """``Session`` objects given to ``vacuum`` stay usable (version objects expired)."""
    v = versioned(blog)
    with Session(v.engine) as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        first = article.versions[0]
        assert utils.vacuum(session, v.Article) == 0
        assert first.name == "a"


# -- what else 2.2.1 code reads -------------------------------------------------------------


def test_utils_of_the_reference(versioned):
    from sqlalchemy_history.exc import NoChangesAttribute

    v = versioned(blog)
    ArticleVersion = version_class(v.Article)
    assert [p.key for p in utils.versioned_column_properties(v.Article)] == ["id", "name", "kind"]
    assert utils.is_internal_column(v.Article, "transaction_id")
    assert utils.is_internal_column(ArticleVersion, "operation_type")
    assert not utils.is_internal_column(v.Article, "name")
    assert utils.is_table_column(v.Article.__table__.c.name)
    assert [p.key for p in utils.versioned_relationships(v.Article(), ["id"])] == ["tags"]
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        assert utils.version_obj(session, article) is None
        session.flush()
        version = utils.version_obj(session, article)
        assert isinstance(version, ArticleVersion) and version.name == "a"
        assert repr(version) == (
            f"ArticleVersion(id={article.id}, transaction_id={version.transaction_id}, "
            f"operation_type=0)"
        )
        session.commit()
        with pytest.raises(NoChangesAttribute, match="TransactionChangesPlugin"):
            article.versions[0].transaction.entity_names  # noqa: B018


def test_indexed_parent_columns_are_indexed_in_history(versioned):
    def define(Base):
        class Article(Base):
            __tablename__ = "article"
            __versioned__ = {}
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            slug = sa.Column(sa.Unicode(50), index=True, unique=True)

        return locals()

    v = versioned(define)
    indexes = {i.name: i for i in v.metadata.tables["article_version"].indexes}
    assert "ix_article_version_slug" in indexes
    assert not indexes["ix_article_version_slug"].unique
    reflected = {i["name"] for i in sa.inspect(v.engine).get_indexes("article_version")}
    assert "ix_article_version_slug" in reflected


class ReferenceStylePlugin:
    """A duck-typed plugin with SQLAlchemy-History 2.2.1's hook signatures."""

    def __init__(self) -> None:
        self.built: list[tuple[str, str]] = []

    def after_build_version_table_columns(self, table_builder, columns):
        if table_builder.model is not None:  # as the reference's own plugins check
            assert table_builder.option("table_name") == "%s_version"
            columns.append(sa.Column("note", sa.Unicode(20), server_default="n"))

    def after_version_class_built(self, parent_cls, version_cls):
        self.built.append((parent_cls.__name__, version_cls.__name__))


def test_reference_style_plugin_hooks(versioned):
    plugin = ReferenceStylePlugin()
    v = versioned(blog, plugins=[plugin])
    assert "note" in v.metadata.tables["article_version"].c
    assert "note" not in v.metadata.tables["article_tag_version"].c
    assert sorted(plugin.built) == [("Article", "ArticleVersion"), ("Tag", "TagVersion")]
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.commit()
    assert [r["note"] for r in v.rows("article_version")] == ["n"]


def test_versioning_option_switched_off_at_run_time(versioned):
    """``versioning_manager.options["versioning"] = False`` pauses recording (bulk imports)."""
    v = versioned(blog)
    try:
        with v.session() as session:
            versioning_manager.options["versioning"] = False
            article = v.Article(name="imported", tags=[v.Tag(name="t")])
            session.add(article)
            session.commit()
            article.tags = []
            session.commit()
            # bulk statements and legacy bulk methods pause too
            session.execute(sa.update(v.Article).values(name="bulk"))
            session.bulk_insert_mappings(v.Tag, [{"name": "mapped"}])
            session.commit()
            versioning_manager.options["versioning"] = True
            article.name = "edited"
            session.commit()
            assert [(x.name, x.operation_type) for x in article.versions] == [("edited", 1)]
    finally:
        versioning_manager.options["versioning"] = True
    assert v.rows("tag_version") == [] and v.rows("article_tag_version") == []
    assert len(v.rows("transaction")) == 1
