"""The conformance suite on SQLAlchemy-History 2.2.1 (PyPI), as its maintainers would run it.

    pip install "SQLAlchemy-History==2.2.1" "path/to/sqlalchemy-history/conformance[asyncio]"
    pytest            # in this directory; --db / --dburi / --async as in the README

Every behaviour SQLAlchemy-History 2.2.1 lacks or gets wrong is declared below, each with
the reason: the run fails on any other failure, and on a declared failure that passes.
"""

from __future__ import annotations

import importlib.metadata

from sqlalchemy_history_conformance import Adapter, Requirements, Support, failing, unsupported

pytest_plugins = ["sqlalchemy_history_conformance.plugin"]

VERSION = "2.2.1"


class SQLAlchemyHistory221Requirements(Requirements):
    """What SQLAlchemy-History 2.2.1 does differently from the contract."""

    @property
    def operation_type_column_name(self) -> Support:
        return failing("operation_type_column_name is ignored: the renamed column gets NULL")

    @property
    def option_validation(self) -> Support:
        return failing("an unknown strategy is accepted silently (the validity strategy is used)")

    @property
    def column_collision_check(self) -> Support:
        return failing(
            "a parent column named transaction_id fails with SQLAlchemy's DuplicateColumnError, "
            "not ImproperlyConfigured"
        )

    @property
    def early_identifier_check(self) -> Support:
        return failing("too long generated names are left for the database to reject at CREATE")

    @property
    def configuration_error_recovery(self) -> Support:
        return failing(
            "after an error while configuring, version classes are never built again in the "
            "process (the after_configured handler's re-entry guard stays set)"
        )

    @property
    def concrete_inheritance(self) -> Support:
        return failing("concretely inherited classes get no `versions` attribute")

    @property
    def constant_history_statements(self) -> Support:
        return failing(
            "each version is written by its own INSERT and its previous version closed by its "
            "own UPDATE: statements grow with the number of rows flushed"
        )

    @property
    def savepoint_rollback_bookkeeping(self) -> Support:
        return failing(
            "after ROLLBACK TO SAVEPOINT the version objects and transaction flushed inside it "
            "are still used: a later flush updates rolled-back version rows (StaleDataError) "
            "or writes versions whose transaction row was rolled back"
        )

    @property
    def non_blocking_concurrent_writes(self) -> Support:
        if self.database.dialect_name == "mysql":
            return failing(
                "a session inserting a row waits for another session's open insert into the "
                "same version table (InnoDB gap lock) until the lock wait times out"
            )
        return super().non_blocking_concurrent_writes

    def traversal_reads_database(self, strategy: str) -> Support:
        return failing("version.next is cached: a version added later is not seen")

    @property
    def version_index_per_object(self) -> Support:
        return failing("version.index counts the versions of every object of the table")

    @property
    def changeset_skips_excluded_columns(self) -> Support:
        return failing("changeset(obj) includes changes of excluded columns")

    @property
    def eager_temporal_relationships(self) -> Support:
        return failing("temporal relationships are Python properties; selectinload rejects them")

    @property
    def vacuum(self) -> Support:
        return failing(
            "vacuum compares each version with the object's first version only (and with "
            "end_transaction_id), so a version repeating the previous one is kept"
        )

    @property
    def records_bulk_statements(self) -> Support:
        return unsupported(
            "only flushes are recorded: update() / delete() / insert() executed through a "
            "Session, Query.update() / .delete(), the bulk_* methods and upserts leave no "
            "history"
        )

    @property
    def records_database_cascades(self) -> Support:
        return unsupported(
            "rows that ON DELETE CASCADE / SET NULL rules delete or change (passive_deletes, "
            "bulk deletes) get no versions"
        )

    @property
    def as_of_queries(self) -> Support:
        return unsupported("no as_of() / object_as_of(): versions are read one object at a time")

    @property
    def audit_log(self) -> Support:
        return unsupported("no changes() audit log")

    @property
    def version_diffs(self) -> Support:
        return unsupported("no diff(): only a version's changeset against the previous one")

    @property
    def retention(self) -> Support:
        return unsupported("no prune() / purge() / redact(); vacuum() is the only clean-up")

    @property
    def revert_deleted_with_relations(self) -> Support:
        return failing(
            "reverting a deleted object with relations flushes its children first "
            "(foreign key violation)"
        )

    @property
    def plugin_hook_validation(self) -> Support:
        return failing("a Plugin subclass with a misspelt hook name is accepted silently")


class SQLAlchemyHistory221Adapter(Adapter):
    """SQLAlchemy-History 2.2.1 through the shared API: the defaults fit it."""

    module_name = "sqlalchemy_history"
    distribution = "SQLAlchemy-History"
    requirements_cls = SQLAlchemyHistory221Requirements

    def __init__(self) -> None:
        # This import name is shared with sqlalchemy-history 3: make sure which one runs.
        installed = importlib.metadata.version(self.distribution)
        if installed != VERSION:
            raise RuntimeError(f"expected SQLAlchemy-History {VERSION}, found {installed}")
        super().__init__()


def pytest_history_conformance_adapter(config):
    return SQLAlchemyHistory221Adapter()
