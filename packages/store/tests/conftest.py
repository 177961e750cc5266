from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persistkit.core.testing import MountUnavailableError, mount_tmpfs


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
    try:
        with mount_tmpfs(tmp_path / "tmpfs", size="64k") as mountpoint:
            yield mountpoint
    except MountUnavailableError as reason:
        pytest.skip(str(reason))
