"""SPEC §2: the layout of version tables and of the transaction table, on the MetaData and
in the real database, and the options and mappings that shape them (composite keys,
exclude/include, column aliases, schemas, table_name, base_classes, use_module_name,
create_models, versioning=False, inheritance, hybrid/column_property/association proxy).
"""

from __future__ import annotations

import datetime
from typing import Any, Optional

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.ext.associationproxy import association_proxy
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    column_property,
    configure_mappers,
    mapped_column,
    relationship,
)

from sqlalchemy_history import (
    ClassNotVersioned,
    Operation,
    is_versioned,
    make_versioned,
    remove_versioning,
    version_class,
    versioning_manager,
)

DIALECTS = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),
    "mysql": mysql.dialect(),
}


# -- helpers ------------------------------------------------------------------------


@pytest.fixture
def build():
    """Build versioned models without a database: ``Base, models = build(define, ...)``."""
    bases: list[Any] = []

    def run(define, options=None, user_cls=None):
        make_versioned(user_cls=user_cls, options=options)

        class Base(DeclarativeBase):
            pass

        bases.append(Base)
        models = {k: v for k, v in define(Base).items() if isinstance(v, type)}
        configure_mappers()
        return Base, models

    yield run
    remove_versioning()
    for base in bases:
        base.registry.dispose()


def compiled(type_: Any, dialect: Any) -> str:
    return str(type_.compile(dialect=dialect))


def column_by_name(table: sa.Table, name: str) -> sa.Column[Any]:
    found = [c for c in table.c if c.name == name]
    assert len(found) == 1, f"{table.name} has no single column named {name!r}"
    return found[0]


def reflected_columns(engine: sa.Engine, table: str, schema: Optional[str] = None) -> dict:
    return {c["name"]: c for c in sa.inspect(engine).get_columns(table, schema=schema)}


def leading_index_columns(engine: sa.Engine, table: str, schema: Optional[str] = None) -> set:
    """Names of the columns that lead an index (or the primary key) of ``table``."""
    inspector = sa.inspect(engine)
    leading = {ix["column_names"][0] for ix in inspector.get_indexes(table, schema=schema)}
    pk = inspector.get_pk_constraint(table, schema=schema)["constrained_columns"]
    return leading | {pk[0]}


def supports_schemas(engine: sa.Engine) -> bool:
    # SQLite needs ATTACH DATABASE per connection for a second schema; the others have
    # schemas (MySQL/MariaDB: a schema is a database).
    return engine.dialect.name != "sqlite"


def raw_rows(engine: sa.Engine, table: sa.Table) -> list[dict[str, Any]]:
    """Rows of ``table`` as dicts keyed by column NAME, ordered by the primary key."""
    with engine.connect() as conn:
        result = conn.execute(sa.select(table).order_by(*table.primary_key.columns))
        return [{c.name: row._mapping[c] for c in table.c} for row in result]


# -- version table layout -----------------------------------------------------------


def layout_models(Base):
    class Author(Base):
        __tablename__ = "author"
        id = sa.Column(sa.Integer, primary_key=True)

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(
            sa.Unicode(100),
            nullable=False,
            unique=True,
            default="untitled",
            server_default="untitled",
        )
        views = sa.Column(
            sa.Integer, nullable=False, default=0, server_default=sa.text("0"), onupdate=1
        )
        price = sa.Column(sa.Numeric(10, 2))
        published = sa.Column(sa.Boolean, nullable=False, default=False)
        created_at = sa.Column(sa.DateTime, server_default=sa.func.current_timestamp())
        author_id = sa.Column(sa.Integer, sa.ForeignKey("author.id"), index=True)
        body = sa.Column(sa.UnicodeText)

    return locals()


PARENT_COLUMNS = ["id", "name", "views", "price", "published", "created_at", "author_id", "body"]


@pytest.mark.parametrize("strategy", ["validity", "subquery"])
def test_version_table_layout_on_metadata(build, strategy):
    Base, _ = build(layout_models, options={"strategy": strategy})
    parent = Base.metadata.tables["article"]
    table = Base.metadata.tables["article_version"]

    expected = [*PARENT_COLUMNS, "transaction_id", "operation_type"]
    if strategy == "validity":
        expected.append("end_transaction_id")
    assert sorted(c.name for c in table.c) == sorted(expected)

    for original in parent.c:
        copy = table.c[original.name]
        assert type(copy.type) is type(original.type), original.name
        for dialect in DIALECTS.values():
            assert compiled(copy.type, dialect) == compiled(original.type, dialect)
        assert copy.default is None, original.name
        assert copy.server_default is None, original.name
        assert copy.onupdate is None, original.name
        assert copy.server_onupdate is None, original.name
        assert copy.identity is None, original.name
        assert not copy.foreign_keys, original.name
        assert not copy.unique, original.name
        assert copy.primary_key == original.primary_key
        assert copy.nullable is (not original.primary_key), original.name
    assert table.autoincrement_column is None
    assert not [
        c
        for c in table.constraints
        if isinstance(c, (sa.UniqueConstraint, sa.ForeignKeyConstraint))
    ]
    assert not [ix for ix in table.indexes if ix.unique]

    tx = table.c.transaction_id
    assert isinstance(tx.type, sa.BigInteger)
    assert tx.primary_key and not tx.nullable
    assert [c.name for c in table.primary_key.columns] == ["id", "transaction_id"]

    op = table.c.operation_type
    assert isinstance(op.type, sa.SmallInteger)
    assert not op.nullable and not op.primary_key

    indexed = {ix.columns.keys()[0] for ix in table.indexes}
    assert "transaction_id" in indexed
    if strategy == "validity":
        end = table.c.end_transaction_id
        assert isinstance(end.type, sa.BigInteger)
        assert end.nullable and not end.primary_key
        assert "end_transaction_id" in indexed
    else:
        assert "end_transaction_id" not in table.c


@pytest.mark.parametrize("strategy", ["validity", "subquery"])
def test_version_table_layout_in_database(versioned, strategy):
    v = versioned(layout_models, options={"strategy": strategy})
    engine = v.engine
    inspector = sa.inspect(engine)
    parent = reflected_columns(engine, "article")
    columns = reflected_columns(engine, "article_version")

    expected = {*PARENT_COLUMNS, "transaction_id", "operation_type"}
    if strategy == "validity":
        expected.add("end_transaction_id")
    assert set(columns) == expected

    for name in PARENT_COLUMNS:
        copy = columns[name]
        assert compiled(copy["type"], engine.dialect) == compiled(
            parent[name]["type"], engine.dialect
        )
        assert copy["default"] is None, name
        assert copy.get("autoincrement") is not True, name
        assert "identity" not in copy, name
        if name != "id":
            assert copy["nullable"] is True, name
    assert parent["name"]["nullable"] is False  # the copy above is nullable nevertheless

    pk = inspector.get_pk_constraint("article_version")["constrained_columns"]
    assert pk == ["id", "transaction_id"]
    assert inspector.get_foreign_keys("article_version") == []
    assert inspector.get_unique_constraints("article_version") == []
    assert not [ix for ix in inspector.get_indexes("article_version") if ix["unique"]]

    assert isinstance(columns["transaction_id"]["type"], sa.BigInteger)
    assert columns["transaction_id"]["nullable"] is False
    assert isinstance(columns["operation_type"]["type"], sa.SmallInteger)
    assert columns["operation_type"]["nullable"] is False

    leading = leading_index_columns(engine, "article_version")
    indexed_anywhere = {
        name for ix in inspector.get_indexes("article_version") for name in ix["column_names"]
    }
    assert "transaction_id" in indexed_anywhere
    if strategy == "validity":
        assert isinstance(columns["end_transaction_id"]["type"], sa.BigInteger)
        assert columns["end_transaction_id"]["nullable"] is True
        assert "end_transaction_id" in leading

    # The copies really carry no defaults: a version row can be written with NULLs in every
    # non-key column, and the parent's unique value can appear in many versions.
    with v.session() as session:
        session.add(v.Author(id=1))
        session.flush()
        article = v.Article(name="same", author_id=1, price=1)
        session.add(article)
        session.commit()
        article.price = 2
        session.commit()
    rows = v.rows("article_version", ["transaction_id"])
    assert [r["name"] for r in rows] == ["same", "same"]
    assert [r["views"] for r in rows] == [0, 1]


def test_custom_transaction_column_names(build):
    options = {
        "transaction_column_name": "tx_id",
        "end_transaction_column_name": "end_tx_id",
        "operation_type_column_name": "op",
    }
    Base, _ = build(layout_models, options=options)
    table = Base.metadata.tables["article_version"]
    assert {"tx_id", "end_tx_id", "op"} <= set(table.c.keys())
    assert not {"transaction_id", "end_transaction_id", "operation_type"} & set(table.c.keys())
    assert [c.name for c in table.primary_key.columns] == ["id", "tx_id"]
    assert isinstance(table.c.tx_id.type, sa.BigInteger)
    assert table.c.end_tx_id.nullable
    assert isinstance(table.c.op.type, sa.SmallInteger) and not table.c.op.nullable


# -- the transaction table ----------------------------------------------------------


def user_models(Base):
    class User(Base):
        __tablename__ = "user"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    return locals()


def test_transaction_table_layout(build):
    Base, _ = build(user_models, user_cls=None)
    table = Base.metadata.tables["transaction"]
    assert {"id", "issued_at", "remote_addr"} <= set(table.c.keys())
    assert "user_id" not in table.c
    assert [c.name for c in table.primary_key.columns] == ["id"]
    assert isinstance(table.c.id.type, sa.BigInteger)
    assert table.c.id.identity is not None
    assert isinstance(table.c.issued_at.type, sa.DateTime)
    assert isinstance(table.c.remote_addr.type, sa.String)
    assert table.c.remote_addr.type.length == 50
    for t in Base.metadata.tables.values():
        for column in t.c:
            assert not isinstance(column.default, sa.Sequence), f"{t.name}.{column.name}"
            assert not isinstance(column.server_default, sa.Sequence), f"{t.name}.{column.name}"
    # No CREATE SEQUENCE on any backend: the id is an identity / autoincrement column.
    for dialect in DIALECTS.values():
        ddl = str(sa.schema.CreateTable(table).compile(dialect=dialect)).upper()
        assert "SEQUENCE" not in ddl


def test_transaction_table_without_user_cls_in_database(versioned):
    v = versioned(user_models, user_cls=None)
    columns = reflected_columns(v.engine, "transaction")
    assert set(columns) == {"id", "issued_at", "remote_addr"}
    assert "user" not in sa.inspect(v.Transaction).relationships
    assert sa.inspect(v.engine).get_pk_constraint("transaction")["constrained_columns"] == ["id"]
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.add(v.Article(name="b"))
        session.commit()
        session.add(v.Article(name="c"))
        session.commit()
    rows = v.rows("transaction", ["id"])
    assert len(rows) == 2
    assert rows[0]["id"] < rows[1]["id"]
    assert all(isinstance(r["issued_at"], datetime.datetime) for r in rows)


def test_transaction_user_relationship(versioned):
    v = versioned(user_models, user_cls="User")
    table = v.metadata.tables["transaction"]
    assert "user_id" in table.c
    assert {fk.target_fullname for fk in table.c.user_id.foreign_keys} == {"user.id"}
    fks = sa.inspect(v.engine).get_foreign_keys("transaction")
    assert [
        (fk["constrained_columns"], fk["referred_table"], fk["referred_columns"]) for fk in fks
    ] == [(["user_id"], "user", ["id"])]

    with v.session() as session:
        user = v.User(name="alice")
        session.add(user)
        session.commit()
        user_id = user.id

        uow = v.manager.unit_of_work(session)
        tx = uow.create_transaction(session)
        tx.user_id = user.id
        session.add(v.Article(name="written by alice"))
        session.commit()

    rows = v.rows("transaction", ["id"])
    assert len(rows) == 1
    assert rows[0]["user_id"] == user_id
    assert [r["transaction_id"] for r in v.rows("article_version")] == [rows[0]["id"]]

    with v.session() as session:
        article = session.scalars(sa.select(v.Article)).one()
        transaction = article.versions[0].transaction
        assert transaction.user_id == user_id
        assert transaction.user.name == "alice"


# -- composite keys, exclude / include, aliases -------------------------------------


def composite_models(Base):
    class Line(Base):
        __versioned__ = {}
        __tablename__ = "line"
        order_no = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        code = sa.Column(sa.String(20), primary_key=True)
        quantity = sa.Column(sa.Integer)

    return locals()


def test_composite_primary_key(versioned):
    v = versioned(composite_models)
    table = v.version_table("line_version")
    assert [c.name for c in table.primary_key.columns] == ["order_no", "code", "transaction_id"]
    pk = sa.inspect(v.engine).get_pk_constraint("line_version")["constrained_columns"]
    assert pk == ["order_no", "code", "transaction_id"]
    with v.session() as session:
        a = v.Line(order_no=1, code="a", quantity=1)
        b = v.Line(order_no=1, code="b", quantity=5)
        session.add_all([a, b])
        session.commit()
        a.quantity = 2
        session.commit()
        assert [x.quantity for x in a.versions] == [1, 2]
        assert [x.quantity for x in b.versions] == [5]
        assert a.versions[1].version_parent is a
        assert [x.operation_type for x in a.versions] == [Operation.INSERT, Operation.UPDATE]
    rows = v.rows("line_version", ["code", "transaction_id"])
    assert [(r["code"], r["quantity"]) for r in rows] == [("a", 1), ("a", 2), ("b", 5)]


def exclude_models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.Unicode(50))
        notes = sa.Column(sa.Unicode(50))

    class Page(Base):
        __versioned__ = {"include": ["notes"]}
        __tablename__ = "page"
        id = sa.Column(sa.Integer, primary_key=True)
        notes = sa.Column(sa.Unicode(50))

    class Account(Base):
        # A class option replaces the manager's: "notes" is versioned here, "secret" not.
        __versioned__ = {"exclude": ["secret"]}
        __tablename__ = "account"
        id = sa.Column(sa.Integer, primary_key=True)
        notes = sa.Column(sa.Unicode(50))
        secret = sa.Column(sa.Unicode(50))

    return locals()


def test_exclude_and_include(versioned):
    # "notes" is excluded manager-wide; Page includes it again, Account has its own list.
    v = versioned(exclude_models, options={"exclude": ["notes"]})
    assert set(v.version_table("article_version").c.keys()) >= {"id", "name"}
    assert "notes" not in v.version_table("article_version").c
    assert "notes" in v.version_table("page_version").c
    assert "notes" in v.version_table("account_version").c
    assert "secret" not in v.version_table("account_version").c
    assert "notes" not in reflected_columns(v.engine, "article_version")
    assert "notes" in reflected_columns(v.engine, "page_version")
    assert "secret" not in reflected_columns(v.engine, "account_version")

    with v.session() as session:
        article = v.Article(id=1, name="a", notes="n")
        page = v.Page(id=1, notes="n1")
        account = v.Account(id=1, notes="n1", secret="s1")
        session.add_all([article, page, account])
        session.commit()
        article.notes = "n2"
        account.secret = "s2"
        page.notes = "n2"
        session.commit()
        account.notes = "n2"
        session.commit()
        assert article.versions.count() == 1
        assert not hasattr(article.versions[0], "notes")
        assert [p.notes for p in page.versions] == ["n1", "n2"]
        assert [a.notes for a in account.versions] == ["n1", "n2"]
        assert not hasattr(account.versions[0], "secret")


def alias_models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True)
        _name = sa.Column("name", sa.Unicode(50))
        title_attr: Mapped[Optional[str]] = mapped_column("title", sa.Unicode(50))

    return locals()


def test_column_aliases(versioned):
    v = versioned(alias_models)
    table = v.version_table("article_version")
    assert {c.name for c in table.c} >= {"id", "name", "title"}
    assert {"name", "title"} <= set(reflected_columns(v.engine, "article_version"))
    with v.session() as session:
        article = v.Article(id=1, _name="n1", title_attr="t1")
        session.add(article)
        session.commit()
        article._name = "n2"
        session.commit()
        first, second = article.versions.all()
        assert (first._name, first.title_attr) == ("n1", "t1")
        assert (second._name, second.title_attr) == ("n2", "t1")
        assert second.changeset == {"_name": ["n1", "n2"]}
    rows = raw_rows(v.engine, table)
    assert [(r["name"], r["title"]) for r in rows] == [("n1", "t1"), ("n2", "t1")]


# -- schemas and naming options -----------------------------------------------------


def other_schema_name(engine: sa.Engine) -> str:
    return "other" if engine.dialect.name == "postgresql" else "other_schema"


def test_custom_schema(versioned, engine):
    if not supports_schemas(engine):
        pytest.skip(f"{engine.dialect.name} has no second schema without ATTACH")
    schema = other_schema_name(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        else:
            conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS {schema}")

    def define(Base):
        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            __table_args__ = {"schema": schema}
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(50))

        return locals()

    v = versioned(define, create=False)
    v.metadata.drop_all(engine)
    v.metadata.create_all(engine)
    table = v.metadata.tables[f"{schema}.article_version"]
    assert table.schema == schema
    assert "article_version" not in v.metadata.tables
    inspector = sa.inspect(engine)
    assert "article_version" in inspector.get_table_names(schema=schema)
    assert "article_version" not in inspector.get_table_names()

    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        assert [x.name for x in article.versions] == ["a", "b"]
    assert [r["name"] for r in raw_rows(engine, table)] == ["a", "b"]


def two_models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Tag(Base):
        __versioned__ = {"table_name": "%s_log"}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    return locals()


def test_table_name_template(versioned):
    v = versioned(two_models, options={"table_name": "%s_history"})
    tables = set(sa.inspect(v.engine).get_table_names())
    assert {"article_history", "tag_log"} <= tables
    assert not {"article_version", "tag_version", "tag_history"} & tables
    with v.session() as session:
        session.add_all([v.Article(name="a"), v.Tag(name="t")])
        session.commit()
    assert [r["name"] for r in v.rows("article_history")] == ["a"]
    assert [r["name"] for r in v.rows("tag_log")] == ["t"]


class VersionHelpers:
    """A plain mixin given as ``base_classes``."""

    def label(self) -> str:
        return f"{type(self).__name__}:{self.name}@{self.transaction_id}"


def test_base_classes_mixin(versioned):
    v = versioned(two_models, options={"base_classes": (VersionHelpers,)})
    article_version = version_class(v.Article)
    assert issubclass(article_version, VersionHelpers)
    assert issubclass(version_class(v.Tag), VersionHelpers)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        version = article.versions[0]
        assert version.label() == f"{article_version.__name__}:a@{version.transaction_id}"
        assert version.previous is None  # the library's own behaviour is kept


def test_base_classes_declarative_base(versioned):
    # SQLAlchemy-Continuum / -History users pass their declarative base (or Flask's
    # db.Model) as base_classes: version classes must still be built and usable.
    def define(Base):
        class Article(Base):
            __versioned__ = {"base_classes": (Base,)}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(50))

        return locals()

    v = versioned(define)
    article_version = version_class(v.Article)
    assert issubclass(article_version, v.Base)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
        assert [x.name for x in article.versions] == ["a", "b"]
        ordered = sa.select(article_version).order_by(article_version.transaction_id)
        assert session.scalars(ordered).all()[1].previous.name == "a"


def test_use_module_name(build):
    def define(Base):
        class Article(Base):
            __module__ = "blog.models"
            __versioned__ = {}
            __tablename__ = "blog_article"
            id = sa.Column(sa.Integer, primary_key=True)

        BlogArticle = Article

        class Article(Base):  # the same class name, in another module
            __module__ = "shop.models"
            __versioned__ = {}
            __tablename__ = "shop_article"
            id = sa.Column(sa.Integer, primary_key=True)

        ShopArticle = Article
        return {"BlogArticle": BlogArticle, "ShopArticle": ShopArticle}

    _, models = build(define, options={"use_module_name": True})
    blog = version_class(models["BlogArticle"])
    shop = version_class(models["ShopArticle"])
    assert blog is not shop
    assert blog.__name__ == "BlogModelsArticleVersion"
    assert shop.__name__ == "ShopModelsArticleVersion"


def test_version_class_name_without_module_name(build):
    _, models = build(two_models)
    assert version_class(models["Article"]).__name__ == "ArticleVersion"
    # The suffix follows the table_name template ("%s_log"), as in SQLAlchemy-History.
    assert version_class(models["Tag"]).__name__ == "TagLog"


def test_create_models_false_records_history(versioned):
    v = versioned(two_models, options={"create_models": False})
    assert "article_version" in sa.inspect(v.engine).get_table_names()
    assert v.manager.version_class_map == {}
    with pytest.raises(ClassNotVersioned):
        version_class(v.Article)
    assert "versions" not in sa.inspect(v.Article).attrs
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        article.name = "b"
        session.commit()
    rows = v.rows("article_version", ["transaction_id"])
    assert [(r["name"], r["operation_type"]) for r in rows] == [("a", 0), ("b", 1)]
    assert rows[0]["end_transaction_id"] == rows[1]["transaction_id"]


def test_versioning_false_on_a_class(versioned):
    def define(Base):
        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(50))

        class Draft(Base):
            __versioned__ = {"versioning": False}
            __tablename__ = "draft"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            name = sa.Column(sa.Unicode(50))

        return locals()

    v = versioned(define)
    assert "draft_version" not in v.metadata.tables
    assert "draft_version" not in sa.inspect(v.engine).get_table_names()
    assert not is_versioned(v.Draft)
    assert is_versioned(v.Article)
    assert "versions" not in sa.inspect(v.Draft).attrs
    with pytest.raises(ClassNotVersioned):
        version_class(v.Draft)
    with v.session() as session:
        session.add(v.Draft(name="d"))
        session.commit()
    assert v.rows("transaction") == []
    with v.session() as session:
        session.add(v.Article(name="a"))
        session.commit()
    assert len(v.rows("transaction")) == 1


# -- inheritance --------------------------------------------------------------------


def single_table_models(Base):
    class Item(Base):
        __versioned__ = {}
        __tablename__ = "item"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        kind = sa.Column(sa.String(20), nullable=False)
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "item"}

    class Book(Item):
        __versioned__ = {}
        isbn = sa.Column(sa.String(20))
        __mapper_args__ = {"polymorphic_identity": "book"}

    return locals()


def test_single_table_inheritance(versioned):
    v = versioned(single_table_models)
    item_version, book_version = version_class(v.Item), version_class(v.Book)
    assert issubclass(book_version, item_version)
    assert "book_version" not in v.metadata.tables
    table = v.version_table("item_version")
    assert {"id", "name", "kind", "isbn", "transaction_id"} <= set(table.c.keys())
    assert sa.inspect(book_version).local_table is table
    assert sa.inspect(item_version).polymorphic_on is table.c.kind
    assert {"kind", "isbn"} <= set(reflected_columns(v.engine, "item_version"))

    with v.session() as session:
        book = v.Book(name="b", isbn="123")
        item = v.Item(name="i")
        session.add_all([book, item])
        session.commit()
        book.isbn = "456"
        session.commit()
        assert [(x.name, x.isbn) for x in book.versions] == [("b", "123"), ("b", "456")]
        assert all(type(x) is book_version for x in book.versions)
        assert type(item.versions[0]) is item_version
        everything = session.scalars(sa.select(item_version).order_by(table.c.transaction_id))
        assert {type(x) for x in everything} == {item_version, book_version}
    rows = v.rows("item_version", ["id", "transaction_id"])
    assert sorted(r["kind"] for r in rows) == ["book", "book", "item"]


def joined_models(Base):
    class Item(Base):
        __versioned__ = {}
        __tablename__ = "item"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        kind = sa.Column(sa.String(20))
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "item"}

    class Book(Item):
        __versioned__ = {}
        __tablename__ = "book"
        id = sa.Column(sa.Integer, sa.ForeignKey("item.id"), primary_key=True)
        isbn = sa.Column(sa.String(20))
        __mapper_args__ = {"polymorphic_identity": "book"}

    class Ebook(Book):
        __versioned__ = {}
        __tablename__ = "ebook"
        id = sa.Column(sa.Integer, sa.ForeignKey("book.id"), primary_key=True)
        file_format = sa.Column(sa.String(10))
        __mapper_args__ = {"polymorphic_identity": "ebook"}

    return locals()


def test_joined_table_inheritance(versioned):
    v = versioned(joined_models)
    item_v, book_v, ebook_v = (version_class(c) for c in (v.Item, v.Book, v.Ebook))
    assert issubclass(book_v, item_v) and issubclass(ebook_v, book_v)
    for name, own in (("item", "name"), ("book", "isbn"), ("ebook", "file_format")):
        table = v.version_table(f"{name}_version")
        assert own in table.c
        assert [c.name for c in table.primary_key.columns] == ["id", "transaction_id"]
        assert {"transaction_id", "operation_type", "end_transaction_id"} <= set(table.c.keys())
        assert not table.c.id.foreign_keys
        assert sa.inspect(v.engine).get_foreign_keys(f"{name}_version") == []
    assert "name" not in v.version_table("book_version").c
    assert "isbn" not in v.version_table("ebook_version").c

    with v.session() as session:
        book = v.Book(name="b", isbn="1")
        ebook = v.Ebook(name="e", isbn="2", file_format="pdf")
        session.add_all([book, ebook])
        session.commit()
        ebook.name = "e2"
        ebook.file_format = "epub"
        session.commit()
        book.isbn = "11"
        session.commit()

        assert [(x.name, x.isbn) for x in book.versions] == [("b", "1"), ("b", "11")]
        assert all(type(x) is book_v for x in book.versions)
        first, second = ebook.versions.all()
        assert type(first) is ebook_v
        assert (first.name, first.isbn, first.file_format) == ("e", "2", "pdf")
        assert (second.name, second.isbn, second.file_format) == ("e2", "2", "epub")
        assert second.operation_type == Operation.UPDATE
        kinds = session.scalars(sa.select(item_v).order_by(item_v.id, item_v.transaction_id))
        assert [type(x) for x in kinds] == [book_v, book_v, ebook_v, ebook_v]

    # One version row per object per transaction in every table of its hierarchy.
    assert len(v.rows("item_version")) == 4
    assert len(v.rows("book_version")) == 4
    assert [r["file_format"] for r in v.rows("ebook_version", ["transaction_id"])] == [
        "pdf",
        "epub",
    ]


def concrete_models(Base):
    class Item(Base):
        __versioned__ = {}
        __tablename__ = "item"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Book(Item):
        __versioned__ = {}
        __tablename__ = "book"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        isbn = sa.Column(sa.String(20))
        __mapper_args__ = {"concrete": True}

    return locals()


def test_concrete_inheritance(versioned):
    v = versioned(concrete_models)
    item_v, book_v = version_class(v.Item), version_class(v.Book)
    assert issubclass(book_v, item_v)
    assert set(v.version_table("book_version").c.keys()) >= {"id", "name", "isbn", "transaction_id"}
    assert "isbn" not in v.version_table("item_version").c
    assert sa.inspect(book_v).local_table is v.version_table("book_version")

    with v.session() as session:
        item = v.Item(name="i")
        book = v.Book(name="b", isbn="1")
        session.add_all([item, book])
        session.commit()
        book.isbn = "2"
        session.commit()
        assert [(x.name, x.isbn) for x in book.versions] == [("b", "1"), ("b", "2")]
        assert all(type(x) is book_v for x in book.versions)
        assert [x.name for x in item.versions] == ["i"]
        assert book.versions[1].version_parent is book
    assert [r["name"] for r in v.rows("item_version")] == ["i"]
    assert [r["isbn"] for r in v.rows("book_version", ["transaction_id"])] == ["1", "2"]


# -- hybrid properties, column_property, association proxies ------------------------


def extras_models(Base):
    class Keyword(Base):
        __versioned__ = {}
        __tablename__ = "keyword"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        word = sa.Column(sa.Unicode(50))
        article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))
        name_length = column_property(sa.func.length(name))
        keywords = relationship(Keyword)
        words = association_proxy("keywords", "word", creator=lambda w: Keyword(word=w))

        @hybrid_property
        def shout(self):
            return self.name.upper()

        @shout.inplace.expression
        @classmethod
        def _shout_expression(cls):
            return sa.func.upper(cls.name)

    return locals()


def test_hybrid_column_property_and_association_proxy(versioned):
    v = versioned(extras_models)
    table = v.version_table("article_version")
    assert "name_length" not in table.c
    with v.session() as session:
        article = v.Article(name="abc")
        article.words.append("x")
        session.add(article)
        session.commit()
        assert article.shout == "ABC"
        assert article.name_length == 3
        article.name = "abcd"
        article.words.append("y")
        session.commit()
        assert [x.name for x in article.versions] == ["abc", "abcd"]
        assert session.scalars(sa.select(v.Article.id).where(v.Article.shout == "ABCD")).all() == [
            article.id
        ]
        assert sorted(article.words) == ["x", "y"]
    assert sorted(r["word"] for r in v.rows("keyword_version")) == ["x", "y"]
    assert versioning_manager.version_class_map[v.Article] is version_class(v.Article)
