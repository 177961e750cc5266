from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from persistkit.core.pytest_plugin import MountTmpfs

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def demo() -> ModuleType:
    """The README's demo job, imported from examples/demo.py."""
    spec = importlib.util.spec_from_file_location("persistkit_demo", ROOT / "examples" / "demo.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def tmpfs(mounted_tmpfs: MountTmpfs) -> Path:
    """A real 4 MiB tmpfs, which the test may shrink to make the disk full."""
    return mounted_tmpfs("4m")
