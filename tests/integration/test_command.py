"""The ``persistkit`` command with every package installed: whatever subcommand is given a
path it cannot use (missing, the wrong kind of thing, a corrupt file), it ends with one line
naming the path and exit status 1, never a traceback, and writes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit import store
from persistkit.core.testing import snapshot_tree
from persistkit.spool import Spool
from persistkit.tracker import Tracker

Command = Callable[..., subprocess.CompletedProcess[str]]

FOLDER_COMMANDS = ["sweep", "tracker", "spool", "iodict"]  # each inspects a folder
FILE_COMMANDS = ["store"]  # each inspects a file


def _one_line_failure(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("persistkit: ")
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in result.stderr


@pytest.fixture
def things(tmp_path: Path) -> Path:
    """One of each kind of thing a subcommand may be pointed at by mistake."""
    (tmp_path / "a-file").write_text("hello\n")
    (tmp_path / "a-folder").mkdir()
    with Spool(tmp_path / "a-spool") as spool:
        spool.deliver(b"job")
    tracker = Tracker(tmp_path / "a-tracker", clone=False)
    tracker.add_many(["a", "b"])
    tracker.close()
    with store.open(tmp_path / "a-store.json", default={}) as value:
        value.value["runs"] = 1
    return tmp_path


@pytest.mark.parametrize("command", FOLDER_COMMANDS + FILE_COMMANDS + ["capabilities"])
@pytest.mark.parametrize("where", ["missing", "missing/deeper", "a-file/deeper"])
def test_a_missing_path(things: Path, persistkit_command: Command, command: str, where: str):
    before = snapshot_tree(things)
    path = str(things / where)
    _one_line_failure(persistkit_command(command, path), path)
    assert snapshot_tree(things) == before


@pytest.mark.parametrize(
    ("command", "where"),
    [
        *((command, "a-file") for command in FOLDER_COMMANDS),
        *((command, "a-folder") for command in FILE_COMMANDS),
        ("tracker", "a-folder"),
        ("tracker", "a-spool"),
        ("spool", "a-folder"),
        ("spool", "a-tracker"),
        ("iodict", "a-folder"),
        ("iodict", "a-tracker"),
    ],
)
def test_the_wrong_kind_of_thing(things: Path, persistkit_command: Command, command, where):
    before = snapshot_tree(things)
    path = str(things / where)
    _one_line_failure(persistkit_command(command, path), path)
    assert snapshot_tree(things) == before


def test_a_corrupt_store_file_is_named(things: Path, persistkit_command: Command) -> None:
    broken = things / "a-store.json"
    broken.write_text('{"runs": ')
    before = snapshot_tree(things)
    _one_line_failure(persistkit_command("store", str(broken)), str(broken), "cannot decode")
    assert snapshot_tree(things) == before


def test_a_damaged_tracker_names_the_damaged_file(things: Path, persistkit_command) -> None:
    shard = things / "a-tracker" / "0.json"
    shard.write_text(shard.read_text()[:-5])  # truncated
    before = snapshot_tree(things)
    _one_line_failure(persistkit_command("tracker", str(things / "a-tracker")), str(shard))
    assert snapshot_tree(things) == before
