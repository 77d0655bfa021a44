"""Compile every statement the library emits for all five dialects, without a database.

SPEC §9: the library's own SQL is dialect-neutral (no RETURNING, no sequences, no
UPDATE ... FROM, no MERGE) and the identifiers it generates fit Oracle's limits.
The statements are captured by calling the writer, the unit of work and the schema
helpers with a fake connection that records what is passed to ``execute``; the read-side
predicates of ``strategies.py`` are compiled inside ``select(VersionClass).where(...)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, Callable, Optional

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, oracle, postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.visitors import cloned_traverse

from sqlalchemy_history import (
    make_versioned,
    remove_versioning,
    schema,
    strategies,
    version_class,
    versioning_manager,
    writer,
)
from sqlalchemy_history.dialects import DialectRules, rules_for
from sqlalchemy_history.unit_of_work import UnitOfWork

DIALECTS: dict[str, Callable[[], Dialect]] = {
    "sqlite": sqlite.dialect,
    "postgresql": postgresql.dialect,
    "mysql": mysql.dialect,
    "mssql": mssql.dialect,
    "oracle": oracle.dialect,
}

#: Dialect flags that make SQLAlchemy add RETURNING / OUTPUT on its own to fetch a new
#: identity. Switched off so that what we compile is exactly the library's SQL, as a
#: driver without RETURNING would run it (SPEC §9).
RETURNING_FLAGS = (
    "insert_returning",
    "update_returning",
    "delete_returning",
    "insert_executemany_returning",
    "update_executemany_returning",
    "delete_executemany_returning",
)

#: Most bind parameters one statement may carry, per backend.
PARAM_LIMITS = {
    "sqlite": 999 if rules_for(sqlite.dialect()).max_params < 32_000 else 32_766,
    "postgresql": 32_767,
    "mysql": 65_535,
    "mssql": 2_100,
    "oracle": 65_535,
}
#: Most expressions in one IN list (ORA-01795).
IN_LIST_LIMITS = {"oracle": 1000}

ORACLE_IDENTIFIER_LIMIT = 128

FORBIDDEN = {
    "RETURNING": re.compile(r"\bRETURNING\b", re.I),
    "OUTPUT inserted/deleted": re.compile(r"\bOUTPUT\s+(inserted|deleted)\.", re.I),
    "sequence": re.compile(r"\bSEQUENCE\b|\bNEXTVAL\b|\.nextval\b|\bNEXT\s+VALUE\s+FOR\b", re.I),
    "MERGE": re.compile(r"\bMERGE\b", re.I),
}
ROW_VALUE_IN = re.compile(r"\(\s*[\w.\"`\[\]]+\s*,\s*[\w.\"`\[\]]+[^()]*\)\s+(NOT\s+)?IN\b", re.I)


def dialect(name: str, returning: bool = False) -> Dialect:
    d = DIALECTS[name]()
    if not returning:
        for flag in RETURNING_FLAGS:
            setattr(d, flag, False)
    return d


def _without_parentheses(sql: str) -> str:
    previous = None
    while previous != sql:
        previous, sql = sql, re.sub(r"\([^()]*\)", " _ ", sql)
    return sql


def is_update_from(sql: str) -> bool:
    """True for ``UPDATE t SET ... FROM ...`` (a FROM outside any subquery)."""
    flat = _without_parentheses(sql)
    return bool(re.match(r"\s*UPDATE\b", flat, re.I) and re.search(r"\bFROM\b", flat, re.I))


def assert_neutral(sql: str, where: str) -> None:
    for what, pattern in FORBIDDEN.items():
        assert not pattern.search(sql), f"{where}: {what} in {sql}"
    assert not is_update_from(sql), f"{where}: UPDATE ... FROM in {sql}"


def test_update_from_detector() -> None:
    # The regex helpers above decide most assertions of this module: prove they bite.
    assert is_update_from("UPDATE a SET x=b.x FROM b WHERE a.id = b.id")
    assert not is_update_from("UPDATE a SET x=1 WHERE a.id IN (SELECT b.id FROM b)")
    nested = "(SELECT max(c.x) FROM (SELECT (c.x + 1) AS x FROM c) AS c)"
    assert not is_update_from(f"UPDATE a SET x={nested} WHERE EXISTS (SELECT * FROM {nested})")
    assert is_update_from(f"UPDATE a SET x={nested} FROM b WHERE a.id = b.id")
    assert ROW_VALUE_IN.search("WHERE (t.a, t.b) IN ((1, 2))")
    assert not ROW_VALUE_IN.search("WHERE t.a IN (1, 2) AND (t.a = 1 AND t.b = 2)")


# -- models --------------------------------------------------------------------------

LONG_TABLE = "t" * (ORACLE_IDENTIFIER_LIMIT - len("_version"))


def portable_models(Base: Any) -> dict[str, Any]:
    """Models whose own names fit every backend (PostgreSQL: 63, MySQL: 64 bytes)."""

    class User(Base):
        __tablename__ = "user_account"
        id = sa.Column(sa.Integer, primary_key=True)

    article_tag = sa.Table(
        "article_tag",
        Base.metadata,
        sa.Column("article_id", sa.Integer, sa.ForeignKey("article.id")),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id")),
    )

    class Tag(Base):
        __versioned__ = {}
        __tablename__ = "tag"
        id = sa.Column(sa.Integer, primary_key=True)
        label = sa.Column(sa.Unicode(50))

    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255), unique=True)
        content = sa.Column(sa.UnicodeText)
        counter = sa.Column(sa.Integer, server_default=sa.text("0"), nullable=False)
        tags = sa.orm.relationship(Tag, secondary=article_tag)

    class Line(Base):
        __versioned__ = {}
        __tablename__ = "order_line"
        order_id = sa.Column(sa.Integer, primary_key=True)
        line_no = sa.Column(sa.Integer, primary_key=True)
        quantity = sa.Column(sa.Integer, default=1)

    class Note(Base):
        __versioned__ = {"strategy": "subquery"}
        __tablename__ = "note"
        id = sa.Column(sa.Integer, primary_key=True)
        body = sa.Column(sa.UnicodeText)

    class NoteLine(Base):
        __versioned__ = {"strategy": "subquery"}
        __tablename__ = "note_line"
        note_id = sa.Column(sa.Integer, primary_key=True)
        line_no = sa.Column(sa.Integer, primary_key=True)
        text = sa.Column(sa.Unicode(100))

    return locals()


def models(Base: Any) -> dict[str, Any]:
    """The portable models plus one whose version table name is exactly 128 bytes."""

    class LongNamed(Base):
        # 128 bytes is more than the default limit (63, PostgreSQL's): opt in, as an
        # Oracle / SQL Server user would.
        __versioned__ = {"max_identifier_length": ORACLE_IDENTIFIER_LIMIT}
        __tablename__ = LONG_TABLE
        id = sa.Column(sa.Integer, primary_key=True)
        value = sa.Column(sa.Integer)

    return {**portable_models(Base), "LongNamed": LongNamed}


VERSIONED = ("Tag", "Article", "Line", "Note", "NoteLine", "LongNamed")
#: Version tables of the models above: one per versioned class plus the association.
VERSION_TABLES = {
    "tag_version",
    "article_version",
    "article_tag_version",
    "order_line_version",
    "note_version",
    "note_line_version",
    LONG_TABLE + "_version",
}


@pytest.fixture
def build() -> Iterator[Callable[..., SimpleNamespace]]:
    """Build models with make_versioned + a Base + configure_mappers; undo afterwards."""
    bases: list[type[DeclarativeBase]] = []

    def _build(
        define: Callable[[Any], dict[str, Any]],
        options: Optional[dict[str, Any]] = None,
        user_cls: Any = None,
    ) -> SimpleNamespace:
        make_versioned(user_cls=user_cls, options=options)

        class Base(DeclarativeBase):
            pass

        bases.append(Base)
        found = {k: v for k, v in define(Base).items() if isinstance(v, type)}
        configure_mappers()
        return SimpleNamespace(**{**found, "Base": Base, "metadata": Base.metadata})

    yield _build
    remove_versioning()
    for base in bases:
        base.registry.dispose()


@pytest.fixture
def m(build: Callable[..., SimpleNamespace]) -> SimpleNamespace:
    return build(models, user_cls="User")


def info_of(model: type) -> Any:
    return versioning_manager.version_tables[model.__table__]


def our_tables() -> list[sa.Table]:
    transaction = versioning_manager.transaction_table
    assert transaction is not None
    return [*versioning_manager.version_table_map.values(), transaction]


# -- capturing what the library executes ---------------------------------------------


class _Result:
    def __init__(self, rows: list[tuple[Any, ...]]):
        self._rows = rows
        self.inserted_primary_key = (1,)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self._rows)

    def all(self) -> list[tuple[Any, ...]]:
        return list(self._rows)

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def one(self) -> tuple[Any, ...]:
        (row,) = self._rows
        return row

    @property
    def rowcount(self) -> int:
        return len(self._rows)


class RecordingConnection:
    """Stands in for a Connection: records every ``execute`` and returns canned rows."""

    def __init__(self, dialect: Dialect, rows: Optional[list[tuple[Any, ...]]] = None):
        self.dialect = dialect
        self.rows = rows or []
        self.executed: list[tuple[Any, Any]] = []

    def execute(self, statement: Any, parameters: Any = None, **kw: Any) -> _Result:
        self.executed.append((statement, parameters))
        return _Result(self.rows)


def compile_one(statement: Any, parameters: Any, d: Dialect) -> Any:
    if isinstance(parameters, list):  # executemany: the columns of the first row
        return statement.compile(dialect=d, column_keys=list(parameters[0]))
    if isinstance(parameters, dict):
        statement = bind(statement, parameters)
    return statement.compile(dialect=d, compile_kwargs={"render_postcompile": True})


def bind(statement: Any, parameters: dict[str, Any]) -> Any:
    """A copy of ``statement`` holding ``parameters`` in its bound parameters: prepared
    statements get their values (key lists included) at execution."""

    def visit_bindparam(bind: Any) -> None:
        if bind.key in parameters:
            bind.value = parameters[bind.key]
            bind.required = False

    return cloned_traverse(statement, {}, {"bindparam": visit_bindparam})


def sample_keys(info: Any, count: int) -> list[tuple[Any, ...]]:
    width = len(info.version_primary_key)
    return [tuple(i * 10 + j for j in range(width)) for i in range(1, count + 1)]


def sample_rows(info: Any, keys: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    rows = []
    for key in keys:
        row: dict[str, Any] = {c.key: None for c in info.table.c}
        row.update({c.key: v for c, v in zip(info.version_primary_key, key)})
        row[info.transaction_column.key] = 7
        row[info.operation_column.key] = 1
        rows.append(row)
    return rows


def library_statements(m: SimpleNamespace, d: Dialect) -> list[tuple[str, Any, Any]]:
    """Every statement the write path, the read predicates and the schema helpers build."""
    out: list[tuple[str, Any, Any]] = []

    def run(label: str, fn: Callable[..., Any], *args: Any, rows: Any = None, **kw: Any) -> None:
        conn = RecordingConnection(d, rows)
        fn(conn, *args, **kw)
        out.extend((label, s, p) for s, p in conn.executed)

    session = Session()
    uow = UnitOfWork(versioning_manager, session.begin())
    run("transaction insert", lambda c: uow.ensure_transaction(c, session))
    session.close()
    classes = {
        info_of(getattr(m, name)).table: version_class(getattr(m, name)) for name in VERSIONED
    }
    infos = list(versioning_manager.version_tables.values())
    assert {info.table.name for info in infos} == VERSION_TABLES
    for info in infos:
        name = info.table.name
        keys = sample_keys(info, 3)
        others = [c for c in info.parent.c if c not in info.primary_key]
        rows = sample_rows(info, keys)
        run(f"{name} fetch_missing", writer.fetch_missing, info, keys, others)
        run(f"{name} fetch_missing locked", writer.fetch_missing, info, keys, others, lock=True)
        run(f"{name} fetch_from_history", writer.fetch_from_history, info, keys, others, 7)
        run(f"{name} close_versions", writer.close_versions, info, keys, 7)
        run(f"{name} insert_versions", writer.insert_versions, info, rows)
        run(f"{name} copy_versions", writer.copy_versions, info, keys, 7, 1)
        flag = next(iter(rows[0]))
        run(f"{name} copy_versions constants", writer.copy_versions, info, keys, 7, 1, {flag: 1})
        run(f"{name} delete_own_versions", writer.delete_own_versions, info, keys, 7)
        run(f"{name} update_versions", writer.update_versions, info, rows)
        run(f"{name} newest_other_version", writer.newest_other_version, info, keys, 7)
        run(f"{name} move_versions", writer.move_versions, info, 7, 8)
        if info.end_transaction_column is not None:
            # two versions of one object, both open: the first must be closed
            history = [(*keys[0], 1, None), (*keys[0], 2, None)]
            run(
                f"{name} update_end_tx_column",
                lambda c, table: schema.update_end_tx_column(table, conn=c),
                info.table,
                rows=history,
            )
        # association version tables have no class: their predicates are read in Core
        selectable: Any = classes.get(info.table, info.table)
        pk = keys[0]
        for label, predicate in (
            ("previous", strategies.previous_version(info, pk, 7)),
            ("next", strategies.next_version(info, pk, 7)),
            ("valid_at", strategies.valid_at(info, 7)),
            ("earlier_versions", strategies.earlier_versions(info, pk, 7)),
        ):
            out.append((f"{name} {label}", sa.select(selectable).where(predicate), None))
    return out


# -- DML -----------------------------------------------------------------------------


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_library_statements_are_dialect_neutral(m: SimpleNamespace, dialect_name: str) -> None:
    d = dialect(dialect_name)
    statements = library_statements(m, d)
    labels = {label for label, _, _ in statements}
    # Non-vacuous: the write path really produced its statements.
    assert "transaction insert" in labels
    for name in VERSION_TABLES:
        for step in (
            "fetch_missing",
            "fetch_missing locked",
            "fetch_from_history",
            "insert_versions",
            "copy_versions",
            "copy_versions constants",
            "delete_own_versions",
            "update_versions",
            "newest_other_version",
            "move_versions",
            "valid_at",
        ):
            assert f"{name} {step}" in labels
    for name in VERSION_TABLES - {"note_version", "note_line_version"}:
        assert f"{name} close_versions" in labels
        assert f"{name} update_end_tx_column" in labels
    for label, statement, params in statements:
        sql = str(compile_one(statement, params, d))
        assert_neutral(sql, f"{dialect_name} / {label}")
        if not rules_for(d).row_values:  # only where the dialect rules choose row values
            assert not ROW_VALUE_IN.search(sql), f"{dialect_name} / {label}: row-value IN {sql}"


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_only_sqlalchemy_fetches_the_transaction_id(m: SimpleNamespace, dialect_name: str) -> None:
    """With a RETURNING-capable dialect, the only RETURNING/OUTPUT is SQLAlchemy's own
    fetch of the new transaction id (no explicit ``.returning()`` anywhere)."""
    d = dialect(dialect_name, returning=True)
    for label, statement, params in library_statements(m, d):
        sql = str(compile_one(statement, params, d))
        if label != "transaction insert":
            assert not FORBIDDEN["RETURNING"].search(sql), f"{label}: {sql}"
            assert not FORBIDDEN["OUTPUT inserted/deleted"].search(sql), f"{label}: {sql}"
        else:
            returned = re.findall(
                r"(?:RETURNING|OUTPUT)\s+([^;]*?)(?:\s+INTO\b|\s+VALUES\b|$)", sql
            )
            for clause in returned:
                assert re.fullmatch(r"[\w\"`\[\]]+\.id|inserted\.id", clause.strip()), sql
        assert not FORBIDDEN["sequence"].search(sql), f"{label}: {sql}"
        assert not FORBIDDEN["MERGE"].search(sql), f"{label}: {sql}"


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_subquery_strategy_never_closes_versions(m: SimpleNamespace, dialect_name: str) -> None:
    conn = RecordingConnection(dialect(dialect_name))
    for name in ("Note", "NoteLine"):
        info = info_of(getattr(m, name))
        assert info.end_transaction_column is None
        writer.close_versions(conn, info, sample_keys(info, 5), 7)
    assert conn.executed == []


# -- key matching (dialects.py) ---------------------------------------------------------

#: How each backend matches a list of composite keys (``DialectRules.key_chunks``), shown
#: for three keys of ``order_line`` / ``order_line_version`` (``t``), whitespace collapsed.
_T = r"order_line(?:_version)?"
COMPOSITE_SHAPES = {
    # Behind a subquery SQLite looks the rows up through the key index; "(a, b) IN
    # (VALUES ...)" alone makes it scan the table.
    "sqlite": rf"\({_T}\.order_id, {_T}\.line_no\) IN \(SELECT \* FROM \(VALUES "
    r"\(\?, \?\), \(\?, \?\), \(\?, \?\)\)\)",
    # One typed array per key column, whatever the number of keys.
    "postgresql": rf"\({_T}\.order_id, {_T}\.line_no\) IN \(SELECT (anon_\d+)\.key_0, "
    r"\1\.key_1 FROM unnest\(CAST\(%\(\w+\)s(::INTEGER\[\])? AS INTEGER\[\]\), "
    r"CAST\(%\(\w+\)s(::INTEGER\[\])? AS INTEGER\[\]\)\) AS \1\(key_0, key_1\)\)",
    "mysql": rf"\({_T}\.order_id, {_T}\.line_no\) IN \(\(%s, %s\), \(%s, %s\), \(%s, %s\)\)",
    "oracle": rf"\({_T}\.order_id, {_T}\.line_no\) IN \(\(:\w+, :\w+\), \(:\w+, :\w+\), "
    r"\(:\w+, :\w+\)\)",
    # No row values: a VALUES table joined through EXISTS.
    "mssql": r"EXISTS \(SELECT \* FROM \(VALUES \(:\w+, :\w+\), \(:\w+, :\w+\), "
    r"\(:\w+, :\w+\)\) AS (anon_\d+) \(key_0, key_1\) "
    rf"WHERE {_T}\.order_id = \1\.key_0 AND {_T}\.line_no = \1\.key_1\)",
}


def key_matching_statements(
    info: Any, keys: list[tuple[Any, ...]], d: Dialect
) -> dict[str, list[tuple[Any, Any]]]:
    """The statements of every write-path step that matches ``keys``, by step."""
    others = [c for c in info.parent.c if c not in info.primary_key]
    steps: dict[str, Callable[[Any], Any]] = {
        "fetch_missing": lambda c: writer.fetch_missing(c, info, keys, others),
        "fetch_from_history": lambda c: writer.fetch_from_history(c, info, keys, others, 7),
        "close_versions": lambda c: writer.close_versions(c, info, keys, 7),
        "copy_versions": lambda c: writer.copy_versions(c, info, keys, 7, 1),
    }
    out = {}
    for step, fn in steps.items():
        conn = RecordingConnection(d)
        fn(conn)
        out[step] = conn.executed
    if rules_for(d).close_by_exact_key:
        # MySQL/MariaDB read the open versions first, then close by range the keys the read
        # did not find (here, with no rows returned, all of them): two matching statements
        chunks = len(out["close_versions"]) // 2
        out["close_versions read"] = out["close_versions"][:chunks]
        out["close_versions"] = out["close_versions"][chunks:]
    return out


def key_values(compiled: Any) -> list[Any]:
    """Every key value bound to a compiled statement (``sample_keys`` values are >= 10;
    an array parameter counts as its items)."""
    values: list[Any] = []
    for value in compiled.params.values():
        values.extend(value if isinstance(value, list) else [value])
    return [v for v in values if isinstance(v, int) and v >= 10]


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_composite_keys_are_matched_per_backend(m: SimpleNamespace, dialect_name: str) -> None:
    d = dialect(dialect_name)
    info = info_of(m.Line)
    keys = sample_keys(info, 3)
    for step, executed in key_matching_statements(info, keys, d).items():
        assert len(executed) == 1, step
        compiled = compile_one(*executed[0], d)
        sql = " ".join(str(compiled).split())
        assert re.search(COMPOSITE_SHAPES[dialect_name], sql), f"{step}: {sql}"
        # never the OR of ANDs SQLite cannot parse past 1000 keys
        assert not re.search(r"\bOR\b", sql), f"{step}: {sql}"
        assert sorted(key_values(compiled)) == sorted(v for key in keys for v in key), step


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_one_composite_key_is_matched_by_equality(m: SimpleNamespace, dialect_name: str) -> None:
    """The flush of one object: a plain key lookup, whatever the list shape (SQLite
    without statistics scans the end_transaction_id index for a one-row VALUES list)."""
    d = dialect(dialect_name)
    info = info_of(m.Line)
    for step, executed in key_matching_statements(info, sample_keys(info, 1), d).items():
        (statement,) = executed
        sql = " ".join(str(compile_one(*statement, d)).split())
        assert re.search(rf"{_T}\.order_id = \S+ AND {_T}\.line_no = \S+", sql), (step, sql)
        assert not re.search(r"\b(IN|EXISTS|OR)\b", sql), (step, sql)


def test_unknown_dialects_get_the_portable_or_in_bounded_chunks(m: SimpleNamespace) -> None:
    d = dialect("sqlite")
    d.name = "somedb"  # no rules of its own
    rules = rules_for(d)
    assert type(rules) is DialectRules
    info = info_of(m.Line)
    executed = key_matching_statements(info, sample_keys(info, 1200), d)["close_versions"]
    assert len(executed) == 3  # 500 + 500 + 200
    for statement, params in executed:
        sql = str(compile_one(statement, params, d))
        assert len(re.findall(r"\bOR\b", sql)) < rules.max_composite_keys, sql[:300]
        assert not re.search(r"\bIN\b", sql), sql[:300]


def array_key_models(Base: Any) -> dict[str, Any]:
    class Tagged(Base):
        __versioned__ = {}
        __tablename__ = "tagged"
        id = sa.Column(sa.Integer, primary_key=True)
        path = sa.Column(postgresql.ARRAY(sa.Integer), primary_key=True)

    return locals()


def test_postgresql_array_key_columns_are_not_unnested(
    build: Callable[..., SimpleNamespace],
) -> None:
    """unnest() would flatten an array of arrays: a key with an array column gets the
    portable OR, in chunks of ``max_composite_keys``."""
    m = build(array_key_models)
    d = dialect("postgresql")
    info = info_of(m.Tagged)
    keys = [(i, [i, i + 1]) for i in range(1, 1201)]
    executed = key_matching_statements(info, keys, d)["close_versions"]
    assert len(executed) == 3
    for statement, params in executed:
        sql = str(compile_one(statement, params, d))
        assert "unnest" not in sql
        assert re.search(r"tagged_version\.path = ", sql), sql[:300]


def _in_list_sizes(sql: str) -> list[int]:
    sql = re.sub(r"%\((\w+)\)s", r":\1", sql)  # pyformat placeholders hold parentheses
    return [len(items.split(",")) for items in re.findall(r"\bIN \(([^()]*)\)", sql)]


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
@pytest.mark.parametrize("model", ["Article", "Line"])
def test_1500_keys_are_chunked_within_backend_limits(
    m: SimpleNamespace, dialect_name: str, model: str
) -> None:
    """Key lists fit every backend: at most 1000 IN items on Oracle (ORA-01795), at most
    2100 parameters on SQL Server, and every key is covered exactly once."""
    d = dialect(dialect_name)
    info = info_of(getattr(m, model))
    keys = sample_keys(info, 1500)
    width = len(keys[0])
    for step, executed in key_matching_statements(info, keys, d).items():
        assert executed, step
        covered: list[Any] = []
        for statement, params in executed:
            compiled = compile_one(statement, params, d)
            sql = str(compiled)
            assert_neutral(sql, f"{dialect_name} / {model} / {step}")
            assert len(compiled.params) <= PARAM_LIMITS[dialect_name], (step, len(compiled.params))
            if width == 1:
                sizes = _in_list_sizes(sql)
                assert len(sizes) == 1, sql[:300]
                assert sizes[0] <= IN_LIST_LIMITS.get(dialect_name, sizes[0])
            elif dialect_name == "oracle":
                assert sql.count("), (") < 1000, "ORA-01795: at most 1000 rows in an IN list"
            covered.extend(key_values(compiled))
        assert sorted(covered) == sorted(v for key in keys for v in key), step
        if dialect_name == "oracle":
            assert len(executed) == 2, "1500 keys need two IN lists of <= 1000 on Oracle"
        if dialect_name == "mssql" and width == 2:
            assert len(executed) >= 2, "3000 key parameters exceed SQL Server's 2100"


#: Key counts of the scaling test: one flush of up to 20,000 rows.
SCALES = (1_000, 2_000, 5_000, 10_000, 20_000)


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
@pytest.mark.parametrize("model", ["Article", "Line"])
def test_key_matching_grows_linearly(m: SimpleNamespace, dialect_name: str, model: str) -> None:
    """What one flush sends grows linearly with its keys: a statement per chunk of
    ``chunk_size`` keys (a constant), and per statement a size and a parameter count that
    are a constant plus a constant per key. Together with a shape each backend plans as a
    set (see test_composite_keys_are_matched_per_backend), planning is linear too."""
    d = dialect(dialect_name)
    info = info_of(getattr(m, model))
    width = len(info.version_primary_key)
    chunk = rules_for(d).chunk_size(width)
    per_key: dict[str, list[float]] = {}
    connectives: dict[str, set[int]] = {}
    for n in SCALES:
        keys = sample_keys(info, n)
        for step, executed in key_matching_statements(info, keys, d).items():
            # bounded chunks: no statement carries more than chunk_size keys
            assert len(executed) == -(-n // chunk), (step, n, len(executed))
            size = 0
            for statement, params in executed:
                compiled = compile_one(statement, params, d)
                sql = str(compiled)
                size += len(sql)
                assert len(key_values(compiled)) <= chunk * width
                assert len(compiled.params) <= chunk * width + 10, (step, n)
                # the predicate does not deepen with the keys: no AND/OR per key
                connectives.setdefault(step, set()).add(len(re.findall(r"\b(AND|OR)\b", sql)))
            per_key.setdefault(step, []).append(size / n)
    for step, counts in connectives.items():
        assert len(counts) == 1, (step, counts)
    for step, ratios in per_key.items():
        # characters per key: constant, not growing with n (a quadratic shape would double
        # it with every doubling of n); bind names grow by a digit now and then
        assert max(ratios[1:]) <= ratios[1] * 1.25, (step, ratios)


def test_postgresql_composite_key_statements_do_not_grow(m: SimpleNamespace) -> None:
    """PostgreSQL: the keys travel as one array per column; the SQL text is the same for
    1,000 and 20,000 keys (parsing and planning it does not depend on the keys)."""
    d = dialect("postgresql")
    info = info_of(m.Line)
    texts = {
        n: {
            step: [str(compile_one(s, p, d)) for s, p in executed]
            for step, executed in key_matching_statements(info, sample_keys(info, n), d).items()
        }
        for n in (1_000, 20_000)
    }
    assert texts[1_000] == texts[20_000]
    assert all(len(statements) == 1 for statements in texts[20_000].values())


# -- DDL -----------------------------------------------------------------------------

IDENTITY_DDL = {
    "postgresql": r"\bid BIGINT GENERATED (ALWAYS|BY DEFAULT)( ON NULL)? AS IDENTITY\b",
    "oracle": r"\bid NUMBER\(19\) GENERATED (ALWAYS|BY DEFAULT)( ON NULL)? AS IDENTITY\b",
    "mssql": r"\bid BIGINT NOT NULL IDENTITY\b",
    "mysql": r"\bid BIGINT NOT NULL AUTO_INCREMENT\b",
    # Only a column declared exactly INTEGER that is the sole primary key is SQLite's
    # auto-incrementing rowid alias.
    "sqlite": r"\bid INTEGER NOT NULL\b",
}


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_create_table_and_index_ddl(m: SimpleNamespace, dialect_name: str) -> None:
    d = dialect(dialect_name)
    transaction = versioning_manager.transaction_table
    assert transaction is not None
    version_tables = list(versioning_manager.version_table_map.values())
    assert {t.name for t in version_tables} == VERSION_TABLES
    for table in [*version_tables, transaction]:
        ddl = str(CreateTable(table).compile(dialect=d))
        assert_neutral(ddl, f"{dialect_name} / {table.name}")
        assert table.indexes, table.name
        for index in table.indexes:
            # SQLAlchemy raises IdentifierError if the name exceeds the dialect's limit.
            index_ddl = str(CreateIndex(index).compile(dialect=d))
            assert_neutral(index_ddl, f"{dialect_name} / {index.name}")
            assert index.name in index_ddl
        if table is transaction:
            assert re.search(IDENTITY_DDL[dialect_name], ddl), ddl
            assert re.search(r"PRIMARY KEY \(id\)", ddl), ddl
            if dialect_name == "sqlite":
                assert "BIGINT" not in ddl.split("issued_at")[0], ddl
        else:
            # A version row records values; it never generates or enforces them.
            for word in ("IDENTITY", "AUTO_INCREMENT", "AUTOINCREMENT", "DEFAULT", "UNIQUE"):
                assert word not in ddl.upper(), f"{word} in {ddl}"


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_create_all_never_creates_a_sequence(
    build: Callable[..., SimpleNamespace], dialect_name: str
) -> None:
    m = build(portable_models, user_cls="User")
    emitted: list[str] = []
    engine = sa.create_mock_engine(
        f"{dialect_name}://",
        lambda ddl, *a, **kw: emitted.append(str(ddl.compile(dialect=engine.dialect))),
    )
    if dialect_name == "mssql":
        # Learned from the server on connect; table comments need it.
        engine.dialect.default_schema_name = "dbo"
    m.metadata.create_all(engine, checkfirst=False)
    created = [s for s in emitted if re.match(r"\s*CREATE TABLE", s)]
    names = {t.name for t in our_tables()}
    assert sum(
        any(re.search(rf"TABLE [\"`\[]?{n}[\"`\]]?\s*\(", s) for n in names) for s in created
    ) == len(names)
    for statement in emitted:
        assert not re.search(r"\bCREATE\s+SEQUENCE\b", statement, re.I), statement
        assert not FORBIDDEN["sequence"].search(statement), statement
    for table in our_tables():
        for column in table.c:
            assert not isinstance(column.default, sa.Sequence), column
            assert not isinstance(column.server_default, sa.Sequence), column


# -- identifiers ---------------------------------------------------------------------


def _identifiers(table: sa.Table) -> list[str]:
    names = [table.name, *(c.name for c in table.c)]
    names += [i.name for i in table.indexes if isinstance(i.name, str)]
    names += [c.name for c in table.constraints if isinstance(c.name, str)]
    return names


def _size(name: str) -> int:
    return len(name.encode("utf-8"))


def test_generated_identifiers_fit_oracle(m: SimpleNamespace) -> None:
    long_version = versioning_manager.version_table_map[m.LongNamed.__table__]
    assert long_version.name == LONG_TABLE + "_version"
    assert _size(long_version.name) == ORACLE_IDENTIFIER_LIMIT
    for table in our_tables():
        for name in _identifiers(table):
            assert _size(name) <= ORACLE_IDENTIFIER_LIMIT, (table.name, name)
        index_names = [i.name for i in table.indexes]
        assert len(set(index_names)) == len(index_names)
    all_indexes = [i.name for t in our_tables() for i in t.indexes]
    assert len(set(all_indexes)) == len(all_indexes), "index names must be unique per schema"
    d = dialect("oracle")
    for table in our_tables():
        for index in table.indexes:
            CreateIndex(index).compile(dialect=d)


SHORT_NAMES_TABLE = "purchase_order_line"  # + "_version": 27 bytes


def short_models(Base: Any) -> dict[str, Any]:
    class PurchaseOrderLine(Base):
        __versioned__ = {}
        __tablename__ = SHORT_NAMES_TABLE
        order_id = sa.Column(sa.Integer, primary_key=True)
        line_no = sa.Column(sa.Integer, primary_key=True)
        quantity = sa.Column(sa.Integer)

    class ShortNote(Base):
        __versioned__ = {"strategy": "subquery"}
        __tablename__ = "purchase_order_note"
        id = sa.Column(sa.Integer, primary_key=True)

    return locals()


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_max_identifier_length_30(build: Callable[..., SimpleNamespace], dialect_name: str) -> None:
    build(short_models, options={"max_identifier_length": 30})
    tables = list(versioning_manager.version_table_map.values())
    assert len(tables) == 2
    index_names = [i.name for t in tables for i in t.indexes]
    # the natural names ("ix_purchase_order_line_version_end_transaction_id") are longer
    assert any(len(f"ix_{t.name}_transaction_id") > 30 for t in tables)
    assert len(index_names) == 5
    assert len(set(index_names)) == len(index_names)
    for table in tables:
        assert _size(table.name) <= 30
        for index in table.indexes:
            assert isinstance(index.name, str) and _size(index.name) <= 30, index.name
    d = dialect(dialect_name)
    d.max_identifier_length = 30
    for table in tables:
        assert_neutral(str(CreateTable(table).compile(dialect=d)), table.name)
        for index in table.indexes:
            # raises IdentifierError when a name is longer than the dialect allows
            CreateIndex(index).compile(dialect=d)


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_rows_read_before_a_delete_are_locked(m: SimpleNamespace, dialect_name: str) -> None:
    """The values of DELETE versions are read with a lock, so no concurrent transaction can
    change the rows between that read and the flush's DELETE (SQLite locks the database)."""
    d = dialect(dialect_name)
    info = info_of(m.Article)
    conn = RecordingConnection(d)
    writer.fetch_missing(conn, info, sample_keys(info, 3), info.columns, lock=True)
    ((statement, params),) = conn.executed
    sql = str(compile_one(statement, params, d))
    expected = {
        "sqlite": None,
        "mssql": r"WITH \(UPDLOCK, ROWLOCK\)",
    }.get(dialect_name, r"\bFOR UPDATE\b")
    if expected is None:
        assert not re.search(r"FOR UPDATE|UPDLOCK", sql), sql
    else:
        assert re.search(expected, sql), sql


# -- bulk statements and cascades (capture.py, cascades.py) --------------------------------

LOCKED = {"mssql": r"WITH \(UPDLOCK, ROWLOCK\)", "sqlite": None}


def assert_locked(sql: str, dialect_name: str, where: str) -> None:
    expected = LOCKED.get(dialect_name, r"\bFOR UPDATE\b")
    if expected is None:
        assert not re.search(r"FOR UPDATE|UPDLOCK", sql), f"{where}: {sql}"
    else:
        assert re.search(expected, sql), f"{where}: {sql}"


def cascade_models(Base: Any) -> dict[str, Any]:
    class Article(Base):
        __versioned__ = {}
        __tablename__ = "article"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        name = sa.Column(sa.Unicode(255), unique=True)
        content = sa.Column(sa.UnicodeText)

    class Comment(Base):
        __versioned__ = {}
        __tablename__ = "comment"
        id = sa.Column(sa.Integer, primary_key=True, autoincrement=True)
        article_id = sa.Column(sa.ForeignKey("article.id", ondelete="CASCADE"))
        text = sa.Column(sa.Unicode(100))

    class Line(Base):
        __versioned__ = {}
        __tablename__ = "order_line"
        order_id = sa.Column(sa.Integer, primary_key=True)
        line_no = sa.Column(sa.Integer, primary_key=True)
        article_id = sa.Column(sa.ForeignKey("article.id", ondelete="SET NULL"))
        quantity = sa.Column(sa.Integer)

    return locals()


def capture_statements(m: SimpleNamespace, d: Dialect) -> list[tuple[str, Any, Any]]:
    """The reads a Recorder runs before each kind of statement (the reads after it are
    ``fetch_missing`` calls, compiled above), and the statement it hands to SQLAlchemy."""
    from sqlalchemy_history.capture import Recorder

    session = Session()
    uow = UnitOfWork(versioning_manager, session.begin())
    article, line = m.Article, m.Line
    cases: dict[str, tuple[Any, Any]] = {
        "update where": (sa.update(article).where(article.name == "x").values(content="y"), None),
        "update joined where": (
            sa.update(line)
            .where(line.article_id == article.id, article.name == "x")
            .values(quantity=2),
            None,
        ),
        "update by key": (
            sa.update(article),
            [{"id": 1, "content": "a"}, {"id": 2, "content": "b"}],
        ),
        "delete where": (sa.delete(article).where(article.content.is_(None)), None),
        "delete composite": (sa.delete(line).where(line.order_id == 1), None),
        "insert": (sa.insert(article), [{"name": "a"}, {"name": "b"}]),
        "insert given keys": (sa.insert(line), [{"order_id": 1, "line_no": 1, "quantity": 1}]),
    }
    out: list[tuple[str, Any, Any]] = []
    for label, (statement, parameters) in cases.items():
        # canned rows: one row of each table, so that cascades are followed
        conn = RecordingConnection(d, rows=[(1, 1, 1, 1)])
        mapper = sa.inspect(statement.entity_description["entity"])
        recorder = Recorder(uow, session, conn, statement, parameters, mapper)
        uow._foreign_keys[conn] = True  # what the backend would answer
        to_run = recorder.prepare()
        out.extend((f"{label} read", s, p) for s, p in conn.executed)
        out.append((f"{label} statement", to_run, parameters))
    session.close()
    return out


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_capture_reads_are_dialect_neutral_and_locked(
    build: Callable[..., SimpleNamespace], dialect_name: str
) -> None:
    m = build(cascade_models)
    d = dialect(dialect_name)
    statements = capture_statements(m, d)
    labels = [label for label, _, _ in statements]
    # non-vacuous: each statement kind read what it needs first, cascades included
    for label in (
        "update where",
        "update joined where",
        "update by key",
        "delete where",
        "delete composite",
    ):
        assert f"{label} read" in labels, labels
    reads = [
        str(compile_one(s, p, d))
        for label, s, p in statements
        if label.startswith("delete where read")
    ]
    assert any(re.search(r"FROM \W?comment\b", sql) for sql in reads), reads  # CASCADE
    assert any("FROM order_line" in sql for sql in reads), reads  # ON DELETE SET NULL
    for label, statement, params in statements:
        if label.endswith("statement"):
            continue  # the application's statement: its own SQL, not ours
        sql = str(compile_one(statement, params, d))
        assert_neutral(sql, f"{dialect_name} / {label}")
        if not rules_for(d).row_values:
            assert not ROW_VALUE_IN.search(sql), f"{dialect_name} / {label}: {sql}"
        assert_locked(sql, dialect_name, f"{dialect_name} / {label}")


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_no_returning_is_added_where_the_backend_has_none(
    build: Callable[..., SimpleNamespace], dialect_name: str
) -> None:
    """Generated keys come back with RETURNING only where the backend has it; elsewhere
    the application's INSERT is sent as written (the keys are learned otherwise)."""
    m = build(cascade_models)
    for returning in (False, True):
        d = dialect(dialect_name, returning=returning)
        for label, statement, params in capture_statements(m, d):
            if label != "insert statement":
                continue
            sql = str(compile_one(statement, params, d))
            if not returning:
                assert not FORBIDDEN["RETURNING"].search(sql), sql
                assert not FORBIDDEN["OUTPUT inserted/deleted"].search(sql), sql


@pytest.mark.parametrize("dialect_name", list(DIALECTS))
def test_1500_children_are_read_within_backend_limits(
    build: Callable[..., SimpleNamespace], dialect_name: str
) -> None:
    from sqlalchemy_history import cascades

    build(cascade_models)
    d = dialect(dialect_name)
    conn = RecordingConnection(d)
    parent = versioning_manager.version_tables
    article = next(t for t in parent if t.name == "article")
    read = cascades.CascadeRead(versioning_manager, conn)
    read.follow(article, [{article.c.id: i} for i in range(1500)])
    assert len(conn.executed) >= 2  # the comment and order_line children, chunked
    for statement, params in conn.executed:
        compiled = compile_one(statement, params, d)
        sql = str(compiled)
        assert_neutral(sql, f"{dialect_name} / cascade read")
        assert_locked(sql, dialect_name, f"{dialect_name} / cascade read")
        assert len(compiled.params) <= PARAM_LIMITS[dialect_name]
        for size in _in_list_sizes(sql):
            assert size <= IN_LIST_LIMITS.get(dialect_name, size)


def test_learning_generated_keys_asks_the_backend_its_own_way() -> None:
    """SQLite: last_insert_rowid(); MySQL: LAST_INSERT_ID(), ROW_COUNT() and the
    auto-increment step; the other backends return keys with RETURNING / OUTPUT."""
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    expected = {
        "sqlite": r"SELECT last_insert_rowid\(\)",
        "mysql": r"SELECT last_insert_id\(\).*row_count\(\).*@@auto_increment_increment",
    }
    for name, pattern in expected.items():
        d = dialect(name)
        conn = RecordingConnection(d, rows=[(7, 2, 1)] if name == "mysql" else [(8,)])
        keys = rules_for(d).learn_generated_keys(conn, table, 2)  # type: ignore[arg-type]
        assert keys == [(7,), (8,)]
        ((statement, params),) = conn.executed
        assert re.search(pattern, str(compile_one(statement, params, d)), re.I | re.S)
    for name in ("postgresql", "mssql", "oracle"):
        assert not rules_for(dialect(name)).learns_generated_keys
