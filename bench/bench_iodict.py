"""persistkit-iodict's IODict against iodict 0.0.8, diskcache, sqlitedict and sqlite3.

Values are 100-byte strings; keys are distinct, so every set creates an item. Peers that
are not installed are left out of the tables (the bench session installs them all). The
queue (DurableQueue) is measured in bench_queue.py.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

from harness import Scratch, Workload, floor, os_only_replace

# The linkat that names an O_TMPFILE file: os.link cannot (core's docstring says why);
# syncfs, which the os module lacks before Python 3.14.
from persistkit.core._syscalls import link_open_file, syncfs
from persistkit.iodict import IODict

VALUE = "x" * 100
RAW = VALUE.encode()


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


def _publish_new(directory: Path, i: int) -> None:
    """Publish a new 100 B item with two xattrs as IODict does: one unnamed file, one link."""
    fd = os.open(directory, os.O_TMPFILE | os.O_WRONLY, 0o644)
    try:
        os.write(fd, RAW)
        os.setxattr(fd, "user.key", f"key{i}".encode())
        os.setxattr(fd, "user.pk.order", b"\0" * 12)
        link_open_file(fd, str(directory / hashlib.sha3_224(f"key{i}".encode()).hexdigest()))
    finally:
        os.close(fd)


# About how many 100 B sets fill the part of IODict's journal after which it checkpoints.
CHECKPOINT_EVERY = 1000


def _syncfs(directory: Path) -> None:
    """Write back and flush everything on the filesystem, as an IODict checkpoint does."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        syncfs(fd)
    finally:
        os.close(fd)


def _parts_workload(ops: int) -> Workload:
    """Whether "flush a record, then publish the item" can beat sqlite3 here: its parts, os-only."""
    baseline = "sqlite3 WAL + synchronous=FULL"
    workload = Workload("IODict durable set: the protocol's parts, os-only", ops, baseline)

    def publish_only(directory: Path, n: int) -> None:
        for i in range(n):
            _publish_new(directory, i)

    def flush_then_publish(directory: Path, n: int) -> None:
        floor(directory, n, after_each=lambda i: _publish_new(directory, i))

    def and_checkpoint(directory: Path, n: int) -> None:
        def publish(i: int) -> None:
            _publish_new(directory, i)
            if i % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1 or i == n - 1:
                _syncfs(directory)

        floor(directory, n, after_each=publish)

    def persistkit(directory: Path, n: int) -> None:
        store = IODict(directory / "store")
        for i in range(n):
            store[f"key{i}"] = VALUE

    workload.add(baseline, _sqlite_set, note="durable")
    workload.add("floor: 100 B overwrite + fdatasync", floor, note="the flush")
    workload.add("publish a new item, no flush", publish_only, note="O_TMPFILE, 2 xattrs, link")
    workload.add("flush, then publish", flush_then_publish, note="the protocol, os-only")
    workload.add(
        "flush, then publish; the items flushed every 1,000",
        and_checkpoint,
        note="the protocol and its checkpoint (syncfs), os-only",
    )
    workload.add("persistkit IODict (durable)", persistkit, note="the protocol, and the index")
    return workload


def workloads(quick: bool) -> list[Workload]:
    if quick:
        return [
            _set_workload(50, durable=True),
            _parts_workload(50),
            _set_workload(300, durable=False),
            _get_workload(300),
        ]
    return [
        _set_workload(500, durable=True),
        _parts_workload(1000),
        _set_workload(3000, durable=False),
        _get_workload(3000),
    ]


# -- at scale (issue 15) -------------------------------------------------------------------

SCALE_PROBE = r"""
import json, random, sys, time
def kib(field):
    # ru_maxrss can carry the parent's peak across fork+exec; /proc/self/status cannot.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))
def timed(step):
    start = time.perf_counter()
    result = step()
    return result, time.perf_counter() - start
kind, path, n, ops = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(7)
sample = [f"key{rng.randrange(n)}" for _ in range(ops)]
value = "x" * 100
if kind == "persistkit":
    from persistkit.iodict import IODict
    base = kib("VmRSS:")
    d, opened = timed(lambda: IODict(path, durability="atomic"))
    size, length = timed(lambda: len(d))
    first, first_key = timed(lambda: next(iter(d)))
    count, walked = timed(lambda: sum(1 for _ in d))
    rss = (kib("VmHWM:") - base) / 1024
    _, listed = timed(lambda: len(list(d)))
    _, got = timed(lambda: [d[key] for key in sample])
    _, found = timed(lambda: [key in d for key in sample])
    _, stored = timed(lambda: [d.__setitem__(key, value) for key in sample])
else:
    import sqlite3
    base = kib("VmRSS:")
    def connect():
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA synchronous=OFF")
        return db
    db, opened = timed(connect)
    query = db.execute
    size, length = timed(lambda: query("SELECT COUNT(*) FROM kv").fetchone()[0])
    first, first_key = timed(lambda: query("SELECT k FROM kv ORDER BY rowid LIMIT 1").fetchone()[0])
    count, walked = timed(lambda: sum(1 for _ in query("SELECT k FROM kv ORDER BY rowid")))
    rss = (kib("VmHWM:") - base) / 1024
    _, listed = timed(lambda: len([row[0] for row in query("SELECT k FROM kv ORDER BY rowid")]))
    _, got = timed(lambda: [query("SELECT v FROM kv WHERE k = ?", (k,)).fetchone() for k in sample])
    _, found = timed(
        lambda: [query("SELECT 1 FROM kv WHERE k = ?", (k,)).fetchone() is not None for k in sample]
    )
    _, stored = timed(
        lambda: [query("INSERT OR REPLACE INTO kv VALUES (?, ?)", (k, value)) for k in sample]
    )
assert size == count == n and first == "key0", (size, count, first)
each = [got / ops, found / ops, stored / ops]
print(json.dumps([opened, length, first_key, walked, listed, *each, rss]))
"""

REBUILD_PROBE = r"""
import sys, time
from persistkit.iodict import IODict
start = time.perf_counter()
store = IODict(sys.argv[1], durability="atomic")
store["rebuild-probe"] = 1  # the first write rebuilds the index on disk
elapsed = time.perf_counter() - start
del store["rebuild-probe"]
assert len(store) == int(sys.argv[2])
print(elapsed)
"""

_COLUMNS = ("open", "len", "first key", "iterate", "list", "get", "in", "set (no fsync)")


def _scale_sizes(quick: bool) -> list[int]:
    sizes = [10_000] if quick else [10_000, 100_000]
    if os.environ.get("PERSISTKIT_BENCH_IODICT_MILLION") == "1":
        sizes.append(1_000_000)
    return sizes


def _fill_scale(root: Path, n: int) -> tuple[Path, Path, float, float]:
    """Make the persistkit store and the sqlite3 database with the same n keys, once."""
    store_path, db_path = root / f"iodict-{n}", root / f"sqlite-{n}.db"
    start = time.perf_counter()
    store = IODict(store_path, durability="atomic")
    for begin in range(0, n, 1000):
        store.update((f"key{i}", VALUE) for i in range(begin, min(begin + 1000, n)))
    store.close()
    filled = time.perf_counter() - start
    start = time.perf_counter()
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO kv VALUES (?, ?)", ((f"key{i}", RAW) for i in range(n)))
    db.execute("COMMIT")
    db.close()
    return store_path, db_path, filled, time.perf_counter() - start


def _probe(kind: str, path: Path, n: int, ops: int) -> list[float]:
    out = subprocess.run(
        [sys.executable, "-c", SCALE_PROBE, kind, str(path), str(n), str(ops)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [float(x) for x in json.loads(out)]


def _rebuild_times(store_path: Path, n: int) -> tuple[float, float]:
    """A writer's rebuild after a foreign change (old index kept), and with no index."""

    def timed() -> float:
        out = subprocess.run(
            [sys.executable, "-c", REBUILD_PROBE, str(store_path), str(n)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return float(out)

    (store_path / "stray").write_bytes(b"")  # a foreign change: the index is stale
    (store_path / "stray").unlink()
    with_old = timed()
    index = store_path / ".persistkit-iodict.d"
    index.rename(store_path / "index-aside")
    alone = timed()
    shutil.rmtree(store_path / "index-aside")
    return with_old, alone


def _fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds * 1e6:.0f} µs"


def extra_report(quick: bool, scratch: Scratch | None = None) -> str:
    """IODict at 10k, 100k (and, opt-in, 1M) keys against sqlite3 with the same keys."""
    root = scratch.fresh() if scratch is not None else Path(tempfile.mkdtemp())
    repeats = 3
    ops = 200 if quick else 2000
    lines = [
        "### IODict at scale: a fresh process on a store of n keys, against sqlite3",
        "",
        f"Median of {repeats} interleaved runs, each in a fresh process (import excluded). "
        "get, in and set are per operation over "
        f"{ops} random existing keys; set overwrites without fsync (IODict "
        "durability='atomic', sqlite3 WAL + synchronous=OFF). RSS: growth of the process's "
        "peak resident memory from just after the import to the end of the iteration. The "
        "1,000,000-key rows need `PERSISTKIT_BENCH_IODICT_MILLION=1` (filling takes minutes).",
        "",
        "| keys | case | " + " | ".join(_COLUMNS) + " | RSS |",
        "|--:|---|" + "--:|" * (len(_COLUMNS) + 1),
    ]
    rebuilds = []
    fills = []
    for n in _scale_sizes(quick):
        store_path, db_path, filled, db_filled = _fill_scale(root, n)
        fills.append((n, filled, db_filled))
        results: dict[str, list[list[float]]] = {"persistkit IODict": [], "sqlite3": []}
        for _ in range(repeats):
            results["persistkit IODict"].append(_probe("persistkit", store_path, n, ops))
            results["sqlite3"].append(_probe("sqlite3", db_path, n, ops))
        medians = {
            case: [statistics.median(column) for column in zip(*runs, strict=True)]
            for case, runs in results.items()
        }
        for case, values in medians.items():
            cells = " | ".join(_fmt(value) for value in values[:-1])
            lines.append(f"| {n:,} | {case} | {cells} | {values[-1]:.0f} MiB |")
        ratios = [
            p / s if s else float("nan")
            for p, s in zip(medians["persistkit IODict"], medians["sqlite3"], strict=True)
        ]
        cells = " | ".join(f"{ratio:.2f}x" for ratio in ratios[:-1])
        lines.append(f"| {n:,} | time ratio (persistkit / sqlite3) | {cells} | |")
        rebuilds.append((n, *_rebuild_times(store_path, n)))
    lines += [
        "",
        "Rebuilding the order index (a writer's first write after the folder changed behind "
        "it, once; fresh process, import excluded), and filling the stores for this table:",
        "",
        "| keys | rebuild, old index kept | rebuild from the items alone | fill IODict "
        "(update() of 1000, no fsync) | fill sqlite3 (one transaction) |",
        "|--:|--:|--:|--:|--:|",
    ]
    for (n, with_old, alone), (_, filled, db_filled) in zip(rebuilds, fills, strict=True):
        lines.append(
            f"| {n:,} | {_fmt(with_old)} | {_fmt(alone)} | {_fmt(filled)} | {_fmt(db_filled)} |"
        )
    return "\n".join(lines) + "\n"
