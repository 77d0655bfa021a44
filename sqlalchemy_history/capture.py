"""Record statements that write many rows at once, set-based: ORM bulk statements, the
legacy ``bulk_*`` methods, and Core statements run through a Session.

A ``Recorder`` follows one statement on its connection, in the statement's transaction:

1. ``prepare`` (before it runs) works out, per versioned table, which rows it writes
   (``statements``) and reads, with one locking ``SELECT`` per table, what would be lost
   or is needed to compare:

   - UPDATE: the rows its WHERE clause matches (or the keys its parameter sets name),
     with the versioned columns it may change;
   - DELETE: the rows with every versioned column (their DELETE versions' values), and
     the rows the database's ``ON DELETE`` rules will reach (``cascades``);
   - upsert (``ON CONFLICT`` / ``ON DUPLICATE KEY``): the rows its key or unique keys
     may find;
   - INSERT: nothing; where the backend can return generated keys, the statement asks
     SQLAlchemy for them (``return_defaults()``: RETURNING in the same statement).

2. the statement runs; ``collect`` sees each INSERT's result (the generated keys);
3. ``finish`` reads the rows an UPDATE or upsert matched again and keeps those whose
   versioned columns changed (a statement that changes no versioned column writes no
   version), learns generated keys the backend could not return
   (``dialects.learn_generated_keys``), and hands the rows to ``UnitOfWork.write_rows``:
   INSERT/UPDATE versions copied from the rows, DELETE versions from the values read,
   merged with what the transaction already wrote, the same transaction row.

The number of statements depends on the tables the statement touches, never on its rows.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.sql.dml import Delete, Insert, Update, UpdateBase

from . import cascades, statements, writer
from .dialects import BATCH_EXECUTION_OPTIONS, rules_for
from .exc import VersioningError
from .operations import Operation
from .rows import RowChange
from .statements import Row, Subject, same_columns, same_property

if TYPE_CHECKING:
    from .manager import VersioningManager
    from .tables import VersionTable
    from .unit_of_work import UnitOfWork

#: Values read from a row, by parent column.
Values = dict[sa.Column[Any], Any]


def _keyed(
    rows: Sequence[tuple[Any, ...]], columns: Sequence[sa.Column[Any]], width: int
) -> dict[tuple[Any, ...], Values]:
    """Rows read as ``(*key, *columns)`` tuples -> values by key (duplicates merged)."""
    return {tuple(row[:width]): dict(zip(columns, row[width:])) for row in rows}


def _onupdate_columns(info: VersionTable) -> list[sa.Column[Any]]:
    """Versioned columns the database or SQLAlchemy change on every UPDATE."""
    return [c for c in info.columns if c.onupdate is not None or c.server_onupdate is not None]


class _Target:
    """What one statement does to one table, and the reads around it."""

    def before(self, recorder: Recorder) -> None:
        """Read (and lock) what the statement will change (before it runs)."""

    def after(self, recorder: Recorder, rowcount: Optional[int]) -> list[RowChange]:
        """Return the version rows, once the statement ran."""
        return []


class _Compare(_Target):
    """UPDATE (or an upsert's existing rows): keep the rows whose versioned columns changed."""

    def __init__(
        self,
        info: VersionTable,
        columns: list[sa.Column[Any]],
        where: Optional[sa.ColumnElement[bool]] = None,
        keys: Optional[list[tuple[Any, ...]]] = None,
    ) -> None:
        self.info = info
        self.columns = [c for c in columns if c not in info.primary_key]
        self.where = where
        self.keys = keys
        self.old: dict[tuple[Any, ...], Values] = {}
        self.new: dict[tuple[Any, ...], Values] = {}

    def before(self, recorder: Recorder) -> None:
        info, connection = self.info, recorder.connection
        if self.keys is not None:
            self.old = writer.fetch_missing(connection, info, self.keys, self.columns, lock=True)
            return
        key = info.primary_key
        found = writer.fetch_where(
            connection,
            info.parent,
            [*key, *self.columns],
            self.where,
            lock=True,
            parameters=recorder.where_parameters,
        )
        self.old = _keyed(found, self.columns, len(key))

    def after(self, recorder: Recorder, rowcount: Optional[int]) -> list[RowChange]:
        if recorder.single_table and self.keys is None:
            recorder.check_rowcount(rowcount, len(self.old), "UPDATE", self.info.parent)
        if not self.old:
            return []
        self.new = writer.fetch_missing(
            recorder.connection, self.info, list(self.old), self.columns
        )
        changes = []
        for key, old in self.old.items():
            new = self.new.get(key)
            if new is None:
                continue  # gone meanwhile (a trigger): nothing the statement changed
            changed = [c for c in self.columns if not c.type.compare_values(old[c], new[c])]
            if changed:
                names = frozenset(self.info.columns[c].key for c in changed)
                changes.append(RowChange(self.info, key, Operation.UPDATE, True, changed=names))
        return changes


class _Delete(_Target):
    """DELETE: the rows' values before they disappear, and the database's cascades."""

    def __init__(
        self,
        table: sa.Table,
        where: Optional[sa.ColumnElement[bool]] = None,
        keys: Optional[list[tuple[Any, ...]]] = None,
    ) -> None:
        self.table = table
        self.where = where
        self.keys = keys
        self.rows: dict[tuple[Any, ...], Values] = {}
        self.cascade: Optional[cascades.CascadeRead] = None

    def before(self, recorder: Recorder) -> None:
        manager, connection = recorder.manager, recorder.connection
        key = cascades.identity_columns(manager, self.table)
        columns = cascades.needed_columns(manager, self.table)
        if self.keys is not None:
            found = writer.fetch_rows(connection, self.table, columns, key, self.keys, lock=True)
        else:
            found = writer.fetch_where(
                connection,
                self.table,
                columns,
                self.where,
                lock=True,
                parameters=recorder.where_parameters,
            )
        self.rows = {tuple(row[: len(key)]): dict(zip(columns, row)) for row in found}
        if (
            self.rows
            and cascades.edges(manager, self.table)
            and recorder.uow.foreign_keys_enforced(connection)
        ):
            self.cascade = cascades.CascadeRead(manager, connection)
            self.cascade.follow(self.table, self.rows.values())

    def after(self, recorder: Recorder, rowcount: Optional[int]) -> list[RowChange]:
        gone = list(self.rows)
        if recorder.single_table:
            recorder.check_rowcount(rowcount, len(self.rows), "DELETE", self.table)
            if rowcount is not None and 0 <= rowcount < len(self.rows):
                # fewer rows deleted than read (the ORM added criteria, a trigger): ask
                columns = cascades.identity_columns(recorder.manager, self.table)
                present = set(
                    writer.fetch_rows(recorder.connection, self.table, columns, columns, gone)
                )
                gone = [k for k in gone if k not in present]
        changes: list[RowChange] = []
        info = recorder.manager.version_tables.get(self.table)
        if info is not None:
            for key in gone:
                values = cascades.row_values(info, self.rows[key])
                changes.append(RowChange(info, key, Operation.DELETE, True, values))
        if self.cascade is not None:
            changes.extend(self.cascade.changes())
        return changes


class _Insert(_Target):
    """INSERT: the new rows, copied from the table by their keys."""

    def __init__(self, info: VersionTable, positions: list[int]) -> None:
        self.info = info
        #: Where each of ``info.primary_key`` sits in the statement's key tuples.
        self.positions = positions

    def after(self, recorder: Recorder, rowcount: Optional[int]) -> list[RowChange]:
        keys = recorder.inserted_keys()
        new_key = recorder.generated and recorder.generated_is_new
        return [
            RowChange(
                self.info,
                tuple(key[i] for i in self.positions),
                Operation.INSERT,
                False,
                new_key=new_key,
            )
            for key in dict.fromkeys(keys)
        ]


class _Upsert(_Target):
    """INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE: new rows and changed rows."""

    def __init__(
        self,
        info: VersionTable,
        matchers: list[tuple[list[sa.Column[Any]], list[tuple[Any, ...]]]],
        key_given: bool,
    ) -> None:
        self.info = info
        self.matchers = matchers
        self.key_given = key_given
        self.columns = [c for c in info.columns if c not in info.primary_key]
        self.old: dict[tuple[Any, ...], Values] = {}

    def _read(self, recorder: Recorder, lock: bool) -> dict[tuple[Any, ...], Values]:
        key = self.info.primary_key
        found: dict[tuple[Any, ...], Values] = {}
        for columns, values in self.matchers:
            rows = writer.fetch_rows(
                recorder.connection, self.info.parent, [*key, *self.columns], columns, values, lock
            )
            found.update(_keyed(rows, self.columns, len(key)))
        return found

    def before(self, recorder: Recorder) -> None:
        self.old = self._read(recorder, lock=True)

    def after(self, recorder: Recorder, rowcount: Optional[int]) -> list[RowChange]:
        new = self._read(recorder, lock=False)
        missing = [k for k in self.old if k not in new]
        if missing:  # the statement changed a unique key the row was found by
            new.update(writer.fetch_missing(recorder.connection, self.info, missing, self.columns))
        new_key = not self.key_given and recorder.generated_is_new
        changes = []
        for key, values in new.items():
            old = self.old.get(key)
            if old is None:
                changes.append(RowChange(self.info, key, Operation.INSERT, False, new_key=new_key))
                continue
            changed = [c for c in self.columns if not c.type.compare_values(old[c], values[c])]
            if changed:
                names = frozenset(self.info.columns[c].key for c in changed)
                changes.append(RowChange(self.info, key, Operation.UPDATE, True, changed=names))
        return changes


class Recorder:
    """Records one DML statement run on ``connection`` in ``uow``'s transaction."""

    def __init__(
        self,
        uow: UnitOfWork,
        session: Session,
        connection: Connection,
        statement: Union[Insert, Update, Delete],
        parameters: Any,
        mapper: Optional[Mapper[Any]],
    ) -> None:
        self.uow = uow
        self.manager: VersioningManager = uow.manager
        self.session = session
        self.connection = connection
        self.statement = statement
        self.parameter_sets = statements.parameter_sets(parameters)
        self.executemany = isinstance(parameters, (list, tuple))
        self.subject = Subject(statements.target_table(statement), mapper)
        self.targets: list[_Target] = []
        #: INSERT: key columns (the mapper's primary key, or the table's) and their values.
        self.key_columns: list[sa.Column[Any]] = []
        self.keys: Optional[list[tuple[Any, ...]]] = None
        self.collected: list[tuple[Any, ...]] = []
        self.rows: list[Row] = []
        self.generated = False
        self.generated_is_new = False
        self.learn_after = False
        self.unique: Optional[tuple[list[sa.Column[Any]], list[tuple[Any, ...]]]] = None

    # -- which statements concern us -------------------------------------------------

    @staticmethod
    def concerns(
        manager: VersioningManager, statement: UpdateBase, mapper: Optional[Mapper[Any]]
    ) -> bool:
        """Return whether ``statement`` may write a versioned table (cheap, no SQL)."""
        try:
            subject = Subject(statements.target_table(statement), mapper)
        except VersioningError:
            return False
        tables = subject.tables
        if any(t in manager.version_tables for t in tables):
            return True
        if isinstance(statement, Delete):
            return bool(cascades.edges(manager, subject.table))
        if isinstance(statement, Update):
            # a multi-table UPDATE (MySQL) may set columns of a versioned table
            return any(
                c.table in manager.version_tables
                for key, _ in statements.set_clause(statement)
                for c in subject.columns(key)
            )
        return False

    @property
    def where_parameters(self) -> Optional[dict[str, Any]]:
        """The one parameter set of a statement run once (values of its bound parameters)."""
        if len(self.parameter_sets) == 1 and not self.executemany:
            return dict(self.parameter_sets[0])
        return None

    @property
    def single_table(self) -> bool:
        """Whether one table's rows are all the statement writes (its rowcount is theirs)."""
        return len(self.targets) == 1 and not self.executemany

    # -- 1. before ---------------------------------------------------------------------

    def prepare(self) -> UpdateBase:
        """Plan the reads, run them, and return the statement to execute."""
        statement = self.statement
        if isinstance(statement, Delete):
            self._plan_delete(statement)
        elif isinstance(statement, Update):
            self._plan_update(statement)
        else:
            statement = self._plan_insert(statement)
        for target in self.targets:
            target.before(self)
        return statement

    def _row_keys(
        self, table: sa.Table, where: Optional[sa.ColumnElement[bool]]
    ) -> Optional[list[tuple[Any, ...]]]:
        """Keys named by the parameter sets of an UPDATE/DELETE, if they name rows.

        ``pk = :name`` for every key column in the WHERE clause (SQLAlchemy's bulk UPDATE
        by primary key and legacy bulk methods emit that): each parameter set names its
        row. An ORM bulk UPDATE by primary key carries the keys as attributes. ``None``
        for a WHERE clause run once (its bound parameters are read with it).
        """
        if not self.parameter_sets:
            return None
        key = cascades.identity_columns(self.manager, table)
        names = statements.key_binds(where, key)
        if names is not None and all(n in p for n in names for p in self.parameter_sets):
            return [tuple(p[n] for n in names) for p in self.parameter_sets]
        if self.subject.mapper is not None and self.executemany:
            rows = [self.subject.row(p) for p in self.parameter_sets]
            found = statements.given(rows, key)
            if found is not None:
                return found
        if not self.executemany:
            return None
        raise VersioningError(
            f"cannot record an executemany {type(self.statement).__name__.upper()} on "
            f"{table.name!r}: its WHERE clause must compare every primary key column to a "
            f'bound parameter ("{key[0].name} = :name") so that each parameter set names '
            f"its row."
        )

    def _plan_delete(self, statement: Delete) -> None:
        table = self.subject.table
        keys = self._row_keys(table, statement.whereclause)
        self.targets.append(_Delete(table, statement.whereclause, keys))

    def _plan_update(self, statement: Update) -> None:
        set_columns: dict[sa.Table, set[sa.Column[Any]]] = defaultdict(set)
        for key, _ in statements.set_clause(statement):
            for column in self.subject.columns(key):
                set_columns[column.table].add(column)
        for parameters in self.parameter_sets:
            for column in self.subject.row(parameters):
                set_columns[column.table].add(column)
        for table, columns in set_columns.items():
            info = self.manager.version_tables.get(table)
            if info is None:
                continue
            changing = [c for c in info.columns if c in columns]
            keys_changed = [c.name for c in changing if c in info.primary_key]
            if keys_changed and not self.executemany:
                raise VersioningError(
                    f"{info.model_name}: a bulk UPDATE that sets primary key column "
                    f"{keys_changed[0]!r} of versioned table {table.name!r} is not recorded; "
                    f"change keys through the ORM (a flush writes the old key's DELETE "
                    f"version and the new key's INSERT version)."
                )
            compared = [c for c in changing if c not in info.primary_key]
            compared += [c for c in _onupdate_columns(info) if c not in compared]
            if not compared:
                continue  # only excluded columns change: no version (no-op rule)
            keys = self._row_keys(table, statement.whereclause)
            self.targets.append(_Compare(info, compared, statement.whereclause, keys))

    def _plan_insert(self, statement: Insert) -> Insert:
        if statements.inserts_from_select(statement):
            raise VersioningError(
                f"INSERT ... SELECT into versioned table {self.subject.table.name!r} is not "
                f"recorded (the rows it writes are not known before it runs); select the "
                f"rows first and insert them as parameter sets."
            )
        subject = self.subject
        values = statements.set_clause(statement)
        if self.parameter_sets:
            rows = [subject.row({**dict(values), **p}) for p in self.parameter_sets]
            tables = subject.tables
        else:
            multi = statements.multi_values(statement)
            rows = [subject.row(r) for r in multi] if multi else [subject.row(dict(values))]
            tables = [subject.table]
        self.rows = rows
        infos = [self.manager.version_tables[t] for t in tables if t in self.manager.version_tables]
        mapper = subject.mapper
        key_columns: list[sa.Column[Any]] = [
            c
            for c in (mapper.primary_key if mapper is not None else subject.table.primary_key)
            if isinstance(c, sa.Column)
        ]
        self.key_columns = key_columns
        autoincrement = next((t for t in tables if t.autoincrement_column is not None), None)
        rules = rules_for(self.connection.dialect)
        self.generated_is_new = autoincrement is not None and rules.generated_key_is_new(
            autoincrement
        )
        if statements.is_upsert(statement):
            self._plan_upsert(infos, rows)
            return statement
        self.keys = statements.given(rows, key_columns)
        self.generated = self.keys is None
        if self.keys is None:
            statement = self._plan_generated(statement, rows, key_columns)
        for info in infos:
            self.targets.append(_Insert(info, self._positions(info, key_columns)))
        return statement

    def _positions(self, info: VersionTable, key_columns: list[sa.Column[Any]]) -> list[int]:
        """Where each key column of ``info`` is in a statement key tuple."""
        mapper = self.subject.mapper
        positions = []
        for column in info.primary_key:
            for i, key_column in enumerate(key_columns):
                if column is key_column or (
                    mapper is not None and same_property(mapper, column, key_column)
                ):
                    positions.append(i)
                    break
            else:
                raise VersioningError(
                    f"{info.model_name}: cannot tell the key of the rows an INSERT writes into "
                    f"{info.parent.name!r} from the statement's key columns."
                )
        return positions

    def _plan_generated(
        self, statement: Insert, rows: list[Row], key_columns: list[sa.Column[Any]]
    ) -> Insert:
        """Decide how the keys the database generates will be learned.

        In order: a joined-inheritance ORM INSERT already has SQLAlchemy fetch them (the
        subclass rows need them) and ``collect`` takes them; where the backend returns
        keys, the statement asks for them (RETURNING in the same statement, or the
        driver's lastrowid for one row); a unique key every row gives finds the rows
        afterwards; else the dialect's way for one autoincrement column
        (``learn_generated_keys``). Otherwise the statement is refused before it runs.
        """
        table = self.subject.table
        dialect = self.connection.dialect
        rules = rules_for(dialect)
        multi_values = not self.parameter_sets and len(rows) > 1
        # some rows give their key, others not: arithmetic over generated keys won't do
        mixed = any(statements.given([row], key_columns) is not None for row in rows)
        if self.parameter_sets and len(self.subject.tables) > 1:
            return statement.return_defaults(*key_columns)
        returns = rules.returns_generated_keys(dialect, len(rows)) or (
            mixed and bool(dialect.insert_executemany_returning)
        )
        if not multi_values and returns:
            # inserted_primary_key_rows hands the keys to collect(); a large page size
            # lets only the backend's parameter limit split an executemany.
            return statement.return_defaults(*key_columns).execution_options(
                **BATCH_EXECUTION_OPTIONS
            )
        for columns in statements.unique_keys(table):
            found = statements.given(rows, columns)
            if found is not None and not any(c is k for c in columns for k in key_columns):
                self.unique = (list(columns), found)
                return statement
        learnable = len(key_columns) == 1 and table.autoincrement_column is not None
        if learnable and rules.learns_generated_keys and not mixed:
            self.learn_after = True
            return statement
        raise VersioningError(
            f"cannot learn the keys {dialect.name} generates for a multi-row INSERT into "
            f"versioned table {table.name!r}; give the primary key (or a unique key) in "
            f"every row, or insert the rows as parameter sets: "
            f"session.execute(insert(...), [{{...}}, ...])."
        )

    def _plan_upsert(self, infos: list[VersionTable], rows: list[Row]) -> None:
        for info in infos:
            matchers = []
            key_given = False
            for columns in statements.unique_keys(info.parent):
                found = statements.given(rows, columns)
                if found is not None:
                    matchers.append((list(columns), found))
                    key_given = key_given or same_columns(columns, info.primary_key)
            if not matchers:
                raise VersioningError(
                    f"cannot record an upsert into versioned table {info.parent.name!r}: "
                    f"every row must give its primary key or a unique key, by which the "
                    f"rows it inserts or updates are found."
                )
            self.targets.append(_Upsert(info, matchers, key_given))

    # -- 2. the statement runs -------------------------------------------------------------

    def collect(self, result: Any) -> None:
        """Take the generated keys of one INSERT execution (``after_execute``)."""
        if self.keys is not None or self.learn_after or self.unique is not None:
            return
        context = getattr(result, "context", None)
        if context is None or not getattr(context, "isinsert", False):
            return
        try:
            found = result.inserted_primary_key_rows
        except (sa.exc.InvalidRequestError, AttributeError):
            return
        self.collected.extend(tuple(row) for row in found)

    # -- 3. after ------------------------------------------------------------------------

    def inserted_keys(self) -> list[tuple[Any, ...]]:
        """The keys of the rows the INSERT wrote (given, returned or learned)."""
        if self.keys is None:
            self.keys = self._learn_keys()
        return self.keys

    def _learn_keys(self) -> list[tuple[Any, ...]]:
        count = len(self.rows)
        table = self.subject.table
        if self.unique is not None:
            columns, values = self.unique
            key = list(self.key_columns)
            found = writer.fetch_rows(self.connection, table, [*key, *columns], columns, values)
            keys = [tuple(row[: len(key)]) for row in found]
        elif self.learn_after:
            learned = rules_for(self.connection.dialect).learn_generated_keys(
                self.connection, table, count
            )
            keys = learned or []
        else:
            keys = self.collected[:count]
        if len(keys) != count or any(v is None for k in keys for v in k):
            raise VersioningError(
                f"the INSERT into versioned table {table.name!r} wrote {count} rows but "
                f"their generated keys could not be learned; the transaction cannot record "
                f"them, roll it back (give the primary keys in the rows to avoid this)."
            )
        return keys

    def check_rowcount(
        self, rowcount: Optional[int], read: int, verb: str, table: sa.Table
    ) -> None:
        """Fail when the statement changed rows it did not match when read (a row another
        transaction committed in between, under READ COMMITTED): their history is unknown."""
        sane = self.connection.dialect.supports_sane_rowcount
        if sane and rowcount is not None and rowcount > read:
            raise VersioningError(
                f"the {verb} on versioned table {table.name!r} changed {rowcount} rows but "
                f"{read} matched when they were read and locked just before: another "
                f"transaction committed matching rows in between. Roll back and retry."
            )

    def finish(self, result: Any) -> None:
        """Write the version rows of the statement that just ran."""
        rowcount = getattr(result, "rowcount", None)
        if not isinstance(rowcount, int):
            rowcount = None
        changes: list[RowChange] = []
        for target in self.targets:
            changes.extend(target.after(self, rowcount))
        changes.extend(self._other_tables(changes))
        self.uow.write_rows(self.session, self.connection, changes)
        self._refresh_identity_map()

    def _other_tables(self, changes: list[RowChange]) -> list[RowChange]:
        """UPDATE versions in the other tables of the changed rows' objects.

        A version of a joined-inheritance object is one row per table (the version class
        joins them by key and transaction), so a flush that changes only the engineer
        table writes the person table's version too. A statement changing one table does
        the same, copied from the rows of the other tables: always there for a base table,
        where they exist for a subclass table (a person may be no engineer; one ``SELECT``
        per such table tells).
        """
        related = {
            info: inheritance_tables(self.manager, info.parent)
            for info in {c.info for c in changes}
        }
        if not any(related.values()):
            return []
        written = {(c.info, c.key) for c in changes}
        wanted: dict[VersionTable, dict[tuple[Any, ...], bool]] = defaultdict(dict)
        for change in changes:
            if change.operation is not Operation.UPDATE:
                continue
            for other in related[change.info]:
                key = tuple(change.key[i] for i in other.positions)
                if (other.info, key) not in written:
                    known = wanted[other.info].get(key, False)
                    wanted[other.info][key] = known or other.always
        extra: list[RowChange] = []
        for info, keys in wanted.items():
            unsure = [key for key, always in keys.items() if not always]
            present = writer.fetch_missing(self.connection, info, unsure, []) if unsure else {}
            for key, always in keys.items():
                if always or key in present:
                    extra.append(RowChange(info, key, Operation.UPDATE, True, changed=frozenset()))
        return extra

    def _refresh_identity_map(self) -> None:
        """Expire attributes of objects in the session that the statement changed behind
        its back (``synchronize_session=False``, legacy bulk methods), so that the next
        flush neither compares against nor writes back the stale values."""
        changed: dict[sa.Table, dict[tuple[Any, ...], Values]] = {}
        for target in self.targets:
            if isinstance(target, _Compare) and target.new:
                changed[target.info.parent] = target.new
        if not changed:
            return
        for obj in list(self.session.identity_map.values()):
            state = sa.inspect(obj)
            mapper = state.mapper
            if state.key is None:
                continue
            identity = dict(zip(mapper.primary_key, state.key[1]))
            stale: list[str] = []
            for table, rows in changed.items():
                if table not in mapper.tables:
                    continue
                key = tuple(
                    identity[p]
                    for c in table.primary_key
                    for p in mapper.primary_key
                    if same_property(mapper, c, p)
                )
                values = rows.get(key)
                if values is None:
                    continue
                for column, value in values.items():
                    try:
                        attr = mapper.get_property_by_column(column).key
                    except sa.orm.exc.UnmappedColumnError:
                        continue
                    if attr not in state.dict or attr in state.committed_state:
                        continue  # not loaded, or a pending change the flush will write
                    if not column.type.compare_values(state.dict[attr], value):
                        stale.append(attr)
            if stale:
                self.session.expire(obj, stale)


@dataclasses.dataclass(frozen=True, eq=False)
class _Related:
    """Another version table of the objects that have rows in a table."""

    info: VersionTable
    #: Every row of the first table has one here (a base table of its own mapper).
    always: bool
    #: Where each key column of ``info`` is in the first table's key.
    positions: tuple[int, ...]


def inheritance_tables(manager: VersioningManager, table: sa.Table) -> tuple[_Related, ...]:
    """Return the other version tables of joined-inheritance objects with rows in
    ``table`` (cached on the manager until version tables change)."""
    cache = manager.table_cache
    found = cache.get(("inheritance", table))
    if found is not None:
        return found
    own = manager.version_tables.get(table)
    related: dict[VersionTable, _Related] = {}
    for cls in list(manager.version_class_map):
        mapper: Mapper[Any] = sa.inspect(cls)
        infos = [info for info, _ in manager.plan_for(mapper).tables]
        if own is None or own not in infos:
            continue
        always = mapper.local_table is table
        for info in infos:
            if info is own:
                continue
            positions = tuple(
                next(
                    i
                    for i, column in enumerate(own.primary_key)
                    if same_property(mapper, column, other)
                )
                for other in info.primary_key
            )
            earlier = related.get(info)
            if earlier is None or (always and not earlier.always):
                related[info] = _Related(info, always, positions)
    cache[("inheritance", table)] = tuple(related.values())
    return cache[("inheritance", table)]


class LegacyBulk:
    """Records the Core statements a legacy bulk method (``bulk_save_objects``,
    ``bulk_insert_mappings``, ``bulk_update_mappings``) runs on the session's connections.

    Those methods write through the ORM's persistence functions without a flush and
    without ``do_orm_execute``; ``events`` watches the session's connections while the
    method's subtransaction is open and passes each statement here.
    """

    def __init__(self, uow: UnitOfWork, session: Session) -> None:
        self.uow = uow
        self.session = session
        self._pending: list[Recorder] = []
        self._busy = False

    def before_execute(self, connection: Connection, statement: Any, parameters: Any) -> Any:
        """Return the statement to run instead (it may ask for generated keys)."""
        if self._busy or not isinstance(statement, (Insert, Update, Delete)):
            return statement
        if not Recorder.concerns(self.uow.manager, statement, None):
            return statement
        recorder = Recorder(self.uow, self.session, connection, statement, parameters, None)
        self._busy = True
        try:
            statement = recorder.prepare()
        finally:
            self._busy = False
        self._pending.append(recorder)
        return statement

    def after_execute(self, result: Any) -> None:
        if self._busy or not self._pending:
            return
        recorder = self._pending.pop()
        recorder.collect(result)
        self._busy = True
        try:
            recorder.finish(result)
        finally:
            self._busy = False
