"""History maintenance helpers (``sqlalchemy_history.maintenance`` / ``.alembic``).

Each helper runs on 10,000 version rows on every database, its result is compared with a
plain-Python reference computed from the same rows, and its statement count is pinned:
the count must not depend on the number of rows. The statements are also compiled for
all five dialects and checked for dialect neutrality.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite
from sqlalchemy.orm import Session

from conftest import count_statements
from sqlalchemy_history import Operation, TableNotVersioned, maintenance, vacuum, version_class
from sqlalchemy_history import alembic as history
from sqlalchemy_history.schema import update_end_tx_column, update_property_mod_flags

INSERT, UPDATE, DELETE = int(Operation.INSERT), int(Operation.UPDATE), int(Operation.DELETE)
OBJECTS = 2500
VERSIONS_PER_OBJECT = 4  # 10,000 version rows
BATCH = {"insertmanyvalues_page_size": 100_000}


def article_models(Base):
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
        name = sa.Column(sa.Unicode(50))
        content = sa.Column(sa.UnicodeText)
        meta = sa.Column(sa.JSON)
        views = sa.Column(sa.Integer)

    return locals()


def history_rows(objects: int = OBJECTS) -> list[dict[str, Any]]:
    """Four versions per object, some of which change nothing.

    v0 INSERT; v1 UPDATE repeating v0 for even ids (else a new name); v2 UPDATE of the
    content; v3 UPDATE repeating v2 when id % 3 == 0, else a DELETE (same values, kept).
    Transaction ids interleave objects, as concurrent writers would.
    """
    rows = []
    for i in range(1, objects + 1):
        name, content, meta = f"n{i}", "c" if i % 5 else None, {"k": i % 4}
        for k in range(VERSIONS_PER_OBJECT):
            op = UPDATE
            if k == 0:
                op = INSERT
            elif k == 1 and i % 2:
                name = f"n{i}b"
            elif k == 2:
                content = f"d{i}"
            elif k == 3 and i % 3:
                op = DELETE
            rows.append(
                {
                    "id": i,
                    "name": name,
                    "content": content,
                    "meta": meta,
                    "transaction_id": k * objects + i,
                    "end_transaction_id": None,
                    "operation_type": op,
                }
            )
    return rows


VALUES = ("name", "content", "meta")


def by_object(rows: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["id"], r["transaction_id"])):
        grouped.setdefault(row["id"], []).append(row)
    return grouped


def expected_ends(rows: list[dict[str, Any]]) -> dict[tuple[int, int], Any]:
    ends = {}
    for versions in by_object(rows).values():
        for this, following in zip(versions, [*versions[1:], None]):
            ends[this["id"], this["transaction_id"]] = (
                following["transaction_id"] if following else None
            )
    return ends


def expected_after_vacuum(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    kept = []
    for versions in by_object(rows).values():
        previous = None
        for row in versions:
            repeats = previous is not None and all(row[c] == previous[c] for c in VALUES)
            if not (row["operation_type"] == UPDATE and repeats):
                kept.append(row)
            previous = row
    ends = expected_ends(kept)
    return sorted((r["id"], r["transaction_id"], ends[r["id"], r["transaction_id"]]) for r in kept)


def load(engine: sa.Engine, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(table.insert().execution_options(**BATCH), rows)


def read(engine: sa.Engine, table: sa.Table, *columns: str) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        statement = sa.select(*(table.c[c] for c in columns)).order_by(
            table.c.id, table.c.transaction_id
        )
        return [tuple(r) for r in conn.execute(statement)]


# -- end_transaction_id ----------------------------------------------------------------


def test_rebuild_end_transaction_ids_on_10k_rows(versioned):
    v = versioned(article_models)
    table = v.metadata.tables["article_version"]
    rows = history_rows()
    for row in rows[::7]:
        row["end_transaction_id"] = 999_999  # wrong on purpose
    load(v.engine, table, rows)
    ends = expected_ends(rows)
    wrong = sum(1 for r in rows if ends[r["id"], r["transaction_id"]] != r["end_transaction_id"])
    assert wrong > 7000

    with v.engine.begin() as conn, count_statements(v.engine) as counter:
        changed = history.rebuild_end_transaction_ids(conn, v.Article)
    assert counter.count == 1
    assert changed == wrong
    found = read(v.engine, table, "id", "transaction_id", "end_transaction_id")
    assert found == sorted((i, tx, end) for (i, tx), end in ends.items())

    with v.engine.begin() as conn, count_statements(v.engine) as counter:
        assert history.rebuild_end_transaction_ids(conn, v.Article) == 0
    assert counter.count == 1


def test_update_end_tx_column_compat_delegates(versioned):
    v = versioned(article_models)
    table = v.metadata.tables["article_version"]
    rows = history_rows(50)
    load(v.engine, table, rows)
    with v.engine.begin() as conn, count_statements(v.engine) as counter:
        assert update_end_tx_column(table, conn=conn) == 150
    assert counter.count == 1
    ends = expected_ends(rows)
    found = read(v.engine, table, "id", "transaction_id", "end_transaction_id")
    assert found == sorted((i, tx, end) for (i, tx), end in ends.items())


# -- _mod flags --------------------------------------------------------------------------


def flagged_table(metadata: sa.MetaData) -> sa.Table:
    """A version table as a migration would declare it, flags included (no model)."""
    return sa.Table(
        "doc_version",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("end_transaction_id", sa.BigInteger),
        sa.Column("operation_type", sa.SmallInteger, nullable=False),
        sa.Column("name", sa.Unicode(50)),
        sa.Column("name_mod", sa.Boolean),
        sa.Column("content", sa.UnicodeText),
        sa.Column("content_mod", sa.Boolean),
        sa.Column("meta", sa.JSON),
        sa.Column("meta_mod", sa.Boolean),
    )


@pytest.fixture
def flag_table(engine):
    metadata = sa.MetaData()
    table = flagged_table(metadata)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    yield table
    metadata.drop_all(engine)


def test_recompute_mod_flags_on_10k_rows(engine, flag_table):
    rows = history_rows()
    for index, row in enumerate(rows):
        for column in VALUES:
            row[f"{column}_mod"] = (None, True, False)[(index + len(column)) % 3]
    load(engine, flag_table, rows)
    expected = []
    for versions in by_object(rows).values():
        previous = None
        for row in versions:
            # PropertyModTrackerPlugin's rule: INSERT and DELETE versions flag every column,
            # an UPDATE what differs from the version before it.
            flags = tuple(
                previous is None or row["operation_type"] != UPDATE or row[c] != previous[c]
                for c in VALUES
            )
            expected.append((row["id"], row["transaction_id"], *flags))
            previous = row
    stale = sum(
        1
        for row, want in zip(sorted(rows, key=lambda r: (r["id"], r["transaction_id"])), expected)
        if tuple(row[f"{c}_mod"] for c in VALUES) != want[2:]
    )

    with engine.begin() as conn, count_statements(engine) as counter:
        changed = history.recompute_mod_flags(conn, flag_table)
    assert counter.count == 1
    assert changed == stale
    flags = ("name_mod", "content_mod", "meta_mod")
    assert read(engine, flag_table, "id", "transaction_id", *flags) == expected

    with engine.begin() as conn, count_statements(engine) as counter:
        assert update_property_mod_flags(flag_table, ["content"], conn=conn) == 0
    assert counter.count == 1


def test_recompute_mod_flags_unknown_column_is_named(engine, flag_table):
    with engine.begin() as conn, pytest.raises(TableNotVersioned, match="'title'"):
        history.recompute_mod_flags(conn, flag_table, ["title"])


def test_mod_flags_of_a_plugin_model_match_what_recording_wrote(versioned):
    from sqlalchemy_history.plugins import PropertyModTrackerPlugin

    v = versioned(article_models, plugins=[PropertyModTrackerPlugin()])
    with v.session() as session:
        articles = [v.Article(id=i, name=f"a{i}", content="c") for i in range(1, 21)]
        session.add_all(articles)
        session.commit()
        for article in articles[::2]:
            article.name += "!"
        session.commit()
        for article in articles[::3]:
            article.content = "d"
        session.commit()
        for article in articles[::5]:
            session.delete(article)
        session.commit()
    table = v.metadata.tables["article_version"]
    flags = ("name_mod", "content_mod", "meta_mod", "views_mod")
    recorded = read(v.engine, table, "id", "transaction_id", *flags)
    with v.engine.begin() as conn:
        conn.execute(table.update().values({f: sa.false() for f in flags}))
        with count_statements(v.engine) as counter:
            assert history.recompute_mod_flags(conn, v.Article) == len(recorded)
    assert counter.count == 1
    assert read(v.engine, table, "id", "transaction_id", *flags) == recorded

    # Backfilled first versions have every flag set, as recorded INSERTs do.
    with v.engine.begin() as conn:
        conn.execute(v.metadata.tables["article"].insert(), [{"id": 99, "name": "new"}])
        assert history.backfill(conn, v.Article) == 1
    (row,) = [r for r in read(v.engine, table, "id", *flags) if r[0] == 99]
    assert row == (99, True, True, True, True)


# -- backfill ----------------------------------------------------------------------------


def test_backfill_on_10k_rows(versioned):
    v = versioned(article_models)
    parent = v.metadata.tables["article"]
    table = v.metadata.tables["article_version"]
    parents = [
        {"id": i, "name": f"n{i}", "content": None if i % 9 == 0 else "c", "meta": [i], "views": i}
        for i in range(1, 10_001)
    ]
    load(v.engine, parent, parents)
    already = [r for r in history_rows(100) if r["transaction_id"] <= 100]  # one v0 each
    load(v.engine, table, already)

    with v.engine.begin() as conn, count_statements(v.engine) as counter:
        written = history.backfill(conn, v.Article, transaction_values={"remote_addr": "::1"})
    assert counter.count == 2  # the transaction row, one INSERT ... SELECT
    assert written == 9_900
    transactions = v.rows("transaction")
    assert [t["remote_addr"] for t in transactions] == ["::1"]
    tx = transactions[0]["id"]
    found = read(v.engine, table, "id", "name", "content", "meta", "transaction_id")
    assert found[:100] == [(r["id"], r["name"], r["content"], r["meta"], r["id"]) for r in already]
    assert found[100:] == [(p["id"], p["name"], p["content"], p["meta"], tx) for p in parents[100:]]
    assert {r[0] for r in read(v.engine, table, "operation_type")} == {INSERT}
    assert {r[0] for r in read(v.engine, table, "end_transaction_id")} == {None}

    # Nothing left to do: no version and no empty transaction row are written.
    with v.engine.begin() as conn, count_statements(v.engine) as counter:
        assert history.backfill(conn, v.Article) == 0
    assert counter.count == 3
    assert len(v.rows("transaction")) == 1

    # Recording carries on from the backfilled version.
    with v.session() as session:
        article = session.get(v.Article, 500)
        article.name = "renamed"
        session.commit()
        assert [x.name for x in article.versions] == ["n500", "renamed"]
        assert article.versions[0].transaction_id == tx
        assert article.versions[1].previous.transaction_id == tx


def test_backfill_by_table_name_in_one_transaction(versioned):
    """What a migration does: name the tables, nothing imported from the models."""

    def define(Base):
        class Article(Base):
            __versioned__ = {}
            __tablename__ = "article"
            id = sa.Column(sa.Integer, primary_key=True)
            name = sa.Column(sa.Unicode(50))

        class Tag(Base):
            __versioned__ = {"exclude": ["hits"]}
            __tablename__ = "tag"
            article_id = sa.Column(sa.Integer, primary_key=True, autoincrement=False)
            label = sa.Column("title", sa.Unicode(20), primary_key=True)
            hits = sa.Column(sa.Integer)

        return locals()

    v = versioned(define)
    load(v.engine, v.metadata.tables["article"], [{"id": i, "name": f"a{i}"} for i in (1, 2)])
    load(
        v.engine,
        v.metadata.tables["tag"],
        [{"article_id": 1, "title": t, "hits": 3} for t in ("x", "y", "z")],
    )
    with v.engine.begin() as conn:
        assert history.backfill(conn, "article", "tag") == 5
    transactions = v.rows("transaction")
    assert len(transactions) == 1
    tags = v.rows("tag_version", ["label"])
    assert [(r["title"], r["transaction_id"], r["operation_type"]) for r in tags] == [
        (t, transactions[0]["id"], INSERT) for t in ("x", "y", "z")
    ]
    assert "hits" not in tags[0]
    with v.session() as session:
        assert [x.name for x in session.get(v.Article, 2).versions] == ["a2"]


def test_backfill_joined_inheritance_fills_every_table(versioned):
    def define(Base):
        class Employee(Base):
            __versioned__ = {}
            __tablename__ = "employee"
            id = sa.Column(sa.Integer, primary_key=True)
            name = sa.Column(sa.Unicode(50))
            kind = sa.Column(sa.Unicode(20))
            __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "employee"}

        class Engineer(Employee):
            __tablename__ = "engineer"
            id = sa.Column(sa.Integer, sa.ForeignKey("employee.id"), primary_key=True)
            language = sa.Column(sa.Unicode(20))
            __mapper_args__ = {"polymorphic_identity": "engineer"}

        return locals()

    v = versioned(define)
    with v.session() as session:
        session.add_all([v.Employee(name="boss"), v.Engineer(name="eve", language="py")])
        session.flush()
        # Written behind the ORM's back: no history, as before versioning was switched on.
        session.execute(sa.delete(v.metadata.tables["engineer_version"]))
        session.execute(sa.delete(v.metadata.tables["employee_version"]))
        session.commit()
    with v.engine.begin() as conn, count_statements(v.engine) as counter:
        assert history.backfill(conn, v.Engineer) == 3
    assert counter.count == 3  # transaction row + one INSERT ... SELECT per table
    with v.session() as session:
        eve = session.scalars(sa.select(v.Engineer)).one()
        assert [(x.name, x.language) for x in eve.versions] == [("eve", "py")]


def test_backfill_errors_name_what_is_wrong(versioned):
    v = versioned(article_models)
    with v.engine.begin() as conn:
        with pytest.raises(TableNotVersioned, match=r"'nope'"):
            history.backfill(conn, "nope")
        with pytest.raises(TypeError, match="tx_column"):
            history.backfill(conn, v.Article, tx_column="x")
        with pytest.raises(TableNotVersioned, match="has no column"):
            history.backfill(conn, v.Article, transaction_values={"who": 1})
    with pytest.raises(TypeError, match="Connection"):
        history.backfill(v.engine, v.Article)


# -- vacuum ------------------------------------------------------------------------------


def test_vacuum_on_10k_rows(versioned):
    v = versioned(article_models)
    table = v.metadata.tables["article_version"]
    rows = history_rows()
    ends = expected_ends(rows)
    for row in rows:
        row["end_transaction_id"] = ends[row["id"], row["transaction_id"]]
    load(v.engine, table, rows)
    expected = expected_after_vacuum(rows)
    assert len(rows) - len(expected) == OBJECTS // 2 + OBJECTS // 3

    with v.engine.begin() as conn, count_statements(v.engine) as counter:
        removed = history.vacuum(conn, v.Article)
    assert counter.count == 2  # one DELETE, one UPDATE re-pointing ends
    assert removed == len(rows) - len(expected)
    assert read(v.engine, table, "id", "transaction_id", "end_transaction_id") == expected

    with v.session() as session, count_statements(v.engine) as counter:
        assert vacuum(session, v.Article) == 0
        session.commit()
    assert counter.count == 2


def test_vacuum_subquery_strategy_is_one_statement(versioned):
    v = versioned(article_models, options={"strategy": "subquery"})
    table = v.metadata.tables["article_version"]
    rows = history_rows(300)
    for row in rows:
        del row["end_transaction_id"]
    load(v.engine, table, rows)
    with v.engine.begin() as conn, count_statements(v.engine) as counter:
        assert history.vacuum(conn, v.Article) == 150 + 100
        assert history.rebuild_end_transaction_ids(conn, v.Article) == 0
    assert counter.count == 1
    kept = {(i, tx) for i, tx, _ in expected_after_vacuum(rows)}
    assert set(read(v.engine, table, "id", "transaction_id")) == kept


def joined_models(Base):
    class Employee(Base):
        __versioned__ = {}
        __tablename__ = "employee"
        id = sa.Column(sa.Integer, primary_key=True)
        name = sa.Column(sa.Unicode(50))
        kind = sa.Column(sa.Unicode(20))
        __mapper_args__ = {"polymorphic_on": kind, "polymorphic_identity": "employee"}

    class Engineer(Employee):
        __tablename__ = "engineer"
        id = sa.Column(sa.Integer, sa.ForeignKey("employee.id"), primary_key=True)
        language = sa.Column(sa.Unicode(20))
        __mapper_args__ = {"polymorphic_identity": "engineer"}

    return locals()


def test_vacuum_joined_inheritance_keeps_versions_changed_in_any_table(versioned):
    v = versioned(joined_models)
    base = v.metadata.tables["employee_version"]
    child = v.metadata.tables["engineer_version"]
    # One engineer: tx 1 insert; 2 changes language only (kept: the child table
    # changed); 3 changes nothing (removed from both tables); 4 renames (kept).
    versions = [
        (1, "eve", "py", INSERT),
        (2, "eve", "go", UPDATE),
        (3, "eve", "go", UPDATE),
        (4, "eva", "go", UPDATE),
    ]
    load(
        v.engine,
        base,
        [
            {"id": 1, "name": n, "kind": "engineer", "transaction_id": t, "operation_type": o}
            for t, n, _, o in versions
        ],
    )
    load(
        v.engine,
        child,
        [
            {"id": 1, "language": lang, "transaction_id": t, "operation_type": o}
            for t, _, lang, o in versions
        ],
    )
    with v.engine.begin() as conn:
        history.rebuild_end_transaction_ids(conn, v.Engineer)
    with v.session() as session, count_statements(v.engine) as counter:
        assert vacuum(session, v.Engineer) == 1
        session.commit()
    assert counter.count == 4  # DELETE + UPDATE per table
    for table in (base, child):
        assert read(v.engine, table, "transaction_id", "end_transaction_id") == [
            (1, 2),
            (2, 4),
            (4, None),
        ]
    with v.session() as session:
        version_cls = version_class(v.Engineer)
        read_back = session.scalars(
            sa.select(version_cls).order_by(version_cls.transaction_id)
        ).all()
        assert [(x.name, x.language) for x in read_back] == [
            ("eve", "py"),
            ("eve", "go"),
            ("eva", "go"),
        ]
        assert read_back[1].next.name == "eva"


def test_vacuum_through_a_session_with_orm_history(versioned):
    """The documented use: versions written by the ORM, vacuum from application code."""
    v = versioned(article_models)
    with v.session() as session:
        session.add(v.Article(id=1, name="a", views=0))
        session.commit()
    table = v.metadata.tables["article_version"]
    with v.engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "id": 1,
                    "name": "a",
                    "views": 0,
                    # SQL NULL, as the parent row holds for a JSON column never set (the
                    # ORM's version copies the row; a plain None would bind JSON 'null')
                    "meta": sa.null(),
                    "transaction_id": 50,
                    "operation_type": UPDATE,
                }
            ],
        )
        assert history.rebuild_end_transaction_ids(conn, "article") == 1
    with Session(v.engine) as session:
        assert vacuum(session, v.Article) == 1
        session.commit()
    rows = v.rows("article_version")
    assert [(r["operation_type"], r["end_transaction_id"]) for r in rows] == [(INSERT, None)]


# -- dialect neutrality ------------------------------------------------------------------

DIALECTS = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.dialect(),
    "mysql": mysql.dialect(),
    "mssql": mssql.dialect(),
    "oracle": oracle.dialect(),
}
FORBIDDEN = re.compile(
    r"\bRETURNING\b|\bOUTPUT\s+(inserted|deleted)\.|\bMERGE\b|\bOVER\s*\(|\bSEQUENCE\b|NEXTVAL",
    re.I,
)


def _groups(sql: str) -> list[tuple[int, int]]:
    """Return (start, end) of every top-level parenthesised group of ``sql``."""
    spans, depth, start = [], 0, 0
    for index, char in enumerate(sql):
        if char == "(":
            if depth == 0:
                start = index
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                spans.append((start, index + 1))
    return spans


def outside_parentheses(sql: str) -> str:
    spans = _groups(sql)
    pieces, last = [], 0
    for start, end in spans:
        pieces.append(sql[last:start])
        last = end
    return "".join([*pieces, sql[last:]])


def without_derived_tables(sql: str) -> str:
    """Cut out every ``(SELECT ...) AS name`` in a FROM clause, at any depth."""
    pattern = re.compile(r"FROM\s+\(\s*SELECT", re.I)
    while True:
        match = pattern.search(sql)
        if match is None:
            return sql
        open_at = sql.index("(", match.start())
        depth = 0
        for index in range(open_at, len(sql)):
            depth += {"(": 1, ")": -1}.get(sql[index], 0)
            if depth == 0:
                break
        sql = sql[:open_at] + "derived" + sql[index + 1 :]


def test_neutrality_checks_bite():
    assert outside_parentheses("UPDATE a SET x=(SELECT (1) FROM b) WHERE (c)") == (
        "UPDATE a SET x= WHERE "
    )
    assert "FROM b" not in without_derived_tables("SELECT 1 FROM (SELECT (2) FROM b) AS d")
    assert FORBIDDEN.search("SELECT row_number() OVER (ORDER BY x)")


def all_statements(v) -> list[tuple[str, Any]]:
    article = maintenance.resolve(None, v.Article)
    flags = maintenance.resolve(None, flagged_table(sa.MetaData()))
    h = article[0]
    statements = [
        ("end", maintenance.end_transaction_statement(h)),
        ("flags", maintenance.mod_flags_statement(flags[0], flags[0].flags)),
        ("backfill", maintenance.backfill_statement(h, 7)),
    ]
    statements += [("vacuum", s) for s in maintenance.vacuum_statements(article)]
    return statements


@pytest.mark.parametrize("name", list(DIALECTS))
def test_statements_compile_dialect_neutral(name):
    from sqlalchemy.orm import DeclarativeBase, configure_mappers

    from sqlalchemy_history import make_versioned, remove_versioning

    make_versioned(user_cls=None)
    try:

        class Base(DeclarativeBase):
            pass

        models = article_models(Base)
        joined = joined_models(Base)
        configure_mappers()
        v = type("V", (), models)
        compiled = [
            (label, str(s.compile(dialect=DIALECTS[name]))) for label, s in all_statements(v)
        ]
        group = maintenance.resolve(None, joined["Engineer"])
        assert [h.name for h in group] == ["employee_version", "engineer_version"]
        compiled += [
            ("joined vacuum", str(s.compile(dialect=DIALECTS[name])))
            for s in maintenance.vacuum_statements(group)
        ]
    finally:
        remove_versioning()
        Base.registry.dispose()
    assert len(compiled) == 9
    for label, sql in compiled:
        where = f"{name} / {label}"
        assert not FORBIDDEN.search(sql), f"{where}: {sql}"
        outer = outside_parentheses(sql)
        if outer.lstrip().upper().startswith("UPDATE"):
            assert not re.search(r"\bFROM\b", outer, re.I), f"{where}: UPDATE ... FROM: {sql}"
        # MySQL error 1093: the modified table may only be read through derived tables,
        # and each derived table must hold a select-list subquery so MySQL materializes it.
        target = re.match(r"\s*(?:UPDATE|DELETE FROM|INSERT INTO)\s+(\S+)", sql, re.I)
        assert target is not None, sql
        table = target.group(1)
        rest = without_derived_tables(sql[target.end() :])
        if not sql.upper().startswith("INSERT"):
            assert not re.search(rf"FROM\s+{re.escape(table)}\b", rest), f"{where}: {sql}"
            for match in re.finditer(r"FROM\s+\(\s*SELECT", sql, re.I):
                head = sql[match.end() : match.end() + 2000]
                assert re.match(r"[^()]*\(\s*SELECT\s+min\(", head, re.I), f"{where}: {sql}"
