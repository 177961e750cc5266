"""Crash at every filesystem call of set, delete, update, put and get (core's helper).

The child dies with os._exit just before its k-th filesystem call, for every k: a real
process death that leaves the files as the kernel has them. After each, a fresh opener
must find the old state or the new one, nothing in between.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistkit.core import CorruptFileError, resolve_format, sweep
from persistkit.core.testing import CrashPoint, crash_at_every_call, leftovers
from persistkit.iodict import Claim, DurableQueue, IODict


def _reset_store(directory: Path, use_xattrs: bool | None, content: dict[str, object]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    store = IODict(directory, use_xattrs=use_xattrs)
    store.update(content)


def _check_store(directory: Path, allowed: list[list[tuple[str, object]]], seen: set[int]):  # type: ignore[no-untyped-def]
    def check(point: CrashPoint) -> None:
        items = list(IODict(directory).items())
        assert items in allowed, f"after a crash at {point}: {items}"
        seen.add(allowed.index(items))
        assert len(IODict(directory)) == len(items)
        sweep(directory, min_age=0)
        assert not leftovers(directory)

    return check


@pytest.mark.parametrize(
    ("operation", "before", "after"),
    [
        ("set-new", {"a": 1, "b": 2}, [("a", 1), ("b", 2), ("c", 3)]),
        ("set-overwrite", {"a": 1, "b": 2}, [("a", 1), ("b", "new")]),
        ("delete", {"a": 1, "b": 2}, [("b", 2)]),
        ("setdefault", {"a": 1}, [("a", 1), ("d", 0)]),
        ("pop", {"a": 1, "b": 2}, [("a", 1)]),
    ],
)
def test_single_item_operations(
    tmp_path: Path,
    use_xattrs: bool | None,
    operation: str,
    before: dict[str, object],
    after: list[tuple[str, object]],
) -> None:
    directory = tmp_path / "s"

    def run() -> None:
        store = IODict(directory)
        if operation == "set-new":
            store["c"] = 3
        elif operation == "set-overwrite":
            store["b"] = "new"
        elif operation == "delete":
            del store["a"]
        elif operation == "setdefault":
            store.setdefault("d", 0)
        else:
            store.pop("b")

    seen: set[int] = set()
    runs = crash_at_every_call(
        run,
        setup=lambda: _reset_store(directory, use_xattrs, before),
        check=_check_store(directory, [list(before.items()), after], seen),
    )
    assert runs > 2 and seen == {0, 1}  # both outcomes were really reached


def test_update_is_atomic_per_item(tmp_path: Path, use_xattrs: bool | None) -> None:
    directory = tmp_path / "s"
    before = {"a": 1}
    new = [("b", 2), ("a", 10), ("c", 3)]
    # Each item is atomic; the update publishes them in order, so a crash leaves a prefix.
    allowed = [
        [("a", 1)],
        [("a", 1), ("b", 2)],
        [("a", 10), ("b", 2)],
        [("a", 10), ("b", 2), ("c", 3)],
    ]
    seen: set[int] = set()
    crash_at_every_call(
        lambda: IODict(directory).update(new),
        setup=lambda: _reset_store(directory, use_xattrs, before),
        check=_check_store(directory, allowed, seen),
    )
    assert 0 in seen and 3 in seen


def _reset_queue(directory: Path, items: list[object]) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    DurableQueue(directory).put_many(items)


def _queue_contents(directory: Path) -> list[object]:
    queue = DurableQueue(directory)
    size = queue.qsize()
    items = list(queue.getter())
    assert len(items) == size
    return items


@pytest.mark.parametrize(
    ("operation", "after"),
    [("put", ["a", "b", "c", "new"]), ("get", ["b", "c"]), ("put_many", None)],
)
def test_queue_operations(tmp_path: Path, operation: str, after: list[str] | None) -> None:
    directory = tmp_path / "q"
    before = ["a", "b", "c"]
    allowed = [before + ["x", "y", "z"][:n] for n in range(4)] if after is None else [before, after]
    seen: set[int] = set()

    def run() -> None:
        queue = DurableQueue(directory)
        if operation == "put":
            queue.put("new")
        elif operation == "get":
            assert queue.get_nowait() == "a"
        else:
            queue.put_many(["x", "y", "z"])

    def check(point: CrashPoint) -> None:
        items = _queue_contents(directory)
        assert items in allowed, f"after a crash at {point}: {items}"
        seen.add(allowed.index(items))
        # A fresh opener removes the item files the dead process left; its temp files are
        # young, so only sweep(min_age=0) (no writer alive) may take them.
        sweep(directory, min_age=0)
        sweep(directory / ".persistkit-queue.items", min_age=0)
        assert os.listdir(directory / ".persistkit-queue.items") == []
        names = sorted(os.listdir(directory))
        assert all(name.startswith(".persistkit-queue.") for name in names), names
        kinds = sorted(name.split(".")[2] for name in names)
        assert kinds == ["items", "journal", "journal-shm", "json", "leases", "state"], names

    crash_at_every_call(run, setup=lambda: _reset_queue(directory, before), check=check)
    assert 0 in seen and len(allowed) - 1 in seen


def test_claim_never_loses_its_item(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    seen: set[int] = set()

    def check(point: CrashPoint) -> None:
        queue: DurableQueue[str] = DurableQueue(directory)
        # Waiting, or leased to the dead child (which gives it back at once): "a" is next.
        again = queue.claim(block=False)
        assert again.item == "a", f"after a crash at {point}"
        seen.add(again.tries)
        again.ack()
        assert list(queue.getter()) == ["b", "c"], f"after a crash at {point}"

    crash_at_every_call(
        lambda: DurableQueue(directory).claim(block=False),
        setup=lambda: _reset_queue(directory, ["a", "b", "c"]),
        check=check,
    )
    assert seen == {1, 2}  # not leased yet, and leased by the child that died


def test_ack_is_all_or_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    claims: list[Claim[str]] = []
    seen: set[int] = set()

    def setup() -> None:
        _reset_queue(directory, ["a", "b", "c"])
        claims[:] = [DurableQueue[str](directory).claim(block=False)]  # held by this process

    def claims_ack() -> None:
        claims[0].ack()

    def check(point: CrashPoint) -> None:
        queue: DurableQueue[str] = DurableQueue(directory)
        unfinished = queue.unfinished_tasks
        assert unfinished in (2, 3), f"after a crash at {point}"
        seen.add(unfinished)
        # Acknowledged, or still leased to a live process: never delivered again.
        assert _queue_contents(directory) == ["b", "c"], f"after a crash at {point}"

    crash_at_every_call(claims_ack, setup=setup, check=check)
    assert seen == {2, 3}


def test_a_poison_item_is_in_exactly_one_place(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    poison = directory / ".persistkit-queue.items" / ("0" * 20)
    seen: set[bool] = set()

    def setup() -> None:
        # Items in files of their own, as persistkit 0.1 left them: a poison one is moved.
        shutil.rmtree(directory, ignore_errors=True)
        poison.parent.mkdir(parents=True)
        poison.write_bytes(b"\x80\x04junk")
        (poison.parent / f"{1:020d}").write_bytes(resolve_format("pickle").dumps("b"))
        for kind in ("head.0", "tail.2", "done.0"):
            (directory / f".persistkit-queue.{kind}").write_bytes(b"")

    def run() -> None:
        with contextlib.suppress(CorruptFileError):
            DurableQueue(directory).get_nowait()

    def check(point: CrashPoint) -> None:
        queue = DurableQueue(directory)
        buried = [letter.id for letter in queue.dead_letters()]
        seen.add(bool(buried))
        if not buried:
            assert poison.read_bytes() == b"\x80\x04junk", f"lost after {point}"
            with pytest.raises(CorruptFileError):
                queue.get_nowait()
        assert [letter.id for letter in queue.dead_letters()] == [0]
        assert not poison.exists()
        assert list(queue.getter()) == ["b"], f"after a crash at {point}"

    crash_at_every_call(run, setup=setup, check=check)
    assert seen == {False, True}


def test_a_damaged_item_of_a_segment_is_delivered_or_buried_never_both(
    tmp_path: Path,
    damage_stored: Callable[[Path, Any], bytes],
    drain: Callable[[DurableQueue[Any]], tuple[list[Any], int]],
) -> None:
    directory = tmp_path / "q"
    damaged: list[bytes] = []
    seen: set[int] = set()

    def setup() -> None:
        _reset_queue(directory, ["a", "b"])
        DurableQueue(directory).checkpoint()
        damaged[:] = [damage_stored(directory, "a")]

    def run() -> None:
        with contextlib.suppress(CorruptFileError):
            DurableQueue(directory).get_nowait()

    def check(point: CrashPoint) -> None:
        reopened: DurableQueue[str] = DurableQueue(directory)
        # Not moved yet, or moved and not recorded: moved (again) now, and reported.
        delivered, corrupt = drain(reopened)
        seen.add(corrupt)
        assert delivered == ["b"] and corrupt <= 1, f"after a crash at {point}"
        [letter] = reopened.dead_letters()
        assert letter.read_bytes() == damaged[0], f"after a crash at {point}"

    crash_at_every_call(run, setup=setup, check=check)
    assert seen == {0, 1}
