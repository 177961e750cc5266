from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from persistkit.spool import Spool

Command = Callable[..., subprocess.CompletedProcess[str]]


def test_counts_each_area(tmp_path: Path, persistkit_command: Command) -> None:
    spool = Spool(tmp_path / "s")
    for data in (b"1", b"2", b"3"):
        spool.deliver(data)
    spool.claim()
    result = persistkit_command("spool", str(tmp_path / "s"))
    assert result.returncode == 0, result.stderr
    lines = dict(line.split() for line in result.stdout.splitlines())
    assert lines["new"] == "2"
    assert lines["cur"] == "1"


def test_a_folder_that_is_not_a_spool_is_left_alone(
    tmp_path: Path, persistkit_command: Command
) -> None:
    result = persistkit_command("spool", str(tmp_path))
    assert result.returncode == 1
    assert "no spool here" in result.stderr
    assert list(tmp_path.iterdir()) == []
