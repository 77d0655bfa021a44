"""The documentation works as written: every Python block of README.md and docs/*.md runs,
and every repository file the pages cite exists.

Each Markdown file runs in its own process through ``tests/docblocks.py`` (blocks in
order, one namespace per file, hidden ``<!-- doc-setup ... -->`` context where a block
needs some); new pages under docs/ are picked up automatically.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from docblocks import parse

ROOT = Path(__file__).resolve().parent.parent
RUNNER = Path(__file__).resolve().parent / "docblocks.py"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CITING = [*PAGES, ROOT / "CONTRIBUTING.md", ROOT / "CHANGELOG.md"]
#: Blocks deliberately not run, across all pages: keep it small.
MOST_SKIPPED = 5


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_relative)
def test_code_blocks_run(page):
    done = subprocess.run(
        [sys.executable, str(RUNNER), _relative(page)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_few_blocks_are_marked_not_runnable():
    blocks = [b for page in PAGES for b in parse(page.read_text(encoding="utf-8"), str(page))]
    skipped = [b.where for b in blocks if b.skip is not None]
    assert len(blocks) >= 20
    assert len(skipped) <= MOST_SKIPPED, skipped


# -- the collector itself ----------------------------------------------------------------


def test_parse_reads_directives_and_indented_blocks():
    text = """
Intro.

<!-- doc-setup fresh
x = 1
-->
```python
print(x)
```

- a list item:

  <!-- doc: skip needs a server -->
  ```python
  connect()
  ```

```sh
pip install nothing
```

<!-- doc: fresh -->
```py
y = 2
```

<!-- a plain comment far away -->

text in between

```python
z = 3
```
"""
    first, second, third, fourth = parse(text, "page.md")
    assert (first.line, first.code, first.fresh, first.setup) == (7, "print(x)", True, "x = 1")
    assert (second.code, second.skip) == ("connect()", "needs a server")
    assert (third.code, third.fresh, third.setup) == ("y = 2", True, "")
    assert (fourth.code, fourth.fresh, fourth.skip, fourth.setup) == ("z = 3", False, None, "")


def test_a_skip_needs_a_reason_and_directives_are_checked():
    with pytest.raises(ValueError, match="needs a reason"):
        parse("<!-- doc: skip -->\n```python\nx\n```\n", "page.md")
    with pytest.raises(ValueError, match="unknown directive"):
        parse("<!-- doc: sikp later -->\n```python\nx\n```\n", "page.md")


def test_a_failing_block_fails_with_its_line(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("ok\n\n```python\nx = 1\n```\n\n```python\nundefined_name\n```\n")
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(page)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert f"FAILED {page}:7" in done.stderr
    assert "NameError" in done.stderr


def test_top_level_await_shares_one_event_loop(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "```python\nimport asyncio\nloop = asyncio.get_running_loop()\n"
        "await asyncio.sleep(0)\n```\n\n"
        "```python\nawait asyncio.sleep(0)\nassert asyncio.get_running_loop() is loop\n```\n"
    )
    done = subprocess.run(
        [sys.executable, str(RUNNER), str(page)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "2 blocks ran" in done.stdout


# -- citations -----------------------------------------------------------------------------

#: Markdown links to local files: ``[text](path)`` and ``[text](path#anchor)``.
LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s#]+)(?:#[^)]*)?\)")
#: Backticked file names and paths, with an optional pytest node (``::test_name``).
CODE_PATH = re.compile(
    r"`((?:[\w.-]+/)*[\w-]+\.(?:md|py|toml|yml|yaml|png|mako))"
    r"(?:::([\w\[\]-]+))?`"
)
#: Backticked directories of this repository (``tests/compile/``).
CODE_DIR = re.compile(
    r"`((?:tests|examples|docs|sqlalchemy_history|conformance|benchmarks|docker|\.ci)"
    r"(?:/[\w.-]+)*/?)`"
)


def _repository_files() -> list[str]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):  # not a git checkout
        skipped = {".git", ".nox", ".venv", ".bench", "__pycache__"}
        return [
            str(p.relative_to(ROOT))
            for p in ROOT.rglob("*")
            if p.is_file() and not skipped & set(p.relative_to(ROOT).parts)
        ]
    return listed.stdout.split()


def _exists(page: Path, cited: str, files: list[str]) -> bool:
    if (page.parent / cited).exists() or (ROOT / cited).exists():
        return True
    # A bare name ("writer.py") or a path within a package ("suite/test_meta.py") names
    # a file somewhere in the repository.
    return any(f == cited or f.endswith("/" + cited) for f in files)


@pytest.mark.parametrize("page", CITING, ids=_relative)
def test_pages_cite_only_files_of_the_repository(page):
    text = page.read_text(encoding="utf-8")
    files = _repository_files()
    missing = []
    for cited in LINK.findall(text):
        if not _exists(page, cited, files):
            missing.append(cited)
    for cited, node in CODE_PATH.findall(text):
        if not _exists(page, cited, files):
            missing.append(cited)
        elif node:
            source = (ROOT / cited).read_text(encoding="utf-8")
            if not re.search(rf"\bdef {re.escape(node.split('[')[0])}\b", source):
                missing.append(f"{cited}::{node}")
    for cited in CODE_DIR.findall(text):
        if not (ROOT / cited).exists():
            missing.append(cited)
    assert missing == [], f"{_relative(page)} cites what the repository does not have: {missing}"
