"""persistkit-iodict against iodict 0.0.8, diskcache, sqlitedict, sqlite3 and persist-queue.

Values are 100-byte strings; keys are distinct, so every set creates an item. Peers that
are not installed are left out of the tables (the bench session installs them all).
"""

from __future__ import annotations

import importlib
import sqlite3
from pathlib import Path
from types import ModuleType
from typing import Any

from harness import Workload, os_only_replace

from persistkit.iodict import DurableQueue, IODict

VALUE = "x" * 100
RAW = VALUE.encode()
QUEUE_DEPTH = 10_000


def _peer(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _sqlite(directory: Path, synchronous: str) -> sqlite3.Connection:
    db = sqlite3.connect(directory / "kv.sqlite3", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB)")
    return db


def _sqlite_set(directory: Path, n: int, synchronous: str = "FULL") -> None:
    db = _sqlite(directory, synchronous)
    for i in range(n):
        db.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", (f"key{i}", RAW))
    db.close()


def _set_workload(ops: int, *, durable: bool) -> Workload:
    level = "durable" if durable else "atomic"
    iodict = _peer("iodict")
    diskcache = _peer("diskcache")
    sqlitedict = _peer("sqlitedict")
    if durable:
        baseline = "os-only (temp, fsync, rename, fsync dir)"
        title = "IODict set, one durable commit per set (100 B values, new keys)"
    else:
        baseline = "iodict 0.0.8" if iodict else "os-only, no fsync"
        title = "IODict set without fsync (persistkit durability='atomic')"
    workload = Workload(title, ops, baseline)

    def os_only(directory: Path, n: int) -> None:
        for i in range(n):
            os_only_replace(directory / f"key{i}", RAW, sync=durable)

    def persistkit(directory: Path, n: int) -> None:
        store = IODict(directory / "store", durability=level)
        for i in range(n):
            store[f"key{i}"] = VALUE

    def persistkit_header(directory: Path, n: int) -> None:
        store = IODict(directory / "store", durability=level, use_xattrs=False)
        for i in range(n):
            store[f"key{i}"] = VALUE

    workload.add(
        "os-only (temp, fsync, rename, fsync dir)" if durable else "os-only, no fsync", os_only
    )
    workload.add(f"persistkit IODict ({level})", persistkit, note="xattr layout")
    workload.add(f"persistkit IODict ({level}, header layout)", persistkit_header)
    if iodict is not None:

        def iodict_case(directory: Path, n: int) -> None:
            store = iodict.IODict(path=str(directory / "store"))
            for i in range(n):
                store[f"key{i}"] = VALUE

        workload.add(
            "iodict 0.0.8", iodict_case, note="writes in place: neither durable nor atomic"
        )
    if durable:
        workload.add("sqlite3 WAL + synchronous=FULL", _sqlite_set, note="durable")
        if diskcache is not None:

            def diskcache_sync(directory: Path, n: int) -> None:
                cache = diskcache.Cache(str(directory / "dc"), sqlite_synchronous=2)
                for i in range(n):
                    cache[f"key{i}"] = VALUE
                cache.close()

            workload.add("diskcache 5.6.3, sqlite_synchronous=2", diskcache_sync, note="durable")
    else:
        workload.add(
            "sqlite3 WAL + synchronous=OFF",
            lambda d, n: _sqlite_set(d, n, "OFF"),
            note="no fsync",
        )
        if diskcache is not None:

            def diskcache_default(directory: Path, n: int) -> None:
                cache = diskcache.Cache(str(directory / "dc"))
                for i in range(n):
                    cache[f"key{i}"] = VALUE
                cache.close()

            workload.add("diskcache 5.6.3 (default)", diskcache_default, note="WAL + NORMAL")
        if sqlitedict is not None:

            def sqlitedict_case(directory: Path, n: int) -> None:
                store = sqlitedict.SqliteDict(str(directory / "sd.sqlite"), autocommit=True)
                for i in range(n):
                    store[f"key{i}"] = VALUE
                store.close()

            workload.add("sqlitedict 2.1.0 (autocommit)", sqlitedict_case, note="never fsyncs")
    return workload


def _get_workload(ops: int) -> Workload:
    iodict = _peer("iodict")
    diskcache = _peer("diskcache")
    sqlitedict = _peer("sqlitedict")
    baseline = "iodict 0.0.8" if iodict else "persistkit IODict"
    workload = Workload("IODict get after reopen (100 B values)", ops, baseline)

    def fill_persistkit(directory: Path, n: int) -> None:
        IODict(directory / "store", durability="atomic").update(
            (f"key{i}", VALUE) for i in range(n)
        )

    def persistkit(directory: Path, n: int) -> None:
        store = IODict(directory / "store")
        for i in range(n):
            store[f"key{i}"]

    workload.add("persistkit IODict", persistkit, setup=fill_persistkit)
    if iodict is not None:

        def fill_iodict(directory: Path, n: int) -> None:
            store = iodict.IODict(path=str(directory / "store"))
            for i in range(n):
                store[f"key{i}"] = VALUE

        def iodict_case(directory: Path, n: int) -> None:
            store = iodict.IODict(path=str(directory / "store"))
            for i in range(n):
                store[f"key{i}"]

        workload.add("iodict 0.0.8", iodict_case, setup=fill_iodict)

    def sqlite_get(directory: Path, n: int) -> None:
        db = _sqlite(directory, "FULL")
        for i in range(n):
            db.execute("SELECT v FROM kv WHERE k = ?", (f"key{i}",)).fetchone()
        db.close()

    workload.add("sqlite3 WAL", sqlite_get, setup=lambda d, n: _sqlite_set(d, n, "OFF"))
    if diskcache is not None:

        def fill_dc(directory: Path, n: int) -> None:
            with diskcache.Cache(str(directory / "dc")) as cache:
                for i in range(n):
                    cache[f"key{i}"] = VALUE

        def dc_get(directory: Path, n: int) -> None:
            with diskcache.Cache(str(directory / "dc")) as cache:
                for i in range(n):
                    cache[f"key{i}"]

        workload.add("diskcache 5.6.3", dc_get, setup=fill_dc)
    if sqlitedict is not None:

        def fill_sd(directory: Path, n: int) -> None:
            with sqlitedict.SqliteDict(str(directory / "sd.sqlite")) as store:
                for i in range(n):
                    store[f"key{i}"] = VALUE
                store.commit()

        def sd_get(directory: Path, n: int) -> None:
            with sqlitedict.SqliteDict(str(directory / "sd.sqlite"), flag="r") as store:
                for i in range(n):
                    store[f"key{i}"]

        workload.add("sqlitedict 2.1.0", sd_get, setup=fill_sd)
    return workload


def _queue_workloads(get_ops: int, put_ops: int) -> list[Workload]:
    iodict = _peer("iodict")
    diskcache = _peer("diskcache")
    persistqueue = _peer("persistqueue")
    baseline = "iodict 0.0.8 DurableQueue" if iodict else "persistkit DurableQueue (durable)"
    gets = Workload(f"queue get at depth {QUEUE_DEPTH:,}", get_ops, baseline)
    puts = Workload("queue put (one commit per put)", put_ops, baseline)
    cases: list[tuple[str, Any, Any, Any, str]] = []

    def pk_open(level: str) -> Any:
        return lambda d: DurableQueue(d / "q", durability=level)

    def pk_fill(queue: Any) -> None:
        for _ in range(QUEUE_DEPTH // 1000):
            queue.put_many([VALUE] * 1000)

    cases.append(("persistkit DurableQueue (durable)", pk_open("durable"), pk_fill, "get", ""))
    cases.append(
        ("persistkit DurableQueue (atomic)", pk_open("atomic"), pk_fill, "get", "no fsync")
    )
    if persistqueue is not None:

        def pq_open(directory: Path) -> Any:
            return persistqueue.SQLiteQueue(str(directory / "pq"), auto_commit=True)

        def pq_fill(queue: Any) -> None:
            queue.auto_commit = False
            for _ in range(QUEUE_DEPTH):
                queue.put(VALUE)
            queue.task_done()
            queue.auto_commit = True

        cases.append(("persist-queue 1.1.0 SQLiteQueue", pq_open, pq_fill, "get", "durable"))
    if diskcache is not None:

        def dq_open(directory: Path) -> Any:
            return diskcache.Deque(directory=str(directory / "dq"))

        def dq_fill(queue: Any) -> None:
            queue.extend([VALUE] * QUEUE_DEPTH)

        cases.append(("diskcache 5.6.3 Deque", dq_open, dq_fill, "popleft", "not durable"))
    if iodict is not None:

        def io_open(directory: Path) -> Any:
            return iodict.DurableQueue(path=str(directory / "q"))

        def io_fill(queue: Any) -> None:
            for _ in range(QUEUE_DEPTH):
                queue.put(VALUE)

        cases.append(
            ("iodict 0.0.8 DurableQueue", io_open, io_fill, "get", "scans the directory per get")
        )

    for name, opener, fill, get_name, note in cases:

        def setup(directory: Path, n: int, opener: Any = opener, fill: Any = fill) -> None:
            fill(opener(directory))

        def get_run(
            directory: Path, n: int, opener: Any = opener, get_name: str = get_name
        ) -> None:
            queue = opener(directory)
            take = getattr(queue, get_name)
            for _ in range(n):
                take()

        def put_run(directory: Path, n: int, opener: Any = opener, name: str = name) -> None:
            queue = opener(directory)
            put = queue.append if "Deque" in name else queue.put
            for _ in range(n):
                put(VALUE)

        gets.add(name, get_run, setup=setup, note=note)
        puts.add(name, put_run, note=note)
    return [gets, puts]


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [
            _set_workload(50, durable=True),
            _set_workload(300, durable=False),
            _get_workload(300),
            *_queue_workloads(10, 50),
        ]
    return [
        _set_workload(500, durable=True),
        _set_workload(3000, durable=False),
        _get_workload(3000),
        *_queue_workloads(50, 500),
    ]
