"""Producers and consumers in separate processes share one spool; each job is done once.

    python examples/spool_workers.py [producers] [consumers] [jobs-per-producer]

Consumers wait on inotify (no polling) and stop at a poison pill delivered after all jobs.
One consumer is killed with SIGKILL while it holds a claim: its job comes back when the
lease (1 s here) runs out, and another consumer finishes it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import tempfile
from collections import Counter

from persistkit.spool import Spool

STOP = b"STOP"


def produce(path: str, producer: int, count: int) -> None:
    spool = Spool(path, lease=1.0)
    for i in range(count):
        spool.deliver(f"job {producer}-{i}")


def consume(path: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    spool = Spool(path, lease=1.0)
    while True:
        message = spool.claim(timeout=None)
        assert message is not None
        content = message.read_bytes()
        spool.done(message)
        if content == STOP:
            return
        results.put(content.decode())


def claim_and_die(path: str, claimed: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    spool = Spool(path, lease=1.0)
    message = spool.claim(timeout=None)
    assert message is not None
    claimed.put(message.read_text())
    signal.pause()  # "working" until SIGKILL


def main() -> int:
    given = [int(arg) for arg in sys.argv[1:4]]
    producers, consumers, per_producer = given + [2, 3, 50][len(given) :]
    path = tempfile.mkdtemp(prefix="spool-example-")
    spool = Spool(path, lease=1.0)
    spool.deliver("job victim")
    context = multiprocessing.get_context("fork")
    claimed = context.Queue()
    victim = context.Process(target=claim_and_die, args=(path, claimed))
    victim.start()
    print(f"a consumer claimed {claimed.get()!r} and is killed now")
    os.kill(victim.pid, signal.SIGKILL)
    victim.join()

    results = context.Queue()
    workers = [context.Process(target=consume, args=(path, results)) for _ in range(consumers)]
    makers = [
        context.Process(target=produce, args=(path, p, per_producer)) for p in range(producers)
    ]
    for process in workers + makers:
        process.start()
    for process in makers:
        process.join()
    expected = producers * per_producer + 1
    done = Counter(results.get() for _ in range(expected))
    for _ in workers:
        spool.deliver(STOP)
    for process in workers:
        process.join()
    duplicates = [job for job, times in done.items() if times > 1]
    print(f"{sum(done.values())} jobs done by {consumers} consumers, duplicates: {duplicates}")
    print(f"victim's job finished after its lease ran out: {'job victim' in done}")
    return 0 if not duplicates and len(done) == expected else 1


if __name__ == "__main__":
    raise SystemExit(main())
