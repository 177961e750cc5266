"""persistkit DurableQueue against persist-queue, sqlite3, diskcache and iodict 0.0.8.

Workloads (100-byte items; "durable" means the operation survives power loss when it
returns):

- put, one commit per put, into a queue created before the clock starts: DurableQueue
  (durable, and atomic) against persist-queue's
  SQLiteQueue (``auto_commit=True``: WAL, one fsync per put), diskcache's Deque (not durable)
  and iodict 0.0.8 (neither durable nor atomic); the disk's floor as reference.
- get at depth 1,000 (and 100,000 in a full run), one commit per get: the same peers.
  DurableQueue's items are in its journal at depth 1,000 and in checkpoint segments at
  depth 100,000.
- claim + ack (at-least-once delivery): DurableQueue against persist-queue's SQLiteAckQueue
  (get + ack, each a commit).
- eight producers at once: 8 independent processes (started and opened before the clock
  starts) each putting its share durably, against sqlite3 with 8 processes each running one
  ``INSERT`` per transaction (WAL, synchronous=FULL), and the single-process floor.

`extra_report` gives the commits per flush that group commit achieved across processes
(the journal's counters: records appended / fdatasyncs run).
"""

from __future__ import annotations

import importlib
import sqlite3
import statistics
from pathlib import Path
from typing import Any

import workers
from harness import Workload, floor

from persistkit.core import Journal
from persistkit.iodict import DurableQueue

VALUE = b"q" * 100
PRODUCERS = 8
JOURNAL = ".persistkit-queue.journal"

_commits_per_flush: dict[str, list[float]] = {}

WORKER = (
    r"""
import sqlite3, sys
kind, path, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
value = b"q" * 100
if kind == "queue":
    from persistkit.iodict import DurableQueue
    queue = DurableQueue(path)
    queue.qsize()  # opened and caught up before the clock starts
    op = queue.put
else:
    db = sqlite3.connect(path, isolation_level=None, timeout=600)
    db.execute("PRAGMA synchronous=FULL")
    def op(value):
        db.execute("INSERT INTO q (v) VALUES (?)", (value,))
"""
    + workers.BEGIN
    + "for _ in range(count):\n    op(value)\n"
    + workers.DONE
)
_cpu = workers.CpuPerOp()


def _peer(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


# -- one process ------------------------------------------------------------------------------


class _Peer:
    """How to open, fill, put to and take from one kind of queue."""

    def __init__(self, name: str, note: str, opener: Any, *, take: str = "get") -> None:
        self.name, self.note, self.opener, self.take = name, note, opener, take

    def fill(self, directory: Path, depth: int) -> None:
        queue = self.opener(directory)
        if isinstance(queue, DurableQueue):
            for start in range(0, depth, 1000):
                queue.put_many([VALUE] * min(1000, depth - start))
            if depth > 10_000:
                queue.checkpoint()
        elif hasattr(queue, "extend"):
            queue.extend([VALUE] * depth)
        elif hasattr(queue, "auto_commit"):
            queue.auto_commit = False
            for _ in range(depth):
                queue.put(VALUE)
            queue.task_done()
        else:
            for _ in range(depth):
                queue.put(VALUE)

    def create(self, directory: Path, _n: int) -> None:
        """Create the queue before the clock starts (a queue is made once and used long)."""
        queue = self.opener(directory)
        if isinstance(queue, DurableQueue):
            queue.put(VALUE)
            queue.get()

    def put_run(self, directory: Path, n: int) -> None:
        queue = self.opener(directory)
        put = queue.append if hasattr(queue, "append") else queue.put
        for _ in range(n):
            put(VALUE)

    def get_run(self, directory: Path, n: int) -> None:
        take = getattr(self.opener(directory), self.take)
        for _ in range(n):
            take()


def _peers(*, slow_ok: bool) -> list[_Peer]:
    found = [
        _Peer(
            "persistkit DurableQueue (durable)",
            "one shared fdatasync",
            lambda d: DurableQueue(d / "q"),
        ),
        _Peer(
            "persistkit DurableQueue (atomic)",
            "no flush",
            lambda d: DurableQueue(d / "q", durability="atomic"),
        ),
    ]
    persistqueue = _peer("persistqueue")
    if persistqueue is not None:
        found.append(
            _Peer(
                "persist-queue SQLiteQueue",
                "durable (WAL)",
                lambda d: persistqueue.SQLiteQueue(str(d / "pq"), auto_commit=True),
            )
        )
    diskcache = _peer("diskcache")
    if diskcache is not None:
        found.append(
            _Peer(
                "diskcache Deque",
                "not durable",
                lambda d: diskcache.Deque(directory=str(d / "dq")),
                take="popleft",
            )
        )
    iodict = _peer("iodict")
    if iodict is not None and slow_ok:
        found.append(
            _Peer(
                "iodict 0.0.8 DurableQueue",
                "not durable; lists the folder per get",
                lambda d: iodict.DurableQueue(path=str(d / "q")),
            )
        )
    return found


def _put_workload(ops: int) -> Workload:
    baseline = "persist-queue SQLiteQueue"
    puts = Workload("queue put, one commit per put", ops, baseline)
    for peer in _peers(slow_ok=True):
        puts.add(peer.name, peer.put_run, setup=peer.create, note=peer.note)
    puts.add("floor: 100 B overwrite + fdatasync", floor, note="os-only, one spot")
    return puts


def _get_workload(ops: int, depth: int) -> Workload:
    baseline = "persist-queue SQLiteQueue"
    gets = Workload(f"queue get at depth {depth:,}, one commit per get", ops, baseline)
    for peer in _peers(slow_ok=depth <= 1000):

        def setup(directory: Path, _n: int, peer: _Peer = peer) -> None:
            peer.fill(directory, depth)

        gets.add(peer.name, peer.get_run, setup=setup, note=peer.note)
    return gets


def _claim_workload(ops: int) -> Workload | None:
    persistqueue = _peer("persistqueue")
    if persistqueue is None:
        return None
    baseline = "persist-queue SQLiteAckQueue get + ack"
    claims = Workload("at-least-once delivery: take + acknowledge, depth 1,000", ops, baseline)

    def pq_setup(directory: Path, _n: int) -> None:
        queue = persistqueue.SQLiteAckQueue(str(directory / "pq"), auto_commit=False)
        for _ in range(1000):
            queue.put(VALUE)
        queue.task_done()

    def pq_run(directory: Path, n: int) -> None:
        queue = persistqueue.SQLiteAckQueue(str(directory / "pq"), auto_commit=True)
        for _ in range(n):
            queue.ack(queue.get())

    def pk_setup(directory: Path, _n: int) -> None:
        DurableQueue(directory / "q").put_many([VALUE] * 1000)

    def pk_run(directory: Path, n: int) -> None:
        queue: DurableQueue[bytes] = DurableQueue(directory / "q")
        for _ in range(n):
            queue.claim().ack()

    claims.add(baseline, pq_run, setup=pq_setup, note="durable (WAL)")
    claims.add("persistkit claim + ack", pk_run, setup=pk_setup, note="two shared flushes")
    return claims


# -- eight producers ----------------------------------------------------------------------------


def queue_producers_setup(directory: Path, n: int) -> None:
    DurableQueue(directory / "q").put(VALUE)  # the journal exists before the clock starts
    DurableQueue(directory / "q").get()
    workers.start(
        directory, WORKER, [("queue", str(directory / "q"), str(n // PRODUCERS))] * PRODUCERS
    )


def queue_producers(directory: Path, n: int) -> None:
    with Journal(directory / "q" / JOURNAL) as journal:
        before = journal.stats()
    _cpu.add("DurableQueue, 8 processes", workers.run(directory), n // PRODUCERS * PRODUCERS)
    with Journal(directory / "q" / JOURNAL) as journal:
        after = journal.stats()
    flushes = max(after.flushes - before.flushes, 1)
    _commits_per_flush.setdefault("DurableQueue, 8 processes putting", []).append(
        (after.records - before.records) / flushes
    )


def sqlite_producers_setup(directory: Path, n: int) -> None:
    db = sqlite3.connect(directory / "db.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE q (id INTEGER PRIMARY KEY AUTOINCREMENT, v BLOB)")
    db.close()
    workers.start(
        directory,
        WORKER,
        [("sqlite", str(directory / "db.sqlite"), str(n // PRODUCERS))] * PRODUCERS,
    )


def sqlite_producers(directory: Path, n: int) -> None:
    _cpu.add("sqlite3, 8 processes", workers.run(directory), n // PRODUCERS * PRODUCERS)


def _producers_workload(ops: int) -> Workload:
    baseline = "sqlite3, 8 processes, one INSERT per transaction"
    many = Workload("8 producers at once, one durable put each (total)", ops, baseline)
    many.add(baseline, sqlite_producers, setup=sqlite_producers_setup, note="WAL, FULL")
    many.add(
        "persistkit DurableQueue, 8 processes",
        queue_producers,
        setup=queue_producers_setup,
        note="group commit",
    )
    many.add("floor, one process: 100 B overwrite + fdatasync", floor)
    return many


def workloads(quick: bool) -> list[Workload]:
    scale = 10 if quick else 1
    found = [
        _put_workload(2000 // scale),
        _get_workload(1000 // scale, 1000),
    ]
    if not quick:
        found.append(_get_workload(1000, 100_000))
    claims = _claim_workload(1000 // scale)
    if claims is not None:
        found.append(claims)
    found.append(_producers_workload(4000 // scale))
    return found


def extra_report(quick: bool) -> str:
    del quick
    lines = [
        "### queue group commit: puts per fdatasync",
        "",
        "Median over the repeats of the 8-producer workload (records appended / fdatasyncs,",
        "as counted by every process in the queue journal's coordination file).",
        "",
        "| case | puts per flush |",
        "|---|--:|",
    ]
    for case, ratios in _commits_per_flush.items():
        lines.append(f"| {case} | {statistics.median(ratios):.2f} |")
    lines += _cpu.report("8-producer workload", "put")
    return "\n".join(lines) + "\n"


brief_report = extra_report  # it only reports what the workloads measured
