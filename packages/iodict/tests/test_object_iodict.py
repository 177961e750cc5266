"""IODict in an object store, proven against a real SeaweedFS server (never a mock).

The mapping behaviours shared with a folder's IODict run over both backends in
test_iodict.py (its ``store`` fixture); this file holds what is particular to objects: URLs,
keys the server treats as paths, writers and consumers racing through one or two gateways,
and replies lost after the server applied a write. Two kinds of fault appear, and each test
says which: injected at the HTTP boundary (`S3FaultProxy` forwards every request to the real
server, then loses the reply: no server does that on cue) and real (a volume server of the
cluster killed with SIGKILL).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from persistkit.core import (
    ConditionNotHonouredError,
    CorruptFileError,
    InvalidArgumentError,
    ObjectStore,
    OutcomeUnknownError,
    S3ObjectStore,
    StoreUnavailableError,
)
from persistkit.core.pytest_plugin import StartCluster, StartSeaweed
from persistkit.core.testing import Fault, S3Endpoint, S3FaultProxy, sockets_left_open
from persistkit.iodict import DurableQueue, IODict, LayoutError, ReadOnlyStoreError

SAFE = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_%~/")


def run_together(workers: list[Callable[[], object]]) -> list[Any]:
    """Run each worker in its own thread, all released at once; return their results."""
    start = threading.Barrier(len(workers))
    results: list[Any] = [None] * len(workers)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        start.wait()
        try:
            results[index] = workers[index]()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def drain(store: IODict) -> list[Any]:
    """Pop the oldest item until the dict is empty; return the values in the order taken."""
    taken = []
    while True:
        try:
            taken.append(store.popleft())
        except KeyError:
            return taken


@pytest.fixture
def proxy(s3_server: S3Endpoint) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_server) as running:
        yield running


# -- naming the dict ---------------------------------------------------------------------


def test_an_s3_url_opens_the_dict_every_handle_shares(
    s3_server: S3Endpoint, s3_bucket: str, s3_environment: S3Endpoint
) -> None:
    store = IODict(f"s3://{s3_bucket}/jobs/results")
    assert isinstance(store, IODict)
    assert store.path == f"s3://{s3_bucket}/jobs/results"
    for key in ["z", "a", "m", "b"]:
        store[key] = key
    store["a"] = "again"  # an overwrite keeps the place, as in dict
    del store["m"]
    store["m"] = "back"  # delete + insert moves to the end, as in dict
    expected = {"z": "z", "a": "again", "b": "b", "m": "back"}
    other = IODict(s3_server.store(s3_bucket, "jobs/results"))  # a second machine, say
    assert list(other.items()) == list(expected.items())
    assert len(other) == 4 and other["a"] == "again"
    store.close()
    other.close()


def test_a_url_whose_meta_is_damaged_leaves_no_connection_open(
    s3_server: S3Endpoint, s3_bucket: str, s3_environment: S3Endpoint
) -> None:
    # The object store opened from the URL is the dict's: a caller that keeps the error
    # (and its traceback) must not keep the connections.
    s3_server.client().put_object(Bucket=s3_bucket, Key="jobs/meta", Body=b"{not")
    assert not sockets_left_open(lambda: IODict(f"s3://{s3_bucket}/jobs"), CorruptFileError)


def test_urls_and_stores_go_only_where_they_can(tmp_path: Any, s3_objects: ObjectStore) -> None:
    with pytest.raises(InvalidArgumentError):
        IODict("gs://bucket/prefix")
    with pytest.raises(InvalidArgumentError):
        IODict(s3_objects, durability="atomic")  # the server decides durability
    with pytest.raises(InvalidArgumentError):
        IODict(s3_objects, use_xattrs=True)

    class Mine(IODict):  # type: ignore[type-arg]
        pass

    with pytest.raises(InvalidArgumentError):
        Mine(s3_objects)  # a subclass of the folder's IODict keeps a folder
    with pytest.raises(InvalidArgumentError):
        DurableQueue("s3://bucket/queue")  # not "a folder named s3: here"
    with pytest.raises(InvalidArgumentError):
        DurableQueue(s3_objects)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
    assert list(s3_objects.list()) == []


def test_opening_and_reading_write_nothing(s3_objects: ObjectStore) -> None:
    store = IODict(s3_objects)
    assert len(store) == 0 and list(store) == [] and "k" not in store
    assert store.get("k") is None
    assert list(s3_objects.list()) == []
    store["k"] = 1
    before = {name: s3_objects.get(name) for name in s3_objects.list()}
    reader = IODict(s3_objects, read_only=True)
    assert dict(reader) == {"k": 1}
    with pytest.raises(ReadOnlyStoreError) as raised:
        reader["k"] = 2
    assert isinstance(raised.value, PermissionError)
    with pytest.raises(ReadOnlyStoreError):
        reader.popleft()
    assert {name: s3_objects.get(name) for name in s3_objects.list()} == before


def test_the_format_is_kept_for_life(s3_objects: ObjectStore) -> None:
    IODict(s3_objects, format="json")["k"] = [1, 2]
    assert IODict(s3_objects)["k"] == [1, 2]
    with pytest.raises(LayoutError):
        IODict(s3_objects, format="pickle")


# -- keys --------------------------------------------------------------------------------


def test_keys_the_server_treats_as_paths_map_to_safe_names(
    s3_server: S3Endpoint, s3_bucket: str
) -> None:
    objects = s3_server.store(s3_bucket, "dict")
    store = IODict(objects)
    keys: list[Any] = [
        "a//b",
        "a/b",
        "trailing/",
        "/",
        "..",
        "../escape",
        "/etc/passwd",
        "",
        "\x00nul",
        "é" * 300,
        "x" * 3000,  # longer than any S3 key: hashed
        "y" * 300,  # spelled out in its order entry, whose name is cut by ~/
        b"a//b",
        ("a//b", 1),
    ]
    for index, key in enumerate(keys):
        store[key] = index
    assert list(store.items()) == [(key, index) for index, key in enumerate(keys)]
    reopened = IODict(s3_server.store(s3_bucket, "dict"))
    assert list(reopened.items()) == [(key, index) for index, key in enumerate(keys)]
    # Every object lies under the dict's prefix, with a name made of plain characters.
    client = s3_server.client()
    names = [each["Key"] for each in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    client.close()
    assert names and all(name.startswith("dict/") for name in names)
    assert all(set(name) <= SAFE and "//" not in name and "/../" not in name for name in names)
    for key in keys:
        del store[key]
    assert len(store) == 0 and list(store) == []
    assert sorted(objects.list()) == ["births", "meta"]


def test_an_object_holding_another_key_or_garbage_is_an_error_and_kept(
    s3_objects: ObjectStore,
) -> None:
    store = IODict(s3_objects)
    store["a"] = 1
    store["b"] = 2
    names = sorted(name for name in s3_objects.list("items/"))
    first = s3_objects.get(names[0])
    s3_objects.put(names[1], first.data)  # b's item now holds a's key
    s3_objects.put(names[0], b"not an item")
    for key in ["a", "b"]:
        with pytest.raises(CorruptFileError):
            store[key]
    assert list(store) == ["a", "b"]  # listing keys never needs their values
    assert s3_objects.get(names[0]).data == b"not an item"
    assert s3_objects.get(names[1]) == first


@pytest.mark.parametrize("size", [3, 20])  # keys checked one by one, and by a listing too
def test_writers_that_died_between_their_two_requests_leave_a_dict_read_right(
    s3_objects: ObjectStore, size: int
) -> None:
    # A new key's writer creates the order entry, then the item; a remover deletes the item,
    # then the entry. Here each died between the two (the second request never sent).
    store = IODict(s3_objects)
    store.update({f"k{i:02d}": i for i in range(size)})
    entries = sorted(s3_objects.list("order/"))
    items = {s3_objects.get(name).data: name for name in s3_objects.list("items/")}
    gone = next(name for data, name in items.items() if b"k01" in data)
    s3_objects.delete(gone)  # k01 removed, its entry left behind
    s3_objects.put_if_absent("order/999999999999kZGVhZA", b"dead")  # an entry, no item
    assert list(store) == [f"k{i:02d}" for i in range(size) if i != 1]
    assert len(store) == size - 1
    store["k01"] = "again"  # a new life: a new entry, at the end
    store["k00"] = "updated"  # an update keeps its place
    expected = [f"k{i:02d}" for i in range(size) if i != 1] + ["k01"]
    assert list(store) == expected
    assert list(IODict(s3_objects)) == expected
    assert entries[1] in set(s3_objects.list("order/"))  # the stale entry is only skipped
    assert store.popitem(last=False) == ("k00", "updated")
    assert store.popitem() == ("k01", "again")


def test_the_first_key_and_popleft_cost_a_few_requests_however_big_the_dict(
    proxy: S3FaultProxy, s3_bucket: str
) -> None:
    store = IODict(proxy.endpoint.store(s3_bucket, "first"))
    store.update({f"k{i:02d}": i for i in range(30)})
    before = len(proxy.forwarded)
    assert next(iter(store)) == "k00"
    sent = proxy.forwarded[before:]
    assert [method for method, _, _ in sent] == ["GET", "GET"]  # a LIST, then the item
    assert "max-keys=16" in sent[0][1]  # a short page, whatever the size of the dict
    before = len(proxy.forwarded)
    assert store.popleft() == 0
    assert [method for method, _, _ in proxy.forwarded[before:]] == [
        "GET",
        "GET",
        "DELETE",
        "DELETE",
    ]
    assert list(store) == [f"k{i:02d}" for i in range(1, 30)]  # past the first page too
    assert store.popitem() == ("k29", 29)


def test_in_asks_with_one_head_and_downloads_nothing(proxy: S3FaultProxy, s3_bucket: str) -> None:
    store = IODict(proxy.endpoint.store(s3_bucket, "in"))
    store["big"] = b"x" * 1_000_000
    before = len(proxy.forwarded)
    assert "big" in store and "absent" not in store
    assert [method for method, _, _ in proxy.forwarded[before:]] == ["HEAD", "HEAD"]


# -- writers and consumers racing ----------------------------------------------------------


def test_racing_writers_keep_every_key_and_each_writers_order(
    s3_server: S3Endpoint, s3_bucket: str
) -> None:
    writers = 8

    def writer(n: int) -> Callable[[], object]:
        def work() -> object:
            store = IODict(s3_server.store(s3_bucket, "race"))
            won = store.setdefault("shared", n) == n
            for i in range(10):
                store[f"{n}-{i}"] = i
            store.update({f"{n}-u{i}": i for i in range(5)})
            return won

        return work

    won = run_together([writer(n) for n in range(writers)])
    assert won.count(True) == 1  # setdefault: one creator wins, the others read its value
    store = IODict(s3_server.store(s3_bucket, "race"))
    keys = list(store)
    assert len(keys) == len(set(keys)) == len(store) == 1 + writers * 15
    for n in range(writers):
        mine = [key for key in keys if key.startswith(f"{n}-")]
        assert mine == [f"{n}-{i}" for i in range(10)] + [f"{n}-u{i}" for i in range(5)]


def test_threads_sharing_one_dict_keep_every_key_and_their_order(s3_objects: ObjectStore) -> None:
    # Threads asking for births at once share swaps of the counter: each still gets its own.
    store = IODict(s3_objects)

    def writer(n: int) -> Callable[[], object]:
        def work() -> object:
            for i in range(8):
                store[f"{n}-{i}"] = i
            store.update({f"{n}-u{i}": i for i in range(3)})
            return None

        return work

    run_together([writer(n) for n in range(6)])
    keys = list(IODict(s3_objects))
    assert len(keys) == len(set(keys)) == 6 * 11
    for n in range(6):
        mine = [key for key in keys if key.startswith(f"{n}-")]
        assert mine == [f"{n}-{i}" for i in range(8)] + [f"{n}-u{i}" for i in range(3)]
    births = [name[len("order/") :][:12] for name in s3_objects.list("order/")]
    assert len(births) == len(set(births)) == 6 * 11


def test_racing_consumers_each_take_every_item_once_oldest_first(
    s3_server: S3Endpoint, s3_bucket: str
) -> None:
    producer = IODict(s3_server.store(s3_bucket, "work"))
    producer.update({f"task-{i:03d}": i for i in range(60)})
    consumers = [IODict(s3_server.store(s3_bucket, "work")) for _ in range(4)]
    taken = run_together([functools.partial(drain, c) for c in consumers])
    everything = [value for each in taken for value in each]
    assert sorted(everything) == list(range(60))  # none twice, none lost
    for each in taken:
        assert each == sorted(each)  # each consumer got the oldest left
    assert len(producer) == 0


# -- faults --------------------------------------------------------------------------------


@pytest.mark.parametrize(("when", "status"), [("after", 503), ("after", 409), ("drop", 0)])
def test_a_lost_reply_after_a_write_landed_neither_duplicates_nor_loses(
    proxy: S3FaultProxy, s3_server: S3Endpoint, s3_bucket: str, when: str, status: int
) -> None:
    # Injected: the server applies each request, the proxy loses its reply. A new key takes
    # three conditional PUTs (birth, order entry, item); fault the 1st, 2nd, 3rd, all.
    store = IODict(proxy.endpoint.store(s3_bucket, "faults"))
    store["first"] = 0
    expected = {"first": 0}
    for index, count in enumerate([1, 2, 3, 6]):
        proxy.plan(Fault("PUT", when=when, status=status, count=count))
        store[f"new-{index}"] = index
        expected[f"new-{index}"] = index
    assert proxy.hits
    proxy.plan(Fault("PUT", when=when, status=status))  # an update's put_if_match
    store["first"] = "updated"
    expected["first"] = "updated"
    proxy.plan(Fault("DELETE", when=when, status=status))  # a pop's delete_if_match
    assert store.pop("new-0") == 0
    del expected["new-0"]
    direct = IODict(s3_server.store(s3_bucket, "faults"))
    assert list(direct.items()) == list(expected.items())
    assert len(direct) == len(expected)


def test_a_birth_whose_reply_is_lost_while_another_writer_takes_one_is_never_shared(
    proxy: S3FaultProxy, s3_server: S3Endpoint, s3_bucket: str
) -> None:
    # Injected: our birth counter swap lands, its reply is lost, and another writer swaps the
    # counter before we re-read it: whether ours landed cannot be told, so the number is
    # given up (a gap) and a fresh one taken. Both keys stay, in the order of their births.
    mine = IODict(proxy.endpoint.store(s3_bucket, "gap"))
    theirs = IODict(s3_server.store(s3_bucket, "gap"))
    mine["start"] = 0

    def another_writer() -> None:
        theirs["theirs"] = 1

    proxy.plan(Fault("PUT", when="after", status=503, then=another_writer))
    mine["mine"] = 2
    assert proxy.hits
    assert list(IODict(s3_server.store(s3_bucket, "gap")).items()) == [
        ("start", 0),
        ("theirs", 1),
        ("mine", 2),
    ]


def test_a_server_ignoring_if_match_on_delete_is_refused_and_nothing_is_lost(
    proxy: S3FaultProxy, s3_bucket: str
) -> None:
    # Injected: the proxy strips If-Match from DELETE, as Ceph RGW ignores it.
    proxy.strip_if_match_on_delete = True
    objects = proxy.endpoint.store(s3_bucket, "rgw")
    assert isinstance(objects, S3ObjectStore)
    store = IODict(objects)
    store["k"] = 1
    for remove in (lambda: store.pop("k"), store.popleft, lambda: store.__delitem__("k")):
        with pytest.raises(ConditionNotHonouredError):
            remove()
    assert dict(store) == {"k": 1}


@pytest.mark.slow
def test_the_server_killed_mid_write_loses_nothing_acknowledged(seaweedfs: StartSeaweed) -> None:
    # Real fault: the one server process is SIGKILLed while a writer is setting keys.
    server = seaweedfs()
    bucket = server.endpoint.create_bucket()
    store = IODict(server.endpoint.store(bucket, "job"))
    acknowledged: list[str] = []
    twenty = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        for i in range(10_000):
            try:
                store[f"k{i:05d}"] = i
            except BaseException as error:
                failures.append(error)
                twenty.set()
                return
            acknowledged.append(f"k{i:05d}")
            if len(acknowledged) == 20:
                twenty.set()

    thread = threading.Thread(target=writer)
    thread.start()
    assert twenty.wait(timeout=600)
    server.kill()
    thread.join()
    assert len(failures) == 1 and isinstance(failures[0], StoreUnavailableError), failures
    server.start()  # the same data folder, as after a crash
    reopened = IODict(server.endpoint.store(bucket, "job"))
    keys = list(reopened)
    # Every acknowledged key, in order; the one in flight is there whole, or not at all.
    assert keys[: len(acknowledged)] == acknowledged
    assert len(keys) - len(acknowledged) in (0, 1) and len(reopened) == len(keys)
    assert all(reopened[key] == int(key[1:]) for key in keys)
    reopened["after"] = "restart"
    assert list(reopened)[-1] == "after"


# -- a distributed server: two gateways, a volume server killed -----------------------------


@pytest.mark.slow
def test_two_gateways_keep_every_key_one_order_and_exactly_once_pops(
    seaweedfs_cluster: StartCluster,
) -> None:
    cluster = seaweedfs_cluster()
    bucket = cluster.endpoints[0].create_bucket()

    def opened(n: int) -> IODict:  # writer n is on gateway n % 2, as if on another machine
        return IODict(cluster.endpoints[n % 2].store(bucket, "job"))

    def writer(n: int) -> Callable[[], object]:
        def work() -> object:
            store = opened(n)
            for i in range(12):
                store[f"{n}-{i}"] = i
            return store.setdefault("shared", n) == n

        return work

    won = run_together([writer(n) for n in range(6)])
    assert won.count(True) == 1
    views = [list(opened(n).items()) for n in range(2)]
    assert views[0] == views[1]  # both gateways see one order
    keys = [key for key, _ in views[0]]
    assert len(keys) == len(set(keys)) == 1 + 6 * 12
    for n in range(6):
        assert [k for k in keys if k.startswith(f"{n}-")] == [f"{n}-{i}" for i in range(12)]

    # Real fault: a volume server dies while consumers on both gateways drain the dict.
    # Every item is taken exactly once (replication keeps each object on two servers); a
    # consumer that meets the failure retries, as a worker would.
    consumers = [opened(n) for n in range(4)]
    halfway = threading.Event()
    guard = threading.Lock()
    popped: list[Any] = []
    failures: list[StoreUnavailableError] = []

    def consumer(store: IODict) -> None:
        while True:
            try:
                key, _ = store.popitem(last=False)
            except KeyError:
                return
            except StoreUnavailableError as error:
                failures.append(error)
                continue
            with guard:
                popped.append(key)
                if len(popped) == 30:
                    halfway.set()

    def killer() -> None:
        assert halfway.wait(timeout=600)
        cluster.kill(cluster.volume_servers()[0])

    run_together([*(functools.partial(consumer, c) for c in consumers), killer])
    assert not any(isinstance(error, OutcomeUnknownError) for error in failures), failures
    assert sorted(popped) == sorted(keys)  # none twice, none lost
    assert len(opened(0)) == 0
