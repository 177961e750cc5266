"""Worker functions for the multi-process tests (importable by spawn and forkserver children)."""

from __future__ import annotations

from persistkit.tracker import SharedPOD, SharedTracker


def increment(pod, rounds, name):
    for _ in range(rounds):
        with pod.locked():
            pod.set["count"] += 1
            pod.set["log"].append(name)


def increment_by_path(path, rounds, name):
    increment(SharedPOD(path), rounds, name)


def square_my_share(pod, proc_num, num_procs):
    # tastypy's multiprocessing example, unchanged.
    for i in pod:
        if i % num_procs == proc_num:
            pod.set[i] = i**2


def try_tasks(tracker, name, results):
    for key in tracker.try_keys():
        tracker.set[key]["by"] = name
        results.put((name, key))
    results.put((name, None))


def open_tracker(path):
    return SharedTracker(path, max_tries=2)
