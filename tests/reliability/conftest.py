"""Fixtures of the reliability suite: strategies, the workload's models, async engines.

The database comes from ``tests/conftest.py`` (``engine``, ``versioned``: SQLite, plus
PostgreSQL and MySQL/MariaDB when configured); what each test needs of it is asked with
``capabilities.Capabilities``.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from .capabilities import Capabilities
from .workload import Models, define, prepare_engine

STRATEGIES = ["validity", "subquery"]

#: The asyncio driver per database of the suite.
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql"}


@pytest.fixture(params=STRATEGIES)
def strategy(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def caps(engine: sa.Engine) -> Capabilities:
    return Capabilities(engine)


def workload_models(versioned: Any, strategy: str) -> Models:
    """Version the workload's models with ``strategy`` on the test's database."""
    v = versioned(define, options={"strategy": strategy})
    return Models.of(v.models, v.Transaction)


@pytest.fixture
def prepared_engine(engine: sa.Engine) -> sa.Engine:
    """The test's engine, set up for concurrent writers (``workload.prepare_engine``)."""
    prepare_engine(engine)
    return engine


def async_engine_for(engine: sa.Engine, pool_size: int = 10) -> Any:
    """An ``AsyncEngine`` on ``engine``'s database through its asyncio driver, prepared
    for concurrent writers; skip when the driver is not installed."""
    driver = ASYNC_DRIVERS[engine.dialect.name]
    pytest.importorskip("greenlet")
    pytest.importorskip(driver)
    from sqlalchemy.ext.asyncio import create_async_engine

    url = engine.url.set(drivername=f"{engine.url.get_backend_name()}+{driver}")
    options: dict[str, Any] = {}
    if engine.dialect.name != "sqlite":
        options.update(pool_size=pool_size, max_overflow=4, pool_timeout=60)
    async_engine = create_async_engine(url, **options)
    prepare_engine(async_engine.sync_engine)
    return async_engine
