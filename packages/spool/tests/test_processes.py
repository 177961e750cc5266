"""Real processes: many producers and consumers, a consumer killed with SIGKILL, waiting.

Synchronisation is by pipes and queues only; nothing sleeps to wait for something.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter
from pathlib import Path

import pytest

from persistkit.spool import Spool

CTX = multiprocessing.get_context("fork")
STOP = b"STOP"

PRODUCERS = 4
CONSUMERS = 4
MESSAGES = 10_000


def produce(path: str, producer: int, count: int) -> None:
    # durability="atomic": durable mode costs 3 fsyncs per message, about 10 s for this test
    # on the 2-core CI machines instead of 3 s. Exactly-once comes from the renames, which
    # are the same in both modes; the fsyncs are covered by the crash and protocol tests.
    spool = Spool(path, durability="atomic")
    for i in range(count):
        spool.deliver(f"{producer}:{i}".encode())


def consume(path: str, results: multiprocessing.connection.Connection) -> None:
    spool = Spool(path, durability="atomic")
    seen: list[bytes] = []
    while True:
        message = spool.claim(timeout=None)
        assert message is not None
        content = message.read_bytes()
        spool.done(message)
        if content == STOP:
            break
        seen.append(content)
    results.send(seen)
    results.close()


def test_four_producers_four_consumers_each_message_processed_exactly_once(tmp_path):
    path = str(tmp_path / "spool")
    Spool(path, durability="atomic")
    pipes = [CTX.Pipe(duplex=False) for _ in range(CONSUMERS)]
    consumers = [CTX.Process(target=consume, args=(path, send)) for _, send in pipes]
    producers = [
        CTX.Process(target=produce, args=(path, p, MESSAGES // PRODUCERS)) for p in range(PRODUCERS)
    ]
    for process in consumers + producers:
        process.start()
    for process in producers:
        process.join()
        assert process.exitcode == 0
    # Poison pills, delivered after every message: each consumer takes exactly one, and only
    # once every older message has been claimed.
    spool = Spool(path, durability="atomic")
    for _ in range(CONSUMERS):
        spool.deliver(STOP)
    per_consumer = [receive.recv() for receive, _ in pipes]
    for process in consumers:
        process.join()
        assert process.exitcode == 0
    counts = Counter(item for seen in per_consumer for item in seen)
    expected = {f"{p}:{i}".encode() for p in range(PRODUCERS) for i in range(MESSAGES // PRODUCERS)}
    assert set(counts) == expected
    assert max(counts.values()) == 1
    assert spool.list("new") == spool.list("cur") == spool.list("dead") == []
    assert sum(1 for seen in per_consumer if seen) >= 2, "the work was not shared"


def hold_a_claim(path: str, report: multiprocessing.connection.Connection) -> None:
    spool = Spool(path, lease=60)
    message = spool.claim()
    assert message is not None
    report.send(message.id)
    report.recv()  # blocks until killed


def test_a_consumer_killed_mid_claim_has_its_message_delivered_again_after_the_lease(tmp_path):
    path = str(tmp_path / "spool")
    message_id = Spool(path).deliver(b"important")
    ours, theirs = CTX.Pipe()
    consumer = CTX.Process(target=hold_a_claim, args=(path, theirs))
    consumer.start()
    assert ours.recv() == message_id
    os.kill(consumer.pid, signal.SIGKILL)
    consumer.join()
    assert consumer.exitcode == -signal.SIGKILL

    # While the lease runs, nobody else gets the message.
    assert Spool(path, lease=60).claim() is None
    # Once it has run out (an injected clock, 61 s later), the message comes back.
    later = Spool(path, lease=60, clock=lambda: time.time() + 61)
    message = later.claim()
    assert message is not None
    assert (message.id, message.tries, message.read_bytes()) == (message_id, 2, b"important")
    later.done(message)
    assert later.list("cur") == []


def wait_for_one(path: str, watch: str, report: multiprocessing.connection.Connection) -> None:
    spool = Spool(path, watch=watch)  # type: ignore[arg-type]
    report.send("waiting")
    message = spool.claim(timeout=60)
    report.send((None if message is None else message.read_bytes(), spool.scans))


def blocked(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rpartition(")")[2].split()[0] == "S"


def has_inotify(pid: int) -> bool:
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            if os.readlink(fd) == "anon_inode:inotify":
                return True
        except FileNotFoundError:  # closed while we looked
            continue
    return False


@pytest.mark.parametrize("watch", ["inotify", "poll"])
def test_a_waiting_consumer_gets_a_message_delivered_after_it_started_waiting(tmp_path, watch):
    path = str(tmp_path / "spool")
    spool = Spool(path)
    ours, theirs = CTX.Pipe()
    consumer = CTX.Process(target=wait_for_one, args=(path, watch, theirs))
    consumer.start()
    assert ours.recv() == "waiting"
    if watch == "inotify":
        # Wait (yielding the CPU) until the consumer sleeps in the kernel on its inotify
        # descriptor; only then deliver.
        give_up = time.monotonic() + 60
        while not (has_inotify(consumer.pid) and blocked(consumer.pid)):
            assert time.monotonic() < give_up, "the consumer never went to sleep"
            os.sched_yield()
    spool.deliver(b"late")
    content, scans = ours.recv()
    consumer.join()
    assert content == b"late"
    if watch == "inotify":
        # One look before sleeping, one after the wake-up: no polling in between.
        assert scans == 2


def claim_and_hang(path: str, report: multiprocessing.connection.Connection) -> None:
    spool = Spool(path, lease=0.2)
    message = spool.claim()
    report.send(message.id)
    report.recv()


def test_a_waiting_consumer_wakes_when_a_lease_runs_out(tmp_path):
    path = str(tmp_path / "spool")
    message_id = Spool(path).deliver(b"x")
    ours, theirs = CTX.Pipe()
    holder = CTX.Process(target=claim_and_hang, args=(path, theirs))
    holder.start()
    assert ours.recv() == message_id
    try:
        # Nothing new will ever arrive: only the lease running out can end this wait.
        message = Spool(path, lease=0.2).claim(timeout=30)
    finally:
        holder.kill()
        holder.join()
    assert message is not None
    assert (message.id, message.tries) == (message_id, 2)
