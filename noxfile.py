"""Development sessions for sqlalchemy-history.

Every session runs in a fresh virtual environment built from the interpreter
that runs nox (no Python version is pinned). Development dependencies live in
the PEP 735 ``[dependency-groups]`` table of pyproject.toml; pip only learned to
install those itself in 25.1, so they are read here with
``nox.project.dependency_groups()`` and passed to ``pip install`` by name.

    python3 -m nox -l                 # list sessions
    python3 -m nox -s tests           # SQLite, plus every database whose URL is set
    python3 -m nox -s tests -- -k revert -x

Databases are chosen by the test suite from the environment, which nox passes
through unchanged:

    SQLALCHEMY_HISTORY_POSTGRESQL_URL  e.g. postgresql+psycopg2://postgres@127.0.0.1:5432/test
    SQLALCHEMY_HISTORY_MYSQL_URL       e.g. mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4
    SQLALCHEMY_HISTORY_DATABASES       restrict the run, e.g. "sqlite" (tests-<db> sessions set it)

``pytest`` collects the conformance suite too (tests/test_conformance.py, see
conformance/README.md and CONTRIBUTING.md); these sessions run it on the same databases
through their sync and asyncio drivers (``--async``) and print a per-database summary.
``tests-mariadb``, ``tests-mssql``, ``tests-oracle`` and ``conformance-all`` use
``SQLALCHEMY_HISTORY_<DB>_URL`` when set, else start containers (Docker needed):

    docker compose -f docker/compose.yml up -d oracle
    export SQLALCHEMY_HISTORY_ORACLE_URL='oracle+oracledb://history:history@127.0.0.1:1521/?service_name=FREEPDB1'
    python3 -m nox -s tests-oracle

Without a URL and without Docker, ``tests-mssql`` and ``tests-oracle`` run that dialect's
compile checks (tests/compile) and say what was not run.

``conformance-peers`` runs the conformance suite on the released SQLAlchemy-History 2.2.1
and SQLAlchemy-Continuum 2.0.0 (PyPI), each in its own virtualenv with the conformance
distribution installed from conformance/, through the adapters in
conformance/implementations/ (SQLite, plus PostgreSQL and MySQL/MariaDB when their URL is
set).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

# nox.project.dependency_groups() first shipped in nox 2025.02.09.
nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "venv"
nox.options.sessions = ["tests", "lint", "typecheck"]

ROOT = Path(__file__).resolve().parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")

TEST_GROUPS = (
    "tests",
    "tests-postgresql",
    "tests-mysql",
    "tests-sqlite-asyncio",
    "tests-postgresql-asyncio",
    "tests-mysql-asyncio",
    "tests-recipes",
    "conformance",
)

#: The conformance suite's one-line consumer, as any implementation has it.
CONFORMANCE = "tests/test_conformance.py"

#: The released implementations ``conformance-peers`` runs the suite on: distribution pin,
#: the directory of its adapter (conformance/implementations/...), the Python it needs.
PEERS = {
    "sqlalchemy-history-2.2.1": ("SQLAlchemy-History==2.2.1", "sqlalchemy_history_2_2_1", (3, 10)),
    "sqlalchemy-continuum-2.0.0": (
        "SQLAlchemy-Continuum==2.0.0",
        "sqlalchemy_continuum_2_0_0",
        (3, 11),
    ),
}
#: Drivers of the databases the peers run on; the asyncio ones serve the suite's
#: AsyncSession tests (the rest of the suite runs through the sync drivers).
PEER_DRIVERS = ("psycopg2-binary", "pymysql", "aiosqlite", "asyncpg", "aiomysql")

POSTGRESQL_URL_VAR = "SQLALCHEMY_HISTORY_POSTGRESQL_URL"
POSTGRESQL_URL_EXAMPLE = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"
MYSQL_URL_VAR = "SQLALCHEMY_HISTORY_MYSQL_URL"
MYSQL_URL_EXAMPLE = "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4"


def install_groups(session: nox.Session, *groups: str, editable: bool = True) -> None:
    """Install the project (editable) and the named dependency groups in one pip call."""
    requirements = list(nox.project.dependency_groups(PYPROJECT, *groups)) if groups else []
    project = ["-e", "."] if editable else []
    session.install(*project, *requirements)


def run_pytest(session: nox.Session, databases: str | None = None) -> None:
    install_groups(session, *TEST_GROUPS)
    env = {"SQLALCHEMY_HISTORY_DATABASES": databases} if databases else {}
    # --async: the conformance suite also runs through each database's asyncio driver.
    session.run("pytest", "--async", *session.posargs, env=env)


def docker_problem(session: nox.Session) -> str:
    """Why the conformance suite could not start a container here ('' when it could)."""
    code = (
        "import sys; sys.path.insert(0, 'conformance'); "
        "from sqlalchemy_history_conformance.databases import docker_problem; "
        "print(docker_problem() or '')"
    )
    output = session.run("python", "-c", code, silent=True)
    return str(output or "").strip()


#: How to start each server-only database and point the suite at it.
SERVER_RECIPES = {
    "mssql": "mssql+pymssql://sa:History-Test-1@127.0.0.1:1433/history_test",
    "oracle": "oracle+oracledb://history:history@127.0.0.1:1521/?service_name=FREEPDB1",
}


def run_database(session: nox.Session, name: str, *, with_async: bool = True) -> None:
    """Our tests (where tests/conftest.py knows the database) + the conformance suite on ``name``.

    Without ``SQLALCHEMY_HISTORY_<NAME>_URL`` the conformance suite starts a container, and
    our own tests (which need a URL) run their dialect-only part, tests/compile. Without a
    URL and without Docker, only tests/compile runs, and the session says what did not.
    """
    install_groups(session, *TEST_GROUPS, f"tests-{name}")
    variable = f"SQLALCHEMY_HISTORY_{name.upper()}_URL"
    url = os.environ.get(variable)
    options = [f"--db={name}", *(["--async"] if with_async else [])]
    if not url and name in SERVER_RECIPES:
        problem = docker_problem(session)
        if problem:
            session.run("pytest", "tests/compile", *session.posargs)
            session.warn(
                f"NOT RUN: the conformance suite on {name} ({variable} is not set and "
                f"{problem}). Only tests/compile ran (every statement the library emits, "
                f"compiled for {name} and the other dialects). "
                f"To run it against a server:\n"
                f"    docker compose -f docker/compose.yml up -d {name}\n"
                f"    export {variable}='{SERVER_RECIPES[name]}'\n"
                f"    python3 -m nox -s tests-{name}"
            )
            return
    if name == "mariadb" and url:
        # tests/conftest.py reaches MySQL-family servers through SQLALCHEMY_HISTORY_MYSQL_URL.
        env = {"SQLALCHEMY_HISTORY_MYSQL_URL": url, "SQLALCHEMY_HISTORY_DATABASES": "mysql"}
        session.run("pytest", *options, *session.posargs, env=env)
    else:
        session.run("pytest", CONFORMANCE, "tests/compile", *options, *session.posargs)


def require_env(session: nox.Session, name: str, example: str) -> None:
    if not os.environ.get(name):
        session.error(
            f"{name} is not set; point it at a test database, e.g.\n    export {name}={example}"
        )


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite: SQLite always, plus PostgreSQL / MySQL when their URL is set."""
    run_pytest(session)


@nox.session(name="tests-sqlite")
def tests_sqlite(session: nox.Session) -> None:
    """Run the test suite against SQLite only."""
    run_pytest(session, databases="sqlite")


@nox.session(name="tests-postgresql")
def tests_postgresql(session: nox.Session) -> None:
    """Run the test suite against PostgreSQL only (needs SQLALCHEMY_HISTORY_POSTGRESQL_URL)."""
    require_env(session, POSTGRESQL_URL_VAR, POSTGRESQL_URL_EXAMPLE)
    run_pytest(session, databases="postgresql")


@nox.session(name="tests-mysql")
def tests_mysql(session: nox.Session) -> None:
    """Run the test suite against MySQL/MariaDB only (needs SQLALCHEMY_HISTORY_MYSQL_URL)."""
    require_env(session, MYSQL_URL_VAR, MYSQL_URL_EXAMPLE)
    run_pytest(session, databases="mysql")


@nox.session(name="tests-mariadb")
def tests_mariadb(session: nox.Session) -> None:
    """Run the tests on MariaDB (SQLALCHEMY_HISTORY_MARIADB_URL, else a container)."""
    run_database(session, "mariadb")


@nox.session(name="tests-mssql")
def tests_mssql(session: nox.Session) -> None:
    """Run the conformance suite on SQL Server 2022 (SQLALCHEMY_HISTORY_MSSQL_URL or a container).

    Sync driver (pymssql) only: the asyncio driver, aioodbc, needs Microsoft's ODBC driver;
    with it installed, ``nox -s tests-mssql -- --async`` adds the async run.
    """
    run_database(session, "mssql", with_async=False)


@nox.session(name="tests-oracle")
def tests_oracle(session: nox.Session) -> None:
    """Run the conformance suite on Oracle Free (SQLALCHEMY_HISTORY_ORACLE_URL or a container)."""
    run_database(session, "oracle")


@nox.session(name="conformance-all")
def conformance_all(session: nox.Session) -> None:
    """Run the conformance suite on all six databases, sync and async (containers as needed)."""
    install_groups(session, *TEST_GROUPS, "tests-mariadb", "tests-mssql", "tests-oracle")
    databases = "--db=sqlite,postgresql,mysql,mariadb,mssql,oracle"
    session.run("pytest", CONFORMANCE, databases, "--async", *session.posargs)


@nox.session(name="conformance-peers")
@nox.parametrize("peer", list(PEERS))
def conformance_peers(session: nox.Session, peer: str) -> None:
    """Run the conformance suite on a released implementation, as its maintainers would.

    The conformance distribution is installed from conformance/ (not copied, not editable)
    next to the peer from PyPI and whatever SQLAlchemy its requirements allow; pytest runs in
    the peer's conformance/implementations/ directory, which holds only its adapter. Any
    failure that is not a declared requirement of that adapter, and any declared failure
    that passes, fails the session.
    """
    requirement, directory, python = PEERS[peer]
    if sys.version_info < python:
        session.error(f"{requirement} needs Python {'.'.join(map(str, python))}+")
    session.install("./conformance[asyncio]", requirement, *PEER_DRIVERS)
    session.run("python", "-m", "pip", "list", "--format=freeze", silent=False)
    session.chdir(ROOT / "conformance" / "implementations" / directory)
    session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session(name="tests-oldest")
def tests_oldest(session: nox.Session) -> None:
    """Run the SQLite suite on the oldest supported stack: SQLAlchemy 2.0.x on the Python
    running nox (CI passes ``--force-python`` with Python 3.9 when the machine has it)."""
    install_groups(session, *TEST_GROUPS)
    session.install("SQLAlchemy>=2.0.20,<2.1")
    session.run("pytest", *session.posargs, env={"SQLALCHEMY_HISTORY_DATABASES": "sqlite"})


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and formatting with ruff (no fixes applied)."""
    install_groups(session, "lint", editable=False)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy (strict)."""
    install_groups(session, "typing")
    session.run("mypy", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmark against plain SQLAlchemy and the released peers; writes docs/benchmarks.md.

    ``-- --quick`` runs small sizes once (CI smoke test, report in .bench/quick/); other
    options: ``python benchmarks/run.py --help``. The measured libraries get their own
    virtualenvs under .bench/venvs (built from PyPI); this session only drives them.
    """
    install_groups(session, "bench", editable=False)
    session.run("python", "benchmarks/run.py", *session.posargs)


@nox.session
def stress(session: nox.Session) -> None:
    """Run the concurrent-writers checker long; print commits/s, retries and anomalies.

    ``nox -s stress -- --seconds 60 --writers 32 [--db postgresql|mysql|sqlite]
    [--strategy validity|subquery|both] [--async] [--seed N]`` (``-- --help`` lists the
    options). Databases: SQLite and those whose SQLALCHEMY_HISTORY_<DB>_URL is set; the
    workload's tables are dropped and created there. Not a default session. The test
    suite runs a short form (tests/reliability/test_concurrent_writers.py).
    """
    install_groups(
        session,
        "tests",
        "tests-postgresql",
        "tests-mysql",
        "tests-sqlite-asyncio",
        "tests-postgresql-asyncio",
        "tests-mysql-asyncio",
    )
    tests = str(ROOT / "tests")
    session.run("python", "-m", "reliability.stress", *session.posargs, env={"PYTHONPATH": tests})


@nox.session
def demo(session: nox.Session) -> None:
    """Run the examples: quick start (sync, then async on aiosqlite), audit log, retention."""
    install_groups(session, "tests-sqlite-asyncio")
    session.run("python", "examples/quickstart.py")
    session.run("python", "examples/async_quickstart.py")
    session.run("python", "examples/audit_log.py")
    session.run("python", "examples/retention.py")
