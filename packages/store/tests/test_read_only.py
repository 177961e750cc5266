"""Reading a store never writes: on a real read-only mount, and through the command.

Issue 9, item 8. Each test compares the whole tree before and after (`snapshot_tree`: names,
kinds, modes, sizes, mtimes, contents, xattrs).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistkit import store
from persistkit.core.pytest_plugin import MountTmpfs
from persistkit.core.testing import snapshot_tree


@pytest.fixture
def read_only_store(mounted_tmpfs: MountTmpfs) -> Iterator[Path]:
    """A store file, its transaction lock file and a pickled store, on a tmpfs remounted ro."""
    mount = mounted_tmpfs("1m")
    state = store.open(mount / "state.json", default={})
    with state.transaction() as locked:
        locked.value["runs"] = [1, 2, 3]
    with store.open(mount / "state.pickle", default=None, format="pickle") as pickled:
        pickled.value = {"tuple": (1, 2)}
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)


def test_a_store_on_read_only_media_opens_and_reloads(read_only_store: Path) -> None:
    before = snapshot_tree(read_only_store)
    state = store.open(read_only_store / "state.json", default={})
    assert state.value == {"runs": [1, 2, 3]}
    assert state.reload() == {"runs": [1, 2, 3]}
    pickled = store.open(read_only_store / "state.pickle", format="pickle")
    assert pickled.value == {"tuple": (1, 2)}
    missing = store.open(read_only_store / "never-written.json", default=[])
    assert missing.value == []
    assert snapshot_tree(read_only_store) == before


def test_the_command_on_read_only_media(read_only_store: Path, persistkit_command) -> None:
    before = snapshot_tree(read_only_store)
    result = persistkit_command("store", str(read_only_store / "state.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"runs": [1, 2, 3]}
    assert snapshot_tree(read_only_store) == before


@pytest.mark.parametrize("where", ["missing.json", "missing/deeper.json", "a-folder"])
def test_the_command_on_a_missing_or_wrong_path(tmp_path, persistkit_command, where):
    (tmp_path / "a-folder").mkdir()
    before = snapshot_tree(tmp_path)
    result = persistkit_command("store", str(tmp_path / where))
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("persistkit: ")
    assert snapshot_tree(tmp_path) == before
