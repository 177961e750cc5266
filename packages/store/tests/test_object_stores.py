"""A store kept in an object store: the URL, the envelope, compare-and-swap transactions.

Against the real SeaweedFS server of core's fixtures. Two kinds of fault appear, and each test
says which: real (the server process killed with SIGKILL) and injected at the HTTP boundary
(`S3FaultProxy` loses a reply after the server applied the write, which no server does on
cue). The behaviour shared with local files is tested on both in the other files (``place``).
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistkit import store
from persistkit.core import (
    ConflictError,
    LocalObjectStore,
    ObjectStore,
    OutcomeUnknownError,
    S3ObjectStore,
    StoreUnavailableError,
    UnsupportedOperationError,
)
from persistkit.core.errors import InvalidArgumentError
from persistkit.core.pytest_plugin import StartCluster, StartSeaweed
from persistkit.core.testing import (
    Fault,
    S3Endpoint,
    S3FaultProxy,
    run_until_killed,
    sockets_left_open,
)
from persistkit.store import CorruptFileError, TransactionConflictError


@pytest.fixture
def objects(s3_server: S3Endpoint, s3_bucket: str) -> Iterator[S3ObjectStore]:
    with s3_server.store(s3_bucket, "stores") as opened:
        yield opened


def header_of(objects: ObjectStore, key: str) -> list[str]:
    return objects.get(key).data.split(b"\n", 1)[0].decode().split(" ")


# -- where a store lives -----------------------------------------------------------------


def test_an_s3_url_names_the_object_by_its_last_segment(
    s3_server: S3Endpoint, s3_bucket: str, s3_environment: S3Endpoint
) -> None:
    url = f"s3://{s3_bucket}/jobs/run-7/state.json"
    with store.open(url, default={}) as state:
        state.value["step"] = 3
    assert state.path == url
    with s3_server.store(s3_bucket, "jobs/run-7") as objects:
        assert objects.get("state.json").data.endswith(b'{"step": 3}')
    assert store.open(f"s3://{s3_bucket}/jobs/run-7", key="state.json").value == {"step": 3}


@pytest.mark.parametrize("url", ["s3://bucket", "s3://bucket/", "s3://bucket/prefix/"])
def test_a_url_without_a_key_is_refused(url: str) -> None:
    with pytest.raises(InvalidArgumentError, match="names no object"):
        store.open(url)


def test_an_object_store_needs_a_key_and_a_local_file_takes_none(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="key="):
        store.open(LocalObjectStore(tmp_path / "objects"))
    with pytest.raises(InvalidArgumentError, match="local file"):
        store.open(tmp_path / "s.json", key="s.json")
    with pytest.raises(InvalidArgumentError):
        store.open(LocalObjectStore(tmp_path / "objects"), key="")
    assert list(tmp_path.iterdir()) == []


def test_a_store_in_core_s_local_object_store_works_the_same(tmp_path: Path) -> None:
    objects = LocalObjectStore(tmp_path / "objects")
    counter = store.open(objects, key="counter", default=0)
    for attempt in counter.transaction():
        with attempt as state:
            state.value += 1
    assert counter.commit().durable
    assert store.open(objects, key="counter").value == 1
    assert objects.get("counter").data.startswith(b"persistkit-store/1 2 ")


def test_there_is_no_lock_file_in_an_object_store(objects: S3ObjectStore) -> None:
    state = store.open(objects, key="s")
    with pytest.raises(UnsupportedOperationError):
        _ = state.lock_path


@pytest.mark.parametrize("key", ["a//b", "a/b", "trail/", "..", "../escape", "/lead", "a/./b"])
def test_keys_the_server_treats_as_paths_are_distinct_safe_objects(
    s3_server: S3Endpoint, s3_bucket: str, key: str
) -> None:
    with s3_server.store(s3_bucket, "keys") as objects:
        for each in (key, "a"):
            with store.open(objects, key=each, default=None) as state:
                state.value = each
        assert store.open(objects, key=key).value == key
        assert store.open(objects, key="a").value == "a"
    client = s3_server.client()
    try:
        names = [item["Key"] for item in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    finally:
        client.close()
    assert len(names) == 2
    assert all(name.startswith("keys/") and "/" not in name[len("keys/") :] for name in names)


# -- what an object holds ------------------------------------------------------------------


def test_every_write_gets_a_new_header_over_the_bytes_a_local_file_would_hold(
    objects: S3ObjectStore, tmp_path: Path
) -> None:
    remote = store.open(objects, key="s", default={"a": [1, 2]})
    local = store.open(tmp_path / "s", default={"a": [1, 2]})
    local.commit()
    remote.commit()
    first = objects.get("s")
    remote.commit()  # the same value again
    second = objects.get("s")
    assert first.version != second.version  # equal values, different bytes
    generation, writers = header_of(objects, "s")[1:]
    assert generation == "2"
    assert len(writers.split(",")) == 2
    assert second.data.split(b"\n", 1)[1] == (tmp_path / "s").read_bytes()


def test_an_object_written_by_another_tool_opens_as_a_bare_value(objects: S3ObjectStore) -> None:
    objects.put("config.json", b'{"workers": 4}')
    config = store.open(objects, key="config.json")
    assert config.value == {"workers": 4}
    for attempt in config.transaction():
        with attempt as state:
            state.value["workers"] = 8
    assert header_of(objects, "config.json")[:2] == ["persistkit-store/1", "1"]
    assert store.open(objects, key="config.json").value == {"workers": 8}


@pytest.mark.parametrize(
    "data",
    [b"persistkit-store/1 x\n1", b"persistkit-store/9 1 abc\n1", b"persistkit-store/1 1 a"],
    ids=["damaged", "newer-format", "no-end"],
)
def test_a_damaged_header_is_a_corrupt_value_and_the_object_is_kept(
    objects: S3ObjectStore, data: bytes
) -> None:
    objects.put("s", data)
    with pytest.raises(CorruptFileError) as caught:
        store.open(objects, key="s", default=0)
    assert caught.value.path == f"{objects.location}/s"
    assert objects.get("s").data == data


def test_a_url_whose_object_is_damaged_leaves_no_connection_open(
    s3_server: S3Endpoint, s3_bucket: str, s3_environment: S3Endpoint
) -> None:
    # The object store opened from the URL is the store's: a caller that keeps the error
    # (and its traceback) must not keep the connections.
    s3_server.client().put_object(Bucket=s3_bucket, Key="jobs/s", Body=b"persistkit-store/1 x\n1")
    assert not sockets_left_open(lambda: store.open(f"s3://{s3_bucket}/jobs/s"), CorruptFileError)


# -- transactions: compare-and-swap ---------------------------------------------------------


def test_a_with_transaction_that_lost_the_race_raises_and_writes_nothing(
    objects: S3ObjectStore,
) -> None:
    mine = store.open(objects, key="counter", default=0)
    theirs = store.open(objects, key="counter", default=0)
    with pytest.raises(TransactionConflictError) as caught, mine.transaction() as state:
        state.value += 1
        theirs.value = 10
        theirs.commit()  # another writer commits while the block runs
    assert isinstance(caught.value, ConflictError)
    assert isinstance(caught.value, TimeoutError)
    assert store.open(objects, key="counter").value == 10


def test_a_value_that_came_back_still_fails_a_stale_swap(objects: S3ObjectStore) -> None:
    # A-B-A: the value returns to the bytes the transaction read; its header does not.
    mine = store.open(objects, key="flag", default="A")
    theirs = store.open(objects, key="flag", default="A")
    theirs.commit()
    with pytest.raises(TransactionConflictError), mine.transaction() as state:
        theirs.value = "B"
        theirs.commit()
        theirs.value = "A"
        theirs.commit()
        state.value = "C"
    assert store.open(objects, key="flag").value == "A"


def test_the_loop_runs_the_block_again_on_a_fresh_read_after_losing(
    objects: S3ObjectStore,
) -> None:
    counter = store.open(objects, key="counter", default=0)
    other = store.open(objects, key="counter", default=0)
    seen = []
    for attempt in counter.transaction():
        with attempt as state:
            seen.append(state.value)
            if len(seen) == 1:
                other.value = 100
                other.commit()
            state.value += 1
    assert seen == [0, 100]
    assert store.open(objects, key="counter").value == 101


def test_the_loop_gives_up_after_its_attempts_with_a_typed_error(objects: S3ObjectStore) -> None:
    counter = store.open(objects, key="counter", default=0)
    other = store.open(objects, key="counter", default=0)
    runs = 0
    with pytest.raises(TransactionConflictError, match="3 attempts"):
        for attempt in counter.transaction(attempts=3):
            with attempt as state:
                runs += 1
                other.value += 10
                other.commit()
                state.value += 1
    assert runs == 3
    assert store.open(objects, key="counter").value == 30


def test_an_attempt_must_be_used_as_a_with_block(objects: S3ObjectStore) -> None:
    counter = store.open(objects, key="counter", default=0)
    with pytest.raises(store.TransactionError, match="with attempt"):
        for _attempt in counter.transaction():
            counter.value += 1
    assert list(objects.list()) == []


WRITERS = 16
INCREMENTS = 5


def test_sixteen_writers_through_two_gateways_lose_no_update_through_a_volume_server_kill(
    seaweedfs_cluster: StartCluster,
) -> None:
    # Threads, each with its own store object and connections, half of them on each S3
    # gateway of a distributed SeaweedFS (as if on two machines): the server arbitrates.
    # A real fault: one of its three volume servers is SIGKILLed while they run.
    cluster = seaweedfs_cluster()
    bucket = cluster.endpoints[0].create_bucket()
    gate = threading.Barrier(WRITERS)
    lock = threading.Lock()
    tally = Counter[str]()
    started = threading.Event()
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        gateway = cluster.endpoints[index % 2]
        with gateway.store(bucket, "race") as objects:
            counter = store.open(objects, key="counter", default=0)
            gate.wait()
            try:
                work(counter)
            finally:
                started.set()  # a writer that ended early must not leave the test waiting

    def work(counter: store.AtomicStore[int]) -> None:
        done = 0
        while done < INCREMENTS:
            try:
                for attempt in counter.transaction(attempts=1000):
                    with attempt as state:
                        state.value += 1
            except OutcomeUnknownError:
                outcome = "unknown"  # may have landed: not tried again
            except StoreUnavailableError:
                continue  # nothing was written (a read failed): try again
            except BaseException as error:
                errors.append(error)
                return
            else:
                outcome = "acknowledged"
            done += 1
            with lock:
                tally[outcome] += 1
                if tally["acknowledged"] == 20:
                    started.set()

    threads = [threading.Thread(target=writer, args=(index,)) for index in range(WRITERS)]
    for thread in threads:
        thread.start()
    started.wait()
    cluster.kill("volume1")
    for thread in threads:
        thread.join()
    assert errors == []
    acknowledged, unknown = tally["acknowledged"], tally["unknown"]
    assert acknowledged + unknown == WRITERS * INCREMENTS
    for gateway in cluster.endpoints:  # both see every update, each written once
        with gateway.store(bucket, "race") as objects:
            value = store.open(objects, key="counter").value
            assert acknowledged <= value <= acknowledged + unknown
            assert header_of(objects, "counter")[1] == str(value)


# -- the server fails mid-commit (injected: a reply lost after the write landed) --------------


@pytest.fixture
def proxy(s3_server: S3Endpoint) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_server) as running:
        yield running


@pytest.fixture
def through_proxy(proxy: S3FaultProxy, s3_bucket: str) -> Iterator[S3ObjectStore]:
    """The objects of ``objects``, reached through the proxy; its capability probe done first.

    The probe's requests must not meet the planned fault (nor its ``then``, which would wait
    for the probe it interrupted).
    """
    with proxy.endpoint.store(s3_bucket, "stores") as opened:
        opened.capabilities()
        yield opened


def test_a_commit_whose_reply_was_lost_while_another_writer_swapped_on_top_counts_once(
    proxy: S3FaultProxy, through_proxy: S3ObjectStore, objects: S3ObjectStore
) -> None:
    direct = store.open(objects, key="counter", default=0)
    direct.commit()
    other = store.open(objects, key="counter", default=0)

    def another_writer_commits_on_top() -> None:
        for attempt in other.transaction():
            with attempt as state:
                state.value += 10

    # Injected: the swap lands, its reply is lost, and another writer commits before the
    # client can look; core cannot settle it (the object moved on), the store's lineage can.
    proxy.plan(Fault("PUT", when="after", status=503, then=another_writer_commits_on_top))
    counter = store.open(through_proxy, key="counter", default=0)
    runs = 0
    for attempt in counter.transaction():
        with attempt as state:
            runs += 1
            state.value += 1
    assert proxy.hits
    assert runs == 1  # settled as landed: not run again
    assert store.open(objects, key="counter").value == 11


def test_a_commit_refused_by_a_failing_server_while_another_writer_won_runs_again(
    proxy: S3FaultProxy, through_proxy: S3ObjectStore, objects: S3ObjectStore
) -> None:
    store.open(objects, key="counter", default=0).commit()
    other = store.open(objects, key="counter", default=0)

    def another_writer_commits() -> None:
        for attempt in other.transaction():
            with attempt as state:
                state.value += 10

    # Injected: the server answers 503 without applying the swap, and another writer
    # commits meanwhile; the lineage shows ours is not there, so the block runs again.
    proxy.plan(Fault("PUT", when="before", status=503, then=another_writer_commits))
    counter = store.open(through_proxy, key="counter", default=0)
    seen = []
    for attempt in counter.transaction():
        with attempt as state:
            seen.append(state.value)
            state.value += 1
    assert seen == [0, 10]
    assert store.open(objects, key="counter").value == 11


def test_an_unsettled_outcome_reaches_the_caller_as_a_typed_error(
    proxy: S3FaultProxy, through_proxy: S3ObjectStore, objects: S3ObjectStore
) -> None:
    store.open(objects, key="counter", default=0).commit()
    other = store.open(objects, key="counter", default=0)

    def many_writers_commit_on_top() -> None:
        for _ in range(20):  # more writes than a header remembers
            other.reload()
            other.value += 1
            other.commit()

    # Injected: the reply is lost and 20 commits follow before the client can look.
    proxy.plan(Fault("PUT", when="after", status=503, then=many_writers_commit_on_top))
    counter = store.open(through_proxy, key="counter", default=0)
    with pytest.raises(OutcomeUnknownError) as caught, counter.transaction() as state:
        state.value += 1
    assert isinstance(caught.value, StoreUnavailableError)


# -- the server killed mid-run (real) -------------------------------------------------------

INCREMENTER = r"""
import sys
from persistkit import store
from persistkit.core import S3ObjectStore, StoreUnavailableError
endpoint, key_id, secret, bucket = sys.argv[1:5]
objects = S3ObjectStore(bucket, "crash", endpoint_url=endpoint, access_key=key_id,
                        secret_key=secret, region="us-east-1", retries=2, settle_attempts=2)
counter = store.open(objects, key="counter", default=0)
done = 0
try:
    while True:
        for attempt in counter.transaction():
            with attempt as state:
                state.value += 1
        done += 1
        print("ack", done, flush=True)
except StoreUnavailableError as error:
    print("error", type(error).__name__, flush=True)
"""


@pytest.mark.slow
def test_the_server_killed_mid_transaction_loses_no_acknowledged_commit(
    seaweedfs: StartSeaweed,
) -> None:
    server = seaweedfs()
    endpoint = server.endpoint
    bucket = endpoint.create_bucket()
    # SIGKILL of the server while the writer runs its next transaction
    run = run_until_killed(endpoint.spawn_python(INCREMENTER, bucket), server.kill, after=20)
    assert run.returncode == 0
    acknowledged = max(int(words[0]) for words in run.acks)

    server.start()
    with endpoint.store(bucket, "crash") as objects:
        value = store.open(objects, key="counter").value  # whole: it decodes
    # Every acknowledged commit is there; the one in flight may have landed too.
    assert value in (acknowledged, acknowledged + 1)


def test_the_command_prints_a_store_on_s3_without_writing(
    objects: S3ObjectStore,
    s3_server: S3Endpoint,
    s3_bucket: str,
    persistkit_command: Any,
    s3_environment: S3Endpoint,
) -> None:
    with store.open(objects, key="state.json", default={}) as state:
        state.value["step"] = 3
    before = objects.get("state.json")
    shown = persistkit_command("store", f"s3://{s3_bucket}/stores/state.json", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["value"] == {"step": 3}
    missing = persistkit_command("store", f"s3://{s3_bucket}/stores/other.json")
    assert missing.returncode == 1
    assert "no store here" in missing.stderr
    assert objects.get("state.json") == before
    assert list(objects.list()) == ["state.json"]
