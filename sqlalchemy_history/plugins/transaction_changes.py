"""TransactionChangesPlugin: which models each transaction changed.

A ``transaction_changes`` table holds one row per (transaction, model class name)::

    transaction_id | entity_name
    ---------------+------------
    233678         | Article
    233678         | User

so "transactions that changed a User" or "that changed nothing but Articles" are plain
queries, and ``Transaction.changes`` / ``Transaction.entity_names`` list them. The entity
name is the changed object's class name (a subclass's own name under inheritance).

Rows are written with one executemany ``INSERT`` per flush, only for names the
transaction has not recorded yet: at most one statement per flush, none per row.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import Session, foreign, relationship

from . import _support
from .base import Plugin

if TYPE_CHECKING:
    from ..tables import VersionTable
    from ..unit_of_work import UnitOfWork

TABLE_NAME = "transaction_changes"


class TransactionChangesBase:
    """Behaviour of the generated ``TransactionChanges`` class."""

    transaction_id: Any
    entity_name: Any

    def __repr__(self) -> str:
        return (
            f"<TransactionChanges transaction_id={self.transaction_id!r} "
            f"entity_name={self.entity_name!r}>"
        )


def _entity_names(self: Any) -> list[str]:
    """Names of the model classes this transaction changed (``TransactionChangesPlugin``)."""
    return [change.entity_name for change in self.changes]


@dataclasses.dataclass
class _State:
    #: Entity names written per transaction id.
    written: dict[int, set[str]] = dataclasses.field(default_factory=lambda: defaultdict(set))
    #: Names the flush in progress changed, per transaction id.
    pending: dict[int, set[str]] = dataclasses.field(default_factory=lambda: defaultdict(set))
    flush: dict[_support.RowKey, Any] = dataclasses.field(default_factory=dict)
    stale: bool = False


class TransactionChangesPlugin(Plugin):
    """Record the names of the model classes each transaction changed."""

    def __init__(self) -> None:
        self._state = _support.PerTransaction(_State)
        #: The mapped ``TransactionChanges`` class (after ``configure_mappers()``).
        self.model_class: Optional[type] = None
        self.table: Optional[sa.Table] = None

    # -- schema --------------------------------------------------------------------

    def _build_table(self, metadata: sa.MetaData) -> sa.Table:
        def build() -> sa.Table:
            return sa.Table(
                TABLE_NAME,
                metadata,
                sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
                sa.Column("entity_name", sa.Unicode(255), primary_key=True),
            )

        self.table = _support.plugin_table(metadata, TABLE_NAME, build, type(self).__name__)
        return self.table

    def after_build_version_table_columns(self, info: VersionTable) -> None:
        self._build_table(info.table.metadata)

    def after_build_tx_class(self, manager: Any) -> None:
        tx_cls = manager.transaction_cls
        tx_table = manager.transaction_table
        table = self._build_table(tx_table.metadata)
        cls = _support.map_transaction_child(
            manager, "TransactionChanges", TransactionChangesBase, table
        )
        sa.inspect(tx_cls).add_property(
            "changes",
            relationship(
                cls,
                primaryjoin=tx_table.c.id == foreign(table.c.transaction_id),
                order_by=table.c.entity_name,
                viewonly=True,
            ),
        )
        tx_cls.entity_names = property(_entity_names)
        self.model_class = cls
        manager.transaction_changes_cls = cls

    def after_build_models(self, manager: Any) -> None:
        # Both peers' documentation reads the class from any versioned model:
        # ``TransactionChanges = Article.__versioned__["transaction_changes"]``.
        if self.model_class is None:
            return
        for cls, options in manager.class_options.items():
            versioned = getattr(cls, "__versioned__", None)
            if options.versioning and isinstance(versioned, dict):
                versioned["transaction_changes"] = self.model_class

    # -- recording -----------------------------------------------------------------

    def after_rollback_savepoint(self, uow: UnitOfWork, session: Session) -> None:
        state = self._state.get(uow)
        if state is not None:
            state.stale = True

    def before_create_version_objects(self, uow: UnitOfWork, session: Session) -> None:
        state = self._state(uow)
        state.flush = {
            key: found[0].class_.__name__
            for key, found in _support.flush_states(uow, session).items()
        }

    def after_version_row(
        self, uow: UnitOfWork, info: VersionTable, row: dict[str, Any], rewrite: bool
    ) -> None:
        if _support.is_association(info):
            return
        state = self._state(uow)
        name = state.flush.get(_support.row_key(info, row), info.model_name)
        state.pending[row[info.transaction_column.key]].add(name)

    def after_create_version_objects(self, uow: UnitOfWork, session: Session) -> None:
        state = self._state.get(uow)
        if state is None or self.table is None:
            return
        pending, state.pending = state.pending, defaultdict(set)
        state.flush = {}
        table = _support.table_beside_transactions(uow, TABLE_NAME)
        connections = list(uow.transaction_ids.items())
        if state.stale:
            # A savepoint rollback undid rows we wrote: ask the database what is left.
            state.stale = False
            state.written = defaultdict(set)
            for connection, tx_id in connections:
                statement = sa.select(table.c.entity_name).where(table.c.transaction_id == tx_id)
                state.written[tx_id].update(connection.scalars(statement))
        for connection, tx_id in connections:
            names = pending.get(tx_id)
            if not names:
                continue
            new = sorted(names - state.written[tx_id])
            if new:
                connection.execute(
                    table.insert(), [{"transaction_id": tx_id, "entity_name": n} for n in new]
                )
                state.written[tx_id].update(new)
