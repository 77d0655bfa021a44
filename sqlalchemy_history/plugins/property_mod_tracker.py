"""PropertyModTrackerPlugin: a ``<column>_mod`` flag per versioned column, true where the
version changed that column.

Queries such as "versions of Article that changed the name" become plain filters::

    select(ArticleVersion).where(ArticleVersion.name_mod)

Which flags are true (the SQLAlchemy-Continuum convention):

- INSERT versions: every flag (the object came into being with all its values);
- UPDATE versions: the columns whose value the transaction changed; several flushes in
  one transaction OR their flags into the one version row;
- DELETE versions: every flag (as in SQLAlchemy-Continuum);
- an object deleted and inserted again with the same primary key in one transaction
  (an UPDATE version): every flag;
- rows a bulk statement or an ``ON DELETE SET NULL`` rule changed: the columns whose
  value the statement changed (compared in the database's values before and after).

Primary key columns get no flag. Flags are computed from the objects' attribute history
in Python and written in the same statements as the version rows: no extra SQL. After a
rolled-back savepoint the flags already written in the transaction are read back once
(one ``SELECT`` per flagged version table) before the next flush rewrites them.
"""

from __future__ import annotations

import dataclasses
import weakref
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlalchemy.orm import InstanceState, Session

from .. import naming
from ..exc import ImproperlyConfigured
from ..operations import Operation
from ..tables import INFO_KEY
from . import _support
from .base import Plugin

if TYPE_CHECKING:
    from ..manager import ColumnPlan
    from ..tables import VersionTable
    from ..unit_of_work import UnitOfWork

#: ``column.info[INFO_KEY]`` of the flag columns.
MOD_FLAG = "mod_flag"
#: ``column.info`` key naming the version column a flag belongs to.
FLAG_OF = "sqlalchemy_history_flag_of"


@dataclasses.dataclass
class _State:
    #: Flags already written in this transaction, per version row (for OR-ing).
    written: dict[_support.RowKey, frozenset[str]] = dataclasses.field(default_factory=dict)
    #: Version tables those rows are in.
    tables: dict[sa.Table, VersionTable] = dataclasses.field(default_factory=dict)
    #: The objects behind the rows of the flush in progress.
    flush: dict[_support.RowKey, tuple[InstanceState[Any], ColumnPlan]] = dataclasses.field(
        default_factory=dict
    )
    #: A savepoint rollback made ``written`` unreliable.
    stale: bool = False


class PropertyModTrackerPlugin(Plugin):
    """Add and maintain ``<column>_mod`` boolean columns on every model's version table."""

    #: Suffix of the flag column names (``name`` -> ``name_mod``).
    column_suffix = "_mod"

    def __init__(self) -> None:
        self._state = _support.PerTransaction(_State)
        self._flags: weakref.WeakKeyDictionary[sa.Table, tuple[tuple[str, str], ...]] = (
            weakref.WeakKeyDictionary()
        )

    # -- schema --------------------------------------------------------------------

    def flag_columns(self, table: sa.Table) -> tuple[tuple[str, str], ...]:
        """Return ``(version column key, flag column key)`` pairs of a version table."""
        flags = self._flags.get(table)
        if flags is None:
            flags = tuple(
                (c.info[FLAG_OF], c.key) for c in table.c if c.info.get(INFO_KEY) == MOD_FLAG
            )
            self._flags[table] = flags
        return flags

    def after_build_version_table_columns(self, info: VersionTable) -> None:
        if _support.is_association(info):
            return  # link rows of many-to-many tables have nothing to flag
        table = info.table
        for parent_column, column in info.columns.items():
            if parent_column in info.primary_key:
                continue
            key = column.key + self.column_suffix
            name = column.name + self.column_suffix
            existing = table.c.get(key)
            if existing is not None:
                if existing.info.get(INFO_KEY) != MOD_FLAG and info.options.create_tables:
                    raise ImproperlyConfigured(
                        f"{info.model_name}: column {name!r} of {table.name!r} collides with the "
                        f"flag PropertyModTrackerPlugin adds for {column.name!r}; rename it."
                    )
                existing.info.update({INFO_KEY: MOD_FLAG, FLAG_OF: column.key})
                continue
            if not info.options.create_tables:
                raise ImproperlyConfigured(
                    f"{info.model_name}: 'create_tables' is False and {table.name!r} has no "
                    f"{name!r} column; add it (Boolean, not null, default false) for "
                    f"PropertyModTrackerPlugin."
                )
            naming.check_identifier(
                name, "flag column name", info.model_name, info.options.max_identifier_length
            )
            table.append_column(
                sa.Column(
                    name,
                    sa.Boolean,
                    key=key,
                    nullable=False,
                    default=False,
                    server_default=sa.false(),
                    info={INFO_KEY: MOD_FLAG, FLAG_OF: column.key},
                )
            )
        self._flags.pop(table, None)

    def after_construct_changeset(self, version: Any, changeset: dict[str, Any]) -> None:
        # Flags are bookkeeping, not data: never part of a changeset (the core already
        # leaves out every column it did not copy; this keeps it so for custom bases).
        for table in sa.inspect(type(version)).tables:
            for _, flag_key in self.flag_columns(table):
                changeset.pop(flag_key, None)

    # -- recording -----------------------------------------------------------------

    def after_rollback_savepoint(self, uow: UnitOfWork, session: Session) -> None:
        state = self._state.get(uow)
        if state is not None:
            state.stale = True

    def before_create_version_objects(self, uow: UnitOfWork, session: Session) -> None:
        state = self._state(uow)
        if state.stale:
            self._reload(uow, state)
        state.flush = _support.flush_states(uow, session)

    def after_create_version_objects(self, uow: UnitOfWork, session: Session) -> None:
        state = self._state.get(uow)
        if state is not None:
            state.flush = {}

    def after_version_row(
        self, uow: UnitOfWork, info: VersionTable, row: dict[str, Any], rewrite: bool
    ) -> None:
        flags = self.flag_columns(info.table)
        if not flags:
            return
        state = self._state(uow)
        key = _support.row_key(info, row)
        changed = self._changed(info, row, state.flush.get(key), flags)
        if uow.statement_changes is not None and row[info.operation_column.key] == Operation.UPDATE:
            found = uow.statement_changes.get(key)
            if found is not None:
                changed = set(found) & {column_key for column_key, _ in flags}
        if rewrite:
            changed |= state.written.get(key, frozenset())
        state.written[key] = frozenset(changed)
        state.tables[info.table] = info
        for column_key, flag_key in flags:
            row[flag_key] = column_key in changed

    @staticmethod
    def _changed(
        info: VersionTable,
        row: dict[str, Any],
        found: Optional[tuple[InstanceState[Any], ColumnPlan]],
        flags: tuple[tuple[str, str], ...],
    ) -> set[str]:
        everything = {column_key for column_key, _ in flags}
        if row[info.operation_column.key] != Operation.UPDATE or found is None:
            return everything
        obj_state, columns = found
        if obj_state.pending:
            return everything  # inserted again after a delete in this transaction
        attrs = {version_key: attr for _, version_key, attr in columns if attr is not None}
        return {
            column_key
            for column_key in everything
            if column_key in attrs and obj_state.attrs[attrs[column_key]].history.has_changes()
        }

    def _reload(self, uow: UnitOfWork, state: _State) -> None:
        """Re-read the flags this transaction has written (after a savepoint rollback)."""
        state.stale = False
        tables, state.written = state.tables, {}
        for connection, tx_id in list(uow.transaction_ids.items()):
            for table, info in tables.items():
                flags = self.flag_columns(table)
                pk = info.version_primary_key
                statement = sa.select(*pk, *(table.c[f] for _, f in flags)).where(
                    info.transaction_column == tx_id
                )
                for found in connection.execute(statement):
                    values = tuple(found)
                    key = (table, values[: len(pk)])
                    state.written[key] = frozenset(
                        column_key
                        for (column_key, _), flag in zip(flags, values[len(pk) :])
                        if flag
                    )
