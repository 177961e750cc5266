"""Run the Python examples of a Markdown page, the way a reader would paste them.

``python tests/docs/markdown_examples.py PAGE.md RESULTS.json`` runs every fenced block whose
language is ``python``, ``py`` or ``pycon`` in the current folder (the caller makes it a fresh
temporary one), top to bottom in one namespace named ``__main__``, as a reader pasting the page
into one interpreter would. A block that starts with ``>>>`` is a doctest: its printed output
must match (``...`` matches anything, whitespace is normalised). Every block runs even when an
earlier one failed; the results (block line, ``ok``/``failed``/``skipped``, why) are written
to RESULTS.json.

Two HTML comments, invisible on GitHub and on the site, go on the line just before a block:

- ``<!-- docs-example: skip REASON -->``: a fragment not meant to run (it says so: why);
- ``<!-- docs-example: setup`` ... ``-->``: hidden code run just before the next block (to
  define the ``data`` a fragment writes, say), kept out of the reader's way.

A block with a string literal that is an absolute path (``"/var/spool/jobs"``) fails without
running: examples write into the current folder, never elsewhere on the machine.
"""

from __future__ import annotations

import ast
import doctest
import json
import re
import sys
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
LANGUAGES = {"python", "py", "pycon"}
SKIP = re.compile(r"^<!--\s*docs-example:\s*skip\b(?P<reason>.*?)-->\s*$")
SETUP = re.compile(r"^<!--\s*docs-example:\s*setup\s*$")


@dataclass
class Block:
    """One fenced example of a page."""

    line: int
    code: str
    skip: str | None = None
    setup: str = ""


@dataclass
class Result:
    """What happened to one block."""

    line: int
    outcome: str
    detail: str = ""


def blocks(text: str) -> list[Block]:
    """The Python blocks of a Markdown text, with their markers."""
    found: list[Block] = []
    lines = text.splitlines()
    pending_skip: str | None = None
    pending_setup = ""
    index = 0
    while index < len(lines):
        line = lines[index]
        skip = SKIP.match(line)
        if skip:
            pending_skip = skip["reason"].strip() or "marked skip"
            index += 1
            continue
        if SETUP.match(line):
            end = index + 1
            while end < len(lines) and lines[end].strip() != "-->":
                end += 1
            pending_setup = "\n".join(lines[index + 1 : end])
            index = end + 1
            continue
        fence = FENCE.match(line)
        if not fence:
            if line.strip():
                pending_skip, pending_setup = None, ""
            index += 1
            continue
        marker = fence["fence"]
        end = index + 1
        while end < len(lines) and not (
            lines[end].strip().startswith(marker[0] * len(marker))
            and not lines[end].strip().strip(marker[0])
        ):
            end += 1
        words = fence["info"].strip().split()
        if words and words[0].lower() in LANGUAGES:
            indent = len(fence["indent"])
            code = "\n".join(body[indent:] for body in lines[index + 1 : end])
            found.append(Block(index + 1, code + "\n", pending_skip, pending_setup))
        pending_skip, pending_setup = None, ""
        index = end + 1
    return found


def absolute_paths(code: str) -> list[str]:
    """String literals in ``code`` (a script or a doctest) that name an absolute path."""
    if code.lstrip().startswith(">>>"):
        code = "".join(example.source for example in doctest.DocTestParser().get_examples(code))
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and re.match(r"/[A-Za-z]", node.value)
    ]


def run_doctest(block: Block, namespace: dict[str, object], name: str) -> str:
    """Run a ``>>>`` block; return the mismatch report, or "" when it matched."""
    parser = doctest.DocTestParser()
    test = parser.get_doctest(block.code, namespace, name, name, block.line)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    report: list[str] = []
    runner = doctest.DocTestRunner(optionflags=flags, verbose=False)
    runner.run(test, out=report.append, clear_globs=False)
    return "".join(report)


def run_page(page: Path) -> list[Result]:
    """Run every block of ``page`` in the current folder, in one namespace."""
    namespace: dict[str, object] = {"__name__": "__main__"}
    results = []
    for block in blocks(page.read_text(encoding="utf-8")):
        name = f"{page.name}:{block.line}"
        if block.skip is not None:
            results.append(Result(block.line, "skipped", block.skip))
            continue
        outside = absolute_paths(block.code)
        if outside:
            detail = f"uses absolute paths {outside}: examples write into the current folder"
            results.append(Result(block.line, "failed", detail))
            continue
        try:
            if block.setup:
                exec(compile(block.setup, f"{name} (setup)", "exec"), namespace)
            if block.code.lstrip().startswith(">>>"):
                mismatch = run_doctest(block, namespace, name)
                if mismatch:
                    results.append(Result(block.line, "failed", mismatch))
                    continue
            else:
                exec(compile(block.code, name, "exec"), namespace)
        except BaseException as error:
            lines = traceback.format_exception(error)
            results.append(Result(block.line, "failed", "".join(lines[-6:]).rstrip()))
            continue
        results.append(Result(block.line, "ok"))
    return results


def main(argv: list[str]) -> int:
    """Run the page in ``argv[0]``; write its results as JSON to ``argv[1]``."""
    page, out = Path(argv[0]), Path(argv[1])
    results = run_page(page)
    out.write_text(json.dumps([asdict(result) for result in results]), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
