from __future__ import annotations

import copy
import hashlib
import os
import tempfile
import threading
from pathlib import Path

import pytest

from persistkit.core import CorruptFileError, LocalObjectStore, SerializationError, capabilities
from persistkit.core.testing import leftovers
from persistkit.iodict import (
    IODict,
    LayoutError,
    StorePathError,
    UnsupportedKeyError,
)


def item_files(directory: Path) -> list[str]:
    return sorted(n for n in os.listdir(directory) if len(n) == 56 and not n.startswith("."))


@pytest.fixture(params=["xattr", "header", "objects", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> IODict:
    """The same dict behaviours on a folder (both layouts) and on object stores: core's
    local one (a folder of objects) and a real S3 server."""
    if request.param == "s3":
        return IODict(request.getfixturevalue("s3_objects"))
    if request.param == "objects":
        return IODict(LocalObjectStore(tmp_path / "objects"))
    if request.param == "xattr" and not capabilities(tempfile.gettempdir()).user_xattrs:
        pytest.skip("the test directory's filesystem has no user xattrs")
    return IODict(tmp_path / "store", use_xattrs=None if request.param == "xattr" else False)


def test_dict_api_round_trip(store: IODict) -> None:
    store["a"] = 1
    store["b"] = [1, 2]
    store["c"] = {"x": None}
    assert store == {"a": 1, "b": [1, 2], "c": {"x": None}}
    assert len(store) == 3
    assert list(store) == ["a", "b", "c"]
    assert list(store.keys()) == ["a", "b", "c"]
    assert list(store.values()) == [1, [1, 2], {"x": None}]
    assert list(store.items()) == [("a", 1), ("b", [1, 2]), ("c", {"x": None})]
    assert "a" in store and "z" not in store
    assert store.get("z") is None and store.get("z", 5) == 5
    del store["b"]
    assert list(store) == ["a", "c"]
    with pytest.raises(KeyError):
        del store["b"]
    with pytest.raises(KeyError):
        store["b"]


def test_insertion_order_survives_overwrite_and_reopen(
    tmp_path: Path, use_xattrs: bool | None
) -> None:
    store = IODict(tmp_path / "s", use_xattrs=use_xattrs)
    for key in ["z", "a", "m", "b"]:
        store[key] = key
    store["a"] = "again"  # an overwrite keeps the place, as in dict
    del store["m"]
    store["m"] = "back"  # delete + insert moves to the end, as in dict
    expected = {"z": "z", "a": "again", "b": "b", "m": "back"}
    assert list(store.items()) == list(expected.items())
    reopened = IODict(tmp_path / "s")
    assert list(reopened.items()) == list(expected.items())


def test_setdefault_does_not_overwrite(store: IODict) -> None:
    store["k"] = "original"
    assert store.setdefault("k", "other") == "original"
    assert store["k"] == "original"
    assert store.setdefault("new", 7) == 7
    assert store["new"] == 7


@pytest.mark.parametrize("default", [0, "", None, False, []])
def test_pop_returns_falsy_default(store: IODict, default: object) -> None:
    assert store.pop("missing", default) == default
    store["k"] = 1
    assert store.pop("k") == 1
    assert "k" not in store
    with pytest.raises(KeyError):
        store.pop("k")


def test_popitem_is_lifo_and_returns_pair(store: IODict) -> None:
    store.update([("a", 1), ("b", 2), ("c", 3)])
    assert store.popitem() == ("c", 3)
    assert store.popitem() == ("b", 2)
    assert list(store.items()) == [("a", 1)]
    store.popitem()
    with pytest.raises(KeyError):
        store.popitem()


def test_copy_is_a_dict_snapshot(store: IODict) -> None:
    store["a"] = [1]
    snapshot = store.copy()
    assert type(snapshot) is dict and snapshot == {"a": [1]}
    store["a"] = [2]
    assert snapshot == {"a": [1]}


def test_copy_module_makes_another_handle_on_the_same_store(store: IODict) -> None:
    store["a"] = 1
    other = copy.copy(store)
    assert type(other) is type(store)
    other["b"] = 2
    assert dict(store) == {"a": 1, "b": 2}


def test_leaving_with_block_keeps_data(tmp_path: Path) -> None:
    with IODict(tmp_path / "s") as store:
        store["k"] = "v"
    assert IODict(tmp_path / "s") == {"k": "v"}


def test_exception_in_with_block_propagates_and_keeps_data(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), IODict(tmp_path / "s") as store:
        store["k"] = "v"
        raise RuntimeError("boom")
    assert IODict(tmp_path / "s") == {"k": "v"}


def test_regular_file_at_path_is_an_error_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "precious"
    path.write_bytes(b"do not delete")
    with pytest.raises(StorePathError) as raised:
        IODict(path)
    assert isinstance(raised.value, NotADirectoryError)
    assert path.read_bytes() == b"do not delete"


def test_stray_files_are_ignored(tmp_path: Path, use_xattrs: bool | None) -> None:
    directory = tmp_path / "s"
    store = IODict(directory, use_xattrs=use_xattrs)
    store["k"] = 1
    (directory / "notes.txt").write_text("hello")
    (directory / ".hidden").write_text("x")
    (directory / ("0" * 56 + ".bak")).write_text("x")
    (directory / "sub").mkdir()
    os.symlink("/etc/passwd", directory / ("a" * 56))
    assert list(store) == ["k"] and len(store) == 1
    assert store == {"k": 1}
    store.clear()
    assert len(store) == 0
    assert (directory / "notes.txt").read_text() == "hello"
    assert os.path.islink(directory / ("a" * 56))


def test_keys_never_escape_or_overflow(tmp_path: Path, use_xattrs: bool | None) -> None:
    directory = tmp_path / "s"
    store = IODict(directory, use_xattrs=use_xattrs)
    keys = ["../escape", "/etc/passwd", "a/b", "", ".", "..", "\x00nul", "é" * 300, "x" * 1000]
    for key in keys:
        store[key] = key
    assert list(store) == keys
    assert all(store[key] == key for key in keys)
    assert sorted(os.listdir(tmp_path)) == ["s"]
    assert len(item_files(directory)) == len(keys)


def test_supported_key_types_do_not_collide(store: IODict) -> None:
    keys = [
        "1",
        b"1",
        1,
        ("1",),
        (1,),
        (b"1",),
        ((1,),),
        (),
        "",
        b"",
        0,
        -1,
        10**30,
        ("a", (b"b", 2)),
    ]
    for index, key in enumerate(keys):
        store[key] = index
    assert list(store.items()) == [(key, index) for index, key in enumerate(keys)]
    assert len(store) == len(keys)


def test_str_key_that_looks_like_an_encoding_does_not_collide(store: IODict) -> None:
    store[b"abc"] = "bytes"
    store["\xffb\x00\x00\x00\x03abc"] = "str"
    assert store[b"abc"] == "bytes"
    assert store["\xffb\x00\x00\x00\x03abc"] == "str"


@pytest.mark.parametrize("key", [1.5, True, None, frozenset(), object(), (1, 2.0)])
def test_unsupported_keys_rejected_before_touching_disk(tmp_path: Path, key: object) -> None:
    directory = tmp_path / "s"
    store = IODict(directory)
    before = sorted(os.listdir(directory))
    with pytest.raises(UnsupportedKeyError) as raised:
        store[key] = 1  # type: ignore[index]
    assert isinstance(raised.value, TypeError)
    with pytest.raises(UnsupportedKeyError):
        store.update({key: 1, "fine": 2})  # type: ignore[dict-item]
    assert sorted(os.listdir(directory)) == before
    assert key not in store
    with pytest.raises(KeyError):
        store[key]  # type: ignore[index]


def test_unhashable_lookup_is_a_type_error(store: IODict) -> None:
    with pytest.raises(TypeError):
        store[[1]]  # type: ignore[index]


def test_unencodable_value_leaves_store_untouched(tmp_path: Path) -> None:
    store = IODict(tmp_path / "s", format="json")
    store["k"] = "old"
    with pytest.raises(SerializationError):
        store["k"] = object()
    with pytest.raises(SerializationError):
        store.update({"a": 1, "k": {1, 2}})
    assert store == {"k": "old"}


def test_json_format_is_kept_for_life(tmp_path: Path) -> None:
    store = IODict(tmp_path / "s", format="json")
    store["k"] = {"a": [1, 2]}
    assert IODict(tmp_path / "s")["k"] == {"a": [1, 2]}
    with pytest.raises(LayoutError):
        IODict(tmp_path / "s", format="pickle")


def test_layout_cannot_change(tmp_path: Path) -> None:
    IODict(tmp_path / "h", use_xattrs=False)["k"] = 1
    with pytest.raises(LayoutError):
        IODict(tmp_path / "h", use_xattrs=True)
    assert IODict(tmp_path / "h") == {"k": 1}


def test_keys_longer_than_the_xattr_limit_are_stored_in_order(tmp_path: Path) -> None:
    """Issue 12: the xattr layout has no key-length limit (long keys get a header)."""
    directory = tmp_path / "s"
    store = IODict(directory, use_xattrs=True)
    long_key = "k" * 70_000  # far past ext4's ~3.7 KB for one xattr value
    store["short"] = 1
    store[long_key] = 2
    store[(b"x" * 5000, 3)] = 3
    store["after"] = 4
    expected = [("short", 1), (long_key, 2), ((b"x" * 5000, 3), 3), ("after", 4)]
    assert list(store.items()) == expected
    assert list(IODict(directory).items()) == expected
    path = directory / hashlib.sha3_224(long_key.encode()).hexdigest()
    assert "user.key" not in os.listxattr(path)  # kept in the item's header instead
    store[long_key] = "again"  # an overwrite keeps its place
    del store["short"]
    assert list(IODict(directory)) == [long_key, (b"x" * 5000, 3), "after"]
    assert IODict(directory)[long_key] == "again"


def test_corrupt_item_raises_and_is_kept(tmp_path: Path, use_xattrs: bool | None) -> None:
    directory = tmp_path / "s"
    store = IODict(directory, use_xattrs=use_xattrs)
    store["k"] = "value"
    (name,) = item_files(directory)
    path = directory / name
    content = path.read_bytes()
    # Truncate in place, as iodict 0.0.8 itself would leave a file after a crash.
    with open(path, "r+b") as f:
        f.truncate(len(content) - 3)
    with pytest.raises(CorruptFileError) as raised:
        store["k"]
    assert raised.value.path == str(path)
    assert path.read_bytes() == content[:-3]


def test_file_holding_another_key_is_not_returned(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    store = IODict(directory)
    store["a"] = 1
    store["b"] = 2
    name_a = hashlib.sha3_224(b"a").hexdigest()
    name_b = hashlib.sha3_224(b"b").hexdigest()
    os.replace(directory / name_b, directory / name_a)  # simulate a hash collision
    with pytest.raises(CorruptFileError):
        store["a"]


def test_fromkeys_fills_this_store(store: IODict) -> None:
    assert store.fromkeys(["a", "b"], 0) is store
    assert store == {"a": 0, "b": 0}


def test_update_forms_and_order(store: IODict) -> None:
    store.update({"a": 1}, b=2)
    store.update([("c", 3), ("a", 10), ("c", 30)])
    assert list(store.items()) == [("a", 10), ("b", 2), ("c", 30)]


def test_user_lock_object_is_taken(tmp_path: Path) -> None:
    taken = []

    class RecordingLock:
        def __init__(self) -> None:
            self._lock = threading.Lock()

        def __enter__(self) -> None:
            taken.append("enter")
            self._lock.acquire()

        def __exit__(self, *exc: object) -> None:
            self._lock.release()

    store = IODict(tmp_path / "s", lock=RecordingLock())
    taken.clear()
    store["k"] = 1
    assert taken == ["enter"]


def test_bad_lock_argument(tmp_path: Path) -> None:
    from persistkit.core import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        IODict(tmp_path / "s", lock=42)


def test_threads_share_one_store(tmp_path: Path) -> None:
    store = IODict(tmp_path / "s", durability="atomic")
    start = threading.Barrier(4)

    def work(n: int) -> None:
        start.wait()
        for i in range(50):
            store[f"{n}-{i}"] = i
            store.setdefault("shared", n)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store) == 201
    for n in range(4):
        mine = [key for key in store if isinstance(key, str) and key.startswith(f"{n}-")]
        assert mine == [f"{n}-{i}" for i in range(50)]


def test_no_xattr_mount_uses_header_layout(no_xattr_mount: Path) -> None:
    directory = no_xattr_mount / "store"
    store = IODict(directory)
    store["b"] = 1
    store["a"] = 2
    store["b"] = 3
    assert list(store.items()) == [("b", 3), ("a", 2)]
    assert IODict(directory) == {"b": 3, "a": 2}
    with pytest.raises(LayoutError):
        IODict(no_xattr_mount / "other", use_xattrs=True)


def test_full_disk_keeps_old_items(small_tmpfs: Path) -> None:
    directory = small_tmpfs / "full"
    store = IODict(directory, format="pickle")
    store["keep"] = "safe"
    big = b"x" * 200_000
    written = 0
    with pytest.raises(OSError) as raised:
        for i in range(100):
            store[f"big{i}"] = big
            written += 1
    assert raised.value.errno == 28  # ENOSPC, a real full disk
    assert store["keep"] == "safe"
    assert len(store) == written + 1
    assert not leftovers(directory)
    store.clear()


def test_durable_writes_cost_one_flush_and_report_through_core(tmp_path: Path) -> None:
    """Issue 11: a durable change is one journal flush, before anything is published."""
    from persistkit.core.testing import record_calls

    store = IODict(tmp_path / "s")
    store["warm"] = 0
    flushes = ("fsync", "fsync_dir", "fdatasync", "syncfs")
    for change in (
        lambda: store.__setitem__("k", 1),  # a new key
        lambda: store.__setitem__("k", 2),  # an overwrite
        lambda: store.update({"u": 1, "v": 2, "k": 3}),
        lambda: store.__delitem__("u"),
        store.popleft,
    ):
        calls = [call.name for call in record_calls(change)]
        assert [name for name in calls if name in flushes] == ["fdatasync"], calls
        published = [i for i, name in enumerate(calls) if name in ("link", "rename", "unlink")]
        assert calls.index("fdatasync") < min(published)  # write-ahead
    calls = [call.name for call in record_calls(lambda: store.__setitem__("n", 1))]
    assert calls.index("setxattr") < calls.index("link")  # a new key: an unnamed file linked in
    atomic = IODict(tmp_path / "a", durability="atomic")
    calls = [call.name for call in record_calls(lambda: atomic.__setitem__("k", 1))]
    assert not set(calls) & set(flushes)
