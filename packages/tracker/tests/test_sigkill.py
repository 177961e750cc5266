"""SIGKILL a worker loop that marks tasks done, restart it, and count what was done.

The worker and the test talk through pipes: after each step the worker says what it did and
waits for "go", so the test kills it at an exact point (mid-task, or just after a task was
marked done) without any sleep.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import textwrap

import pytest

from persistkit.tracker import Tracker

WORKER = """
import sys
from persistkit.tracker import SharedTracker, Tracker
kind, path = sys.argv[1], sys.argv[2]
if kind == "plain":
    tracker = Tracker(path, max_tries=2, sync_at=1)
else:
    tracker = SharedTracker(path, max_tries=2)
def step(*words):
    print(*words, flush=True)
    sys.stdin.readline()
for key in tracker.try_keys():
    step("start", key)
    tracker.set[key]["result"] = key * key   # the task's output, stored with it
    tracker.mark_done(key)
    step("done", key)
print("finished", flush=True)
"""


def run_worker(kind, path, kill_at=None):
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WORKER), kind, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events = []
    counts = collections.Counter()
    for line in proc.stdout:
        words = line.split()
        events.append(words)
        if words == ["finished"]:
            break
        counts[words[0]] += 1
        if kill_at == (words[0], counts[words[0]]):
            proc.send_signal(signal.SIGKILL)
            break
        proc.stdin.write("go\n")
        proc.stdin.flush()
    proc.wait()
    proc.stdin.close()
    if kill_at is None:
        assert proc.returncode == 0, proc.stderr.read()
    else:
        assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()
    proc.stderr.close()
    return events


@pytest.mark.parametrize("kind", ["plain", "shared"])
@pytest.mark.parametrize("kill_at", [("start", 1), ("start", 6), ("done", 4)])
def test_sigkilled_worker_loses_no_done_task_and_respects_max_tries(tmp_path, kind, kill_at):
    path = tmp_path / "jobs.tracker"
    seed = Tracker(path, clone=False, file_size=8)
    seed.add_many(range(30))
    seed.close()

    first = run_worker(kind, path, kill_at=kill_at)
    second = run_worker(kind, path)
    assert second[-1] == ["finished"]

    reported_done = {int(key) for word, key in first if word == "done"}
    started_again = {int(key) for word, *key in second if word == "start" for key in key}
    starts = collections.Counter(
        int(key) for word, *key in first + second if word == "start" for key in key
    )
    # A task reported done before the kill is never started again...
    assert len(reported_done) == kill_at[1] - (kill_at[0] == "start")
    assert not reported_done & started_again
    # ...the task killed mid-way is retried, and nothing runs more than max_tries times.
    if kill_at[0] == "start":
        assert starts[int(first[-1][1])] == 2
    assert max(starts.values()) <= 2

    tracker = Tracker(path, clone=False, max_tries=2)
    assert tracker.num_done() == 30
    assert all(tracker[k]["result"] == k * k for k in range(30))
    assert all(tracker.tries(k) == starts[k] for k in range(30))
