"""A resumable job: kill it at any moment (Ctrl-C, kill -9) and run it again.

    python examples/tracker_resumable_job.py [folder]   (default: $TMPDIR/persistkit-examples/)

It squares 2000 numbers, slowly, keeping each result with its task. Every finished task is
synced at once (sync_at=1), so even SIGKILL loses at most the task in progress, and that task
is tried at most max_tries times in all.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from persistkit.tracker import Tracker


def main(folder: str) -> None:
    tracker = Tracker(folder, max_tries=3, sync_at=1)
    tracker.hold()  # one sync for all the new tasks, not one each
    tracker.add_many_if_absent(range(2000))
    tracker.unhold()
    progress = tracker.progress()
    print(f"{progress.done} of {progress.total} already done", flush=True)
    for number in tracker.try_keys():
        time.sleep(0.002)  # the work
        tracker[number]["square"] = number * number
        tracker.mark_done(number)
        if number % 200 == 0:
            print(f"{tracker.percent_done()} done", flush=True)
    print("all done:", tracker.num_done(), "tasks")


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(tempfile.gettempdir(), "persistkit-examples", "squares.tracker")
    )
