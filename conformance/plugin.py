"""The conformance suite's pytest plugin: options, fixtures, requirements and the summary.

Load it from the root ``conftest.py`` (``pytest_plugins = ["conformance.plugin"]``) and
collect the suite with one line in a test module (``from conformance.suite import *``).

Options::

    --db NAME        database(s) to run on: sqlite postgresql mysql mariadb mssql oracle
                     (repeatable or comma-separated; default: SQLite plus every database
                     whose SQLALCHEMY_HISTORY_<NAME>_URL is set)
    --dburi URL      a database by URL (repeatable)
    --async          also run every database through its asyncio driver
    --async-only     run only through the asyncio drivers
    --impl MODULE    the implementation under test (default: pyproject.toml's
                     [tool.sqlalchemy_history.conformance] implementation)
    --requirements module:Class   the requirements class (same table, ``requirements``)

Fixtures: ``history`` (the implementation module), ``conformance_db`` (the database
target, parametrised over every target), ``conformance_models`` (builds versioned models).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import Counter, defaultdict
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Optional

import pytest

from . import config as _config
from .databases import Registry, Target
from .fixtures import ModelBuilder
from .requirements import FAILING, UNSUPPORTED, Requirements


@dataclasses.dataclass
class _State:
    registry: Registry
    settings: Optional[_config.Settings] = None
    implementation: Optional[ModuleType] = None
    requirements_cls: Optional[type] = None
    requirements: dict[str, Requirements] = dataclasses.field(default_factory=dict)
    #: nodeid -> target label, for every collected test that runs on a database.
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    #: nodeid -> final outcome (passed, failed, error, skipped, xfailed).
    outcomes: dict[str, str] = dataclasses.field(default_factory=dict)
    #: (requirement, state, reason) -> target label -> number of tests it skipped/xfailed.
    by_requirement: dict[tuple[str, str, str], Counter[str]] = dataclasses.field(
        default_factory=lambda: defaultdict(Counter)
    )
    #: Tests of the suite that need no database (the meta-tests).
    plain: set[str] = dataclasses.field(default_factory=set)

    def load(self, config: pytest.Config) -> ModuleType:
        if self.implementation is None:
            self.settings = _config.load(config)
            self.implementation = _config.import_implementation(self.settings)
            self.requirements_cls = _config.import_requirements(self.settings)
        return self.implementation

    def requirements_for(self, config: pytest.Config, label: str) -> Requirements:
        if label not in self.requirements:
            implementation = self.load(config)
            info = self.registry.targets[label].start()
            assert self.requirements_cls is not None
            self.requirements[label] = self.requirements_cls(info, implementation)
        return self.requirements[label]


_STATE = pytest.StashKey[_State]()


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


# -- configuration ------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("history-conformance", "sqlalchemy_history conformance suite")
    group.addoption(
        "--db",
        dest="history_db",
        action="append",
        default=[],
        metavar="NAME",
        help="database to run the conformance suite on (sqlite, postgresql, mysql, mariadb, "
        "mssql, oracle); repeatable. Default: SQLite plus every database whose "
        "SQLALCHEMY_HISTORY_<NAME>_URL is set.",
    )
    group.addoption(
        "--dburi",
        dest="history_dburi",
        action="append",
        default=[],
        metavar="URL",
        help="database URL to run the conformance suite on; repeatable.",
    )
    group.addoption(
        "--async",
        dest="history_async",
        action="store_true",
        help="also run every database through its asyncio driver.",
    )
    group.addoption(
        "--async-only",
        dest="history_async_only",
        action="store_true",
        help="run every database through its asyncio driver only.",
    )
    group.addoption(
        "--impl",
        dest="history_impl",
        metavar="MODULE",
        help="implementation module under test (default: pyproject.toml "
        "[tool.sqlalchemy_history.conformance] implementation).",
    )
    group.addoption(
        "--requirements",
        dest="history_requirements",
        metavar="MODULE:CLASS",
        help="requirements class (default: the same table's 'requirements').",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires(name, *args): run only where the requirements class supports `name` "
        "(skip where unsupported, strict xfail where declared failing).",
    )
    config.addinivalue_line(
        "markers", "conformance: a conformance-suite test that needs no database"
    )
    registry = Registry.from_options(
        config.getoption("history_db"),
        config.getoption("history_dburi"),
        config.getoption("history_async"),
        config.getoption("history_async_only"),
    )
    config.stash[_STATE] = _State(registry)


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None:
        state.registry.close()


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = _state(config)
    labels = ", ".join(state.registry.targets)
    try:
        settings = _config.load(config)
    except pytest.UsageError:
        return [f"conformance: not configured (databases: {labels})"]
    lines = [
        f"conformance: implementation {settings.implementation} (from {settings.source}), "
        f"requirements {settings.requirements}",
        f"conformance databases: {labels}",
    ]
    lines.extend(f"conformance NOT run on {reason}" for reason in state.registry.not_run)
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "conformance_db" in metafunc.fixturenames:
        labels = list(_state(metafunc.config).registry.targets)
        metafunc.parametrize("conformance_db", labels, indirect=True, ids=labels, scope="session")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    state = _state(config)
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "conformance_db" in callspec.params:
            state.labels[item.nodeid] = callspec.params["conformance_db"]
        elif item.get_closest_marker("conformance") is not None:
            state.plain.add(item.nodeid)


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def history(pytestconfig: pytest.Config) -> ModuleType:
    """The implementation module under test (``sqlalchemy_history`` or a fork's)."""
    return _state(pytestconfig).load(pytestconfig)


@pytest.fixture(scope="session")
def conformance_db(request: pytest.FixtureRequest) -> Target:
    """The database target of this test (connected; a container started if needed)."""
    target = _state(request.config).registry.targets[request.param]
    target.start()
    return target


@pytest.fixture
def conformance_models(history: ModuleType, conformance_db: Target) -> Iterator[ModelBuilder]:
    """``conformance_models(define, options=..., user_cls=...)`` builds versioned models."""
    builder = ModelBuilder(history, conformance_db)
    yield builder
    builder.close()


# -- running ------------------------------------------------------------------------------


def _requirement_text(mark: pytest.Mark) -> tuple[str, tuple[Any, ...]]:
    if not mark.args:
        raise pytest.UsageError("@pytest.mark.requires needs a requirement name")
    name, *args = mark.args
    text = f"{name}({', '.join(map(repr, args))})" if args else str(name)
    return text, (str(name), *args)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    state = _state(item.config)
    label = state.labels.get(item.nodeid)
    marks = list(item.iter_markers("requires"))
    if not marks:
        return
    if label is None:
        raise pytest.UsageError(f"{item.nodeid}: @requires needs the conformance_db fixture")
    requirements = state.requirements_for(item.config, label)
    for mark in marks:
        text, (name, *args) = _requirement_text(mark)
        try:
            support = requirements.check(name, *args)
        except LookupError as error:
            raise pytest.UsageError(f"{item.nodeid}: {error}") from None
        if support.state == UNSUPPORTED:
            state.by_requirement[(text, UNSUPPORTED, support.reason)][label] += 1
            pytest.skip(f"requires {text}: {support.reason}")
        if support.state == FAILING:
            state.by_requirement[(text, FAILING, support.reason)][label] += 1
            item.add_marker(pytest.mark.xfail(reason=f"{text}: {support.reason}", strict=True))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Optional[bool]:
    """Run ``async def`` tests on the run's loop, and sync tests of async targets in a greenlet."""
    func = pyfuncitem.obj
    is_coroutine = inspect.iscoroutinefunction(func)
    db = pyfuncitem.funcargs.get("conformance_db")
    if not isinstance(db, Target):
        return None
    if not is_coroutine and not db.is_async:
        return None
    names = inspect.signature(func).parameters
    kwargs = {name: pyfuncitem.funcargs[name] for name in names if name in pyfuncitem.funcargs}
    if is_coroutine:
        db.registry.run(func(**kwargs))
    else:
        db.call(func, **kwargs)
    return True


def _outcomes(stats: dict[str, list[Any]]) -> dict[str, str]:
    """Final outcome per test id from the terminal reporter's statistics."""
    outcomes: dict[str, str] = {}
    for category in ("passed", "skipped", "xfailed", "xpassed", "failed", "error"):
        for report in stats.get(category, []):
            nodeid = getattr(report, "nodeid", None)
            if nodeid is not None and outcomes.get(nodeid) != "error":
                outcomes[nodeid] = "failed" if category == "xpassed" else category
    return outcomes


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None:
        return
    outcomes = _outcomes(terminalreporter.stats)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for nodeid, label in state.labels.items():
        if nodeid in outcomes:
            counts[label][outcomes[nodeid]] += 1
    for nodeid in state.plain:
        if nodeid in outcomes:
            counts["(no database)"][outcomes[nodeid]] += 1
    if not counts:
        return
    write = terminalreporter.write_line
    terminalreporter.section("sqlalchemy_history conformance suite")
    settings = state.settings
    if settings is not None:
        module = state.implementation
        where = getattr(module, "__file__", "?") if module is not None else "?"
        write(f"implementation: {settings.implementation} ({where})")
        write(f"requirements:   {settings.requirements}")
    columns = ("passed", "failed", "error", "skipped", "xfailed")
    write(f"{'database':<22} {'server':<26} " + " ".join(f"{c:>7}" for c in columns))
    for label, counter in counts.items():
        target = state.registry.targets.get(label)
        info = target._info if target is not None else None
        server = f"{info.server} ({info.driver})" if info is not None else ""
        write(f"{label:<22} {server:<26} " + " ".join(f"{counter[c]:>7}" for c in columns))
    for reason in state.registry.not_run:
        write(f"not run: {reason}")
    if state.by_requirement:
        write("")
        write("skipped (or expected to fail) by requirement:")
        for (text, kind, reason), per_target in sorted(state.by_requirement.items()):
            where = ", ".join(f"{label} {n}" for label, n in per_target.items())
            verb = "xfail" if kind == FAILING else "skip"
            write(f"  {text} [{verb}: {where}]: {reason}")
