"""Requirements: what the database under test can do and what the implementation offers.

Tests say what they need with ``@pytest.mark.requires("savepoints")`` (or, for a
parametrised requirement, ``@pytest.mark.requires("identifier_length", 128)``); the plugin
evaluates the name against an instance of the adapter's requirements class for the
database each test runs on:

- a *supported* requirement lets the test run;
- an *unsupported* one skips it, with the reason shown in the run's summary;
- a *failing* one runs it as a strict expected failure: it must fail, and an unexpected
  pass fails the run (so a fixed bug cannot stay marked as failing).

There are two kinds of requirement. Database capabilities are detected from the server the
run is connected to (``self.database``). Implementation behaviours are one property each,
all ``supported()`` here: this class describes the full contract, and an implementation
subclasses it to declare what it lacks, naming the subclass in its adapter
(``requirements_cls``)::

    class MyRequirements(Requirements):
        @property
        def eager_temporal_relationships(self) -> Support:
            return unsupported("temporal relationships are Python properties")

        @property
        def savepoint_rollback_bookkeeping(self) -> Support:
            if self.database.dialect_name == "oracle":
                return failing("my_history#12: savepoint bookkeeping on Oracle")
            return super().savepoint_rollback_bookkeeping

Prefer ``failing`` (a strict xfail: the test runs and must fail) for a behaviour the
implementation gets wrong, and ``unsupported`` (a skip) for an API it does not have.

Every requirement is a property (or, when it takes arguments, a method) returning a
``Support`` value; returning a plain ``bool`` is accepted too (its docstring's first line
is then the reason). Adding a suite module with a behaviour of its own means adding one
property here, in its section, and one row to the README's table (a meta-test checks it).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from .adapter import Adapter
    from .databases import DatabaseInfo

SUPPORTED = "supported"
UNSUPPORTED = "unsupported"
FAILING = "failing"


@dataclasses.dataclass(frozen=True)
class Support:
    """The answer to one requirement: ``state`` is supported, unsupported or failing."""

    state: str
    reason: str = ""

    def __bool__(self) -> bool:
        return self.state == SUPPORTED


def supported() -> Support:
    """The requirement is met: tests needing it run."""
    return Support(SUPPORTED)


def unsupported(reason: str) -> Support:
    """The requirement is not met: tests needing it are skipped with ``reason``."""
    return Support(UNSUPPORTED, reason)


def failing(reason: str) -> Support:
    """The requirement is met but known to fail: tests needing it are strict xfails."""
    return Support(FAILING, reason)


class Requirements:
    """Database capabilities and implementation features, one documented property each.

    :param database: what the plugin found out about the database under test.
    :param adapter: the adapter of the implementation under test (``adapter.module`` is
        the implementation module).
    """

    def __init__(self, database: DatabaseInfo, adapter: Adapter) -> None:
        self.database = database
        self.adapter = adapter

    # -- evaluation ---------------------------------------------------------------------

    def check(self, name: str, *args: Any) -> Support:
        """Evaluate requirement ``name`` (with ``args`` for parametrised requirements)."""
        try:
            if name.startswith("_") or name in {"check", "names"}:
                raise AttributeError(name)
            member = inspect.getattr_static(type(self), name)
        except AttributeError:
            raise LookupError(
                f"unknown requirement {name!r}; {type(self).__name__} defines: "
                f"{', '.join(self.names())}."
            ) from None
        if isinstance(member, property):
            if args:
                raise TypeError(f"requirement {name!r} takes no arguments, got {args!r}")
            value: Union[Support, bool] = getattr(self, name)
        else:
            value = getattr(self, name)(*args)
        if isinstance(value, Support):
            return value
        if value:
            return supported()
        doc = inspect.getdoc(member) or name
        return unsupported(f"{self.database.label}: not {doc.splitlines()[0].rstrip('.')}")

    @classmethod
    def names(cls) -> list[str]:
        """Every requirement this class defines."""
        found = []
        for name, member in inspect.getmembers(cls):
            if name.startswith("_") or name in {"check", "names"}:
                continue
            if isinstance(member, property) or inspect.isfunction(member):
                found.append(name)
        return sorted(found)

    # -- database capabilities (detected) -----------------------------------------------

    @property
    def savepoints(self) -> Support:
        """The database supports SAVEPOINT / ROLLBACK TO SAVEPOINT (``begin_nested``)."""
        return supported()

    @property
    def schemas(self) -> Support:
        """A second schema exists where the test user may create tables.

        The plugin creates one for the run where it may (a PostgreSQL or SQL Server schema,
        a MySQL/MariaDB database, an attached SQLite file); on Oracle a schema is a user:
        ``history_test_schema`` if it exists, or the one ``--history-schema`` names.
        """
        if self.database.schema is None:
            return unsupported(f"{self.database.label}: {self.database.schema_problem}")
        return supported()

    @property
    def concurrent_transactions(self) -> Support:
        """Two connections can hold open write transactions at the same time.

        SQLite locks the whole database file for the first writer.
        """
        if self.database.dialect_name == "sqlite":
            return unsupported("SQLite allows one writing transaction at a time")
        return supported()

    def identifier_length(self, length: int) -> Support:
        """The database accepts table and column names of ``length`` bytes."""
        limit = self.database.max_identifier_length
        if limit < length:
            return unsupported(
                f"{self.database.label} allows identifiers of {limit} bytes, not {length}"
            )
        return supported()

    @property
    def identifier_length_limit(self) -> Support:
        """The database has an identifier length limit that a too long name would break.

        SQLite has none.
        """
        if self.database.max_identifier_length >= 1000:
            return unsupported(f"{self.database.label} has no identifier length limit")
        return supported()

    @property
    def asyncio(self) -> Support:
        """An asyncio driver for the database is installed (``AsyncSession`` tests)."""
        if self.database.async_problem is not None:
            return unsupported(self.database.async_problem)
        return supported()

    @property
    def foreign_keys(self) -> Support:
        """The database enforces foreign keys, ``ON DELETE`` rules included.

        On the suite's connections: SQLite with ``PRAGMA foreign_keys`` on (the suite
        switches it on), MySQL/MariaDB with InnoDB tables and ``foreign_key_checks`` on.
        """
        if not self.database.foreign_keys:
            return unsupported(f"{self.database.label} does not enforce foreign keys here")
        return supported()

    @property
    def foreign_key_switch(self) -> Support:
        """A session can switch foreign key enforcement off (and back on).

        ``PRAGMA foreign_keys`` (SQLite), ``foreign_key_checks`` (MySQL/MariaDB),
        ``session_replication_role`` (PostgreSQL, superusers only).
        """
        if self.database.foreign_keys_switch is None:
            return unsupported(
                f"{self.database.label}: no session setting switches foreign keys off here"
            )
        return supported()

    @property
    def upserts(self) -> Support:
        """SQLAlchemy offers an upsert for the database (``ON CONFLICT`` / ``ON DUPLICATE KEY``).

        PostgreSQL, SQLite 3.24+, MySQL and MariaDB.
        """
        name = self.database.dialect_name
        if name == "sqlite" and tuple(self.database.server_version_info) < (3, 24):
            return unsupported(f"{self.database.label}: SQLite before 3.24 has no ON CONFLICT")
        if name not in ("sqlite", "postgresql", "mysql"):
            return unsupported(f"SQLAlchemy has no upsert construct for {name}")
        return supported()

    # -- implementation: configuration ---------------------------------------------------

    @property
    def operation_type_column_name(self) -> Support:
        """The ``operation_type_column_name`` option renames the operation column."""
        return supported()

    @property
    def option_validation(self) -> Support:
        """An invalid option value (an unknown ``strategy``) is rejected naming the model."""
        return supported()

    @property
    def column_collision_check(self) -> Support:
        """A parent column named like a versioning column is rejected (``ImproperlyConfigured``)."""
        return supported()

    @property
    def early_identifier_check(self) -> Support:
        """A generated name too long for the database is rejected when mappers are configured.

        (Rather than by the database when the tables are created.)
        """
        return supported()

    @property
    def generated_names_fit_limit(self) -> Support:
        """Names the implementation generates (indexes ...) fit the database's limit.

        Whenever the version table's own name does.
        """
        return supported()

    @property
    def configuration_error_recovery(self) -> Support:
        """After a configuration error, ``remove_versioning()`` leaves versioning usable.

        The next ``make_versioned()`` and models are versioned as if nothing had happened
        (what test suites that build models per test rely on).
        """
        return supported()

    @property
    def concrete_inheritance(self) -> Support:
        """Concretely inherited classes get version classes and ``versions``."""
        return supported()

    @property
    def transaction_user(self) -> Support:
        """``user_cls`` gives ``Transaction`` a ``user_id`` column and ``user`` relationship."""
        return supported()

    # -- implementation: recording -------------------------------------------------------

    @property
    def constant_history_statements(self) -> Support:
        """The statements writing history per flush do not grow with the number of rows."""
        return supported()

    @property
    def multi_flush_merge(self) -> Support:
        """Several flushes of one transaction leave one version per object, with final values."""
        return supported()

    @property
    def delete_then_insert_is_one_update(self) -> Support:
        """Deleting and re-inserting a key in one transaction writes one UPDATE version."""
        return supported()

    @property
    def insert_then_update_is_one_insert(self) -> Support:
        """Inserting then updating an object in one transaction writes one INSERT version."""
        return supported()

    @property
    def savepoint_rollback_bookkeeping(self) -> Support:
        """After ROLLBACK TO SAVEPOINT, later flushes of the transaction record correctly.

        What the implementation remembered of the rolled-back flushes is forgotten with them.
        """
        return supported()

    @property
    def non_blocking_concurrent_writes(self) -> Support:
        """Sessions inserting different rows of one versioned table do not wait for each other."""
        return supported()

    @property
    def records_bulk_statements(self) -> Support:
        """ORM bulk statements, legacy ``bulk_*`` methods and upserts are recorded like a flush.

        ``update()`` / ``delete()`` / ``insert()`` executed through a ``Session``,
        ``Query.update()`` / ``.delete()``, ``bulk_save_objects``, ``bulk_insert_mappings``,
        ``bulk_update_mappings``: the history equals what a flush of the same change leaves.
        """
        return supported()

    @property
    def records_database_cascades(self) -> Support:
        """Rows the database deletes or changes by ``ON DELETE`` rules get their versions.

        ``CASCADE`` (several levels, self-referential), ``SET NULL`` and many-to-many links
        with ``passive_deletes``: the versions a flush deleting them itself would write.
        """
        return supported()

    @property
    def many_to_many_history(self) -> Support:
        """Adding or removing a many-to-many association writes an association version row."""
        return supported()

    @property
    def many_to_many_validity(self) -> Support:
        """The validity strategy closes association versions (``end_transaction_id``)."""
        return supported()

    # -- implementation: reading ---------------------------------------------------------

    def traversal_reads_database(self, strategy: str) -> Support:
        """Under ``strategy``, ``version.next`` / ``previous`` answer from the database.

        Never a cached answer: a version written after the first question is seen.
        """
        return supported()

    @property
    def version_index_per_object(self) -> Support:
        """``version.index`` counts the versions of the same object only."""
        return supported()

    @property
    def changeset_skips_excluded_columns(self) -> Support:
        """``changeset(obj)`` of pending changes leaves out excluded columns."""
        return supported()

    @property
    def temporal_relationships(self) -> Support:
        """Relationships of the parent are reflected on the version class "as of" a version."""
        return supported()

    @property
    def eager_temporal_relationships(self) -> Support:
        """Temporal relationships are ORM relationships: ``selectinload`` loads them at once."""
        return supported()

    @property
    def vacuum(self) -> Support:
        """``vacuum(session, model)`` removes versions that changed nothing."""
        return supported()

    # -- implementation: history queries -------------------------------------------------

    @property
    def as_of_queries(self) -> Support:
        """``as_of`` / ``object_as_of``: versions valid at a point, relationships as of it too."""
        return supported()

    @property
    def audit_log(self) -> Support:
        """``changes(session, ...)``: transactions with their versions, paginated and filtered."""
        return supported()

    @property
    def version_diffs(self) -> Support:
        """``diff(older, newer, relations=[...])`` compares any two versions of one object."""
        return supported()

    @property
    def retention(self) -> Support:
        """``prune``, ``purge`` and ``redact`` remove or overwrite history, chains kept valid."""
        return supported()

    # -- implementation: reverting -------------------------------------------------------

    @property
    def revert_relations(self) -> Support:
        """``version.revert(relations=[...])`` restores the named relationships too."""
        return supported()

    @property
    def revert_deleted_with_relations(self) -> Support:
        """Reverting a deleted object with ``relations`` recreates it before its children.

        (Foreign keys hold at every flush.)
        """
        return supported()

    @property
    def revert_relation_path_check(self) -> Support:
        """An unknown name deeper in a relation path (``"tags.nonexistent"``) is rejected."""
        return supported()

    # -- implementation: plugins ---------------------------------------------------------

    @property
    def plugin_hooks(self) -> Support:
        """Custom ``Plugin`` subclasses' hooks (``transaction_args``, changeset) run."""
        return supported()

    @property
    def plugin_hook_validation(self) -> Support:
        """A ``Plugin`` subclass with a misspelt hook name is rejected when registered."""
        return supported()

    @property
    def property_mod_tracker_plugin(self) -> Support:
        """``PropertyModTrackerPlugin``: a ``<column>_mod`` flag per versioned column."""
        return supported()

    @property
    def transaction_changes_plugin(self) -> Support:
        """``TransactionChangesPlugin``: the changed entity names of each transaction."""
        return supported()

    @property
    def transaction_meta_plugin(self) -> Support:
        """``TransactionMetaPlugin``: key/value ``meta`` of a transaction."""
        return supported()

    @property
    def null_delete_plugin(self) -> Support:
        """``NullDeletePlugin``: DELETE versions store NULLs instead of the last values."""
        return supported()

    # -- implementation: asyncio ---------------------------------------------------------

    @property
    def async_sessions(self) -> Support:
        """Flushes of an ``AsyncSession`` are recorded like those of a ``Session``."""
        return supported()

    @property
    def support_async_option(self) -> Support:
        """``support_async`` makes ``versions`` a ``write_only`` relationship."""
        return supported()

    @property
    def async_traversal(self) -> Support:
        """Version objects offer awaitable ``aprevious``, ``anext`` and ``aindex``."""
        return supported()
