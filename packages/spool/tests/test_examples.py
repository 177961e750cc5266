"""The spool examples run as a user runs them, writing only into the temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_the_gocept_filestore_example(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "spool_filestore.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "processing order-1.csv"
    assert any(line.startswith("refused: '../../etc/cron.d/evil'") for line in lines)
    assert any("never overwrites" in line for line in lines)
