"""The implementation adapter: the one seam between the suite and the implementation it tests.

The suite never imports an implementation. It asks an ``Adapter`` for the implementation's
modules, to switch versioning on and off around each test, and to create and drop tables.
An implementer subclasses ``Adapter`` in the ``conftest.py`` that loads the plugin and
returns an instance from the ``pytest_history_conformance_adapter`` hook::

    pytest_plugins = ["sqlalchemy_history_conformance.plugin"]

    class MyAdapter(Adapter):
        module_name = "my_history"
        requirements_cls = MyRequirements

    def pytest_history_conformance_adapter(config):
        return MyAdapter()

Every default below uses only the API that SQLAlchemy-History 2.2.1, SQLAlchemy-Continuum
2.0.0 and sqlalchemy-history 3 share (``make_versioned``, ``remove_versioning``,
``versioning_manager`` and its ``options``, ``plugins``, ``transaction_cls``,
``TransactionFactory``); override a method where an implementation needs something else.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
from types import ModuleType
from typing import TYPE_CHECKING, Any, ClassVar, Optional

import sqlalchemy as sa

from .requirements import Requirements

if TYPE_CHECKING:
    from .databases import Target


class Adapter:
    """How the suite drives one implementation (defaults: the API the three libraries share).

    Class attributes say *what* is tested; methods say *how* versioning is switched on,
    reset and given tables. One instance serves the whole run.
    """

    #: The implementation's import name: what its users ``import``.
    module_name: ClassVar[str] = "sqlalchemy_history"
    #: The distribution that provides it (for the run's header), or ``None``.
    distribution: ClassVar[Optional[str]] = None
    #: The ``Requirements`` subclass that says what the implementation offers.
    requirements_cls: ClassVar[type[Requirements]] = Requirements

    def __init__(self) -> None:
        self.module = importlib.import_module(self.module_name)
        # What the manager holds before any test configured it; restored after each test.
        self._initial_options = copy.deepcopy(dict(self.manager.options))

    # -- the implementation's public surface ------------------------------------------------

    @property
    def manager(self) -> Any:
        """The default versioning manager (``<module>.versioning_manager``)."""
        return self.module.versioning_manager

    def submodule(self, name: str) -> ModuleType:
        """A public module of the implementation: ``utils``, ``exc``, ``plugins``, ``reverter``."""
        return importlib.import_module(f"{self.module_name}.{name}")

    def describe(self) -> str:
        """The implementation as the run's header and summary name it."""
        where = getattr(self.module, "__file__", None) or "?"
        version = ""
        if self.distribution is not None:
            try:
                version = " " + importlib.metadata.version(self.distribution)
            except importlib.metadata.PackageNotFoundError:
                version = " (not installed as a distribution)"
        return f"{self.module_name}{version} ({where})"

    # -- switching versioning on and off ------------------------------------------------

    def make_versioned(
        self,
        *,
        options: Optional[dict[str, Any]] = None,
        plugins: Optional[list[Any]] = None,
        user_cls: Any = None,
    ) -> None:
        """Switch versioning on before a test declares its models."""
        self.module.make_versioned(user_cls=user_cls, options=options, plugins=plugins)

    def remove_versioning(self) -> None:
        """Switch versioning off after a test and reset every piece of manager state.

        ``remove_versioning()`` removes the listeners and resets the class registries; the
        options, plugins and transaction class the test configured are put back here,
        because not every implementation's ``reset()`` does it (the next test must not find
        the previous test's ``Transaction`` class, whose registry is gone).
        """
        self.module.remove_versioning()
        manager = self.manager
        manager.options = copy.deepcopy(self._initial_options)
        manager.plugins = []
        manager.transaction_cls = self.module.TransactionFactory()

    def identifier_length_options(self, length: int) -> dict[str, Any]:
        """Manager options under which generated names of ``length`` bytes are accepted.

        Most implementations accept any name the database accepts (``{}``); one that keeps
        names portable by default returns the option that lifts its limit.
        """
        return {}

    # -- tables -------------------------------------------------------------------------

    def create_tables(self, metadata: sa.MetaData, connection: sa.Connection, db: Target) -> None:
        """Create the tables of a test's models (versioning is on; no table exists yet)."""
        metadata.create_all(connection, checkfirst=False)

    def drop_tables(self, metadata: sa.MetaData, connection: sa.Connection, db: Target) -> None:
        """Drop the tables of a test's models (versioning is off by then)."""
        metadata.drop_all(connection)
