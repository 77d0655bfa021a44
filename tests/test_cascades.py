"""SPEC §3: rows the database deletes or changes by ``ON DELETE`` rules are recorded.

Children removed by ``ON DELETE CASCADE`` (several levels, self-referential trees, through
tables that are not versioned), children changed by ``ON DELETE SET NULL``, and the links
of many-to-many relationships with ``passive_deletes=True`` get the versions the ORM would
have written had it deleted or changed them itself: each test compares the two.
SQLite applies foreign key rules only with ``PRAGMA foreign_keys = ON``; the tests switch it
on, except the one showing what happens without it.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, relationship

from conftest import count_statements, history, ops, same_history
from sqlalchemy_history import Operation

INSERT, UPDATE, DELETE = int(Operation.INSERT), int(Operation.UPDATE), int(Operation.DELETE)


def models(Base):
    article_tag = sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column("article_id", sa.ForeignKey("article.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag_id", sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True),
    )

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        comments = relationship("Comment", passive_deletes=True)
        attachments = relationship("Attachment", passive_deletes=True)
        tags = relationship(Tag, secondary=article_tag, passive_deletes=True)

    class Comment(Base):
        __versioned__ = {}
        __tablename__ = "comment"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        article_id = sa.Column(sa.ForeignKey("article.id", ondelete="CASCADE"), nullable=False)
        text = sa.Column(sa.Unicode(100))
        replies = relationship("Reply", passive_deletes=True)

    class Reply(Base):
        __versioned__ = {}
        __tablename__ = "reply"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        comment_id = sa.Column(sa.ForeignKey("comment.id", ondelete="CASCADE"), nullable=False)
        text = sa.Column(sa.Unicode(100))

    class Attachment(Base):
        __versioned__ = {}
        __tablename__ = "attachment"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        article_id = sa.Column(sa.ForeignKey("article.id", ondelete="SET NULL"))
        path = sa.Column(sa.Unicode(100))

    class Node(Base):
        __versioned__ = {}
        __tablename__ = "node"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        parent_id = sa.Column(sa.ForeignKey("node.id", ondelete="CASCADE"))
        label = sa.Column(sa.Unicode(20))

    class Folder(Base):
        """Not versioned: rows reached through it are still recorded."""

        __tablename__ = "folder"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        article_id = sa.Column(sa.ForeignKey("article.id", ondelete="CASCADE"))

    class Document(Base):
        __versioned__ = {}
        __tablename__ = "document"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        folder_id = sa.Column(sa.ForeignKey("folder.id", ondelete="CASCADE"))
        title = sa.Column(sa.Unicode(50))

    return locals()


def foreign_keys_on(engine: sa.Engine) -> None:
    """SQLite applies ON DELETE rules only on connections that switched them on."""
    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _on(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute("PRAGMA foreign_keys = ON")

    engine.dispose()


@pytest.fixture
def v(versioned):
    built = versioned(models)
    foreign_keys_on(built.engine)
    return built


def populate(v, articles: int = 2, children: int = 2) -> Callable[[Session], None]:
    def setup(s: Session) -> None:
        tags = [v.Tag(name=f"t{i}") for i in range(2)]
        for a in range(articles):
            article = v.Article(name=f"a{a}", tags=tags)
            s.add(article)
            s.flush()
            for c in range(children):
                comment = v.Comment(article_id=article.id, text=f"c{a}.{c}")
                s.add(comment)
                s.flush()
                s.add(v.Reply(comment_id=comment.id, text=f"r{a}.{c}"))
                s.add(v.Attachment(article_id=article.id, path=f"p{a}.{c}"))
            folder = v.Folder(article_id=article.id)
            s.add(folder)
            s.flush()
            s.add(v.Document(folder_id=folder.id, title=f"d{a}"))

    return setup


def delete_by_hand(v, article_id: int) -> Callable[[Session], None]:
    """What the database rules do, done through the ORM in one flush."""

    def change(s: Session) -> None:
        article = s.get(v.Article, article_id)
        for comment in article.comments:
            for reply in comment.replies:
                s.delete(reply)
            s.delete(comment)
        for attachment in article.attachments:
            attachment.article_id = None
        article.tags = []
        folders = s.scalars(sa.select(v.Folder).where(v.Folder.article_id == article_id))
        for folder in folders.all():
            documents = sa.select(v.Document).where(v.Document.folder_id == folder.id)
            for document in s.scalars(documents).all():
                s.delete(document)
            s.delete(folder)
        s.flush()
        s.delete(article)

    return change


@pytest.mark.parametrize("how", ["flush", "bulk delete", "query delete"])
def test_cascaded_rows_get_the_versions_a_flush_would_write(v, how):
    def by_database(s: Session) -> None:
        if how == "flush":
            s.delete(s.get(v.Article, 1))
        elif how == "bulk delete":
            s.execute(sa.delete(v.Article).where(v.Article.id == 1))
        else:
            s.query(v.Article).filter(v.Article.name == "a0").delete()

    found = same_history(v, populate(v), delete_by_hand(v, 1), by_database)
    second = {
        table: [r for r in ops(found, table) if r[1] == 2]
        for table in ("comment_version", "reply_version", "attachment_version", "document_version")
    }
    assert second["comment_version"] == [(1, 2, DELETE), (2, 2, DELETE)]
    assert second["reply_version"] == [(1, 2, DELETE), (2, 2, DELETE)]
    assert second["attachment_version"] == [(1, 2, UPDATE), (2, 2, UPDATE)]
    assert second["document_version"] == [(1, 2, DELETE)]
    links = [dict(r) for r in found["article_tag_version"] if dict(r)["transaction_id"] == 2]
    assert sorted((r["article_id"], r["tag_id"], r["operation_type"]) for r in links) == [
        (1, 1, DELETE),
        (1, 2, DELETE),
    ]
    nulled = [dict(r) for r in found["attachment_version"] if dict(r)["transaction_id"] == 2]
    assert {r["article_id"] for r in nulled} == {None}
    # the other article's rows are untouched
    with v.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(v.Comment)) == 2


def test_a_self_referential_tree_is_followed_to_the_leaves(v):
    def setup(s: Session) -> None:
        s.add(v.Node(id=1, label="root"))
        s.flush()
        s.add_all([v.Node(id=2, parent_id=1, label="a"), v.Node(id=3, parent_id=1, label="b")])
        s.flush()
        s.add_all([v.Node(id=4, parent_id=2, label="a1"), v.Node(id=5, parent_id=4, label="x")])

    def by_hand(s: Session) -> None:
        for node_id in (5, 4, 3, 2, 1):
            s.delete(s.get(v.Node, node_id))
            s.flush()

    def by_database(s: Session) -> None:
        s.execute(sa.delete(v.Node).where(v.Node.id == 1))

    found = same_history(v, setup, by_hand, by_database)
    assert [r for r in ops(found, "node_version") if r[2] == DELETE] == [
        (i, 2, DELETE) for i in range(1, 6)
    ]


def test_a_cycle_of_cascades_ends(v):
    with v.session() as s:
        s.add_all([v.Node(id=1, label="a"), v.Node(id=2, label="b")])
        s.flush()
        s.get(v.Node, 1).parent_id = 2
        s.get(v.Node, 2).parent_id = 1
        s.commit()
    with v.session() as s, count_statements(v.engine) as counter:
        s.execute(sa.delete(v.Node).where(v.Node.id == 1))
        s.commit()
    assert [r for r in ops(history(v), "node_version") if r[2] == DELETE] == [
        (1, 2, DELETE),
        (2, 2, DELETE),
    ]
    # node 1 -> node 2 -> node 1 again: read twice, not forever
    assert len(counter.matching("SELECT", "FROM node ")) <= 4, counter.statements


def test_children_the_orm_moves_away_first_are_not_deleted(v):
    with v.session() as s:
        populate(v, articles=2, children=1)(s)
        s.commit()
    with v.session() as s:
        comment = s.get(v.Comment, 1)
        comment.article_id = 2  # moved to the other article in the same flush
        s.delete(s.get(v.Article, 1))
        s.commit()
    found = history(v)
    assert [r for r in ops(found, "comment_version") if r[1] == 2] == [(1, 2, UPDATE)]
    assert [r for r in ops(found, "reply_version") if r[1] == 2] == []


#: Per backend, the session setting that switches foreign key rules off.
UNENFORCED = {
    "sqlite": None,  # the default: no PRAGMA foreign_keys = ON
    "postgresql": "SET session_replication_role = replica",
    "mysql": "SET SESSION foreign_key_checks = 0",
}


def test_without_foreign_key_enforcement_nothing_is_cascaded(versioned, engine):
    v = versioned(models)
    setting = UNENFORCED[engine.dialect.name]
    if setting is not None:

        @sa.event.listens_for(v.engine, "connect")
        def _off(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(setting)
            cursor.close()

        v.engine.dispose()
    with v.session() as s:
        populate(v, articles=1, children=1)(s)
        s.commit()
    with v.session() as s:
        s.execute(sa.delete(v.Article).where(v.Article.id == 1))
        s.commit()
    found = history(v)
    assert [r for r in ops(found, "article_version") if r[2] == DELETE] == [(1, 2, DELETE)]
    assert [r for r in ops(found, "comment_version") if r[1] == 2] == []
    with v.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(v.Comment)) == 1


def orm_models(Base):
    """Relationships without ``passive_deletes``: the ORM deletes and changes children."""

    class Parent(Base):
        __versioned__ = {}
        __tablename__ = "parent"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        children = relationship("Child", cascade="all, delete-orphan")

    class Child(Base):
        __versioned__ = {}
        __tablename__ = "child"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        parent_id = sa.Column(sa.ForeignKey("parent.id", ondelete="CASCADE"))

    return locals()


def test_children_the_orm_deletes_itself_are_not_read_again(versioned):
    v = versioned(orm_models)
    foreign_keys_on(v.engine)
    with v.session() as s:
        s.add(v.Parent(children=[v.Child(), v.Child()]))
        s.commit()
    with v.session() as s:
        parent = s.get(v.Parent, 1)
        parent.children  # noqa: B018 - loaded, as the ORM's delete cascade does
        with count_statements(v.engine) as counter:
            s.delete(parent)
            s.commit()
    # no cascade read by foreign key: the flush deletes (and versions) the children itself
    assert counter.matching("SELECT", "FROM child", "WHERE child.id IN")
    assert not counter.matching("SELECT", "child.parent_id IN")
    assert [r for r in ops(history(v), "child_version") if r[2] == DELETE] == [
        (1, 2, DELETE),
        (2, 2, DELETE),
    ]
