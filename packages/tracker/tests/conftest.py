from __future__ import annotations

import contextlib

import pytest

from persistkit.tracker import _exit_hooks
from persistkit.tracker._pod import PersistentOrderedDict


@pytest.fixture(autouse=True)
def _forget_open_stores():
    """Each test's stores are closed and forgotten at its end, not at interpreter exit."""
    yield
    with _exit_hooks._registry_guard:
        stores = [store for _pid, store in _exit_hooks._registry.values()]
        _exit_hooks._registry.clear()
    for store in stores:
        with contextlib.suppress(Exception):  # a test may have unmounted or broken its store
            store.close()  # type: ignore[attr-defined]
    PersistentOrderedDict._clones.clear()
