"""Operation codes stored in ``operation_type`` and how operations fold within a transaction."""

from __future__ import annotations

import enum


class Operation(enum.IntEnum):
    """What happened to a row; the numbers are stored in the database, never renumber them."""

    INSERT = 0
    UPDATE = 1
    DELETE = 2


def fold(existed_before: bool, deleted_now: bool) -> Operation:
    """Return the one operation that stands for everything done to a row in a transaction.

    Several flushes in one transaction produce one version row, so only two facts matter:
    whether the row existed before the transaction started and whether it exists at the end.

    - insert, then updates: INSERT
    - updates: UPDATE
    - delete, then insert of the same primary key: UPDATE
    - anything ending in a delete: DELETE (an insert followed by a delete in the same
      transaction is kept as a DELETE version, as SQLAlchemy-Continuum does)
    """
    if deleted_now:
        return Operation.DELETE
    return Operation.UPDATE if existed_before else Operation.INSERT
