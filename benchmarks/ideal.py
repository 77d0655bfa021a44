"""The "ideal" recorder: the least work any history library must do, as a yardstick.

Per transaction it writes one ``transaction`` row; per flush and table, one executemany
INSERT of version rows built from the values already in memory (new and changed objects,
deleted ones, many-to-many links added or removed). Nothing else: it never reads the
database, never closes a previous version (no ``end_transaction_id``), never checks
ordering, keys or staleness. A real library does more, so this is a lower bound that no
implementation is expected to reach; the benchmark reports how far above it each one is.

Its tables have the layout the three libraries share (``<table>_version`` with the parent's
columns, ``transaction_id``, ``end_transaction_id``, ``operation_type``), so the workloads'
setup and checks read it like the others.
"""

from __future__ import annotations

import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, attributes

INSERT, UPDATE, DELETE = 0, 1, 2
_TX_KEY = "ideal_recorder_tx"


def version_tables(metadata: sa.MetaData, names: list[str]) -> dict[str, sa.Table]:
    """Declare ``transaction`` and ``<name>_version`` for the tables named ``names``."""
    sa.Table(
        "transaction",
        metadata,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("issued_at", sa.DateTime),
    )
    tables = {}
    for name in names:
        parent = metadata.tables[name]
        columns = [
            sa.Column(c.name, c.type, primary_key=c.primary_key, autoincrement=False)
            for c in parent.columns
        ]
        tables[name] = sa.Table(
            f"{name}_version",
            metadata,
            *columns,
            sa.Column("transaction_id", sa.BigInteger, primary_key=True, autoincrement=False),
            sa.Column("end_transaction_id", sa.BigInteger, index=True),
            sa.Column("operation_type", sa.SmallInteger, nullable=False),
        )
    return tables


def install(metadata: sa.MetaData, tables: dict[str, sa.Table]) -> None:
    """Record every flush of every ``Session`` into ``tables`` (parent name -> version table)."""
    insert = metadata.tables["transaction"].insert()

    def transaction_id(session: Session) -> Any:
        if _TX_KEY not in session.info:
            issued = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
            result = session.connection().execute(insert.values(issued_at=issued))
            session.info[_TX_KEY] = result.inserted_primary_key[0]
        return session.info[_TX_KEY]

    def after_flush(session: Session, _context: Any) -> None:
        rows: dict[str, list[dict[str, Any]]] = {}
        for objects, operation in (
            (session.new, INSERT),
            (session.dirty, UPDATE),
            (session.deleted, DELETE),
        ):
            for obj in objects:
                state = attributes.instance_state(obj)
                mapper = state.mapper
                table = mapper.local_table
                if table.name in tables and (
                    operation != UPDATE or session.is_modified(obj, include_collections=False)
                ):
                    values = {
                        column.key: state.dict.get(prop.key)
                        for prop in mapper.column_attrs
                        for column in prop.columns
                    }
                    values["operation_type"] = operation
                    rows.setdefault(table.name, []).append(values)
                for rel in mapper.relationships:
                    if rel.secondary is None or rel.secondary.name not in tables:
                        continue
                    history = state.get_history(rel.key, attributes.PASSIVE_NO_FETCH)
                    changes = (
                        [(history.sum(), DELETE)]  # the ORM deletes a deleted object's links
                        if operation == DELETE
                        else [(history.added, INSERT), (history.deleted, DELETE)]
                    )
                    for members, link_operation in changes:
                        for member in members:
                            link = {
                                remote.key: state.dict.get(mapper.get_property_by_column(local).key)
                                for local, remote in rel.synchronize_pairs
                            }
                            target = attributes.instance_state(member)
                            for local, remote in rel.secondary_synchronize_pairs:
                                prop = target.mapper.get_property_by_column(local)
                                link[remote.key] = target.dict.get(prop.key)
                            link["operation_type"] = link_operation
                            rows.setdefault(rel.secondary.name, []).append(link)
        if not rows:
            return
        tx = transaction_id(session)
        connection = session.connection()
        for name, values in rows.items():
            for value in values:
                value["transaction_id"] = tx
            connection.execute(tables[name].insert(), values)

    def forget(session: Session, *_args: Any) -> None:
        session.info.pop(_TX_KEY, None)

    sa.event.listen(Session, "after_flush", after_flush)
    sa.event.listen(Session, "after_commit", forget)
    sa.event.listen(Session, "after_soft_rollback", forget)
