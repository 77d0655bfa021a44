"""Which implementation the suite tests, and with which requirements class.

Read from the ``[tool.sqlalchemy_history.conformance]`` table of the ``pyproject.toml`` in
pytest's root directory, each key overridable on the command line::

    [tool.sqlalchemy_history.conformance]
    implementation = "sqlalchemy_history"                        # --impl
    requirements = "conformance.requirements:Requirements"      # --requirements

A fork changes ``implementation`` to its own package name: the suite reaches the
implementation only through the ``history`` fixture, which imports that module.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Optional

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python < 3.11
    import tomli as tomllib

TABLE = ("tool", "sqlalchemy_history", "conformance")
DEFAULT_REQUIREMENTS = "conformance.requirements:Requirements"


@dataclasses.dataclass(frozen=True)
class Settings:
    """The implementation module name and requirements class path of this run."""

    implementation: str
    requirements: str
    #: Where ``implementation`` came from, for the report header.
    source: str


def _table(pyproject: Path) -> dict[str, Any]:
    if not pyproject.is_file():
        return {}
    with pyproject.open("rb") as f:
        data: Any = tomllib.load(f)
    for key in TABLE:
        data = data.get(key, {}) if isinstance(data, dict) else {}
    return data if isinstance(data, dict) else {}


def load(config: pytest.Config) -> Settings:
    """Resolve the settings from ``--impl``/``--requirements`` and pyproject.toml."""
    pyproject = config.rootpath / "pyproject.toml"
    table = _table(pyproject)
    impl: Optional[str] = config.getoption("history_impl") or table.get("implementation")
    if config.getoption("history_impl"):
        source = "--impl"
    else:
        source = f"{pyproject.name} [{'.'.join(TABLE)}]"
    if not impl:
        raise pytest.UsageError(
            f"the conformance suite does not know which implementation to test: add\n"
            f"    [{'.'.join(TABLE)}]\n"
            f'    implementation = "your_package"\n'
            f"to {pyproject}, or pass --impl your_package."
        )
    requirements = (
        config.getoption("history_requirements")
        or table.get("requirements")
        or DEFAULT_REQUIREMENTS
    )
    return Settings(str(impl), str(requirements), source)


def import_implementation(settings: Settings) -> ModuleType:
    """Import the implementation module, explaining a failure."""
    try:
        return importlib.import_module(settings.implementation)
    except ImportError as error:
        raise pytest.UsageError(
            f"cannot import implementation {settings.implementation!r} "
            f"(from {settings.source}): {error}"
        ) from error


def import_requirements(settings: Settings) -> type:
    """Import the requirements class named ``module:Class``."""
    module_name, _, class_name = settings.requirements.partition(":")
    if not class_name:
        raise pytest.UsageError(
            f"requirements {settings.requirements!r} must be 'package.module:ClassName'."
        )
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as error:
        raise pytest.UsageError(
            f"cannot load requirements class {settings.requirements!r}: {error}"
        ) from error
    from .requirements import Requirements

    if not (isinstance(cls, type) and issubclass(cls, Requirements)):
        raise pytest.UsageError(
            f"{settings.requirements} is not a subclass of conformance.requirements.Requirements."
        )
    return cls
