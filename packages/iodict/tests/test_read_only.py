"""Reading must not write (issue 9.8): read-only media, read_only=True, and the tree unchanged.

The read-only media here is real: a tmpfs remounted with ``mount -o remount,ro``.
``snapshot_tree`` compares everything under the store (names, content, modes, mtimes,
xattrs) before and after.
"""

from __future__ import annotations

import errno
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from persistkit.core import SerializationError
from persistkit.core.pytest_plugin import MountTmpfs
from persistkit.core.testing import facility_unavailable, snapshot_tree
from persistkit.iodict import BaseClass, IODict, ReadOnlyStoreError

INDEX = ".persistkit-iodict.d"
ITEMS = [("a", 1), ((1, "t"), [2]), (b"k", {"x": None})]
WRITER = f"""
import sys
from persistkit.iodict import IODict
IODict(sys.argv[1], use_xattrs={{"None": None, "False": False}}[sys.argv[2]]).update({ITEMS!r})
"""


def _remount_read_only(mountpoint: Path) -> None:
    result = subprocess.run(
        ["mount", "-o", "remount,ro", str(mountpoint)],
        check=False,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        facility_unavailable(f"cannot remount read-only: {result.stderr.strip()}")


def _read_everything(path: Path) -> None:
    store = IODict(path)
    assert list(store.items()) == ITEMS
    assert len(store) == 3 and store and next(iter(store)) == "a"
    assert (1, "t") in store and "zz" not in store
    assert store.get(b"k") == {"x": None} and store.get("zz") is None
    assert repr(store) == repr(dict(ITEMS))
    assert store == dict(ITEMS)


@pytest.mark.parametrize("index", ["current", "missing"])
def test_a_store_on_read_only_media_opens_for_reading(
    mounted_tmpfs: MountTmpfs, use_xattrs: bool | None, index: str
) -> None:
    mountpoint = mounted_tmpfs("4m")
    path = mountpoint / "store"
    # Written by another process, which is gone (a writer's open files keep a mount busy).
    subprocess.run([sys.executable, "-c", WRITER, str(path), repr(use_xattrs)], check=True)
    if index == "missing":  # as a persistkit 0.1 store: the index is rebuilt in memory
        shutil.rmtree(path / INDEX)
    _remount_read_only(mountpoint)
    before = snapshot_tree(path)
    _read_everything(path)
    _read_everything(path)
    with pytest.raises(OSError) as raised:
        IODict(path)["new"] = 1
    assert raised.value.errno == errno.EROFS
    assert snapshot_tree(path) == before


def test_an_empty_folder_on_read_only_media_is_an_empty_store(
    mounted_tmpfs: MountTmpfs,
) -> None:
    mountpoint = mounted_tmpfs("1m")
    (mountpoint / "empty").mkdir()
    _remount_read_only(mountpoint)
    before = snapshot_tree(mountpoint)
    store = IODict(mountpoint / "empty")
    assert len(store) == 0 and list(store) == [] and not store
    assert snapshot_tree(mountpoint) == before


def test_read_only_opens_change_nothing_on_writable_media(tmp_path: Path) -> None:
    path = tmp_path / "store"
    IODict(path).update(ITEMS)
    (path / ".persistkit-iodict.lock").unlink()  # as a copy or a backup might lack it
    before = snapshot_tree(path)
    _read_everything(path)
    store = IODict(path, read_only=True)
    assert list(store.items()) == ITEMS
    for write in (
        lambda: store.__setitem__("n", 1),
        lambda: store.__delitem__("a"),
        store.popitem,
        lambda: store.update(x=1),
        store.clear,
    ):
        with pytest.raises(ReadOnlyStoreError) as raised:
            write()
        assert isinstance(raised.value, PermissionError)
    assert snapshot_tree(path) == before
    with pytest.raises(FileNotFoundError):
        IODict(tmp_path / "nothing-here", read_only=True)
    assert not (tmp_path / "nothing-here").exists()


def test_json_store_refuses_nan_and_infinities(tmp_path: Path) -> None:
    """Issue 9.11: NaN and infinities are not JSON; nothing is written for them."""
    store = IODict(tmp_path / "s", format="json")
    for bad in (math.nan, math.inf, -math.inf, {"x": [math.nan]}):
        with pytest.raises(SerializationError):
            store["k"] = bad
        with pytest.raises(SerializationError):
            store.update(k=bad)
    assert list(store) == []
    store["k"] = {1: (2, 3)}  # int dict keys and tuples come back as JSON has them
    assert IODict(tmp_path / "s")["k"] == {"1": [2, 3]}
    (name,) = [n for n in (tmp_path / "s").iterdir() if len(n.name) == 56]
    assert json.loads(name.read_bytes()) == {"1": [2, 3]}


def test_iodict_keys_keep_their_types_and_the_class_is_generic(tmp_path: Path) -> None:
    """Issue 12: IODict[str, int] at runtime; iodict's BaseClass is there to subclass."""
    typed: IODict[str, int] = IODict[str, int](tmp_path / "s")
    typed["one"] = 1
    assert IODict(tmp_path / "s") == {"one": 1}
    assert isinstance(typed, BaseClass)
    with BaseClass() as plain, pytest.raises(RuntimeError):
        assert isinstance(plain, BaseClass)
        raise RuntimeError("propagates")
