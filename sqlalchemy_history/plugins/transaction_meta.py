"""TransactionMetaPlugin: key/value metadata on transactions (``tx.meta = {...}``).

A ``transaction_meta`` table holds ``(transaction_id, key, value)`` rows. The
``Transaction`` class gets ``meta_relation`` (``TransactionMeta`` objects by key) and
``meta``, a dictionary view of it::

    uow = versioning_manager.unit_of_work(session)
    tx = uow.create_transaction(session)
    tx.meta = {"reason": "bulk import"}
    session.commit()

    TransactionMeta = meta_plugin.model_class
    select(Transaction).join(Transaction.meta_relation).where(
        TransactionMeta.key == "reason", TransactionMeta.value == "bulk import"
    )

``versioning_context(meta={...})`` fills it too: the context's pairs are inserted with the
transaction row, in one executemany ``INSERT`` (nothing when the context has no meta).
Keys assigned on ``tx.meta`` afterwards override the context's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.ext.associationproxy import association_proxy
from sqlalchemy.orm import Session, attribute_keyed_dict, foreign, relationship

from ..context import current_context
from . import _support
from .base import Plugin

if TYPE_CHECKING:
    from ..tables import VersionTable
    from ..unit_of_work import UnitOfWork

TABLE_NAME = "transaction_meta"


class TransactionMetaBase:
    """Behaviour of the generated ``TransactionMeta`` class."""

    transaction_id: Any
    key: Any
    value: Any

    def __init__(self, key: Optional[str] = None, value: Optional[str] = None, **kw: Any):
        self.key = key
        self.value = value
        for name, given in kw.items():
            setattr(self, name, given)

    def __repr__(self) -> str:
        return (
            f"<TransactionMeta transaction_id={self.transaction_id!r} key={self.key!r} "
            f"value={self.value!r}>"
        )


class TransactionMetaPlugin(Plugin):
    """Store key/value metadata per transaction; ``Transaction.meta`` is a dict view."""

    def __init__(self) -> None:
        #: The mapped ``TransactionMeta`` class (after ``configure_mappers()``).
        self.model_class: Optional[type] = None
        self.table: Optional[sa.Table] = None

    def _build_table(self, metadata: sa.MetaData) -> sa.Table:
        def build() -> sa.Table:
            return sa.Table(
                TABLE_NAME,
                metadata,
                sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
                sa.Column("key", sa.Unicode(255), primary_key=True),
                sa.Column("value", sa.UnicodeText),
            )

        self.table = _support.plugin_table(metadata, TABLE_NAME, build, type(self).__name__)
        return self.table

    def after_build_version_table_columns(self, info: VersionTable) -> None:
        self._build_table(info.table.metadata)

    def after_build_tx_class(self, manager: Any) -> None:
        tx_cls = manager.transaction_cls
        tx_table = manager.transaction_table
        table = self._build_table(tx_table.metadata)
        cls = _support.map_transaction_child(manager, "TransactionMeta", TransactionMetaBase, table)
        sa.inspect(tx_cls).add_property(
            "meta_relation",
            relationship(
                cls,
                primaryjoin=tx_table.c.id == foreign(table.c.transaction_id),
                collection_class=attribute_keyed_dict("key"),
                cascade="all, delete-orphan",
            ),
        )
        tx_cls.meta = association_proxy(
            "meta_relation", "value", creator=lambda key, value: cls(key=key, value=value)
        )
        self.model_class = cls
        manager.transaction_meta_cls = cls

    def after_create_transaction(
        self, uow: UnitOfWork, session: Session, connection: Connection, values: dict[str, Any]
    ) -> None:
        meta = current_context().meta
        if not meta:
            return
        table = _support.table_beside_transactions(uow, TABLE_NAME)
        connection.execute(
            table.insert(),
            [{"transaction_id": values["id"], "key": k, "value": v} for k, v in meta.items()],
        )
