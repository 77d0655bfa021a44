"""conformance/README.md shows the adapters CI runs, verbatim (so its example is a tested one)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance"
README = (CONFORMANCE / "README.md").read_text(encoding="utf-8")
EMBEDDED = re.compile(r"<!-- conftest: (\S+) -->\n```python\n(.*?)```", re.DOTALL)
IMPLEMENTATIONS = sorted(p.name for p in (CONFORMANCE / "implementations").iterdir() if p.is_dir())


def test_every_implementation_adapter_is_shown():
    shown = {Path(path).parent.name for path, _ in EMBEDDED.findall(README)}
    assert (
        shown
        == set(IMPLEMENTATIONS)
        == {
            "sqlalchemy_history_2_2_1",
            "sqlalchemy_continuum_2_0_0",
        }
    )


@pytest.mark.parametrize(("path", "shown"), EMBEDDED.findall(README), ids=lambda v: v[:40])
def test_readme_conftest_is_the_file_ci_runs(path, shown):
    assert shown == (CONFORMANCE / path).read_text(encoding="utf-8"), (
        f"conformance/README.md shows an outdated copy of conformance/{path}"
    )


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_readme_pytest_ini_and_test_module_are_the_files_ci_runs(implementation):
    directory = CONFORMANCE / "implementations" / implementation
    for name, language in (("pytest.ini", "ini"), ("test_conformance.py", "python")):
        block = f"```{language}\n{(directory / name).read_text(encoding='utf-8')}```"
        assert block in README, f"conformance/README.md does not show {implementation}/{name}"
