"""What the object-store suites share: the two backends, and real writer processes."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from persistkit.core import LocalObjectStore, ObjectStore
from persistkit.core.testing import S3Endpoint


@dataclass
class Backend:
    """One backend under test: a store, and how another process opens the same objects."""

    name: str
    store: ObjectStore
    location: str
    env: dict[str, str] = field(default_factory=dict)

    def process_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}


def local_backend(root: Path) -> Backend:
    return Backend("local", LocalObjectStore(root), str(root))


def s3_backend(server: S3Endpoint, bucket: str, prefix: str = "some/prefix") -> Backend:
    return Backend("s3", server.store(bucket, prefix), f"s3://{bucket}/{prefix}", server.env())


# A writer process: opens the location given, then runs one job on it.
WORKER = r"""
import sys, os, time
from persistkit.core import open_object_store, ConflictError, ObjectExistsError
from persistkit.core import StoreUnavailableError
location, job = sys.argv[1], sys.argv[2]
args = sys.argv[3:]
store = open_object_store(location)
print("ready", flush=True)
sys.stdin.readline()  # every worker starts at the same moment
if job == "create":
    won = []
    for key in args:
        try:
            store.put_if_absent(key, f"{key} {os.getpid()}".encode())
            won.append(key)
        except ObjectExistsError:
            pass
    print("won", " ".join(won), flush=True)
elif job == "count":
    key, times = args[0], int(args[1])
    conflicts = 0
    for _ in range(times):
        while True:
            current = store.get(key)
            value = int(current.data.split()[0]) + 1
            try:
                store.put_if_match(key, f"{value} {os.getpid()}".encode(), current.version)
                break
            except ConflictError:
                conflicts += 1
    print("conflicts", conflicts, flush=True)
"""


def start_workers(backend: Backend, count: int, *args: str) -> list[subprocess.Popen[str]]:
    """Start ``count`` real processes running WORKER, each ready and waiting for a go."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, backend.location, *args],
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
