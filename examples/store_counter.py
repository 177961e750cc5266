"""Several processes increment one counter file; transactions make sure no increment is lost.

    python examples/store_counter.py [processes] [increments]

Prints the final count with and without transactions. With ``transaction()`` it is always
processes x increments; without, concurrent read-modify-write cycles overwrite each other and
some increments are usually lost, yet the file is always a whole JSON number.
"""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
from pathlib import Path

from persistkit import store


def increment(path: str, count: int, locked: bool) -> None:
    counter = store.open(path, default=0, durability="atomic")
    for _ in range(count):
        if locked:
            with counter.transaction():
                counter.value += 1
        else:
            counter.reload()
            counter.value += 1
            counter.commit()


def run(processes: int, count: int, locked: bool) -> int:
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "counter.json")
        workers = [
            multiprocessing.Process(target=increment, args=(path, count, locked))
            for _ in range(processes)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return int(store.open(path).value)


def main() -> None:
    processes = int(sys.argv[1]) if len(sys.argv) > 1 else 4
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    print(f"expected:            {processes * count}")
    print(f"with transaction():  {run(processes, count, locked=True)}")
    print(f"plain commit():      {run(processes, count, locked=False)}")


if __name__ == "__main__":
    main()
