from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistkit.core.pytest_plugin import MountTmpfs


@pytest.fixture
def read_json() -> Callable[[Path], Any]:
    """Decode a JSON file the way any other program would, without persistkit."""

    def read(path: Path) -> Any:
        return json.loads(Path(path).read_text(encoding="utf-8"))

    return read


@pytest.fixture
def small_tmpfs(mounted_tmpfs: MountTmpfs) -> Path:
    """A real 64 KiB tmpfs, for a real full disk."""
    return mounted_tmpfs("64k")
