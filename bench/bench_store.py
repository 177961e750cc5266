"""persistkit.store against atomic_store 0.0.1 and the hand-written os-only protocol.

Workloads: commit of a small value (~100 B of JSON) and of a ~1 MiB JSON document, each
commit durable (file fsync, rename, directory fsync) in every case. The os-only baseline is
``json.dumps`` + temp + fsync + rename + directory fsync, written by hand.

The 1 MiB workload also measures the ways a store could get JSON into its temp file, through
core, so the choice made in ``persistkit.store`` can be checked:

- sliced (the store's way): ``json.dumps`` (C encoder) to one ``str``, written in 256 Ki-char
  UTF-8 slices: one encoded copy in memory (a one-slice document goes out in one write);
- bytes: ``json.dumps(...).encode()`` then ``write_bytes``: two encoded copies;
- iterencode: ``json.dump`` into the temp file: no copy, but the pure-Python encoder.

`extra_report` gives the peak memory each way allocates beyond the value itself.

The object-store workloads put the same small value in one object: on core's local backend
(durable) and on S3 (SeaweedFS on loopback, started by ``bench_objectstore``): a plain commit
(1 PUT), a transaction attempt (1 GET + 1 conditional PUT), and 16 threads, each with its own
store and connections, incrementing one counter with the transaction loop (the rate counts
committed increments; every lost compare-and-swap costs a re-read and a re-run). persidict
does not apply here: it is a dict (IODict's peer), its S3 write is the same one PUT as
``commit()``, and it has no read-modify-write transaction.
"""

from __future__ import annotations

import json
import platform
import threading
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import Workload, os_only_replace

from persistkit import store
from persistkit.core import LocalObjectStore, ObjectStore, write_bytes, write_value

WRITERS = 16

try:
    import atomic_store
except ImportError:  # the peer is installed by the bench session; without it, skip its case
    atomic_store = None


def small_value(i: int) -> dict[str, Any]:
    return {"run": i, "state": "running", "thought": "I would not eat green eggs and ham."}


def large_document(target: int = 1 << 20) -> dict[str, Any]:
    """A JSON document of about ``target`` bytes: records as an API or a job state would hold."""
    items: list[dict[str, Any]] = []
    document = {"version": 3, "items": items}
    size = 0
    i = 0
    while size < target:
        item = {
            "id": i,
            "name": f"item-{i:06d}",
            "tags": ["alpha", "beta", "gamma"][: i % 3 + 1],
            "score": i * 0.173,
            "done": i % 2 == 0,
            "owner": {"user": f"user{i % 97}", "group": None},
        }
        items.append(item)
        size += len(json.dumps(item)) + 2
        i += 1
    return document


def _os_only(value_at: Any) -> Any:
    def run(directory: Path, n: int) -> None:
        path = directory / "state.json"
        for i in range(n):
            os_only_replace(path, json.dumps(value_at(i)).encode(), sync=True)

    return run


def _store(value_at: Any) -> Any:
    def run(directory: Path, n: int) -> None:
        state = store.open(directory / "state.json", default=None)
        for i in range(n):
            state.value = value_at(i)
            state.commit()

    return run


def _store_transaction(value_at: Any) -> Any:
    def run(directory: Path, n: int) -> None:
        state = store.open(directory / "state.json", default=None)
        for i in range(n):
            with state.transaction():
                state.value = value_at(i)

    return run


def _atomic_store(value_at: Any) -> Any:
    def run(directory: Path, n: int) -> None:
        state = atomic_store.open(str(directory / "state.json"), default=None)
        for i in range(n):
            state.value = value_at(i)
            state.commit()

    return run


def _bytes_way(value_at: Any) -> Any:
    def run(directory: Path, n: int) -> None:
        path = directory / "state.json"
        for i in range(n):
            write_bytes(path, json.dumps(value_at(i)).encode())

    return run


def _iterencode_way(value_at: Any) -> Any:
    def run(directory: Path, n: int) -> None:
        path = directory / "state.json"
        for i in range(n):
            write_value(path, value_at(i), "json", stream=True)

    return run


def _documents() -> Any:
    document = large_document()

    def value_at(i: int) -> dict[str, Any]:
        document["version"] = i  # a new value per commit, without rebuilding 1 MiB
        return document

    return value_at


def workloads(quick: bool) -> list[Workload]:
    small = Workload("store: commit of a small value (durable)", 50 if quick else 500, "os-only")
    small.add("os-only", _os_only(small_value), note="json.dumps, temp, fsync, rename, dir fsync")
    small.add("persistkit.store", _store(small_value), note="store.commit()")
    small.add(
        "persistkit.store transaction()",
        _store_transaction(small_value),
        note="lock, re-read, commit, unlock",
    )
    if atomic_store is not None:
        small.add("atomic_store 0.0.1", _atomic_store(small_value), note="through atomicwrites")

    value_at = _documents()
    large = Workload(
        "store: commit of a ~1 MiB JSON document (durable)", 5 if quick else 40, "os-only"
    )
    large.add("os-only", _os_only(value_at), note="json.dumps, temp, fsync, rename, dir fsync")
    large.add("persistkit.store", _store(value_at), note="C encoder, str written in slices")
    large.add(
        "core write_bytes(dumps.encode())",
        _bytes_way(value_at),
        note="the other way considered: 2 encoded copies",
    )
    large.add(
        "core write_value(stream=True)",
        _iterencode_way(value_at),
        note="json.dump: pure-Python encoder",
    )
    if atomic_store is not None:
        large.add("atomic_store 0.0.1", _atomic_store(value_at), note="json.dump via atomicwrites")
    return [small, large, *_object_store_workloads(quick)]


def _object_openers() -> list[tuple[str, Callable[[Path], ObjectStore]]]:
    from bench_objectstore import s3, s3_endpoint  # the loopback S3 server, started once

    found: list[tuple[str, Callable[[Path], ObjectStore]]] = [
        ("LocalObjectStore (durable)", lambda d: LocalObjectStore(d / "objects")),
    ]
    if s3_endpoint() is not None:
        found.append(("S3 (SeaweedFS, loopback)", s3))
    return found


def _object_store_workloads(quick: bool) -> list[Workload]:
    commit = Workload(
        "store in an object store: commit of a small value", 50 if quick else 300, "file"
    )
    attempt = Workload(
        "store in an object store: transaction of a small value, one writer",
        50 if quick else 300,
        "file",
    )
    race = Workload(
        f"store in an object store: {WRITERS} writers, transaction loop on one counter",
        64 if quick else 160,
        "file",
        unit="increments/s",
    )
    commit.add("file", _store(small_value), note="store.open(path): temp, fsync, rename")
    attempt.add("file", _store_transaction(small_value), note="lock, re-read, commit")
    race.add("file", _file_race, note=f"{WRITERS} threads, flock")
    for name, opener in _object_openers():
        commit.add(name, _object_commit(opener), note="1 PUT")
        attempt.add(name, _object_transaction(opener), note="1 GET + 1 conditional PUT")
        race.add(
            name,
            _object_race,
            setup=lambda d, k, o=opener: _prepare_object_race(o, d),
            note=f"{WRITERS} threads, CAS, jittered backoff",
        )
    return [commit, attempt, race]


def _object_commit(opener: Callable[[Path], ObjectStore]) -> Any:
    def run(directory: Path, n: int) -> None:
        state = store.open(opener(directory), key="state.json", default=None)
        for i in range(n):
            state.value = small_value(i)
            state.commit()

    return run


def _object_transaction(opener: Callable[[Path], ObjectStore]) -> Any:
    def run(directory: Path, n: int) -> None:
        state = store.open(opener(directory), key="state.json", default=None)
        for i in range(n):
            for attempt in state.transaction():
                with attempt as current:
                    current.value = small_value(i)

    return run


def _increment_together(counters: list[store.AtomicStore[int]], n: int) -> None:
    start = threading.Barrier(len(counters))
    share = n // len(counters)

    def writer(counter: store.AtomicStore[int]) -> None:
        start.wait()
        for _ in range(share):
            for attempt in counter.transaction(attempts=10_000):
                with attempt as state:
                    state.value += 1

    threads = [threading.Thread(target=writer, args=(counter,)) for counter in counters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counters[0].reload() == share * len(counters)


def _file_race(directory: Path, n: int) -> None:
    path = directory / "counter.json"
    _increment_together([store.open(path, default=0) for _ in range(WRITERS)], n)


_prepared: dict[Path, list[store.AtomicStore[int]]] = {}


def _prepare_object_race(opener: Callable[[Path], ObjectStore], directory: Path) -> None:
    """Open the writers' stores (a boto3 client costs ~0.1 s to make) before the clock runs."""
    _prepared[directory] = [
        store.open(opener(directory), key="counter", default=0) for _ in range(WRITERS)
    ]


def _object_race(directory: Path, n: int) -> None:
    _increment_together(_prepared.pop(directory), n)


def _peak(operation: Any) -> int:
    tracemalloc.start()
    try:
        operation()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def extra_report(quick: bool) -> str:
    """Peak memory allocated while committing one ~8 MiB document, each way."""
    import tempfile

    document = large_document(8 << 20)
    encoded = len(json.dumps(document))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.json"
        state = store.open(path, default=document)
        ways = {
            "persistkit.store (sliced)": state.commit,
            "write_bytes(dumps.encode())": lambda: write_bytes(path, json.dumps(document).encode()),
            "write_value(stream=True)": lambda: write_value(path, document, "json", stream=True),
        }
        peaks = {name: _peak(way) for name, way in ways.items()}
        rows = [
            f"| {name} | {peak / (1 << 20):.1f} MiB | {peak / encoded:.2f}x |"
            for name, peak in peaks.items()
        ]
    return "\n".join(
        [
            "### store: peak memory of one commit of an ~8 MiB JSON document",
            "",
            f"Python {platform.python_version()}; encoded size {encoded / (1 << 20):.1f} MiB; "
            "tracemalloc peak during the commit, beyond the value itself. On 3.11 `json.dumps` "
            "itself peaks at 2x (it joins a list of pieces); from 3.12 at ~1.1x.",
            "",
            "| way | peak | of encoded size |",
            "|---|--:|--:|",
            *rows,
            "",
        ]
    )
