"""Run the Python code blocks of a Markdown file, in order, as one script.

``python tests/docblocks.py README.md docs/async.md`` runs each file's ```` ```python ````
blocks in a fresh process-wide namespace (one per file) and reports the first failing
block with its line number; ``tests/test_docs.py`` runs every ``README.md`` and
``docs/*.md`` this way in CI.

What a block needs and does not show is declared next to it, in an HTML comment right
before the block (invisible on rendered pages)::

    <!-- doc-setup
    article = Article(name="a")   # runs before the next block, in the same namespace
    -->

    <!-- doc-setup fresh
    ...                           # first forgets everything: remove_versioning(), mappers,
    -->                           # the namespace, then runs this code

    <!-- doc: fresh -->           # the same without code

    <!-- doc: skip (what it needs that CI has not) -->

Blocks using ``await`` at top level run on one event loop kept for the whole file, so an
``AsyncSession`` made in one block is usable in the next. Blocks of other languages
(``sh``, ``toml``, ``text`` ...) are not run.
"""

from __future__ import annotations

import ast
import asyncio
import dataclasses
import inspect
import re
import sys
import textwrap
import traceback
from pathlib import Path
from typing import Any, Optional

#: The opening fence of a Python block, possibly indented (blocks inside list items).
_FENCE = re.compile(r"^(?P<indent>[ \t]*)```(?P<info>[^\n`]*)$")
PYTHON = {"python", "py", "python3"}


@dataclasses.dataclass
class Block:
    """One fenced Python block and what its comment declares."""

    path: str
    line: int
    code: str
    setup: str = ""
    fresh: bool = False
    skip: Optional[str] = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _directive(comment: str, block: Block) -> None:
    body = comment.strip()
    if body.startswith("doc-setup"):
        header, _, code = body.partition("\n")
        block.fresh = "fresh" in header.split()
        block.setup = textwrap.dedent(code)
    elif body.startswith("doc:"):
        words = body[len("doc:") :].strip()
        if words.startswith("skip"):
            reason = words[len("skip") :].strip(" :()")
            if not reason:
                raise ValueError(f"{block.where}: '<!-- doc: skip -->' needs a reason")
            block.skip = reason
        elif words == "fresh":
            block.fresh = True
        else:
            raise ValueError(f"{block.where}: unknown directive <!--{comment}-->")


def parse(text: str, path: str = "<doc>") -> list[Block]:
    """Return the Python blocks of Markdown ``text`` with their directives."""
    lines = text.splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, info = match["indent"], match["info"].strip()
        start = index
        index += 1
        body = []
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index])
            index += 1
        index += 1  # the closing fence
        if info.split()[0:1] and info.split()[0] in PYTHON:
            code = "\n".join(
                line[len(indent) :] if line.startswith(indent) else line for line in body
            )
            block = Block(path, start + 1, textwrap.dedent(code))
            before = "\n".join(lines[:start]).rstrip()
            if before.endswith("-->") and "<!--" in before:
                _directive(before[before.rfind("<!--") + 4 : -3], block)
            blocks.append(block)
    return blocks


def _forget_everything() -> None:
    """Undo what earlier blocks configured: versioning listeners and every mapper."""
    from sqlalchemy.orm import clear_mappers

    from sqlalchemy_history import remove_versioning

    remove_versioning()
    clear_mappers()


class Runner:
    """Runs the blocks of one file in one namespace, with one event loop for ``await``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.namespace: dict[str, Any] = {}
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self._reset()

    def _reset(self) -> None:
        self.namespace.clear()
        self.namespace.update({"__name__": "__doc__", "__file__": self.path})

    def run_code(self, code: str, where: str) -> None:
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        compiled = compile(code, where, "exec", flags=flags, dont_inherit=True)
        result = eval(compiled, self.namespace)
        if inspect.iscoroutine(result):
            if self.loop is None:
                self.loop = asyncio.new_event_loop()
            self.loop.run_until_complete(result)

    def run(self, block: Block) -> None:
        if block.skip is not None:
            return
        if block.fresh:
            _forget_everything()
            self._reset()
        if block.setup:
            self.run_code(block.setup, f"{block.where} (doc-setup)")
        # Line numbers in tracebacks point into the Markdown file.
        self.run_code("\n" * block.line + block.code, block.path)

    def close(self) -> None:
        if self.loop is not None:
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()


def run_file(path: str) -> int:
    """Run ``path``'s blocks; print a report; return how many blocks failed (0 or 1)."""
    blocks = parse(Path(path).read_text(encoding="utf-8"), path)
    runner = Runner(path)
    ran = skipped = 0
    try:
        for block in blocks:
            if block.skip is not None:
                skipped += 1
                continue
            try:
                runner.run(block)
            except BaseException:
                print(f"FAILED {block.where}: the block starting on this line", file=sys.stderr)
                traceback.print_exc()
                return 1
            ran += 1
    finally:
        runner.close()
    print(f"{path}: {ran} blocks ran, {skipped} marked not runnable")
    return 0


def main(paths: list[str]) -> int:
    failed = 0
    for number, path in enumerate(paths):
        if number:
            _forget_everything()
        failed += run_file(path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
