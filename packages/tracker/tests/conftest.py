from __future__ import annotations

import os
import sys

import pytest
from persistkit.tracker import _exit_hooks


@pytest.fixture(autouse=True)
def _forget_open_stores():
    """Each test's stores are synced and forgotten at its end, not at interpreter exit."""
    yield
    _exit_hooks.sync_all()
    with _exit_hooks._registry_guard:
        _exit_hooks._registry.clear()
    from persistkit.tracker._pod import PersistentOrderedDict

    PersistentOrderedDict._clones.clear()


def lines_of(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


PYTHON = sys.executable
SRC_PATHS = os.pathsep.join(p for p in sys.path if p)
