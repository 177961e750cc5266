from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def _mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs at ``path``; return why it could not be done, or None."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0777", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return "no mount command on this machine"
    if result.returncode != 0:
        return f"cannot mount a tmpfs here ({result.stderr.strip() or result.returncode})"
    return None


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs: a real full disk and a real second filesystem (EXDEV)."""
    mountpoint = tmp_path / "tmpfs"
    reason = _mount_tmpfs(mountpoint, "64k")
    if reason is not None:
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    """A 0644 file holding b"old"."""
    path = tmp_path / "state.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    return path


def _leftovers(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".pktmp"))


@pytest.fixture
def leftovers() -> Callable[[Path], list[str]]:
    """Names in a directory that a reader must never see (persistkit temp files)."""
    return _leftovers
