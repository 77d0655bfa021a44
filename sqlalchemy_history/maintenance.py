"""History maintenance: remove versions that changed nothing (``vacuum``)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapper, Session

from .inspection import get_versioning_manager
from .operations import Operation
from .writer import _KEY_PREFIX


def vacuum(session: Session, model: type, yield_per: int = 1000) -> int:
    """Delete the UPDATE versions of ``model`` identical to the version before them.

    With the validity strategy the version before a removed one takes over its
    ``end_transaction_id``, so the history stays continuous. Returns how many versions
    were removed. Reads the history once, ordered; writes one DELETE and one UPDATE batch.
    """
    manager = get_versioning_manager(model)
    mapper: Mapper[Any] = sa.inspect(model)
    assert isinstance(mapper.local_table, sa.Table)
    info = manager.version_tables[mapper.local_table]
    table = info.table
    pk = info.version_primary_key
    tx = info.transaction_column
    end = info.end_transaction_column
    op = info.operation_column
    compared = [c for c in info.columns.values() if not c.primary_key]
    connection = session.connection(bind_arguments={"mapper": mapper})

    doomed: list[dict[str, Any]] = []
    reopened: dict[tuple[Any, ...], dict[str, Any]] = {}
    previous: Any = None
    statement = sa.select(table).order_by(*pk, tx).execution_options(yield_per=yield_per)
    for row in connection.execute(statement).mappings():
        key = tuple(row[c.key] for c in pk)
        same_object = previous is not None and tuple(previous[c.key] for c in pk) == key
        if (
            same_object
            and row[op.key] == Operation.UPDATE
            and all(row[c.key] == previous[c.key] for c in compared)
        ):
            doomed.append({**{c.key: row[c.key] for c in pk}, tx.key: row[tx.key]})
            if end is not None:
                kept = reopened.setdefault(
                    (*key, previous[tx.key]),
                    {
                        **{_KEY_PREFIX + c.key: row[c.key] for c in pk},
                        _KEY_PREFIX + tx.key: previous[tx.key],
                    },
                )
                kept[end.key] = row[end.key]
            continue
        previous = row
    if doomed:
        key_columns = [*pk, tx]
        connection.execute(
            table.delete().where(*(c == sa.bindparam(c.key) for c in key_columns)), doomed
        )
        if end is not None and reopened:
            connection.execute(
                table.update()
                .where(*(c == sa.bindparam(_KEY_PREFIX + c.key) for c in key_columns))
                .values({end: sa.bindparam(end.key)}),
                list(reopened.values()),
            )
    return len(doomed)
