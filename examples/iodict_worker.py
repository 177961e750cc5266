"""Several worker processes share one DurableQueue and record results in one IODict.

Run it, kill it at any moment (Ctrl-C, kill -9 of any or all of its processes), run it
again: every job ends with its result, none is lost. Each worker *claims* a job, stores the
result, and only then acknowledges the job; a worker killed in between leaves the job
leased to a dead process, and the next claim (by any worker, now or after a restart)
delivers it again. Storing a result is idempotent, so doing a job twice is harmless.

    python examples/iodict_worker.py /tmp/iodict-demo

Each worker prints ``done <job>`` after the job's ack returned.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import tempfile
from pathlib import Path

from persistkit.iodict import DurableQueue, IODict

JOBS = 200
WORKERS = 4


def worker(root: str) -> None:
    jobs: DurableQueue[int] = DurableQueue(Path(root) / "jobs")
    results = IODict(Path(root) / "results")
    # Until every job is acknowledged: a job leased to a worker that is still running is
    # not waiting, but it comes back if that worker dies, so keep asking.
    while jobs.unfinished_tasks:
        try:
            job = jobs.claim(timeout=1.0)
        except queue.Empty:
            continue
        with job:  # acks when the block ends; an exception gives the job back
            results[job.item] = job.item * job.item
        # One write per line, so the lines of several workers never interleave.
        sys.stdout.write(f"done {job.item}\n")
        sys.stdout.flush()


def main(root: str) -> None:
    jobs: DurableQueue[int] = DurableQueue(Path(root) / "jobs")
    results = IODict(Path(root) / "results")
    # A job counts as unfinished from its put until its ack: zero, with no result yet,
    # means the jobs were never put (put_many puts all of them or, if killed, none).
    if not jobs.unfinished_tasks and not len(results):
        jobs.put_many(range(JOBS))
    processes = [multiprocessing.Process(target=worker, args=(root,)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    print(f"{len(results)} results; {jobs.qsize()} jobs left; {len(jobs.dead_letters())} dead")


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(tempfile.gettempdir(), "persistkit-examples", "iodict-demo")
    )
