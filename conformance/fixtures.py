"""Building versioned models for one test, on one database, with the implementation under test.

``conformance_models(define, options=..., user_cls=...)`` calls the implementation's
``make_versioned``, lets ``define(Base)`` declare models on a fresh declarative base,
configures mappers and creates the tables; at the end of the test versioning is removed
and the tables dropped, so every test starts from nothing.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable, Optional

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers

if TYPE_CHECKING:
    from .databases import Target

Define = Callable[[type[DeclarativeBase]], dict[str, Any]]


class Models:
    """The models of one test; ``models.Article`` is the class ``define`` declared."""

    def __init__(
        self, history: ModuleType, db: Target, base: type[DeclarativeBase], models: dict[str, Any]
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

        return AsyncSession(self.db.async_engine, expire_on_commit=False, **kwargs)

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

    def __init__(self, history: ModuleType, db: Target) -> None:
        self.history = history
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
        self.history.make_versioned(user_cls=user_cls, options=options, plugins=plugins)
        self._versioning = True

        class Base(DeclarativeBase):
            pass

        self._bases.append(Base)
        models = {k: v for k, v in define(Base).items() if isinstance(v, type)}
        configure_mappers()
        built = Models(self.history, self.db, Base, models)
        if create:
            self.db.create_tables(Base.metadata)
            self._created.append(Base)
        return built

    async def abuild(self, define: Define, **kwargs: Any) -> Models:
        """``conformance_models(...)`` for ``async def`` tests."""
        from sqlalchemy.util import greenlet_spawn

        result: Models = await greenlet_spawn(self, define, **kwargs)
        return result

    def close(self) -> None:
        """Remove versioning, drop the tables and forget the classes."""
        if self._versioning:
            self.history.remove_versioning()
        keep = len(self._created) == 1
        try:
            for base in self._created:
                self.db.call(self.db.release_tables, base.metadata, keep)
        finally:
            for base in self._bases:
                with contextlib.suppress(Exception):
                    base.registry.dispose()
