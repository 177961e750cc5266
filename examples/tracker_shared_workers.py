"""Four worker processes share one tracker, with no server process.

    python examples/tracker_shared_workers.py [folder] [fork|spawn|forkserver]

Each worker takes its own share of the tasks (as tastypy's example does) and counts a try
with should_try(), which checks and counts under the store's lock. Workers that all iterate
try_keys() would share the *tries*: a task may then run in two workers at once, up to max_tries
times in all. A counter updated under locked() ends exact.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile

from persistkit.tracker import SharedPOD, SharedTracker


def work(tracker: SharedTracker, stats: SharedPOD, index: int, count: int) -> None:
    for key in tracker.todo_keys():
        if key % count != index or not tracker.should_try(key):
            continue
        tracker.set[key]["result"] = key**2
        tracker.set[key]["worker"] = os.getpid()
        tracker.mark_done(key)
        with stats.locked():
            stats.set["finished"] += 1


def main(folder: str, method: str) -> None:
    context = multiprocessing.get_context(method)
    tracker = SharedTracker(os.path.join(folder, "tasks"), max_tries=2)
    tracker.add_many_if_absent(range(200))
    stats = SharedPOD(os.path.join(folder, "stats"))
    stats.setdefault("finished", 0)
    workers = [context.Process(target=work, args=(tracker, stats, i, 4)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(tracker.progress(), "finished counter:", stats["finished"])


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(tempfile.gettempdir(), "persistkit-examples", "shared-example"),
        sys.argv[2] if len(sys.argv) > 2 else "spawn",
    )
