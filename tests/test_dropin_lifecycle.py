"""Drop-in, lifecycle: test suites and apps written for SQLAlchemy-History 2.2.1 run unchanged.

What their code does with the manager: cycle ``make_versioned()`` / models on a fresh base /
``remove_versioning()`` many times in one process (with plugins, ``MetaData(schema=...)``,
a fresh ``TransactionFactory`` and plain plugin lists assigned after ``make_versioned()``),
keep models on two declarative bases, and forget ``make_versioned()`` (a warning names
the classes). Every test runs on each configured database.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, Optional

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import (
    DeclarativeBase,
    Session,
    close_all_sessions,
    configure_mappers,
    declarative_base,
    relationship,
    sessionmaker,
)

from conftest import database_url
from sqlalchemy_history import (
    TransactionFactory,
    make_versioned,
    remove_versioning,
    version_class,
    versioning_manager,
)
from sqlalchemy_history.exc import UnrecordedSessionWarning, UnversionedModelWarning
from sqlalchemy_history.plugins import (
    PropertyModTrackerPlugin,
    TransactionChangesPlugin,
    TransactionMetaPlugin,
)

# -- a second schema on every database -------------------------------------------------


@pytest.fixture
def schema_engine(db_name: str, tmp_path: Any) -> Iterator[tuple[sa.Engine, str]]:
    """An engine where schema ``<name>`` exists besides the default one.

    SQLite: a file attached to every connection; PostgreSQL: a schema in the test database;
    MySQL/MariaDB: a database, named after the test database so runs on one server never
    share it.
    """
    engine = sa.create_engine(database_url(db_name, tmp_path))
    if db_name == "sqlite":
        schema = "sqlahistory"
        attached = tmp_path / "sqlahistory.db"

        @sa.event.listens_for(engine, "connect")
        def attach(dbapi_connection: Any, record: Any) -> None:
            dbapi_connection.execute(f"ATTACH DATABASE '{attached}' AS {schema}")

    elif db_name == "postgresql":
        schema = "sqlahistory"
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    else:
        schema = f"{engine.url.database}_sqlahistory"
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {schema}")
    yield engine, schema
    engine.dispose()


def drop_tables(engine: sa.Engine, schema: Optional[str] = None) -> None:
    meta = sa.MetaData(schema=schema)
    meta.reflect(engine)
    meta.drop_all(engine)


def article_model(Base: Any) -> type:
    """A versioned ``Article(id, name)`` on ``Base``."""
    return type(
        "Article",
        (Base,),
        {
            "__tablename__": "article",
            "__versioned__": {},
            "id": sa.Column(sa.Integer, primary_key=True, autoincrement=True),
            "name": sa.Column(sa.Unicode(50)),
        },
    )


# -- a test suite written for SQLAlchemy-History ---------------------------------------


class ReferenceStyleTestCase:
    """The fixture pattern of SQLAlchemy-History's own test suite (and of apps copying it).

    Class attributes are shared by every instance, exactly as there: one
    ``TransactionFactory`` and one plugin list for all the tests of a class.
    """

    plugins: list[Any] = []
    transaction_cls = TransactionFactory()
    user_cls: Optional[str] = None
    schema: Optional[str] = None

    def setup_method(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.Model = declarative_base(metadata=sa.MetaData(schema=self.schema))
        make_versioned(options={"strategy": "validity"})
        versioning_manager.plugins = self.plugins
        versioning_manager.transaction_cls = self.transaction_cls
        versioning_manager.user_cls = self.user_cls
        self.create_models()
        configure_mappers()
        drop_tables(engine, self.schema)
        self.Model.metadata.create_all(engine)
        self.session = Session(engine)

    def create_models(self) -> None:
        class User(self.Model):
            __tablename__ = "user"
            __versioned__ = {}
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(50))

        class Article(self.Model):
            __tablename__ = "article"
            __versioned__ = {}
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(50))
            author_id = sa.Column(sa.Integer, sa.ForeignKey(User.id))
            author = relationship(User)

        self.User = User
        self.Article = Article

    def teardown_method(self) -> None:
        self.session.rollback()
        leaks = (
            len(versioning_manager.units_of_work),
            len(versioning_manager.session_connection_map),
        )
        remove_versioning()
        versioning_manager.reset()
        close_all_sessions()
        self.Model.metadata.drop_all(self.engine)
        self.Model.registry.dispose()
        assert leaks == (0, 0)

    def run(self) -> None:
        session = self.session
        article = self.Article(name="a", author=self.User(name="u"))
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        assert [v.name for v in article.versions] == ["a", "b"]
        tx = article.versions[1].transaction
        assert isinstance(tx, versioning_manager.transaction_cls)
        ArticleVersion = version_class(self.Article)
        assert ArticleVersion.__table__.schema == self.schema
        if any(isinstance(p, TransactionChangesPlugin) for p in versioning_manager.plugins):
            assert tx.entity_names == ["Article"]
            TransactionChanges = self.Article.__versioned__["transaction_changes"]
            changed = session.scalars(
                sa.select(TransactionChanges.entity_name).where(
                    TransactionChanges.transaction_id == tx.id
                )
            ).all()
            assert changed == ["Article"]
        if self.user_cls:
            assert "user_id" in tx.__table__.c


class Plain(ReferenceStyleTestCase):
    pass


class WithPlugins(ReferenceStyleTestCase):
    plugins = [TransactionChangesPlugin(), TransactionMetaPlugin()]


class WithModTrackerAndUser(ReferenceStyleTestCase):
    plugins = [PropertyModTrackerPlugin()]
    user_cls = "User"


class InSchemaWithPlugins(ReferenceStyleTestCase):
    plugins = [TransactionChangesPlugin(), TransactionMetaPlugin()]
    schema = "?"  # set per database


def test_configuration_cycles_leave_nothing_behind(schema_engine):
    """Six cycles in one process, alternating plugins, a user class and MetaData(schema=...).

    The second cycle used to fail with "Table 'sqlahistory.transaction_changes' is already
    defined for this MetaData instance", and every later one with it.
    """
    engine, schema = schema_engine
    InSchemaWithPlugins.schema = schema
    order = [Plain, WithPlugins, InSchemaWithPlugins, WithModTrackerAndUser, InSchemaWithPlugins]
    order += [WithPlugins, Plain]
    for case_cls in order:
        case = case_cls()
        try:
            case.setup_method(engine)
            case.run()
        finally:
            case.teardown_method()
    assert versioning_manager.version_class_map == {}
    assert versioning_manager.transaction_table is None


def test_one_transaction_factory_shared_by_cycles(engine):
    """``versioning_manager.transaction_cls = TransactionFactory()`` after make_versioned(),
    the same factory object in every cycle, as the reference's test base assigns it."""
    factory = TransactionFactory(remote_addr=False)
    for _ in range(3):
        make_versioned(user_cls=None)
        versioning_manager.transaction_cls = factory
        Base = declarative_base()

        Article = article_model(Base)
        try:
            configure_mappers()
            Transaction = versioning_manager.transaction_cls
            assert isinstance(Transaction, type)
            assert "remote_addr" not in Transaction.__table__.c
            drop_tables(engine)
            Base.metadata.create_all(engine)
            with Session(engine) as session:
                session.add(Article(name="a"))
                session.commit()
                assert isinstance(session.scalars(sa.select(Transaction)).one(), Transaction)
        finally:
            remove_versioning()
            Base.metadata.drop_all(engine)
            Base.registry.dispose()


def test_transaction_factory_called_with_the_manager(engine):
    """SQLAlchemy-History's ``TransactionFactory.__call__(manager)`` form maps the class now."""
    make_versioned(user_cls=None)
    Base = declarative_base()
    try:
        Article = article_model(Base)
        Transaction = TransactionFactory()(versioning_manager)
        assert Transaction is versioning_manager.transaction_cls
        assert sa.inspect(Transaction).local_table is Base.metadata.tables["transaction"]
        assert versioning_manager.create_transaction_model() is Transaction
        configure_mappers()
        assert versioning_manager.transaction_cls is Transaction
        drop_tables(engine)
        Base.metadata.create_all(engine)
        with Session(engine) as session:
            article = Article()
            session.add(article)
            session.commit()
            assert type(article.versions[0].transaction) is Transaction
    finally:
        remove_versioning()
        Base.metadata.drop_all(engine)
        Base.registry.dispose()


def test_transaction_factory_before_any_model_says_what_to_do():
    from sqlalchemy_history import ImproperlyConfigured

    make_versioned(user_cls=None)
    try:
        with pytest.raises(ImproperlyConfigured, match="define a model with __versioned__"):
            TransactionFactory()(versioning_manager)
    finally:
        remove_versioning()


# -- two declarative bases (issue 11, item 8) ------------------------------------------


def two_bases() -> tuple[type[DeclarativeBase], type[DeclarativeBase], dict[str, Any]]:
    class First(DeclarativeBase):
        pass

    class Second(DeclarativeBase):
        pass

    class User(First):
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)

    class Tag(First):
        __tablename__ = "tag"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Article(Second):
        __tablename__ = "article"
        __versioned__ = {}
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    return First, Second, {"User": User, "Tag": Tag, "Article": Article}


@pytest.mark.parametrize("created", ["both", "second-only"])
def test_two_declarative_bases(engine, created):
    """Versioned models on a second base (another MetaData) record history too.

    The ``transaction`` table used to go into the first base's MetaData only, so the
    second base's ``create_all()`` did not create it ("no such table: transaction").
    """
    make_versioned(user_cls="User", plugins=[TransactionChangesPlugin()])
    First, Second, models = two_bases()
    try:
        configure_mappers()
        assert "transaction" in First.metadata.tables
        assert "transaction" in Second.metadata.tables
        assert "transaction_changes" in Second.metadata.tables
        # The user table is on the first base: the second base's copy has the column but
        # no foreign key its MetaData could not create.
        second_tx = Second.metadata.tables["transaction"]
        assert "user_id" in second_tx.c and not second_tx.c.user_id.foreign_keys
        drop_tables(engine)
        if created == "both":
            First.metadata.create_all(engine)
        Second.metadata.create_all(engine)
        Article = models["Article"]
        with Session(engine) as session:
            article = Article(name="a")
            session.add(article)
            if created == "both":
                session.add(models["Tag"](name="t"))
            session.commit()
            article.name = "b"
            session.commit()
            assert [v.name for v in article.versions] == ["a", "b"]
            tx = article.versions[1].transaction
            assert tx.entity_names == ["Article"]
            assert type(tx) is versioning_manager.transaction_cls
            if created == "both":
                tag_tx = session.scalars(sa.select(version_class(models["Tag"]))).one()
                assert tag_tx.transaction_id == article.versions[0].transaction_id
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(second_tx)) == 2
    finally:
        remove_versioning()
        Second.metadata.drop_all(engine)
        First.metadata.drop_all(engine)
        Second.registry.dispose()
        First.registry.dispose()


def test_transaction_table_copy_follows_the_user_class_assigned_late():
    """``user_cls`` set after the models were mapped rebuilds the table in both MetaData."""
    make_versioned(user_cls=None)
    First, Second, _ = two_bases()
    try:
        assert "user_id" not in Second.metadata.tables["transaction"].c
        versioning_manager.user_cls = "User"
        configure_mappers()
        assert "user_id" in First.metadata.tables["transaction"].c
        assert "user_id" in Second.metadata.tables["transaction"].c
    finally:
        remove_versioning()
        Second.registry.dispose()
        First.registry.dispose()


# -- history silently off (issue 11, item 9) ----------------------------------------------


def define_article(Base: Any, **versioned: Any) -> type:
    return type(
        "LateArticle",
        (Base,),
        {
            "__tablename__": "late_article",
            "__versioned__": versioned,
            "id": sa.Column(sa.Integer, primary_key=True),
        },
    )


@contextlib.contextmanager
def fresh_base() -> Iterator[type[DeclarativeBase]]:
    class Base(DeclarativeBase):
        pass

    try:
        yield Base
    finally:
        remove_versioning()
        Base.registry.dispose()


def test_make_versioned_after_the_models_warns_naming_them():
    with fresh_base() as Base:
        Article = define_article(Base)
        make_versioned(user_cls=None)
        with pytest.warns(UnversionedModelWarning, match="LateArticle.*called after"):
            configure_mappers()
        assert not hasattr(Article, "versions")


def test_forgotten_make_versioned_warns_naming_the_class():
    with fresh_base() as Base:
        define_article(Base)
        with pytest.warns(UnversionedModelWarning, match="LateArticle.*was not called"):
            configure_mappers()


def test_no_warning_when_versioning_is_set_up_or_switched_off():
    with fresh_base() as Base, warnings.catch_warnings():
        warnings.simplefilter("error")
        define_article(Base, versioning=False)
        make_versioned(user_cls=None)

        class Versioned(Base):
            __tablename__ = "versioned"
            __versioned__ = {}
            id = sa.Column(sa.Integer, primary_key=True)

        configure_mappers()
        assert hasattr(Versioned, "versions")


# -- make_versioned(session=MySession) -------------------------------------------------


def test_only_the_given_session_class_records_and_others_warn_once(engine):
    class MySession(Session):
        pass

    make_versioned(user_cls=None, session=MySession)
    Base = declarative_base()
    try:
        Article = article_model(Base)
        configure_mappers()
        drop_tables(engine)
        Base.metadata.create_all(engine)
        with MySession(engine) as session, warnings.catch_warnings():
            warnings.simplefilter("error")
            recorded = Article(name="recorded")
            session.add(recorded)
            session.commit()
            assert recorded.versions.count() == 1
        with Session(engine) as session:
            with pytest.warns(UnrecordedSessionWarning, match="Article.*MySession"):
                session.add(Article(name="not recorded"))
                session.commit()
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # once is enough
                session.add(Article(name="not recorded either"))
                session.commit()
        factory = sessionmaker(engine, class_=MySession)
        with factory() as session:
            session.add(Article(name="from a sessionmaker of MySession"))
            session.commit()
        with engine.connect() as conn:
            table = Base.metadata.tables["article_version"]
            names = conn.scalars(sa.select(table.c.name).order_by(table.c.transaction_id)).all()
        assert names == ["recorded", "from a sessionmaker of MySession"]
    finally:
        remove_versioning(session=MySession)
        Base.metadata.drop_all(engine)
        Base.registry.dispose()


# -- a database created by SQLAlchemy-History 2.2.1 ---------------------------------------

#: docs/migrating.md's statements, per server kind; the test checks the page shows them.
FROM_2_2_1 = {
    "postgresql": [
        "ALTER TABLE transaction ALTER COLUMN id SET DEFAULT nextval('transaction_id_seq')",
        "ALTER TABLE article_tag_version DROP CONSTRAINT article_tag_version_pkey, "
        "ADD PRIMARY KEY (article_id, tag_id, transaction_id)",
    ],
    "mariadb": [
        "ALTER TABLE transaction MODIFY id BIGINT NOT NULL AUTO_INCREMENT",
        "ALTER TABLE article_tag_version DROP PRIMARY KEY, "
        "ADD PRIMARY KEY (article_id, tag_id, transaction_id)",
    ],
    "mysql": [
        "ALTER TABLE article_tag_version DROP PRIMARY KEY, "
        "ADD PRIMARY KEY (article_id, tag_id, transaction_id)",
    ],
    "sqlite": [],
}


def tables_of_2_2_1(metadata: sa.MetaData, sqlite: bool) -> None:
    """The tables SQLAlchemy-History 2.2.1 creates for ``tagged`` below (its DDL, observed)."""
    version_columns = [
        sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("end_transaction_id", sa.BigInteger, index=True),
        sa.Column("operation_type", sa.SmallInteger, nullable=False, index=True),
    ]
    tagged(metadata)
    for name, columns in (
        ("article_version", [sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)]),
        ("tag_version", [sa.Column("id", sa.Integer, primary_key=True, autoincrement=False)]),
        # no primary key on the association table: 2.2.1 keys its history by transaction only
        (
            "article_tag_version",
            [sa.Column("article_id", sa.Integer), sa.Column("tag_id", sa.Integer)],
        ),
    ):
        sa.Table(name, metadata, *columns, *(c._copy() for c in version_columns))
    # 2.2.1 compiles BigInteger as INTEGER on SQLite (an autoincrementing rowid there) and
    # numbers transactions from a sequence elsewhere (where the database has sequences).
    id_type = sa.Integer if sqlite else sa.BigInteger
    sa.Table(
        "transaction",
        metadata,
        sa.Column("id", id_type, sa.Sequence("transaction_id_seq"), primary_key=True),
        sa.Column("remote_addr", sa.String(50)),
        sa.Column("issued_at", sa.DateTime),
    )


def tagged(metadata: sa.MetaData) -> dict[str, Any]:
    article_tag = sa.Table(
        "article_tag",
        metadata,
        sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id")),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id")),
    )
    sa.Table("article", metadata, sa.Column("id", sa.Integer, primary_key=True))
    sa.Table("tag", metadata, sa.Column("id", sa.Integer, primary_key=True))
    return {"article_tag": article_tag}


def test_database_made_by_sqlalchemy_history_2_2_1(engine):
    """docs/migrating.md's statements make a 2.2.1 database record with this library."""
    from pathlib import Path

    with engine.connect():
        pass  # the dialect tells MariaDB from MySQL once connected
    kind = engine.dialect.name
    if kind == "mysql" and engine.dialect.is_mariadb:
        kind = "mariadb"
    page = (Path(__file__).resolve().parent.parent / "docs" / "migrating.md").read_text()
    for statement in FROM_2_2_1[kind]:
        assert statement in page
    old = sa.MetaData()
    tables_of_2_2_1(old, sqlite=kind == "sqlite")
    drop_tables(engine)
    old.drop_all(engine)
    old.create_all(engine)
    try:
        with engine.begin() as conn:  # history written by 2.2.1: transaction 1
            conn.execute(old.tables["transaction"].insert().values(remote_addr="2.2.1"))
            for statement in FROM_2_2_1[kind]:
                conn.exec_driver_sql(statement)
        if kind == "sqlite":  # no ALTER of a primary key: recreate the table, as batch mode does
            history = old.tables["article_tag_version"]
            history.drop(engine)
            old.remove(history)
            columns = [c._copy() for c in history.columns]
            for column in columns[:2]:
                column.primary_key = True
            sa.Table("article_tag_version", old, *columns).create(engine)
        make_versioned(user_cls=None)
        Base = declarative_base()
        try:

            class Tag(Base):
                __table__ = sa.Table(
                    "tag", Base.metadata, sa.Column("id", sa.Integer, primary_key=True)
                )
                __versioned__ = {}

            association = tagged(sa.MetaData())["article_tag"].to_metadata(Base.metadata)

            class Article(Base):
                __tablename__ = "article"
                __versioned__ = {}
                id = sa.Column(sa.Integer, primary_key=True)
                tags = relationship(Tag, secondary=association)

            configure_mappers()
            with Session(engine) as session:
                article = Article(id=1, tags=[Tag(id=1), Tag(id=2)])  # two links, one transaction
                session.add(article)
                session.commit()
                assert article.versions[0].transaction_id == 2
                assert sorted(t.id for t in article.versions[0].tags) == [1, 2]
        finally:
            remove_versioning()
            Base.registry.dispose()
    finally:
        old.drop_all(engine)
