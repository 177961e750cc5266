"""examples/demo.py, the README's main job, run as a user runs it.

It kills its own processes with SIGKILL; here it is also killed by hand (SIGKILL and Ctrl-C
of its main process, again and again) and stopped by a real full disk, and every time it
ends with its verification passing. The verification itself is shown to catch each kind of
damage it claims to check.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from persistkit.core.testing import facility_unavailable

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.py"
TASKS = 40
WORKERS = 2
TIMEOUT = 300  # seconds; a hung demo fails the test instead of hanging the run


def _command(workdir: Path, *extra: str) -> list[str]:
    return [
        sys.executable, str(DEMO), "--workdir", str(workdir),
        "--tasks", str(TASKS), "--workers", str(WORKERS), *extra,
    ]  # fmt: skip


def _run(workdir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _command(workdir, *extra), capture_output=True, text=True, timeout=TIMEOUT, check=False
    )


@pytest.fixture(scope="module")
def killed_and_finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The demo as README runs it (it kills itself), with its files kept."""
    workdir = tmp_path_factory.mktemp("demo") / "job"
    result = _run(workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    return workdir, result.stdout, result.stderr


def test_the_demo_kills_itself_restarts_and_verifies(
    demo: ModuleType, killed_and_finished: tuple[Path, str, str]
) -> None:
    workdir, out, err = killed_and_finished
    assert re.search(r"SIGKILL to a worker (in the middle of|just as it finished) task-\d{5}", err)
    assert "SIGKILL to every process of the job at once" in err
    assert "starting the job again" in err
    assert "\nOK: each task has one result" in out
    assert re.search(r"\nkills survived\s+2\n", out) and re.search(r"\nruns\s+2\n", out)
    check = demo.verify(workdir, TASKS)
    assert check.failures == []
    assert (check.runs, check.kills) == (2, 2)


def _repository_status() -> str:
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_as_readme_runs_it_it_writes_only_into_a_temporary_folder_it_removes(
    tmp_path: Path,
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    before = _repository_status() if (ROOT / ".git").exists() else None
    result = subprocess.run(
        [sys.executable, str(DEMO), "--tasks", str(TASKS)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "TMPDIR": str(temporary)},
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "\nOK: each task has one result" in result.stdout
    assert "SIGKILL to every process of the job at once" in result.stderr
    assert list(temporary.iterdir()) == []
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tmp"]
    if before is not None:
        assert _repository_status() == before


def _progress(line: str) -> int | None:
    found = re.search(rf"\b(\d+)/{TASKS}\b", line)
    return None if found is None else int(found.group(1))


@contextlib.contextmanager
def _interruptible_children() -> Iterator[None]:
    """Start children with SIGINT at its default, as from a terminal.

    A test run started in the background by a shell without job control ignores SIGINT, and
    a child inherits that (a handled signal is reset by exec, an ignored one is not): the
    demo would never see the Ctrl-C the test sends.
    """
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _kill_after_progress(workdir: Path, how: signal.Signals) -> int:
    """Start the demo without its own kills; once it has made progress, send it ``how``."""
    with _interruptible_children():
        process = subprocess.Popen(
            _command(workdir, "--no-kill"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert process.stderr is not None
    start = None
    for line in process.stderr:  # the bar: one line per tenth of the tasks
        done = _progress(line)
        if done is None:
            continue
        if start is None:
            start = done
        elif done > start:
            process.send_signal(how)
            break
    # Every process of the job writes to this stderr: its end means all of them are gone.
    process.stderr.read()
    process.communicate(timeout=TIMEOUT)
    return process.returncode


def test_killed_by_hand_again_and_again_it_resumes_and_verifies(
    demo: ModuleType, tmp_path: Path
) -> None:
    workdir = tmp_path / "job"
    # SIGKILL of the main process: its job's processes see their lifeline cut and stop.
    # Ctrl-C: the main process kills its job with SIGKILL and exits with status 130.
    statuses = [
        _kill_after_progress(workdir, how)
        for how in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL)
    ]
    assert statuses == [-signal.SIGKILL, 130, -signal.SIGKILL]
    assert demo.Job(workdir).progress.progress().done < TASKS
    final = _run(workdir, "--no-kill")
    assert final.returncode == 0, final.stdout + final.stderr
    assert "\nOK: each task has one result" in final.stdout
    check = demo.verify(workdir, TASKS)
    assert check.failures == []
    assert (check.runs, check.kills) == (4, 3)


def _used_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def _resize(path: Path, size: int) -> None:
    if shutil.which("mount") is None:
        facility_unavailable("mount(8) is needed to resize the tmpfs")
    subprocess.run(["mount", "-o", f"remount,size={size}", str(path)], check=True)


def test_a_full_disk_stops_the_demo_and_it_resumes_once_there_is_room(
    demo: ModuleType, tmpfs: Path
) -> None:
    """A real ENOSPC: the tmpfs is shrunk to what the planned job already uses."""
    workdir = tmpfs / "job"
    workdir.mkdir()
    demo.plan(demo.Job(workdir), TASKS)
    _resize(tmpfs, _used_bytes(tmpfs) + 4096)
    stopped = _run(workdir, "--no-kill")
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "No space left on device" in stopped.stderr
    assert "FAILED" in stopped.stderr
    assert demo.Job(workdir).progress.progress().done < TASKS  # everything still opens
    _resize(tmpfs, 4 << 20)
    final = _run(workdir, "--no-kill")
    assert final.returncode == 0, final.stdout + final.stderr
    assert demo.verify(workdir, TASKS).failures == []


def test_the_verification_catches_what_it_claims_to(
    demo: ModuleType, killed_and_finished: tuple[Path, str, str], tmp_path: Path
) -> None:
    workdir = tmp_path / "job"
    shutil.copytree(killed_and_finished[0], workdir)
    assert demo.verify(workdir, TASKS).failures == []
    job = demo.Job(workdir)
    del job.results["task-00003"]
    job.results["task-00004"] = 1000  # not what the task computes, and out of its range
    with job.summary.transaction() as summary:
        summary.value["counted"].append("task-00005")  # counted twice
    job.tasks.deliver(b"task-00006")
    job.handoff.put({"task": "task-00007", "value": 1})
    (workdir / "results" / ".task-00008.0123456789ab.pktmp").write_bytes(b"")
    failures = demo.verify(workdir, TASKS).failures
    expected = [
        "1 missing result(s): task-00003",
        "1 wrong result(s): task-00004",
        "the summary counted some tasks more than once",
        "summary count is 40, the results give 39",
        "summary sum is",
        "the spool still holds 1 message(s) in new/",
        "the queue still holds 1 item(s) and 0 dead letter(s)",
        "1 temporary file(s) left: results/.task-00008.0123456789ab.pktmp",
    ]
    for text in expected:
        assert any(failure.startswith(text) for failure in failures), (text, failures)
    result = _run(workdir, "--no-kill")  # the demo itself says what is wrong, and fails
    assert result.returncode == 1
    assert "FAILED: 1 missing result(s): task-00003" in result.stdout
