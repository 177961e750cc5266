"""Crash a sync at every filesystem call: the store reopens with the old or the new state."""

from __future__ import annotations

import os
import shutil

import pytest

from persistkit.core.testing import crash_at_every_call, record_calls
from persistkit.tracker import POD, Tracker


def build(folder, items, *, file_size, gzipped=False):
    shutil.rmtree(folder, ignore_errors=True)
    pod = POD(folder, file_size=file_size, gzipped=gzipped, clone=False)
    pod.update(items)
    pod.sync()
    pod.close()


def state_of(folder, *, file_size, gzipped=False):
    pod = POD(folder, file_size=file_size, gzipped=gzipped, clone=False)
    items = list(pod.items())
    pod.close()
    return items


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.startswith(".")]


OLD = [(f"k{i}", {"n": i}) for i in range(12)]


def change(pod):
    pod["k1"] = {"n": "one"}  # shard 0
    pod["k7"]["n"] = "seven"  # shard 2, in place
    del pod["k10"]  # shard 3 rewritten
    del pod["k11"]
    pod["k9"] = "nine"  # shard 3
    del pod["k4"]  # removed from shard 1 and added again at the end (shard 3)
    pod["k4"] = "four"
    pod["new"] = [1, 2]  # appended to shard 3, after k4


def expected_new():
    new = dict(OLD)
    new["k1"] = {"n": "one"}
    new["k7"] = {"n": "seven"}
    del new["k10"], new["k11"]
    new["k9"] = "nine"
    del new["k4"]
    new["k4"] = "four"
    new["new"] = [1, 2]
    return list(new.items())


@pytest.mark.parametrize("gzipped", [False, True])
def test_crash_at_every_call_of_a_sync(tmp_path, gzipped):
    # A sync of a few keys is one journal record: all of its changes or none.
    folder = tmp_path / "store"
    new = expected_new()
    outcomes = []

    def operation():
        pod = POD(folder, file_size=3, gzipped=gzipped, clone=False)
        change(pod)
        pod.sync()

    def check(point):
        state = state_of(folder, file_size=3, gzipped=gzipped)
        assert state in (OLD, new), point
        outcomes.append(state == new)
        assert leftovers(folder) == []
        assert state_of(folder, file_size=3, gzipped=gzipped) == state

    crash_at_every_call(
        operation,
        check=check,
        setup=lambda: build(folder, OLD, file_size=3, gzipped=gzipped),
    )
    # The record is the commit point: every crash before it gives the old state, after it
    # the new one, and there is exactly one switch.
    assert outcomes == sorted(outcomes)
    assert outcomes[0] is False and outcomes[-1] is True


@pytest.mark.parametrize("synced_first", [False, True], ids=["pending", "journaled"])
@pytest.mark.parametrize("gzipped", [False, True])
def test_crash_at_every_call_of_a_multi_file_checkpoint(tmp_path, gzipped, synced_first):
    # close() writes the shards: pending files, the manifest (the commit point), renames,
    # then the journal is recycled. Changes a sync had journaled are never lost on the way.
    folder = tmp_path / "store"
    new = expected_new()
    outcomes = []

    def setup():
        build(folder, OLD, file_size=3, gzipped=gzipped)
        if synced_first:
            # A process that syncs and is killed: its changes are only in the journal.
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child
                pod = POD(folder, file_size=3, gzipped=gzipped, clone=False)
                change(pod)
                pod.sync()
                os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0

    def operation():
        pod = POD(folder, file_size=3, gzipped=gzipped, clone=False)
        if not synced_first:
            change(pod)
        pod.close()

    def check(point):
        state = state_of(folder, file_size=3, gzipped=gzipped)
        if synced_first:
            assert state == new, point
        assert state in (OLD, new), point
        outcomes.append(state == new)
        assert leftovers(folder) == []
        assert state_of(folder, file_size=3, gzipped=gzipped) == state

    runs = crash_at_every_call(operation, check=check, setup=setup)
    assert runs > 15
    assert outcomes == sorted(outcomes)
    assert outcomes[-1] is True


def test_crash_at_every_call_of_a_one_shard_sync(tmp_path):
    # A sync of two keys: one journal record and one flush, nothing else.
    folder = tmp_path / "store"
    new = [(k, {"n": "changed"} if k in ("k3", "k5") else v) for k, v in OLD]
    outcomes = []

    def operation():
        pod = POD(folder, file_size=3, clone=False)
        pod["k3"]["n"] = "changed"
        pod["k5"] = {"n": "changed"}
        pod.sync()

    def check(point):
        state = state_of(folder, file_size=3)
        assert state in (OLD, new), point
        outcomes.append(state == new)

    runs = crash_at_every_call(
        operation, check=check, setup=lambda: build(folder, OLD, file_size=3)
    )
    assert runs < 15
    assert outcomes == sorted(outcomes) and outcomes[-1]


@pytest.mark.parametrize("tastypy_store", [False, True])
def test_crash_at_every_call_of_a_sync_that_adds_a_shard(tmp_path, tastypy_store):
    # The store grows by one file: the file goes first, then the manifest that counts it.
    folder = tmp_path / "store"
    old = OLD[:6]
    new = [*old, ("x", 1), ("y", 2)]
    outcomes = []

    def setup():
        build(folder, old, file_size=3)
        if tastypy_store:  # a store tastypy wrote has no manifest
            (folder / "persistkit-tracker.json").unlink()

    def operation():
        pod = POD(folder, file_size=3, clone=False)
        pod["x"] = 1
        pod["y"] = 2
        pod.sync()

    def check(point):
        state = state_of(folder, file_size=3)
        assert state in (old, new), point
        outcomes.append(state == new)
        assert leftovers(folder) == []

    crash_at_every_call(operation, check=check, setup=setup)
    assert outcomes == sorted(outcomes) and outcomes[-1]


@pytest.mark.parametrize("key", ["k3", "brand-new"])
def test_a_reader_in_another_process_always_sees_a_whole_state(tmp_path, key):
    from persistkit.tracker import SharedPOD

    folder = tmp_path / "store"
    build(folder, OLD, file_size=3)
    reader = SharedPOD(folder, file_size=3)
    old_value = reader.get(key)

    def operation():
        writer = SharedPOD(folder, file_size=3)
        writer[key] = "new"

    def check(point):
        value = reader.get(key)
        assert value in (old_value, "new"), point
        assert list(reader) == list(POD(folder, file_size=3, clone=False))
        assert value == POD(folder, file_size=3, clone=False).get(key)

    crash_at_every_call(operation, check=check)


def test_crash_during_recovery_after_a_crashed_sync(tmp_path):
    folder = tmp_path / "store"
    scratch = tmp_path / "scratch"
    new = expected_new()
    recoveries = []

    def operation():
        pod = POD(folder, file_size=3, clone=False)
        change(pod)
        pod.close()

    def check(point):
        snapshot = tmp_path / "snapshot"
        shutil.rmtree(snapshot, ignore_errors=True)
        shutil.copytree(folder, snapshot)
        probe = tmp_path / "probe"
        shutil.rmtree(probe, ignore_errors=True)
        shutil.copytree(snapshot, probe)
        expected = state_of(probe, file_size=3)

        def restore():
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(snapshot, scratch)

        def recheck(inner):
            assert state_of(scratch, file_size=3) == expected, (point, inner)

        recoveries.append(
            crash_at_every_call(
                lambda: POD(scratch, file_size=3, clone=False), check=recheck, setup=restore
            )
        )
        assert expected in (OLD, new)

    crash_at_every_call(operation, check=check, setup=lambda: build(folder, OLD, file_size=3))
    # Some crash points leave work for the reopen to finish (renames past the commit point).
    assert max(recoveries) > 1


def test_sync_writes_only_through_core_and_cost_follows_changed_keys(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    build(small, [(i, i) for i in range(100)], file_size=10)
    build(large, [(i, i) for i in range(5000)], file_size=10)

    rounds = iter(range(100))

    def calls_for(folder, finish):
        pod = POD(folder, file_size=10, clone=False)
        round_ = f"round {next(rounds)}"
        pod[1] = round_
        pod.sync()  # the journal is created by the first sync of a few keys
        for key in (3, 45, 77):
            pod[key] = round_
        return record_calls(lambda: finish(pod))

    for finish in (POD.sync, POD.close):
        small_calls = calls_for(small, finish)
        large_calls = calls_for(large, finish)
        assert [c.name for c in small_calls] == [c.name for c in large_calls], finish
    # A sync appends one record and flushes it: no file is created or renamed.
    sync_calls = calls_for(large, POD.sync)
    assert {c.name for c in sync_calls} <= {"write", "fdatasync"}, sync_calls
    assert [c.name for c in sync_calls].count("fdatasync") == 1
    # The checkpoint rewrites the shards that changed, and the manifest.
    renamed = [os.path.basename(c.path) for c in calls_for(large, POD.close) if c.name == "rename"]
    assert {"0.json", "4.json", "7.json", "persistkit-tracker.json"} <= set(renamed)
    assert len([name for name in renamed if name.endswith(".json")]) == 4


def test_tracker_sync_crash_keeps_counts_consistent(tmp_path):
    folder = tmp_path / "t"

    def setup():
        shutil.rmtree(folder, ignore_errors=True)
        tracker = Tracker(folder, file_size=2, clone=False)
        tracker.add_many(range(6))
        tracker.close()

    def operation():
        tracker = Tracker(folder, file_size=2, clone=False)
        for key in (0, 3, 5):
            tracker.mark_done(key)
        tracker.sync()

    def check(point):
        tracker = Tracker(folder, file_size=2, clone=False)
        assert tracker.num_done() in (0, 3), point
        assert sorted(k for k in tracker if tracker.done(k)) in ([], [0, 3, 5])
        tracker.close()

    crash_at_every_call(operation, check=check, setup=setup)


def test_crash_at_every_call_of_a_one_shard_checkpoint_of_journaled_syncs(tmp_path):
    # The synced keys live in the journal and go into one shard: a crash at any point of
    # the checkpoint (and the recovery after it) keeps every one of them.
    folder = tmp_path / "store"
    old = [(f"k{i}", i) for i in range(3)]

    def setup():
        build(folder, old, file_size=10)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child: syncs, then dies without a checkpoint
            pod = POD(folder, file_size=10, clone=False)
            pod["k1"] = "synced"
            pod["k9"] = "synced"
            pod.sync()
            os._exit(0)
        assert os.waitpid(pid, 0)[1] == 0

    def check(point):
        assert state_of(folder, file_size=10) == [
            ("k0", 0),
            ("k1", "synced"),
            ("k2", 2),
            ("k9", "synced"),
        ], point

    crash_at_every_call(
        lambda: POD(folder, file_size=10, clone=False).close(), check=check, setup=setup
    )
