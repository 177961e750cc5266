"""Crash at every filesystem call of every write API: the target is old or new, never a mix."""

from __future__ import annotations

import os
import random
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.core import (
    Batch,
    atomic_folder,
    atomic_write,
    exchange,
    remove,
    rename,
    sweep,
    write_bytes,
)
from persistkit.core.testing import (
    CrashPoint,
    crash_at_every_call,
    kill_hard,
    leftovers,
    spawn_python,
)

OLD = b"old content " * 100
NEW = b"NEW CONTENT " * 300


def visible(directory: Path) -> list[str]:
    return sorted(set(os.listdir(directory)) - set(leftovers(directory)))


@pytest.mark.parametrize("durability", ["durable", "atomic"])
def test_write_bytes_is_old_or_new_after_a_crash_at_any_call(
    tmp_path: Path, durability: str
) -> None:
    target = tmp_path / "state"
    seen: set[bytes] = set()

    def setup() -> None:
        target.write_bytes(OLD)
        sweep(tmp_path, min_age=0)

    def check(point: CrashPoint) -> None:
        content = target.read_bytes()
        assert content in (OLD, NEW), f"torn file after crash at {point}"
        assert visible(tmp_path) == ["state"]
        seen.add(content)
        if point.completed:
            assert content == NEW

    runs = crash_at_every_call(
        lambda: write_bytes(target, NEW, durability=durability),  # type: ignore[arg-type]
        setup=setup,
        check=check,
    )
    assert runs >= 4
    assert seen == {OLD, NEW}


def test_atomic_write_is_old_or_new_after_a_crash_at_any_call(tmp_path: Path) -> None:
    target = tmp_path / "state.txt"

    def operation() -> None:
        with atomic_write(target, "wb") as f:
            for _ in range(3):
                f.write(NEW)

    def check(point: CrashPoint) -> None:
        assert target.read_bytes() in (OLD, NEW * 3)
        if point.completed:
            assert target.read_bytes() == NEW * 3

    crash_at_every_call(operation, setup=lambda: target.write_bytes(OLD), check=check)


def test_create_only_write_is_absent_or_complete(tmp_path: Path) -> None:
    target = tmp_path / "fresh"

    def setup() -> None:
        if target.exists():
            target.unlink()

    def check(point: CrashPoint) -> None:
        assert not target.exists() or target.read_bytes() == NEW
        if point.completed:
            assert target.read_bytes() == NEW

    crash_at_every_call(lambda: write_bytes(target, NEW, overwrite=False), setup=setup, check=check)


def _make_tree(root: Path, files: dict[str, bytes]) -> None:
    import shutil

    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    for name, data in files.items():
        (root / name).write_bytes(data)


def _tree(root: Path) -> dict[str, bytes] | None:
    if not root.exists():
        return None
    return {p.name: p.read_bytes() for p in root.iterdir()}


OLD_TREE = {"a": b"old a", "b": b"old b"}
NEW_TREE = {"a": b"new a", "c": b"new c", "d": b"new d"}


def _build(folder: Path) -> None:
    for name, data in NEW_TREE.items():
        (folder / name).write_bytes(data)


@pytest.mark.parametrize("existing", [True, False])
def test_folder_is_old_or_new_after_a_crash_at_any_call(tmp_path: Path, existing: bool) -> None:
    target = tmp_path / "release"

    def setup() -> None:
        _make_tree(target, OLD_TREE) if existing else _make_tree(target, {})
        if not existing:
            target.rmdir()
        if leftovers(tmp_path):
            sweep(tmp_path, min_age=0)
            assert leftovers(tmp_path) == []

    def operation() -> None:
        with atomic_folder(target, overwrite=True) as folder:
            _build(folder)

    def check(point: CrashPoint) -> None:
        tree = _tree(target)
        assert tree in ((OLD_TREE if existing else None), NEW_TREE), f"mixed tree at {point}"
        if point.completed:
            assert tree == NEW_TREE
            assert leftovers(tmp_path) == []

    crash_at_every_call(operation, setup=setup, check=check)


def test_batch_files_are_each_old_or_new_after_a_crash_at_any_call(tmp_path: Path) -> None:
    names = [tmp_path / f"f{i}" for i in range(4)]

    def setup() -> None:
        for path in names:
            path.write_bytes(OLD)

    def operation() -> None:
        with Batch() as batch:
            for path in names:
                batch.write_bytes(path, NEW)

    def check(point: CrashPoint) -> None:
        for path in names:
            assert path.read_bytes() in (OLD, NEW)
        if point.completed:
            assert all(path.read_bytes() == NEW for path in names)

    crash_at_every_call(operation, setup=setup, check=check)


@pytest.mark.parametrize(
    "primitive",
    [
        rename,
        lambda a, b: rename(a, b, overwrite=False),
    ],
    ids=["rename", "rename-noreplace"],
)
def test_primitives_leave_each_name_whole(
    tmp_path: Path, primitive: Callable[[Path, Path], object]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"

    def setup() -> None:
        a.write_bytes(b"A")
        if b.exists():
            b.unlink()

    def check(point: CrashPoint) -> None:
        contents = sorted(p.read_bytes() for p in (a, b) if p.exists())
        assert contents == [b"A"], f"the content was lost or duplicated at {point}"

    crash_at_every_call(lambda: primitive(a, b), setup=setup, check=check)


def test_exchange_swaps_or_leaves_both(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"

    def setup() -> None:
        a.write_bytes(b"A")
        b.write_bytes(b"B")

    def check(point: CrashPoint) -> None:
        state = (a.read_bytes(), b.read_bytes())
        assert state in ((b"A", b"B"), (b"B", b"A")), f"names broken at {point}"
        if point.completed:
            assert state == (b"B", b"A")

    crash_at_every_call(lambda: exchange(a, b), setup=setup, check=check)


def test_remove_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "gone"

    def check(point: CrashPoint) -> None:
        assert not target.exists() or target.read_bytes() == OLD
        if point.completed:
            assert not target.exists()

    crash_at_every_call(lambda: remove(target), setup=lambda: target.write_bytes(OLD), check=check)


WRITER = textwrap.dedent(
    """
    import os, sys
    from persistkit.core import write_bytes
    target = sys.argv[1]
    versions = [bytes([65 + i]) * (4096 * (i + 1)) for i in range(8)]
    i = 0
    while True:
        write_bytes(target, versions[i % 8])
        os.write(1, b".")
        i += 1
    """
)


def test_sigkill_at_random_moments_never_leaves_a_torn_file(tmp_path: Path) -> None:
    """A real writer process, killed with SIGKILL after a random number of its writes."""
    versions = {bytes([65 + i]) * (4096 * (i + 1)) for i in range(8)}
    target = tmp_path / "state"
    target.write_bytes(b"A" * 4096)
    rng = random.Random(1234)
    for _ in range(12):
        child = spawn_python(WRITER, target)
        assert child.stdout is not None
        wanted = rng.randint(1, 40)
        assert len(child.stdout.read(wanted)) == wanted, "the writer died on its own"
        kill_hard(child)
        assert target.read_bytes() in versions
        assert visible(tmp_path) == ["state"]
        sweep(tmp_path, min_age=0)
        assert sorted(os.listdir(tmp_path)) == ["state"]
