"""The persistkit demo: a resumable job that survives being killed at any moment.

The job digests N documents. Four persistkit packages share the work:

- spool (persistkit.spool): the work queue; each task is a message, claimed under a lease,
  so a worker that dies gives its task back;
- tracker (persistkit.tracker): which tasks are done, and the progress bar's numbers;
- iodict (persistkit.iodict): the results, one file per document;
- store (persistkit.store): the job's own record (when it was planned, every run).

By default the demo runs the job in a child process, kills it with SIGKILL part-way, starts
it again, lets it finish, and then checks that nothing was lost: every document has its
result, the tracker says 100 %, and the queue is empty. Run it with ``--workdir DIR`` to keep
the files and kill it yourself (Ctrl-C, ``kill -9``) as often as you like: each run picks up
where the last one stopped.

    python examples/demo.py [--workdir DIR] [--tasks N] [--no-kill]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from persistkit import store
from persistkit.iodict import IODict
from persistkit.spool import Spool
from persistkit.tracker import Tracker

LEASE_SECONDS = 1.0
BAR_WIDTH = 32


def digest(document: str) -> str:
    """The 'work': a deliberately slow, deterministic digest of one document."""
    value = document.encode()
    for _ in range(3000):
        value = hashlib.sha256(value).digest()
    return value.hex()


class Job:
    """The files of one job, all under ``workdir``."""

    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.queue = Spool(workdir / "queue", lease=LEASE_SECONDS, max_tries=10)
        # clone=False: a Job always reads the tracker from disk, even when this process opened
        # the same tracker before (another process may have moved it on since).
        self.progress = Tracker(str(workdir / "progress"), clone=False)
        self.results = IODict(str(workdir / "results"))
        self.record = store.open(workdir / "job.json", default={"planned": None, "runs": []})

    def plan(self, tasks: int) -> None:
        """Queue every task once; a run killed while planning simply plans again."""
        with self.record.transaction() as record:
            if record.value["planned"] is not None:
                return
        names = [f"doc-{i:05d}" for i in range(tasks)]
        self.progress.add_many_if_absent(names)
        self.progress.sync()
        for name in names:
            if not self.progress.done(name):
                self.queue.deliver(name)
        with self.record.transaction() as record:
            record.value["planned"] = time.strftime("%Y-%m-%d %H:%M:%S")

    def run(self, report_fd: int | None) -> None:
        """Work until every task is done; write one byte to ``report_fd`` per finished task."""
        with self.record.transaction() as record:
            record.value["runs"].append({"started": time.time(), "done_before": self.done()})
        while self.done() < self.total():
            message = self.queue.claim(timeout=LEASE_SECONDS * 3)
            if message is None:
                continue
            name = message.read_text()
            if not self.progress.done(name):
                self.results[name] = digest(name)
                self.progress.mark_done(name)
                self.progress.sync()
            self.queue.done(message)
            if report_fd is not None:
                os.write(report_fd, b".")
            show_bar(self.done(), self.total())
        with self.record.transaction() as record:
            record.value["runs"][-1]["finished"] = time.time()

    def done(self) -> int:
        return self.progress.progress().done

    def total(self) -> int:
        return self.progress.progress().total


def show_bar(done: int, total: int) -> None:
    """Draw the progress bar in place on a terminal; elsewhere, a line every 10 %."""
    filled = BAR_WIDTH * done // total if total else BAR_WIDTH
    line = f"  [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {100 * done / max(total, 1):5.1f} %  "
    line += f"{done}/{total}"
    if sys.stderr.isatty():
        sys.stderr.write("\r" + line + ("\n" if done == total else ""))
    elif total and (10 * done // total != 10 * (done - 1) // total or done == total):
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


def run_job(workdir: Path, tasks: int, report_fd: int | None) -> None:
    job = Job(workdir)
    job.plan(tasks)
    job.run(report_fd)


def run_child(workdir: Path, tasks: int, kill_after: int | None) -> bool:
    """Run the job in a child process; kill it with SIGKILL after ``kill_after`` tasks."""
    read_end, write_end = os.pipe()
    child = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--child",
            "--workdir",
            str(workdir),
            "--tasks",
            str(tasks),
            "--report-fd",
            str(write_end),
        ],
        pass_fds=(write_end,),
    )
    os.close(write_end)
    finished = 0
    killed = False
    with os.fdopen(read_end, "rb", buffering=0) as reports:
        while kill_after is None or finished < kill_after:
            chunk = reports.read(1)
            if not chunk:
                break
            finished += 1
        else:
            child.send_signal(signal.SIGKILL)
            killed = True
    child.wait()
    if not killed and child.returncode != 0:
        raise SystemExit(f"the job failed with exit status {child.returncode}")
    return killed


def verify(workdir: Path, tasks: int) -> None:
    job = Job(workdir)
    progress = job.progress.progress()
    missing = [f"doc-{i:05d}" for i in range(tasks) if f"doc-{i:05d}" not in job.results]
    wrong = [name for name, value in job.results.items() if value != digest(name)]
    waiting = job.queue.count("new") + job.queue.count("cur")
    runs = job.record.value["runs"]
    print(f"  results: {len(job.results)} documents, {len(missing)} missing, {len(wrong)} wrong")
    print(f"  tracker: {progress.done}/{progress.total} done ({job.progress.percent_done()})")
    print(f"  queue:   {waiting} messages waiting")
    print(
        f"  runs:    {len(runs)}, "
        + ", ".join(
            f"#{i + 1} started with {run['done_before']} done"
            + ("" if "finished" in run else " (killed)")
            for i, run in enumerate(runs)
        )
    )
    if missing or wrong or waiting or progress.done != tasks:
        raise SystemExit("FAILED: the job lost or corrupted work")
    print("OK: the job was killed, resumed, and finished with nothing lost.")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, help="keep the job here (default: a temp dir)")
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--no-kill", action="store_true", help="run once, without the SIGKILL")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--report-fd", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_job(args.workdir, args.tasks, args.report_fd)
        return 0
    temporary = args.workdir is None
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="persistkit-demo-"))
    print(f"persistkit demo: {args.tasks} documents in {workdir}", flush=True)
    try:
        if args.no_kill:
            run_job(workdir, args.tasks, None)
        else:
            kill_after = random.randint(args.tasks // 4, args.tasks // 2)
            print(f"run 1: will be killed with SIGKILL after {kill_after} documents", flush=True)
            if run_child(workdir, args.tasks, kill_after):
                print("  ... killed (SIGKILL).", flush=True)
            print("run 2: picks up where run 1 stopped", flush=True)
            run_child(workdir, args.tasks, None)
        verify(workdir, args.tasks)
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
