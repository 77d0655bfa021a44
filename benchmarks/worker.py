"""One implementation's benchmark process: runs workloads on request, answers in JSON.

Started by ``run.py`` with the Python of the implementation's own virtualenv (this
project and the released SQLAlchemy-History share the import name ``sqlalchemy_history``,
so each lives in its own environment and process). Run it as a script, never with
``-m`` from the repository root: only this directory goes on ``sys.path``, so the
working tree's package cannot shadow the one installed in the virtualenv.

Protocol: one JSON object per line on stdin, one answer per line on stdout (library
output is sent to stderr):

    {"op": "hello"}                                   -> versions, module file
    {"op": "prepare", "db": "postgresql", "url": ...} -> own schema/database created
    {"op": "run", "db": ..., "workload": ..., "size": N}
        -> {"status": "ok"|"failed"|"unsupported"|"error", "seconds", "statements", "detail"}
    {"op": "cleanup"}                                 -> schemas/databases dropped

For a developer, ``--profile WORKLOAD`` runs one workload once and prints a cProfile
of the timed block (``--db`` and ``--url`` choose the database)::

    .bench/venvs/ours/bin/python benchmarks/worker.py --impl ours --profile insert --size 5000
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import json
import os
import platform
import pstats
import sqlite3
import sys
import time
import traceback
from typing import Any, Optional

import sqlalchemy as sa
import workloads
from models import IMPLEMENTATIONS, Models, build

#: Distribution name of each implementation's library, for the versions we report.
DISTRIBUTIONS = {
    "ours": "sqlalchemy-history",
    "history": "sqlalchemy-history",
    "continuum": "sqlalchemy-continuum",
}
DRIVERS = ("psycopg2-binary", "psycopg", "pymysql", "mysqlclient", "mariadb")


def _version(dist: str) -> Optional[str]:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class Worker:
    def __init__(self, impl: str) -> None:
        self.impl = impl
        self.models: Models = build(impl)
        self.engines: dict[str, sa.Engine] = {}
        self.namespaces: dict[str, tuple[str, str]] = {}
        self.connect_args: dict[str, dict[str, Any]] = {}

    # -- requests ------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        module_name = IMPLEMENTATIONS[self.impl][0]
        module = sys.modules.get(module_name) if module_name else None
        dist = DISTRIBUTIONS.get(self.impl)
        return {
            "impl": self.impl,
            "python": platform.python_version(),
            "sqlalchemy": sa.__version__,
            "library": _version(dist) if dist else None,
            "module_file": getattr(module, "__file__", None),
            "drivers": {d: v for d in DRIVERS if (v := _version(d))},
            "executable": sys.executable,
        }

    def prepare(self, db: str, url: str, prefix: str = "bench") -> dict[str, Any]:
        """Create this implementation's own namespace on ``db`` and its tables."""
        namespace = f"{prefix}_{self.impl}"
        parsed = sa.make_url(url)
        kwargs: dict[str, Any] = {}
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and os.path.exists(parsed.database):
                os.remove(parsed.database)
        elif parsed.get_backend_name() == "postgresql":
            with sa.create_engine(parsed).begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {namespace} CASCADE")
                conn.exec_driver_sql(f"CREATE SCHEMA {namespace}")
            kwargs["connect_args"] = {"options": f"-csearch_path={namespace}"}
        elif parsed.get_backend_name() in ("mysql", "mariadb"):
            namespace = f"{parsed.database or 'test'}_{namespace}"
            with sa.create_engine(parsed).begin() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {namespace}")
                conn.exec_driver_sql(f"CREATE DATABASE {namespace} CHARACTER SET utf8mb4")
            parsed = parsed.set(database=namespace)
        else:
            raise ValueError(f"unsupported database URL {url!r}")
        engine = sa.create_engine(parsed, **kwargs)
        self.models.metadata.create_all(engine)
        self.engines[db] = engine
        self.connect_args[db] = dict(kwargs.get("connect_args", {}))
        self.namespaces[db] = (parsed.get_backend_name(), namespace)
        return {"server": self._server_version(engine), "namespace": namespace}

    def run(self, db: str, name: str, size: int, profile: bool = False) -> dict[str, Any]:
        started = time.perf_counter()
        engine = self.engines[db]
        self._reset(engine)
        ctx = workloads.Context(engine, self.models, size)
        ctx.connect_args = self.connect_args[db]
        profiler = cProfile.Profile() if profile else None
        if profiler is not None:
            ctx.profiler = profiler
        result: dict[str, Any] = {"status": "ok", "detail": None}
        try:
            workloads.WORKLOADS[name].run(ctx)
        except workloads.CheckFailed as exc:
            result = {"status": "failed", "detail": str(exc)}
        except workloads.Unsupported as exc:
            result = {"status": "unsupported", "detail": str(exc)}
        except Exception as exc:
            lines = traceback.format_exception(type(exc), exc, exc.__traceback__)
            print("".join(lines), file=sys.stderr)
            result = {"status": "error", "detail": f"{type(exc).__name__}: {exc}"[:2000]}
            engine.dispose()
        finally:
            ctx.close()
        result["seconds"] = ctx.seconds if result["status"] == "ok" else None
        result["statements"] = ctx.statements if result["status"] == "ok" else None
        if result["status"] == "ok" and ctx.peak_bytes is not None:
            result["peak_bytes"] = ctx.peak_bytes
        result.update(ctx.extra)  # throughput even when the history failed its check
        result["wall"] = round(time.perf_counter() - started, 3)
        if profiler is not None and ctx.seconds is not None:
            stats = pstats.Stats(profiler, stream=sys.stderr)
            stats.sort_stats("cumulative").print_stats(40)
            stats.sort_stats("tottime").print_stats(25)
        return result

    def cleanup(self) -> dict[str, Any]:
        for db, engine in self.engines.items():
            backend, namespace = self.namespaces[db]
            engine.dispose()
            if backend == "sqlite":
                path = engine.url.database
                if path and os.path.exists(path):
                    os.remove(path)
                continue
            with engine.begin() as conn:
                if backend == "postgresql":
                    conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {namespace} CASCADE")
                else:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {namespace}")
            engine.dispose()
        self.engines.clear()
        return {}

    # -- helpers -------------------------------------------------------------------

    def _reset(self, engine: sa.Engine) -> None:
        """Empty every table of the models (version and transaction tables included)."""
        tables = list(reversed(self.models.metadata.sorted_tables))
        names = [engine.dialect.identifier_preparer.format_table(t) for t in tables]
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.exec_driver_sql(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE")
            return
        # On the DBAPI connection: the released libraries' before_cursor_execute listeners
        # take a DELETE on an association table outside a Session for their own (KeyError).
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for name in names:
                cursor.execute(f"DELETE FROM {name}")
            cursor.close()
            raw.commit()
        finally:
            raw.close()

    @staticmethod
    def _server_version(engine: sa.Engine) -> str:
        if engine.dialect.name == "sqlite":
            return f"SQLite {sqlite3.sqlite_version}"
        with engine.connect() as conn:
            return str(conn.exec_driver_sql("SELECT version()").scalar())


def serve(impl: str) -> None:
    # The protocol owns the real stdout; anything libraries print goes to stderr.
    out = sys.stdout
    sys.stdout = sys.stderr
    worker = Worker(impl)
    for line in sys.stdin:
        request = json.loads(line)
        op = request.pop("op")
        try:
            if op == "hello":
                answer = worker.hello()
            elif op == "prepare":
                answer = worker.prepare(request["db"], request["url"])
            elif op == "run":
                answer = worker.run(request["db"], request["workload"], request["size"])
            elif op == "cleanup":
                answer = worker.cleanup()
            else:
                answer = {"status": "error", "detail": f"unknown op {op!r}"}
        except Exception as exc:
            traceback.print_exc(file=sys.stderr)
            answer = {"status": "error", "detail": f"{type(exc).__name__}: {exc}"[:2000]}
        out.write(json.dumps(answer) + "\n")
        out.flush()
        if op == "cleanup":
            break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--impl", required=True, choices=sorted(IMPLEMENTATIONS))
    parser.add_argument("--profile", metavar="WORKLOAD", choices=sorted(workloads.WORKLOADS))
    parser.add_argument("--db", default="sqlite")
    parser.add_argument("--url", help="database URL (default: a SQLite file in .bench/)")
    parser.add_argument("--size", type=int)
    args = parser.parse_args()
    if not args.profile:
        serve(args.impl)
        return
    url = args.url or f"sqlite:///{os.path.abspath('.bench/profile.sqlite')}"
    os.makedirs(".bench", exist_ok=True)
    worker = Worker(args.impl)
    # A namespace of its own, so profiling never touches a benchmark that is running.
    worker.prepare(args.db, url, prefix="profile")
    size = args.size or workloads.WORKLOADS[args.profile].default_size
    try:
        print(json.dumps(worker.run(args.db, args.profile, size, profile=True)))
    finally:
        worker.cleanup()


if __name__ == "__main__":
    main()
