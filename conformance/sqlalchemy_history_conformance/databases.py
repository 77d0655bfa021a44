"""Databases the suite runs on: choosing them, reaching them, and what each one can do.

A *target* is one database reached through one driver, sync or asyncio: ``postgresql``,
``postgresql-async``, ``sqlite`` ... Every test taking ``conformance_db`` runs once per
target. Where a target's URL comes from, in order:

1. ``--dburi URL`` names it directly (any SQLAlchemy URL; an asyncio driver such as
   ``postgresql+asyncpg`` makes an async target);
2. ``--db NAME``: the environment variable ``SQLALCHEMY_HISTORY_<NAME>_URL`` points at an
   existing server; without it a throwaway container is started with ``testcontainers``
   (Docker needed); with neither, the run stops and says what to set;
3. no ``--db``/``--dburi``: SQLite, plus every database whose URL variable is set
   (``SQLALCHEMY_HISTORY_DATABASES=sqlite,postgresql`` narrows that list). No container
   is started unless asked for.

Schema tests need a second schema. By default each run creates its own, named
``history_conformance_<random>`` (a PostgreSQL or SQL Server schema, a MySQL/MariaDB
database, an attached SQLite file), and drops it at the end, so runs sharing a server never
meet; ``--history-schema NAME`` uses an existing schema instead and leaves it in place
(its tables are dropped). Oracle schemas are users, which the suite does not create: there
it uses ``history_test_schema`` when that user exists (``docker/init/oracle`` creates it),
or the schema ``--history-schema`` names.

SQLite connections run with ``PRAGMA foreign_keys=ON``, as every other database enforces
foreign keys (the asyncio engine the ``AsyncSession`` tests of a sync target use too);
``DatabaseInfo.foreign_keys`` says whether the suite's connections enforce them, and
``foreign_keys_switch`` how one session switches that off (requirements ``foreign_keys``,
``foreign_key_switch``).

``--async`` adds, for every sync target, the same database through its asyncio driver;
the whole suite then runs there too, each test body inside ``greenlet_spawn`` (the way
SQLAlchemy's own suite runs on asyncio drivers), plus the ``AsyncSession`` tests.

This module is test infrastructure: its per-database branches prepare servers (schemas,
snapshot isolation) and never touch the implementation under test.

**The suite drops every table in the databases it is pointed at.** Use test databases.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
import shutil
import tempfile
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL, make_url

if TYPE_CHECKING:
    from .adapter import Adapter

T = TypeVar("T")

#: How long a MySQL/MariaDB session waits for a row lock before failing the test.
LOCK_WAIT_SECONDS = 5

#: Prefix of the second schema each run creates (``--history-schema`` names one instead).
SCHEMA_PREFIX = "history_conformance_"
#: The second schema on Oracle, where schemas are users the suite cannot create.
ORACLE_SCHEMA = "history_test_schema"


@dataclasses.dataclass(frozen=True)
class Backend:
    """What the suite knows about one kind of database."""

    name: str
    #: SQLAlchemy ``dialect+driver`` of the sync and asyncio drivers.
    sync_driver: str
    async_driver: Optional[str]
    #: pip package providing each driver (named in error messages).
    sync_package: str
    async_package: Optional[str]
    #: Example URL, matching ``docker/compose.yml``.
    example_url: str
    #: ``testcontainers.community`` module and the image the suite starts.
    container_module: str
    image: str

    @property
    def env_var(self) -> str:
        return f"SQLALCHEMY_HISTORY_{self.name.upper()}_URL"


BACKENDS: dict[str, Backend] = {
    b.name: b
    for b in (
        Backend(
            "sqlite",
            "sqlite+pysqlite",
            "sqlite+aiosqlite",
            "(standard library)",
            "aiosqlite",
            "sqlite:///history.db",
            "",
            "",
        ),
        Backend(
            "postgresql",
            "postgresql+psycopg2",
            "postgresql+asyncpg",
            "psycopg2-binary",
            "asyncpg",
            "postgresql+psycopg2://postgres:history@127.0.0.1:5432/test",
            "postgres",
            "postgres:17-alpine",
        ),
        Backend(
            "mysql",
            "mysql+pymysql",
            "mysql+aiomysql",
            "pymysql",
            "aiomysql",
            "mysql+pymysql://root:history@127.0.0.1:3307/test?charset=utf8mb4",
            "mysql",
            "mysql:8.4",
        ),
        Backend(
            "mariadb",
            "mysql+pymysql",
            "mysql+aiomysql",
            "pymysql",
            "aiomysql",
            "mysql+pymysql://root:history@127.0.0.1:3308/test?charset=utf8mb4",
            "mysql",
            "mariadb:11.4",
        ),
        Backend(
            "mssql",
            "mssql+pymssql",
            "mssql+aioodbc",
            "pymssql",
            "aioodbc (and Microsoft's ODBC driver)",
            "mssql+pymssql://sa:History-Test-1@127.0.0.1:1433/history_test",
            "mssql",
            "mcr.microsoft.com/mssql/server:2022-latest",
        ),
        Backend(
            "oracle",
            "oracle+oracledb",
            "oracle+oracledb_async",
            "oracledb",
            "oracledb",
            "oracle+oracledb://history:history@127.0.0.1:1521/?service_name=FREEPDB1",
            "oracle",
            "gvenzl/oracle-free:23-slim-faststart",
        ),
    )
}

NAMES = tuple(BACKENDS)


@dataclasses.dataclass
class DatabaseInfo:
    """What the suite found out about a connected database (read by ``Requirements``)."""

    #: The target id: ``postgresql``, ``mariadb-async`` ...
    label: str
    #: SQLAlchemy's dialect name (``mysql`` for MariaDB too) and driver.
    dialect_name: str
    driver: str
    is_async: bool
    #: The server as a person reads it: ``MariaDB 11.4.2``, ``PostgreSQL 17.0``.
    server: str
    server_version_info: tuple[Any, ...]
    is_mariadb: bool
    max_identifier_length: int
    #: The run's second schema when the database has it, else ``None`` and
    #: ``schema_problem`` says why.
    schema: Optional[str]
    schema_problem: str
    #: Why no ``AsyncSession`` test can run here, or ``None``.
    async_problem: Optional[str]
    #: Whether the suite's connections enforce foreign keys (``ON DELETE`` rules included).
    foreign_keys: bool = True
    #: The statements switching enforcement off and back on for one connection, or ``None``
    #: where a session cannot (see ``foreign_key_switch``).
    foreign_keys_switch: Optional[tuple[str, str]] = None


def _async_url(backend: Backend, url: URL) -> Optional[URL]:
    if backend.async_driver is None:
        return None
    return url.set(drivername=backend.async_driver)


def _server_name(connection: sa.Connection) -> str:
    dialect = connection.dialect
    version = ".".join(str(p) for p in (dialect.server_version_info or ()) if isinstance(p, int))
    names = {
        "sqlite": "SQLite",
        "postgresql": "PostgreSQL",
        "mysql": "MySQL",
        "mssql": "SQL Server",
        "oracle": "Oracle",
    }
    name = names.get(dialect.name, dialect.name)
    if getattr(dialect, "is_mariadb", False):
        name = "MariaDB"
    return f"{name} {version}".strip()


class Target:
    """One database through one driver; engines are made on first use and kept."""

    def __init__(
        self,
        registry: Registry,
        label: str,
        backend: Optional[Backend],
        url: Optional[URL],
        is_async: bool,
    ) -> None:
        self.registry = registry
        self.label = label
        self.backend = backend
        self._url = url
        self.is_async = is_async
        self._engine: Optional[sa.Engine] = None
        self._async_engine: Any = None
        self._info: Optional[DatabaseInfo] = None
        self._failed: Optional[BaseException] = None
        #: The previous test's tables, already emptied: (DDL signature, MetaData).
        self._kept: Optional[tuple[str, sa.MetaData]] = None
        self._schema: Optional[str] = None

    # -- connecting -----------------------------------------------------------------------

    @property
    def url(self) -> URL:
        if self._url is None:
            assert self.backend is not None
            sync_url = self.registry.server_url(self.backend)
            self._url = _async_url(self.backend, sync_url) if self.is_async else sync_url
            assert self._url is not None
        return self._url

    def start(self) -> DatabaseInfo:
        """Connect (starting a container if needed) and describe the database, once."""
        if self._failed is not None:
            raise RuntimeError(f"{self.label}: could not be reached earlier") from self._failed
        if self._info is None:
            try:
                self._info = self._start()
            except BaseException as error:
                self._failed = error
                raise
        return self._info

    def _start(self) -> DatabaseInfo:
        url = self.url
        if self.is_async:
            from sqlalchemy.ext.asyncio import create_async_engine

            self._async_engine = create_async_engine(url, **self._engine_options(url))
            self._engine = self._async_engine.sync_engine
        else:
            self._engine = sa.create_engine(url, **self._engine_options(url))
        engine = self._engine
        assert engine is not None
        self._prepare(engine)

        def describe() -> tuple[str, tuple[Any, ...]]:
            with engine.connect() as connection:
                return _server_name(connection), tuple(connection.dialect.server_version_info or ())

        server, version = self.call(describe)
        enforced, switch = self.call(_foreign_keys, engine)
        schema, problem = self.call(self._prepare_schema)
        self._schema = schema
        self.call(self.drop_every_table)
        return DatabaseInfo(
            label=self.label,
            dialect_name=engine.dialect.name,
            driver=engine.dialect.driver,
            is_async=self.is_async,
            server=server,
            server_version_info=version,
            is_mariadb=bool(getattr(engine.dialect, "is_mariadb", False)),
            max_identifier_length=_identifier_limit(engine.dialect),
            schema=schema,
            schema_problem=problem,
            async_problem=self._check_async(),
            foreign_keys=enforced,
            foreign_keys_switch=switch,
        )

    @staticmethod
    def _engine_options(url: URL) -> dict[str, Any]:
        if url.get_backend_name() == "sqlite":
            # One file shared by every connection; a short busy timeout makes a lock wait
            # fail fast instead of hanging a test.
            return {"connect_args": {"timeout": 5}}
        return {}

    def _prepare(self, engine: sa.Engine) -> None:
        """Set up every new connection of ``engine`` (the target's own engine, or the
        asyncio engine the ``AsyncSession`` tests of a sync target use) the same way."""
        if engine.dialect.name == "sqlite":
            self._prepare_sqlite(engine)
        elif engine.dialect.name == "mysql":
            self._prepare_mysql(engine)

    def _prepare_sqlite(self, engine: sa.Engine) -> None:
        # Every new connection: enforce foreign keys (off by default in SQLite, on in every
        # other database) and attach the second schema, an attached database file.
        schema = self.registry.schema_name
        path = os.path.join(self.registry.workdir(), f"{schema}.db")

        @sa.event.listens_for(engine, "connect")
        def connect(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"ATTACH DATABASE '{path}' AS {schema}")
            cursor.close()

    @staticmethod
    def _prepare_mysql(engine: sa.Engine) -> None:
        # InnoDB waits 50 s for a row lock by default; a test whose sessions block each other
        # should fail in seconds, like SQLite's busy timeout above.
        @sa.event.listens_for(engine, "connect")
        def connect(dbapi_connection: Any, record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"SET SESSION innodb_lock_wait_timeout = {LOCK_WAIT_SECONDS}")
            cursor.close()

    def _prepare_schema(self) -> tuple[Optional[str], str]:
        """Make sure the run's second schema exists; return it, or ``None`` and the reason."""
        engine = self.engine
        name = engine.dialect.name
        schema = self.registry.schema_name
        preparer = engine.dialect.identifier_preparer
        quoted = preparer.quote_identifier(schema)
        create = {
            "postgresql": f"CREATE SCHEMA {quoted}",
            "mysql": f"CREATE DATABASE {quoted} CHARACTER SET utf8mb4",
            "mssql": f"EXEC('CREATE SCHEMA {quoted}')",
        }.get(name)
        try:
            with engine.connect() as connection:
                exists = schema in sa.inspect(connection).get_schema_names()
                if not exists and create is not None and not self.registry.schema_given:
                    connection.execute(sa.text(create))
                    connection.commit()
                    self.registry.created_schemas[self.backend_key] = schema
                    exists = True
        except sa.exc.DBAPIError as error:
            return None, f"cannot create schema {schema!r}: {error.orig}"
        if not exists and name == "oracle" and not self.registry.schema_given:
            # Oracle schemas are users, which the suite does not create; use the one
            # docker/init/oracle creates when it is there.
            with engine.connect() as connection:
                if ORACLE_SCHEMA in sa.inspect(connection).get_schema_names():
                    return ORACLE_SCHEMA, ""
            return None, (
                f"Oracle schemas are users, which the suite does not create: create user "
                f"{ORACLE_SCHEMA} (docker/init/oracle does) or pass --history-schema NAME"
            )
        if not exists:
            return None, f"schema {schema!r} does not exist"
        return schema, ""

    @property
    def backend_key(self) -> str:
        """The server this target reaches (sync and async targets of one server share it)."""
        url = self.url
        return f"{url.get_backend_name()}://{url.host}:{url.port}/{url.database}"

    def _schemas(self) -> list[Optional[str]]:
        return [None] if self._schema is None else [None, self._schema]

    def drop_every_table(self) -> None:
        """Drop every table in the database and the run's schema (reflected, not remembered).

        Used when a run starts (an aborted earlier run may have left tables) and after any
        failure while creating, emptying or dropping a test's tables, so no later test finds
        tables it did not create.
        """
        self._kept = None
        with self.engine.connect() as connection:
            for schema in self._schemas():
                metadata = sa.MetaData(schema=schema)
                metadata.reflect(connection)
                metadata.drop_all(connection)
                # Sequences an implementation created (a transaction id sequence, say) are
                # not tables: reflection leaves them out, and the next CREATE would fail.
                for name in _sequence_names(connection, schema):
                    connection.execute(sa.schema.DropSequence(sa.Sequence(name, schema=schema)))
            connection.commit()

    def _check_async(self) -> Optional[str]:
        if self.is_async:
            return None
        backend = self.backend
        if backend is None or backend.async_driver is None:
            return f"{self.label}: no asyncio driver is known for {self.url.get_backend_name()}"
        try:
            self.async_engine  # noqa: B018 - creating it imports the driver
        except ImportError as error:
            return (
                f"{self.label}: asyncio driver {backend.async_driver!r} is not installed "
                f"(pip install {backend.async_package}): {error}"
            )
        return None

    # -- tables of one test ---------------------------------------------------------------

    def create_tables(self, metadata: sa.MetaData, adapter: Adapter) -> None:
        """Create ``metadata``'s tables, reusing the previous test's when they are identical.

        DDL dominates a short test's time (MySQL most of all); when a test declares the
        same tables as the one before it, they are reused: ``release_tables`` emptied them
        when that test ended, after versioning was switched off. Tables are created with
        ``checkfirst=False``: a table left behind makes the test fail instead of being
        silently reused, and any failure here drops every table before it is raised.
        """
        signature = _signature(metadata, self.engine.dialect)
        kept, self._kept = self._kept, None
        if kept is not None and kept[0] == signature:
            return
        try:
            with self.engine.begin() as connection:
                if kept is not None:
                    adapter.drop_tables(kept[1], connection, self)
                adapter.create_tables(metadata, connection, self)
        except BaseException:
            self.drop_every_table()
            raise

    def release_tables(self, metadata: sa.MetaData, adapter: Adapter, keep: bool) -> None:
        """The test using ``metadata`` ended and versioning is off: empty or drop its tables.

        ``keep``: empty them (DELETE, while no listener of the implementation is there to
        see it) for the next test to reuse; otherwise drop them. Any failure drops every
        table instead.
        """
        try:
            with self.engine.begin() as connection:
                if keep and self._kept is None:
                    for table in reversed(metadata.sorted_tables):
                        connection.execute(table.delete())
                    self._kept = (_signature(metadata, self.engine.dialect), metadata)
                else:
                    adapter.drop_tables(metadata, connection, self)
        except Exception:
            self.drop_every_table()

    # -- using ----------------------------------------------------------------------------

    @property
    def info(self) -> DatabaseInfo:
        return self.start()

    @property
    def engine(self) -> sa.Engine:
        """The sync ``Engine`` (for an async target, its ``sync_engine``)."""
        if self._engine is None:
            self.start()
        assert self._engine is not None
        return self._engine

    @property
    def async_engine(self) -> Any:
        """An ``AsyncEngine`` on this database (for a sync target: via its asyncio driver)."""
        if self._async_engine is None:
            from sqlalchemy.ext.asyncio import create_async_engine

            assert self.backend is not None
            url = _async_url(self.backend, self.url)
            assert url is not None
            self._async_engine = create_async_engine(url, **self._engine_options(url))
            self._prepare(self._async_engine.sync_engine)
        return self._async_engine

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run sync database code: directly, or for an async target in ``greenlet_spawn``."""
        if not self.is_async:
            return fn(*args, **kwargs)
        from sqlalchemy.util import greenlet_spawn

        return self.registry.run(greenlet_spawn(fn, *args, **kwargs))

    def close(self) -> None:
        if self._engine is not None:
            with contextlib.suppress(Exception):
                self.call(self.drop_every_table)
            if self.registry.created_schemas.get(self.backend_key) == self._schema:
                with contextlib.suppress(Exception):
                    self.call(self._drop_schema)
                self.registry.created_schemas.pop(self.backend_key, None)
        if self._async_engine is not None:
            with contextlib.suppress(Exception):
                self.registry.run(self._async_engine.dispose())
        elif self._engine is not None:
            self._engine.dispose()

    def _drop_schema(self) -> None:
        """Drop the second schema this run created (its tables are gone already)."""
        engine = self.engine
        quoted = engine.dialect.identifier_preparer.quote_identifier(str(self._schema))
        statement = {
            "postgresql": f"DROP SCHEMA {quoted} CASCADE",
            "mysql": f"DROP DATABASE {quoted}",
            "mssql": f"DROP SCHEMA {quoted}",
        }.get(engine.dialect.name)
        if statement is not None:
            with engine.connect() as connection:
                connection.execute(sa.text(statement))
                connection.commit()


class Registry:
    """Every target of the run, the servers behind them and the asyncio event loop."""

    def __init__(self, schema: Optional[str] = None) -> None:
        #: The second schema of schema tests: given (``--history-schema``), else this run's own.
        self.schema_name = schema or SCHEMA_PREFIX + secrets.token_hex(4)
        self.schema_given = schema is not None
        #: Server key -> the schema this run created there (dropped when the run ends).
        self.created_schemas: dict[str, str] = {}
        self.targets: dict[str, Target] = {}
        self._urls: dict[str, URL] = {}
        self._containers: list[Any] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._workdir: Optional[str] = None
        #: Targets asked for but not run, with the reason (shown in the report).
        self.not_run: list[str] = []

    # -- selection ------------------------------------------------------------------------

    @classmethod
    def from_options(
        cls,
        dbs: list[str],
        dburis: list[str],
        with_async: bool,
        async_only: bool = False,
        schema: Optional[str] = None,
    ) -> Registry:
        """Build the targets named by ``--db``/``--dburi``/``--async`` (see module doc)."""
        registry = cls(schema)
        names = [n.strip() for given in dbs for n in given.split(",") if n.strip()]
        unknown = [n for n in names if n not in BACKENDS]
        if unknown:
            raise pytest.UsageError(
                f"--db {', '.join(unknown)}: unknown database; choose from {', '.join(NAMES)}."
            )
        if not names and not dburis:
            names = default_databases()
        for name in dict.fromkeys(names):
            backend = BACKENDS[name]
            if not async_only:
                registry.add(Target(registry, name, backend, None, False))
            if with_async or async_only:
                problem = driver_problem(backend.async_driver)
                if problem is None:
                    registry.add(Target(registry, f"{name}-async", backend, None, True))
                else:
                    registry.not_run.append(
                        f"{name}-async: {backend.async_driver} is not usable "
                        f"(pip install {backend.async_package}): {problem}"
                    )
        for text in dburis:
            url = make_url(text)
            known = _backend_of(url)
            is_async = _is_async_url(url)
            label = _label_for(registry, url, is_async)
            registry.add(Target(registry, label, known, url, is_async))
            if (with_async or async_only) and not is_async and known is not None:
                async_url = _async_url(known, url)
                if async_url is not None:
                    registry.add(Target(registry, f"{label}-async", known, async_url, True))
        if not registry.targets:
            raise pytest.UsageError(
                "no database to run the conformance suite on: SQLALCHEMY_HISTORY_DATABASES="
                f"{os.environ.get('SQLALCHEMY_HISTORY_DATABASES', '')!r} names none of SQLite "
                "and the databases whose SQLALCHEMY_HISTORY_<NAME>_URL is set"
                + ("; " + "; ".join(registry.not_run) if registry.not_run else "")
            )
        registry.check_reachable()
        return registry

    def add(self, target: Target) -> None:
        self.targets[target.label] = target

    def check_reachable(self) -> None:
        """Stop the run now if a named database has neither a URL nor Docker to start it."""
        missing = sorted(
            {
                t.backend.name
                for t in self.targets.values()
                if t._url is None
                and t.backend is not None
                and t.backend.name != "sqlite"
                and not os.environ.get(t.backend.env_var)
            }
        )
        if not missing:
            return
        problem = docker_problem()
        if problem is None:
            return
        lines = [
            f"cannot reach {', '.join(missing)}: no URL is set and {problem}.",
            "Either point the suite at a running server:",
        ]
        for name in missing:
            backend = BACKENDS[name]
            lines.append(f"    export {backend.env_var}='{backend.example_url}'")
        lines.append(
            "(docker compose -f docker/compose.yml up -d "
            + " ".join(missing)
            + " starts servers matching those URLs), or make Docker available so that "
            "the suite can start throwaway containers (pip install testcontainers)."
        )
        raise pytest.UsageError("\n".join(lines))

    # -- servers --------------------------------------------------------------------------

    def workdir(self) -> str:
        if self._workdir is None:
            self._workdir = tempfile.mkdtemp(prefix="history-conformance-")
        return self._workdir

    def server_url(self, backend: Backend) -> URL:
        """The sync URL of ``backend``'s server: from the environment, else a container."""
        if backend.name not in self._urls:
            if backend.name == "sqlite":
                path = os.path.join(self.workdir(), "history.db")
                self._urls[backend.name] = make_url(f"sqlite:///{path}")
            elif os.environ.get(backend.env_var):
                self._urls[backend.name] = make_url(os.environ[backend.env_var])
            else:
                self._urls[backend.name] = self._start_container(backend)
        return self._urls[backend.name]

    def _start_container(self, backend: Backend) -> URL:
        from . import containers

        container, url = containers.start(backend)
        self._containers.append(container)
        return url

    # -- asyncio --------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """One event loop for the whole run: async engines' pools are bound to it."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        for target in self.targets.values():
            with contextlib.suppress(Exception):
                target.close()
        for container in self._containers:
            with contextlib.suppress(Exception):
                container.stop()
        if self._loop is not None:
            self._loop.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def _identifier_limit(dialect: sa.Dialect) -> int:
    """The longest table or column name the database accepts, in bytes."""
    if dialect.name == "mysql":
        # SQLAlchemy's MySQL dialect reports 255 (the alias limit); tables, columns and
        # indexes are limited to 64 characters on MySQL and MariaDB.
        return 64
    return int(dialect.max_identifier_length)


def _foreign_keys(engine: sa.Engine) -> tuple[bool, Optional[tuple[str, str]]]:
    """Whether the suite's connections enforce foreign keys, and the session statements
    switching that off and back on (``None`` where a session cannot).

    SQLite enforces them where ``PRAGMA foreign_keys`` is on (``_prepare_sqlite``), and a
    connection switches it outside a transaction; MySQL/MariaDB where
    ``foreign_key_checks`` is on and tables are InnoDB; PostgreSQL always, and a superuser
    session switches its foreign key triggers off with ``session_replication_role``. SQL
    Server and Oracle enforce them and have no session switch.
    """
    name = engine.dialect.name
    with engine.connect() as connection:
        if name == "sqlite":
            enforced = bool(connection.exec_driver_sql("PRAGMA foreign_keys").scalar())
            return enforced, ("PRAGMA foreign_keys = OFF", "PRAGMA foreign_keys = ON")
        if name == "mysql":
            checks, storage = connection.exec_driver_sql(
                "SELECT @@foreign_key_checks, @@default_storage_engine"
            ).one()
            enforced = bool(checks) and str(storage).lower() == "innodb"
            return enforced, (
                "SET SESSION foreign_key_checks = 0",
                "SET SESSION foreign_key_checks = 1",
            )
        if name == "postgresql":
            superuser = connection.exec_driver_sql("SHOW is_superuser").scalar() == "on"
            switch = (
                "SET session_replication_role = replica",
                "SET session_replication_role = DEFAULT",
            )
            return True, switch if superuser else None
    return True, None


def _sequence_names(connection: sa.Connection, schema: Optional[str]) -> list[str]:
    """The sequences in ``schema`` (none where the database has no sequences)."""
    if not connection.dialect.supports_sequences:
        return []
    try:
        return list(sa.inspect(connection).get_sequence_names(schema=schema))
    except NotImplementedError:
        return []


def _signature(metadata: sa.MetaData, dialect: sa.Dialect) -> str:
    """The DDL of ``metadata`` as ``dialect`` would emit it: equal text, equal tables."""
    from sqlalchemy.schema import CreateIndex, CreateTable

    parts = []
    for table in metadata.sorted_tables:
        parts.append(str(CreateTable(table).compile(dialect=dialect)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            parts.append(str(CreateIndex(index).compile(dialect=dialect)))
    return "\n".join(parts)


def default_databases() -> list[str]:
    """SQLite plus every database whose URL variable is set (narrowed by the env list)."""
    names = ["sqlite"] + [
        name for name, b in BACKENDS.items() if name != "sqlite" and os.environ.get(b.env_var)
    ]
    wanted = os.environ.get("SQLALCHEMY_HISTORY_DATABASES")
    if wanted:
        chosen = [n.strip() for n in wanted.split(",") if n.strip()]
        names = [n for n in names if n in chosen]
    return names


def driver_problem(drivername: Optional[str]) -> Optional[str]:
    """Return why the DBAPI driver of ``dialect+driver`` cannot be imported, or ``None``."""
    if drivername is None:
        return "no asyncio driver is known for this database"
    try:
        make_url(f"{drivername}://").get_dialect().import_dbapi()
    except ImportError as error:
        return str(error)
    return None


def docker_problem() -> Optional[str]:
    """Return why no container can be started, or ``None`` when Docker answers."""
    try:
        from testcontainers.core.docker_client import DockerClient
    except ImportError as error:
        return (
            f"testcontainers is not installed ({error.name}; it needs Python 3.10+: "
            f"pip install 'testcontainers==4.15.0')"
        )
    try:
        DockerClient().client.ping()
    except Exception as error:
        return f"Docker is not reachable ({type(error).__name__}: {error})"
    return None


def _backend_of(url: URL) -> Optional[Backend]:
    name = url.get_backend_name()
    return BACKENDS.get(name)


def _is_async_url(url: URL) -> bool:
    dialect_cls = url.get_dialect()
    return bool(getattr(dialect_cls, "is_async", False))


def _label_for(registry: Registry, url: URL, is_async: bool) -> str:
    base = url.get_backend_name() + ("-async" if is_async else "")
    label, n = base, 1
    while label in registry.targets:
        n += 1
        label = f"{base}{n}"
    return label
