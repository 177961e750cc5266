"""Type checkers see a store typed by its default (issue 12): checked by running mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROGRAM = """
from typing import Any, assert_type

from persistkit import store

counter = store.open("c.json", default=0)
assert_type(counter, store.AtomicStore[int])
assert_type(counter.value, int)
assert_type(store.open("n.json", default=["a"]).value, list[str])
assert_type(store.open("a.json").value, Any)
with store.open("d.json", default={"k": 1.0}) as state:
    assert_type(state.value, dict[str, float])
with counter.transaction() as locked:
    assert_type(locked.value, int)
counter.value = "not an int"
"""


def test_open_is_typed_by_its_default(tmp_path: Path) -> None:
    (tmp_path / "program.py").write_text(PROGRAM)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "program.py"],
        cwd=tmp_path,  # no project configuration: what a user's own project sees
        capture_output=True,
        text=True,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout
    assert "program.py:15: error: Incompatible types in assignment" in errors[0]
