"""Per-dialect differences, one small class per backend, each with the limitation it answers.

Everything else in the package emits the same Core SQL on every database. What differs is
how a list of primary keys is matched (``DialectRules.key_chunks``) and how many keys fit
in one statement:

==========  ==========================================================================
backend     a composite key list (one column: ``col IN (...)`` everywhere)
==========  ==========================================================================
SQLite      ``(a, b) IN (SELECT * FROM (VALUES (?, ?), ...))``
PostgreSQL  ``(a, b) IN (SELECT ... FROM unnest(CAST(? AS INTEGER[]), ...))``
MySQL       ``(a, b) IN ((?, ?), ...)``
Oracle      ``(a, b) IN ((?, ?), ...)``, 1000 keys per statement
SQL Server  ``EXISTS (SELECT * FROM (VALUES (?, ?), ...) AS k (a, b) WHERE k.a = t.a ...)``
others      ``(a = ? AND b = ?) OR ...``, 500 keys per statement
==========  ==========================================================================

A single composite key is ``a = ? AND b = ?`` everywhere: a plain key lookup.

Each shape is planned in time linear in the number of keys, and every statement is
bounded (``chunk_size``), so no statement we emit takes long to parse or plan: PostgreSQL
cannot cancel a statement while it parses one (an OR of 20,000 ANDs ignored
``pg_cancel_backend`` for half an hour).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal

#: Bind parameters we keep free in a statement for the values that are not keys.
_RESERVED_PARAMS = 10


class DialectRules:
    """How one backend matches a list of primary keys, and how many fit in a statement."""

    #: Most expressions in one ``IN (...)`` list, and most keys matched by one statement.
    max_in_items = 30_000
    #: Most bind parameters in one statement.
    max_params = 30_000
    #: Most composite keys in one statement. The portable shape, ``(a = ? AND b = ?) OR
    #: ...``, is a tree one level deeper per key (SQLite stops at depth 1000), and
    #: PostgreSQL parses and plans it in quadratic time without answering a cancel
    #: request: bounded chunks keep each statement small.
    max_composite_keys = 500
    #: Close previous versions by reading them first and updating by full primary key,
    #: instead of one range UPDATE (see MySQLRules).
    close_by_exact_key = False
    #: Whether the backend has row values, ``(a, b) IN ((?, ?), ...)`` (SQL Server has not).
    row_values = False

    def chunk_size(self, key_width: int) -> int:
        """Return how many keys of ``key_width`` columns fit in one statement."""
        by_params = max(1, (self.max_params - _RESERVED_PARAMS) // max(1, key_width))
        size = min(self.max_in_items, by_params)
        return max(1, size if key_width == 1 else min(size, self.max_composite_keys))

    def key_chunks(
        self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> Iterator[sa.ColumnElement[bool]]:
        """Yield predicates matching ``keys`` on ``columns``, one per statement to run.

        A chunk holds ``chunk_size(len(columns))`` keys: all of them unless a backend limit
        (parameters, IN-list length, the size of an OR) forces more statements.
        """
        size = self.chunk_size(len(columns))
        for start in range(0, len(keys), size):
            chunk = keys[start : start + size]
            if len(columns) == 1:
                yield columns[0].in_([key[0] for key in chunk])
            elif len(chunk) == 1:
                # One object (the common flush): "a = ? AND b = ?" is a key lookup for any
                # planner; SQLite without statistics would rather scan another index than
                # look a one-row list up.
                yield sa.and_(*(c == v for c, v in zip(columns, chunk[0])))
            else:
                yield self.match_composite(columns, chunk)

    def match_composite(
        self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> sa.ColumnElement[bool]:
        """Return ``(a = ? AND b = ?) OR ...``: runs anywhere, fine for a few hundred keys."""
        return sa.or_(*(sa.and_(*(c == v for c, v in zip(columns, key))) for key in keys))


def _key_names(columns: Sequence[sa.ColumnElement[Any]]) -> list[str]:
    """Column names for a derived table of keys (ours: no quoting, no clash)."""
    return [f"key_{i}" for i in range(len(columns))]


class _RowValuesRules(DialectRules):
    """Backends with row values whose ``IN`` list of rows is planned as a set."""

    row_values = True
    max_composite_keys = DialectRules.max_in_items

    def match_composite(
        self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> sa.ColumnElement[bool]:
        """Return ``(a, b) IN ((?, ?), ...)`` (one expanding parameter)."""
        return sa.tuple_(*columns).in_(list(keys))


class OracleRules(_RowValuesRules):
    # ORA-01795: maximum number of expressions in a list is 1000 (a list of rows too).
    # Oracle has no VALUES list before 23ai: a row-value IN list it is, 1000 keys a statement.
    max_in_items = 1000
    max_composite_keys = 1000
    max_params = 32_000


class MSSQLRules(DialectRules):
    # SQL Server accepts at most 2100 parameters in one request.
    max_params = 2_000
    # Bounded by the parameters (1000 keys of two columns), not by the shape below.
    max_composite_keys = DialectRules.max_in_items

    def match_composite(
        self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> sa.ColumnElement[bool]:
        """Return ``EXISTS (SELECT * FROM (VALUES (?, ?), ...) AS k (a, b) WHERE k.a = t.a
        AND k.b = t.b)``.

        SQL Server has no row values; a table value constructor joined through EXISTS is a
        semi-join it plans as such.
        """
        names = _key_names(columns)
        listed = sa.values(*(sa.column(n, c.type) for n, c in zip(names, columns)))
        derived = listed.data(list(keys)).alias()
        return sa.exists().where(*(derived.c[n] == c for n, c in zip(names, columns)))


class _RowsInDerivedValues(sa.ColumnElement[bool]):
    """``(a, b) IN (SELECT * FROM (VALUES (?, ?), ...))`` (see SQLiteRules).

    The rows travel in one expanding tuple parameter, as for a row-value ``IN``: the
    statement is compiled (and cached) once, and only rendered with as many rows as given.
    """

    inherit_cache = True
    # What the statement cache keys on: SQLAlchemy declares this as a plain list.
    _traverse_internals = [  # noqa: RUF012
        ("columns", InternalTraversal.dp_clauseelement),
        ("rows", InternalTraversal.dp_clauseelement),
    ]
    type = sa.Boolean()
    # A predicate (like a comparison), not a boolean value: no "= 1" where booleans are ints.
    _is_implicitly_boolean = True

    def __init__(self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]):
        self.columns = sa.tuple_(*columns)
        # The expanding parameter SQLAlchemy builds for "(a, b) IN (...)", typed per column.
        self.rows = self.columns.in_(list(keys)).right


@compiles(_RowsInDerivedValues)
def _compile_rows_in_derived_values(
    element: _RowsInDerivedValues, compiler: SQLCompiler, **kw: Any
) -> str:
    if not compiler.dialect.tuple_in_values:
        raise sa.exc.CompileError(
            f"{compiler.dialect.name} does not render a row list as VALUES; "
            "this shape is for SQLite only"
        )
    columns = compiler.process(element.columns, **kw)
    # An expanding parameter renders in parentheses; a row list of a backend that has
    # ``tuple_in_values`` expands to "VALUES (?, ?), ...": "(VALUES (?, ?), ...)".
    rows = compiler.process(element.rows, **kw)
    return f"{columns} IN (SELECT * FROM {rows})"


class SQLiteRules(DialectRules):
    # SQLite before 3.32 limits a statement to 999 host parameters (SQLITE_MAX_VARIABLE_NUMBER).
    max_params = 32_000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
    # Row values arrived in SQLite 3.15; before, only the portable OR (500 keys a statement).
    row_values = sqlite3.sqlite_version_info >= (3, 15, 0)
    max_composite_keys = DialectRules.max_in_items if row_values else 500

    def match_composite(
        self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> sa.ColumnElement[bool]:
        """Return ``(a, b) IN (SELECT * FROM (VALUES (?, ?), ...))``.

        SQLite answers ``(a, b) IN (VALUES ...)`` (what SQLAlchemy renders for a row-value
        IN) by scanning the whole table; the same rows behind a subquery are looked up
        through the primary key index.
        """
        if not self.row_values:
            return super().match_composite(columns, keys)
        return _RowsInDerivedValues(columns, keys)


def _is_array(type_: Any) -> bool:
    return isinstance(type_, sa.ARRAY) or isinstance(getattr(type_, "impl", None), sa.ARRAY)


class PostgreSQLRules(DialectRules):
    # The wire protocol counts parameters in an int16 (asyncpg, psycopg 3 server-side binds).
    max_params = 32_000
    row_values = True

    def chunk_size(self, key_width: int) -> int:
        # Composite keys travel as one array per column, whatever their number.
        if key_width == 1:
            return super().chunk_size(key_width)
        return self.max_in_items

    def key_chunks(
        self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> Iterator[sa.ColumnElement[bool]]:
        if len(columns) > 1 and any(_is_array(c.type) for c in columns):
            # unnest() flattens an array of arrays: a key with a column of an array type
            # (rare) is matched the portable way, in its bounded chunks.
            return _DEFAULT.key_chunks(columns, keys)
        return super().key_chunks(columns, keys)

    def match_composite(
        self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> sa.ColumnElement[bool]:
        """Return ``(a, b) IN (SELECT anon_1.a, anon_1.b FROM unnest(CAST(:a AS INTEGER[]),
        CAST(:b AS VARCHAR(20)[])) AS anon_1 (a, b))``.

        PostgreSQL turns a row-value IN list into an OR of ANDs, which it parses and plans
        in quadratic time; the rows of ``unnest`` are joined like a table (a hash or
        index semi-join). One array parameter per key column: the statement is the same
        for any number of keys. The casts give each array its column's type, which a
        driver that sends untyped parameters (psycopg2) cannot.
        """
        arrays = [
            sa.cast(
                sa.bindparam(None, [key[i] for key in keys], type_=postgresql.ARRAY(c.type)),
                postgresql.ARRAY(c.type),
            )
            for i, c in enumerate(columns)
        ]
        rows = sa.func.unnest(*arrays).table_valued(*_key_names(columns)).render_derived()
        return sa.tuple_(*columns).in_(sa.select(*rows.c))


class MySQLRules(_RowValuesRules):
    # InnoDB under REPEATABLE READ (the default) takes next-key/gap locks for a range
    # UPDATE, even one that matches nothing: two transactions writing versions of new
    # objects lock the same gap and deadlock on each other's INSERT. Reading the open
    # versions (a consistent read, no locks) and closing them by their full primary key
    # takes record locks only.
    close_by_exact_key = True
    # MySQL/MariaDB evaluate a long OR of ANDs row by row (a 5,000-key close took seconds);
    # a row-value IN over the full primary key is a range lookup taking record locks only,
    # and MariaDB turns a long one in a SELECT into a join with a VALUES table
    # (in_predicate_conversion_threshold): linear in the number of keys.
    # Server-side prepared statements (asyncmy, mysqlconnector) allow 65535 placeholders.
    max_params = 60_000


_RULES: dict[str, DialectRules] = {
    "oracle": OracleRules(),
    "mssql": MSSQLRules(),
    "sqlite": SQLiteRules(),
    "postgresql": PostgreSQLRules(),
    "mysql": MySQLRules(),
    "mariadb": MySQLRules(),
}
_DEFAULT = DialectRules()


def rules_for(dialect: Dialect) -> DialectRules:
    """Return the rules for ``dialect`` (a conservative default for unknown dialects)."""
    return _RULES.get(dialect.name, _DEFAULT)


#: Execution options for our multi-row INSERTs: SQLAlchemy batches executemany INSERTs
#: ("insertmanyvalues") in pages of 1000 rows by default; a larger page lets only the
#: backend's own parameter limit (which SQLAlchemy always respects) split the batch, so
#: the statement count stays independent of the number of rows.
BATCH_EXECUTION_OPTIONS: dict[str, Any] = {"insertmanyvalues_page_size": 100_000}
