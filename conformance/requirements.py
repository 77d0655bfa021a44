"""Requirements: what the database under test can do and what the implementation offers.

Tests say what they need with ``@pytest.mark.requires("savepoints")`` (or, for a
parametrised requirement, ``@pytest.mark.requires("identifier_length", 128)``); the plugin
evaluates the name against an instance of the configured requirements class for the
database each test runs on:

- a *supported* requirement lets the test run;
- an *unsupported* one skips it, with the reason shown in the run's summary;
- a *failing* one runs it as a strict expected failure: it must fail, and an unexpected
  pass fails the run (so a fixed bug cannot stay marked as failing).

There are two kinds of requirement. Database capabilities are detected from the server the
run is connected to (``self.database``). Implementation features say what the
implementation under test offers; the values here are those of the reference
implementation, ``sqlalchemy_history``, and flip to supported as features land. A fork
subclasses this class, overrides what differs, and names its class in
``[tool.sqlalchemy_history.conformance] requirements = "package.module:Class"`` (or
``--requirements``)::

    class ForkRequirements(Requirements):
        @property
        def temporal_relationships(self) -> Support:
            return supported()          # the fork has them already

        @property
        def savepoints(self) -> Support:
            if self.database.dialect_name == "oracle":
                return failing("fork issue #12: savepoint bookkeeping on Oracle")
            return super().savepoints

Every requirement is a property (or, when it takes arguments, a method) returning a
``Support`` value; returning a plain ``bool`` is accepted too (its docstring's first line
is then the reason).
"""

from __future__ import annotations

import dataclasses
import inspect
from types import ModuleType
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
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
    :param implementation: the implementation module under test (what ``history`` is).
    """

    def __init__(self, database: DatabaseInfo, implementation: ModuleType) -> None:
        self.database = database
        self.implementation = implementation

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

    # -- database capabilities ------------------------------------------------------------

    @property
    def savepoints(self) -> Support:
        """The database supports SAVEPOINT / ROLLBACK TO SAVEPOINT (``begin_nested``)."""
        return supported()

    @property
    def schemas(self) -> Support:
        """A second schema exists where the test user may create tables.

        The plugin creates ``history_test_schema`` where it may (PostgreSQL, MySQL/MariaDB
        databases, SQL Server schemas, an attached SQLite file); on Oracle a schema is a
        user, which ``docker/init/oracle`` creates.
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

    # -- implementation features (status of sqlalchemy_history) --------------------------
    #
    # A feature the reference implementation does not have yet is declared with
    # ``return unsupported("<feature> is not implemented in sqlalchemy_history yet")``
    # next to its suite module, and flipped to ``supported()`` when it lands.

    @property
    def support_async_option(self) -> Support:
        """``support_async`` makes ``versions`` a ``write_only`` relationship."""
        return supported()

    @property
    def transaction_user(self) -> Support:
        """``user_cls`` gives ``Transaction`` a ``user_id`` column and ``user`` relationship."""
        return supported()

    @property
    def vacuum(self) -> Support:
        """``vacuum(session, model)`` removes versions that changed nothing."""
        return supported()

    @property
    def plugin_hooks(self) -> Support:
        """Custom ``Plugin`` subclasses: hooks run, misspelt hook names are rejected."""
        return supported()

    @property
    def temporal_relationships(self) -> Support:
        """Relationships of the parent are reflected on the version class "as of" a version."""
        return supported()

    @property
    def many_to_many_history(self) -> Support:
        """Adding or removing a many-to-many association writes an association version row."""
        return supported()

    @property
    def revert_relations(self) -> Support:
        """``version.revert(relations=[...])`` restores the named relationships too."""
        return supported()

    @property
    def plugins(self) -> Support:
        """The bundled plugins (PropertyModTracker, TransactionChanges, TransactionMeta ...)."""
        return supported()
