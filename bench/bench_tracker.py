"""persistkit.tracker against stdlib sqlite3 and tastypy 0.0.3 (under Python 2.7).

Workloads (the same small JSON value, ``{"n": i, "s": "value"}``, under ``key<i>``):

- batched sets: ``n`` sets into a new store, then one commit. persistkit's POD is held
  (`hold`) and synced once, durably; sqlite3 (WAL, synchronous=FULL) runs one
  ``executemany`` in one transaction; tastypy is held and synced once (no fsync at all).
- per-key sync: in a store of 10,000 keys, set one key and sync, ``n`` times. persistkit
  commits durably (one journal record, one fdatasync); sqlite3 commits one transaction per
  set; tastypy's ``sync_key`` rewrites the 1000-key file in place without any fsync. The
  os-only line is the disk's floor: a hand-written durable replace of a 100-byte file.
- get after reopen: open a store of ``n`` keys and read every key.
- mark_done + sync, one key per commit: in a tracker of 10,000 tasks, mark one task done and
  sync, ``n`` times; against sqlite3 (one ``UPDATE`` per transaction, WAL, synchronous=FULL)
  and the floor (a 100-byte overwrite of one spot + ``fdatasync``).
- eight processes at once: 8 independent processes (started and opened before the clock
  starts), each marking its own share of the tasks done with a `SharedTracker`, ``sync()``
  after each; against 8 sqlite3 processes each running one ``UPDATE`` per transaction, and
  the single-process floor.
- four workers: 4 processes sharing one `SharedTracker`, each taking its share of the tasks
  with ``should_try`` then ``mark_done``, never calling ``sync()`` (the multi-process job the
  tracker exists for); against sqlite3 doing the same in WAL with synchronous=NORMAL (also
  crash-safe and not flushed per commit).

The four-worker and the 8-process workloads can also measure an earlier persistkit-tracker in
the same run: point ``PERSISTKIT_BENCH_OLD_TRACKER`` at its ``src`` folder (e.g. the tracker
before the journal: ``git archive acdbdfb packages/tracker/src | tar -x -C /tmp/old``, then
``/tmp/old/packages/tracker/src``). Its processes import it first; core is the current one,
unless the variable also names the earlier core's ``src`` (``os.pathsep``-separated, it is
their ``PYTHONPATH``).

tastypy runs only on Python 2: its cases drive one long-lived ``python2.7`` process over a
pipe (started outside the timed region; each timed run is one command and its reply). If
Python 2.7 or tastypy is missing its cases are left out and the report says so.

`extra_report` measures what does not fit a rate: the time and memory to open a
1,000,000-task tracker, and the cost of a sync of 10 changed keys in stores of 10,000 and
1,000,000 keys (it must not grow with the store).
"""

from __future__ import annotations

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
from typing import Any

import workers
from harness import Workload, floor, os_only_replace

from persistkit.tracker import POD, Tracker

PYTHON2 = os.environ.get("PERSISTKIT_PYTHON2", "/root/.pyenv/versions/2.7.18/bin/python2.7")
# Where `nox -s bench` installs tastypy for Python 2 (a --target folder, so the system's
# Python 2 is left alone); only the Python 2 child sees it.
PYTHON2_PATH = os.environ.get("PERSISTKIT_PYTHON2_PATH", "")
PER_KEY_STORE = 10_000
TASKS = 10_000
PROCESSES = 8
WORKERS = 4
PAYLOAD = b"j" * 100
OLD_TRACKER = os.environ.get("PERSISTKIT_BENCH_OLD_TRACKER", "")


def value(i: int) -> dict[str, Any]:
    return {"n": i, "s": "value"}


# -- tastypy, driven in a Python 2 process --------------------------------------------------

TASTYPY_SERVER = r"""
import json, sys, time
import tastypy

def value(i):
    return {"n": i, "s": "value"}

def batched_sets(path, n):
    pod = tastypy.POD(path)
    pod.hold()
    for i in range(n):
        pod["key%d" % i] = value(i)
    pod.sync()
    forget(path)

def fill(path, n):
    batched_sets(path, n)

def per_key_sync(path, n):
    pod = tastypy.POD(path)
    for i in range(n):
        key = "key%d" % ((i * 7919) % 10000)
        pod[key] = value(-i)
        pod.sync_key(key)
    forget(path)

def forget(path):
    # tastypy keeps every store it opened in a class-level registry and, despite its
    # documentation, clone=False on a registered path does not read the files at all.
    # Dropping the entry makes the next open a real one.
    path = tastypy.normalize_path(path)
    tastypy.PersistentOrderedDict._SHARED_POD_STATE.pop(path, None)
    tastypy.ProgressTracker._SHARED_TRACKER_STATE.pop(path, None)

def reopen_get(path, n):
    forget(path)
    pod = tastypy.POD(path)
    for i in range(n):
        pod["key%d" % i]
    forget(path)

def open_only(path, n):
    forget(path)
    start = time.time()
    tastypy.Tracker(path)
    elapsed = time.time() - start
    forget(path)
    return elapsed

OPS = {"batched_sets": batched_sets, "fill": fill, "per_key_sync": per_key_sync,
       "reopen_get": reopen_get, "open_only": open_only}
sys.stdout.write("ready\n")
sys.stdout.flush()
for line in iter(sys.stdin.readline, ""):
    op, path, n = json.loads(line)
    result = OPS[op](path, n)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
"""


class Tastypy:
    """A Python 2.7 process with tastypy imported, answering one command per line."""

    _proc: subprocess.Popen[str] | None = None
    missing: str | None = None

    @classmethod
    def available(cls) -> bool:
        if cls._proc is None and cls.missing is None:
            try:
                proc = subprocess.Popen(
                    [PYTHON2, "-c", TASTYPY_SERVER],
                    env={**os.environ, "PYTHONPATH": PYTHON2_PATH} if PYTHON2_PATH else None,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            except OSError as error:
                cls.missing = f"no Python 2.7 at {PYTHON2} ({error})"
                return False
            assert proc.stdout is not None
            assert proc.stderr is not None
            if proc.stdout.readline() != "ready\n":
                cls.missing = "tastypy does not import under Python 2.7: " + proc.stderr.read()
                return False
            cls._proc = proc
        return cls._proc is not None

    @classmethod
    def call(cls, op: str, path: Path, n: int) -> Any:
        proc = cls._proc
        assert proc is not None
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(json.dumps([op, str(path), n]) + "\n")
        proc.stdin.flush()
        reply = proc.stdout.readline()
        if not reply:
            raise RuntimeError("the tastypy process died")
        return json.loads(reply)


# -- sqlite3 ---------------------------------------------------------------------------------


def sqlite_open(directory: Path) -> sqlite3.Connection:
    db = sqlite3.connect(directory / "kv.sqlite", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT)")
    return db


def sqlite_batched(directory: Path, n: int) -> None:
    db = sqlite_open(directory)
    db.execute("BEGIN")
    db.executemany(
        "INSERT OR REPLACE INTO kv VALUES (?, ?)",
        ((f"key{i}", json.dumps(value(i))) for i in range(n)),
    )
    db.execute("COMMIT")
    db.close()


def sqlite_fill(directory: Path, n: int) -> None:
    sqlite_batched(directory, n)


def sqlite_per_key(directory: Path, n: int) -> None:
    db = sqlite_open(directory)
    for i in range(n):
        db.execute(
            "INSERT OR REPLACE INTO kv VALUES (?, ?)",
            (f"key{(i * 7919) % PER_KEY_STORE}", json.dumps(value(-i))),
        )
    db.close()


def sqlite_reopen_get(directory: Path, n: int) -> None:
    db = sqlite_open(directory)
    for i in range(n):
        (text,) = db.execute("SELECT value FROM kv WHERE key = ?", (f"key{i}",)).fetchone()
        json.loads(text)
    db.close()


# -- persistkit ------------------------------------------------------------------------------


def pod_batched(directory: Path, n: int) -> None:
    pod = POD(directory / "store.pod", clone=False)
    pod.hold()
    for i in range(n):
        pod[f"key{i}"] = value(i)
    pod.close()


def pod_batched_default(directory: Path, n: int) -> None:
    pod = POD(directory / "store.pod", clone=False)
    for i in range(n):
        pod[f"key{i}"] = value(i)
    pod.close()


def pod_fill(directory: Path, n: int) -> None:
    pod_batched(directory, n)


def pod_per_key(directory: Path, n: int) -> None:
    pod = POD(directory / "store.pod", clone=False)
    for i in range(n):
        key = f"key{(i * 7919) % PER_KEY_STORE}"
        pod[key] = value(-i)
        pod.sync_key(key)
    pod.close()


def pod_reopen_get(directory: Path, n: int) -> None:
    pod = POD(directory / "store.pod", clone=False)
    for i in range(n):
        pod[f"key{i}"]
    pod.close()


def os_only_per_key(directory: Path, n: int) -> None:
    path = directory / "value.json"
    for i in range(n):
        os_only_replace(path, json.dumps(value(i)).encode().ljust(100), sync=True)


# -- one durable commit per task, one process and many ---------------------------------------


def sqlite_tasks_setup(directory: Path, _n: int) -> None:
    db = sqlite_open(directory)
    db.execute("CREATE TABLE tasks (key INTEGER PRIMARY KEY, done INT, tries INT)")
    db.executemany("INSERT INTO tasks VALUES (?, 0, 0)", ((i,) for i in range(TASKS)))
    db.close()


def sqlite_mark_done(directory: Path, n: int) -> None:
    db = sqlite_open(directory)
    for i in range(n):
        db.execute("UPDATE tasks SET done = 1 WHERE key = ?", (i,))
    db.close()


def tracker_setup(directory: Path, _n: int) -> None:
    _make_tracker(directory / "tasks.tracker", TASKS)


def tracker_mark_done(directory: Path, n: int) -> None:
    tracker = Tracker(directory / "tasks.tracker", clone=False)
    for i in range(n):
        tracker.mark_done(i)
        tracker.sync()
    tracker.close()


WORKER = (
    r"""
import sqlite3, sys
kind, path, index, count, stride = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
keys = range(index, count * stride, stride)
if kind == "sqlite-done":
    db = sqlite3.connect(path, isolation_level=None, timeout=600)
    db.execute("PRAGMA synchronous=FULL")
    def work():
        for key in keys:
            db.execute("UPDATE tasks SET done = 1 WHERE key = ?", (key,))
elif kind == "sqlite-tasks":
    db = sqlite3.connect(path, isolation_level=None, timeout=600)
    db.execute("PRAGMA synchronous=NORMAL")
    def work():
        for key in keys:
            db.execute("BEGIN IMMEDIATE")
            (done, tries) = db.execute(
                "SELECT done, tries FROM tasks WHERE key = ?", (key,)).fetchone()
            if not done and tries < 3:
                db.execute("UPDATE tasks SET tries = tries + 1 WHERE key = ?", (key,))
            db.execute("COMMIT")
            db.execute("UPDATE tasks SET done = 1 WHERE key = ?", (key,))
else:
    from persistkit.tracker import SharedTracker
    tracker = SharedTracker(path, max_tries=3)
    if kind == "tracker-done":
        def work():
            for key in keys:
                tracker.mark_done(key)
                tracker.sync()
    else:
        def work():
            for key in keys:
                if tracker.should_try(key):
                    tracker.mark_done(key)
"""
    + workers.BEGIN
    + "work()\n"
    + workers.DONE
    + "sys.stdin.readline()\n"
)

_commits_per_flush: dict[str, list[float]] = {}
_cpu = workers.CpuPerOp()


def _old_env() -> dict[str, str]:
    """The environment of a process that imports the earlier tracker first."""
    return {**os.environ, "PYTHONPATH": OLD_TRACKER}


def _record_group_commit(case: str, directory: Path) -> None:
    journal_path = directory / "tasks.tracker" / "persistkit-tracker.journal"
    if not journal_path.exists():
        return  # a tracker without a journal (before persistkit 0.2)
    from persistkit.core import Journal

    with Journal(journal_path) as journal:
        stats = journal.stats()
    _commits_per_flush.setdefault(case, []).append(stats.records / max(stats.flushes, 1))


OLD_SETUP = """
import sys
from persistkit.tracker import Tracker
tracker = Tracker(sys.argv[1], clone=False)
tracker.hold()
tracker.add_many(range(int(sys.argv[2])))
tracker.close()
"""


def _workers(kind: str, count: int, *, old: bool = False) -> tuple[Any, Any]:
    sqlite = kind.startswith("sqlite")

    def setup(directory: Path, n: int) -> None:
        if sqlite:
            sqlite_tasks_setup(directory, n)
        elif old:
            # The earlier tracker may not read a store the current one wrote.
            subprocess.run(
                [sys.executable, "-c", OLD_SETUP, str(directory / "tasks.tracker"), str(TASKS)],
                env=_old_env(),
                check=True,
            )
        else:
            tracker_setup(directory, n)
        target = directory / ("kv.sqlite" if sqlite else "tasks.tracker")
        workers.start(
            directory,
            WORKER,
            [(kind, str(target), str(i), str(n // count), str(count)) for i in range(count)],
            env=_old_env() if old else None,
        )

    def run(directory: Path, n: int) -> None:
        # The clock stops at "done": closing (a checkpoint of the shards) happens outside it.
        cpu = workers.run(directory, then_exit=True)
        processes = f"{count} process{'es' if count > 1 else ''}"
        case = f"{kind}{' (before the journal)' if old else ''}, {processes}"
        _cpu.add(case, cpu, n // count * count)
        if not sqlite and not old:
            _record_group_commit(f"{kind}, {processes}", directory)

    return setup, run


def workloads(quick: bool) -> list[Workload]:
    sets = 20_000 if quick else 200_000
    syncs = 100 if quick else 1000
    gets = 20_000 if quick else 200_000
    have_tastypy = Tastypy.available()

    batched = Workload("tracker: batched sets, one commit at the end", sets, "sqlite3")
    batched.add("persistkit POD", pod_batched, note="held, one durable sync")
    batched.add(
        "persistkit POD (sync_at=1000)",
        pod_batched_default,
        note="the default: a durable sync per 1000 new keys",
    )
    batched.add("sqlite3", sqlite_batched, note="WAL, synchronous=FULL, one transaction")
    if have_tastypy:
        batched.add(
            "tastypy (py2.7)",
            lambda d, n: Tastypy.call("batched_sets", d / "store.pod", n),
            note="held, one sync; never fsyncs",
        )

    per_key = Workload(
        f"tracker: set one key and sync it, in a store of {PER_KEY_STORE:,} keys",
        syncs,
        "os-only",
    )
    per_key.add("os-only", os_only_per_key, note="hand-written durable replace of 100 B")
    per_key.add(
        "persistkit POD",
        pod_per_key,
        setup=lambda d, n: pod_fill(d, PER_KEY_STORE),
        note="durable; one journal record",
    )
    per_key.add(
        "sqlite3",
        sqlite_per_key,
        setup=lambda d, n: sqlite_fill(d, PER_KEY_STORE),
        note="one transaction per set",
    )
    if have_tastypy:
        per_key.add(
            "tastypy (py2.7)",
            lambda d, n: Tastypy.call("per_key_sync", d / "store.pod", n),
            setup=lambda d, n: Tastypy.call("fill", d / "store.pod", PER_KEY_STORE),
            note="sync_key: rewrites 1000 keys in place, no fsync",
        )

    reopen = Workload("tracker: open a store and get every key", gets, "sqlite3")
    reopen.add("persistkit POD", pod_reopen_get, setup=pod_fill)
    reopen.add("sqlite3", sqlite_reopen_get, setup=sqlite_fill)
    if have_tastypy:
        reopen.add(
            "tastypy (py2.7)",
            lambda d, n: Tastypy.call("reopen_get", d / "store.pod", n),
            setup=lambda d, n: Tastypy.call("fill", d / "store.pod", n),
        )
    done_name = "sqlite3, one UPDATE per transaction"
    mark_done = Workload(
        f"tracker: mark_done + sync, one key per commit, {TASKS:,} tasks", syncs, done_name
    )
    mark_done.add(done_name, sqlite_mark_done, setup=sqlite_tasks_setup, note="WAL, FULL")
    mark_done.add("floor: 100 B overwrite + fdatasync", floor, note="os-only, one spot")
    mark_done.add("persistkit Tracker", tracker_mark_done, setup=tracker_setup, note="durable")

    many_name = f"sqlite3, {PROCESSES} processes, one UPDATE per transaction"
    many = Workload(
        f"tracker: mark_done + sync in {PROCESSES} processes, and SharedTracker in 1, 2 and 4 "
        "(total)",
        4 * syncs,
        many_name,
    )
    setup, run = _workers("sqlite-done", PROCESSES)
    many.add(many_name, run, setup=setup, note="WAL, FULL")
    setup, run = _workers("tracker-done", PROCESSES)
    many.add(f"persistkit SharedTracker, {PROCESSES} processes", run, setup=setup)
    # How a SharedTracker's rate and CPU move with the processes sharing it (and its lock).
    for count in (1, 2, 4):
        setup, run = _workers("tracker-done", count)
        plural = "es" if count > 1 else ""
        many.add(f"persistkit SharedTracker, {count} process{plural}", run, setup=setup)
    if OLD_TRACKER:
        setup, run = _workers("tracker-done", PROCESSES, old=True)
        many.add("the earlier SharedTracker", run, setup=setup, note=OLD_TRACKER)
    many.add("floor, one process: 100 B overwrite + fdatasync", floor)

    tasks_name = f"sqlite3, {WORKERS} processes"
    per_task = Workload(
        f"tracker: {WORKERS} workers, should_try + mark_done per task, no sync (tasks/s)",
        2 * syncs,
        tasks_name,
    )
    setup, run = _workers("sqlite-tasks", WORKERS)
    per_task.add(tasks_name, run, setup=setup, note="WAL, synchronous=NORMAL")
    setup, run = _workers("tracker-tasks", WORKERS)
    per_task.add(f"persistkit SharedTracker, {WORKERS} processes", run, setup=setup)
    if OLD_TRACKER:
        setup, run = _workers("tracker-tasks", WORKERS, old=True)
        per_task.add("the earlier SharedTracker", run, setup=setup, note=OLD_TRACKER)
    return [batched, per_key, reopen, mark_done, many, per_task]


# -- what does not fit a rate ----------------------------------------------------------------

OPEN_PROBE = """
import sys, time
def kib(field):
    # ru_maxrss can carry the parent's peak across fork+exec; /proc/self/status cannot.
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field))
before = kib("VmRSS:")
start = time.perf_counter()
from persistkit.tracker import Tracker
tracker = Tracker(sys.argv[1], clone=False)
opened = time.perf_counter() - start
after = kib("VmHWM:")
start = time.perf_counter()
progress = tracker.progress()
counted = time.perf_counter() - start
print(opened, (after - before) / 1024, counted, len(tracker))
"""


def _make_tracker(path: Path, tasks: int) -> None:
    tracker = Tracker(path, clone=False)
    tracker.hold()
    tracker.add_many(range(tasks))
    tracker.close()


def _sync_costs(paths: dict[str, Path], tasks: dict[str, int], rounds: int) -> dict[str, float]:
    """Median seconds of a durable sync after changing 10 keys spread over each store.

    The stores take turns, round by round, so drift of the disk hits both alike.
    """
    trackers = {name: Tracker(path, clone=False) for name, path in paths.items()}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for round_ in range(rounds + 1):
        for name, tracker in trackers.items():
            step = tasks[name] // 10
            for k in range(10):
                tracker.increment_tries(k * step + round_)
            start = time.perf_counter()
            tracker.sync()
            if round_:  # the first round warms the page cache
                times[name].append(time.perf_counter() - start)
    for tracker in trackers.values():
        tracker.close()
    return {name: statistics.median(values) for name, values in times.items()}


def extra_report(quick: bool) -> str:
    big = 100_000 if quick else 1_000_000
    rounds = 10 if quick else 30
    lines = ["### tracker: opening a large tracker, and a sync's cost against store size", ""]
    root = Path(tempfile.mkdtemp(prefix="persistkit-bench-tracker-"))
    try:
        big_path = root / "big.tracker"
        small_path = root / "small.tracker"
        _make_tracker(big_path, big)
        _make_tracker(small_path, 10_000)
        opens = []
        for _ in range(3):
            out = subprocess.run(
                [sys.executable, "-c", OPEN_PROBE, str(big_path)],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            opens.append((float(out[0]), float(out[1]), float(out[2]), int(out[3])))
        opened, memory, counted, count = min(opens)
        assert count == big
        lines += [
            f"- open a {big:,}-task tracker (persistkit, Python {sys.version.split()[0]}): "
            f"**{opened:.2f} s** (best of 3, fresh process, import included), "
            f"max RSS grows by **{memory:.0f} MiB**; first `progress()` (counts every task) "
            f"{counted:.2f} s, later calls O(1).",
        ]
        if Tastypy.available():
            # The very files persistkit wrote: tastypy reads them as its own.
            tastypy_open = min(Tastypy.call("open_only", big_path, 0) for _ in range(3))
            lines.append(
                f"- tastypy 0.0.3 (Python 2.7) opens the same tracker (the files persistkit "
                f"wrote) in {tastypy_open:.2f} s (best of 3, import excluded)."
            )
        costs = _sync_costs(
            {"small": small_path, "big": big_path}, {"small": 10_000, "big": big}, rounds
        )
        small_cost, big_cost = costs["small"], costs["big"]
        lines += [
            f"- durable sync of 10 changed keys (10 shards of 1000): "
            f"**{small_cost * 1000:.1f} ms** at 10,000 keys, "
            f"**{big_cost * 1000:.1f} ms** at {big:,} keys "
            f"(median of {rounds}; ratio {big_cost / small_cost:.2f}x).",
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if Tastypy.missing:
        lines.append(f"- tastypy cases left out: {Tastypy.missing}")
    return "\n".join(lines) + "\n" + brief_report(quick)


def brief_report(quick: bool) -> str:
    """The commits per flush group commit achieved in the multi-process workloads."""
    del quick
    if not _commits_per_flush:
        return ""
    lines = ["", "Group commit in the multi-process cases (journal records / fdatasyncs):", ""]
    lines += ["| case | commits per flush |", "|---|--:|"]
    for case, ratios in _commits_per_flush.items():
        lines.append(f"| {case} | {statistics.median(ratios):.2f} |")
    lines += _cpu.report("multi-process workloads", "operation")
    return "\n".join(lines) + "\n"
