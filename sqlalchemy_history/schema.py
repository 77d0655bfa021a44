"""Data-migration helpers under SQLAlchemy-History's names, usable with ``op.get_bind()``.

Both delegate to ``sqlalchemy_history.maintenance`` (also exposed as
``sqlalchemy_history.alembic``): one set-based ``UPDATE`` per version table, whatever the
number of rows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from . import maintenance
from .alembic import _connection


def _need(conn: Any, name: str) -> Connection:
    """Return the connection to work on: ``conn`` (a Connection, a Session or Alembic's
    ``op``), or, as in SQLAlchemy-History, the bind of the running Alembic migration."""
    if conn is None:
        with contextlib.suppress(ImportError):
            from alembic import op as conn
    if conn is None or isinstance(conn, (Session, sa.Engine)) or hasattr(conn, "get_bind"):
        try:
            connection = _connection(conn)
        except (AttributeError, NameError, TypeError):
            # alembic.op outside a migration: NameError ("the proxy object has not yet been
            # established") or, after one ran, AttributeError; TypeError: an Engine or None.
            connection = None
        # alembic.op keeps the bind of the last migration run in this process, closed.
        if connection is None or connection.closed:
            raise TypeError(
                f"{name}() needs conn=: a Connection, a Session or Alembic's op (inside a "
                f"migration conn may be left out), got {conn!r}."
            )
        return connection
    return conn  # type: ignore[no-any-return]


def update_end_tx_column(
    table: sa.Table,
    end_tx_column_name: str = "end_transaction_id",
    tx_column_name: str = "transaction_id",
    conn: Any = None,
) -> int:
    """Recompute ``end_transaction_id`` of every row of version table ``table``.

    Each version ends where the next version of the same object (by transaction id)
    begins; the last one stays open (NULL). Returns the number of rows whose value changed.
    """
    return maintenance.rebuild_end_transaction_ids(
        _need(conn, "update_end_tx_column"),
        table,
        transaction_column_name=tx_column_name,
        end_transaction_column_name=end_tx_column_name,
    )


def update_property_mod_flags(
    table: sa.Table,
    tracked_columns: Iterable[str],
    mod_suffix: str = "_mod",
    end_tx_column_name: str = "end_transaction_id",
    tx_column_name: str = "transaction_id",
    conn: Any = None,
) -> int:
    """Recompute ``<column>_mod`` flags: true where a version changed that column.

    The first version of an object has every flag true. Returns the rows updated.
    """
    return maintenance.recompute_mod_flags(
        _need(conn, "update_property_mod_flags"),
        table,
        list(tracked_columns),
        transaction_column_name=tx_column_name,
        end_transaction_column_name=end_tx_column_name,
        mod_suffix=mod_suffix,
    )
