"""Several worker processes share one DurableQueue and record results in one IODict.

Run it, kill it at any moment (Ctrl-C, kill -9), run it again: jobs already done are not
redone, and no job is done twice.

    python examples/iodict_worker.py /tmp/iodict-demo
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
from pathlib import Path

from persistkit.iodict import DurableQueue, IODict


def worker(root: str) -> None:
    jobs = DurableQueue(Path(root) / "jobs")
    results = IODict(Path(root) / "results")
    for number in jobs.getter():
        results[number] = number * number


def main(root: str) -> None:
    jobs = DurableQueue(Path(root) / "jobs")
    results = IODict(Path(root) / "results")
    if not len(results) and jobs.empty():
        jobs.put_many(range(200))
    processes = [multiprocessing.Process(target=worker, args=(root,)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    print(f"{len(results)} results; {jobs.qsize()} jobs left")


if __name__ == "__main__":
    main(
        sys.argv[1]
        if len(sys.argv) > 1
        else os.path.join(tempfile.gettempdir(), "persistkit-examples", "iodict-demo")
    )
