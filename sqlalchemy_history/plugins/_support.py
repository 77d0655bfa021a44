"""Shared plugin plumbing: per-transaction plugin state and the objects behind version rows."""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Generic, Optional, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import InstanceState, Session, foreign, relationship, remote

from ..exc import ImproperlyConfigured
from ..tables import INFO_KEY

if TYPE_CHECKING:
    from ..manager import ColumnPlan
    from ..tables import VersionTable
    from ..unit_of_work import UnitOfWork

_S = TypeVar("_S")

#: ``(version table, primary key)``: identifies one version row of the flush in progress.
RowKey = tuple[sa.Table, tuple[Any, ...]]


class PerTransaction(Generic[_S]):
    """Plugin state kept per unit of work (one database transaction), gone with it.

    Threads and tasks record in parallel with one plugin instance; each unit of work gets
    its own state object, so nothing is shared between transactions.
    """

    def __init__(self, factory: Callable[[], _S]) -> None:
        self._factory = factory
        self._states: weakref.WeakKeyDictionary[UnitOfWork, _S] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def __call__(self, uow: UnitOfWork) -> _S:
        state = self._states.get(uow)
        if state is None:
            with self._lock:
                state = self._states.get(uow)
                if state is None:
                    state = self._factory()
                    self._states[uow] = state
        return state

    def get(self, uow: UnitOfWork) -> Optional[_S]:
        return self._states.get(uow)


def is_association(info: VersionTable) -> bool:
    """Return whether ``info`` versions a many-to-many secondary table (no model of its own)."""
    return getattr(info, "key_columns", None) is not None


def row_key(info: VersionTable, row: dict[str, Any]) -> RowKey:
    """Return the ``RowKey`` of a version row dict."""
    return info.table, tuple(row[c.key] for c in info.version_primary_key)


def _identity_values(state: InstanceState[Any]) -> dict[str, Any]:
    if state.key is None:
        return {}
    mapper = state.mapper
    return {
        mapper.get_property_by_column(column).key: value
        for column, value in zip(mapper.primary_key, state.key[1])
    }


def flush_states(
    uow: UnitOfWork, session: Session
) -> dict[RowKey, tuple[InstanceState[Any], ColumnPlan]]:
    """Map each version row the flush in progress may write to its object's state.

    Call it from ``before_create_version_objects``: that runs in ``after_flush``, where the
    session still lists the flush's new, dirty and deleted objects with their pre-flush
    history. Pure Python over the changed objects, no SQL. Rows written for a bulk
    statement (``uow.statement_changes`` is set) have no objects behind them: empty.
    """
    manager = uow.manager
    found: dict[RowKey, tuple[InstanceState[Any], ColumnPlan]] = {}
    if uow.statement_changes is not None:
        return found
    for obj in (*session.new, *session.dirty, *session.deleted):
        state: InstanceState[Any] = sa.inspect(obj)
        if not manager.is_versioned_mapper(state.mapper):
            continue
        identity = _identity_values(state)
        for info, columns in manager.plan_for(state.mapper).tables:
            attrs = {parent: attr for parent, _, attr in columns}
            key = []
            for column in info.primary_key:
                attr = attrs.get(column)
                value = None if attr is None else state.dict.get(attr, identity.get(attr))
                key.append(value)
            found[(info.table, tuple(key))] = (state, columns)
    return found


def table_beside_transactions(uow: UnitOfWork, name: str) -> sa.Table:
    """Return table ``name`` from the MetaData holding ``uow``'s transaction table."""
    transaction_table = uow.manager.transaction_table
    assert transaction_table is not None, "versioned models are not configured yet"
    metadata = transaction_table.metadata
    return metadata.tables[name if metadata.schema is None else f"{metadata.schema}.{name}"]


def identity_column(name: str) -> sa.Column[Any]:
    """Return an identity primary key column like ``transaction.id``.

    SQLite only autoincrements ``INTEGER PRIMARY KEY``, hence the type variant; no
    Sequence object is created anywhere.
    """
    return sa.Column(
        name,
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.Identity(),
        primary_key=True,
        autoincrement=True,
    )


def plugin_table(
    metadata: sa.MetaData, name: str, build: Callable[[], sa.Table], plugin: str
) -> sa.Table:
    """Return the plugin table ``name`` of ``metadata``, building it on first use.

    A table of that name that we did not build is an error, not silently reused.
    """
    key = name if metadata.schema is None else f"{metadata.schema}.{name}"
    table = metadata.tables.get(key)
    if table is None:
        table = build()
        table.info[INFO_KEY] = plugin
    elif table.info.get(INFO_KEY) != plugin:
        raise ImproperlyConfigured(
            f"{plugin} needs a table named {name!r} but the MetaData already has one that it "
            f"did not create; rename your table."
        )
    return table


def map_transaction_child(
    manager: Any, name: str, base: type, table: sa.Table, **attrs: Any
) -> type:
    """Map a plugin's per-transaction class ``name`` on ``table`` (next to ``Transaction``).

    The class gets a view-only ``transaction`` relationship through ``transaction_id``.
    """
    tx_table = manager.transaction_table
    cls = type(name, (base,), {"__module__": base.__module__, **attrs})
    manager.transaction_registry.map_imperatively(
        cls,
        table,
        properties={
            "transaction": relationship(
                manager.transaction_cls,
                primaryjoin=foreign(table.c.transaction_id) == remote(tx_table.c.id),
                viewonly=True,
                uselist=False,
            )
        },
    )
    return cls
