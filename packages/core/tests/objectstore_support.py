"""What the object-store suites share: the two backends, and real writer processes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from persistkit.core import ConflictError, LocalObjectStore, ObjectExistsError, ObjectStore
from persistkit.core.testing import S3Endpoint


@dataclass
class Backend:
    """One backend under test: a store, and how another writer opens the same objects.

    ``opener`` makes a fresh store with its own connections, for writer threads; None means
    writers must be processes (the local backend, whose lock is per process).
    """

    name: str
    store: ObjectStore
    location: str
    env: dict[str, str] = field(default_factory=dict)
    opener: Callable[[], ObjectStore] | None = None

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}


def local_backend(root: Path) -> Backend:
    return Backend("local", LocalObjectStore(root), str(root))


def s3_backend(server: S3Endpoint, bucket: str, prefix: str = "some/prefix") -> Backend:
    return Backend(
        "s3",
        server.store(bucket, prefix),
        f"s3://{bucket}/{prefix}",
        server.env(),
        lambda: server.store(bucket, prefix),
    )


def create_job(store: ObjectStore, keys: list[str], me: str) -> list[str]:
    won = []
    for key in keys:
        try:
            store.put_if_absent(key, f"{key} {me}".encode())
            won.append(key)
        except ObjectExistsError:
            pass
    return won


def count_job(store: ObjectStore, key: str, times: int, me: str) -> int:
    conflicts = 0
    for _ in range(times):
        while True:
            current = store.get(key)
            value = int(current.data.split()[0]) + 1
            try:
                store.put_if_match(key, f"{value} {me}".encode(), current.version)
                break
            except ConflictError:
                conflicts += 1
    return conflicts


def race(backends: list[Backend], writers: int, job: str, *args: str) -> list[str]:
    """Run ``job`` in ``writers`` writers spread over ``backends``, all starting at once.

    Writers are real processes for the local backend (its lock is per process) and threads,
    each with its own store and connections, for S3 (the server arbitrates; starting 16
    interpreters that import boto3 would only cost CPU). Returns each writer's last line.
    """
    spread = [backends[index % len(backends)] for index in range(writers)]
    if any(backend.opener is None for backend in spread):
        procs = [proc for backend in spread for proc in start_workers(backend, 1, job, *args)]
        return run_together(procs)
    stores = [backend.opener() for backend in spread if backend.opener is not None]
    for store in stores:
        store.capabilities()  # type: ignore[attr-defined] # S3 stores probe before the start
    start = threading.Barrier(writers)
    results: list[str] = [""] * writers
    errors: list[BaseException] = []

    def run(index: int) -> None:
        start.wait()
        try:
            if job == "create":
                results[index] = "won " + " ".join(
                    create_job(stores[index], list(args), str(index))
                )
            else:
                conflicts = count_job(stores[index], args[0], int(args[1]), str(index))
                results[index] = f"conflicts {conflicts}"
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for store in stores:
        store.close()
    assert not errors, errors
    return results


# A writer process: opens the location given, then runs one job on it.
WORKER = r"""
import os, sys
sys.path.insert(0, sys.argv[1])
from objectstore_support import count_job, create_job
from persistkit.core import open_object_store
location, job, args = sys.argv[2], sys.argv[3], sys.argv[4:]
store = open_object_store(location)
print("ready", flush=True)
sys.stdin.readline()  # every worker starts at the same moment
me = str(os.getpid())
if job == "create":
    print("won", " ".join(create_job(store, args, me)), flush=True)
else:
    print("conflicts", count_job(store, args[0], int(args[1]), me), flush=True)
"""
HERE = os.path.dirname(os.path.abspath(__file__))


def start_workers(backend: Backend, count: int, *args: str) -> list[subprocess.Popen[str]]:
    """Start ``count`` real processes running WORKER, each ready and waiting for a go."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, HERE, backend.location, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=backend.process_env(),
        )
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "ready\n"
    return procs


def run_together(procs: list[subprocess.Popen[str]]) -> list[str]:
    """Let every worker go at once; return each one's last line, after all have finished."""
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
        results.append(out.strip().splitlines()[-1])
    return results
