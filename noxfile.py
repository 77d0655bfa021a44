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
"""

from __future__ import annotations

import os
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
)

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
    session.run("pytest", *session.posargs, env=env)


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


@nox.session(name="tests-sqlalchemy20")
def tests_sqlalchemy20(session: nox.Session) -> None:
    """Run the SQLite suite with the oldest supported SQLAlchemy series (2.0.x)."""
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
def demo(session: nox.Session) -> None:
    """Run the quick-start example."""
    install_groups(session)
    session.run("python", "examples/quickstart.py")
