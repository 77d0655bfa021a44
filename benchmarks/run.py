"""Run the benchmark: every implementation, interleaved, in one run; write the report.

Usage (``python3 -m nox -s bench`` runs the first form; ``-- --quick`` the second)::

    python benchmarks/run.py                 # default sizes -> docs/benchmarks.md + charts
    python benchmarks/run.py --quick         # small sizes, 1 repetition -> .bench/quick/
    python benchmarks/run.py --report-only docs/benchmarks/results.json

Steps:

1. pick the databases: SQLite (a file) always; PostgreSQL and MySQL/MariaDB when
   ``SQLALCHEMY_HISTORY_POSTGRESQL_URL`` / ``SQLALCHEMY_HISTORY_MYSQL_URL`` are set;
2. build one virtualenv per implementation (``envs.py``): plain SQLAlchemy, this tree,
   SQLAlchemy-History and SQLAlchemy-Continuum from PyPI (a peer that cannot be built is
   skipped, with the reason in the report); the ideal recorder (``ideal.py``, the lower
   bound) runs in plain SQLAlchemy's;
3. start one worker process per implementation (``worker.py``) and give each its own
   schema (PostgreSQL), database (MariaDB) or file (SQLite); run every workload once at
   its small size, untimed, to warm caches (not with ``--quick``);
4. repetition by repetition, workload by workload, database by database, run every
   implementation once, in an order that rotates, so drift on the machine hits all alike;
   cells where plain SQLAlchemy or this tree took over ``--long-threshold`` seconds stop
   at ``--long-reps`` repetitions, and a peer stops repeating a cell once its runs took
   ``--peer-budget`` seconds in all;
5. write the raw results (JSON) and the report (``report.py``).

Exit status: 1 when a workload of this project (or the plain SQLAlchemy baseline) fails
its check or errors, or their environments cannot be built; peers never fail the run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import envs
import report
from workloads import WORKLOADS, Workload

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
CACHE = ROOT / ".bench"

IMPLS = ("plain", "ideal", "ours", "history", "continuum")
PEERS = ("history", "continuum")
#: Implementations whose failure fails the run.
OWN = ("plain", "ours", "ideal")
#: Implementations that run in another one's virtualenv (the ideal recorder is plain
#: SQLAlchemy plus benchmarks/ideal.py).
SHARED_ENV = {"ideal": "plain"}

DATABASE_ORDER = ("sqlite", "postgresql", "mysql")
DATABASE_URLS = {
    "postgresql": "SQLALCHEMY_HISTORY_POSTGRESQL_URL",
    "mysql": "SQLALCHEMY_HISTORY_MYSQL_URL",
}


class WorkerDied(Exception):
    pass


class WorkerClient:
    """One implementation's worker process, spoken to in JSON lines, with timeouts."""

    def __init__(self, impl: str, python: Path, log_dir: Path) -> None:
        self.impl = impl
        self.python = python
        self.log_path = log_dir / f"worker-{impl}.log"
        self.prepared: dict[str, str] = {}
        self._start()

    def _start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        self.log = self.log_path.open("a")
        # cwd outside the repository and the script run by path: only benchmarks/ is on
        # sys.path, so the working tree never shadows the venv's sqlalchemy_history.
        self.process = subprocess.Popen(
            [str(self.python), str(HERE / "worker.py"), "--impl", self.impl],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            cwd=CACHE,
            env=env,
        )
        self.answers: queue.Queue[Optional[str]] = queue.Queue()
        threading.Thread(target=self._read, args=(self.process, self.answers), daemon=True).start()

    @staticmethod
    def _read(process: subprocess.Popen[str], answers: queue.Queue[Optional[str]]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            answers.put(line)
        answers.put(None)

    def ask(self, request: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            raise WorkerDied(self._tail()) from None
        try:
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            self.kill()
            raise TimeoutError(f"no answer within {timeout:.0f} s") from None
        if line is None:
            raise WorkerDied(self._tail())
        return dict(json.loads(line))

    def _tail(self) -> str:
        self.log.flush()
        lines = self.log_path.read_text(errors="replace").strip().splitlines()
        return "worker exited: " + " / ".join(lines[-3:])

    def restart(self, urls: dict[str, str], timeout: float) -> None:
        self.kill()
        self._start()
        for db in list(self.prepared):
            self.ask({"op": "prepare", "db": db, "url": urls[db]}, timeout)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def close(self, timeout: float) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(WorkerDied, TimeoutError):
                self.ask({"op": "cleanup"}, timeout)
            if self.process.stdin is not None:
                self.process.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        self.kill()


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
                break
        info["loadavg_start"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        info.setdefault("cpu", platform.processor() or "unknown")
    return info


def tree_state() -> str:
    """Return the measured working tree's commit, marked ``+changes`` when it is dirty."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sqlalchemy_history"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (commit or "unknown") + (" + uncommitted changes" if dirty else "")


def redact(url: str) -> str:
    """Drop the password from a URL for the report."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}@{host}"
    return url


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 1 repetition, no charts")
    parser.add_argument("--reps", type=int, help="repetitions (default 5; --quick: 1)")
    parser.add_argument(
        "--long-reps",
        type=int,
        default=3,
        help="repetitions of cells whose plain or this-tree run took over --long-threshold",
    )
    parser.add_argument("--long-threshold", type=float, default=1.0, metavar="SECONDS")
    parser.add_argument(
        "--peer-budget",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="a peer stops repeating a cell after this much measured time (default 5)",
    )
    parser.add_argument("--db", help="comma-separated subset of sqlite,postgresql,mysql")
    parser.add_argument("--impl", help=f"comma-separated subset of {','.join(IMPLS)}")
    parser.add_argument("--workload", help=f"comma-separated subset of {','.join(WORKLOADS)}")
    parser.add_argument("--size", type=int, help="override every workload's size (for trials)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds per run (default 600)"
    )
    parser.add_argument(
        "--output", type=Path, help="report directory (default docs/, --quick: .bench/quick/)"
    )
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the untimed warm-up pass (always skipped with --quick)",
    )
    parser.add_argument("--no-charts", action="store_true")
    parser.add_argument("--charts", action="store_true", help="draw charts in --quick mode too")
    parser.add_argument("--refresh-venvs", action="store_true", help="rebuild the virtualenvs")
    parser.add_argument(
        "--report-only",
        type=Path,
        metavar="RESULTS_JSON",
        help="only regenerate the report from a results file",
    )
    return parser.parse_args(argv)


def _subset(value: Optional[str], allowed: tuple[str, ...] | list[str], what: str) -> list[str]:
    if not value:
        return list(allowed)
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return chosen


@dataclasses.dataclass
class Cell:
    runs: int = 0
    seconds: float = 0.0
    final: bool = False  # stopped repeating (unsupported, failed, budget)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    output: Path = args.output or (CACHE / "quick" if args.quick else ROOT / "docs")
    charts = (args.charts or not args.quick) and not args.no_charts
    if args.report_only:
        results = json.loads(args.report_only.read_text())
        report.write(results, output, charts=charts)
        print(f"report written to {output / 'benchmarks.md'}")
        return 0

    started = time.time()
    tree = tree_state()
    reps = args.reps or (1 if args.quick else 5)
    impls = _subset(args.impl, IMPLS, "implementation")
    if "plain" not in impls:
        impls.insert(0, "plain")  # every ratio needs the baseline of the same run
    workload_names = _subset(args.workload, list(WORKLOADS), "workload")
    skipped_dbs: dict[str, str] = {}
    urls: dict[str, str] = {}
    for db in _subset(args.db, ("sqlite", "postgresql", "mysql"), "database"):
        if db == "sqlite":
            urls[db] = "sqlite:///{path}"
            continue
        url = os.environ.get(DATABASE_URLS[db])
        if url:
            urls[db] = url
        else:
            skipped_dbs[db] = f"{DATABASE_URLS[db]} is not set"
            print(f"skipping {db}: {DATABASE_URLS[db]} is not set", flush=True)

    CACHE.mkdir(exist_ok=True)
    log_dir = CACHE / "logs"
    log_dir.mkdir(exist_ok=True)
    try:
        built = envs.build_all(
            CACHE / "venvs",
            [i for i in impls if i not in SHARED_ENV],
            [u for u in urls.values()],
            args.refresh_venvs,
        )
        for impl, host in SHARED_ENV.items():
            if impl in impls and host in built:
                built[impl] = built[host]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    skipped_impls: dict[str, str] = {}
    for impl in impls:
        env = built.get(impl)
        if env is None or env.python is None:
            reason = (
                env.error if env is not None else "not built (the plain environment failed first)"
            )
            skipped_impls[impl] = reason or "unknown"
            print(f"skipping {impl}: {reason}", flush=True)
    if any(i in skipped_impls for i in OWN):
        print("error: the plain or this-project environment could not be built", file=sys.stderr)
        return 1
    impls = [i for i in impls if i not in skipped_impls]

    workers: dict[str, WorkerClient] = {}
    impl_info: dict[str, Any] = {}
    db_info: dict[str, Any] = {}
    runs: list[dict[str, Any]] = []
    failed_own: list[str] = []
    try:
        for impl in impls:
            python = built[impl].python
            assert python is not None
            client = WorkerClient(impl, python, log_dir)
            try:
                hello = client.ask({"op": "hello"}, 120)
            except (WorkerDied, TimeoutError) as exc:
                client.kill()
                if impl in OWN:
                    print(f"error: {impl} worker: {exc}", file=sys.stderr)
                    return 1
                skipped_impls[impl] = str(exc)
                print(f"skipping {impl}: {exc}", flush=True)
                continue
            problem = _check_identity(impl, hello)
            if problem:
                client.kill()
                print(f"error: {problem}", file=sys.stderr)
                return 1
            workers[impl] = client
            impl_info[impl] = hello
        for db, url in list(urls.items()):
            for impl, client in list(workers.items()):
                real = url.format(path=CACHE / "db" / f"{impl}.sqlite") if db == "sqlite" else url
                (CACHE / "db").mkdir(exist_ok=True)
                try:
                    answer = client.ask({"op": "prepare", "db": db, "url": real}, 300)
                except (WorkerDied, TimeoutError) as exc:
                    answer = {"status": "error", "detail": str(exc)}
                if answer.get("status") == "error":
                    reason = f"could not prepare {db}: {answer['detail']}"
                    if impl in OWN:
                        print(f"error: {impl}: {reason}", file=sys.stderr)
                        return 1
                    print(f"skipping {impl} on {db}: {reason}", flush=True)
                    impl_info[impl].setdefault("skipped_dbs", {})[db] = reason
                    continue
                client.prepared[db] = real
                db_info.setdefault(
                    db, {"url": redact(url if db != "sqlite" else "sqlite:///<file>")}
                )
                db_info[db]["server"] = answer["server"]
        sizes = {
            name: args.size
            or (WORKLOADS[name].quick_size if args.quick else WORKLOADS[name].default_size)
            for name in workload_names
        }
        if not (args.quick or args.no_warmup):
            # One small untimed run of everything first: imports, SQLAlchemy's compiled
            # statement caches and the database buffers are warm before repetition 1, so
            # a peer measured only once is not measured cold.
            print("warm-up pass (not timed)", flush=True)
            for name in workload_names:
                for db in urls:
                    for impl, client in workers.items():
                        if not runs_here(WORKLOADS[name], impl, db, client):
                            continue
                        if WORKLOADS[name].metric == "throughput":
                            continue  # nothing to warm that the other workloads do not
                        size = min(sizes[name], WORKLOADS[name].quick_size)
                        request = {"op": "run", "db": db, "workload": name, "size": size}
                        try:
                            client.ask(request, args.timeout)
                        except (TimeoutError, WorkerDied):
                            client.restart(dict(client.prepared), 300)
        cells: dict[tuple[str, str, str], Cell] = {}
        # (workload, db) whose plain or this-tree runs are long: they stop at --long-reps.
        long_cells: set[tuple[str, str]] = set()
        order = list(workers)
        total = reps * len(workload_names) * len(urls)
        step = 0
        for rep in range(reps):
            for w_index, name in enumerate(workload_names):
                workload = WORKLOADS[name]
                for db in urls:
                    step += 1
                    shift = (rep + w_index) % len(order)
                    line = []
                    for impl in order[shift:] + order[:shift]:
                        client = workers[impl]
                        if not runs_here(workload, impl, db, client):
                            continue
                        if workload.max_reps is not None and rep >= workload.max_reps:
                            continue
                        cell = cells.setdefault((name, db, impl), Cell())
                        if cell.final:
                            continue
                        if impl in PEERS and cell.runs and cell.seconds >= args.peer_budget:
                            cell.final = True
                            continue
                        if rep >= args.long_reps and (name, db) in long_cells:
                            continue
                        request = {"op": "run", "db": db, "workload": name, "size": sizes[name]}
                        try:
                            answer = client.ask(request, args.timeout)
                        except TimeoutError as exc:
                            answer = {
                                "status": "timeout",
                                "detail": str(exc),
                                "seconds": None,
                                "statements": None,
                            }
                            client.restart(dict(client.prepared), 300)
                        except WorkerDied as exc:
                            answer = {
                                "status": "error",
                                "detail": str(exc),
                                "seconds": None,
                                "statements": None,
                            }
                            client.restart(dict(client.prepared), 300)
                        answer.update(workload=name, db=db, impl=impl, rep=rep)
                        runs.append(answer)
                        cell.runs += 1
                        if answer["status"] != "ok":
                            cell.final = True
                            if impl in OWN and answer["status"] != "unsupported":
                                failed_own.append(
                                    f"{impl} {name} on {db}: {answer['status']}: {answer['detail']}"
                                )
                        else:
                            cell.seconds += answer["seconds"]
                            if impl in OWN and answer["seconds"] > args.long_threshold:
                                long_cells.add((name, db))
                        line.append(_short(impl, answer))
                    if line:
                        print(
                            f"[{step}/{total}] rep {rep + 1} {name} {db}: " + "  ".join(line),
                            flush=True,
                        )
    finally:
        for client in workers.values():
            client.close(120)

    results = {
        "meta": {
            "started": datetime.datetime.fromtimestamp(started, datetime.timezone.utc).isoformat(
                timespec="seconds"
            ),
            "duration_s": round(time.time() - started, 1),
            "quick": args.quick,
            "reps": reps,
            "peer_budget_s": args.peer_budget,
            "long_reps": args.long_reps,
            "long_threshold_s": args.long_threshold,
            "warmup": not (args.quick or args.no_warmup),
            "machine": machine(),
            "tree": tree,
            "databases": db_info,
            "skipped_databases": skipped_dbs,
            "implementations": impl_info,
            "skipped_implementations": skipped_impls,
            "command": "python3 -m nox -s bench" + (" -- --quick" if args.quick else ""),
        },
        "workloads": {
            name: {
                "title": WORKLOADS[name].title.replace("N", f"{sizes[name]:,}"),
                "kind": WORKLOADS[name].kind,
                "unit": WORKLOADS[name].unit,
                "size": sizes[name],
                "plain": WORKLOADS[name].plain,
                "metric": WORKLOADS[name].metric,
                "impls": list(WORKLOADS[name].impls or IMPLS),
                "databases": list(WORKLOADS[name].databases or DATABASE_ORDER),
                "why_not": WORKLOADS[name].why_not,
                "doc": (WORKLOADS[name].run.__doc__ or "").strip(),
            }
            for name in workload_names
        },
        "runs": runs,
    }
    output.mkdir(parents=True, exist_ok=True)
    raw = output / "benchmarks" / "results.json" if not args.quick else output / "results.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results, indent=1) + "\n")
    report.write(results, output, charts=charts)
    print(
        f"\nresults: {raw}\nreport: {output / 'benchmarks.md'} ({results['meta']['duration_s']} s)"
    )
    print(report.headline_text(results))
    if failed_own:
        print("\nFAILED (this project or the plain baseline):", file=sys.stderr)
        for failure in failed_own:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0


def runs_here(workload: Workload, impl: str, db: str, client: WorkerClient) -> bool:
    """Whether ``impl`` runs ``workload`` on ``db`` in this run."""
    if db not in client.prepared or (impl == "plain" and not workload.plain):
        return False
    if workload.impls is not None and impl not in workload.impls:
        return False
    return workload.databases is None or db in workload.databases


def _check_identity(impl: str, hello: dict[str, Any]) -> Optional[str]:
    """Make sure each worker imported the implementation it stands for."""
    module_file = hello.get("module_file") or ""
    inside_tree = module_file.startswith(str(ROOT / "sqlalchemy_history"))
    if impl == "ours" and not inside_tree:
        return f"the 'ours' worker imported {module_file}, not this working tree"
    if impl == "history":
        if inside_tree:
            return "the 'history' worker imported this working tree instead of the PyPI release"
        if hello.get("library") != envs.HISTORY_VERSION:
            return f"the 'history' worker has sqlalchemy-history {hello.get('library')}"
    if impl == "continuum" and hello.get("library") != envs.CONTINUUM_VERSION:
        return f"the 'continuum' worker has sqlalchemy-continuum {hello.get('library')}"
    return None


def _short(impl: str, answer: dict[str, Any]) -> str:
    if answer["status"] == "ok":
        if "peak_bytes" in answer:
            return f"{impl}={answer['peak_bytes'] / 2**20:.1f}MiB"
        if "commits_per_s" in answer:
            return f"{impl}={answer['commits_per_s']}/s,retries={answer.get('retries')}"
        return f"{impl}={answer['seconds'] * 1000:.0f}ms/{answer['statements']}st"
    return f"{impl}={answer['status'].upper()}"


if __name__ == "__main__":
    sys.exit(main())
