"""The persistkit demo: a job of many processes that is killed with SIGKILL and still finishes
with every task done exactly once.

The job computes a value for each of N tasks and keeps a running summary of the values.
Every persistkit package has a part in it:

- a spool (persistkit.spool) holds one message per task; worker **processes** (one per core,
  at least two) each claim a message under a lease, so the task of a worker that dies comes
  back to another worker when the lease runs out;
- a SharedTracker (persistkit.tracker) records each task's tries and when it is done, and
  feeds the progress bar;
- an IODict (persistkit.iodict) holds the results, one file per task;
- a DurableQueue (persistkit.iodict) carries each result to a collector process, which
  claims it and acknowledges it only once it is counted, so a collector that dies loses
  nothing;
- the collector keeps the running summary in a store file (persistkit.store), changed only
  inside ``transaction()``.

By default the demo kills the job itself: one worker with SIGKILL in the middle of a task,
then every process of the job at once (SIGKILL to its process group); it starts the job
again, lets it finish, and verifies the result. With ``--workdir DIR`` the files stay in DIR:
kill the demo yourself (Ctrl-C, ``kill -9`` of any of its processes or of all of them) as
often as you like and run the same command again; it resumes where it stopped.

What "exactly once" means here, as the verification checks it:

1. each task has exactly one result, and it is the right one: the results' keys are exactly
   the task names and each value equals a fresh computation of that task;
2. each result was counted exactly once: the summary's list of counted tasks holds every task
   once and nothing else, and its count, sum, minimum, maximum and histogram equal a
   summary recomputed from the results;
3. the tracker has every task done;
4. nothing is left over: no message in the spool (waiting, leased or dead), no item in the
   queue (waiting, leased or dead), no temporary file anywhere in the job's folder.

A task may be *worked on* more than once (a worker killed after computing it, a lease that ran
out); that is what makes the job safe to kill, and the summary shows how many duplicate
deliveries the collector recognised and ignored.

    python examples/demo.py [--workdir DIR] [--tasks N] [--workers N] [--no-kill]

Exit status: 0 when the verification passed, 1 when it found a problem (each one printed),
2 for a wrong command line, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persistkit import store
from persistkit.core import sweep
from persistkit.core.cli import live_progress, print_table
from persistkit.core.testing import leftovers
from persistkit.iodict import DurableQueue, IODict
from persistkit.spool import LeaseLostError, Spool
from persistkit.tracker import SharedTracker

LEASE_SECONDS = 3.0  # how long a dead worker's task waits before another worker takes it
MAX_TRIES = 1000  # a task is never set aside as poisonous here: every failure is a kill
HASH_ROUNDS = 5_000  # the "work": a few milliseconds of CPU per task
BATCH = 32  # results the collector counts in one transaction
POLL_SECONDS = 0.2
BUCKETS = 10

EMPTY_SUMMARY: dict[str, Any] = {
    "count": 0,
    "sum": 0,
    "min": None,
    "max": None,
    "histogram": [0] * BUCKETS,
    "counted": [],
    "duplicates": 0,
}
EMPTY_RECORD: dict[str, Any] = {"tasks": None, "planned": False, "runs": []}


def task_names(tasks: int) -> list[str]:
    """The job's task names."""
    return [f"task-{i:05d}" for i in range(tasks)]


def compute(name: str) -> int:
    """The work of one task: a slow, deterministic value in [0, 1000)."""
    value = name.encode()
    for _ in range(HASH_ROUNDS):
        value = hashlib.sha256(value).digest()
    return int.from_bytes(value[:4], "big") % 1000


def count_into(summary: dict[str, Any], task: str, value: int) -> bool:
    """Add one result to a summary unless it was counted before; return whether it was new."""
    if task in summary["counted"]:
        summary["duplicates"] += 1
        return False
    summary["counted"].append(task)
    summary["count"] += 1
    summary["sum"] += value
    summary["min"] = value if summary["min"] is None else min(summary["min"], value)
    summary["max"] = value if summary["max"] is None else max(summary["max"], value)
    bucket = min(max(value, 0) * BUCKETS // 1000, BUCKETS - 1)  # a wrong value counts too
    summary["histogram"][bucket] += 1
    return True


class Job:
    """The job's files, all under ``workdir``, opened by every process of the job."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.tasks = Spool(workdir / "tasks", lease=LEASE_SECONDS, max_tries=MAX_TRIES)
        self.progress = SharedTracker(str(workdir / "progress"))
        self.results = IODict(workdir / "results")
        self.handoff: DurableQueue[dict[str, Any]] = DurableQueue(
            workdir / "handoff", format="json"
        )
        self.summary = store.open(workdir / "summary.json", default=EMPTY_SUMMARY)
        self.record = store.open(workdir / "job.json", default=EMPTY_RECORD)

    def tasks_left(self) -> int:
        """Messages waiting or leased in the spool: tasks not finished yet."""
        return self.tasks.count("new") + self.tasks.count("cur")

    def retried(self) -> int:
        """How many tasks needed more than one try."""
        return sum(1 for task in self.progress.values() if task["_tries"] > 1)


# -- the processes of the job -----------------------------------------------------------


class Lifeline:
    """The read end of a pipe only the demo's main process writes to: it ends when that
    process dies, however it dies, and then the job's processes stop too."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def cut(self) -> bool:
        return bool(select.select([self.fd], [], [], 0)[0])


def report(fd: int, *words: str) -> None:
    # One write of less than PIPE_BUF bytes: lines of several processes never interleave.
    os.write(fd, (" ".join((str(os.getpid()), *words)) + "\n").encode())


def work(job: Job, lifeline: Lifeline, reports: int) -> None:
    """A worker: claim a task, compute it, record it, hand the result on, finish the task."""
    while not lifeline.cut():
        message = job.tasks.claim(timeout=POLL_SECONDS)
        if message is None:
            if job.tasks_left() == 0:
                return
            continue  # the tasks left are leased: wait until they come back or are done
        task = message.read_text()
        # should_try counts a try, atomically for every process; False: a worker that was
        # killed after finishing this task, before removing its message, had done it.
        if job.progress.should_try(task):
            report(reports, "working", task)
            value = compute(task)
            job.results[task] = value  # durable; doing it twice writes the same value
            job.handoff.put({"task": task, "value": value})  # durable
            job.progress.mark_done(task)
            job.progress.sync()  # durable before the message goes
        # Durable: the task is never handed out again. LeaseLostError: our lease ran out and
        # another worker took the task over; that worker finishes it.
        with contextlib.suppress(LeaseLostError):
            job.tasks.done(message)
        report(reports, "finished", task)


def collect(job: Job, lifeline: Lifeline, reports: int) -> None:
    """The collector: count each result into the summary once, then acknowledge it."""
    while not lifeline.cut():
        batch = []
        with contextlib.suppress(queue.Empty):
            batch.append(job.handoff.claim(timeout=POLL_SECONDS))
            while len(batch) < BATCH:
                batch.append(job.handoff.claim(block=False))
        if not batch:
            # Results are put before their task's message is removed, so once no task is
            # left every result is in the queue; once none is unfinished, all are counted.
            if job.tasks_left() == 0 and job.handoff.unfinished_tasks == 0:
                return
            continue
        with job.summary.transaction() as summary:
            new = sum(count_into(summary.value, c.item["task"], c.item["value"]) for c in batch)
        for claim in batch:
            claim.ack()  # after the commit: a collector killed in between counts it again,
        report(reports, "counted", str(new))  # and count_into recognises it


# -- the demo's main process ----------------------------------------------------------------


@dataclass
class Run:
    """One start of the job's processes, as the main process sees it."""

    anchor: subprocess.Popen[bytes]
    workers: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    collector: subprocess.Popen[bytes] | None = None
    holding: dict[int, str] = field(default_factory=dict)  # worker pid -> task it works on
    worker_kills: int = 0


class Demo:
    """Starts the job's processes in their own process group, watches them, kills them."""

    def __init__(self, workdir: Path, workers: int, bar: Any) -> None:
        self.workdir = workdir
        self.workers = workers
        self.bar = bar
        self.lifeline_read, self.lifeline_write = os.pipe()
        self.reports_read, self.reports_write = os.pipe()
        os.set_blocking(self.reports_read, False)
        self.pending = b""

    def spawn(self, role: str, run: Run) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--role",
                role,
                "--workdir",
                str(self.workdir),
                "--lifeline",
                str(self.lifeline_read),
                "--reports",
                str(self.reports_write),
            ],
            pass_fds=(self.lifeline_read, self.reports_write),
            process_group=run.anchor.pid,
        )

    def start(self) -> Run:
        # The anchor leads the process group and does nothing: the group outlives any of
        # the processes that do the work, and a single kill never ends it.
        anchor = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import os, sys; os.read(int(sys.argv[1]), 1)",
                str(self.lifeline_read),
            ],
            pass_fds=(self.lifeline_read,),
            process_group=0,
        )
        run = Run(anchor)
        for _ in range(self.workers):
            worker = self.spawn("worker", run)
            run.workers[worker.pid] = worker
        run.collector = self.spawn("collector", run)
        return run

    def read_reports(self, run: Run, timeout: float) -> list[int]:
        """Read what the workers said; return the workers that have just started a task."""
        if not select.select([self.reports_read], [], [], timeout)[0]:
            return []
        with contextlib.suppress(BlockingIOError):
            self.pending += os.read(self.reports_read, 65536)
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            pid, what, *rest = line.decode().split()
            if what == "working":
                run.holding[int(pid)] = rest[0]
            elif what == "finished":
                run.holding.pop(int(pid), None)
        return [pid for pid in run.holding if pid in run.workers]

    def check_children(self, run: Run) -> bool:
        """Replace processes killed from outside; return True once the job has finished."""
        for pid, worker in list(run.workers.items()):
            status = worker.poll()
            if status is None or status == 0:
                continue
            del run.workers[pid]
            run.holding.pop(pid, None)
            if status != -signal.SIGKILL:
                raise JobFailedError(f"a worker failed with exit status {status}")
            run.worker_kills += 1
            self.bar.log(f"  a worker was killed (pid {pid}); a new one takes its place")
            replacement = self.spawn("worker", run)
            run.workers[replacement.pid] = replacement
        assert run.collector is not None
        status = run.collector.poll()
        if status == -signal.SIGKILL:
            run.worker_kills += 1
            self.bar.log("  the collector was killed; a new one takes its place")
            run.collector = self.spawn("collector", run)
        elif status not in (None, 0):
            raise JobFailedError(f"the collector failed with exit status {status}")
        return all(p.poll() == 0 for p in [*run.workers.values(), run.collector])

    def kill_worker(self, run: Run, pid: int) -> str:
        """SIGKILL a worker; return the task it said it was working on."""
        os.kill(pid, signal.SIGKILL)
        # Reaped here so that the next check_children counts the kill even when a loaded
        # machine has not ended the process yet (the whole job may be killed right after).
        run.workers[pid].wait()
        return run.holding[pid]

    def kill_everything(self, run: Run) -> None:
        os.killpg(run.anchor.pid, signal.SIGKILL)
        self.reap(run)

    def reap(self, run: Run) -> None:
        for process in [*run.workers.values(), run.collector]:
            if process is not None:
                process.wait()
        if run.anchor.poll() is None:
            run.anchor.kill()
        run.anchor.wait()


class JobFailedError(Exception):
    """A process of the job failed by itself (not killed): a bug or a full disk."""


def clean_up_after_crashes(job: Job) -> int:
    """What a program does when it starts after a crash: remove what dead writers left.

    Only the demo's main process runs, so every temporary file in the folder is a dead
    writer's (``sweep`` also checks each one's lock). Returns how many were removed.
    """
    removed = len(job.tasks.clean(max_age=0, temp_min_age=0))
    for folder, _, _ in os.walk(job.workdir):
        removed += len(sweep(folder, min_age=0))
    return removed


def plan(job: Job, tasks: int) -> None:
    """Put every task into the tracker and the spool, once (a killed plan is planned again)."""
    with job.record.transaction() as record:
        if record.value["planned"]:
            if record.value["tasks"] != tasks:
                raise SystemExit(
                    f"{job.workdir} holds a job of {record.value['tasks']} tasks, "
                    f"not {tasks}: pass --tasks {record.value['tasks']} or another --workdir"
                )
            return
    names = task_names(tasks)
    job.progress.add_many_if_absent(names)
    job.progress.sync()
    # After a plan killed half-way, some messages are there twice: harmless, the worker that
    # gets the second finds the task done (and the collector counts each result once).
    job.tasks.deliver_many([name for name in names if not job.progress.done(name)])
    with job.record.transaction() as record:
        record.value.update(tasks=tasks, planned=True)


def run_job(demo: Demo, job: Job, *, kill_worker_at: int | None, kill_all_at: int | None) -> bool:
    """Run the job once; return False if it was killed (by ``kill_all_at``)."""
    swept = clean_up_after_crashes(job)
    with job.record.transaction() as record:
        record.value["runs"].append(
            {"started": time.time(), "finished": None, "worker_kills": 0, "swept": swept}
        )
    started, done_before = time.monotonic(), job.progress.progress().done
    run = demo.start()
    finished = False
    retried, recount_at, done = 0, 0.0, done_before
    try:
        while True:
            working = demo.read_reports(run, 0.1)
            if kill_worker_at is not None and done >= kill_worker_at and working:
                # At once, before anything else: the worker has only just started its task.
                task = demo.kill_worker(run, working[-1])
                when = "just as it finished" if job.progress.done(task) else "in the middle of"
                demo.bar.log(f"  SIGKILL to a worker {when} {task}")
                kill_worker_at = None
            finished = demo.check_children(run)
            done = job.progress.progress().done
            rate = (done - done_before) / max(time.monotonic() - started, 1e-9)
            if time.monotonic() >= recount_at:  # retried() reads every task: not too often
                retried, recount_at = job.retried(), time.monotonic() + 0.5
            demo.bar.update(done, rate=f"{rate:5.1f} tasks/s", retried=f"{retried} retried")
            if finished:
                break
            if kill_worker_at is None and kill_all_at is not None and done >= kill_all_at:
                demo.bar.log("  SIGKILL to every process of the job at once (its process group)")
                demo.kill_everything(run)
                return False
    finally:
        if not finished and run.anchor.poll() is None:
            demo.kill_everything(run)
        with job.record.transaction() as record:
            record.value["runs"][-1]["worker_kills"] = run.worker_kills
            if finished:
                record.value["runs"][-1]["finished"] = time.time()
    demo.reap(run)
    return True


# -- verification -------------------------------------------------------------------------


@dataclass
class Verification:
    """What the verification found."""

    failures: list[str]
    tasks: int
    retried: int
    duplicates: int
    runs: int
    kills: int
    swept: int

    @property
    def ok(self) -> bool:
        return not self.failures


def summarize(results: dict[str, int]) -> dict[str, Any]:
    """The summary the collector should have reached, recomputed from the results."""
    summary: dict[str, Any] = json.loads(json.dumps(EMPTY_SUMMARY))
    for task in sorted(results):
        count_into(summary, task, results[task])
    return summary


def verify(workdir: Path, tasks: int) -> Verification:
    """Check that every task was done exactly once and that nothing was left behind."""
    job = Job(workdir)
    failures: list[str] = []
    names = task_names(tasks)
    results = {str(key): value for key, value in job.results.items()}
    missing = sorted(set(names) - set(results))
    extra = sorted(set(results) - set(names))
    wrong = sorted(name for name in set(names) & set(results) if results[name] != compute(name))
    for what, found in (("missing", missing), ("unexpected", extra), ("wrong", wrong)):
        if found:
            failures.append(f"{len(found)} {what} result(s): {', '.join(found[:5])}")
    summary = job.summary.value
    counted = summary["counted"]
    if len(counted) != len(set(counted)):
        failures.append("the summary counted some tasks more than once")
    if set(counted) != set(names):
        failures.append(f"the summary counted {len(set(counted))} distinct tasks, not {tasks}")
    # A value that is not even a number is reported as wrong above, and left out here.
    expected = summarize({k: v for k, v in results.items() if type(v) is int})
    for key in ("count", "sum", "min", "max", "histogram"):
        if summary[key] != expected[key]:
            failures.append(f"summary {key} is {summary[key]}, the results give {expected[key]}")
    progress = job.progress.progress()
    if (progress.done, progress.total) != (tasks, tasks):
        failures.append(f"the tracker has {progress.done} of {progress.total} tasks done")
    for area in ("new", "cur", "dead"):
        if job.tasks.count(area):
            failures.append(f"the spool still holds {job.tasks.count(area)} message(s) in {area}/")
    if job.handoff.unfinished_tasks or job.handoff.dead_letters():
        failures.append(
            f"the queue still holds {job.handoff.unfinished_tasks} item(s) "
            f"and {len(job.handoff.dead_letters())} dead letter(s)"
        )
    temporary = leftovers(workdir, recursive=True)
    if temporary:
        failures.append(f"{len(temporary)} temporary file(s) left: {', '.join(temporary[:3])}")
    runs = job.record.value["runs"]
    return Verification(
        failures=failures,
        tasks=tasks,
        retried=job.retried(),
        duplicates=summary["duplicates"],
        runs=len(runs),
        kills=sum(run["worker_kills"] for run in runs)
        + sum(1 for run in runs if run["finished"] is None),
        swept=sum(run["swept"] for run in runs),
    )


# -- the command line -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, help="keep the job's files here, to resume")
    parser.add_argument("--tasks", type=int, default=240, help="how many tasks (default 240)")
    parser.add_argument(
        "--workers",
        type=int,
        default=max(2, os.cpu_count() or 1),
        help="worker processes (default: one per core, at least 2)",
    )
    parser.add_argument("--no-kill", action="store_true", help="do not kill anything yourself")
    parser.add_argument("--role", choices=["worker", "collector"], help=argparse.SUPPRESS)
    parser.add_argument("--lifeline", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--reports", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tasks < 1 or args.workers < 1:
        parser.error("--tasks and --workers must be at least 1")
    if args.role is not None:
        try:
            job = Job(args.workdir)
            role = work if args.role == "worker" else collect
            role(job, Lifeline(args.lifeline), args.reports)
        except BrokenPipeError:
            pass  # the main process is gone (its end of the report pipe closed): stop
        except OSError as error:  # a full disk, say: one line, the main process reports it
            print(f"{args.role} {os.getpid()}: {error}", file=sys.stderr, flush=True)
            # End as a crash would, without the exit hooks (the tracker's sync at exit would
            # only fail again): the job is built to survive crashes.
            os._exit(1)
        return 0
    with _workdir(args.workdir) as workdir:
        try:
            return demo(workdir, args.tasks, args.workers, kill=not args.no_kill, keep=args.workdir)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        except OSError as error:
            print(f"FAILED (in the main process): {error}", file=sys.stderr)
            return 1


@contextlib.contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="persistkit-demo-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def demo(workdir: Path, tasks: int, workers: int, *, kill: bool, keep: Path | None) -> int:
    """Run the demo in ``workdir``; return the exit status."""
    clock = time.monotonic()
    print(f"persistkit demo: {tasks} tasks, {workers} worker processes and a collector")
    print(f"  files in {workdir}" + ("" if keep else " (a temporary folder, removed at the end)"))
    job = Job(workdir)
    plan(job, tasks)
    remaining = tasks - job.progress.progress().done
    done_now = tasks - remaining
    with live_progress(tasks, label="tasks", fields=["rate", "retried"]) as bar:
        runner = Demo(workdir, workers, bar)
        bar.update(done_now)
        try:
            if remaining and kill:
                # One worker dies a fifth of the way in, everything half-way: then a restart.
                first = run_job(
                    runner,
                    job,
                    kill_worker_at=done_now + max(1, remaining // 5),
                    kill_all_at=done_now + max(2, remaining // 2),
                )
                if not first:
                    bar.log("  starting the job again: it resumes where it was killed")
                    run_job(runner, job, kill_worker_at=None, kill_all_at=None)
            elif remaining:
                run_job(runner, job, kill_worker_at=None, kill_all_at=None)
        except JobFailedError as error:
            bar.log(f"FAILED: {error}")
            return 1
        except KeyboardInterrupt:
            bar.log("  interrupted: every process of the job was killed (SIGKILL)")
            if keep is not None:
                bar.log(f"  run the same command again to resume: --workdir {keep}")
            return 130
    swept = clean_up_after_crashes(job)  # workers killed in the last run, if any
    if swept:
        with job.record.transaction() as record:
            record.value["runs"][-1]["swept"] += swept
    result = verify(workdir, tasks)
    print_table(
        [
            ["tasks", result.tasks],
            ["kills survived", result.kills],
            ["runs", result.runs],
            ["retried", result.retried],
            ["duplicates ignored", result.duplicates],
            ["debris swept", result.swept],
            ["time", f"{time.monotonic() - clock:.1f} s"],
        ],
        title="persistkit demo",
    )
    print(
        "  kills survived: SIGKILLs of a worker or of the whole job; retried: tasks worked on\n"
        "  more than once; duplicates ignored: results the collector got twice and counted\n"
        "  once; debris swept: temporary files of killed writers, removed on restart"
    )
    if result.failures:
        for failure in result.failures:
            print(f"FAILED: {failure}")
        return 1
    print(
        "OK: each task has one result, and the right one; each was counted once (the summary\n"
        "    equals one recomputed from the results); the tracker has every task done; the\n"
        "    spool and the queue are empty; no temporary file is left."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
