"""Audit log: who changed what, when, and what exactly, on in-memory SQLite.

Run it with ``python examples/audit_log.py`` (or ``python3 -m nox -s demo``). It records a
few days of editing by two users, then prints the audit log page by page, one user's
changes, a diff between two versions of an article (columns and tags), and the catalogue
as it was at a past moment.
"""

from __future__ import annotations

import datetime

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers, relationship

from sqlalchemy_history import (
    as_of,
    changes,
    diff,
    make_versioned,
    version_class,
    versioning_context,
    versioning_manager,
)

make_versioned(user_cls="User")


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "app_user"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.Unicode(50))


article_tag = sa.Table(
    "article_tag",
    Base.metadata,
    sa.Column("article_id", sa.ForeignKey("article.id"), primary_key=True),
    sa.Column("tag_id", sa.ForeignKey("tag.id"), primary_key=True),
)


class Tag(Base):
    __versioned__ = {}
    __tablename__ = "tag"
    id = sa.Column(sa.Integer, primary_key=True)
    name = sa.Column(sa.Unicode(50))


class Article(Base):
    __versioned__ = {}
    __tablename__ = "article"
    id = sa.Column(sa.Integer, primary_key=True)
    title = sa.Column(sa.Unicode(100))
    status = sa.Column(sa.Unicode(20), default="draft")
    tags = relationship(Tag, secondary=article_tag, order_by=Tag.id)


configure_mappers()
ArticleVersion = version_class(Article)
engine = sa.create_engine("sqlite://")
Base.metadata.create_all(engine)
Transaction = versioning_manager.transaction_cls


def backdate(session: Session, day: int) -> None:
    """Pretend the last transaction happened on 1 March + ``day`` (for a readable log)."""
    table = versioning_manager.transaction_table
    last = session.scalar(sa.select(sa.func.max(table.c.id)))
    when = datetime.datetime(2025, 3, 1, 9, 0) + datetime.timedelta(days=day)
    session.execute(table.update().where(table.c.id == last).values(issued_at=when))
    session.commit()


with Session(engine) as session:
    alice, bob = User(id=1, name="alice"), User(id=2, name="bob")
    session.add_all([alice, bob])
    session.commit()

    with versioning_context(user_id=alice.id):
        python, news = Tag(id=1, name="python"), Tag(id=2, name="news")
        session.add_all(
            [
                Article(id=1, title="SQLAlchemy 2.1 is out", tags=[python, news]),
                Article(id=2, title="Weekly notes"),
            ]
        )
        session.commit()
        backdate(session, 0)

    with versioning_context(user_id=bob.id):
        first = session.get(Article, 1)
        first.title = "SQLAlchemy 2.1 released"
        first.status = "published"
        first.tags.remove(news)
        first.tags.append(Tag(id=3, name="release"))
        session.commit()
        backdate(session, 1)

    with versioning_context(user_id=alice.id):
        session.delete(session.get(Article, 2))
        session.commit()
        backdate(session, 2)

    with versioning_context(user_id=bob.id):
        session.get(Tag, 1).name = "Python"
        session.commit()
        backdate(session, 3)

    # -- the audit log, two transactions per page ----------------------------------------
    print("Audit log")
    cursor = None
    while True:
        page = changes(session, limit=2, cursor=cursor)
        for entry in page:
            who = entry.transaction.user.name
            print(f"  #{entry.id} {entry.issued_at:%Y-%m-%d %H:%M} by {who}")
            for change in entry.versions:
                what = ", ".join(
                    f"{k}: {old!r} -> {new!r}" for k, (old, new) in change.changeset.items()
                )
                row = f"{change.operation.name:6} {change.entity}{list(change.key)}"
                print(f"      {row} {what}".rstrip())
        cursor = page.next_cursor
        if cursor is None:
            break

    # -- one user's changes, newest first --------------------------------------------------
    print("\nWhat bob did, newest first")
    for entry in changes(session, user=bob, newest_first=True):
        print(f"  #{entry.id}", sorted({c.entity for c in entry.versions}))

    # -- what changed between two versions of article 1 -------------------------------------
    first_version, last_version = session.scalars(
        sa.select(ArticleVersion)
        .where(ArticleVersion.id == 1)
        .order_by(ArticleVersion.transaction_id)
    ).all()
    found = diff(first_version, last_version, relations=["tags"])
    print("\nArticle 1, first version -> last version")
    for change in found.changes:
        print(f"  {change.key}: {change.old!r} -> {change.new!r}")
    tags = found.relations["tags"]
    print("  tags added:", [t.name for t in tags.added], "removed:", [t.name for t in tags.removed])

    # -- the catalogue as it was on 2 March, noon ----------------------------------------------
    moment = datetime.datetime(2025, 3, 2, 12, 0)
    print(f"\nCatalogue on {moment:%d %B %H:%M}")
    for row in session.scalars(as_of(Article, moment).order_by(ArticleVersion.id)):
        print(f"  {row.id}: {row.title} [{row.status}] tags={[t.name for t in row.tags]}")
