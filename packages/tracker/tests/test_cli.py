from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from persistkit.tracker import Tracker


def persistkit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "persistkit.core", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_shows_progress_without_changing_anything(tmp_path: Path) -> None:
    tracker = Tracker(tmp_path / "t", clone=False)
    tracker.add_many(["a", "b", "c", "d"])
    tracker.mark_done("a")
    tracker.abort("b")
    tracker.close()
    before = {p.name: p.read_bytes() for p in (tmp_path / "t").iterdir()}
    result = persistkit("tracker", str(tmp_path / "t"))
    assert result.returncode == 0, result.stderr
    assert "25.0 %" in result.stdout
    assert "tasks    4" in result.stdout
    assert "aborted  1" in result.stdout
    assert {p.name: p.read_bytes() for p in (tmp_path / "t").iterdir()} == before


def test_a_missing_tracker_is_an_error_and_nothing_is_created(tmp_path: Path) -> None:
    result = persistkit("tracker", str(tmp_path / "nothing"))
    assert result.returncode == 1
    assert "no tracker here" in result.stderr
    assert not (tmp_path / "nothing").exists()
