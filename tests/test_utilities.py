"""Utilities (SPEC §6), importable from ``sqlalchemy_history`` and ``sqlalchemy_history.utils``."""

from __future__ import annotations

import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.associationproxy import AssociationProxy, association_proxy

import sqlalchemy_history
from conftest import count_statements
from sqlalchemy_history import (
    ClassNotVersioned,
    Operation,
    TableNotVersioned,
    VersioningError,
    changeset,
    count_versions,
    end_tx_column_name,
    get_versioning_manager,
    is_modified,
    is_modified_or_deleted,
    is_session_modified,
    is_versioned,
    parent_class,
    transaction_class,
    tx_column_name,
    utils,
    vacuum,
    version_class,
    version_table,
    versioned_objects,
    versioning_manager,
)


def models(Base):
    class Article(Base):
        __versioned__ = {"exclude": ["views"]}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)
        views = sa.Column(sa.Integer)

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Plain(Base):
        __tablename__ = "plain"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Switched(Base):
        __versioned__ = {"versioning": False}
        __tablename__ = "switched"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)

    return locals()


# -- classes and tables ----------------------------------------------------------------


def test_version_and_parent_classes(versioned):
    v = versioned(models)
    AV = version_class(v.Article)
    assert AV.__name__ == "ArticleVersion"
    assert sa.inspect(AV).local_table is v.metadata.tables["article_version"]
    assert version_class(v.Article()) is AV
    assert version_class(v.Tag) is not AV
    assert parent_class(AV) is v.Article
    assert parent_class(version_class(v.Tag)) is v.Tag
    assert utils.version_class(v.Article) is AV
    assert utils.parent_class(AV) is v.Article


def test_version_class_of_unversioned_class_raises(versioned):
    v = versioned(models)
    for cls in (v.Plain, v.Switched):
        with pytest.raises(ClassNotVersioned) as caught:
            version_class(cls)
        assert isinstance(caught.value, VersioningError)
        assert cls.__name__ in str(caught.value)


def test_transaction_class(versioned):
    v = versioned(models)
    Transaction = transaction_class(v.Article)
    assert Transaction is v.manager.transaction_cls
    assert Transaction is transaction_class(v.Tag)
    assert sa.inspect(Transaction).local_table is v.metadata.tables["transaction"]
    assert utils.transaction_class(v.Article()) is Transaction


def test_version_table_and_parent_table(versioned):
    v = versioned(models)
    article = v.metadata.tables["article"]
    article_version = v.metadata.tables["article_version"]
    assert version_table(article) is article_version
    assert utils.version_table(article) is article_version
    assert utils.parent_table(article_version) is article
    assert "views" not in article_version.c
    with pytest.raises(TableNotVersioned) as caught:
        version_table(v.metadata.tables["plain"])
    assert "plain" in str(caught.value)
    assert isinstance(caught.value, VersioningError)
    with pytest.raises(TableNotVersioned):
        utils.parent_table(article)


def test_is_versioned(versioned):
    v = versioned(models)
    assert is_versioned(v.Article)
    assert is_versioned(v.Article(name="x"))
    assert not is_versioned(v.Plain)
    assert not is_versioned(v.Plain())
    assert not is_versioned(v.Switched)
    assert utils.is_versioned(v.Tag)


def test_get_versioning_manager(versioned):
    v = versioned(models)
    assert get_versioning_manager(v.Article) is versioning_manager
    assert get_versioning_manager(v.Article()) is versioning_manager
    assert get_versioning_manager(version_class(v.Article)) is versioning_manager
    assert utils.get_versioning_manager(v.Tag) is versioning_manager
    with pytest.raises(ClassNotVersioned):
        get_versioning_manager(v.Plain)


# -- options and column names -------------------------------------------------------------


def test_column_names_and_options_defaults(versioned):
    v = versioned(models)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        version = article.versions[0]
        for obj in (article, v.Article, version):
            assert tx_column_name(obj) == "transaction_id"
            assert end_tx_column_name(obj) == "end_transaction_id"
            assert utils.tx_column_name(obj) == "transaction_id"
            assert utils.end_tx_column_name(obj) == "end_transaction_id"
        assert utils.option(article, "strategy") == "validity"
        assert utils.option(v.Article, "exclude") in (["views"], ("views",))
        assert utils.option(v.Tag, "exclude") in ([], ())


def test_column_names_and_options_customised(versioned):
    def define(Base):
        class Article(Base):
            __versioned__ = {"strategy": "subquery", "transaction_column_name": "tx"}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)

        class Tag(Base):
            __versioned__ = {}
            __tablename__ = "tag"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)

        return locals()

    v = versioned(
        define,
        options={"transaction_column_name": "tx_id", "end_transaction_column_name": "end_tx_id"},
    )
    assert tx_column_name(v.Article) == "tx"
    assert tx_column_name(v.Tag) == "tx_id"
    assert end_tx_column_name(v.Tag) == "end_tx_id"
    assert utils.option(v.Article, "strategy") == "subquery"
    assert utils.option(v.Tag, "strategy") == "validity"
    assert v.manager.option(v.Tag, "end_transaction_column_name") == "end_tx_id"
    assert "tx" in v.metadata.tables["article_version"].c
    assert "end_tx_id" in v.metadata.tables["tag_version"].c
    with v.session() as session:
        tag = v.Tag()
        session.add(tag)
        session.commit()
        assert tx_column_name(tag.versions[0]) == "tx_id"


@pytest.mark.parametrize("end_name", ["end_transaction_id", "end_tx_id"])
def test_end_tx_attr(versioned, end_name):
    """``end_tx_attr(version)``: the end-transaction attribute of the version's class.

    SQLAlchemy-History callers pass a version object (``getattr(obj.__class__, ...)``).
    """
    v = versioned(models, options={"end_transaction_column_name": end_name})
    AV = version_class(v.Article)
    with v.session() as session:
        article = v.Article(name="a")
        session.add(article)
        session.commit()
        version = article.versions[0]
        assert utils.end_tx_attr(article).key == end_name
        attr = utils.end_tx_attr(version)
        assert attr.class_ is AV
        assert attr.key == end_name
        found = session.scalars(sa.select(AV).where(attr.is_(None))).all()
        assert found == [version]


def test_get_association_proxies(versioned):
    def define(Base):
        class Keyword(Base):
            __versioned__ = {}
            __tablename__ = "keyword"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"))
            word = sa.Column(sa.Unicode(50))

        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
            keywords = sa.orm.relationship(Keyword)
            words = association_proxy("keywords", "word")

        return locals()

    v = versioned(define)
    proxies = dict(utils.get_association_proxies(v.Article))
    assert list(proxies) == ["words"]
    assert isinstance(proxies["words"], AssociationProxy)
    assert dict(utils.get_association_proxies(v.Keyword)) == {}


# -- counting and pending changes ---------------------------------------------------------


def test_count_versions_runs_one_count_query(versioned):
    v = versioned(models)
    with v.session() as session:
        article = v.Article(name="a")
        other = v.Article(name="other")
        assert count_versions(article) == 0
        session.add_all([article, other])
        session.commit()
        article.name = "b"
        session.commit()
        article.name = "c"
        session.commit()
        with count_statements(v.engine) as counter:
            assert count_versions(article) == 3
        assert len(counter.statements) == 1
        assert counter.matching("select", "count", "article_version") == counter.statements
        assert count_versions(other) == 1
        assert utils.count_versions(article) == 3


def test_changeset_of_pending_changes(versioned):
    """``changeset(obj)`` keeps SQLAlchemy-History's format: ``{key: [new, old]}``.

    Pending insert: ``[value, None]`` for set values; pending update: ``[new, old]``;
    pending delete: ``[None, value]`` for each non-null, non-primary-key value.
    """
    v = versioned(models)
    with v.session(expire_on_commit=False) as session:
        article = v.Article(name="a")
        session.add(article)
        assert changeset(article) == {"name": ["a", None]}
        session.commit()
        assert changeset(article) == {}
        article.name = "b"
        article.content = "x"
        assert changeset(article) == {"name": ["b", "a"], "content": ["x", None]}
        assert utils.changeset(article) == changeset(article)
        session.commit()
        assert changeset(article) == {}
        session.delete(article)
        assert changeset(article) == {"name": [None, "b"], "content": [None, "x"]}


def test_is_modified(versioned):
    v = versioned(models)
    with v.session(expire_on_commit=False) as session:
        article = v.Article(name="a", views=1)
        session.add(article)
        session.commit()
        assert not is_modified(article)
        assert not is_modified_or_deleted(article)
        article.name = "a"
        assert not is_modified(article)
        article.views = 2
        assert not is_modified(article)
        assert not is_modified_or_deleted(article)
        article.name = "b"
        assert is_modified(article)
        assert utils.is_modified(article)
        assert is_modified_or_deleted(article)
        session.commit()

        assert not is_modified_or_deleted(article)
        session.delete(article)
        assert is_modified_or_deleted(article)
        assert utils.is_modified_or_deleted(article)


def test_is_session_modified(versioned):
    v = versioned(models)
    with v.session() as session:
        assert not is_session_modified(session)
        session.add(v.Plain(name="p"))
        assert not is_session_modified(session)
        article = v.Article(name="a", views=1)
        session.add(article)
        assert is_session_modified(session)
        session.commit()

        assert not is_session_modified(session)
        article.views = 5
        assert not is_session_modified(session)
        article.content = "x"
        assert is_session_modified(session)
        assert utils.is_session_modified(session)
        session.commit()

        session.delete(article)
        assert is_session_modified(session)


def test_versioned_objects(versioned):
    v = versioned(models)
    with v.session() as session:
        kept, changed, doomed = v.Article(name="k"), v.Article(name="c"), v.Tag(name="d")
        session.add_all([kept, changed, doomed, v.Plain(name="p")])
        session.commit()
        assert list(versioned_objects(session)) == []

        new_article, new_tag = v.Article(name="n"), v.Tag(name="t")
        session.add_all([new_article, new_tag, v.Plain(name="q")])
        changed.name = "c2"
        session.delete(doomed)
        found = list(versioned_objects(session))
        assert len(found) == 4
        assert {id(o) for o in found} == {id(new_article), id(new_tag), id(changed), id(doomed)}
        assert len(list(utils.versioned_objects(session))) == 4


# -- transactions --------------------------------------------------------------------------


def test_unit_of_work_transaction_created_early_is_reused(versioned):
    v = versioned(models)
    with v.session() as session:
        uow = versioning_manager.unit_of_work(session)
        assert isinstance(uow, sqlalchemy_history.UnitOfWork)
        assert uow.current_transaction is None
        tx = uow.create_transaction(session)
        assert isinstance(tx, v.Transaction)
        tx.remote_addr = "10.1.2.3"
        assert versioning_manager.unit_of_work(session) is uow

        article = v.Article(name="a")
        session.add(article)
        session.flush()
        tag = v.Tag(name="t")
        session.add(tag)
        article.name = "b"
        session.flush()
        assert uow.current_transaction is tx
        tx_id = uow.current_transaction.id
        session.commit()

    transactions = v.rows("transaction")
    assert [(t["id"], t["remote_addr"]) for t in transactions] == [(tx_id, "10.1.2.3")]
    article_rows = v.rows("article_version")
    assert [(r["transaction_id"], r["operation_type"], r["name"]) for r in article_rows] == [
        (tx_id, Operation.INSERT, "b")
    ]
    assert [r["transaction_id"] for r in v.rows("tag_version")] == [tx_id]
    assert len(versioning_manager.units_of_work) == 0


def test_transaction_changed_entities(versioned):
    v = versioned(models)
    AV, TV = version_class(v.Article), version_class(v.Tag)
    with v.session() as session:
        article, tag = v.Article(name="a"), v.Tag(name="t")
        session.add_all([article, tag, v.Plain(name="p")])
        session.commit()
        article.name = "b"
        session.commit()
        first = tag.versions[0].transaction
        second = article.versions[1].transaction
        assert first.id != second.id

        changed = first.changed_entities
        assert set(changed) == {AV, TV}
        assert [x.name for x in changed[AV]] == ["a"]
        assert [x.name for x in changed[TV]] == ["t"]
        assert changed[TV][0] is tag.versions[0]

        changed = second.changed_entities
        assert list(changed) == [AV]
        assert [(x.name, x.operation_type) for x in changed[AV]] == [("b", Operation.UPDATE)]


# -- vacuum --------------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["validity", "subquery"])
def test_vacuum_removes_versions_that_changed_nothing(versioned, strategy):
    v = versioned(models, options={"strategy": strategy})
    validity = strategy == "validity"
    article_version = v.metadata.tables["article_version"]
    tx_table = v.metadata.tables["transaction"]
    with v.session() as session:
        article = v.Article(name="a", content="x")
        other = v.Article(name="b", content="x")
        session.add_all([article, other])
        session.commit()
        article.name = "b"
        session.commit()
        article_id, other_id = article.id, other.id

    def new_tx(conn):
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        return conn.execute(tx_table.insert().values(issued_at=now)).inserted_primary_key[0]

    def duplicate(conn, obj_id, name):
        """Write a version that repeats the current values, as a no-op update would."""
        tx = new_tx(conn)
        if validity:
            conn.execute(
                article_version.update()
                .where(
                    article_version.c.id == obj_id, article_version.c.end_transaction_id.is_(None)
                )
                .values(end_transaction_id=tx)
            )
        row = {"id": obj_id, "name": name, "content": "x", "transaction_id": tx}
        row["operation_type"] = Operation.UPDATE
        if validity:
            row["end_transaction_id"] = None
        conn.execute(article_version.insert().values(row))

    with v.engine.begin() as conn:
        duplicate(conn, article_id, "b")
        duplicate(conn, article_id, "b")
        duplicate(conn, other_id, "b")

    with v.session() as session:
        article = session.get(v.Article, article_id)
        article.name = "c"
        session.commit()

    before = v.rows("article_version", ["id", "transaction_id"])
    assert len(before) == 7

    with v.session() as session:
        removed = vacuum(session, v.Article)
        session.commit()
    assert removed == 3

    after = v.rows("article_version", ["id", "transaction_id"])
    expected = [
        (r["id"], r["name"], r["transaction_id"], r["operation_type"])
        for r in (before[0], before[1], before[4], before[5])
    ]
    assert [(r["id"], r["name"], r["transaction_id"], r["operation_type"]) for r in after] == (
        expected
    )
    assert [r["name"] for r in after] == ["a", "b", "c", "b"]
    if validity:
        # Each kept version ends where the next kept one begins.
        assert [r["end_transaction_id"] for r in after] == [
            after[1]["transaction_id"],
            after[2]["transaction_id"],
            None,
            None,
        ]
    with v.session() as session:
        article = session.get(v.Article, article_id)
        assert [x.name for x in article.versions] == ["a", "b", "c"]
        assert article.versions[1].next.name == "c"
        assert article.versions[2].previous.name == "b"
        assert utils.vacuum(session, v.Article) == 0
