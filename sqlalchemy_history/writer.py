"""Turn one flush's recorded changes into Core statements on the flush connection.

Steps, per version table touched by the flush, in order:

1. fetch values the flush left unloaded (server defaults, onupdate, deferred columns):
   one ``SELECT`` per parent table, only when something is missing;
2. validity strategy: close the open versions of primary keys first written in this
   transaction: one set-based ``UPDATE``;
3. insert the new version rows: one executemany ``INSERT``;
4. rewrite rows this transaction already wrote in an earlier flush: one executemany
   ``UPDATE``.

Statements depend on the number of version tables, never on the number of rows (key lists
are chunked only where a backend's parameter limit forces it, see ``dialects.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .dialects import BATCH_EXECUTION_OPTIONS, rules_for
from .tables import VersionTable, copy_value

#: Bind parameter prefix for the WHERE clause of the in-place UPDATE, so that key values
#: and new column values can share one parameter dictionary.
_KEY_PREFIX = "_sah_key_"


def fetch_missing(
    connection: Connection,
    info: VersionTable,
    keys: Sequence[tuple[Any, ...]],
    columns: Iterable[sa.Column[Any]],
) -> dict[tuple[Any, ...], dict[sa.Column[Any], Any]]:
    """Read ``columns`` of the parent rows with primary keys ``keys``.

    Emits (chunked only past the backend's parameter limit)::

        SELECT article.id, article.updated_at FROM article WHERE article.id IN (...)
    """
    pk = info.primary_key
    wanted = [c for c in columns if c not in pk]
    result: dict[tuple[Any, ...], dict[sa.Column[Any], Any]] = {}
    if not keys:
        return result
    rules = rules_for(connection.dialect)
    for predicate in rules.key_chunks(pk, keys):
        for row in connection.execute(sa.select(*pk, *wanted).where(predicate)):
            key = tuple(row[: len(pk)])
            result[key] = dict(zip(wanted, row[len(pk) :]))
    return result


def fetch_from_history(
    connection: Connection,
    info: VersionTable,
    keys: Sequence[tuple[Any, ...]],
    columns: Iterable[sa.Column[Any]],
    transaction_id: int,
) -> dict[tuple[Any, ...], dict[sa.Column[Any], Any]]:
    """Read ``columns`` (parent columns) from the latest earlier version of each key.

    For rows the flush removed (an unlinked association row with a surrogate id): the
    parent row is gone, its last version still holds the values. Emits::

        SELECT article_tag_version.article_id, ..., article_tag_version.id
        FROM article_tag_version WHERE (...keys...) AND transaction_id != :tx
    """
    pk = info.version_primary_key
    tx = info.transaction_column
    wanted = [c for c in columns if c not in info.primary_key]
    copies = [info.columns[c] for c in wanted]
    latest: dict[tuple[Any, ...], tuple[Any, dict[sa.Column[Any], Any]]] = {}
    rules = rules_for(connection.dialect)
    for predicate in rules.key_chunks(pk, keys):
        statement = sa.select(*pk, tx, *copies).where(predicate, tx != transaction_id)
        for row in connection.execute(statement):
            key = tuple(row[: len(pk)])
            seen = latest.get(key)
            if seen is None or row[len(pk)] > seen[0]:
                latest[key] = (row[len(pk)], dict(zip(wanted, row[len(pk) + 1 :])))
    return {key: values for key, (_, values) in latest.items()}


def close_versions(
    connection: Connection,
    info: VersionTable,
    keys: Sequence[tuple[Any, ...]],
    transaction_id: int,
) -> None:
    """Close the open version of each primary key in ``keys`` (validity strategy).

    Emits::

        UPDATE article_version SET end_transaction_id = :tx
        WHERE article_version.end_transaction_id IS NULL
          AND article_version.transaction_id != :tx
          AND article_version.id IN (...)

    Where the dialect rules say ``close_by_exact_key`` (MySQL/MariaDB), first::

        SELECT id, transaction_id FROM article_version
        WHERE end_transaction_id IS NULL AND transaction_id != :tx AND id IN (...)

    then ``UPDATE ... WHERE end_transaction_id IS NULL AND id IN (<found>) AND
    transaction_id IN (<their transaction ids>)``. If the consistent read was stale (fewer
    rows closed than found), the range UPDATE runs too.
    """
    end = info.end_transaction_column
    if end is None or not keys:
        return
    tx = info.transaction_column
    pk = info.version_primary_key
    rules = rules_for(connection.dialect)
    if rules.close_by_exact_key:
        found: list[tuple[Any, ...]] = []
        for predicate in rules.key_chunks(pk, keys):
            statement = sa.select(*pk, tx).where(end.is_(None), tx != transaction_id, predicate)
            found.extend(tuple(row) for row in connection.execute(statement))
        closed = 0
        width = len(pk)
        size = rules.chunk_size(width + 1)
        for start in range(0, len(found), size):
            chunk = found[start : start + size]
            # "pk IN (...) AND transaction_id IN (...)": point lookups on the full primary
            # key (record locks); a row-value IN over (pk, transaction_id) made MariaDB
            # scan a secondary index instead.
            (keyed,) = rules.key_chunks(pk, [row[:width] for row in chunk])
            txs = sorted({row[width] for row in chunk})
            result = connection.execute(
                info.table.update()
                .where(end.is_(None), keyed, tx.in_(txs))
                .values({end: transaction_id})
            )
            closed += result.rowcount
        if closed == len(found):
            return
    for predicate in rules.key_chunks(pk, keys):
        connection.execute(
            info.table.update()
            .where(end.is_(None), tx != transaction_id, predicate)
            .values({end: transaction_id})
        )


def copy_versions(
    connection: Connection,
    info: VersionTable,
    keys: Sequence[tuple[Any, ...]],
    transaction_id: int,
    operation: int,
) -> None:
    """Write version rows straight from the parent rows, in one ``INSERT ... SELECT``.

    The values are what the database holds after the flush (server defaults, onupdate
    values, columns this session never loaded or loaded before another transaction
    changed them), and only the keys travel over the wire. Emits::

        INSERT INTO article_version (id, name, ..., transaction_id, end_transaction_id,
                                     operation_type)
        SELECT article.id, article.name, ..., :tx, NULL, :op FROM article
        WHERE article.id IN (...)
    """
    if not keys:
        return
    parents = list(info.columns)
    target = [info.columns[c] for c in parents] + [info.transaction_column]
    constants: list[sa.ColumnElement[Any]] = [sa.literal(transaction_id, sa.BigInteger())]
    end = info.end_transaction_column
    if end is not None:
        target.append(end)
        constants.append(sa.cast(sa.null(), sa.BigInteger()))
    target.append(info.operation_column)
    constants.append(sa.literal(operation, sa.SmallInteger()))
    rules = rules_for(connection.dialect)
    for predicate in rules.key_chunks(info.primary_key, keys):
        values = [copy_value(c, info.columns[c]) for c in parents]
        source = sa.select(*values, *constants).where(predicate)
        connection.execute(info.table.insert().from_select(target, source))


def insert_versions(connection: Connection, info: VersionTable, rows: list[dict[str, Any]]) -> None:
    """Insert version rows (dicts keyed by version column key) in one executemany."""
    if rows:
        connection.execute(info.table.insert().execution_options(**BATCH_EXECUTION_OPTIONS), rows)


def rewrite_versions(
    connection: Connection, info: VersionTable, rows: list[dict[str, Any]]
) -> None:
    """Overwrite rows this transaction already wrote, in one executemany ``UPDATE``.

    Emits::

        UPDATE article_version SET name=?, ..., operation_type=?
        WHERE article_version.id = ? AND article_version.transaction_id = ?
    """
    if not rows:
        return
    key_columns = [*info.version_primary_key, info.transaction_column]
    value_keys = [k for k in rows[0] if k not in {c.key for c in key_columns}]
    statement = (
        info.table.update()
        .where(*(c == sa.bindparam(_KEY_PREFIX + c.key) for c in key_columns))
        .values({info.table.c[k]: sa.bindparam(k) for k in value_keys})
    )
    params = [
        {
            **{k: row[k] for k in value_keys},
            **{_KEY_PREFIX + c.key: row[c.key] for c in key_columns},
        }
        for row in rows
    ]
    connection.execute(statement, params)
