"""store on the power-cut filesystem: commit and transaction cut at every barrier and at random
points, in both modes, and four real processes cut mid-work (issue 10).

After each cut the store is reopened with its own API: it holds the old value or the new one
(never a torn, empty or undecodable file), and the new one once the call had returned.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistkit import store
from persistkit.core.testing import (
    PowerCut,
    PowerCutFS,
    cut_at_every_barrier,
    cut_at_random_points,
    cut_processes,
)

pytestmark = pytest.mark.powercut

OLD = {"state": "old", "rows": ["durable before the operation"] * 300}  # > 1 page
NEW = {"state": "new", "rows": ["written by the operation"] * 400}
LARGE = {"state": "large", "rows": ["x" * 100] * 3000}  # several slices: the streaming path


def prove(
    power_cut: PowerCutFS,
    path: Path,
    operation: Callable[[], object],
    new: Any,
    *,
    old: Any = OLD,
    format: Any = None,
) -> None:
    def setup() -> None:
        with store.open(path, default=None, format=format) as state:
            state.value = old

    def check(point: PowerCut) -> None:
        value = store.open(path, format=format).value  # raises on a torn or empty file
        if point.completed:
            assert value == new, "the commit returned, and is lost"
        else:
            assert value in (old, new), "the file is neither old nor new"

    cut_at_every_barrier(power_cut, operation, setup=setup, check=check, seeds=(0, 1))
    cut_at_random_points(power_cut, operation, setup=setup, check=check, runs=4)


@pytest.mark.parametrize(
    ("new", "format"),
    [(NEW, None), (LARGE, None), (NEW, "pickle")],
    ids=["json", "json-several-slices", "pickle-streamed"],
)
def test_commit(power_cut: PowerCutFS, new: Any, format: Any) -> None:
    path = power_cut.root / "state"

    def operation() -> None:
        state = store.open(path, format=format)
        state.value = new
        state.commit()

    prove(power_cut, path, operation, new, format=format)


def test_with_block_commit(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "state.json"

    def operation() -> None:
        with store.open(path) as state:
            state.value = NEW

    prove(power_cut, path, operation, NEW)


def test_transaction(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "counter.json"

    def operation() -> None:
        with store.open(path).transaction(timeout=10) as state:
            state.value = {"count": state.value["count"] + 1}

    prove(power_cut, path, operation, {"count": 1}, old={"count": 0})


INCREMENTER = """
import sys
from persistkit import store
counter = store.open(sys.argv[1], default={"count": 0})
while True:
    with counter.transaction() as state:
        state.value = {"count": state.value["count"] + 1}
    print(state.value["count"], flush=True)  # acknowledged: the commit returned
"""


@pytest.mark.parametrize("mode", ["strict", "random"])
def test_four_processes_in_transactions_cut_mid_work(power_cut: PowerCutFS, mode: str) -> None:
    path = power_cut.root / "counter.json"
    with store.open(path, default={"count": 0}) as counter:
        counter.commit()
    power_cut.sync()
    commands = [[sys.executable, "-c", INCREMENTER, str(path)] for _ in range(4)]
    for seed in range(2):
        snapshot = power_cut.snapshot()
        result = cut_processes(power_cut, commands, after_lines=40, mode=mode, seed=seed)
        acknowledged = [int(line) for line in result.lines]
        assert len(acknowledged) == len(set(acknowledged)), "two transactions saw one value"
        count = store.open(path).value["count"]
        assert count >= max(acknowledged), f"seed {seed}: an acknowledged increment was lost"
        power_cut.restore(snapshot)


def test_a_pickled_value_is_never_torn(power_cut: PowerCutFS) -> None:
    """The check above decodes the file; a torn pickle would raise CorruptFileError."""
    path = power_cut.root / "p"
    with store.open(path, format="pickle") as state:
        state.value = OLD
    power_cut.cut("random", seed=3)
    assert pickle.loads(path.read_bytes()) == OLD
