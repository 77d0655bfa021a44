"""Turn one flush's recorded changes into Core statements on the flush connection.

Steps, per version table touched by the flush, in order (``UnitOfWork._write`` drives them):

1. rows this transaction already wrote in an earlier flush are deleted, to be written
   again from what the database now holds (``delete_own_versions``);
2. INSERT/UPDATE versions are copied from the parent rows (``copy_versions``:
   ``INSERT ... SELECT``), so they hold what the database holds;
3. DELETE versions and association links are inserted from values read before the rows
   disappeared (``insert_versions``: one executemany);
4. validity strategy: the previous versions of keys first written in this transaction are
   closed (``close_versions``: one set-based ``UPDATE``);
5. only for keys first written after the transaction id was taken: whether another writer
   committed a newer version meanwhile (``newest_other_version``); if so the transaction
   moves to a fresh id (``move_versions``), so that version order stays commit order.

Statements depend on the number of version tables, never on the number of rows (key lists
are chunked only where a backend's parameter limit forces it, see ``dialects.py``).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .dialects import BATCH_EXECUTION_OPTIONS, KeyNormalizer, rules_for
from .tables import VersionTable, copy_value

#: Bind parameter prefix for the WHERE clause of the in-place UPDATE, so that key values
#: and new column values can share one parameter dictionary.
_KEY_PREFIX = "_sah_key_"

#: Bound parameters of the prepared statements below.
_KEYS, _KEY, _TX, _OP = "sah_keys", "sah_key", "sah_tx", "sah_op"

#: Statements built once per table and shape, then only executed: building a Core
#: statement and its cache key costs more Python time than a one-row flush spends in the
#: database. Keyed weakly by table, so models built again (tests) leave nothing behind.
_prepared: weakref.WeakKeyDictionary[sa.Table, dict[Hashable, Any]] = weakref.WeakKeyDictionary()


def _prepare(table: sa.Table, shape: Hashable, build: Callable[[], Any]) -> Any:
    """Return the statement ``build()`` makes for ``table`` and ``shape``, built once.

    (Two threads may build the same statement at once; either result is the same.)
    """
    statements = _prepared.get(table)
    if statements is None:
        statements = _prepared.setdefault(table, {})
    statement = statements.get(shape)
    if statement is None:
        statement = statements[shape] = build()
    return statement


def _by_keys(
    connection: Connection,
    table: sa.Table,
    shape: Hashable,
    columns: Sequence[sa.ColumnElement[Any]],
    keys: Sequence[tuple[Any, ...]],
    build: Callable[[sa.ColumnElement[bool]], Any],
    parameters: Optional[Mapping[str, Any]] = None,
) -> Iterator[Any]:
    """Run ``build(predicate)`` for ``keys`` on ``columns``, yielding each result.

    One-column keys: one statement, prepared once per ``table`` and ``shape``, whose
    ``col IN (...)`` is an expanding parameter filled per chunk (``col = :key`` for one
    key: the commonest flush, spared the expansion). Composite keys take the dialect's
    shape (``dialects.key_chunks``), built per chunk.
    """
    rules = rules_for(connection.dialect)
    given = dict(parameters or {})
    if len(columns) == 1 and len(keys) == 1:
        one = (shape, connection.dialect.name, 1)
        statement = _prepare(table, one, lambda: build(columns[0] == sa.bindparam(_KEY)))
        yield connection.execute(statement, {**given, _KEY: keys[0][0]})
        return
    if len(columns) == 1:
        key = (shape, connection.dialect.name)
        statement = _prepare(
            table, key, lambda: build(columns[0].in_(sa.bindparam(_KEYS, expanding=True)))
        )
        size = rules.chunk_size(1)
        for start in range(0, len(keys), size):
            values = [k[0] for k in keys[start : start + size]]
            yield connection.execute(statement, {**given, _KEYS: values})
        return
    for predicate in rules.key_chunks(columns, keys):
        yield connection.execute(build(predicate), given or None)


def fetch_missing(
    connection: Connection,
    info: VersionTable,
    keys: Sequence[tuple[Any, ...]],
    columns: Iterable[sa.Column[Any]],
    lock: bool = False,
) -> dict[tuple[Any, ...], dict[sa.Column[Any], Any]]:
    """Read ``columns`` of the parent rows with primary keys ``keys``.

    Emits (chunked only past the backend's parameter limit)::

        SELECT article.id, article.updated_at FROM article WHERE article.id IN (...)

    :param lock: read the latest committed rows and lock them until the transaction ends
        (``FOR UPDATE``, or the backend's equivalent in ``dialects.py``): for rows about to
        be deleted or re-keyed, whose values must be exactly the ones removed.
    """
    pk = info.primary_key
    wanted = [c for c in columns if c not in pk]
    found = fetch_rows(connection, info.parent, [*pk, *wanted], pk, keys, lock)
    return {row[: len(pk)]: dict(zip(wanted, row[len(pk) :])) for row in found}


def fetch_rows(
    connection: Connection,
    table: sa.Table,
    columns: Sequence[sa.Column[Any]],
    match: Sequence[sa.Column[Any]],
    values: Sequence[tuple[Any, ...]],
    lock: bool = False,
) -> list[tuple[Any, ...]]:
    """Read ``columns`` of the rows whose ``match`` columns hold one of ``values``.

    For rows found by something other than their key: children by their foreign key,
    rows an upsert may change by a unique key. Emits (chunked past parameter limits)::

        SELECT comment.id, comment.article_id, ... FROM comment
        WHERE comment.article_id IN (...) [FOR UPDATE]
    """
    found: list[tuple[Any, ...]] = []
    if not values:
        return found
    rules = rules_for(connection.dialect)

    def build(predicate: sa.ColumnElement[bool]) -> Any:
        statement = sa.select(*columns).where(predicate)
        return rules.lock_rows(statement, table) if lock else statement

    shape = ("fetch", tuple(columns), tuple(match), lock)
    for result in _by_keys(connection, table, shape, match, values, build):
        found.extend(tuple(row) for row in result)
    return found


def fetch_where(
    connection: Connection,
    table: sa.Table,
    columns: Sequence[sa.Column[Any]],
    where: Optional[sa.ColumnElement[bool]],
    lock: bool = False,
    parameters: Optional[Mapping[str, Any]] = None,
) -> list[tuple[Any, ...]]:
    """Read ``columns`` of the rows of ``table`` an UPDATE or DELETE ``where`` matches.

    The statement's own WHERE clause (with the statement's parameters for its bound
    parameters), so the rows are the ones the statement is about to change; other tables
    it names join as they do in the statement. Emits::

        SELECT article.id, article.name FROM article WHERE <the statement's WHERE>
        [FOR UPDATE]
    """
    statement = sa.select(*columns).select_from(table)
    if where is not None:
        statement = statement.where(where)
    if lock:
        statement = rules_for(connection.dialect).lock_rows(statement, table)
    result = connection.execute(statement, dict(parameters) if parameters else None)
    return [tuple(row) for row in result]


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

    def build(predicate: sa.ColumnElement[bool]) -> Any:
        return sa.select(*pk, tx, *copies).where(predicate, tx != sa.bindparam(_TX))

    shape = ("history", tuple(copies))
    parameters = {_TX: transaction_id}
    for result in _by_keys(connection, info.table, shape, pk, keys, build, parameters):
        for row in result:
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
    normalize: Optional[KeyNormalizer] = None,
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
    transaction_id IN (<their transaction ids>)``: record locks only. That read is a
    consistent read of the transaction's snapshot, which misses versions committed after
    the snapshot was taken (a row created by another transaction and then locked with
    ``SELECT ... FOR UPDATE`` by this one). So the range UPDATE above still runs for keys
    whose open version the read did not find, or did not close (it was stale), and only
    for those.

    :param normalize: how the database compares keys (collations), to match found keys.
    """
    end = info.end_transaction_column
    if end is None or not keys:
        return
    tx = info.transaction_column
    pk = info.version_primary_key
    rules = rules_for(connection.dialect)
    table = info.table
    current = {_TX: transaction_id}
    unsure: Sequence[tuple[Any, ...]] = keys
    if rules.close_by_exact_key:
        found: list[tuple[Any, ...]] = []

        def read(predicate: sa.ColumnElement[bool]) -> Any:
            open_ = rules.is_open(end)
            return sa.select(*pk, tx).where(open_, tx != sa.bindparam(_TX), predicate)

        for result in _by_keys(connection, table, "open", pk, keys, read, current):
            found.extend(tuple(row) for row in result)
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
            same = normalize or (lambda key: key)
            seen = {same(row[:width]) for row in found}
            unsure = [key for key in keys if same(key) not in seen]

    def close(predicate: sa.ColumnElement[bool]) -> Any:
        return (
            table.update()
            .where(rules.is_open(end), tx != sa.bindparam(_TX), predicate)
            .values({end: sa.bindparam(_TX)})
        )

    for _ in _by_keys(connection, table, "close", pk, unsure, close, current):
        pass


def newest_other_version(
    connection: Connection,
    info: VersionTable,
    keys: Sequence[tuple[Any, ...]],
    transaction_id: int,
) -> Optional[int]:
    """Return the highest transaction id above ``transaction_id`` among other versions of
    ``keys``, or ``None``: a writer that took its id later but committed first.

    Validity strategy: the versions this transaction closed tell it (rows the transaction
    changed are visible to it under every isolation level)::

        SELECT max(transaction_id) FROM article_version
        WHERE end_transaction_id = :tx AND transaction_id > :tx

    Subquery strategy, reading the latest committed rows (``dialects.read_latest``)::

        SELECT max(transaction_id) FROM article_version
        WHERE id IN (...) AND transaction_id > :tx
    """
    if not keys:
        return None
    tx = info.transaction_column
    end = info.end_transaction_column
    newest: Optional[int] = None
    current = {_TX: transaction_id}
    if end is not None:
        statement = _prepare(
            info.table,
            "newest closed",
            lambda: sa.select(sa.func.max(tx)).where(
                end == sa.bindparam(_TX), tx > sa.bindparam(_TX)
            ),
        )
        newest = connection.execute(statement, current).scalar()
    else:
        rules = rules_for(connection.dialect)

        def build(predicate: sa.ColumnElement[bool]) -> Any:
            statement = sa.select(sa.func.max(tx)).where(predicate, tx > sa.bindparam(_TX))
            return rules.read_latest(statement, info.table)

        pk = info.version_primary_key
        for result in _by_keys(connection, info.table, "newest", pk, keys, build, current):
            found = result.scalar()
            if found is not None and (newest is None or found > newest):
                newest = found
    return None if newest is None else int(newest)


def move_versions(connection: Connection, info: VersionTable, old: int, new: int) -> None:
    """Give the rows of transaction ``old`` in ``info``'s version table the id ``new``.

    Emits::

        UPDATE article_version SET transaction_id = :new WHERE transaction_id = :old
        UPDATE article_version SET end_transaction_id = :new WHERE end_transaction_id = :old
    """
    tx = info.transaction_column
    connection.execute(info.table.update().where(tx == old).values({tx: new}))
    end = info.end_transaction_column
    if end is not None:
        connection.execute(info.table.update().where(end == old).values({end: new}))


def delete_own_versions(
    connection: Connection,
    info: VersionTable,
    keys: Sequence[tuple[Any, ...]],
    transaction_id: int,
) -> None:
    """Delete the rows this transaction wrote for ``keys``, before writing them again.

    Emits::

        DELETE FROM article_version
        WHERE article_version.transaction_id = :tx AND article_version.id IN (...)
    """
    if not keys:
        return
    table = info.table

    def build(predicate: sa.ColumnElement[bool]) -> Any:
        return table.delete().where(info.transaction_column == sa.bindparam(_TX), predicate)

    current = {_TX: transaction_id}
    pk = info.version_primary_key
    for _ in _by_keys(connection, table, "delete own", pk, keys, build, current):
        pass


def copy_versions(
    connection: Connection,
    info: VersionTable,
    keys: Sequence[tuple[Any, ...]],
    transaction_id: int,
    operation: int,
    constants: Optional[Mapping[str, Any]] = None,
) -> None:
    """Write version rows straight from the parent rows, in one ``INSERT ... SELECT``.

    The values are what the database holds after the flush (server defaults, onupdate
    values, columns this session never loaded or loaded before another transaction
    changed them), and only the keys travel over the wire. Emits::

        INSERT INTO article_version (id, name, ..., transaction_id, end_transaction_id,
                                     operation_type)
        SELECT article.id, article.name, ..., :tx, NULL, :op FROM article
        WHERE article.id IN (...)

    :param constants: values for other version columns (by column key), the same for every
        row (a plugin's ``name_mod`` flags, say); they replace copied values.
    """
    if not keys:
        return
    extra = dict(constants or {})
    table = info.table

    def build(predicate: sa.ColumnElement[bool]) -> Any:
        parents = [c for c in info.columns if info.columns[c].key not in extra]
        target = [info.columns[c] for c in parents] + [info.transaction_column]
        values: list[sa.ColumnElement[Any]] = [sa.bindparam(_TX, type_=sa.BigInteger())]
        end = info.end_transaction_column
        if end is not None:
            target.append(end)
            values.append(sa.cast(sa.null(), sa.BigInteger()))
        target.append(info.operation_column)
        values.append(sa.bindparam(_OP, type_=sa.SmallInteger()))
        for key in extra:
            column = table.c[key]
            target.append(column)
            constant: sa.ColumnElement[Any] = sa.bindparam(f"sah_c_{key}", type_=column.type)
            # A typed parameter for drivers that prepare on the server (asyncpg); MySQL
            # has no CAST to a boolean type and needs none.
            if not isinstance(column.type, sa.Boolean):
                constant = sa.cast(constant, column.type)
            values.append(constant)
        copied = [copy_value(c, info.columns[c]) for c in parents]
        source = sa.select(*copied, *values).where(predicate)
        return table.insert().from_select(target, source)

    parameters = {_TX: transaction_id, _OP: operation}
    parameters.update({f"sah_c_{key}": value for key, value in extra.items()})
    shape = ("copy", tuple(sorted(extra)))
    for _ in _by_keys(connection, table, shape, info.primary_key, keys, build, parameters):
        pass


def insert_statement(table: sa.Table) -> Any:
    """``INSERT INTO <table>``, built once, for rows given as parameters (the transaction
    row: ``connection.execute(insert_statement(table), values)``)."""
    return _prepare(table, "insert", table.insert)


def insert_versions(connection: Connection, info: VersionTable, rows: list[dict[str, Any]]) -> None:
    """Insert version rows (dicts keyed by version column key) in one executemany."""
    if rows:
        connection.execute(info.table.insert().execution_options(**BATCH_EXECUTION_OPTIONS), rows)


def update_versions(connection: Connection, info: VersionTable, rows: list[dict[str, Any]]) -> None:
    """Set columns of rows this transaction wrote, in one executemany ``UPDATE``.

    For per-row values a plugin gives copied rows when they differ too much to group them
    into ``copy_versions`` constants. ``rows`` hold the key, the transaction id and the
    columns to set. Emits::

        UPDATE article_version SET name_mod=?, ...
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
