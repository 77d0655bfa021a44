"""Statement budget: what versioning adds to a flush does not grow with the number of rows.

ARCHITECTURE "Write path": one INSERT into ``transaction`` per database transaction, at
most one closing UPDATE (validity) and one executemany INSERT per version table per flush,
in-place rewrites in one UPDATE, and one set-based SELECT per table for values the flush
did not load. Every measurement is taken for N = 1, 100 and 1000 rows and compared with
the same operation on an identical class that is not versioned (what the ORM itself
emits); the difference must be exactly the statements listed above, the same for every N.

Run with ``-s`` to see the statement counts per database.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from conftest import count_statements
from sqlalchemy_history.dialects import rules_for

NS = (1, 100, 1000)

_TARGET = (
    re.compile(r"^\s*INSERT\s+INTO\s+([^\s(]+)", re.I | re.S),
    re.compile(r"^\s*UPDATE\s+(\S+)", re.I | re.S),
    re.compile(r"^\s*DELETE\s+FROM\s+(\S+)", re.I | re.S),
    re.compile(r"^\s*SELECT\b.*?\bFROM\s+([^\s,()]+)", re.I | re.S),
)


def label(statement: str) -> tuple[str, str]:
    """``("INSERT", "article_version")``: the verb and the table a statement targets."""
    verb = statement.split(None, 1)[0].upper()
    for pattern in _TARGET:
        match = pattern.match(statement)
        if match:
            return verb, match.group(1).strip('"`[]').lower()
    return verb, ""


def is_history(target: tuple[str, str]) -> bool:
    return target[1] == "transaction" or target[1].endswith("_version")


class Measure:
    """Statements of one operation: all of them, and those on our tables."""

    def __init__(self, statements: list[str]):
        self.statements = statements
        self.labels = [label(s) for s in statements]
        self.history = Counter(t for t in self.labels if is_history(t))

    @property
    def total(self) -> int:
        return len(self.statements)

    def selects(self, table: str) -> int:
        return sum(1 for t in self.labels if t == ("SELECT", table))


def measure(engine: sa.Engine, action: Callable[[], Any]) -> Measure:
    with count_statements(engine) as counter:
        action()
    return Measure(list(counter.statements))


def closing(engine: sa.Engine, version_table: str, found: bool) -> Counter[tuple[str, str]]:
    """The statements closing previous versions (validity) in one flush, per dialect rules.

    One range UPDATE; on MySQL/MariaDB (``close_by_exact_key``) one SELECT of the open
    versions, then one UPDATE by full key only if it found some.
    """
    if rules_for(engine.dialect).close_by_exact_key:
        return +Counter({("SELECT", version_table): 1, ("UPDATE", version_table): int(found)})
    return Counter({("UPDATE", version_table): 1})


def expected_history(
    version_table: str,
    close: Counter[tuple[str, str]],
    insert: int = 1,
    rewrite: int = 0,
    transaction: int = 1,
) -> Counter[tuple[str, str]]:
    expected: Counter[tuple[str, str]] = Counter(close)
    expected[("INSERT", "transaction")] += transaction
    expected[("INSERT", version_table)] += insert
    expected[("UPDATE", version_table)] += rewrite
    return +expected  # drop zero counts


def print_table(title: str, db: str, rows: list[tuple[Any, ...]]) -> None:
    print(f"\n[{db}] {title}")
    print(
        f"  {'operation':<24}{'N':>6}{'versioned':>11}{'plain':>7}{'extra':>7}  history statements"
    )
    for op, n, versioned, plain, history in rows:
        shape = ", ".join(f"{v} {t}x{c}" for (v, t), c in sorted(history.items()))
        print(f"  {op:<24}{n:>6}{versioned:>11}{plain:>7}{versioned - plain:>7}  {shape}")


# -- models --------------------------------------------------------------------------


def article_models(Base: Any) -> dict[str, Any]:
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)

    class Plain(Base):
        __tablename__ = "plain"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        content = sa.Column(sa.UnicodeText)

    return locals()


def _insert(session: Session, cls: type, n: int, prefix: str = "a") -> list[Any]:
    objs = [cls(name=f"{prefix}{i}", content="c") for i in range(n)]
    session.add_all(objs)
    return objs


# -- insert / update / delete --------------------------------------------------------


@pytest.mark.parametrize("strategy", ["validity", "subquery"])
def test_flush_cost_is_independent_of_row_count(versioned, db_name, strategy):
    v = versioned(article_models, options={"strategy": strategy})
    report = []
    shapes: dict[str, set[tuple[Any, ...]]] = {"insert": set(), "update": set(), "delete": set()}
    for n in NS:
        results: dict[str, dict[str, Measure]] = {}
        for cls in (v.Article, v.Plain):
            got = results.setdefault(cls.__name__, {})
            with v.session(expire_on_commit=False) as session:
                objs = _insert(session, cls, n)
                got["insert"] = measure(v.engine, session.commit)
                for i, obj in enumerate(objs):
                    obj.name = f"b{i}"
                got["update"] = measure(v.engine, session.commit)
                for obj in objs:
                    session.delete(obj)
                got["delete"] = measure(v.engine, session.commit)
        for op in ("insert", "update", "delete"):
            ver, plain = results["Article"][op], results["Plain"][op]
            assert plain.history == Counter(), plain.statements
            history = ver.history
            report.append((op, n, ver.total, plain.total, history))
            # Nothing per row: everything versioning adds is on our tables...
            assert ver.total - plain.total == sum(history.values()), ver.statements
            # ...and has exactly the expected shape.
            if strategy == "subquery":
                assert history == expected_history("article_version", Counter()), ver.statements
            else:
                # new objects have no open version, unless the database reused an id
                found = op != "insert" or history[("UPDATE", "article_version")] == 1
                close = closing(v.engine, "article_version", found)
                assert history == expected_history("article_version", close), ver.statements
            shapes[op].add(tuple(sorted(history.items())))
    for op, seen in shapes.items():
        assert len(seen) == 1, f"{op}: the history statements differ between N={NS}: {seen}"
    print_table(f"insert/update/delete N objects, strategy={strategy}", db_name, report)

    # The counts above are only meaningful if every row was versioned.
    rows = v.rows("article_version", ["transaction_id", "id"])
    ops = Counter(r["operation_type"] for r in rows)
    assert ops == {0: sum(NS), 1: sum(NS), 2: sum(NS)}
    assert len(v.rows("transaction")) == 3 * len(NS)
    if strategy == "validity":
        # the latest version of every primary key (ids may be reused) is the only open one
        latest: dict[Any, Any] = {}
        for r in rows:
            latest[r["id"]] = r["transaction_id"]
        open_rows = {
            (r["id"], r["transaction_id"]) for r in rows if r["end_transaction_id"] is None
        }
        assert open_rows == set(latest.items())


# -- second flush in the same transaction --------------------------------------------


def test_second_flush_rewrites_in_one_update(versioned, db_name):
    v = versioned(article_models)
    report = []
    for n in NS:
        results: dict[str, dict[str, Measure]] = {}
        for cls in (v.Article, v.Plain):
            got = results.setdefault(cls.__name__, {})
            with v.session(expire_on_commit=False) as session:
                # insert, flush, then change the same objects in a second flush
                objs = _insert(session, cls, n)
                session.flush()
                for i, obj in enumerate(objs):
                    obj.name = f"b{i}"
                got["insert + update"] = measure(v.engine, session.commit)
                # update, flush, then change them again in a second flush
                for i, obj in enumerate(objs):
                    obj.name = f"c{i}"
                session.flush()
                for i, obj in enumerate(objs):
                    obj.content = f"d{i}"
                got["update + update"] = measure(v.engine, session.commit)
        for op in ("insert + update", "update + update"):
            ver, plain = results["Article"][op], results["Plain"][op]
            report.append((f"2nd flush: {op}", n, ver.total, plain.total, ver.history))
            # one in-place UPDATE; no new transaction row, no closing, no new version
            assert ver.history == Counter({("UPDATE", "article_version"): 1}), ver.statements
            assert ver.total - plain.total == 1, ver.statements
    print_table("second flush in the same transaction", db_name, report)

    rows = v.rows("article_version", ["transaction_id", "id"])
    assert len(rows) == 2 * sum(NS)
    assert all(r["name"].startswith(("b", "c")) for r in rows)
    assert sum(1 for r in rows if r["content"].startswith("d")) == sum(NS)


# -- deleting expired objects ------------------------------------------------------


def inheritance_models(Base: Any) -> dict[str, Any]:
    class Person(Base):
        __versioned__ = {}
        __tablename__ = "person"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        kind = sa.Column(sa.String(20))
        name = sa.Column(sa.Unicode(255))
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "person"}

    class Engineer(Person):
        __tablename__ = "engineer"
        id = sa.Column(sa.Integer, sa.ForeignKey("person.id"), primary_key=True)
        skill = sa.Column(sa.Unicode(255))
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    class PlainPerson(Base):
        __tablename__ = "plain_person"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        kind = sa.Column(sa.String(20))
        name = sa.Column(sa.Unicode(255))
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "person"}

    class PlainEngineer(PlainPerson):
        __tablename__ = "plain_engineer"
        id = sa.Column(sa.Integer, sa.ForeignKey("plain_person.id"), primary_key=True)
        skill = sa.Column(sa.Unicode(255))
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    return locals()


def test_deleting_expired_objects_prefetches_once_per_table(versioned, db_name):
    v = versioned(inheritance_models)
    report = []
    shapes = set()
    for n in NS:
        results: dict[str, Measure] = {}
        for cls in (v.Engineer, v.PlainEngineer):
            with v.session() as session:
                objs = [cls(name=f"n{i}", skill=f"s{i}") for i in range(n)]
                session.add_all(objs)
                session.commit()  # expires every attribute
                assert all("name" not in sa.inspect(o).dict for o in objs)
                for obj in objs:
                    session.delete(obj)
                results[cls.__name__] = measure(v.engine, session.commit)
        ver, plain = results["Engineer"], results["PlainEngineer"]
        report.append(("delete expired", n, ver.total, plain.total, ver.history))
        expected: Counter[tuple[str, str]] = Counter(
            {("INSERT", "transaction"): 1, ("INSERT", "person_version"): 1}
        )
        expected[("INSERT", "engineer_version")] = 1
        expected += closing(v.engine, "person_version", True)
        expected += closing(v.engine, "engineer_version", True)
        assert ver.history == expected, ver.statements
        # at most one prefetch SELECT per table, never one per object
        extra_selects = {
            "person": ver.selects("person") - plain.selects("plain_person"),
            "engineer": ver.selects("engineer") - plain.selects("plain_engineer"),
        }
        assert all(count <= 1 for count in extra_selects.values()), (extra_selects, ver.statements)
        # nothing else: the difference is our statements plus those SELECTs
        extra = ver.total - plain.total
        assert extra == sum(expected.values()) + sum(extra_selects.values()), ver.statements
        shapes.add((extra, tuple(sorted(extra_selects.items()))))
    assert len(shapes) == 1, f"the cost differs between N={NS}: {shapes}"
    print_table("delete N expired objects (joined inheritance, 2 tables)", db_name, report)

    # the prefetched values are the real ones
    rows = [r for r in v.rows("engineer_version") if r["operation_type"] == 2]
    people = {r["id"]: r for r in v.rows("person_version") if r["operation_type"] == 2}
    assert len(rows) == sum(NS)
    for row in rows:
        assert row["skill"] == "s" + people[row["id"]]["name"][1:]
        assert people[row["id"]]["kind"] == "engineer"


# -- server-side values -----------------------------------------------------------


def server_side_models(Base: Any) -> dict[str, Any]:
    class Counted(Base):
        __versioned__ = {}
        __tablename__ = "counted"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        label = sa.Column(sa.Unicode(20), server_default="fresh")
        counter = sa.Column(
            sa.Integer,
            server_default=sa.text("0"),
            onupdate=sa.literal_column("counter") + 1,
            nullable=False,
        )

    class PlainCounted(Base):
        __tablename__ = "plain_counted"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255))
        label = sa.Column(sa.Unicode(20), server_default="fresh")
        counter = sa.Column(
            sa.Integer,
            server_default=sa.text("0"),
            onupdate=sa.literal_column("counter") + 1,
            nullable=False,
        )

    return locals()


def test_server_side_values_cost_at_most_one_select_per_table(versioned, db_name):
    v = versioned(server_side_models)
    report = []
    shapes: dict[str, set[tuple[Any, ...]]] = {"insert": set(), "update": set()}
    for n in NS:
        results: dict[str, dict[str, Measure]] = {}
        for cls in (v.Counted, v.PlainCounted):
            got = results.setdefault(cls.__name__, {})
            with v.session(expire_on_commit=False) as session:
                objs = [cls(name=f"a{i}") for i in range(n)]
                session.add_all(objs)
                got["insert"] = measure(v.engine, session.commit)
                for i, obj in enumerate(objs):
                    obj.name = f"b{i}"
                got["update"] = measure(v.engine, session.commit)
        for op in ("insert", "update"):
            ver, plain = results["Counted"][op], results["PlainCounted"][op]
            report.append((f"{op} (server values)", n, ver.total, plain.total, ver.history))
            extra_select = ver.selects("counted") - plain.selects("plain_counted")
            assert extra_select <= 1, ver.statements
            found = op != "insert" or ver.history[("UPDATE", "counted_version")] == 1
            close = closing(v.engine, "counted_version", found)
            assert ver.history == expected_history("counted_version", close), ver.statements
            assert ver.total - plain.total == sum(ver.history.values()) + extra_select
            shapes[op].add((extra_select, tuple(sorted(ver.history.items()))))
    for op, seen in shapes.items():
        assert len(seen) == 1, f"{op}: the cost differs between N={NS}: {seen}"
    print_table("server_default / onupdate values", db_name, report)

    # what the database computed is what was recorded
    rows = v.rows("counted_version")
    assert len(rows) == 2 * sum(NS)
    for row in rows:
        assert row["label"] == "fresh"
        assert row["counter"] == row["operation_type"]  # 0 on insert, 1 after one update
