"""Throwaway database servers started with ``testcontainers`` (imported only when needed).

Used when ``--db NAME`` names a database whose ``SQLALCHEMY_HISTORY_<NAME>_URL`` is not
set. The servers are prepared like ``docker/compose.yml`` prepares its own: SQL Server gets
a real database with snapshot isolation, Oracle an application user.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

if TYPE_CHECKING:
    from .databases import Backend

PASSWORD = "History-Test-1"
MSSQL_DATABASE = "history_test"


def _module(backend: Backend) -> Any:
    # Current module paths (testcontainers >= 4.14); the top-level ones are deprecated.
    return importlib.import_module(f"testcontainers.community.{backend.container_module}")


def start(backend: Backend) -> tuple[Any, URL]:
    """Start a container for ``backend``; return it and the sync URL of its database."""
    module = _module(backend)
    if backend.name == "postgresql":
        container = module.PostgresContainer(
            backend.image, username="postgres", password=PASSWORD, dbname="test"
        ).start()
        url = make_url(container.get_connection_url(driver="psycopg2"))
    elif backend.name in ("mysql", "mariadb"):
        container = module.MySqlContainer(
            backend.image, dialect="pymysql", username="root", password=PASSWORD, dbname="test"
        ).start()
        url = make_url(container.get_connection_url()).update_query_dict({"charset": "utf8mb4"})
    elif backend.name == "mssql":
        container = module.SqlServerContainer(
            backend.image, password=PASSWORD, dialect="mssql+pymssql", dbname="master"
        ).start()
        url = _prepare_mssql(make_url(container.get_connection_url()))
    elif backend.name == "oracle":
        container = module.OracleDbContainer(
            backend.image, oracle_password=PASSWORD, username="history", password="history"
        ).start()
        url = make_url(container.get_connection_url())
    else:  # pragma: no cover - every backend but SQLite is listed above
        raise ValueError(f"no container recipe for {backend.name}")
    return container, url


def _prepare_mssql(master_url: URL) -> URL:
    """Create the test database with snapshot isolation (as docker/init/mssql does)."""
    engine = sa.create_engine(master_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(
                sa.text(f"IF DB_ID(N'{MSSQL_DATABASE}') IS NULL CREATE DATABASE {MSSQL_DATABASE}")
            )
            connection.execute(
                sa.text(f"ALTER DATABASE {MSSQL_DATABASE} SET ALLOW_SNAPSHOT_ISOLATION ON")
            )
            connection.execute(
                sa.text(
                    f"ALTER DATABASE {MSSQL_DATABASE} SET READ_COMMITTED_SNAPSHOT ON "
                    f"WITH ROLLBACK IMMEDIATE"
                )
            )
    finally:
        engine.dispose()
    return master_url.set(database=MSSQL_DATABASE)
