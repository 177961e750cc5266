from __future__ import annotations

import pytest

from persistkit.tracker import _exit_hooks
from persistkit.tracker._pod import PersistentOrderedDict


@pytest.fixture(autouse=True)
def _forget_open_stores():
    """Each test's stores are synced and forgotten at its end, not at interpreter exit."""
    yield
    _exit_hooks.sync_all()
    with _exit_hooks._registry_guard:
        _exit_hooks._registry.clear()
    PersistentOrderedDict._clones.clear()
