"""IODict on an object store (S3 on loopback) against IODict in a folder, and persidict.

The S3 server is SeaweedFS (``weed mini``) on 127.0.0.1, started once for the run (shared
with bench_objectstore); every S3 figure includes boto3's own cost and one loopback round
trip per request, so it shows requests per call far more than the server's speed: a real
S3 region is 10-50 ms per request. The folder IODict writes durably (its default: one
journal flush per set). persidict 0.309 (``BasicS3Dict``, the peer the object-store issue
names: a dict on S3 without insertion order) runs on the same server when installed.
Values are 100-byte strings; keys are distinct, so every set creates a key. The racing row
runs 8 threads, each with its own dict object (its own connections; for the folder, its own
handle on one folder), all taking births from one counter on S3.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from bench_objectstore import s3_endpoint
from harness import Workload

from persistkit.iodict import IODict

VALUE = "x" * 100
_bucket: dict[str, str] = {}


def _persidict() -> ModuleType | None:
    try:
        return importlib.import_module("persidict")
    except ImportError:
        return None


def _prefix(directory: Path) -> str:
    return f"iodict/{directory.parent.name}-{directory.name}"


def folder(directory: Path) -> Any:
    return IODict(directory / "dict")


def on_s3(directory: Path) -> Any:
    endpoint = s3_endpoint()
    assert endpoint is not None
    if "name" not in _bucket:
        _bucket["name"] = endpoint.create_bucket()
    store = endpoint.store(_bucket["name"], _prefix(directory))
    store.capabilities()  # the probe is a once-per-process cost, not a per-call one
    return IODict(store)


def persidict_on_s3(directory: Path) -> Any:
    endpoint = s3_endpoint()
    module = _persidict()
    assert endpoint is not None
    assert module is not None
    if "name" not in _bucket:
        _bucket["name"] = endpoint.create_bucket()
    os.environ.update(endpoint.env())  # persidict makes its client from the environment
    return module.BasicS3Dict(bucket_name=_bucket["name"], root_prefix=_prefix(directory))


Opener = Callable[[Path], Any]
_open: dict[Path, Any] = {}


def dicts() -> list[tuple[str, Opener, str]]:
    found: list[tuple[str, Opener, str]] = [("IODict, folder (durable)", folder, "journal")]
    if s3_endpoint() is not None:
        found.append(("IODict, S3 on loopback", on_s3, "insertion order kept"))
        if _persidict() is not None:
            found.append(("persidict BasicS3Dict, S3 on loopback", persidict_on_s3, "no order"))
    return found


def _opened(open_dict: Opener) -> Callable[[Path, int], None]:
    """Open the dict before the clock runs (boto3 clients cost ~0.1 s each to make)."""

    def setup(directory: Path, n: int) -> None:
        del n
        _open[directory] = open_dict(directory)

    return setup


def _filled(open_dict: Opener, keys: int) -> Callable[[Path, int], None]:
    def setup(directory: Path, n: int) -> None:
        del n
        store = open_dict(directory)
        if isinstance(store, IODict):
            store.update({f"key{i:06d}": VALUE for i in range(keys)})
        else:
            for i in range(keys):
                store[f"key{i:06d}"] = VALUE
        _open[directory] = store

    return setup


def _set(directory: Path, n: int) -> None:
    store = _open.pop(directory)
    for i in range(n):
        store[f"key{i:06d}"] = VALUE


def _get(directory: Path, n: int) -> None:
    store = _open.pop(directory)
    for i in range(n):
        assert store[f"key{i:06d}"] == VALUE


def _first(directory: Path, n: int) -> None:
    store = _open.pop(directory)
    for _ in range(n):
        if isinstance(store, IODict):
            assert next(iter(store)) == "key000000"
        else:  # persidict keeps no order: its oldest key by the objects' modification times
            assert store.oldest_keys(max_n=1)


WRITERS = 8


def _writers_ready(open_dict: Opener) -> Callable[[Path, int], None]:
    """Open each writer's dict (its own connections) before the clock runs."""

    def setup(directory: Path, n: int) -> None:
        del n
        first = open_dict(directory)
        _open[directory] = [first] + [open_dict(directory) for _ in range(WRITERS - 1)]

    return setup


def _racing_sets(directory: Path, n: int) -> None:
    stores = _open.pop(directory)
    start = threading.Barrier(WRITERS)

    def writer(index: int) -> None:
        start.wait()
        for i in range(index, n, WRITERS):
            stores[index][f"key{i:06d}"] = VALUE

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def workloads(quick: bool) -> list[Workload]:
    n = 40 if quick else 200
    size = 200 if quick else 1000
    found = dicts()
    # Ratios against IODict on S3: the folder is hundreds of times faster, persidict near.
    base = found[1][0] if len(found) > 1 else found[0][0]
    put = Workload("IODict on S3: set, 100 B, new keys", n, base)
    get = Workload("IODict on S3: get, 100 B", n, base)
    first = Workload(f"IODict on S3: first key of {size:,}", 10 if quick else 20, base)
    racing = Workload(f"IODict on S3: {WRITERS} writers setting new keys at once", 2 * n, base)
    for name, open_dict, note in found:
        put.add(name, _set, setup=_opened(open_dict), note=note)
        racing.add(name, _racing_sets, setup=_writers_ready(open_dict), note=f"{WRITERS} threads")
        get.add(name, _get, setup=_filled(open_dict, n), note=note)
        first.add(name, _first, setup=_filled(open_dict, size), note=note)
    return [put, get, first, racing]
