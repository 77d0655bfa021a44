"""Compile what as_of, the audit log and retention emit, for all five dialects.

The rules of SPEC §9 and ARCHITECTURE (no RETURNING, sequences, MERGE, UPDATE ... FROM;
no window functions on write paths), plus MySQL's "can't specify target table for update in
FROM clause" (error 1093): a DELETE/UPDATE may read its own table only through a derived
table. SQL Server and Oracle have no server here; these checks are all they get.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
import test_compile
from sqlalchemy.orm import joinedload, with_parent
from test_compile import DIALECTS, RecordingConnection, assert_neutral, compile_one, dialect

from sqlalchemy_history import (
    as_of,
    audit,
    retention,
    strategies,
    version_class,
    versioning_manager,
)
from sqlalchemy_history.scope import hierarchy_tables

# The models of test_compile.py, as fixtures of this module too.
build = test_compile.build
m = test_compile.m

WINDOW = re.compile(r"\bOVER\s*\(", re.I)


def _groups(sql: str) -> list[tuple[int, int]]:
    """(start, end) of every parenthesized group."""
    stack, found = [], []
    for i, ch in enumerate(sql):
        if ch == "(":
            stack.append(i)
        elif ch == ")" and stack:
            found.append((stack.pop(), i))
    return found


def reads_target_outside_derived_table(sql: str) -> bool:
    """True if a DELETE/UPDATE reads its own table in a subquery that is not a derived
    table (``FROM (SELECT ...) AS x``): what MySQL refuses with error 1093."""
    head = re.match(r"\s*(?:DELETE\s+FROM|UPDATE)\s+([`\"\[]?\w+[`\"\]]?)", sql, re.I)
    if head is None:
        return False
    target = re.escape(head.group(1).strip('`"[]'))
    groups = _groups(sql)
    for found in re.finditer(rf"\b(?:FROM|JOIN)\s+[`\"\[]?{target}[`\"\]]?(?![\w])", sql, re.I):
        enclosing = [(s, e) for s, e in groups if s < found.start() < e]
        if not enclosing:
            continue  # the statement's own target
        derived = any(re.search(r"\b(FROM|JOIN)\s*$", sql[:s], re.I) for s, _ in enclosing)
        if not derived:
            return True
    return False


def test_self_reference_detector() -> None:
    # The helper decides the MySQL assertions below: prove it bites.
    assert reads_target_outside_derived_table(
        "DELETE FROM t WHERE EXISTS (SELECT 1 FROM t AS x WHERE x.id = t.id)"
    )
    assert reads_target_outside_derived_table("UPDATE t SET a=(SELECT max(a) FROM t) WHERE 1")
    assert not reads_target_outside_derived_table(
        "DELETE FROM t WHERE EXISTS (SELECT 1 FROM (SELECT x.id, (SELECT count(*) FROM t AS y "
        "WHERE y.id = x.id) AS n FROM t AS x) AS d WHERE d.id = t.id)"
    )
    assert not reads_target_outside_derived_table(
        "DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)"
    )


# -- reads -----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_as_of_and_its_relationship_loads(m: SimpleNamespace, dialect_name: str) -> None:
    import datetime

    d = dialect(dialect_name)
    AV = version_class(m.Article)
    statements = {
        "as_of int": as_of(m.Article, 7),
        "as_of datetime": as_of(m.Note, datetime.datetime(2030, 1, 1)),
        "as_of joined": as_of(m.Article, 7).options(joinedload(AV.tags)),
        "as_of join": as_of(m.Article, 7).join(AV.tags),
        "relationship load": sa.select(version_class(m.Tag)).where(
            with_parent(AV(id=1, transaction_id=7), AV.tags)
        ),
    }
    for label, statement in statements.items():
        sql = str(statement.compile(dialect=d))
        assert_neutral(sql, f"{dialect_name} / {label}")
        assert not WINDOW.search(sql), label
    joined = statements["as_of joined"].compile(dialect=d)
    assert strategies.AS_OF_PARAMETER in joined.params  # the relationship reads the bound point


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_audit_union(m: SimpleNamespace, dialect_name: str) -> None:
    d = dialect(dialect_name)
    tables = audit._tables(versioning_manager, None)
    branches, slots = audit._branches(tables)
    transactions = versioning_manager.transaction_table
    page = sa.select(transactions.c.id).where(transactions.c.id.between(1, 50))
    sql = str(audit.versions_statement(branches, slots, page, d).compile(dialect=d))
    assert_neutral(sql, f"{dialect_name} / audit")
    assert sql.count("UNION ALL") == len(branches) - 1 >= 6
    # a slot holds one type in every branch: the width is the widest table's, per type
    widest = max(2 * len(info.columns) for info, _, _ in tables)
    assert widest <= len(slots.types) < sum(2 * len(info.columns) for info, _, _ in tables)
    casts = "CAST(NULL AS" in sql
    assert casts is (dialect_name in ("postgresql", "mssql", "oracle")), sql[:400]


# -- writes ----------------------------------------------------------------------------


def retention_statements(m: SimpleNamespace, d: Any) -> list[tuple[str, Any, Any]]:
    out: list[tuple[str, Any, Any]] = []

    def run(label: str, fn: Any, *args: Any) -> None:
        conn = RecordingConnection(d, rows=[(7,)])
        fn(conn, *args)
        out.extend((label, s, p) for s, p in conn.executed)

    manager = versioning_manager
    for name in ("Article", "Line", "Note", "NoteLine"):
        mapper = sa.inspect(getattr(m, name))
        width = len(mapper.primary_key)
        for keep_last in (1, 2):
            run(
                f"{name} prune {keep_last}", retention.prune_versions, manager, mapper, 9, keep_last
            )
        run(
            f"{name} purge", retention.purge_versions, manager, mapper, [(1,) * width, (2,) * width]
        )
        tables = hierarchy_tables(manager, mapper)
        column = next(
            c for c in tables[0].columns.values() if c not in tables[0].version_primary_key
        )
        run(
            f"{name} redact",
            retention.redact_versions,
            tables,
            {tables[0]: {column: None}},
            column == "x",
        )
    return out


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_retention_statements(m: SimpleNamespace, dialect_name: str) -> None:
    d = dialect(dialect_name)
    statements = retention_statements(m, d)
    labels = {label for label, _, _ in statements}
    assert {"Article prune 1", "Note prune 2", "Line purge", "NoteLine redact"} <= labels
    kinds = {re.match(r"\s*(\w+)", str(compile_one(s, p, d))).group(1) for _, s, p in statements}
    assert kinds == {"SELECT", "DELETE", "UPDATE"}
    for label, statement, params in statements:
        sql = str(compile_one(statement, params, d))
        where = f"{dialect_name} / {label}"
        assert_neutral(sql, where)
        assert not WINDOW.search(sql), f"{where}: window function in {sql}"
        assert not reads_target_outside_derived_table(sql), f"{where}: MySQL 1093 in {sql}"
        if dialect_name == "oracle":
            assert all(
                len(items.split(",")) <= 1000 for items in re.findall(r"IN \(([^()]*)\)", sql)
            )
