"""Read what an INSERT, UPDATE or DELETE statement writes, before it runs (no SQL).

``capture`` records statements that bypass the unit of work; it needs to know, per table,
which rows a statement writes and which columns it sets. That is spread over the
statement's SET/VALUES clause, its parameters, its WHERE clause and, for ORM statements,
the mapper that turns attribute names into columns.

SQLAlchemy has no public accessor for the SET/VALUES clause of a DML construct, the
ON CONFLICT / ON DUPLICATE KEY clause of an upsert, or whether ``return_defaults()`` was
called: this module reads ``_values`` / ``_ordered_values`` (SQLAlchemy 2.0) /
``_multi_values`` / ``_post_values_clause`` / ``_return_defaults`` / ``_returning``, the
attributes SQLAlchemy's own ORM reads (``orm/bulk_persistence.py``), and nothing else
does. ``tests/test_statements.py`` pins each of them, so a SQLAlchemy release that renames
one fails there, not in a user's flush.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, Union

import sqlalchemy as sa
from sqlalchemy.orm import ColumnProperty, Mapper
from sqlalchemy.orm.attributes import QueryableAttribute
from sqlalchemy.sql import operators
from sqlalchemy.sql.dml import Delete, Insert, Update, UpdateBase
from sqlalchemy.sql.elements import BinaryExpression, BindParameter, BooleanClauseList

from .exc import VersioningError

#: A parameter set or a VALUES row, by parent column.
Row = dict[sa.Column[Any], Any]

DML = Union[Insert, Update, Delete]


def same_property(mapper: Mapper[Any], column: Any, other: Any) -> bool:
    """Return whether one attribute of ``mapper`` maps both columns (the key columns of
    the tables of a joined-inheritance mapper)."""
    if column is other:
        return True
    try:
        return mapper.get_property_by_column(column) is mapper.get_property_by_column(other)
    except sa.orm.exc.UnmappedColumnError:
        return False


def same_columns(a: Sequence[sa.Column[Any]], b: Sequence[sa.Column[Any]]) -> bool:
    """Compare column lists by identity (``==`` on columns builds SQL)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _plain(column: Any) -> Any:
    """The ``Table`` column behind an (ORM-annotated) column expression."""
    found = getattr(column, "_deannotate", None)
    return found() if found is not None else column


def target_table(statement: UpdateBase) -> sa.Table:
    """Return the table a DML statement names (``update(Article)`` -> ``article``)."""
    table = _plain(statement.table)
    if not isinstance(table, sa.Table):
        raise VersioningError(
            f"cannot record a {type(statement).__name__.upper()} on {table!r}: versioning "
            f"records statements on tables and mapped classes only."
        )
    return table


@dataclasses.dataclass(frozen=True)
class Subject:
    """Turns the keys a statement uses (attribute names, column keys, attributes,
    columns) into the parent columns they write."""

    table: sa.Table
    #: The mapper of an ORM statement; ``None`` for a Core statement on a table.
    mapper: Optional[Mapper[Any]] = None

    @property
    def tables(self) -> list[sa.Table]:
        """Tables the statement may write (every table of a joined-inheritance mapper)."""
        if self.mapper is None:
            return [self.table]
        return [t for t in self.mapper.tables if isinstance(t, sa.Table)]

    def columns(self, key: Any) -> list[sa.Column[Any]]:
        """Return the columns ``key`` writes (several for a joined-inheritance key)."""
        if isinstance(key, QueryableAttribute):
            key = key.key
        if isinstance(key, str):
            if self.mapper is not None:
                prop = self.mapper.attrs.get(key)
                if isinstance(prop, ColumnProperty):
                    return [c for c in prop.columns if isinstance(c, sa.Column)]
            column = self.table.c.get(key)
            if column is None and self.mapper is not None:
                for table in self.tables:
                    column = table.c.get(key)
                    if column is not None:
                        break
            return [column] if column is not None else []
        column = _plain(key)
        if isinstance(column, sa.Column):
            if self.mapper is not None and column.table in self.tables:
                try:
                    prop = self.mapper.get_property_by_column(column)
                except sa.orm.exc.UnmappedColumnError:
                    return [column]
                if isinstance(prop, ColumnProperty):
                    return [c for c in prop.columns if isinstance(c, sa.Column)]
            return [column]
        return []

    def row(self, values: Mapping[Any, Any]) -> Row:
        """Turn one parameter set (or VALUES row) into values by parent column."""
        row: Row = {}
        for key, value in values.items():
            for column in self.columns(key):
                row.setdefault(column, value)
        return row


def set_clause(statement: Union[Insert, Update]) -> list[tuple[Any, Any]]:
    """Return the ``(key, value)`` pairs of an UPDATE's SET clause or a one-row INSERT's
    VALUES clause, as given to ``values()`` / ``ordered_values()``."""
    values = getattr(statement, "_values", None)
    if values:
        return list(values.items())
    ordered = getattr(statement, "_ordered_values", None)  # SQLAlchemy 2.0
    return list(ordered or ())


def multi_values(statement: Insert) -> list[dict[Any, Any]]:
    """Return the rows of ``insert().values([{...}, {...}])`` (empty for other forms).

    As SQLAlchemy renders them: the first row names the columns; a key only a later row
    has is ignored, a key it lacks takes the column's default.
    """
    rows: list[dict[Any, Any]] = []
    for group in getattr(statement, "_multi_values", ()) or ():
        for row in group:
            if not isinstance(row, Mapping):
                columns = list(statement.table.c)
                row = dict(zip(columns, row))
            rows.append(dict(row))
    if rows:
        named = list(rows[0])
        rows = [{k: row[k] for k in named if k in row} for row in rows]
    return rows


def is_upsert(statement: Insert) -> bool:
    """Return whether an INSERT may leave existing rows in place or change them instead of
    inserting: ON CONFLICT / ON DUPLICATE KEY UPDATE, or a prefix such as MySQL's
    ``INSERT IGNORE`` and SQLite's ``INSERT OR REPLACE`` / ``OR IGNORE``."""
    if getattr(statement, "_post_values_clause", None) is not None:
        return True
    prefixes = " ".join(str(p) for p, _ in getattr(statement, "_prefixes", ()))
    return bool(re.search(r"\b(IGNORE|REPLACE)\b", prefixes, re.I))


def fetches_defaults(statement: UpdateBase) -> bool:
    """Return whether the statement already asks for RETURNING or ``return_defaults()``."""
    return bool(
        getattr(statement, "_return_defaults", False) or getattr(statement, "_returning", ())
    )


def inserts_from_select(statement: Insert) -> bool:
    """Return whether the statement is ``INSERT ... SELECT`` (``from_select()``)."""
    return statement.select is not None


def is_value(value: Any) -> bool:
    """Return whether ``value`` is a Python value (not a SQL expression to evaluate)."""
    if isinstance(value, BindParameter):
        return value.callable is None
    return not isinstance(value, sa.ClauseElement)


def python_value(value: Any) -> Any:
    """The Python value of a literal or bound parameter given to ``values()``."""
    if isinstance(value, BindParameter):
        return value.effective_value
    return value


def key_binds(
    where: Optional[sa.ColumnElement[Any]], key: Sequence[sa.Column[Any]]
) -> Optional[list[str]]:
    """Return the bind parameter names that give each key column in ``where``.

    For an executemany UPDATE/DELETE whose WHERE clause contains ``pk_col = :name`` for
    every key column, ANDed with anything else (the shape of SQLAlchemy's bulk UPDATE by
    primary key and of the usual Core executemany): then each parameter set names its row.
    ``None`` when the WHERE clause has another shape.
    """
    if where is None:
        return None
    terms: list[Any] = []
    pending: list[Any] = [where]
    while pending:
        term = pending.pop()
        if isinstance(term, BooleanClauseList) and term.operator is operators.and_:
            pending.extend(term.clauses)
        else:
            terms.append(term)
    found: dict[sa.Column[Any], str] = {}
    for term in terms:
        if not isinstance(term, BinaryExpression) or term.operator is not operators.eq:
            continue
        for column, other in ((term.left, term.right), (term.right, term.left)):
            column = _plain(column)
            if isinstance(column, sa.Column) and isinstance(other, BindParameter):
                found.setdefault(column, other.key)
    names = [found.get(column) for column in key]
    if any(name is None for name in names):
        return None
    return [str(name) for name in names]


def parameter_sets(parameters: Any) -> list[Mapping[str, Any]]:
    """Return the parameter sets of an execution (one dict, a list of dicts, or none)."""
    if not parameters:
        return []
    if isinstance(parameters, Mapping):
        return [parameters]
    return [p for p in parameters if isinstance(p, Mapping)]


def unique_keys(table: sa.Table) -> list[tuple[sa.Column[Any], ...]]:
    """Return the table's primary key and every unique constraint or index, as column
    tuples: the keys by which an upsert may find an existing row."""
    found: list[tuple[sa.Column[Any], ...]] = []
    if table.primary_key.columns:
        found.append(tuple(table.primary_key.columns))
    for constraint in table.constraints:
        if isinstance(constraint, sa.UniqueConstraint) and constraint.columns:
            found.append(tuple(constraint.columns))
    for index in table.indexes:
        if index.unique and all(isinstance(c, sa.Column) for c in index.expressions):
            found.append(tuple(index.columns))
    for column in table.columns:
        if column.unique:
            found.append((column,))
    unique: list[tuple[sa.Column[Any], ...]] = []
    for columns in found:
        if columns not in unique:
            unique.append(columns)
    return unique


def given(
    rows: Iterable[Row], columns: Sequence[sa.Column[Any]]
) -> Optional[list[tuple[Any, ...]]]:
    """Return each row's values of ``columns`` if every row gives them as plain values."""
    values: list[tuple[Any, ...]] = []
    for row in rows:
        if not all(c in row and is_value(row[c]) for c in columns):
            return None
        value = tuple(python_value(row[c]) for c in columns)
        if any(v is None for v in value):
            return None
        values.append(value)
    return values
