"""DurableQueue on the power-cut filesystem (issue 10): put, get, claim, ack, dead letters.

Cuts just before and after every flush of each operation, in strict mode (only what was
flushed survives) and random mode (each unflushed change kept or lost). After each cut the
queue is reopened with its own API and must hold: no item whose put returned is lost, an
item whose get or ack returned is never delivered again, and nothing is delivered twice.
"""

from __future__ import annotations

import contextlib
import sys
import textwrap
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from persistkit.core import CorruptFileError
from persistkit.core.testing import (
    PowerCut,
    PowerCutFS,
    cut_at_every_barrier,
    cut_at_random_points,
    cut_processes,
)
from persistkit.iodict import Claim, DurableQueue


def _contents(path: Path) -> list[Any]:
    """Everything deliverable, in order (drains the crash state; each check gets its own)."""
    queue: DurableQueue[Any] = DurableQueue(path)
    size = queue.qsize()
    items = list(queue.getter())
    assert len(items) == size
    return items


def test_put(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "q"

    def check(point: PowerCut) -> None:
        items = _contents(path)
        assert items in (["a"], ["a", "b"]), point.describe()
        if point.completed:
            assert items == ["a", "b"]

    cut_at_every_barrier(
        power_cut,
        lambda: DurableQueue(path).put("b"),
        setup=lambda: DurableQueue(path).put("a"),
        check=check,
    )


def test_put_many_is_all_or_nothing(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "q"

    def check(point: PowerCut) -> None:
        items = _contents(path)
        assert items in ([0], [0, 1, 2, 3]), point.describe()
        if point.completed:
            assert items == [0, 1, 2, 3]

    cut_at_every_barrier(
        power_cut,
        lambda: DurableQueue(path).put_many([1, 2, 3]),
        setup=lambda: DurableQueue(path).put(0),
        check=check,
    )


def _checkpointed(path: Path, items: list[Any]) -> None:
    queue: DurableQueue[Any] = DurableQueue(path)
    queue.put_many(items)
    queue.checkpoint()


def test_get(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "q"

    def operation() -> None:
        assert DurableQueue(path).get() == "a"

    def check(point: PowerCut) -> None:
        items = _contents(path)
        assert items in (["a", "b"], ["b"]), point.describe()
        if point.completed:
            assert items == ["b"]  # a get that returned is never delivered again

    # Once from the journal, once from a checkpoint's item file.
    cut_at_every_barrier(
        power_cut, operation, setup=lambda: DurableQueue(path).put_many(["a", "b"]), check=check
    )
    cut_at_every_barrier(
        power_cut, operation, setup=lambda: _checkpointed(path, ["a", "b"]), check=check
    )


def test_claim_then_ack(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "q"

    def claim() -> None:
        assert DurableQueue(path).claim().item == "a"

    def check_claim(point: PowerCut) -> None:
        # Leased to a process that is gone, or not leased yet: "a" is next either way.
        queue: DurableQueue[str] = DurableQueue(path)
        again = queue.claim(block=False)
        assert again.item == "a", point.describe()
        if point.completed:
            assert again.tries == 2
        again.ack()
        assert list(queue.getter()) == ["b"]

    cut_at_every_barrier(
        power_cut, claim, setup=lambda: DurableQueue(path).put_many(["a", "b"]), check=check_claim
    )

    held: list[Claim[str]] = []
    path = power_cut.root / "acked"

    def setup() -> None:
        _checkpointed(path, ["a", "b"])
        held[:] = [DurableQueue[str](path).claim()]  # this process holds it: never returned

    def ack() -> None:
        held[0].ack()

    def check_ack(point: PowerCut) -> None:
        queue: DurableQueue[str] = DurableQueue(path)
        assert queue.unfinished_tasks in (1, 2), point.describe()
        if point.completed:
            assert queue.unfinished_tasks == 1  # the ack returned: "a" is finished
        assert _contents(path) == ["b"]

    cut_at_every_barrier(power_cut, ack, setup=setup, check=check_ack)


def test_a_poison_item_is_never_lost(
    power_cut: PowerCutFS,
    damage_stored: Callable[[Path, Any], bytes],
    drain: Callable[[DurableQueue[Any]], tuple[list[Any], int]],
) -> None:
    path = power_cut.root / "q"
    damaged: list[bytes] = []

    def setup() -> None:
        _checkpointed(path, ["x", "b"])
        damaged[:] = [damage_stored(path, "x")]

    def operation() -> None:
        with contextlib.suppress(CorruptFileError):
            DurableQueue(path).get()

    def check(point: PowerCut) -> None:
        q: DurableQueue[Any] = DurableQueue(path)
        buried = [letter.id for letter in q.dead_letters()]
        if point.completed:
            assert buried == [0], point.describe()
        delivered, _ = drain(q)  # an item still in the queue is buried now
        assert delivered == ["b"], point.describe()
        [letter] = q.dead_letters()
        assert (letter.id, letter.read_bytes()) == (0, damaged[0]), point.describe()

    cut_at_every_barrier(power_cut, operation, setup=setup, check=check)


def test_checkpoint_changes_nothing_a_reader_sees(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "q"

    def setup() -> None:
        queue: DurableQueue[int] = DurableQueue(path)
        queue.put_many(range(6))
        queue.checkpoint()
        queue.put_many(range(6, 9))
        assert [queue.get(), queue.get()] == [0, 1]
        queue.claim().nack()  # 2 is given back: first in line

    def check(point: PowerCut) -> None:
        assert _contents(path) == [2, *range(3, 9)], point.describe()

    cut_at_every_barrier(
        power_cut, lambda: DurableQueue(path).checkpoint(), setup=setup, check=check
    )
    cut_at_random_points(
        power_cut, lambda: DurableQueue(path).checkpoint(), setup=setup, check=check, runs=6
    )


PRODUCER = textwrap.dedent(
    """
    import sys
    from persistkit.iodict import DurableQueue
    q = DurableQueue(sys.argv[1])
    for n in range(10_000):
        q.put(f"{sys.argv[2]}-{n}")
        print("put", f"{sys.argv[2]}-{n}", flush=True)
    """
)

CONSUMER = textwrap.dedent(
    """
    import sys
    from persistkit.iodict import DurableQueue
    q = DurableQueue(sys.argv[1])
    while True:
        job = q.claim(timeout=60)
        print("working", job.item, flush=True)
        job.ack()
        print("acked", job.item, flush=True)
    """
)


def test_four_processes_then_a_cut(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "q"
    DurableQueue(path).put("start")
    power_cut.sync()
    for seed in range(3):
        before = _deliverable_without_taking(path)
        result = cut_processes(
            power_cut,
            [
                [sys.executable, "-c", PRODUCER, str(path), f"p{seed}a"],
                [sys.executable, "-c", PRODUCER, str(path), f"p{seed}b"],
                [sys.executable, "-c", CONSUMER, str(path)],
                [sys.executable, "-c", CONSUMER, str(path)],
            ],
            after_lines=120,
            mode="random",
            seed=seed,
        )
        said: dict[str, list[str]] = {"put": [], "working": [], "acked": []}
        for line in result.lines:
            word, item = line.split()
            said[word].append(item)
        acked = Counter(said["acked"])
        assert not acked or max(acked.values()) == 1, f"seed {seed}: an item acked twice"
        left = _deliverable_without_taking(path)
        for item in said["put"]:
            # A put that returned is still waiting, or some consumer worked on it.
            assert item in left or item in said["working"], f"seed {seed}: {item} lost"
        for item in acked:
            assert item not in left, f"seed {seed}: {item} delivered again after its ack"
        for item in before:
            assert item in left or item in said["working"], f"seed {seed}: {item} lost"


def _deliverable_without_taking(path: Path) -> set[str]:
    """The items a consumer could still get, read through a claim that gives each back."""
    queue: DurableQueue[str] = DurableQueue(path)
    seen: list[Claim[str]] = []
    with contextlib.suppress(Exception):
        while True:
            seen.append(queue.claim(block=False, lease=3600))
    items = {claim.item for claim in seen}
    for claim in seen:
        claim.nack(count_try=False)
    return items
