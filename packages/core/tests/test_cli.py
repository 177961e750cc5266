from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from persistkit.core._cli import main


def test_capabilities_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["capabilities", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "rename_exchange" in out
    assert "dir_fsync" in out


def test_sweep_command_removes_only_leftovers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".state.0123456789ab.pktmp").write_text("leftover")
    (tmp_path / "state").write_text("data")
    assert main(["sweep", str(tmp_path), "--min-age", "0"]) == 0
    assert "1 leftover(s) removed" in capsys.readouterr().out
    assert [p.name for p in tmp_path.iterdir()] == ["state"]


def test_errors_are_reported_without_a_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "persistkit.core", "sweep", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("persistkit: ")
    assert "Traceback" not in result.stderr
