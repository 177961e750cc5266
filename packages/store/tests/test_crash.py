"""A process that dies at any moment of a commit leaves the old value or the new, never a mix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from persistkit import store
from persistkit.core import write_text
from persistkit.core.testing import CrashPoint, crash_at_every_call

OLD = {"version": 1, "rows": ["old"] * 10}
SMALL_NEW = {"version": 2, "rows": ["new"]}
LARGE_NEW = {"version": 2, "rows": [f"new {i}" for i in range(60_000)]}  # > 1 MiB: slices


@pytest.mark.parametrize("new", [SMALL_NEW, LARGE_NEW], ids=["small", "large"])
@pytest.mark.parametrize("format", [None, "pickle"])
@pytest.mark.parametrize("existing", [True, False], ids=["replace", "create"])
def test_crash_at_every_filesystem_call_of_commit(
    tmp_path: Path, format: Any, existing: bool, new: Any
) -> None:
    path = tmp_path / "state"
    seen: list[Any] = []

    def setup() -> None:
        for name in os.listdir(tmp_path):
            os.unlink(tmp_path / name)  # test scaffolding, not a store write
        if existing:
            store.open(path, default=OLD, format=format).commit()

    def commit() -> None:
        state = store.open(path, format=format)
        state.value = new
        state.commit()

    def check(point: CrashPoint) -> None:
        # What a restarted program finds: it opens the store without an error.
        value = store.open(path, default="missing", format=format).value
        expected = (OLD if existing else "missing", new)
        assert value in expected, f"torn state after crashing at {point}"
        if point.completed:
            assert value == new
        seen.append(value)

    runs = crash_at_every_call(commit, check=check, setup=setup)
    assert runs >= 4  # create, fsync, rename, directory fsync at least
    assert seen[0] == (OLD if existing else "missing")
    assert seen[-1] == new


def test_a_process_killed_inside_a_with_block_leaves_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_text(path, json.dumps(OLD))
    script = (
        "import sys\n"
        "from persistkit import store\n"
        "with store.open(sys.argv[1]) as state:\n"
        "    state.value = {'version': 'half-done'}\n"
        "    print('inside', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "inside\n"
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    assert store.open(path).value == OLD
