from __future__ import annotations

import pytest

from persistkit.tracker import POD, DuplicateKeyError, Progress, ProgressTracker, Tracker


def reopen(path, **kwargs):
    return Tracker(path, clone=False, **kwargs)


def test_adding_tasks(tmp_path):
    tracker = Tracker(tmp_path / "t")
    tracker.add("a")
    with pytest.raises(DuplicateKeyError) as caught:
        tracker.add("a")
    assert isinstance(caught.value, KeyError)
    assert "already" in str(caught.value)
    tracker.add_if_absent("a")
    tracker.add_many(["b", "c"])
    with pytest.raises(DuplicateKeyError):
        tracker.add_many(["d", "b"])
    tracker.add_many_if_absent(["c", "e", ("tuple", 1)])
    assert list(tracker) == ["a", "b", "c", "d", "e", ("tuple", 1)]
    assert tracker["a"] == {"_tries": 0, "_done": False, "_aborted": False}


def test_task_status_and_counters(tmp_path):
    tracker = Tracker(tmp_path / "t", max_tries=2)
    tracker.add_many(range(5))
    tracker.mark_done(0)
    tracker.mark_done(0)
    tracker.increment_tries(1)
    tracker.increment_tries(1)
    tracker.abort(2)
    tracker.increment_tries(3)
    tracker.decrement_tries(3)
    tracker.decrement_tries(3)
    assert tracker.done(0) and not tracker.done(1) and not tracker.done("absent")
    assert tracker.tries(1) == 2 and tracker.tries(3) == 0 and tracker.tries("absent") == 0
    assert tracker.aborted(2) and not tracker.aborted(0) and not tracker.aborted("absent")
    assert tracker.progress() == Progress(total=5, done=1, tried=1, aborted=1)
    assert tracker.num_done() == 1 and tracker.num_tried() == 1 and tracker.num_aborted() == 1
    assert tracker.fraction_done() == 0.2
    assert tracker.percent_done() == "20.00 %"
    assert tracker.percent_not_done(1) == "80.0 %"
    assert tracker.percent_tried() == "20.00 %" and tracker.percent_not_tried() == "80.00 %"
    assert tracker.percent_aborted(0) == "20 %" and tracker.percent_not_aborted() == "80.00 %"
    assert tracker.fraction_tried() == 0.2 and tracker.fraction_aborted() == 0.2
    assert tracker.percent(0.347) == "34.70 %"
    tracker.mark_not_done(0)
    tracker.unabort(2)
    tracker.reset_tries(1)
    assert tracker.progress() == Progress(5, 0, 0, 0)
    tracker.sync()
    again = reopen(tmp_path / "t", max_tries=2)
    assert again.progress() == Progress(5, 0, 0, 0)
    with pytest.raises(KeyError):
        tracker.mark_done("absent")


def test_empty_tracker_answers(tmp_path):
    tracker = Tracker(tmp_path / "t")
    assert tracker.num_done() == 0
    assert tracker.fraction_done() == 0.0 and tracker.fraction_tried() == 0.0
    assert tracker.fraction_aborted() == 0.0
    assert tracker.percent_done() == "0.00 %"
    assert tracker.percent_not_done() == "100.00 %"
    assert tracker.progress().fraction_done == 0.0
    assert list(tracker.todo_keys()) == [] and list(tracker.try_items()) == []
    assert list(tracker.aborted_values()) == []


def test_counters_follow_in_place_changes_and_reloads(tmp_path):
    tracker = Tracker(tmp_path / "t", file_size=2)
    tracker.add_many("abcd")
    assert tracker.num_done() == 0
    tracker["a"]["_done"] = True
    tracker["b"].update({"_tries": 3, "_aborted": True})
    assert tracker.progress() == Progress(4, 1, 1, 1)
    tracker["c"] = {"_done": True, "result": 1}
    assert tracker["c"] == {"_done": True, "result": 1, "_tries": 0, "_aborted": False}
    del tracker["a"]
    assert tracker.progress() == Progress(3, 1, 1, 1)
    tracker.sync()
    tracker.revert()
    assert tracker.progress() == Progress(3, 1, 1, 1)
    with pytest.raises(ValueError):
        tracker["x"] = 5


def test_gates(tmp_path):
    tracker = Tracker(tmp_path / "t", max_tries=2)
    tracker.add_many("abc")
    tracker.abort("c")
    assert tracker.should_do("a")
    assert not tracker.should_do("c") and tracker.should_do("c", allow_aborted=True)
    assert tracker.should_try("a") and tracker.should_try("a")
    assert not tracker.should_try("a") and tracker.tries("a") == 2
    assert tracker.should_do_add("new") and "new" in tracker
    assert tracker.should_try_add("newer") and tracker.tries("newer") == 1
    tracker.abort("newer")
    assert tracker.should_try_add("newer", allow_aborted=True)
    with pytest.raises(KeyError):
        tracker.should_do("absent")
    unlimited = Tracker(tmp_path / "u")
    unlimited.add("x")
    for _ in range(50):
        assert unlimited.should_try("x")


def test_iterators(tmp_path):
    tracker = Tracker(tmp_path / "t", max_tries=1)
    tracker.add_many(range(6))
    tracker.mark_done(1)
    tracker.abort(2)
    tracker.increment_tries(3)
    assert list(tracker.todo_keys()) == [0, 4, 5]
    assert list(tracker.todo_keys(allow_aborted=True)) == [0, 2, 4, 5]
    assert [k for k, _ in tracker.todo_items()] == [0, 4, 5]
    assert all(v["_tries"] == 0 for v in tracker.todo_values())
    assert list(tracker.aborted_keys()) == [2]
    assert list(tracker.aborted_items()) == [(2, tracker[2])]
    assert list(tracker.aborted_values()) == [tracker[2]]
    for key, task in tracker.try_items():
        task["result"] = key * 10
    assert list(tracker.try_keys()) == []
    assert [tracker[k]["result"] for k in (0, 4, 5)] == [0, 40, 50]
    tracker.reset_tries(0)
    assert [v["_tries"] for v in tracker.try_values()] == [1]
    tracker.sync()
    assert reopen(tmp_path / "t")[4]["result"] == 40


def test_update_merges_into_tasks(tmp_path):
    tracker = Tracker(tmp_path / "t", init=[("a", {"url": "x"})])
    tracker.update({"a": {"_done": True}}, b={"url": "y"})
    assert tracker["a"] == {"_tries": 0, "_done": True, "_aborted": False, "url": "x"}
    assert tracker["b"]["url"] == "y" and tracker.num_done() == 1
    with pytest.raises(ValueError):
        tracker.update({"a": 1})


def test_pod_with_max_tries_opens_a_tracker_as_tastypys_example_does(tmp_path):
    tracker = POD(tmp_path / "urls.tracker", max_tries=3)
    assert isinstance(tracker, ProgressTracker) and tracker.max_tries == 3
    with pytest.raises(ValueError):
        Tracker(tmp_path / "x", max_tries=-1)
