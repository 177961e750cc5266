"""The store examples run as a user runs them, writing only into the temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def run(example: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / example), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        cwd=tmp_path,
        check=False,
    )


def test_store_runs_remembers_each_start_in_its_default_folder(tmp_path: Path) -> None:
    first = run("store_runs.py", tmp_path)
    second = run("store_runs.py", tmp_path)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert first.stdout == "Previous executions:\n[]\n"
    runs = json.loads((tmp_path / "persistkit-examples" / "runs.json").read_text())
    assert len(runs) == 2
    assert repr(runs[:1]) in second.stdout
