"""persistkit.tracker on an object store: S3 on loopback against the tracker on a folder.

Workloads:

- mark_done + sync, one task per commit: in a tracker of 1,000 tasks, mark one task done and
  sync, ``n`` times. The tracker on a folder (durable: one journal append and one
  ``fdatasync``) is the baseline; the same tracker on a `LocalObjectStore` (durable: one
  object file per sync) and on S3 (SeaweedFS ``weed mini`` on 127.0.0.1: one PUT per sync).
- a four-worker job: 4 processes, each taking its own share of the tasks (``key % 4``),
  ``increment_tries``, ``mark_done`` and ``sync()`` per task (one record per task),
  on S3 through two gateways of a distributed SeaweedFS (two workers on each, as if on two
  machines; one master, three volume servers, two filers), on one ``weed mini``, and, as
  the baseline, a `SharedTracker` on a folder (4 processes of one machine, ``sync()`` after
  each change). A last case has every worker go through all the tasks and take each with
  ``should_try`` (``max_tries=1``: exactly one worker gets it, decided by a record) before
  ``mark_done`` and ``sync()``. The rate is tasks per second for the whole job.

Servers are started once for the run (outside the clock) and killed at the end. Every S3
figure includes boto3's cost and a loopback round trip per request, on a 2-core machine
that also runs the servers.
"""

from __future__ import annotations

import atexit
import os
import tempfile
from pathlib import Path
from typing import Any

import workers
from harness import Workload

from persistkit.core import LocalObjectStore
from persistkit.core.testing import (
    S3Endpoint,
    SeaweedCluster,
    SeaweedMini,
    ServerUnavailableError,
)
from persistkit.tracker import SharedTracker, Tracker

TASKS = 1_000
WORKERS = 4

_servers: dict[str, Any] = {}


def _server(kind: str) -> list[S3Endpoint]:
    """The gateways of a server started once for the run: ``mini`` or ``cluster``."""
    if kind not in _servers:
        folder = Path(tempfile.mkdtemp(prefix=f"persistkit-bench-{kind}-"))
        try:
            server = (
                SeaweedMini(folder).start() if kind == "mini" else SeaweedCluster(folder).start()
            )
        except ServerUnavailableError as reason:
            raise SystemExit(f"the S3 server cannot run here: {reason}") from None
        atexit.register(server.kill)
        _servers[kind] = server
    server = _servers[kind]
    return [server.endpoint] if kind == "mini" else list(server.endpoints)


def _s3_store(directory: Path, kind: str = "mini", gateway: int = 0) -> Any:
    endpoint = _server(kind)[gateway]
    bucket = _servers.setdefault(f"{kind}-bucket", endpoint.create_bucket())
    return endpoint.store(bucket, f"bench/{directory.parent.name}-{directory.name}")


def _location(directory: Path, kind: str) -> str:
    return f"s3://{_servers[kind + '-bucket']}/bench/{directory.parent.name}-{directory.name}"


def _openers() -> dict[str, Any]:
    return {
        "folder": lambda d: d / "tasks.tracker",
        "objects": lambda d: LocalObjectStore(d / "objects"),
        "s3": _s3_store,
    }


def _setup(kind: str) -> Any:
    def setup(directory: Path, _n: int) -> None:
        tracker = Tracker(_openers()[kind](directory))
        tracker.add_many(range(TASKS))
        tracker.close()

    return setup


def _mark_done(kind: str) -> Any:
    def run(directory: Path, n: int) -> None:
        tracker = Tracker(_openers()[kind](directory))
        tracker.increment_tries(0)  # the first sync pays the S3 backend's one-time probe
        tracker.sync()
        for i in range(n):
            tracker.mark_done(i % TASKS)
            tracker.sync()

    return run


WORKER = (
    r"""
import os, sys
kind, location, index, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if kind == "folder":
    from persistkit.tracker import SharedTracker
    tracker = SharedTracker(location)
else:
    from persistkit.tracker import Tracker
    tracker = Tracker(location, max_tries=1 if kind == "claims" else 0)
tracker.add_if_absent("probe")  # the first sync pays the S3 backend's one-time probe
tracker.sync()
claims = kind == "claims"
keys = [key for key in range(int(sys.argv[5])) if claims or key % count == index]
"""
    + workers.BEGIN
    + r"""
for key in keys:
    if claims:
        if tracker.done(key) or not tracker.should_try(key):
            continue
    else:
        tracker.increment_tries(key)
    tracker.mark_done(key)
    tracker.sync()
"""
    + workers.DONE
    + "sys.stdin.readline()\ntracker.close()\n"
)


def _job(kind: str) -> tuple[Any, Any]:
    def setup(directory: Path, n: int) -> None:
        if kind == "folder":
            location = str(directory / "tasks.tracker")
            tracker: Any = SharedTracker(location)
        else:
            server = "mini" if kind == "mini" else "cluster"
            tracker = Tracker(_s3_store(directory, server))
            location = _location(directory, server)
        tracker.add_many(range(n))
        tracker.close()
        gateways = [] if kind == "folder" else _server("mini" if kind == "mini" else "cluster")
        workers.start(
            directory,
            WORKER,
            [(kind, location, str(i), str(WORKERS), str(n)) for i in range(WORKERS)],
            envs=[
                {**os.environ, **(gateways[i % len(gateways)].env() if gateways else {})}
                for i in range(WORKERS)
            ],
        )

    def run(directory: Path, _n: int) -> None:
        # The clock stops at "done": closing (a checkpoint) happens outside it.
        workers.run(directory, then_exit=True)

    return setup, run


def workloads(quick: bool) -> list[Workload]:
    syncs = 100 if quick else 300
    single = Workload(
        f"tracker on an object store: mark_done + sync, one task per commit, {TASKS:,} tasks",
        syncs,
        "persistkit Tracker on a folder",
    )
    single.add(
        "persistkit Tracker on a folder",
        _mark_done("folder"),
        setup=_setup("folder"),
        note="durable",
    )
    single.add(
        "persistkit Tracker on LocalObjectStore",
        _mark_done("objects"),
        setup=_setup("objects"),
        note="durable; one object file per sync",
    )
    single.add(
        "persistkit Tracker on S3 (weed mini, loopback)",
        _mark_done("s3"),
        setup=_setup("s3"),
        note="one PUT per sync",
    )
    tasks = 100 if quick else 400
    job = Workload(
        f"tracker on an object store: {WORKERS} workers, increment_tries + mark_done + sync "
        "per task (tasks/s)",
        tasks,
        f"persistkit SharedTracker on a folder, {WORKERS} processes",
    )
    for kind, name, note in (
        ("folder", f"persistkit SharedTracker on a folder, {WORKERS} processes", "one machine"),
        ("mini", f"persistkit Tracker on S3, {WORKERS} workers, one weed mini", "loopback"),
        (
            "cluster",
            f"persistkit Tracker on S3, {WORKERS} workers on 2 gateways of a SeaweedFS cluster",
            "loopback; replication 001",
        ),
        (
            "claims",
            f"persistkit Tracker on S3, {WORKERS} workers on 2 gateways, all tasks, "
            "should_try(max_tries=1) claims",
            "each task done by one worker",
        ),
    ):
        setup, run = _job(kind)
        job.add(name, run, setup=setup, note=note)
    return [single, job]
