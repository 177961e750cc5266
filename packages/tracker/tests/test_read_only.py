"""Reading never writes: read-only media open for reading, and inspecting changes nothing.

The read-only media here are real: a tmpfs remounted with ``mount -o remount,ro`` (EROFS on
every write), as a snapshot or a read-only backup mount behaves.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from persistkit.core.testing import crash_at, facility_unavailable, snapshot_tree
from persistkit.tracker import (
    POD,
    ReadOnlyStoreError,
    SharedPOD,
    SharedTracker,
    Tracker,
)


def remount(mount, mode):
    result = subprocess.run(
        ["mount", "-o", f"remount,{mode}", str(mount)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        facility_unavailable(f"cannot remount a tmpfs {mode}: {result.stderr.strip()}")


def build_tracker(folder):
    tracker = Tracker(folder, file_size=2, clone=False)
    tracker.add_many(range(5))
    tracker.mark_done(0)
    tracker.abort(1)
    tracker.close()


@pytest.mark.parametrize("lock_file", [True, False], ids=["lock-file", "no-lock-file"])
def test_a_tracker_on_a_read_only_mount_opens_for_reading(mounted_tmpfs, lock_file):
    mount = mounted_tmpfs("1m")
    folder = mount / "t"
    build_tracker(folder)
    if not lock_file:  # e.g. a store copied without it
        (folder / "persistkit-tracker.lock").unlink()
    remount(mount, "ro")
    try:
        before = snapshot_tree(folder)
        tracker = Tracker(folder)
        assert tracker.read_only
        assert tracker.progress() == (5, 1, 0, 1)
        assert list(tracker.todo_keys()) == [2, 3, 4]
        with pytest.raises(ReadOnlyStoreError) as caught:
            tracker.mark_done(2)
        assert isinstance(caught.value, PermissionError)
        assert caught.value.filename == str(folder)
        tracker.close()
        pod = POD(folder, file_size=2)
        assert pod[0]["_done"] is True
        pod.close()
        shared = SharedTracker(folder, file_size=2)
        assert shared.num_done() == 1
        assert shared.done(0)
        with pytest.raises(ReadOnlyStoreError):
            shared.add("new")
        shared.close()
        assert snapshot_tree(folder) == before
    finally:
        remount(mount, "rw")


@pytest.mark.parametrize("media", ["read-only mount", "read_only=True"])
def test_reading_every_value_of_a_read_only_tracker_works_and_writes_nothing(mounted_tmpfs, media):
    # Reading a task's dict marks it for the next sync (the caller may change it in place),
    # and every ``sync_at`` marked keys a sync runs: with nothing changed it must not refuse.
    # On writable media the snapshot also proves that nothing was written.
    mount = mounted_tmpfs("4m")
    folder = mount / "t"
    tracker = Tracker(folder, clone=False)
    tracker.add_many(range(2500))
    tracker.mark_done(7)
    tracker.close()
    if media == "read-only mount":
        remount(mount, "ro")
    try:
        before = snapshot_tree(folder)
        tracker = Tracker(folder, clone=False, read_only=media == "read_only=True")
        assert tracker.read_only
        assert [tracker[key]["_done"] for key in range(2500)].count(True) == 1
        assert sum(1 for _ in tracker.iteritems()) == 2500
        tracker.sync()
        tracker[3]["note"] = "changed in place"
        with pytest.raises(ReadOnlyStoreError):
            tracker.sync()
        del tracker[3]["note"]
        tracker.close()
        assert snapshot_tree(folder) == before
    finally:
        remount(mount, "rw")


def test_a_sync_interrupted_after_its_commit_point_reads_as_committed_on_read_only_media(
    mounted_tmpfs,
):
    # Opening a store finishes such a sync by renaming files; read-only media cannot, so the
    # pending files the manifest names are read in place of their shards.
    mount = mounted_tmpfs("1m")
    folder = mount / "p"
    old = {f"k{i}": i for i in range(6)}
    new = {**old, "k0": "new", "k3": "new", "k5": "new"}

    def operation():
        pod = POD(folder, file_size=2, clone=False)
        for key in ("k0", "k3", "k5"):
            pod[key] = "new"
        pod.sync()

    def setup():
        shutil.rmtree(folder, ignore_errors=True)
        POD(folder, file_size=2, clone=False, init=old).close()

    interrupted = None
    for k in range(1, 60):
        setup()
        point = crash_at(k, operation)
        if point.completed:
            break
        pending = [name for name in os.listdir(folder) if name.startswith(".pk-pending.")]
        manifest = (folder / "persistkit-tracker.json").read_text()
        if len(pending) == 3 and '"generation": 2,' in manifest:
            interrupted = k
            break
    assert interrupted is not None, "no crash point between the commit point and the renames"
    remount(mount, "ro")
    try:
        before = snapshot_tree(folder)
        assert dict(POD(folder, file_size=2, clone=False)) == new
        assert snapshot_tree(folder) == before
    finally:
        remount(mount, "rw")
    assert dict(POD(folder, file_size=2, clone=False)) == new  # writable: rolled forward
    assert not [name for name in os.listdir(folder) if name.startswith(".")]


def test_read_only_opening_of_a_writable_store_changes_nothing(tmp_path):
    folder = tmp_path / "t"
    build_tracker(folder)
    (folder / "persistkit-tracker.lock").unlink()
    before = snapshot_tree(folder)
    tracker = Tracker(folder, read_only=True)
    assert tracker.progress().done == 1
    with pytest.raises(ReadOnlyStoreError):
        tracker[9] = {}
    with pytest.raises(ReadOnlyStoreError):
        del tracker[0]
    with pytest.raises(ReadOnlyStoreError):
        tracker.clear()
    tracker[2]["note"] = "changed in place"  # noticed only when syncing
    with pytest.raises(ReadOnlyStoreError):
        tracker.sync()
    shared = SharedPOD(folder, read_only=True)
    assert len(shared) == 5
    with pytest.raises(ReadOnlyStoreError):
        shared.set[3]["x"] = 1
    assert snapshot_tree(folder) == before
    with pytest.raises(FileNotFoundError):
        Tracker(tmp_path / "missing", read_only=True)
    assert not (tmp_path / "missing").exists()


def test_the_inspection_command_changes_nothing(tmp_path, persistkit_command):
    folder = tmp_path / "t"
    build_tracker(folder)
    # A crashed writer's leftovers and a missing lock file: inspecting must not tidy them up.
    (folder / "persistkit-tracker.lock").unlink()
    (folder / ".pk-pending.99.0").write_text("left by a crashed sync\n")
    before = snapshot_tree(folder)
    result = persistkit_command("tracker", str(folder))
    assert result.returncode == 0, result.stderr
    assert "tasks      5" in result.stdout
    assert "done       1" in result.stdout
    assert snapshot_tree(folder) == before


def test_the_inspection_command_reads_a_gzipped_tracker(tmp_path, persistkit_command):
    folder = tmp_path / "t"
    tracker = Tracker(folder, gzipped=True, clone=False)
    tracker.add_many(["a", "b"])
    tracker.mark_done("a")
    tracker.close()
    result = persistkit_command("tracker", str(folder))
    assert result.returncode == 0, result.stderr
    assert "50.0 %" in result.stdout


@pytest.mark.parametrize("content", [[], ["notes.txt"], ["data"]], ids=["empty", "file", "dir"])
def test_the_inspection_command_on_a_folder_without_a_tracker_fails_and_creates_nothing(
    tmp_path, persistkit_command, content
):
    folder = tmp_path / "nothing"
    folder.mkdir()
    for name in content:
        if name == "data":
            (folder / name).mkdir()
        else:
            (folder / name).write_text("hello\n")
    before = snapshot_tree(folder)
    result = persistkit_command("tracker", str(folder))
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no tracker here" in result.stderr
    assert snapshot_tree(folder) == before
