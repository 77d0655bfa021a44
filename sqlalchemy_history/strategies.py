"""Validity and subquery strategies: the read-side predicates, built in one place.

Write-side bookkeeping of the validity strategy (closing the previous version) is in
``writer.close_versions``; everything that *reads* history asks this module which rows are
"the version of this object valid at transaction T", "the previous one" and "the next one".

The point in time a temporal relationship reads at is ``relationship_at``: the version's
own transaction, unless the query binds ``AS_OF_PARAMETER`` (``temporal.as_of`` does), in
which case every relationship loaded by that query answers as of the bound transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa

from .operations import Operation
from .tables import VersionTable

#: Name of the bind parameter an ``as_of`` query sets to its transaction id; temporal
#: relationships read it (``relationship_at``). Starts with a letter: Oracle requires it.
AS_OF_PARAMETER = "sah_as_of_tx"


def relationship_at(local_transaction: sa.ColumnElement[Any]) -> sa.ColumnElement[Any]:
    """The transaction a temporal relationship answers as of.

    ``local_transaction`` is the transaction column of the version the relationship starts
    from; a query may bind ``AS_OF_PARAMETER`` to read every relationship it loads (lazily,
    with ``selectinload`` or joined) as of one transaction instead::

        coalesce(:sah_as_of_tx, article_version.transaction_id)

    Unbound, the parameter is NULL and each version answers as of its own transaction.
    """
    bound = sa.bindparam(AS_OF_PARAMETER, None, type_=sa.BigInteger())
    at: sa.ColumnElement[Any] = sa.func.coalesce(bound, local_transaction)
    return at


def _same_object(
    columns: Sequence[sa.ColumnElement[Any]], values: Sequence[Any]
) -> sa.ColumnElement[bool]:
    return sa.and_(*(c == v for c, v in zip(columns, values)))


def previous_version(
    info: VersionTable, pk: Sequence[Any], transaction_id: Any
) -> sa.ColumnElement[bool]:
    """Predicate selecting the version before the one written by ``transaction_id``.

    Validity: the row that transaction closed (no assumption that ids grow with time)::

        id = :id AND end_transaction_id = :tx

    Subquery::

        id = :id AND transaction_id = (SELECT max(transaction_id) ... WHERE
                                       id = :id AND transaction_id < :tx)
    """
    table = info.table
    keys = info.version_primary_key
    tx = info.transaction_column
    end = info.end_transaction_column
    if end is not None:
        return sa.and_(_same_object(keys, pk), end == transaction_id)
    inner = table.alias()
    inner_keys = [inner.c[c.key] for c in keys]
    latest = (
        sa.select(sa.func.max(inner.c[tx.key]))
        .where(_same_object(inner_keys, pk), inner.c[tx.key] < transaction_id)
        .scalar_subquery()
    )
    return sa.and_(_same_object(keys, pk), tx == latest)


def previous_of(info: VersionTable, current: sa.FromClause) -> sa.ColumnElement[bool]:
    """Join condition: the rows of ``info.table`` that are the version before ``current``'s.

    ``previous_version`` with the columns of ``current`` (an alias of the same table), plus
    ``transaction_id < current.transaction_id``: implied (SPEC §3, per row the ids follow
    commit order), and stated so that the lookup uses the primary key ``(id,
    transaction_id)``; with the ``end_transaction_id`` index SQLite joined every version
    closed by the same transaction instead (quadratic). Validity::

        article_version.id = cur.id AND article_version.end_transaction_id = cur.transaction_id
        AND article_version.transaction_id < cur.transaction_id
    """
    tx = current.c[info.transaction_column.key]
    pk = [current.c[c.key] for c in info.version_primary_key]
    return sa.and_(previous_version(info, pk, tx), info.transaction_column < tx)


def next_version(
    info: VersionTable, pk: Sequence[Any], transaction_id: Any
) -> sa.ColumnElement[bool]:
    """Predicate selecting the version after the one written by ``transaction_id``.

    Validity: the row written by the transaction that closed this one, read from the
    database (never from a possibly stale attribute)::

        id = :id AND transaction_id = (SELECT end_transaction_id ... WHERE
                                       id = :id AND transaction_id = :tx)

    Subquery: the smallest later ``transaction_id``.
    """
    table = info.table
    keys = info.version_primary_key
    tx = info.transaction_column
    end = info.end_transaction_column
    inner = table.alias()
    inner_keys = [inner.c[c.key] for c in keys]
    if end is not None:
        target = (
            sa.select(inner.c[end.key])
            .where(_same_object(inner_keys, pk), inner.c[tx.key] == transaction_id)
            .scalar_subquery()
        )
    else:
        target = (
            sa.select(sa.func.min(inner.c[tx.key]))
            .where(_same_object(inner_keys, pk), inner.c[tx.key] > transaction_id)
            .scalar_subquery()
        )
    return sa.and_(_same_object(keys, pk), tx == target)


def valid_at(
    info: VersionTable,
    transaction_id: Any,
    column: Callable[[sa.ColumnElement[Any]], sa.ColumnElement[Any]] = lambda c: c,
) -> sa.ColumnElement[bool]:
    """Predicate selecting, per object, the version valid at ``transaction_id``.

    Validity::

        transaction_id <= :tx AND (end_transaction_id > :tx OR end_transaction_id IS NULL)

    Subquery: ``transaction_id`` is the greatest one ``<= :tx`` for that primary key.
    Deleted objects are excluded (``operation_type != DELETE``).

    :param transaction_id: a value or a column (a relationship's local transaction id).
    :param column: wraps each column of ``info.table``; relationships pass ``remote``.
    """
    tx = column(info.transaction_column)
    end_column = info.end_transaction_column
    not_deleted = column(info.operation_column) != int(Operation.DELETE)
    if end_column is not None:
        end = column(end_column)
        return sa.and_(
            tx <= transaction_id, sa.or_(end > transaction_id, end.is_(None)), not_deleted
        )
    inner = info.table.alias()
    latest = (
        sa.select(sa.func.max(inner.c[info.transaction_column.key]))
        .where(
            *(inner.c[c.key] == column(c) for c in info.version_primary_key),
            inner.c[info.transaction_column.key] <= transaction_id,
        )
        # Correlate to every enclosing query (the local version table may be two levels
        # up, outside an EXISTS), never to our own alias.
        .correlate_except(inner)
        .scalar_subquery()
    )
    # "tx <= :tx" is implied by the subquery; stated too so that a relationship join always
    # has a plain comparison between its local and remote transaction columns.
    return sa.and_(tx <= transaction_id, tx == latest, not_deleted)


def earlier_versions(
    info: VersionTable, pk: Sequence[Any], transaction_id: Any
) -> sa.ColumnElement[bool]:
    """Predicate selecting the versions of one object written before ``transaction_id``."""
    return sa.and_(
        _same_object(info.version_primary_key, pk), info.transaction_column < transaction_id
    )
