"""SharedPOD and SharedTracker across processes: every start method, and unrelated programs."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import subprocess
import sys
import textwrap

import pytest

from persistkit.core import FileLock
from persistkit.core.errors import LockTimeoutError
from persistkit.tracker import POD, Progress, SharedPOD, SharedTracker, Tracker
from persistkit.tracker.errors import ClosedStoreError

sys.path.insert(0, os.path.dirname(__file__))
import tracker_mp_workers as workers

START_METHODS = ["fork", "spawn", "forkserver"]


@pytest.mark.parametrize("method", START_METHODS)
def test_four_processes_incrementing_under_locked_give_exact_totals(tmp_path, method):
    context = multiprocessing.get_context(method)
    pod = SharedPOD(tmp_path / "counts.pod", init={"count": 0, "log": []})
    rounds = 25
    procs = [
        context.Process(target=workers.increment, args=(pod, rounds, f"w{i}")) for i in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
        assert proc.exitcode == 0
    assert pod["count"] == 4 * rounds
    assert sorted(pod["log"]) == sorted(f"w{i}" for i in range(4) for _ in range(rounds))
    pod.close()
    assert POD(tmp_path / "counts.pod", clone=False)["count"] == 4 * rounds


def test_independent_programs_cooperate_without_a_server(tmp_path):
    path = tmp_path / "shared.pod"
    SharedPOD(path, init={"count": 0, "log": []}).close()
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import tracker_mp_workers
        tracker_mp_workers.increment_by_path({str(path)!r}, 20, sys.argv[1])
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, f"p{i}"]) for i in range(4)]
    assert [proc.wait() for proc in procs] == [0, 0, 0, 0]
    pod = SharedPOD(path)
    assert pod["count"] == 80
    assert len(pod["log"]) == 80


def test_changes_are_visible_to_other_processes_at_once(tmp_path):
    path = tmp_path / "p"
    pod = SharedPOD(path)
    other = SharedPOD(path)  # another cache on the same folder, as another process has
    pod["a"] = {"n": 1}
    assert other["a"] == {"n": 1}
    other.set["a"]["n"] += 1
    assert pod["a"] == {"n": 2}
    assert pod.pop("a") == {"n": 2}
    assert "a" not in other and len(other) == 0


def test_a_one_key_call_sees_other_processes_changes_to_its_key_first(tmp_path):
    # A call on one key leaves other processes' records of other keys to be applied after
    # it, out of the lock; a record of its own key, or one adding or deleting keys, never.
    path = tmp_path / "t"
    one, other = SharedTracker(path), SharedTracker(path)
    one.add_many(range(4))
    assert other.progress() == Progress(total=4, done=0, tried=0, aborted=0)
    other.increment_tries(0)
    other.mark_done(1)
    one.increment_tries(0)
    assert one.tries(0) == 2
    other.abort(2)
    one.mark_done(3)
    assert one.progress() == Progress(total=4, done=2, tried=1, aborted=1)
    other.add("new")
    one.mark_done("new")
    other.add("later")
    one.add("last")
    del other[3]
    with pytest.raises(KeyError):
        one.mark_done(3)
    expected = Progress(total=6, done=2, tried=1, aborted=1)
    assert other.progress() == one.progress() == expected
    assert list(one) == list(other) == [0, 1, 2, "new", "later", "last"]
    one.close()
    other.close()
    reopened = Tracker(path, read_only=True)
    assert reopened.progress() == expected and list(reopened) == [0, 1, 2, "new", "later", "last"]
    assert reopened.tries(0) == 2 and reopened.aborted(2) and reopened.done("new")


def test_locking_one_store_does_not_block_another(tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        from persistkit.tracker import SharedPOD
        pod = SharedPOD({str(tmp_path / "a")!r})
        with pod.locked():
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "locked\n"
    try:
        other = SharedPOD(tmp_path / "b")
        with other.locked():
            other["x"] = 1
        assert other["x"] == 1
        with pytest.raises(LockTimeoutError):
            FileLock.for_path(tmp_path / "a" / "persistkit-tracker.lock").acquire(timeout=0)
    finally:
        holder.communicate("done\n")
    assert holder.returncode == 0
    assert SharedPOD(tmp_path / "a") == {}


def test_writing_through_set_as_tastypy_documents(tmp_path):
    shared_pod = SharedPOD(tmp_path / "my.pod")
    shared_pod["foo"] = {"bar": 0, "baz": []}
    shared_pod.set["foo"] = {"bar": 4, "baz": []}  # Good!
    shared_pod["foo"]["bar"] += 1  # BAD! Won't sync.
    shared_pod.set["foo"]["bar"] += 1  # Good!
    shared_pod["foo"]["baz"].append("fizz")  # BAD! Won't sync.
    shared_pod.set["foo"]["baz"].append("fizz")  # Good!
    assert shared_pod["foo"] == {"bar": 5, "baz": ["fizz"]}
    assert "DeepProxy" in repr(shared_pod.set["foo"]["baz"][0])
    assert shared_pod["foo"]["baz"][0] == "fizz"
    shared_pod.set["some-list"] = [1]
    shared_pod.set["some-list"] += [2]
    shared_pod.set["some-list"][:] = [4]
    shared_pod.set["some-dict"] = {"some-key": 1, "other": 2}
    del shared_pod.set["some-dict"]["some-key"]
    assert shared_pod["some-list"] == [4]
    assert shared_pod["some-dict"] == {"other": 2}
    again = POD(tmp_path / "my.pod", clone=False)
    assert again["foo"] == {"bar": 5, "baz": ["fizz"]}


def test_shared_pod_api(tmp_path):
    pod = SharedPOD(tmp_path / "p", init=[("a", 1), ("b", [2])])
    assert list(pod) == ["a", "b"] and list(pod.keys()) == ["a", "b"]
    assert list(pod.items()) == [("a", 1), ("b", [2])]
    assert list(pod.values()) == [1, [2]] == list(pod.itervalues())
    assert list(pod.iteritems()) == [("a", 1), ("b", [2])]
    assert pod.get("zz", 3) == 3 and pod.setdefault("c", {"x": 1}) == {"x": 1}
    assert pod.popitem() == ("c", {"x": 1})
    pod.update({"d": 4})
    assert pod == {"a": 1, "b": [2], "d": 4} and len(pod) == 3
    pod.mark_dirty("a")
    pod.sync_key("a")
    assert pod.dirty() == set()
    pod.hold()
    pod["e"] = 5
    pod.unhold()
    pod.revert()
    assert pod["e"] == 5
    pod.clear()
    assert len(pod) == 0 and repr(pod).startswith("SharedPersistentOrderedDict(")
    with pytest.raises(RuntimeError):
        pod.unlock()
    pod.close()
    with pytest.raises(ClosedStoreError):
        pod["x"] = 1


def test_iteration_in_chunks_over_a_larger_store(tmp_path):
    pod = SharedPOD(tmp_path / "p", file_size=100)
    pod.update((i, i) for i in range(2500))
    assert list(pod) == list(range(2500))
    assert sum(v for _, v in pod.iteritems()) == sum(range(2500))


def test_pickles_as_reopen_the_path(tmp_path):
    tracker = SharedTracker(tmp_path / "t", max_tries=3, file_size=7)
    tracker.add("x")
    clone = pickle.loads(pickle.dumps(tracker))
    assert clone.max_tries == 3 and clone.path == tracker.path
    assert "x" in clone and clone._options["file_size"] == 7


def test_shared_tracker_methods(tmp_path):
    tracker = SharedTracker(tmp_path / "t", max_tries=1)
    tracker.add_many(["a", "b", "c", "d"])
    with pytest.raises(KeyError):
        tracker.add_many(["e", "a"])
    assert "e" not in tracker
    tracker.add_if_absent("a")
    tracker.add_many_if_absent(["d", "e"])
    tracker.mark_done("a")
    tracker.abort("b")
    tracker.increment_tries("c")
    assert tracker.done("a") and tracker.aborted("b") and tracker.tries("c") == 1
    assert not tracker.should_do("c") and tracker.should_do("b", allow_aborted=True)
    assert list(tracker.todo_keys()) == ["d", "e"]
    assert [k for k, _ in tracker.todo_items(allow_aborted=True)] == ["b", "d", "e"]
    assert len(list(tracker.todo_values())) == 2
    assert list(tracker.aborted_keys()) == ["b"]
    assert [v["_aborted"] for v in tracker.aborted_values()] == [True]
    assert [k for k, _ in tracker.aborted_items()] == ["b"]
    assert list(tracker.try_keys()) == ["d", "e"]
    assert list(tracker.try_values()) == []
    assert tracker.num_done() == 1 and tracker.num_tried() == 3 and tracker.num_aborted() == 1
    assert tracker.fraction_done() == 0.2 and tracker.percent_done() == "20.00 %"
    assert tracker.percent_not_done() == "80.00 %" and tracker.percent_tried() == "60.00 %"
    assert tracker.percent_not_tried() == "40.00 %" and tracker.fraction_tried() == 0.6
    assert tracker.percent_aborted() == "20.00 %" and tracker.percent_not_aborted() == "80.00 %"
    assert tracker.fraction_aborted() == 0.2 and tracker.percent(0.5, 0) == "50 %"
    tracker.mark_not_done("a")
    tracker.unabort("b")
    tracker.reset_tries("c")
    tracker.decrement_tries("d")
    assert tracker.should_do_add("new") and tracker.should_try_add("newer")
    assert tracker.should_try("c") and not tracker.should_try("c")
    tracker.update({"a": {"note": "x"}})
    assert tracker["a"]["note"] == "x"
    tracker.max_tries = 5
    assert tracker.max_tries == 5


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_sharing_try_keys_never_exceed_max_tries(tmp_path, method):
    context = multiprocessing.get_context(method)
    tracker = workers.open_tracker(tmp_path / "t")
    tracker.add_many(range(30))
    results = context.Queue()
    procs = [
        context.Process(target=workers.try_tasks, args=(tracker, f"w{i}", results))
        for i in range(3)
    ]
    for proc in procs:
        proc.start()
    tried = []
    finished = 0
    while finished < 3:
        _name, key = results.get()
        if key is None:
            finished += 1
        else:
            tried.append(key)
    for proc in procs:
        proc.join()
    # Each task is tried exactly max_tries=2 times in all, whoever tried it.
    assert sorted(tried) == sorted(list(range(30)) * 2)
    assert all(tracker.tries(k) == 2 for k in range(30))
