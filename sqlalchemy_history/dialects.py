"""Per-dialect differences, one small class per backend, each with the limitation it answers.

Everything else in the package emits the same Core SQL on every database. What differs is
how many primary keys fit in one statement, and how a NULL is typed in a ``UNION``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

#: Bind parameters we keep free in a statement for the values that are not keys.
_RESERVED_PARAMS = 10


class DialectRules:
    """Limits that decide how primary-key lists are chunked into statements."""

    #: Most expressions in one ``IN (...)`` list.
    max_in_items = 30_000
    #: Most bind parameters in one statement.
    max_params = 30_000
    #: Close previous versions by reading them first and updating by full primary key,
    #: instead of one range UPDATE (see MySQLRules).
    close_by_exact_key = False
    #: Match composite keys with a row-value ``(a, b) IN ((?, ?), ...)`` instead of
    #: ``(a = ? AND b = ?) OR ...``; off by default because SQL Server has no row values.
    row_values = False
    #: Write the NULLs that fill a ``UNION`` branch's missing columns as
    #: ``CAST(NULL AS <type>)``: PostgreSQL types a column that is NULL in both branches of
    #: a ``UNION`` as text, and the next branch's integer then fails to match it.
    typed_nulls = True

    def typed_null(self, type_: sa.types.TypeEngine[Any]) -> sa.ColumnElement[Any]:
        """A NULL of ``type_`` for a ``UNION`` branch (see ``typed_nulls``)."""
        if self.typed_nulls:
            return sa.cast(sa.null(), type_)
        return sa.type_coerce(sa.null(), type_)

    def chunk_size(self, key_width: int) -> int:
        """Return how many keys of ``key_width`` columns fit in one statement."""
        by_params = max(1, (self.max_params - _RESERVED_PARAMS) // max(1, key_width))
        return max(1, min(self.max_in_items, by_params))

    def key_chunks(
        self, columns: Sequence[sa.ColumnElement[Any]], keys: Sequence[tuple[Any, ...]]
    ) -> Iterator[sa.ColumnElement[bool]]:
        """Yield predicates matching ``keys`` on ``columns``, as few as the limits allow.

        One column: ``col IN (...)``. Several: ``(a = ? AND b = ?) OR (...)``; row-value
        ``IN`` is avoided because SQL Server has no row values.
        """
        size = self.chunk_size(len(columns))
        for start in range(0, len(keys), size):
            chunk = keys[start : start + size]
            if len(columns) == 1:
                yield columns[0].in_([key[0] for key in chunk])
            elif self.row_values:
                yield sa.tuple_(*columns).in_(list(chunk))
            else:
                yield sa.or_(*(sa.and_(*(c == v for c, v in zip(columns, key))) for key in chunk))


class OracleRules(DialectRules):
    # ORA-01795: maximum number of expressions in a list is 1000.
    max_in_items = 1000
    max_params = 32_000


class MSSQLRules(DialectRules):
    # SQL Server accepts at most 2100 parameters in one request.
    max_params = 2_000


class SQLiteRules(DialectRules):
    # SQLite before 3.32 limits a statement to 999 host parameters (SQLITE_MAX_VARIABLE_NUMBER).
    max_params = 32_000 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
    # Columns have no declared type in a UNION: a bare NULL fits any branch.
    typed_nulls = False


class PostgreSQLRules(DialectRules):
    # The wire protocol counts parameters in an int16 (asyncpg, psycopg 3 server-side binds).
    max_params = 32_000


class MySQLRules(DialectRules):
    # InnoDB under REPEATABLE READ (the default) takes next-key/gap locks for a range
    # UPDATE, even one that matches nothing: two transactions writing versions of new
    # objects lock the same gap and deadlock on each other's INSERT. Reading the open
    # versions (a consistent read, no locks) and closing them by their full primary key
    # takes record locks only.
    close_by_exact_key = True
    # MySQL/MariaDB evaluate a long OR of ANDs row by row (a 5,000-key close took seconds);
    # a row-value IN over the full primary key is a range lookup taking record locks only.
    row_values = True
    # Server-side prepared statements (asyncmy, mysqlconnector) allow 65535 placeholders.
    max_params = 60_000
    # MySQL's CAST knows a few target types only (no VARCHAR, TEXT, INTEGER: SQLAlchemy
    # drops such a CAST with a warning); a NULL column of a UNION takes the other branches'
    # type anyway.
    typed_nulls = False


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
