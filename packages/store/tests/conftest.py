from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def _leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".pktmp"))


@pytest.fixture
def leftovers() -> Callable[[Path], list[str]]:
    """Temporary files of persistkit writers left in a directory (a reader must never see one)."""
    return _leftovers


@pytest.fixture
def read_json() -> Callable[[Path], Any]:
    """Decode a JSON file the way any other program would, without persistkit."""

    def read(path: Path) -> Any:
        return json.loads(Path(path).read_text(encoding="utf-8"))

    return read


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs, for a real full disk."""
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0777", "tmpfs", str(mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        pytest.skip("no mount command on this machine, so no real full disk")
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode})")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
