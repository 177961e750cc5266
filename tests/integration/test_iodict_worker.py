"""examples/iodict_worker.py, killed with SIGKILL again and again, loses no job."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from persistkit.iodict import DurableQueue, IODict

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "iodict_worker.py"
JOBS = 200


def _start(workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(EXAMPLE), str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the workers die with it
    )


def test_killed_again_and_again_every_job_has_its_result(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    rng = random.Random(11)
    acked: Counter[int] = Counter()
    kills = 0
    # Fewer kills than max_tries (5): no job can be set aside for failing too often.
    for _ in range(4):
        run = _start(workdir)
        assert run.stdout is not None
        wait_for = rng.randint(1, 60)
        seen = 0
        for line in run.stdout:
            if line.startswith("done "):
                acked[int(line.split()[1])] += 1
                seen += 1
                if seen == wait_for:
                    os.killpg(run.pid, signal.SIGKILL)
                    break
        run.stdout.close()
        run.wait()
        if run.returncode == -signal.SIGKILL:
            kills += 1
    assert kills >= 3
    final = subprocess.run(
        [sys.executable, str(EXAMPLE), str(workdir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    for line in final.stdout.splitlines():
        if line.startswith("done "):
            acked[int(line.split()[1])] += 1
    assert final.stdout.rstrip().endswith(f"{JOBS} results; 0 jobs left; 0 dead")
    results = IODict(workdir / "results")
    assert dict(results) == {n: n * n for n in range(JOBS)}
    jobs: DurableQueue[int] = DurableQueue(workdir / "jobs")
    assert jobs.qsize() == 0 and jobs.unfinished_tasks == 0 and not jobs.dead_letters()
    # An ack returns once per job: "done" is printed after it, so never twice (a kill
    # between an ack and its print can only make a line missing).
    assert max(acked.values()) == 1
