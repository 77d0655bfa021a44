"""Meta-tests of the suite itself: it reaches the implementation only through ``history``."""

from __future__ import annotations

import importlib
import inspect

import pytest

from .. import config as _config
from ..meta import ROOT, direct_imports, suite_files

__all__ = ["TestSuiteItself"]

#: The reference implementation's package: a fork's suite must not import it either.
REFERENCE = "sqlalchemy_history"


@pytest.mark.conformance
class TestSuiteItself:
    def test_no_suite_file_imports_the_implementation(self, pytestconfig):
        packages = {_config.load(pytestconfig).implementation, REFERENCE}
        files = suite_files()
        assert len(files) > 10
        found = [
            hit
            for path in files
            for hit in direct_imports(path.read_text(encoding="utf-8"), packages, str(path))
        ]
        assert found == [], "use the `history` fixture instead:\n" + "\n".join(found)

    def test_the_import_check_finds_every_form_of_import(self):
        source = "\n".join(
            [
                "import sqlalchemy_history",
                "import sqlalchemy_history.utils as u",
                "from sqlalchemy_history.plugins import Plugin",
                "importlib.import_module('sqlalchemy_history.reverter')",
                "__import__('sqlalchemy_history')",
                "from . import _helpers",
                "import sqlalchemy",
                "import sqlalchemy_history_extras",
            ]
        )
        hits = list(direct_imports(source, {REFERENCE}))
        assert [h.split(":")[1] for h in hits] == ["1", "2", "3", "4", "5"]

    def test_every_test_class_is_collected_once(self):
        suite = importlib.import_module(__package__)
        seen: dict[str, str] = {}
        for path in sorted((ROOT / "suite").glob("test_*.py")):
            module = importlib.import_module(f"{__package__}.{path.stem}")
            classes = {
                name
                for name, obj in vars(module).items()
                if name.startswith("Test")
                and inspect.isclass(obj)
                and obj.__module__ == module.__name__
            }
            assert set(module.__all__) == classes, path.name
            for name in classes:
                assert name not in seen, f"{name} in {path.name} and {seen.get(name)}"
                seen[name] = path.name
                assert getattr(suite, name) is getattr(module, name), f"{name} not exported"
