"""Alembic integration: history helpers for migrations and an autogenerate hook.

Nothing here imports Alembic at module level: the helpers work from application code
too, with any ``Connection`` (Alembic is the optional extra ``sqlalchemy-history[alembic]``).

Autogenerate needs nothing from this module: version tables and the ``transaction`` table
join the models' MetaData as each versioned class is mapped, so an ``env.py`` with
``target_metadata = Base.metadata`` sees them as soon as the models are imported.

Data helpers, each a constant number of set-based statements per version table::

    from sqlalchemy_history.alembic import backfill, rebuild_end_transaction_ids

    def upgrade():
        op.create_table("article_version", ...)
        backfill(op, "article")                 # an INSERT version for every existing row
        rebuild_end_transaction_ids(op, "article")

A target is a versioned model (or its version class), a ``Table``, or the name of a parent
table, reflected from the database together with its version table; inside migrations
names are the safest choice, since the models may have moved on since the migration was
written.

Autogenerate hook, for ``context.configure(...)`` in ``env.py``:
``process_revision_directives`` leaves out ``drop_index`` for tables the same migration
drops, which MySQL/MariaDB refuse for an index a foreign key needs
(``transaction.user_id``) and which every database does anyway with ``DROP TABLE``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from . import maintenance
from .maintenance import Target

__all__ = [
    "backfill",
    "process_revision_directives",
    "rebuild_end_transaction_ids",
    "recompute_mod_flags",
    "vacuum",
]


def _connection(conn_or_op: Any) -> Connection:
    """Return the connection behind a ``Connection``, a ``Session`` or Alembic's ``op``."""
    if isinstance(conn_or_op, Connection):
        return conn_or_op
    if isinstance(conn_or_op, Session):
        return conn_or_op.connection()
    if isinstance(conn_or_op, sa.Engine):
        raise TypeError(
            "history helpers run inside your transaction: pass a Connection "
            "(with engine.begin() as conn: ...), a Session, or Alembic's op, not an Engine."
        )
    get_bind = getattr(conn_or_op, "get_bind", None)
    if callable(get_bind):
        bind = get_bind()
        if isinstance(bind, Connection):
            return bind
        raise TypeError(
            "this migration runs offline (alembic upgrade --sql): history helpers read "
            "and write rows, so they need a database connection; run the migration online."
        )
    raise TypeError(f"expected a Connection, a Session or Alembic's op, got {conn_or_op!r}.")


def rebuild_end_transaction_ids(
    conn_or_op: Any, target: Target, schema: Optional[str] = None, **names: str
) -> int:
    """Recompute ``end_transaction_id`` of ``target``'s versions (validity strategy).

    Use it after switching a table from the subquery to the validity strategy (add the
    column, then call this) or after editing history by hand. Each version ends where the
    next version of the same object, by transaction id, begins; the last stays open. One
    ``UPDATE`` per version table. Returns how many rows changed.

    :param names: for tables no model describes: ``transaction_column_name``,
        ``end_transaction_column_name``, ``operation_type_column_name``, ``table_name``.
    """
    return maintenance.rebuild_end_transaction_ids(_connection(conn_or_op), target, schema, **names)


def recompute_mod_flags(
    conn_or_op: Any,
    target: Target,
    columns: Optional[Iterable[str]] = None,
    schema: Optional[str] = None,
    **names: str,
) -> int:
    """Recompute the ``<column>_mod`` flags of ``target``'s versions.

    Use it after adding flag columns (switching the property-mod tracker on) or after
    editing history. A flag is true where its version changed the column against the
    version before it, and on an object's first version. One ``UPDATE`` per version table.

    :param columns: tracked column names; default: every column with a ``_mod`` twin.
    :returns: how many version rows changed.
    """
    return maintenance.recompute_mod_flags(
        _connection(conn_or_op), target, columns, schema, **names
    )


def backfill(
    conn_or_op: Any,
    *targets: Target,
    transaction_id: Optional[int] = None,
    transaction_values: Optional[Mapping[str, Any]] = None,
    values: Optional[Mapping[str, Any]] = None,
    transaction_table: Union[sa.Table, str, None] = None,
    schema: Optional[str] = None,
    **names: str,
) -> int:
    """Give every existing row of ``targets`` that has no version an INSERT version.

    Run it when versioning is switched on for a populated table, so that history starts
    with what the table held. All rows share ONE new transaction row (``issued_at`` now,
    plus ``transaction_values``, e.g. ``{"user_id": admin_id}``); pass ``transaction_id``
    to use an existing one. One ``INSERT ... SELECT`` per version table. Rows that
    already have a version are left alone, so running it twice adds nothing (and leaves
    no empty transaction row). Returns the number of version rows written.
    """
    return maintenance.backfill(
        _connection(conn_or_op),
        *targets,
        transaction_id=transaction_id,
        transaction_values=transaction_values,
        values=values,
        transaction_table=transaction_table,
        schema=schema,
        **names,
    )


def vacuum(conn_or_op: Any, target: Target, schema: Optional[str] = None, **names: str) -> int:
    """Delete ``target``'s UPDATE versions that repeat the version before them.

    The version before a removed one takes over its ``end_transaction_id``. Two
    statements per version table. Returns how many versions were removed.
    """
    return maintenance.vacuum_versions(_connection(conn_or_op), target, schema, **names)


# -- autogenerate hooks -------------------------------------------------------------------


def process_revision_directives(context: Any, revision: Any, directives: list[Any]) -> None:
    """Alembic hook: drop a table without first dropping its indexes one by one.

    Autogenerate writes ``op.drop_index(...)`` before ``op.drop_table(...)``. MySQL and
    MariaDB refuse to drop an index a foreign key relies on (error 1553), which breaks
    the downgrade of the migration that created ``transaction`` with its ``user_id``
    foreign key. ``DROP TABLE`` removes the indexes on every database, so they are left
    out. Use it as ``context.configure(..., process_revision_directives=
    process_revision_directives)``, or call it from your own hook.
    """
    from alembic.operations import ops

    def dropped_tables(container: Any) -> set[tuple[Optional[str], str]]:
        found: set[tuple[Optional[str], str]] = set()
        for op in getattr(container, "ops", []):
            if isinstance(op, ops.DropTableOp):
                found.add((op.schema, op.table_name))
            elif isinstance(op, ops.OpContainer):
                found |= dropped_tables(op)
        return found

    def prune(container: Any, dropped: set[tuple[Optional[str], str]]) -> None:
        kept = []
        for op in container.ops:
            if isinstance(op, ops.DropIndexOp) and (op.schema, op.table_name) in dropped:
                continue
            if isinstance(op, ops.OpContainer):
                prune(op, dropped)
                if isinstance(op, ops.ModifyTableOps) and op.is_empty():
                    continue
            kept.append(op)
        container.ops = kept

    for script in directives:
        for ops_list in (script.upgrade_ops_list, script.downgrade_ops_list):
            for container in ops_list:
                prune(container, dropped_tables(container))
