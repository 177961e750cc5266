"""When the sync at exit fails: one line naming the store and what was not written, no traceback.

Each case is a real program on a real filesystem: a small tmpfs filled to the last byte (a
real ENOSPC), or a tmpfs unmounted under the running program (its folder gone). The program
says "ready" once its state is set up; the test then changes the world and lets it exit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.tracker import Tracker

FILL_THE_DISK = """
def fill_the_disk(folder):
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    f.write(b"x" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
"""


def run(script: str, folder: Path) -> subprocess.CompletedProcess[str]:
    code = "import errno, os, sys\n" + FILL_THE_DISK + textwrap.dedent(script)
    return subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def disk(mounted_tmpfs: Callable[..., Path]) -> Path:
    return mounted_tmpfs("2m")


def test_a_full_disk_at_exit_loses_nothing_synced_and_says_so_in_one_line(disk: Path) -> None:
    # The pending change still fits in the journal's preallocated space; only the checkpoint
    # into the shard files finds no room.
    result = run(
        """
        from persistkit.tracker import Tracker
        tracker = Tracker(os.path.join(sys.argv[1], "job"))
        tracker.add_many(["a", "b", "c"])
        tracker.mark_done("a")
        tracker.sync()
        fill_the_disk(sys.argv[1])
        tracker.mark_done("b")  # not synced: the exit hook syncs it
        """,
        disk,
    )
    store = disk / "job"
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"persistkit.tracker: could not checkpoint {store} at exit (No space left on device): "
        "nothing is lost; its syncs stay in its journal, and the next open writes them into "
        "the shard files\n"
    )
    (disk / "filler").unlink()
    with Tracker(store) as tracker:
        assert [tracker.done(key) for key in "abc"] == [True, True, False]


def test_a_full_disk_at_exit_loses_only_what_was_never_synced_and_says_so(disk: Path) -> None:
    # A thousand new tasks go to the shard files, never to the journal: with the disk full,
    # they cannot be written. Everything synced before them is safe.
    result = run(
        """
        from persistkit.tracker import Tracker
        tracker = Tracker(os.path.join(sys.argv[1], "job"), sync_at=5000)
        tracker.add_many(["a", "b"])
        tracker.mark_done("a")
        tracker.sync()
        fill_the_disk(sys.argv[1])
        tracker.add_many(range(1000))  # not synced
        """,
        disk,
    )
    store = disk / "job"
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        f"persistkit.tracker: could not sync {store} at exit (No space left on device): "
        "the changes to 1000 key(s) since its last sync are lost; every earlier sync is safe\n"
    )
    (disk / "filler").unlink()
    tracker = Tracker(store, clone=False)
    assert list(tracker) == ["a", "b"] and tracker.done("a")
    tracker.close()


@pytest.mark.parametrize(
    ("kind", "pending"),
    [("Tracker", False), ("Tracker", True), ("SharedTracker", False)],
)
def test_a_store_whose_folder_is_gone_at_exit(disk: Path, kind: str, pending: bool) -> None:
    # The folder disappears under the running program (its filesystem unmounted). A store
    # with nothing pending has nothing to write and says nothing (a shared store commits
    # every change when its call returns); one with pending changes names what is lost.
    script = f"""
        from persistkit.tracker import {kind}
        tracker = {kind}(os.path.join(sys.argv[1], "job"))
        tracker.add_many(["a", "b"])
        tracker.sync()
        if {pending}:
            tracker.mark_done("a")
        print("ready", flush=True)
        sys.stdin.readline()
        """
    code = "import os, sys\n" + textwrap.dedent(script)
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(disk)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    subprocess.run(["umount", "-l", str(disk)], check=True)
    _out, err = proc.communicate("exit\n", timeout=120)
    assert proc.returncode == 0, err
    if pending:
        assert err == (
            f"persistkit.tracker: could not sync {disk / 'job'} at exit: its folder is "
            "gone; the changes to 1 key(s) since its last sync are lost\n"
        )
    else:
        assert err == ""


def test_a_failed_flush_at_exit_is_not_reported_as_nothing_lost(tmp_path: Path) -> None:
    # No real disk can be made to fail one fdatasync on demand here, so the EIO is injected
    # at core's filesystem seam: the record is written, its flush fails. The line must not
    # say "nothing is lost": the record may not survive a power cut.
    result = run(
        """
        from persistkit.core.testing import inject_error
        from persistkit.tracker import Tracker
        tracker = Tracker(os.path.join(sys.argv[1], "job"))
        tracker.add_many(["a", "b"])
        tracker.sync()
        tracker.mark_done("a")  # not synced: the exit hook syncs it, and its flush fails
        fault = inject_error(errno.EIO, call="fdatasync", path_contains="journal")
        fault.__enter__()  # left open (and referenced) so the exit hook runs inside it
        """,
        tmp_path,
    )
    store = tmp_path / "job"
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith(f"persistkit.tracker: could not sync {store} at exit (")
    assert result.stderr.endswith(
        "the changes to 1 key(s) since its last sync were written but may not survive a "
        "power cut; every earlier sync is safe\n"
    )
    assert result.stderr.count("\n") == 1
