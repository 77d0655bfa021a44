"""NullDeletePlugin: DELETE versions store NULLs instead of the object's last values.

Without it a DELETE version repeats the values of the version before it. With it only the
primary key (and the transaction and operation columns) is kept, which saves space and
lets queries tell a deletion from its values. ``<column>_mod`` flags of
``PropertyModTrackerPlugin`` are kept (they are all true on a DELETE version).

It changes the row dicts before they are written: no extra SQL.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..operations import Operation
from .base import Plugin

if TYPE_CHECKING:
    from ..tables import VersionTable
    from ..unit_of_work import UnitOfWork


class NullDeletePlugin(Plugin):
    """Write NULL into every versioned non-key column of DELETE versions."""

    def after_version_row(
        self, uow: UnitOfWork, info: VersionTable, row: dict[str, Any], rewrite: bool
    ) -> None:
        if row[info.operation_column.key] != Operation.DELETE:
            return
        keys = set(info.primary_key)
        for parent_column, column in info.columns.items():
            if parent_column not in keys:
                row[column.key] = None
