"""Meta-tests of the suite itself: it reaches the implementation only through ``history``,
and every requirement it uses exists and is documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

from ..meta import (
    KNOWN_IMPLEMENTATIONS,
    ROOT,
    direct_imports,
    documented_requirements,
    readme,
    required_names,
    suite_files,
)
from ..requirements import Requirements

__all__ = ["TestSuiteItself"]

REFERENCE = "sqlalchemy_history"


@pytest.mark.conformance
class TestSuiteItself:
    def test_no_suite_file_imports_the_implementation(self, history_adapter):
        packages = {history_adapter.module_name, *KNOWN_IMPLEMENTATIONS}
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

    def test_every_requirement_the_suite_uses_exists(self):
        used = required_names()
        assert len(used) > 20
        unknown = {name: files for name, files in used.items() if name not in Requirements.names()}
        assert unknown == {}, "add them to Requirements (requirements.py)"

    def test_every_requirement_has_a_row_in_the_readme(self):
        documented = documented_requirements(readme())
        assert len(documented) > 20
        missing = sorted(set(Requirements.names()) - documented)
        assert missing == [], "add a row to the README's requirements table"
        stale = sorted(documented - set(Requirements.names()))
        assert stale == [], "the README's requirements table names requirements that do not exist"

    def test_every_requirement_says_what_it_means(self):
        undocumented = [
            name for name in Requirements.names() if not getattr(Requirements, name).__doc__
        ]
        assert undocumented == []
