"""Find direct imports of an implementation package in the suite's own files.

The suite may reach the implementation only through the ``history`` fixture; a direct
``import sqlalchemy_history`` would make a fork's run silently test our package instead of
its own. ``suite/test_meta.py`` runs this check on every file of the suite.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

#: The suite's own directory; ``fork_example`` is a stand-in implementation, not the suite.
ROOT = Path(__file__).resolve().parent
NOT_SUITE = ("fork_example",)
_IMPORT_FUNCTIONS = {"import_module", "__import__"}


def suite_files() -> list[Path]:
    """Every Python file of the suite (not the fork example)."""
    return sorted(
        p for p in ROOT.rglob("*.py") if not set(p.relative_to(ROOT).parts[:-1]) & set(NOT_SUITE)
    )


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
