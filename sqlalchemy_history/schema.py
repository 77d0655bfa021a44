"""Data-migration helpers on version tables, usable with ``op.get_bind()`` in Alembic.

Each reads the table once, ordered by primary key and transaction, and writes one
executemany ``UPDATE``: no per-row round trips.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .writer import _KEY_PREFIX


def _key_columns(
    table: sa.Table, tx_column_name: str
) -> tuple[list[sa.Column[Any]], sa.Column[Any]]:
    pk = [c for c in table.primary_key.columns if c.name != tx_column_name]
    return pk, table.c[tx_column_name]


def update_end_tx_column(
    table: sa.Table,
    end_tx_column_name: str = "end_transaction_id",
    tx_column_name: str = "transaction_id",
    conn: Optional[Connection] = None,
) -> int:
    """Recompute ``end_transaction_id`` of every row of version table ``table``.

    Each version ends where the next version of the same object begins; the last one
    stays open (NULL). Returns the number of rows whose value changed.
    """
    if conn is None:
        raise TypeError("update_end_tx_column() needs conn=, e.g. op.get_bind()")
    pk, tx = _key_columns(table, tx_column_name)
    end = table.c[end_tx_column_name]
    rows = conn.execute(sa.select(*pk, tx, end).order_by(*pk, tx)).all()
    updates = []
    for index, row in enumerate(rows):
        key = tuple(row[: len(pk)])
        following = rows[index + 1] if index + 1 < len(rows) else None
        wanted = (
            following[len(pk)]
            if following is not None and tuple(following[: len(pk)]) == key
            else None
        )
        if row[len(pk) + 1] != wanted:
            updates.append(
                {
                    **{_KEY_PREFIX + c.key: v for c, v in zip(pk, key)},
                    _KEY_PREFIX + tx.key: row[len(pk)],
                    "_sah_value": wanted,
                }
            )
    if updates:
        conn.execute(
            table.update()
            .where(*(c == sa.bindparam(_KEY_PREFIX + c.key) for c in [*pk, tx]))
            .values({end: sa.bindparam("_sah_value")}),
            updates,
        )
    return len(updates)


def update_property_mod_flags(
    table: sa.Table,
    tracked_columns: Iterable[str],
    mod_suffix: str = "_mod",
    end_tx_column_name: str = "end_transaction_id",
    tx_column_name: str = "transaction_id",
    conn: Optional[Connection] = None,
) -> int:
    """Recompute ``<column>_mod`` flags: true where a version changed that column.

    The first version of an object has every flag true. Returns the rows updated.
    """
    if conn is None:
        raise TypeError("update_property_mod_flags() needs conn=, e.g. op.get_bind()")
    pk, tx = _key_columns(table, tx_column_name)
    tracked = list(tracked_columns)
    values = [table.c[name] for name in tracked]
    flags = [table.c[name + mod_suffix] for name in tracked]
    rows = conn.execute(sa.select(*pk, tx, *values, *flags).order_by(*pk, tx)).all()
    width = len(pk)
    updates = []
    previous = None
    for row in rows:
        key = tuple(row[:width])
        first = previous is None or tuple(previous[:width]) != key
        wanted = [
            first or row[width + 1 + i] != previous[width + 1 + i]  # type: ignore[index]
            for i in range(len(tracked))
        ]
        current = [row[width + 1 + len(tracked) + i] for i in range(len(tracked))]
        if [bool(c) if c is not None else None for c in current] != wanted:
            updates.append(
                {
                    **{_KEY_PREFIX + c.key: v for c, v in zip(pk, key)},
                    _KEY_PREFIX + tx.key: row[width],
                    **{f"_sah_flag_{i}": w for i, w in enumerate(wanted)},
                }
            )
        previous = row
    if updates:
        conn.execute(
            table.update()
            .where(*(c == sa.bindparam(_KEY_PREFIX + c.key) for c in [*pk, tx]))
            .values({f: sa.bindparam(f"_sah_flag_{i}") for i, f in enumerate(flags)}),
            updates,
        )
    return len(updates)
