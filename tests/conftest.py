"""Test fixtures: which databases to run on, and building versioned models per test.

Databases: SQLite always; PostgreSQL when ``SQLALCHEMY_HISTORY_POSTGRESQL_URL`` is set;
MySQL/MariaDB when ``SQLALCHEMY_HISTORY_MYSQL_URL`` is set. ``SQLALCHEMY_HISTORY_DATABASES``
(comma-separated names) narrows the list. Every test taking ``engine`` (or ``versioned``)
runs once per database.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase, Session, configure_mappers

import sqlalchemy_history
from sqlalchemy_history import make_versioned, remove_versioning

URL_VARIABLES = {
    "postgresql": "SQLALCHEMY_HISTORY_POSTGRESQL_URL",
    "mysql": "SQLALCHEMY_HISTORY_MYSQL_URL",
}


def selected_databases() -> list[str]:
    names = ["sqlite"] + [name for name, var in URL_VARIABLES.items() if os.environ.get(var)]
    wanted = os.environ.get("SQLALCHEMY_HISTORY_DATABASES")
    if wanted:
        chosen = [n.strip() for n in wanted.split(",") if n.strip()]
        missing = [n for n in chosen if n not in names]
        if missing:
            raise pytest.UsageError(
                f"SQLALCHEMY_HISTORY_DATABASES names {missing}, but no URL is set for them; "
                f"set {', '.join(URL_VARIABLES.get(n, '?') for n in missing)}."
            )
        names = chosen
    return names


def database_url(name: str, tmp_path: Any) -> str:
    if name == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return os.environ[URL_VARIABLES[name]]


def pytest_report_header(config: pytest.Config) -> str:
    return f"sqlalchemy_history databases: {', '.join(selected_databases())}"


@pytest.fixture(params=selected_databases())
def db_name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def engine(db_name: str, tmp_path: Any) -> Iterator[sa.Engine]:
    eng = sa.create_engine(database_url(db_name, tmp_path))
    yield eng
    eng.dispose()


class Versioned:
    """A versioned model set built for one test: ``versioned(define, ...)`` returns it."""

    def __init__(self, engine: sa.Engine, base: type[DeclarativeBase], models: dict[str, Any]):
        self.engine = engine
        self.Base = base
        self.metadata = base.metadata
        self.models = models
        self.manager = sqlalchemy_history.versioning_manager

    def __getattr__(self, name: str) -> Any:
        try:
            return self.models[name]
        except KeyError:
            raise AttributeError(name) from None

    def session(self, **kwargs: Any) -> Session:
        return Session(self.engine, **kwargs)

    @property
    def Transaction(self) -> Any:
        return self.manager.transaction_cls

    def version_table(self, name: str) -> sa.Table:
        return self.metadata.tables[name]

    def rows(self, table_name: str, order_by: Optional[list[str]] = None) -> list[dict[str, Any]]:
        """Return every row of a table as dicts, ordered by ``order_by`` (default: all pk)."""
        table = self.metadata.tables[table_name]
        columns = [table.c[c] for c in order_by] if order_by else list(table.primary_key)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(table).order_by(*columns)).mappings()]


def _drop_everything(engine: sa.Engine) -> None:
    meta = sa.MetaData()
    meta.reflect(engine)
    meta.drop_all(engine)


@pytest.fixture
def versioned(engine: sa.Engine) -> Iterator[Callable[..., Versioned]]:
    """Build versioned models: ``v = versioned(define, options=..., user_cls=None)``.

    ``define(Base)`` declares the models and returns them as a dict (or ``locals()``).
    Tables are created on the test's database and dropped afterwards; versioning is
    removed so the next test starts clean.
    """
    built: list[Versioned] = []

    def build(
        define: Callable[[type[DeclarativeBase]], dict[str, Any]],
        options: Optional[dict[str, Any]] = None,
        plugins: Optional[list[Any]] = None,
        user_cls: Any = None,
        create: bool = True,
    ) -> Versioned:
        make_versioned(user_cls=user_cls, options=options, plugins=plugins)

        class Base(DeclarativeBase):
            pass

        models = {k: v for k, v in define(Base).items() if isinstance(v, type)}
        configure_mappers()
        v = Versioned(engine, Base, models)
        built.append(v)
        if create:
            _drop_everything(engine)
            Base.metadata.create_all(engine)
        return v

    yield build
    remove_versioning()
    for v in built:
        with contextlib.suppress(Exception):
            v.metadata.drop_all(engine)
        v.Base.registry.dispose()


class StatementCounter:
    """Collect every statement sent to the database cursor (executemany counts once)."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def __call__(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    def matching(self, *words: str) -> list[str]:
        return [s for s in self.statements if all(w.lower() in s.lower() for w in words)]


@contextlib.contextmanager
def count_statements(engine: sa.Engine) -> Iterator[StatementCounter]:
    counter = StatementCounter()
    sa.event.listen(engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        sa.event.remove(engine, "before_cursor_execute", counter)


# -- reading history back (bulk statements and cascades compare it with a flush's) ------


def history(v) -> dict[str, list[tuple[Any, ...]]]:
    """Every version row, transaction ids replaced by their rank (1 = first transaction).

    Also checks each key's validity chain: every version is closed by the next one and
    the last one is open (subquery strategy: no end column).
    """
    txs = [r["id"] for r in v.rows("transaction", ["id"])]
    rank = {tx: i for i, tx in enumerate(txs, 1)}
    found: dict[str, list[tuple[Any, ...]]] = {}
    for info in sqlalchemy_history.versioning_manager.version_tables.values():
        table = info.table
        tx_key = info.transaction_column.key
        end = info.end_transaction_column
        keys = [c.key for c in info.version_primary_key]
        rows = v.rows(table.name, [*keys, tx_key])
        chains: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
        out = []
        for row in rows:
            chains[tuple(row[k] for k in keys)].append(row)
            values = tuple(
                (k, rank[v_] if k in (tx_key, getattr(end, "key", None)) and v_ else v_)
                for k, v_ in sorted(row.items())
            )
            out.append(values)
        if end is not None:
            for chain in chains.values():
                for earlier, later in zip(chain, chain[1:]):
                    assert earlier[end.key] == later[tx_key], chain
                assert chain[-1][end.key] is None, chain
        found[table.name] = sorted(out, key=repr)
    assert all(tx in rank for tx in txs)
    return found


def reset(v) -> None:
    v.metadata.drop_all(v.engine)
    v.metadata.create_all(v.engine)


def ops(found: dict[str, list[tuple[Any, ...]]], table: str) -> list[tuple[Any, Any, Any]]:
    """``(key, transaction rank, operation)`` of each row of one version table."""
    out = []
    for row in found[table]:
        values = dict(row)
        key = values.get("id", (values.get("order_id"), values.get("line_no")))
        out.append((key, values["transaction_id"], values["operation_type"]))
    return sorted(out, key=repr)


def same_history(
    v,
    setup: Callable[[Session], None],
    by_orm: Callable[[Session], None],
    by_statement: Callable[[Session], None],
) -> dict[str, list[tuple[Any, ...]]]:
    """Run ``setup`` then each change on fresh tables; assert both histories are equal."""
    results = []
    for change in (by_orm, by_statement):
        reset(v)
        with v.session() as session:
            setup(session)
            session.commit()
        with v.session() as session:
            change(session)
            session.commit()
        results.append(history(v))
    assert results[1] == results[0]
    assert len(sqlalchemy_history.versioning_manager.units_of_work) == 0
    return results[1]
