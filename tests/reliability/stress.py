"""The concurrent-writers checker, run long: ``nox -s stress -- --seconds 60 --writers 32``.

Runs ``workload.py`` on each chosen database (default: SQLite plus every database whose
``SQLALCHEMY_HISTORY_<DB>_URL`` is set) and strategy, then checks the history against
the ground truth and prints commits per second, retries and anomaly counts. Exits with
status 1 if any run found an anomaly or a writer crashed.

    python -m reliability.stress --help        (with tests/ on PYTHONPATH)

The tables of the workload are dropped and created in the target database: point the URL
at a disposable database.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any, Optional

import sqlalchemy as sa

from .workload import RunResult, Settings, build_models, prepare_engine, run_tasks, run_threads

URL_VARIABLES = {
    "postgresql": "SQLALCHEMY_HISTORY_POSTGRESQL_URL",
    "mysql": "SQLALCHEMY_HISTORY_MYSQL_URL",
}
ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg", "mysql": "aiomysql"}


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="nox -s stress --",
        description="Concurrent writers against sqlalchemy_history, history checked afterwards.",
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="writing time per run")
    parser.add_argument("--writers", type=int, default=32, help="threads (or asyncio tasks)")
    parser.add_argument(
        "--db",
        action="append",
        choices=["sqlite", "postgresql", "mysql"],
        help="database (repeatable); default: SQLite and every database whose URL is set",
    )
    parser.add_argument(
        "--strategy",
        choices=["validity", "subquery", "both"],
        default="validity",
        help="versioning strategy (default: validity)",
    )
    parser.add_argument(
        "--async",
        dest="use_async",
        action="store_true",
        help="asyncio tasks on aiosqlite / asyncpg / aiomysql instead of threads",
    )
    parser.add_argument("--seed", type=int, help="seed of the writers' plans (default: random)")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        metavar="OPERATION",
        help='leave an operation out of the mix, e.g. --without "primary key change"',
    )
    return parser.parse_args(argv)


def database_url(name: str, directory: Path) -> str:
    if name == "sqlite":
        return f"sqlite:///{directory / 'stress.db'}"
    url = os.environ.get(URL_VARIABLES[name])
    if not url:
        raise SystemExit(f"--db {name}: set {URL_VARIABLES[name]} to a disposable database.")
    return url


def run_one(name: str, url: str, strategy: str, settings: Settings, use_async: bool) -> RunResult:
    engine = sa.create_engine(url, pool_size=settings.writers + 4, max_overflow=8)
    models, teardown = build_models(engine, strategy)
    try:
        if use_async:
            from sqlalchemy.ext.asyncio import create_async_engine

            async_url = engine.url.set(
                drivername=f"{engine.url.get_backend_name()}+{ASYNC_DRIVERS[name]}"
            )
            options: dict[str, Any] = {}
            if name != "sqlite":
                options.update(pool_size=settings.writers + 4, max_overflow=8, pool_timeout=120)
            async_engine = create_async_engine(async_url, **options)
            prepare_engine(async_engine.sync_engine)
            return run_tasks(async_engine, models, settings, strategy)
        prepare_engine(engine)
        return run_threads(engine, models, settings, strategy)
    finally:
        teardown()
        engine.dispose()


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    names = args.db or ["sqlite", *(n for n, var in URL_VARIABLES.items() if os.environ.get(var))]
    strategies = ["validity", "subquery"] if args.strategy == "both" else [args.strategy]
    seed = args.seed if args.seed is not None else random.randrange(1, 10**6)
    settings = Settings(
        writers=args.writers, seconds=args.seconds, seed=seed, without=frozenset(args.without)
    )
    failed = False
    with tempfile.TemporaryDirectory() as directory:
        for name in names:
            url = database_url(name, Path(directory))
            for strategy in strategies:
                result = run_one(name, url, strategy, settings, args.use_async)
                print(result.summary(), flush=True)
                failed = failed or not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
