"""persistkit.core.Journal against the disk's floor and stdlib sqlite3 (WAL, synchronous=FULL).

Workloads (every commit durable when it returns, a 100-byte payload each):

- one process: ``Journal.commit`` against sqlite3 doing one single-row ``UPDATE`` per
  transaction, and against the floor: a 100-byte overwrite of one spot + ``fdatasync``.
- how to flush a log: the os-only variants the journal chose between, records appended at
  successive offsets: ``O_APPEND`` + fdatasync, overwriting preallocated written zeros +
  fdatasync (the journal's choice), overwriting ``fallocate``'d space + fdatasync, and
  ``O_DSYNC`` writes into written zeros.
- eight at once: 8 independent processes (started and opened before the clock starts), each
  committing its share, against sqlite3 with 8 processes each running one ``UPDATE`` per
  transaction on its own row; and 8 threads sharing one `Journal`. The single-process floor
  is the reference line.

`extra_report` gives the commits per flush that group commit achieved in the concurrent
journal cases (``Journal.stats()``: records appended / fdatasyncs run, by all processes), and
the CPU time each commit cost in the 8-writer cases (user + system, all writers,
``time.process_time``): on a machine with few cores that, not the disk, can bound the total.
"""

from __future__ import annotations

import os
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import workers
from harness import Workload, floor

from persistkit.core import Journal

PAYLOAD = b"j" * 100
WRITERS = 8
RECORD = 128  # 100 B padded as the journal pads, plus its head, rounded for the os-only cases

_commits_per_flush: dict[str, list[float]] = {}
_cpu = workers.CpuPerOp()

WORKER = (
    r"""
import sqlite3, sys
kind, path, name, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
payload = b"j" * 100
if kind == "journal":
    from persistkit.core import Journal
    journal = Journal(path)
    def op(i):
        journal.commit(payload)
else:
    db = sqlite3.connect(path, isolation_level=None, timeout=600)
    db.execute("PRAGMA synchronous=FULL")
    def op(i):
        # A new value each time: sqlite3 skips the commit of an UPDATE that changes nothing.
        db.execute("UPDATE t SET v = ? WHERE k = ?", (f"{i:0100d}", name))
"""
    + workers.BEGIN
    + "for i in range(count):\n    op(i)\n"
    + workers.DONE
)


# -- the floor and the os-only variants -------------------------------------------------------


def append_fdatasync(directory: Path, n: int) -> None:
    fd = os.open(directory / "log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        record = PAYLOAD.ljust(RECORD, b"\0")
        for _ in range(n):
            os.write(fd, record)
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _preallocate(directory: Path, n: int, *, written: bool) -> None:
    fd = os.open(directory / "log", os.O_WRONLY | os.O_CREAT, 0o666)
    try:
        if written:
            os.write(fd, bytes(RECORD * n + 4096))
        else:
            os.posix_fallocate(fd, 0, RECORD * n + 4096)
        os.fsync(fd)
    finally:
        os.close(fd)


def preallocate_zeros(directory: Path, n: int) -> None:
    _preallocate(directory, n, written=True)


def preallocate_fallocate(directory: Path, n: int) -> None:
    _preallocate(directory, n, written=False)


def overwrite_fdatasync(directory: Path, n: int) -> None:
    fd = os.open(directory / "log", os.O_WRONLY)
    try:
        for i in range(n):
            os.pwrite(fd, PAYLOAD, i * RECORD)
            os.fdatasync(fd)
    finally:
        os.close(fd)


def overwrite_dsync(directory: Path, n: int) -> None:
    fd = os.open(directory / "log", os.O_WRONLY | os.O_DSYNC)
    try:
        for i in range(n):
            os.pwrite(fd, PAYLOAD, i * RECORD)
    finally:
        os.close(fd)


# -- sqlite3 ----------------------------------------------------------------------------------


def sqlite_setup(directory: Path, _n: int) -> None:
    db = sqlite3.connect(directory / "db.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v TEXT)")
    db.executemany("INSERT INTO t VALUES (?, '')", ((f"w{i}",) for i in range(WRITERS)))
    db.close()


def sqlite_updates(directory: Path, n: int) -> None:
    db = sqlite3.connect(directory / "db.sqlite", isolation_level=None)
    db.execute("PRAGMA synchronous=FULL")
    for i in range(n):
        # A new value each time: sqlite3 skips the commit of an UPDATE that changes nothing.
        db.execute("UPDATE t SET v = ? WHERE k = 'w0'", (f"{i:0100d}",))
    db.close()


# -- persistkit ------------------------------------------------------------------------------


def journal_setup(directory: Path, _n: int) -> None:
    Journal(directory / "journal").close()


def journal_commits(directory: Path, n: int) -> None:
    with Journal(directory / "journal") as journal:
        for _ in range(n):
            journal.commit(PAYLOAD)


def _record_group_commit(case: str, directory: Path) -> None:
    with Journal(directory / "journal") as journal:
        stats = journal.stats()
    _commits_per_flush.setdefault(case, []).append(stats.records / max(stats.flushes, 1))


def journal_threads(directory: Path, n: int) -> None:
    before = time.process_time()
    with Journal(directory / "journal") as journal:

        def work() -> None:
            for _ in range(n // WRITERS):
                journal.commit(PAYLOAD)

        threads = [threading.Thread(target=work) for _ in range(WRITERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    cpu = time.process_time() - before
    _cpu.add("8 threads, one Journal", cpu, n // WRITERS * WRITERS)
    _record_group_commit("8 threads, one Journal", directory)


def journal_processes_setup(directory: Path, n: int) -> None:
    journal_setup(directory, n)
    workers.start(
        directory,
        WORKER,
        [
            ("journal", str(directory / "journal"), f"w{i}", str(n // WRITERS))
            for i in range(WRITERS)
        ],
    )


def journal_processes(directory: Path, n: int) -> None:
    cpu = workers.run(directory)
    _cpu.add("8 processes, one Journal", cpu, n // WRITERS * WRITERS)
    _record_group_commit("8 processes, one Journal", directory)


def sqlite_processes_setup(directory: Path, n: int) -> None:
    sqlite_setup(directory, n)
    workers.start(
        directory,
        WORKER,
        [
            ("sqlite", str(directory / "db.sqlite"), f"w{i}", str(n // WRITERS))
            for i in range(WRITERS)
        ],
    )


def sqlite_processes(directory: Path, n: int) -> None:
    cpu = workers.run(directory)
    _cpu.add("sqlite3, 8 processes", cpu, n // WRITERS * WRITERS)


def workloads(quick: bool) -> list[Workload]:
    scale = 10 if quick else 1
    sqlite_name = "sqlite3, one UPDATE per transaction (WAL, FULL)"
    single = Workload("durable commits, one process, 100 B", 2000 // scale, sqlite_name)
    single.add(sqlite_name, sqlite_updates, setup=sqlite_setup)
    single.add("floor: 100 B overwrite + fdatasync", floor, note="os-only, one spot")
    single.add(
        "persistkit Journal.commit",
        journal_commits,
        setup=journal_setup,
        note="pwrite into written zeros + fdatasync",
    )

    variants_base = "O_APPEND + fdatasync"
    variants = Workload("how to flush a log: 100 B records, os-only", 2000 // scale, variants_base)
    variants.add(variants_base, append_fdatasync, note="the file grows on every record")
    variants.add(
        "written zeros, overwrite + fdatasync",
        overwrite_fdatasync,
        setup=preallocate_zeros,
        note="the journal's choice",
    )
    variants.add(
        "fallocate, overwrite + fdatasync",
        overwrite_fdatasync,
        setup=preallocate_fallocate,
        note="unwritten extents",
    )
    variants.add("written zeros, O_DSYNC pwrite", overwrite_dsync, setup=preallocate_zeros)
    variants.add("floor: 100 B overwrite + fdatasync", floor, note="one spot")

    sqlite_many = "sqlite3, 8 processes, one UPDATE per transaction"
    many = Workload("durable commits, 8 writers at once, 100 B (total)", 4000 // scale, sqlite_many)
    many.add(sqlite_many, sqlite_processes, setup=sqlite_processes_setup, note="WAL, FULL")
    many.add(
        "persistkit Journal, 8 processes",
        journal_processes,
        setup=journal_processes_setup,
        note="group commit",
    )
    many.add(
        "persistkit Journal, 8 threads",
        journal_threads,
        setup=journal_setup,
        note="one object shared",
    )
    many.add("floor, one process: 100 B overwrite + fdatasync", floor)
    return [single, variants, many]


def extra_report(quick: bool) -> str:
    lines = [
        "### group commit: commits per fdatasync",
        "",
        "Median over the repeats of the 8-writer workload (records appended / fdatasyncs, as",
        "counted by every process in the journal's coordination file).",
        "",
        "| case | commits per flush |",
        "|---|--:|",
    ]
    for case, ratios in _commits_per_flush.items():
        lines.append(f"| {case} | {statistics.median(ratios):.2f} |")
    lines += _cpu.report("8-writer workload", "commit")
    return "\n".join(lines) + "\n"


brief_report = extra_report  # it only reports what the workloads measured
