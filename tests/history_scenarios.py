"""Models and a recorded history shared by the tests of as_of, the audit log, diffs and
retention (tests/test_temporal.py, test_audit.py, test_diffs.py, test_retention.py).

The history covers what trips naive implementations: a row changed only through its
relationships, a transaction that touched only association rows, a row whose last change
is a DELETE, a row deleted and re-created with the same key, a rename of a related object
while the article stays unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import relationship

from sqlalchemy_history import version_class


def blog(Base: Any) -> dict[str, Any]:
    article_tag = sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id"), primary_key=True),
    )

    class User(Base):
        __tablename__ = "app_user"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(50))

    class Category(Base):
        __versioned__ = {}
        __tablename__ = "category"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(100))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(100))
        email = sa.Column(sa.Unicode(100))
        category_id = sa.Column(sa.Integer, sa.ForeignKey("category.id"))
        category = relationship(Category)
        tags = relationship("Tag", secondary=article_tag, order_by="Tag.id")
        comments = relationship("Comment", back_populates="article", order_by="Comment.id")

    class Tag(Base):
        # No relationship back to Article: its links are still found (purge, audit).
        __versioned__ = {}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(100))

    class Comment(Base):
        __versioned__ = {}
        __tablename__ = "comment"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        body = sa.Column(sa.Unicode(100))
        article_id = sa.Column(sa.Integer, sa.ForeignKey("article.id"))
        article = relationship(Article, back_populates="comments")

    return locals()


def shapes(Base: Any) -> dict[str, Any]:
    """Joined- and single-table inheritance, and a composite key with a column alias."""

    class Shape(Base):
        __versioned__ = {}
        __tablename__ = "shape"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        kind = sa.Column(sa.String(20))
        name = sa.Column(sa.Unicode(50))
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "shape"}

    class Circle(Shape):
        __tablename__ = "circle"
        id = sa.Column(sa.Integer, sa.ForeignKey("shape.id"), primary_key=True)
        radius = sa.Column(sa.Integer)
        __mapper_args__ = {"polymorphic_identity": "circle"}

    class Square(Shape):
        # single-table
        side = sa.Column(sa.Integer)
        __mapper_args__ = {"polymorphic_identity": "square"}

    class Line(Base):
        __versioned__ = {}
        __tablename__ = "order_line"
        order_id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        line_no = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        qty = sa.Column("quantity", sa.Integer)  # attribute key differs from column name

    return locals()


@dataclasses.dataclass
class Recorded:
    """Transaction ids of the scenario, by step name."""

    tx: dict[str, int]

    def __getitem__(self, name: str) -> int:
        return self.tx[name]


def last_tx(v: Any, session: Any) -> int:
    return int(session.scalar(sa.select(sa.func.max(v.manager.transaction_table.c.id))))


def record(v: Any) -> Recorded:
    """Write the scenario; every step is one transaction.

    ====== ==========================================================================
    step   what it does
    ====== ==========================================================================
    create category 1 "News"; article 1 "A1" (News, tag 1 "T1"); article 2 "A2"
    rename category 1 -> "World" (the articles unchanged)
    link   article 2 gets tag 1 (association rows only)
    delete article 2 (its last change is a DELETE; its link is removed)
    edit   article 1 -> "A1b", comment 1 "first" on it
    revive article 2 again (same key) as "A2 again", category 1
    retag  tag 1 -> "T1b"
    ====== ==========================================================================
    """
    tx: dict[str, int] = {}
    with v.session() as session:
        news = v.Category(id=1, name="News")
        t1 = v.Tag(id=1, name="T1")
        a1 = v.Article(id=1, name="A1", email="a1@example.com", category=news, tags=[t1])
        a2 = v.Article(id=2, name="A2", email="a2@example.com")
        session.add_all([a1, a2])
        session.commit()
        tx["create"] = last_tx(v, session)
        news.name = "World"
        session.commit()
        tx["rename"] = last_tx(v, session)
        a2.tags.append(t1)
        session.commit()
        tx["link"] = last_tx(v, session)
        session.delete(a2)
        session.commit()
        tx["delete"] = last_tx(v, session)
        a1.name = "A1b"
        session.add(v.Comment(id=1, body="first", article=a1))
        session.commit()
        tx["edit"] = last_tx(v, session)
        session.add(v.Article(id=2, name="A2 again", email="a2@example.com", category_id=1))
        session.commit()
        tx["revive"] = last_tx(v, session)
        t1.name = "T1b"
        session.commit()
        tx["retag"] = last_tx(v, session)
    return Recorded(tx)


#: ``spread_issued_at`` puts transaction ``n`` at ``BASE + n`` hours.
BASE = datetime.datetime(2030, 1, 1)


def spread_issued_at(v: Any) -> None:
    """Give transaction ``n`` the time ``BASE + n hours``: distinct on every database, even
    where ``issued_at`` keeps whole seconds only (MySQL/MariaDB ``DATETIME``)."""
    table = v.manager.transaction_table
    with v.engine.begin() as conn:
        for (tx_id,) in conn.execute(sa.select(table.c.id)).all():
            at = BASE + datetime.timedelta(hours=tx_id)
            conn.execute(table.update().where(table.c.id == tx_id).values(issued_at=at))


def issued(tx_id: int) -> datetime.datetime:
    """When ``spread_issued_at`` says transaction ``tx_id`` was issued."""
    return BASE + datetime.timedelta(hours=tx_id)


def start_article_1_with_an_update(v: Any, recorded: Recorded) -> None:
    """Drop article 1's INSERT version: its history now starts with the "edit" UPDATE
    (as after backfilling or pruning)."""
    table = sa.inspect(version_class(v.Article)).local_table
    with v.engine.begin() as conn:
        conn.execute(
            table.delete().where(table.c.id == 1, table.c.transaction_id == recorded["create"])
        )


def snapshot(rows: Any) -> list[tuple[Any, ...]]:
    """What ``as_of`` rows show, relationships included, in a comparable form."""
    return [
        (
            r.id,
            r.name,
            r.category.name if r.category is not None else None,
            tuple(t.name for t in r.tags),
            tuple(c.body for c in r.comments),
        )
        for r in sorted(rows, key=lambda r: r.id)
    ]


#: What ``snapshot(as_of(Article, <step>))`` shows after ``record``.
EXPECTED = {
    "create": [(1, "A1", "News", ("T1",), ()), (2, "A2", None, (), ())],
    "rename": [(1, "A1", "World", ("T1",), ()), (2, "A2", None, (), ())],
    "link": [(1, "A1", "World", ("T1",), ()), (2, "A2", None, ("T1",), ())],
    "delete": [(1, "A1", "World", ("T1",), ())],
    "edit": [(1, "A1b", "World", ("T1",), ("first",))],
    "revive": [(1, "A1b", "World", ("T1",), ("first",)), (2, "A2 again", "World", (), ())],
    "retag": [(1, "A1b", "World", ("T1b",), ("first",)), (2, "A2 again", "World", (), ())],
}


def chains(v: Any, model: Any) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Version rows of ``model`` per primary key, ordered by transaction id."""
    V = version_class(model)
    table = sa.inspect(V).local_table
    keys = [c.key for c in sa.inspect(model).primary_key]
    found: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    with v.engine.connect() as conn:
        for row in conn.execute(sa.select(table).order_by(table.c.transaction_id)).mappings():
            found.setdefault(tuple(row[k] for k in keys), []).append(dict(row))
    return found


def assert_valid_chains(v: Any, table_name: str, keys: list[str]) -> None:
    """Every chain of ``table_name`` is contiguous: each version ends where the next begins,
    the last is open (validity strategy; the subquery strategy has no end column)."""
    table = v.metadata.tables[table_name]
    if "end_transaction_id" not in table.c:
        return
    rows = v.rows(table_name, [*keys, "transaction_id"])
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault(tuple(row[k] for k in keys), []).append(row)
    for key, chain in by_key.items():
        for current, following in zip(chain, chain[1:]):
            assert current["end_transaction_id"] == following["transaction_id"], (key, chain)
        assert chain[-1]["end_transaction_id"] is None, (key, chain)
