"""The order index (issue 15): exact after every change, crash, foreign writer and damage.

The invariant checked throughout: what the index says (``list``, ``len``, the first key)
is exactly what a fresh build from the item files says. ``from_items`` gets the latter by
copying the store without its index (xattrs kept) and opening the copy.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from persistkit.core.testing import CrashPoint, crash_at_every_call
from persistkit.iodict import IODict

INDEX = ".persistkit-iodict.d"


def from_items(directory: Path, scratch: Path) -> list[tuple[Any, Any]]:
    """The store's items in order, as a rebuild from the item files alone finds them."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(directory, scratch, ignore=shutil.ignore_patterns(INDEX))
    return list(IODict(scratch, read_only=True).items())


def assert_exact(directory: Path, scratch: Path) -> list[tuple[Any, Any]]:
    store = IODict(directory, read_only=True)
    items = list(store.items())
    assert items == from_items(directory, scratch)
    assert len(store) == len(items)
    assert bool(store) == bool(items)
    assert next(iter(store), "none") == (items[0][0] if items else "none")
    return items


def test_ends_len_and_bool_follow_every_change(tmp_path: Path, use_xattrs: bool | None) -> None:
    store = IODict(tmp_path / "s", use_xattrs=use_xattrs, durability="atomic")
    assert len(store) == 0 and not store and next(iter(store), None) is None
    store.update((f"k{i}", i) for i in range(10))
    assert len(store) == 10 and store and next(iter(store)) == "k0"
    assert store.popitem(last=False) == ("k0", 0)
    assert store.popleft() == 1  # iodict 0.0.8's FIFO popitem, by name
    assert store.popitem() == ("k9", 9)
    del store["k2"]
    del store["k8"]
    assert list(store) == ["k3", "k4", "k5", "k6", "k7"]
    assert next(iter(store)) == "k3" and len(store) == 5
    store["k3"] = "again"  # an overwrite keeps the first place
    assert next(iter(store)) == "k3"
    while store:
        store.popleft()
    assert len(store) == 0
    with pytest.raises(KeyError):
        store.popleft()
    with pytest.raises(KeyError):
        store.popitem(last=False)
    store["new"] = 1
    assert list(store) == ["new"] and len(IODict(tmp_path / "s")) == 1


def test_a_missing_index_is_rebuilt_from_the_items(tmp_path: Path, use_xattrs: bool | None) -> None:
    directory = tmp_path / "s"
    store = IODict(directory, use_xattrs=use_xattrs, durability="atomic")
    store.update([("b", 1), ("a", 2), (3, 3), ((b"x", 1), 4)])
    del store["a"]
    shutil.rmtree(directory / INDEX)
    expected = [("b", 1), (3, 3), ((b"x", 1), 4)]
    assert list(IODict(directory).items()) == expected
    assert not (directory / INDEX).exists()  # reading never writes
    IODict(directory)["c"] = 5
    assert (directory / INDEX / "order").exists()
    assert assert_exact(directory, tmp_path / "check") == [*expected, ("c", 5)]


def _truncate_order(index: Path) -> None:
    with open(index / "order", "r+b") as f:
        f.truncate(300)


def _garbage_in_keys(index: Path) -> None:
    with open(index / "keys", "r+b") as f:
        f.seek(200)
        f.write(b"\xffgarbage\x00")


def _bad_slot_state(index: Path) -> None:
    with open(index / "order", "r+b") as f:
        f.seek(256 + 32 * 40)
        f.write(b"Z")


def _bad_slot_offset(index: Path) -> None:
    with open(index / "order", "r+b") as f:
        f.seek(256 + 32 * 50 + 8)
        f.write(b"\x07")


def _head_overwritten(index: Path) -> None:
    with open(index / "order", "r+b") as f:
        f.write(b"\0" * 64)


def _state_overwritten(index: Path) -> None:
    with open(index / "order", "r+b") as f:
        f.seek(70)
        f.write(b"\x01\x02\x03")


def _keys_removed(index: Path) -> None:
    (index / "keys").unlink()


def _keys_of_another_store(index: Path) -> None:
    other = index.parent.parent / "other"
    IODict(other)["x"] = 1
    shutil.copy(other / INDEX / "keys", index / "keys")


@pytest.mark.parametrize(
    "damage",
    [
        _truncate_order,
        _garbage_in_keys,
        _bad_slot_state,
        _bad_slot_offset,
        _head_overwritten,
        _state_overwritten,
        _keys_removed,
        _keys_of_another_store,
    ],
)
def test_a_damaged_index_is_never_believed(tmp_path: Path, damage: Any) -> None:
    directory = tmp_path / "s"
    store = IODict(directory, durability="atomic")
    store.update((f"key{i:03d}", i) for i in range(300))
    for i in range(0, 300, 7):
        del store[f"key{i:03d}"]
    expected = [(f"key{i:03d}", i) for i in range(300) if i % 7]
    damage(directory / INDEX)
    # The same object (its view of the index already open) and a fresh one both recover.
    assert list(store.items()) == expected
    assert list(IODict(directory, read_only=True).items()) == expected
    assert len(IODict(directory, read_only=True)) == len(expected)
    store["after"] = "damage"  # a writer rebuilds the index on disk
    assert assert_exact(directory, tmp_path / "check") == [*expected, ("after", "damage")]


def test_damage_found_mid_iteration_continues_after_the_last_key(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    store = IODict(directory, durability="atomic")
    store.update((f"key{i:04d}", i) for i in range(3000))
    keys = iter(store)
    first = [next(keys) for _ in range(70)]  # past the first chunk of 64 slots
    with open(directory / INDEX / "keys", "r+b") as f:
        f.seek(32 + 7 * 2000)
        f.write(b"XXXX")
    rest = list(keys)
    assert first + rest == [f"key{i:04d}" for i in range(3000)]


def test_another_object_and_another_process_see_each_others_changes(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    mine = IODict(directory, durability="atomic")
    other = IODict(directory, durability="atomic")
    mine.update([("a", 1), ("b", 2)])
    assert len(other) == 2 and list(other) == ["a", "b"]
    other["c"] = 3
    del other["a"]
    assert list(mine) == ["b", "c"] and len(mine) == 2
    script = "import sys; from persistkit.iodict import IODict; IODict(sys.argv[1]).popleft()"
    subprocess.run([sys.executable, "-c", script, str(directory)], check=True)
    assert list(mine) == ["c"] and len(mine) == 1 and next(iter(mine)) == "c"
    assert_exact(directory, tmp_path / "check")


def test_foreign_changes_to_the_folder_are_seen(tmp_path: Path) -> None:
    """Items removed with rm, and written by iodict 0.0.8 itself, behind persistkit's back."""
    iodict = pytest.importorskip("iodict")
    directory = tmp_path / "s"
    store = IODict(directory)
    store.update([("a", 1), ("b", 2), ("c", 3)])
    assert len(store) == 3
    (directory / IODict(directory)._encoder("b")).unlink()  # like `rm`
    assert list(store) == ["a", "c"] and len(store) == 2
    old = iodict.IODict(path=str(directory))
    old["foreign"] = "from iodict 0.0.8"
    old["a"] = "overwritten in place by iodict 0.0.8"
    # iodict 0.0.8's items carry a wall-clock birth time: they sort before persistkit's.
    assert list(store) == ["foreign", "a", "c"] and len(store) == 3
    assert store["a"] == "overwritten in place by iodict 0.0.8"
    store["d"] = 4
    assert assert_exact(directory, tmp_path / "check") == [
        ("foreign", "from iodict 0.0.8"),
        ("a", "overwritten in place by iodict 0.0.8"),
        ("c", 3),
        ("d", 4),
    ]


def test_compaction_keeps_the_order_and_an_open_iteration(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    store = IODict(directory, durability="atomic")
    store.update((f"k{i:05d}", i) for i in range(6000))
    generation = (directory / INDEX / "order").stat().st_ino
    reader = iter(IODict(directory, read_only=True))
    assert next(reader) == "k00000"
    for _ in range(5000):
        store.popleft()
    assert (directory / INDEX / "order").stat().st_ino != generation  # rewritten
    assert (directory / INDEX / "order").stat().st_size < 256 + 32 * 2000
    assert list(store) == [f"k{i:05d}" for i in range(5000, 6000)]
    # The open iteration goes on, in order, over the index as it was when it started.
    rest = list(reader)
    assert rest[:2] == ["k00001", "k00002"] and rest == sorted(rest)
    assert assert_exact(directory, tmp_path / "check")[0] == ("k05000", 5000)


def _reset(directory: Path, use_xattrs: bool | None) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    store = IODict(directory, use_xattrs=use_xattrs)
    store.update([("a", 1), ("b", 2), ("c", 3)])
    del store["b"]
    store["b"] = "back"


OPERATIONS = {
    "set-new": lambda s: s.__setitem__("d", 4),
    "overwrite": lambda s: s.__setitem__("a", 10),
    "delete": lambda s: s.__delitem__("c"),
    "popitem": lambda s: s.popitem(),
    "popleft": lambda s: s.popleft(),
    "update": lambda s: s.update([("e", 5), ("a", 11), ("f", 6)]),
    "clear": lambda s: s.clear(),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_a_crash_at_any_call_leaves_index_and_items_agreeing(
    tmp_path: Path, use_xattrs: bool | None, operation: str
) -> None:
    directory = tmp_path / "s"
    _reset(directory, use_xattrs)
    before = list(IODict(directory).items())
    OPERATIONS[operation](IODict(directory))
    after = list(IODict(directory).items())
    outcomes: set[int] = set()

    def check(point: CrashPoint) -> None:
        # A reader sees the store before or after the operation (a change whose journal
        # record was flushed before the writer died counts as done, even unpublished)...
        seen = list(IODict(directory, read_only=True).items())
        allowed = [before, after]
        if operation == "clear":  # not a transaction: items go one by one, oldest first
            allowed += [before[n:] for n in range(1, len(before))]
        assert seen in allowed, f"after a crash at {point}: {seen}"
        outcomes.add(min(allowed.index(seen), 1))
        # ...and the next writer (which replays what the journal holds) leaves the index
        # exactly what the item files say.
        IODict(directory)["z"] = 0
        final = assert_exact(directory, tmp_path / "check")
        assert final in [[*state, ("z", 0)] for state in allowed], final

    runs = crash_at_every_call(
        lambda: OPERATIONS[operation](IODict(directory)),
        setup=lambda: _reset(directory, use_xattrs),
        check=check,
    )
    assert runs > 2 and outcomes == {0, 1}  # the old and the new state were both reached


WORKER = textwrap.dedent(
    """
    import json, random, sys
    from persistkit.iodict import IODict
    path, name, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rng = random.Random(seed)
    store = IODict(path, durability="atomic")
    popped = []
    for i in range(200):
        choice = rng.random()
        if choice < 0.4:
            store[f"{name}-{i}"] = i
        elif choice < 0.6:
            store.pop(f"{name}-{rng.randrange(i + 1)}", None)
        elif choice < 0.8:
            try:
                popped.append(store.popitem(last=False)[0])
            except KeyError:
                pass
        else:
            store.update([(f"{name}-u{i}", i), ("shared", name)])
        if i % 50 == 0:
            len(store), list(store)  # readers run beside the other writers
    print(json.dumps(popped))
    """
)


def test_several_processes_keep_the_index_exact(fresh_tmp: Path) -> None:
    directory = fresh_tmp / "s"
    IODict(directory).update((f"seed-{i}", i) for i in range(300))
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(directory), f"w{n}", str(n)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    popped: list[str] = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        popped.extend(json.loads(out))
    counts = Counter(popped)
    assert not counts or max(counts.values()) == 1  # each FIFO pop got a different item
    items = assert_exact(directory, fresh_tmp / "check")
    assert not set(popped) & {key for key, _ in items}
    names = [n for n in os.listdir(directory) if len(n) == 56]
    assert len(names) == len(IODict(directory))
