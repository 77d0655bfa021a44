"""Key matching per backend (``dialects.py``) on real databases.

Every statement that matches a list of primary keys (reading unloaded values, copying
parent rows into version rows, closing previous versions, reading removed links from their
last version) uses ``DialectRules.key_chunks``. Composite keys used to be matched with
``(a = ? AND b = ?) OR ...``: SQLite refused it from 1,000 keys (its expression depth
limit) and PostgreSQL spent quadratic, uncancellable time planning it. The flushes below
change 20,000 rows with a two-column key, and 20,000 many-to-many links, in one flush
each, and check what the database ends up holding.

The 20,000-row tests are marked ``large``: they run in the full suite (and in CI);
``pytest -m "not large"`` leaves them out of a quick local run. Statement shapes and their
linear growth are checked without a database in ``tests/compile/test_compile.py``.
"""

from __future__ import annotations

import datetime
import uuid
from collections import Counter, defaultdict
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import relationship

from sqlalchemy_history import Operation, version_class
from sqlalchemy_history.dialects import rules_for

INSERT, UPDATE, DELETE = int(Operation.INSERT), int(Operation.UPDATE), int(Operation.DELETE)

#: Rows (and links) changed by one flush in the large tests.
N = 20_000


def line_models(Base: Any) -> dict[str, Any]:
    class Line(Base):
        __versioned__ = {}
        __tablename__ = "order_line"
        order_id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        line_no = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        quantity = sa.Column(sa.Integer, nullable=False)

    return locals()


def tagged_models(Base: Any) -> dict[str, Any]:
    # A primary key on the association table: without one, the ORM's own DELETE of each
    # link scans the table (quadratic in plain SQLAlchemy, 20 s for 20,000 links on
    # PostgreSQL). ``weight`` is filled by the database: linking reads it back from the
    # new rows, unlinking from the last versions (both by composite key).
    article_tag = sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id"), primary_key=True),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id"), primary_key=True),
        sa.Column("weight", sa.Integer, server_default=sa.text("7"), nullable=False),
    )

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        tags = relationship(Tag, secondary=article_tag)

    return locals()


def history(v: Any, table: str, key: list[str]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Version rows of ``table`` by key, each list ordered by transaction id."""
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in v.rows(table, [*key, "transaction_id"]):
        by_key[tuple(row[c] for c in key)].append(row)
    return by_key


def assert_chains(
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]],
    expected: dict[tuple[Any, ...], list[tuple[int, int]]],
) -> None:
    """Every key has exactly the ``(transaction_id, operation_type)`` versions expected,
    each closed by the next one, and exactly one open version: its last."""
    assert by_key.keys() == expected.keys()
    wrong = []
    for key, rows in by_key.items():
        got = [(r["transaction_id"], r["operation_type"]) for r in rows]
        ends = [r["end_transaction_id"] for r in rows]
        if got != expected[key] or ends != [tx for tx, _ in got[1:]] + [None]:
            wrong.append((key, got, ends))
    assert not wrong, f"{len(wrong)} keys with a wrong history, e.g. {wrong[:3]}"


def transaction_ids(v: Any) -> list[int]:
    return [r["id"] for r in v.rows("transaction", ["id"])]


@pytest.mark.large
def test_20000_composite_keys_in_one_flush(versioned: Any) -> None:
    """Insert, update and delete 20,000 rows with a two-column primary key, one flush each."""
    v = versioned(line_models)
    keys = [(i // 10, i % 10) for i in range(N)]
    with v.session(expire_on_commit=False) as session:
        lines = [v.Line(order_id=o, line_no=n, quantity=1) for o, n in keys]
        session.add_all(lines)
        session.commit()
        for line in lines:
            line.quantity = 2
        session.commit()
        # Unloaded values: the deleting flush first reads them, in one SELECT matching
        # 20,000 composite keys (the key stays loaded: the ORM deletes without a load).
        for line in lines:
            session.expire(line, ["quantity"])
        for line in lines:
            session.delete(line)
        session.commit()
    tx_insert, tx_update, tx_delete = transaction_ids(v)
    by_key = history(v, "order_line_version", ["order_id", "line_no"])
    expected = [(tx_insert, INSERT), (tx_update, UPDATE), (tx_delete, DELETE)]
    assert_chains(by_key, {key: expected for key in keys})
    # The values are the database's: copied on insert and update, read back before delete.
    quantities = Counter(
        (r["operation_type"], r["quantity"]) for rows in by_key.values() for r in rows
    )
    assert quantities == {(INSERT, 1): N, (UPDATE, 2): N, (DELETE, 2): N}
    assert v.rows("order_line") == []


@pytest.mark.large
def test_20000_links_in_one_flush(versioned: Any) -> None:
    """Link and then unlink 20,000 article/tag pairs, one flush each."""
    v = versioned(tagged_models)
    with v.session(expire_on_commit=False) as session:
        tags = [v.Tag(id=i) for i in range(200)]
        articles = [v.Article(id=i, tags=[]) for i in range(N // len(tags))]
        session.add_all([*tags, *articles])
        session.commit()
        for article in articles:
            article.tags.extend(tags)
        session.commit()
        assert len(v.rows("article_tag")) == N
        for article in articles:
            article.tags.clear()
        session.commit()
    _, tx_link, tx_unlink = transaction_ids(v)
    keys = [(a, t) for a in range(N // 200) for t in range(200)]
    by_key = history(v, "article_tag_version", ["article_id", "tag_id"])
    assert_chains(by_key, {key: [(tx_link, INSERT), (tx_unlink, DELETE)] for key in keys})
    assert {r["weight"] for rows in by_key.values() for r in rows} == {7}
    assert v.rows("article_tag") == []


# -- key types -----------------------------------------------------------------------


def typed_key_models(Base: Any) -> dict[str, Any]:
    class Entry(Base):
        __versioned__ = {}
        __tablename__ = "entry"
        ledger = sa.Column(sa.Uuid, primary_key=True)
        code = sa.Column(sa.String(20), primary_key=True)
        day = sa.Column(sa.Date, primary_key=True)
        amount = sa.Column(sa.Integer, nullable=False)

    return locals()


def test_composite_keys_of_several_types(versioned: Any) -> None:
    """A key of UUID, string and date columns is matched exactly (PostgreSQL binds each
    key column as a typed array; SQLite and MariaDB compare the bound values)."""
    v = versioned(typed_key_models)
    day = datetime.date(2024, 2, 29)
    keys = [
        (uuid.UUID(int=i % 7), f"c{i}", day + datetime.timedelta(days=i % 3)) for i in range(50)
    ]
    with v.session(expire_on_commit=False) as session:
        entries = [v.Entry(ledger=u, code=c, day=d, amount=1) for u, c, d in keys]
        session.add_all(entries)
        session.commit()
        for entry in entries[::2]:
            entry.amount = 2
        session.commit()
        session.expire_all()
        for entry in entries[::5]:
            session.delete(entry)
        session.commit()
    tx1, tx2, tx3 = transaction_ids(v)
    expected: dict[tuple[Any, ...], list[tuple[int, int]]] = {}
    for i, key in enumerate(keys):
        chain = [(tx1, INSERT)]
        if i % 2 == 0:
            chain.append((tx2, UPDATE))
        if i % 5 == 0:
            chain.append((tx3, DELETE))
        expected[key] = chain
    by_key = history(v, "entry_version", ["ledger", "code", "day"])
    assert_chains(by_key, expected)
    deleted = [rows[-1] for key, rows in by_key.items() if rows[-1]["operation_type"] == DELETE]
    assert sorted(r["amount"] for r in deleted) == [1] * 5 + [2] * 5


def test_key_chunks_in_orm_queries(versioned: Any) -> None:
    """The predicates work in ORM queries too (revert reads children by key this way), and
    a cached statement answers a later call with another number of keys."""
    v = versioned(line_models)
    with v.session() as session:
        session.add_all(
            v.Line(order_id=o, line_no=n, quantity=o) for o in range(4) for n in range(3)
        )
        session.commit()
        LineVersion = version_class(v.Line)
        columns = [LineVersion.order_id, LineVersion.line_no]
        rules = rules_for(session.connection().dialect)
        for wanted in ([(1, 2), (3, 0)], [(0, 0)], [(2, 1), (2, 2), (9, 9)]):
            (predicate,) = rules.key_chunks(columns, wanted)
            found = session.scalars(sa.select(LineVersion).where(predicate)).all()
            assert sorted((x.order_id, x.line_no) for x in found) == sorted(
                key for key in wanted if key != (9, 9)
            )
