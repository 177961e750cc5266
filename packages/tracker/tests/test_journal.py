"""Syncs through the journal, checkpoints into the shards, and what a crash leaves of them."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys

import pytest

from persistkit.core.testing import leftovers, snapshot_tree
from persistkit.tracker import POD, SharedTracker, Tracker

JOURNAL = "persistkit-tracker.journal"


def shard_files(folder):
    return {name: (folder / name).read_bytes() for name in os.listdir(folder) if ".json" in name}


def killed_after(code: str, *args: str) -> None:
    """Run ``code`` in a real process and SIGKILL it once it prints a line."""
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "synced\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


SYNC_THEN_WAIT = """
import sys
from persistkit.tracker import Tracker
tracker = Tracker(sys.argv[1], file_size=2)
tracker.mark_done("b")
tracker.add("new")
del tracker["c"]
tracker.sync()
print("synced", flush=True)
sys.stdin.read()
"""


def test_a_sync_appends_to_the_journal_and_a_killed_process_loses_nothing(tmp_path):
    folder = tmp_path / "t"
    tracker = Tracker(folder, file_size=2, clone=False)
    tracker.add_many(["a", "b", "c", "d"])
    tracker.close()
    shards = shard_files(folder)
    killed_after(SYNC_THEN_WAIT, str(folder))
    # The shards are untouched (tastypy would see the state before the sync) ...
    assert shard_files(folder) == shards
    # ... and the journal holds the sync: reopening replays it.
    tracker = Tracker(folder, file_size=2, clone=False)
    assert list(tracker) == ["a", "b", "d", "new"]
    assert tracker.done("b") and not tracker.done("new")
    assert tracker.progress() == (4, 1, 0, 0)
    tracker.close()  # the checkpoint: the shards now hold everything
    assert shard_files(folder) != shards
    assert (
        folder / "1.json"
    ).read_text() == '"d"\t{"_tries": 0, "_done": false, "_aborted": false}\n'
    assert leftovers(folder) == []
    reopened = Tracker(folder, file_size=2, clone=False)
    assert list(reopened) == ["a", "b", "d", "new"] and reopened.progress().done == 1


def test_reopening_after_a_checkpoint_replays_only_what_follows_it(tmp_path):
    folder = tmp_path / "p"
    pod = POD(folder, file_size=2, clone=False)
    pod.update({"a": 1, "b": 2, "c": 3})
    pod.sync()
    del pod["a"]
    pod["a"] = "again"  # moves to the end
    pod["d"] = 4
    pod.sync()
    pod.close()
    assert list(POD(folder, file_size=2, clone=False).items()) == [
        ("b", 2),
        ("c", 3),
        ("a", "again"),
        ("d", 4),
    ]


def test_a_lost_journal_does_not_hide_later_syncs(tmp_path):
    # A store copied without its journal (or the journal deleted after a close): the next
    # journal starts again at position 0, which the manifest must not skip.
    folder = tmp_path / "p"
    pod = POD(folder, clone=False)
    for i in range(50):
        pod[f"k{i}"] = "x" * 100
        pod.sync()
    pod.close()
    for name in (JOURNAL, JOURNAL + "-shm"):
        (folder / name).unlink()
    code = """
import sys
from persistkit.tracker import POD
pod = POD(sys.argv[1])
pod["late"] = 1
pod.sync()
print("synced", flush=True)
sys.stdin.read()
"""
    killed_after(code, str(folder))
    pod = POD(folder, clone=False)
    assert pod["late"] == 1 and len(pod) == 51


def test_many_keys_in_one_sync_go_to_the_shards_directly(tmp_path):
    folder = tmp_path / "p"
    pod = POD(folder, clone=False)
    pod.hold()
    pod.update((i, i) for i in range(2500))
    pod.sync()
    assert sorted(name for name in os.listdir(folder) if name.endswith(".json")) == [
        "0.json",
        "1.json",
        "2.json",
        "persistkit-tracker.json",
    ]
    assert not (folder / JOURNAL).exists()
    pod["big"] = "v" * 300_000  # a record this large is written once, into its shard
    pod.sync()
    assert "v" * 300_000 in (folder / "2.json").read_text()


def test_the_journal_is_checkpointed_before_it_grows(tmp_path):
    folder = tmp_path / "p"
    pod = POD(folder, file_size=100, clone=False)
    pod.update((i, i) for i in range(300))
    pod.sync()
    size = os.path.getsize(folder / JOURNAL)
    for round_ in range(3000):
        pod[round_ % 300] = {"round": round_, "padding": "p" * 300}
        pod.sync()
    assert os.path.getsize(folder / JOURNAL) == size  # recycled, never grown
    pod.close()
    assert POD(folder, file_size=100, clone=False)[299]["round"] == 2999


def test_reading_a_store_with_a_journal_on_read_only_media_changes_nothing(
    tmp_path, persistkit_command
):
    folder = tmp_path / "t"
    tracker = Tracker(folder, file_size=2, clone=False)
    tracker.add_many(["a", "b", "c", "d"])
    tracker.close()
    killed_after(SYNC_THEN_WAIT, str(folder))
    before = snapshot_tree(folder)
    reader = Tracker(folder, file_size=2, read_only=True)
    assert list(reader) == ["a", "b", "d", "new"] and reader.num_done() == 1
    reader.close()
    result = persistkit_command("tracker", str(folder))
    assert result.returncode == 0, result.stderr
    assert "done       1" in result.stdout and "tasks      4" in result.stdout
    assert snapshot_tree(folder) == before


def test_sharing_a_change_appends_a_line_and_rewrites_no_shard(tmp_path):
    folder = tmp_path / "t"
    first = SharedTracker(folder, file_size=100)
    first.add_many_if_absent(range(1000))
    first.close()
    first = SharedTracker(folder, file_size=100)
    second = SharedTracker(folder, file_size=100)
    shards = {name: os.stat(folder / name).st_ino for name in os.listdir(folder)}
    for key in range(0, 1000, 7):
        assert first.should_try(key)
        first.mark_done(key)
    assert second.num_done() == len(range(0, 1000, 7))
    assert second.tries(7) == 1
    assert {name: os.stat(folder / name).st_ino for name in shards} == shards
    assert os.path.getsize(folder / JOURNAL) == 1 << 20  # preallocated, written in place
    first.close()
    second.close()
    assert Tracker(folder, file_size=100, clone=False).num_done() == len(range(0, 1000, 7))


def test_a_full_disk_during_an_append_and_during_a_checkpoint(mounted_tmpfs):
    # Real ENOSPC from a small tmpfs. The journal (1 MiB) does not fit at all at first: the
    # sync writes the shard instead; once the disk is full, syncs fail and keep their changes.
    mount = mounted_tmpfs("1200k")
    folder = mount / "p"
    pod = POD(folder, file_size=1, clone=False)
    pod["small"] = 1
    pod.sync()
    pod["big"] = "b" * 700_000
    with pytest.raises(OSError) as caught:
        pod.sync()
    assert caught.value.errno == errno.ENOSPC
    assert pod.dirty() == {"big"}
    assert leftovers(folder) == []
    assert dict(POD(folder, file_size=1, clone=False, read_only=True)) == {"small": 1}
    pod["big"] = "b" * 10
    pod.sync()
    pod.close()
    assert dict(POD(folder, file_size=1, clone=False)) == {"small": 1, "big": "b" * 10}


def test_no_room_for_the_journal_syncs_into_the_shards(mounted_tmpfs):
    # A real ENOSPC when the 1 MiB journal is created: the sync writes its shard instead,
    # durably, and nothing half-made is left.
    mount = mounted_tmpfs("512k")
    folder = mount / "p"
    pod = POD(folder, clone=False)
    pod["a"] = {"n": 1}
    pod.sync()
    assert not (folder / JOURNAL).exists()
    assert leftovers(folder) == []
    assert (folder / "0.json").read_text() == '"a"\t{"n": 1}\n'
    pod["b"] = 2
    pod.sync()
    pod.close()
    assert dict(POD(folder, clone=False)) == {"a": {"n": 1}, "b": 2}


def test_a_full_disk_when_the_journal_must_grow(mounted_tmpfs):
    # Real ENOSPC: the journal (1 MiB, created whole) takes syncs of 200 KB; the checkpoint
    # they call for at 768 KiB does not fit (it is tried again later), and the journal grows
    # into the last free bytes until a sync finds no room. Every sync that returned is kept;
    # the one that failed keeps its change pending; once there is room, everything goes on.
    mount = mounted_tmpfs("1300k")
    folder = mount / "p"
    pod = POD(folder, file_size=1, clone=False)
    pod["first"] = 1
    pod.sync()
    synced = {"first": 1}
    for i in range(10):
        pod[f"v{i}"] = str(i) * 200_000
        try:
            pod.sync()
        except OSError as error:
            errors = [error.errno]
            failed = f"v{i}"
            break
        synced[f"v{i}"] = str(i) * 200_000
    else:
        pytest.fail("the disk never filled up")
    assert errors == [errno.ENOSPC]
    assert len(synced) > 4  # syncs went on after the checkpoint that did not fit
    assert pod.dirty() == {failed}
    assert leftovers(folder) == []
    assert dict(POD(folder, file_size=1, clone=False, read_only=True)) == synced
    resized = subprocess.run(
        ["mount", "-o", "remount,size=8m", str(mount)], capture_output=True, check=False
    )
    assert resized.returncode == 0, resized.stderr
    pod.sync()
    pod.close()
    assert dict(POD(folder, file_size=1, clone=False)) == {**synced, failed: pod_value(failed)}


def pod_value(key):
    return key[1:] * 200_000
