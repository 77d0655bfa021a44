"""Checks of the suite itself: no direct imports of an implementation, requirements known.

The suite may reach the implementation only through the adapter (the ``history`` fixture);
a direct ``import sqlalchemy_history`` would make another implementation's run silently
test that package instead of its own. ``suite/test_meta.py`` runs this check on every file
of the distribution.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
from collections.abc import Collection, Iterator
from pathlib import Path

#: The distribution's package directory.
ROOT = Path(__file__).resolve().parent
#: Implementations the suite is known to run on; none of them may be imported directly.
KNOWN_IMPLEMENTATIONS = ("sqlalchemy_history", "sqlalchemy_continuum")
_IMPORT_FUNCTIONS = {"import_module", "__import__"}


def suite_files() -> list[Path]:
    """Every Python file of the distribution."""
    return sorted(ROOT.rglob("*.py"))


def _root(name: str) -> str:
    return name.split(".", 1)[0]


def direct_imports(
    source: str, packages: Collection[str], filename: str = "<source>"
) -> Iterator[str]:
    """Yield ``file:line: what`` for each import of one of ``packages`` in ``source``.

    Finds ``import x``, ``from x import y`` and ``importlib.import_module("x")`` /
    ``__import__("x")`` with a literal name; relative imports are the suite's own.
    """
    roots = {_root(p) for p in packages}
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _root(alias.name) in roots:
                    yield f"{filename}:{node.lineno}: import {alias.name}"
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module and _root(node.module) in roots:
                yield f"{filename}:{node.lineno}: from {node.module} import ..."
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _IMPORT_FUNCTIONS and node.args:
                first = node.args[0]
                if (
                    isinstance(first, ast.Constant)
                    and isinstance(first.value, str)
                    and _root(first.value) in roots
                ):
                    yield f"{filename}:{node.lineno}: {name}({first.value!r})"


DISTRIBUTION = "sqlalchemy-history-conformance"
_REQUIRES = re.compile(r"""requires\(\s*["'](\w+)["']""")
_TABLE_ROW = re.compile(r"^\| `(\w+)(?:\([^`]*\))?` \|", re.MULTILINE)


def required_names() -> dict[str, list[str]]:
    """Requirement name -> the suite files whose ``requires(...)`` marks name it."""
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "suite").glob("*.py")):
        for name in _REQUIRES.findall(path.read_text(encoding="utf-8")):
            found.setdefault(name, []).append(path.name)
    return found


def readme() -> str:
    """The distribution's README: the source tree's file, else the installed metadata."""
    source = ROOT.parent / "README.md"
    if source.is_file() and (ROOT.parent / "pyproject.toml").is_file():
        return source.read_text(encoding="utf-8")
    metadata = importlib.metadata.metadata(DISTRIBUTION)
    text = metadata.get("Description") or metadata.get_payload()  # type: ignore[attr-defined]
    return str(text or "")


def documented_requirements(text: str) -> set[str]:
    """Requirement names with a row in the table of the README's "Requirements" section."""
    _, _, section = text.partition("\n## Requirements\n")
    section = section.split("\n## ", 1)[0]
    return set(_TABLE_ROW.findall(section))
