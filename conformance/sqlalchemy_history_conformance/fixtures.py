"""Building versioned models for one test, on one database, with the implementation under test.

``conformance_models(define, options=..., user_cls=...)`` switches versioning on through the
adapter, lets ``define(Base)`` declare models on a fresh declarative base, configures mappers
and creates the tables. When the test ends, versioning is switched off first (so no listener
of the implementation sees the cleanup), then the tables are emptied for the next test or
dropped, and the declarative registry is disposed: every test starts from nothing.

``conformance_models.configuration_error(ExcType, define, ...)`` builds models that must be
rejected in a forked child process, so whatever a configuration error leaves behind cannot
reach a later test.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pickle
import re
import warnings
from collections.abc import Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers

if TYPE_CHECKING:
    from .adapter import Adapter
    from .databases import Target

T = TypeVar("T")
Define = Callable[[type[DeclarativeBase]], dict[str, Any]]
Expected = Union[type[BaseException], tuple[type[BaseException], ...]]


@dataclasses.dataclass(frozen=True)
class ConfigurationError:
    """What building rejected models raised (``type_name`` ``None``: nothing)."""

    type_name: Optional[str]
    message: str
    #: Whether it was an instance of the expected exception class(es).
    is_expected: bool


def _names(expected: Expected) -> str:
    classes = expected if isinstance(expected, tuple) else (expected,)
    return " or ".join(c.__qualname__ for c in classes)


def _describe(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}: {error}"


def _isolated(fn: Callable[[], T]) -> T:
    """Run ``fn`` in a forked child and return its (picklable) result.

    Without ``fork`` (Windows) ``fn`` runs in this process. An exception in the child is
    raised here as ``IsolatedError`` carrying its description.
    """
    if not hasattr(os, "fork"):  # pragma: no cover - Windows
        return fn()
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process with threads (aiosqlite's); the child
        # only configures mappers and never touches those threads or their connections.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report, then leave without running any cleanup
        os.close(read_end)
        try:
            try:
                data = pickle.dumps((True, fn()))
            except BaseException as error:
                data = pickle.dumps((False, _describe(error)))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    os.waitpid(pid, 0)
    if not data:
        raise RuntimeError("the child process building the models died without a result")
    ok, value = pickle.loads(data)
    if not ok:
        raise IsolatedError(value)
    result: T = value
    return result


class IsolatedError(Exception):
    """An exception raised in the isolated child process (its description is the message)."""


class Implementation:
    """What a test sees of the implementation: its top-level names and public modules.

    ``history.version_class`` is the top-level name; ``history.utils``, ``history.exc``,
    ``history.plugins`` and ``history.reverter`` are the public modules of the same names
    (``sqlalchemy_history.utils`` ...), which is where the three libraries' shared API lives.
    """

    def __init__(self, adapter: Adapter) -> None:
        self.adapter = adapter
        self.module = adapter.module
        self._modules: dict[str, ModuleType] = {}

    def _submodule(self, name: str) -> ModuleType:
        if name not in self._modules:
            self._modules[name] = self.adapter.submodule(name)
        return self._modules[name]

    @property
    def utils(self) -> ModuleType:
        return self._submodule("utils")

    @property
    def exc(self) -> ModuleType:
        return self._submodule("exc")

    @property
    def plugins(self) -> ModuleType:
        return self._submodule("plugins")

    @property
    def reverter(self) -> ModuleType:
        return self._submodule("reverter")

    @property
    def versioning_manager(self) -> Any:
        return self.adapter.manager

    def __getattr__(self, name: str) -> Any:
        return getattr(self.module, name)


class Models:
    """The models of one test; ``models.Article`` is the class ``define`` declared."""

    def __init__(
        self,
        history: Implementation,
        db: Target,
        base: type[DeclarativeBase],
        models: dict[str, Any],
    ) -> None:
        self.history = history
        self.db = db
        self.Base = base
        self.metadata = base.metadata
        self.models = models

    def __getattr__(self, name: str) -> Any:
        try:
            return self.models[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def engine(self) -> sa.Engine:
        return self.db.engine

    @property
    def manager(self) -> Any:
        return self.history.versioning_manager

    @property
    def Transaction(self) -> Any:
        """The mapped transaction class."""
        return self.manager.transaction_cls

    def session(self, **kwargs: Any) -> Session:
        """A sync ``Session`` (for an async target, on its ``sync_engine``)."""
        return Session(self.engine, **kwargs)

    def async_session(self, **kwargs: Any) -> Any:
        """An ``AsyncSession`` on this database through its asyncio driver."""
        from sqlalchemy.ext.asyncio import AsyncSession

        return AsyncSession(self.db.async_engine, **kwargs)

    @contextlib.contextmanager
    def foreign_keys_off(self) -> Iterator[sa.Connection]:
        """A connection on which the database does not enforce foreign keys.

        Bind a ``Session`` to it; enforcement is switched back on (and the connection
        returned to the pool) when the block ends. Tests using it require
        ``foreign_key_switch``.
        """
        switch = self.db.info.foreign_keys_switch
        if switch is None:
            raise RuntimeError(f"{self.db.label}: a session cannot switch foreign keys off")
        off, on = switch
        with self.engine.connect() as connection:
            # Outside any transaction: SQLite ignores the PRAGMA inside one.
            connection.exec_driver_sql(off)
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.exec_driver_sql(on)
                connection.commit()

    def table(self, name: str) -> sa.Table:
        """A table of the models' MetaData by its key (``schema.name`` when in a schema)."""
        return self.metadata.tables[name]

    def rows(self, name: str, order_by: Optional[list[str]] = None) -> list[dict[str, Any]]:
        """Every row of table ``name`` as a dict, ordered by ``order_by`` (default: its key)."""
        table = self.table(name)
        columns = [table.c[c] for c in order_by] if order_by else list(table.primary_key)
        with self.engine.connect() as connection:
            result = connection.execute(sa.select(table).order_by(*columns)).mappings()
            return [dict(row) for row in result]

    async def arows(self, name: str, order_by: Optional[list[str]] = None) -> list[dict[str, Any]]:
        """``rows`` for ``async def`` tests."""
        from sqlalchemy.util import greenlet_spawn

        return await greenlet_spawn(self.rows, name, order_by)


class ModelBuilder:
    """The ``conformance_models`` fixture's value: call it to build models."""

    def __init__(self, history: Implementation, db: Target) -> None:
        self.history = history
        self.adapter = history.adapter
        self.db = db
        self._bases: list[type[DeclarativeBase]] = []
        self._versioning = False
        self._created: list[type[DeclarativeBase]] = []

    def __call__(
        self,
        define: Define,
        options: Optional[dict[str, Any]] = None,
        user_cls: Any = None,
        plugins: Optional[list[Any]] = None,
        create: bool = True,
    ) -> Models:
        """Declare, configure and (with ``create``) create the models ``define`` returns.

        ``define(Base)`` declares classes and returns them in a dict (``locals()`` will do).
        In async targets call it inside the test body (which runs in ``greenlet_spawn``)
        or use ``await conformance_models.abuild(...)`` in ``async def`` tests.
        """
        if self._versioning:
            raise RuntimeError("conformance_models builds one set of models per test")
        self._versioning = True
        self.adapter.make_versioned(options=options, plugins=plugins, user_cls=user_cls)

        class Base(DeclarativeBase):
            pass

        self._bases.append(Base)
        models = {k: v for k, v in define(Base).items() if isinstance(v, type)}
        configure_mappers()
        built = Models(self.history, self.db, Base, models)
        if create:
            self.db.create_tables(Base.metadata, self.adapter)
            self._created.append(Base)
        return built

    async def abuild(self, define: Define, **kwargs: Any) -> Models:
        """``conformance_models(...)`` for ``async def`` tests."""
        from sqlalchemy.util import greenlet_spawn

        result: Models = await greenlet_spawn(self, define, **kwargs)
        return result

    def isolated(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (which may build models) where nothing it leaves behind survives.

        Where the platform can fork, ``fn`` runs in a child process and its result must be
        picklable; whatever a failed configuration leaves behind (in the implementation, in
        SQLAlchemy's mapper registries) dies with the child. Without ``fork`` (Windows) it
        runs here. Either way versioning is switched off and the classes are disposed when
        ``fn`` returns. Build models with ``create=False`` inside: the database is not
        for the child to touch.
        """

        def run() -> T:
            try:
                return fn()
            finally:
                self.close(keep=False)

        return _isolated(run)

    def configuration_error(
        self, expected: Expected, define: Define, match: Optional[str] = None, **kwargs: Any
    ) -> ConfigurationError:
        """Build models that must be rejected with ``expected`` (message matching ``match``).

        The models are built in isolation (see ``isolated``) and nothing is created in the
        database, so a configuration error can never reach a later test.
        """

        def attempt() -> ConfigurationError:
            try:
                self(define, create=False, **kwargs)
            except BaseException as error:
                return ConfigurationError(
                    _describe(error).split(":", 1)[0], str(error), isinstance(error, expected)
                )
            return ConfigurationError(None, "", False)

        outcome = self.isolated(attempt)
        if outcome.type_name is None:
            pytest.fail(f"DID NOT RAISE {_names(expected)}")
        if not outcome.is_expected:
            pytest.fail(f"expected {_names(expected)}, got {outcome.type_name}: {outcome.message}")
        if match is not None and not re.search(match, outcome.message):
            pytest.fail(f"{outcome.type_name} message does not match {match!r}: {outcome.message}")
        return outcome

    def close(self, keep: bool = True) -> None:
        """Switch versioning off, then empty or drop the tables and forget the classes.

        ``keep``: the test passed, so its tables may be emptied and kept for the next test.
        """
        created, self._created = self._created, []
        bases, self._bases = self._bases, []
        try:
            if self._versioning:
                self._versioning = False
                self.adapter.remove_versioning()
        finally:
            try:
                keep = keep and len(created) == 1
                for base in created:
                    self.db.call(self.db.release_tables, base.metadata, self.adapter, keep)
            finally:
                for base in bases:
                    with contextlib.suppress(Exception):
                        base.registry.dispose()
