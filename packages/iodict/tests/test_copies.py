"""Backups and copies (issue 9.3): a store copied without its xattrs keeps every key and value.

The copies are made with the real tools users reach for, ``cp -r`` and plain ``tar``, which
both drop extended attributes; each test checks that they really did.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import pytest

from persistkit.core import CorruptFileError, UnloadableValueError
from persistkit.core.testing import facility_unavailable
from persistkit.iodict import IODict, KeylessItemsWarning

INDEX = ".persistkit-iodict.d"
CONTENT: list[tuple[Any, Any]] = [
    ("first", {"nested": [1, 2]}),
    (b"bytes key", b"\x00\xff"),
    (42, "an int key"),
    (("tuple", 7, b"k"), None),
    ("x" * 6000, "a key too long for one xattr"),
    ("last", 3.5),
]


def _tool(*command: str) -> None:
    if shutil.which(command[0]) is None:
        facility_unavailable(f"no {command[0]} command on this machine")
    subprocess.run(command, check=True, capture_output=True)


def _copy_with_cp(source: Path, target: Path) -> None:
    _tool("cp", "-r", str(source), str(target))


def _copy_with_tar(source: Path, target: Path) -> None:
    archive = source.parent / "backup.tar"
    _tool("tar", "-cf", str(archive), "-C", str(source.parent), source.name)
    target.mkdir()
    _tool("tar", "-xf", str(archive), "-C", str(target), "--strip-components=1")


def _item_names(directory: Path) -> list[str]:
    return sorted(name for name in os.listdir(directory) if len(name) == 56)


def _has_user_xattrs(path: Path) -> bool:
    return any(name.startswith("user.") for name in os.listxattr(path))


@pytest.fixture
def original(tmp_path: Path) -> Path:
    directory = tmp_path / "original"
    store = IODict(directory, use_xattrs=True)
    store.update(CONTENT[:3])
    for key, value in CONTENT[3:]:
        store[key] = value
    store["dropped"] = "gone"
    del store["dropped"]
    assert _has_user_xattrs(directory / store._encoder("first"))
    return directory


@pytest.mark.parametrize("copy", [_copy_with_cp, _copy_with_tar], ids=["cp -r", "tar"])
def test_a_copy_without_xattrs_opens_with_every_key_value_and_the_order(
    original: Path, tmp_path: Path, copy: Any
) -> None:
    target = tmp_path / "copy"
    copy(original, target)
    assert not any(_has_user_xattrs(target / name) for name in _item_names(target))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is keyless: no warning
        store = IODict(target)
        assert list(store.items()) == CONTENT
        assert len(store) == len(CONTENT) and next(iter(store)) == "first"
        assert dict(store) == dict(CONTENT)
        assert repr(store) == repr(dict(CONTENT))
    # The copy is a working store: its keys keep their places through writes.
    store["first"] = "overwritten"
    store["new"] = "appended"
    del store[42]
    assert store.popitem() == ("new", "appended")
    assert list(IODict(target)) == ["first", b"bytes key", ("tuple", 7, b"k"), "x" * 6000, "last"]
    assert IODict(target)["first"] == "overwritten"


def test_a_copy_read_only_writes_nothing(original: Path, tmp_path: Path) -> None:
    target = tmp_path / "copy"
    _copy_with_cp(original, target)
    from persistkit.core.testing import snapshot_tree

    before = snapshot_tree(target)
    assert list(IODict(target, read_only=True).items()) == CONTENT
    assert list(IODict(target).items()) == CONTENT  # opened for writing, but only read
    assert snapshot_tree(target) == before


def test_items_whose_key_is_lost_are_reported_and_kept(original: Path, tmp_path: Path) -> None:
    """No xattrs and no index (a copy that left the hidden files out): keys are gone."""
    target = tmp_path / "copy"
    _copy_with_cp(original, target)
    shutil.rmtree(target / INDEX)
    names = _item_names(target)
    with pytest.warns(KeylessItemsWarning, match="5 item file"):
        keys = list(IODict(target))
    # The one item that carries its key in a header (the long key) is still found.
    assert keys == ["x" * 6000]
    store = IODict(target)
    assert sorted(os.path.basename(p) for p in store.keyless_files()) == sorted(
        name for name in names if name != store._encoder("x" * 6000)
    )
    assert store["first"] == {"nested": [1, 2]}  # known keys still read by name
    with pytest.warns(KeylessItemsWarning):
        store.clear()
    assert len(_item_names(target)) == 5  # clear() removed what it knew, kept the rest


def test_an_undecodable_item_never_blocks_listing(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    store = IODict(directory)
    store.update([("a", 1), ("broken", 2), ("c", 3)])
    path = directory / store._encoder("broken")
    path.write_bytes(b"\x80\x04 not a pickle")  # rewritten in place by something else
    assert list(store) == ["a", "broken", "c"] and len(store) == 3
    assert "broken" in store
    assert repr(store).startswith("{'a': 1, 'broken': <unreadable: cannot decode")
    for read in (lambda: store["broken"], lambda: dict(store), lambda: list(store.values())):
        with pytest.raises(CorruptFileError) as raised:
            read()
        assert raised.value.path == str(path)
    assert path.read_bytes() == b"\x80\x04 not a pickle"  # never replaced


def test_a_value_whose_class_is_missing_is_unloadable_not_corrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("persistkit_module_renamed_since")

    class Gone:
        """A class whose module is gone when the value is read back."""

    Gone.__module__ = module.__name__
    Gone.__qualname__ = "Gone"
    module.Gone = Gone  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    directory = tmp_path / "s"
    store = IODict(directory)
    store["ok"] = 1
    store["moved"] = Gone()
    monkeypatch.delitem(sys.modules, module.__name__)
    path = directory / store._encoder("moved")
    assert list(store) == ["ok", "moved"]
    with pytest.raises(UnloadableValueError) as raised:
        store["moved"]
    assert raised.value.path == str(path)
    assert "<unreadable: cannot rebuild" in repr(store)
