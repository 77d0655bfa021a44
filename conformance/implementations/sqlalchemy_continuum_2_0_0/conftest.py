"""The conformance suite on SQLAlchemy-Continuum 2.0.0 (PyPI), as its maintainers would run it.

    pip install "SQLAlchemy-Continuum==2.0.0" "path/to/sqlalchemy-history/conformance[asyncio]"
    pytest            # in this directory; --db / --dburi / --async as in the README

Every behaviour SQLAlchemy-Continuum 2.0.0 lacks or gets wrong is declared below, each with
the reason: the run fails on any other failure, and on a declared failure that passes.
"""

from __future__ import annotations

import importlib.metadata

from sqlalchemy_history_conformance import Adapter, Requirements, Support, failing, unsupported

pytest_plugins = ["sqlalchemy_history_conformance.plugin"]

VERSION = "2.0.0"


class SQLAlchemyContinuum200Requirements(Requirements):
    """What SQLAlchemy-Continuum 2.0.0 does differently from the contract."""

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
    def generated_names_fit_limit(self) -> Support:
        if self.database.max_identifier_length >= 1000:  # SQLite: no limit to exceed
            return super().generated_names_fit_limit
        return failing(
            "index names are the version table name plus a suffix, longer than the database "
            "allows when the table name is at the limit"
        )

    @property
    def concrete_inheritance(self) -> Support:
        return failing("concretely inherited classes get no `versions` attribute")

    @property
    def constant_history_statements(self) -> Support:
        return failing(
            "each version is written by its own INSERT, and its previous version read by its "
            "own SELECT and closed by its own UPDATE: statements grow with the rows flushed"
        )

    @property
    def insert_then_update_is_one_insert(self) -> Support:
        return failing("insert then update in one transaction is recorded as one UPDATE version")

    @property
    def savepoint_rollback_bookkeeping(self) -> Support:
        return failing(
            "after ROLLBACK TO SAVEPOINT, a later flush of the transaction fails "
            "(it releases a savepoint that no longer exists)"
        )

    @property
    def many_to_many_validity(self) -> Support:
        return failing("association versions are never closed: end_transaction_id stays NULL")

    def traversal_reads_database(self, strategy: str) -> Support:
        if strategy == "validity":
            return failing("version.next is cached under the validity strategy")
        return super().traversal_reads_database(strategy)

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
    def revert_relation_path_check(self) -> Support:
        return failing("an unknown name deeper in a relation path is ignored")

    @property
    def plugin_hook_validation(self) -> Support:
        return failing("a Plugin subclass with a misspelt hook name is accepted silently")

    @property
    def support_async_option(self) -> Support:
        return unsupported("no support_async option: `versions` is always a dynamic relationship")


class SQLAlchemyContinuum200Adapter(Adapter):
    """SQLAlchemy-Continuum 2.0.0 through the shared API: the defaults fit it."""

    module_name = "sqlalchemy_continuum"
    distribution = "SQLAlchemy-Continuum"
    requirements_cls = SQLAlchemyContinuum200Requirements

    def __init__(self) -> None:
        installed = importlib.metadata.version(self.distribution)
        if installed != VERSION:
            raise RuntimeError(f"expected SQLAlchemy-Continuum {VERSION}, found {installed}")
        super().__init__()


def pytest_history_conformance_adapter(config):
    return SQLAlchemyContinuum200Adapter()
