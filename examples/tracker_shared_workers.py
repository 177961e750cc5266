"""Four worker processes share one tracker, with no server process.

    python examples/tracker_shared_workers.py [folder] [fork|spawn|forkserver]

Each worker takes tasks with try_keys(): the check and the try count happen under the store's
lock, so two workers never run a task past max_tries between them. A counter updated under
locked() ends exact.
"""

from __future__ import annotations

import multiprocessing
import os
import sys

from persistkit.tracker import SharedPOD, SharedTracker


def work(tracker: SharedTracker, stats: SharedPOD) -> None:
    for key in tracker.try_keys():
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
    workers = [context.Process(target=work, args=(tracker, stats)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(tracker.progress(), "finished counter:", stats["finished"])


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else "shared-example",
        sys.argv[2] if len(sys.argv) > 2 else "spawn",
    )
