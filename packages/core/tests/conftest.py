from __future__ import annotations

import os
from pathlib import Path

import pytest

from persistkit.core.pytest_plugin import MountTmpfs


@pytest.fixture
def small_tmpfs(mounted_tmpfs: MountTmpfs) -> Path:
    """A real 64 KiB tmpfs: a real full disk and a real second filesystem (EXDEV)."""
    return mounted_tmpfs("64k")


@pytest.fixture
def old_file(tmp_path: Path) -> Path:
    """A 0644 file holding b"old"."""
    path = tmp_path / "state.bin"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    return path
