"""Build one virtualenv per implementation under ``.bench/venvs`` from PyPI.

This project and the released SQLAlchemy-History share the import name
``sqlalchemy_history``, so every implementation gets its own environment:

- ``plain``: SQLAlchemy and the database drivers only;
- ``ours``: this working tree, installed editable (the benchmark always measures the
  current code);
- ``history`` / ``continuum``: the released libraries at the pinned versions below.

``plain`` is built first and decides the SQLAlchemy and driver versions; the others are
pinned to the same ones. A peer that cannot be installed with them (or at all: no
network) is skipped with the reason; ``plain`` and ``ours`` must build.
An environment is reused while its requirements are unchanged (``--refresh-venvs``
rebuilds them, picking up new SQLAlchemy releases).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parent.parent

#: Released versions compared against; the newest of each series on PyPI when written
#: (``pip index versions sqlalchemy-history`` / ``sqlalchemy-continuum``).
HISTORY_VERSION = "2.2.1"
CONTINUUM_VERSION = "2.0.0"

#: Our supported SQLAlchemy range (pyproject.toml); plain resolves the newest in it.
SQLALCHEMY_SPEC = "SQLAlchemy>=2.0.20,<2.2"

#: URL driver name -> the PyPI package providing it.
DRIVER_PACKAGES = {
    "pysqlite": None,
    "psycopg2": "psycopg2-binary",
    "psycopg": "psycopg[binary]",
    "pymysql": "pymysql",
}
#: The driver SQLAlchemy picks when a URL names none.
DEFAULT_DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg2", "mysql": "mysqldb"}


@dataclasses.dataclass
class Env:
    impl: str
    path: Path
    python: Optional[Path] = None
    error: Optional[str] = None


def driver_packages(urls: list[str]) -> list[str]:
    """Return the driver packages the URLs need; raise ValueError for unsupported ones."""
    packages: list[str] = []
    for url in urls:
        scheme = url.split("://", 1)[0]
        backend, _, driver = scheme.partition("+")
        driver = driver or DEFAULT_DRIVERS.get(backend, "")
        if driver not in DRIVER_PACKAGES:
            raise ValueError(
                f"{url.split('@')[-1]!r}: driver {driver!r} is not supported by the benchmark; "
                f"use one of {', '.join(f'+{d}' for d in DRIVER_PACKAGES if d != 'pysqlite')}"
            )
        package = DRIVER_PACKAGES[driver]
        if package and package not in packages:
            packages.append(package)
    return packages


def _requirements(impl: str, pins: list[str]) -> list[str]:
    if impl == "plain":
        return pins
    if impl == "ours":
        return ["-e", str(ROOT), *pins]
    if impl == "history":
        return [f"sqlalchemy-history=={HISTORY_VERSION}", *pins]
    if impl == "continuum":
        return [f"sqlalchemy-continuum=={CONTINUUM_VERSION}", *pins]
    raise ValueError(impl)


def _build(cache: Path, impl: str, requirements: list[str], refresh: bool, log: Path) -> Env:
    path = cache / impl
    env = Env(impl, path)
    python = path / "bin" / "python"
    stamp = path / ".bench-requirements"
    # The editable install of this tree depends on its pyproject.toml too.
    key_source = json.dumps([sys.version, requirements])
    if impl == "ours":
        key_source += (ROOT / "pyproject.toml").read_text()
    key = hashlib.sha256(key_source.encode()).hexdigest()
    if not refresh and python.exists() and stamp.exists() and stamp.read_text() == key:
        env.python = python
        return env
    shutil.rmtree(path, ignore_errors=True)
    with log.open("w") as out:
        steps = [
            [sys.executable, "-m", "venv", str(path)],
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                *requirements,
            ],
        ]
        for step in steps:
            out.write("$ " + " ".join(step) + "\n")
            out.flush()
            done = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT, cwd=cache)
            if done.returncode != 0:
                lines = log.read_text().strip().splitlines()
                tail = [line for line in lines if not line.startswith("WARNING")][-2:]
                env.error = f"`{' '.join(step[2:5])} ...` failed: " + " / ".join(tail)
                return env
    stamp.write_text(key)
    env.python = python
    return env


def installed_versions(python: Path, packages: list[str]) -> dict[str, str]:
    code = (
        "import importlib.metadata as m, json, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: pass\n"
        "print(json.dumps(out))\n"
    )
    names = [p.split("[")[0] for p in packages]
    done = subprocess.run(
        [str(python), "-c", code, *names], capture_output=True, text=True, check=True
    )
    return dict(json.loads(done.stdout))


def build_all(
    cache: Path, impls: list[str], urls: list[str], refresh: bool = False
) -> dict[str, Env]:
    """Build (or reuse) the environments of ``impls``; ``plain`` decides the versions."""
    cache.mkdir(parents=True, exist_ok=True)
    logs = cache / "logs"
    logs.mkdir(exist_ok=True)
    drivers = driver_packages(urls)
    base = [SQLALCHEMY_SPEC, "greenlet", *drivers]
    envs: dict[str, Env] = {}
    print(f"building virtualenvs in {cache} (logs in {logs})", flush=True)
    plain = _build(cache, "plain", base, refresh, logs / "plain.log")
    envs["plain"] = plain
    if plain.python is None:
        return envs
    versions = installed_versions(plain.python, ["SQLAlchemy", "greenlet", *drivers])
    pins = [f"SQLAlchemy=={versions['SQLAlchemy']}", f"greenlet=={versions['greenlet']}"]
    for package in drivers:
        bare = package.split("[")[0]
        pins.append(f"{package}=={versions[bare]}" if bare in versions else package)
    others = [i for i in impls if i != "plain"]
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = {
            impl: pool.submit(
                _build, cache, impl, _requirements(impl, pins), refresh, logs / f"{impl}.log"
            )
            for impl in others
        }
        for impl, future in futures.items():
            envs[impl] = future.result()
    for impl in others:
        env = envs[impl]
        if env.python is not None or impl not in ("history", "continuum"):
            continue
        # A peer that refuses our pins gets its own resolution (noted in the report).
        retry = _requirements(impl, ["greenlet", *drivers])
        again = _build(cache, impl, retry, refresh, logs / f"{impl}-unpinned.log")
        if again.python is not None:
            envs[impl] = again
    return envs
