"""The conformance suite's pytest plugin: options, fixtures, requirements and the summary.

Never loaded by merely installing the distribution (it has no ``pytest11`` entry point):
load it in the ``conftest.py`` that also returns your adapter::

    pytest_plugins = ["sqlalchemy_history_conformance.plugin"]

    def pytest_history_conformance_adapter(config):
        return MyAdapter()

(or ``pytest -p sqlalchemy_history_conformance.plugin``), and collect the suite with one line
in a test module: ``from sqlalchemy_history_conformance.suite import *``.

Options::

    --db NAME        database(s) to run on: sqlite postgresql mysql mariadb mssql oracle
                     (repeatable or comma-separated; default: SQLite plus every database
                     whose SQLALCHEMY_HISTORY_<NAME>_URL is set)
    --dburi URL      a database by URL (repeatable)
    --async          also run every database through its asyncio driver
    --async-only     run only through the asyncio drivers
    --history-schema NAME
                     an existing second schema for the schema tests (default: one created
                     for this run, named history_conformance_<random>, dropped at the end)

Fixtures: ``history`` (the implementation: top-level names, ``.utils``, ``.exc``,
``.plugins``, ``.reverter``), ``history_adapter``, ``conformance_db`` (the database target,
parametrised over every target), ``conformance_models`` (builds versioned models).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections import Counter, defaultdict
from collections.abc import Generator, Iterator
from typing import Any, Optional

import pytest
import sqlalchemy as sa

from . import hooks
from .adapter import Adapter
from .databases import Registry, Target
from .fixtures import Implementation, ModelBuilder
from .requirements import FAILING, UNSUPPORTED, Requirements

HOOK = "pytest_history_conformance_adapter"


@dataclasses.dataclass
class _State:
    registry: Registry
    adapter: Optional[Adapter] = None
    requirements: dict[str, Requirements] = dataclasses.field(default_factory=dict)
    #: nodeid -> target label, for every collected test that runs on a database.
    labels: dict[str, str] = dataclasses.field(default_factory=dict)
    #: (requirement, state, reason) -> target label -> number of tests it skipped/xfailed.
    by_requirement: dict[tuple[str, str, str], Counter[str]] = dataclasses.field(
        default_factory=lambda: defaultdict(Counter)
    )
    #: Tests of the suite that need no database (the meta-tests).
    plain: set[str] = dataclasses.field(default_factory=set)

    def load(self, config: pytest.Config) -> Adapter:
        if self.adapter is None:
            self.adapter = _adapter(config)
        return self.adapter

    def requirements_for(self, config: pytest.Config, label: str) -> Requirements:
        if label not in self.requirements:
            adapter = self.load(config)
            info = self.registry.targets[label].start()
            self.requirements[label] = adapter.requirements_cls(info, adapter)
        return self.requirements[label]


_STATE = pytest.StashKey[_State]()
#: Whether a test's call phase passed (its tables may then be kept for the next test).
_PASSED = pytest.StashKey[bool]()


def _state(config: pytest.Config) -> _State:
    return config.stash[_STATE]


def _adapter(config: pytest.Config) -> Adapter:
    """Ask the ``conftest.py`` for the adapter; explain what to write when it has none."""
    adapter = getattr(config.hook, HOOK)(config=config)
    if adapter is None:
        raise pytest.UsageError(
            "the conformance suite does not know which implementation to test: in the "
            "conftest.py that loads sqlalchemy_history_conformance.plugin, return an "
            "adapter:\n\n"
            "    from sqlalchemy_history_conformance import Adapter\n\n"
            "    class MyAdapter(Adapter):\n"
            '        module_name = "my_package"\n\n'
            f"    def {HOOK}(config):\n"
            "        return MyAdapter()\n\n"
            "(see the README of sqlalchemy-history-conformance)"
        )
    if not isinstance(adapter, Adapter):
        raise pytest.UsageError(
            f"{HOOK}() returned {adapter!r}, not an instance of "
            f"sqlalchemy_history_conformance.Adapter"
        )
    requirements = adapter.requirements_cls
    if not (isinstance(requirements, type) and issubclass(requirements, Requirements)):
        raise pytest.UsageError(
            f"{type(adapter).__name__}.requirements_cls is {requirements!r}, not a subclass "
            f"of sqlalchemy_history_conformance.Requirements"
        )
    return adapter


# -- configuration ------------------------------------------------------------------------


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


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
        "--history-schema",
        dest="history_schema",
        metavar="NAME",
        help="an existing second schema for the schema tests (default: a schema created "
        "for this run and dropped at its end; on Oracle, history_test_schema if it exists).",
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
        config.getoption("history_schema"),
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
        adapter = state.load(config)
    except pytest.UsageError:
        return [f"conformance: no adapter (databases: {labels})"]
    requirements = adapter.requirements_cls
    lines = [
        f"conformance: {adapter.describe()}, SQLAlchemy {sa.__version__}",
        f"conformance adapter: {type(adapter).__module__}.{type(adapter).__qualname__}, "
        f"requirements {requirements.__module__}.{requirements.__qualname__}",
        f"conformance databases: {labels}, second schema {state.registry.schema_name}",
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
def history_adapter(pytestconfig: pytest.Config) -> Adapter:
    """The adapter of the implementation under test (from the ``conftest.py`` hook)."""
    return _state(pytestconfig).load(pytestconfig)


@pytest.fixture(scope="session")
def history(history_adapter: Adapter) -> Implementation:
    """The implementation under test: its top-level names and public modules."""
    return Implementation(history_adapter)


@pytest.fixture(scope="session")
def conformance_db(request: pytest.FixtureRequest) -> Target:
    """The database target of this test (connected; a container started if needed)."""
    target = _state(request.config).registry.targets[request.param]
    target.start()
    return target


@pytest.fixture
def conformance_models(
    request: pytest.FixtureRequest, history: Implementation, conformance_db: Target
) -> Iterator[ModelBuilder]:
    """``conformance_models(define, options=..., user_cls=...)`` builds versioned models."""
    builder = ModelBuilder(history, conformance_db)
    yield builder
    # Tables are kept (emptied) for the next test only after a pass: a failed test may
    # have left them in any state.
    builder.close(keep=request.node.stash.get(_PASSED, False))


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
    answers = []
    for mark in marks:
        text, (name, *args) = _requirement_text(mark)
        try:
            answers.append((text, requirements.check(name, *args)))
        except LookupError as error:
            raise pytest.UsageError(f"{item.nodeid}: {error}") from None
    # An unsupported requirement skips the test whatever the others say; only a test that
    # runs counts as an expected failure.
    for text, support in answers:
        if support.state == UNSUPPORTED:
            state.by_requirement[(text, UNSUPPORTED, support.reason)][label] += 1
            pytest.skip(f"requires {text}: {support.reason}")
    for text, support in answers:
        if support.state == FAILING:
            state.by_requirement[(text, FAILING, support.reason)][label] += 1
            item.add_marker(pytest.mark.xfail(reason=f"{text}: {support.reason}", strict=True))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed and not hasattr(report, "wasxfail")
    return report


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
    if state.adapter is not None:
        requirements = state.adapter.requirements_cls
        write(f"implementation: {state.adapter.describe()}, SQLAlchemy {sa.__version__}")
        write(f"requirements:   {requirements.__module__}.{requirements.__qualname__}")
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
