"""The ``Transaction`` model: one row per database transaction that wrote history."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import sqlalchemy as sa
from sqlalchemy.orm import object_session, registry, relationship

from . import tables
from .exc import NoChangesAttribute

if TYPE_CHECKING:
    from .manager import VersioningManager


def utc_now() -> datetime.datetime:
    """Return the current UTC time as a naive datetime (stored in ``issued_at``)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


class TransactionBase:
    """Behaviour shared by every generated ``Transaction`` class."""

    __versioning_manager__: ClassVar[VersioningManager]
    id: Any
    issued_at: Any

    @property
    def changed_entities(self) -> dict[type, list[Any]]:
        """Map each version class to its versions written by this transaction.

        Runs one ``SELECT`` per version class; classes with no change are left out.
        """
        session = object_session(self)
        if session is None:
            return {}
        manager = self.__versioning_manager__
        result: dict[type, list[Any]] = {}
        for version_cls in manager.version_class_map.values():
            info = manager.version_info_of_class(version_cls)
            if info is None:
                continue
            column = getattr(version_cls, info.options.transaction_column_name)
            statement: sa.Select[Any] = sa.select(version_cls).where(column == self.id)
            rows = [r for r in session.scalars(statement) if type(r) is version_cls]
            if rows:
                result[version_cls] = rows
        return result

    @property
    def entity_names(self) -> list[str]:
        """Names of the model classes this transaction changed (``TransactionChangesPlugin``)."""
        raise NoChangesAttribute(
            "Transaction.entity_names needs TransactionChangesPlugin; add it to "
            "make_versioned(plugins=[...]), or use Transaction.changed_entities."
        )

    def __repr__(self) -> str:
        """``<Transaction id=1, issued_at=datetime(...)>``, SQLAlchemy-History's format.

        ``user=...`` follows when the user relationship is loaded (a repr never queries).
        """
        fields = [f"id={self.id!r}", f"issued_at={self.issued_at!r}"]
        loaded = sa.inspect(self).dict
        if "user" in loaded:
            fields.append(f"user={loaded['user']!r}")
        return f"<{type(self).__name__} {', '.join(fields)}>"


class TransactionFactory:
    """Describe the transaction model; assign an instance to ``manager.transaction_cls``.

    :param remote_addr: give the table a ``remote_addr`` column (``String(50)``).
    """

    def __init__(self, remote_addr: bool = True) -> None:
        self.remote_addr = remote_addr

    def build_table(self, metadata: sa.MetaData) -> sa.Table:
        """Return the ``transaction`` table of ``metadata``, creating it if needed."""
        return tables.build_transaction_table(metadata, self.remote_addr)

    def __call__(
        self,
        manager: VersioningManager,
        table: Optional[sa.Table] = None,
        reg: Optional[registry] = None,
        user_cls: Optional[type] = None,
    ) -> type:
        """Map and return the ``Transaction`` class on ``table`` in registry ``reg``.

        ``factory(manager)``, SQLAlchemy-History's spelling, maps it now on the manager's
        transaction table (``manager.create_transaction_model()``) and returns it.
        """
        if table is None or reg is None:
            if isinstance(manager.transaction_cls, TransactionFactory):
                manager.transaction_cls = self
            return manager.create_transaction_model()
        cls = type(
            "Transaction",
            (TransactionBase,),
            {"__versioning_manager__": manager, "__module__": __name__},
        )
        properties: dict[str, Any] = {}
        if user_cls is not None and "user_id" in table.c:
            properties["user"] = relationship(
                user_cls,
                primaryjoin=table.c.user_id == sa.inspect(user_cls).primary_key[0],
                foreign_keys=[table.c.user_id],
            )
        reg.map_imperatively(cls, table, properties=properties)
        return cls
