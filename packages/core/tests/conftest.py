from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from persistkit.core.testing import MountUnavailableError, mount_tmpfs


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB tmpfs: a real full disk and a real second filesystem (EXDEV)."""
    try:
        with mount_tmpfs(tmp_path / "tmpfs", size="64k") as mountpoint:
            yield mountpoint
    except MountUnavailableError as reason:
        pytest.skip(str(reason))


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
