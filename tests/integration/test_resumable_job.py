"""The demo job across packages: killed at random moments, a full disk, many workers."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

TASKS = 60


def test_killed_again_and_again_it_finishes_with_nothing_lost(
    demo: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workdir = tmp_path / "job"
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        done = demo.Job(workdir).done() if workdir.exists() else 0
        if done >= TASKS - 5:
            break
        kills += demo.run_child(workdir, TASKS, rng.randint(1, 12))
    assert kills >= 2
    assert demo.run_child(workdir, TASKS, None) is False
    demo.verify(workdir, TASKS)  # raises SystemExit if anything was lost or corrupted
    out = capsys.readouterr().out
    assert "0 missing, 0 wrong" in out
    assert f"{TASKS}/{TASKS} done" in out
    runs = demo.Job(workdir).record.value["runs"]
    assert len(runs) == kills + 1
    assert [("finished" in run) for run in runs] == [False] * kills + [True]


def _used_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def _resize(path: Path, size: int) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def test_a_full_disk_stops_the_job_and_it_resumes_once_there_is_room(
    demo: ModuleType, tmpfs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real ENOSPC: the tmpfs is shrunk to what the planned job already uses."""
    workdir = tmpfs / "job"
    job = demo.Job(workdir)
    job.plan(TASKS)
    _resize(tmpfs, _used_bytes(tmpfs) + 4096)
    with pytest.raises(SystemExit, match="failed"):
        demo.run_child(workdir, TASKS, None)
    stuck = demo.Job(workdir)  # everything on disk still opens and decodes
    assert stuck.done() < TASKS
    _resize(tmpfs, 4 << 20)
    assert demo.run_child(workdir, TASKS, None) is False
    demo.verify(workdir, TASKS)
    assert "0 missing, 0 wrong" in capsys.readouterr().out
    assert [name for name in _all_names(workdir) if name.endswith(".pktmp")] == []


def _all_names(root: Path) -> list[str]:
    return [name for _, dirs, files in os.walk(root) for name in dirs + files]
