"""Trackers and PODs on an object store: the local backend and a real S3 server (SeaweedFS).

Each test that names ``backend`` runs on a folder of objects (`LocalObjectStore`) and on the
S3 server the core plugin starts (``weed mini`` on loopback, never a mock). Several Tracker
objects on one location stand for several machines: each is a writer of its own. The faults
are real too: the S3 fault proxy loses a reply after the server applied the write.
"""

from __future__ import annotations

import errno
import os
import select
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persistkit.core import LocalObjectStore, ObjectStore, OutcomeUnknownError
from persistkit.core.errors import InvalidArgumentError, SerializationError
from persistkit.core.pytest_plugin import StartSeaweed
from persistkit.core.testing import (
    Fault,
    S3Endpoint,
    S3FaultProxy,
    run_until_killed,
    sockets_left_open,
)
from persistkit.tracker import (
    POD,
    IntegrityError,
    ReadOnlyStoreError,
    SharedTracker,
    Tracker,
    _object_state,
)

OpenStore = Callable[[], ObjectStore]


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenStore]:
    """A function that opens a fresh client of one object store (one per 'machine')."""
    opened: list[ObjectStore] = []
    if request.param == "local":

        def open_store() -> ObjectStore:
            opened.append(LocalObjectStore(tmp_path / "objects"))
            return opened[-1]

    else:
        server: S3Endpoint = request.getfixturevalue("s3_server")
        bucket = server.create_bucket()

        def open_store() -> ObjectStore:
            opened.append(server.store(bucket, "jobs/crawl"))
            return opened[-1]

    yield open_store
    for store in opened:
        store.close()


def objects(store: ObjectStore) -> dict[str, str]:
    """Every object of the store and its version."""
    return {key: store.get(key).version for key in store.list()}


def test_every_sync_is_there_when_the_tracker_is_opened_again(backend: OpenStore) -> None:
    tracker = Tracker(backend(), max_tries=2, file_size=3)
    tracker.add_many(["a", "b", "c", "d", ("e", 1), 7])
    tracker.mark_done("b")
    assert tracker.should_try("c")
    tracker["d"]["note"] = {"size": 3}
    tracker.sync()
    tracker.abort(7)
    tracker.sync()

    again = Tracker(backend(), max_tries=2)
    assert list(again) == ["a", "b", "c", "d", ("e", 1), 7]
    assert again.progress() == (6, 1, 1, 1)
    assert again["d"]["note"] == {"size": 3} and again.tries("c") == 1
    assert list(again.todo_keys()) == ["a", "c", "d", ("e", 1)]


def test_a_pod_keeps_order_deletions_and_a_clear(backend: OpenStore) -> None:
    pod = POD(backend(), file_size=2)
    pod.update({"x": 1, "y": [1, 2], "z": "zed"})
    pod.sync()
    del pod["x"]
    pod["y"].append(3)
    pod["x"] = 10  # back, at the end
    pod.sync()
    assert list(POD(backend()).items()) == [("y", [1, 2, 3]), ("z", "zed"), ("x", 10)]

    pod.clear()
    pod["only"] = True
    pod.close()
    assert dict(POD(backend())) == {"only": True}


def test_two_machines_syncing_the_same_tasks_merge_exactly(backend: OpenStore) -> None:
    # Neither saw the other's changes when it made its own: tries add up, each flag and field
    # lands, and both end up holding the same content.
    first = Tracker(backend())
    first.add_many(["t1", "t2", "t3"])
    first.sync()
    second = Tracker(backend())
    first.increment_tries("t1")
    first.mark_done("t1")
    second.increment_tries("t1")
    second.increment_tries("t1")
    second["t2"]["worker"] = "second"
    second.add("t4")
    first.add("t5")
    first.sync()
    second.sync()  # loses the race for the record number: reads first's record, rebases
    first.sync()  # nothing to write: reads second's record

    for tracker in (first, second, Tracker(backend())):
        assert tracker["t1"] == {"_tries": 3, "_done": True, "_aborted": False}
        assert tracker["t2"]["worker"] == "second"
        assert list(tracker) == ["t1", "t2", "t3", "t5", "t4"]
        assert tracker.progress() == (5, 1, 1, 0)


@pytest.mark.parametrize("max_tries", [1, 2])
def test_should_try_is_exact_between_machines_that_did_not_see_each_other(
    backend: OpenStore, max_tries: int
) -> None:
    setup = Tracker(backend())
    setup.add_many(range(4))
    setup.close()
    machines = [Tracker(backend(), max_tries=max_tries) for _ in range(3)]
    granted = {key: [m.should_try(key) for m in machines] for key in range(4)}
    # Each machine asked with what it read at its own last sync: the gate is decided at the
    # try's place in the journal, so exactly max_tries of them were told to go.
    assert all(answers.count(True) == max_tries for answers in granted.values())
    reader = Tracker(backend(), max_tries=max_tries)
    assert [reader.tries(key) for key in range(4)] == [max_tries] * 4
    for machine in machines:
        machine.sync()
        assert [machine.tries(key) for key in range(4)] == [max_tries] * 4
        assert machine.progress().tried == 4


def test_a_checkpoint_race_has_one_winner_and_loses_nothing(
    backend: OpenStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_object_state, "CHECKPOINT_RECORDS", 1000)  # checkpoints by hand here
    first, second = Tracker(backend(), file_size=2), Tracker(backend(), file_size=2)
    first.add_many(range(5))
    first.sync()
    second.sync()
    second.mark_done(4)
    second.sync()
    assert second._state.checkpoint()  # type: ignore[attr-defined]  # the engine's own call
    first.mark_done(0)
    first.sync()
    store = backend()
    before = set(store.list("shards/"))
    # first still holds the checkpoint it opened on: its swap loses, and it removes the
    # shard objects it wrote for it.
    assert not first._state.checkpoint()  # type: ignore[attr-defined]  # as above
    assert set(store.list("shards/")) == before
    assert first._state.checkpoint()  # type: ignore[attr-defined]  # now on the new one
    assert Tracker(backend()).progress().done == 2
    assert [Tracker(backend()).done(key) for key in range(5)] == [True, False, False, False, True]


def test_opening_for_reading_writes_nothing(backend: OpenStore) -> None:
    tracker = Tracker(backend())
    tracker.add_many(["a", "b"])
    tracker.close()
    store = backend()
    before = objects(store)
    reader = Tracker(backend(), read_only=True)
    assert reader.progress().total == 2
    with pytest.raises(ReadOnlyStoreError) as raised:
        reader.mark_done("a")
    assert raised.value.errno == errno.EROFS
    reader.sync()  # reads what the others wrote; writes nothing
    reader.close()
    assert objects(store) == before


def test_bad_input_is_refused_before_anything_is_written(backend: OpenStore) -> None:
    tracker = Tracker(backend())
    tracker.add("a")
    tracker.sync()
    tracker["a"]["bad"] = {1, 2}
    with pytest.raises(SerializationError):
        tracker.sync()
    assert "bad" not in Tracker(backend())["a"]
    tracker["a"]["bad"] = [1, 2]
    tracker.close()
    with pytest.raises(InvalidArgumentError):
        Tracker(backend(), gzipped=True)
    with pytest.raises(InvalidArgumentError):
        SharedTracker("s3://bucket/prefix")


@pytest.fixture
def proxy(s3_server: S3Endpoint) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_server) as faults:
        yield faults


def test_a_reply_lost_after_the_record_landed_counts_the_try_once(proxy: S3FaultProxy) -> None:
    bucket = proxy.upstream.create_bucket()
    tracker = Tracker(proxy.endpoint.store(bucket, "job"))
    tracker.add("t")
    tracker.sync()
    proxy.plan(Fault("PUT", when="after", status=503))  # the server stored it; we hear 503
    tracker.increment_tries("t")
    tracker.sync()
    assert proxy.hits  # the fault was really injected
    tracker.sync()
    assert Tracker(proxy.upstream.store(bucket, "job")).tries("t") == 1


def test_a_sync_left_unsettled_is_settled_by_the_next_one(proxy: S3FaultProxy) -> None:
    # The record lands, its reply is lost, and every check the backend makes fails too: the
    # sync raises OutcomeUnknownError. The next sync reads the record back, sees its own
    # nonce there, and writes nothing twice.
    bucket = proxy.upstream.create_bucket()
    tracker = Tracker(proxy.endpoint.store(bucket, "job", settle_attempts=1))
    tracker.add("t")
    tracker.sync()
    proxy.plan(Fault("PUT", when="after", status=503))
    proxy.plan(Fault("HEAD", when="before", status=503, conditional_only=False, count=20))
    tracker.increment_tries("t")
    with pytest.raises(OutcomeUnknownError):
        tracker.sync()
    tracker.sync()
    tracker.increment_tries("t")
    tracker.close()
    assert Tracker(proxy.upstream.store(bucket, "job")).tries("t") == 2


class LateLanding(LocalObjectStore):
    """A local object store whose first record write lands late: after its sender gave up.

    No real server delays a request on cue, so the delay is made here, at the object-store
    boundary: the first create of a journal record raises OutcomeUnknownError without
    writing; the record lands just before the next create, as a slow request would.
    """

    delayed: tuple[str, bytes] | None = None
    delivered = False

    def put_if_absent(self, key: str, data: bytes) -> str:
        if key.startswith("journal/") and not self.delivered:
            if self.delayed is None:
                self.delayed = (key, data)
                raise OutcomeUnknownError(errno.EIO, "no answer", key)
            self.delivered = True
            super().put_if_absent(*self.delayed)
        return super().put_if_absent(key, data)


def test_a_record_that_lands_after_its_sync_gave_up_is_not_counted_twice(
    tmp_path: Path,
) -> None:
    tracker = Tracker(LocalObjectStore(tmp_path / "objects"))
    tracker.add("t")
    tracker.close()
    store = LateLanding(tmp_path / "objects")
    tracker = Tracker(store)
    tracker.increment_tries("t")
    with pytest.raises(OutcomeUnknownError):
        tracker.sync()
    tracker.sync()  # settles (not there yet), sends again: finds the late record, its own
    assert store.delivered
    tracker.close()
    assert Tracker(LocalObjectStore(tmp_path / "objects")).tries("t") == 1


class LaggingListing(LocalObjectStore):
    """A folder of objects whose listings leave out some keys (as a lagging replica would).

    Object stores promise exact conditional writes, not listings that show every object at
    once; no real server here lags on cue, so the lag is made at the object-store boundary.
    """

    hidden: frozenset[str] = frozenset()

    def list(self, prefix: str = "", **options: Any) -> Iterator[str]:
        return (key for key in super().list(prefix, **options) if key not in self.hidden)


def test_a_url_whose_store_fails_to_open_leaves_no_connection_open(
    s3_environment: S3Endpoint, s3_bucket: str
) -> None:
    # What it opened from the URL is the tracker's to close, also when opening fails: a
    # caller that keeps the error (and so its traceback) must not keep the connections.
    s3_environment.client().put_object(Bucket=s3_bucket, Key="job/checkpoint", Body=b"{not")
    assert not sockets_left_open(lambda: Tracker(f"s3://{s3_bucket}/job"), IntegrityError)


def test_a_record_the_listing_does_not_show_yet_is_read_all_the_same(tmp_path: Path) -> None:
    first = Tracker(LocalObjectStore(tmp_path / "objects"))
    first.add_many(["a", "b"])
    first.sync()  # record 1
    lagging = LaggingListing(tmp_path / "objects")
    second = Tracker(lagging)
    first.mark_done("a")
    first.sync()  # record 2
    first.increment_tries("b")
    first.sync()  # record 3
    lagging.hidden = frozenset({"journal/000000000002"})
    second.increment_tries("b")
    second.sync()  # takes number 4, having read 2 (by its number) and 3
    assert second.done("a") and second.tries("b") == 2
    lagging.hidden = frozenset()
    assert Tracker(LocalObjectStore(tmp_path / "objects")).progress() == (2, 1, 1, 0)


def test_changes_not_synced_at_exit_are_synced_then(tmp_path: Path) -> None:
    program = (
        "import sys\n"
        "from persistkit.core import LocalObjectStore\n"
        "from persistkit.tracker import Tracker\n"
        "tracker = Tracker(LocalObjectStore(sys.argv[1]))\n"
        "tracker.add_many(['a', 'b'])\n"
        "tracker.mark_done('b')\n"
        "raise SystemExit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program, str(tmp_path / "objects")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (result.returncode, result.stderr) == (3, "")
    tracker = Tracker(LocalObjectStore(tmp_path / "objects"))
    assert list(tracker) == ["a", "b"] and tracker.done("b")


WORKER = r"""
import sys
from persistkit.core import StoreUnavailableError
from persistkit.tracker import Tracker

location, name = sys.argv[1:3]
tracker = Tracker(location, sync_at=1)  # every change is one sync: one record
tries = 0


def retried(change, key):
    # The changes stay pending when the server fails; the next sync settles and sends them.
    change(key)
    while True:
        try:
            tracker.sync()
            return
        except StoreUnavailableError as error:
            print("retry", key, type(error).__name__, flush=True)


for key in list(tracker.todo_keys()):
    if tracker.done(key):  # another worker did it (seen at this worker's last sync)
        continue
    retried(tracker.increment_tries, key)
    tries += 1
    retried(tracker.mark_done, key)
    print("ack", name, key, flush=True)
tracker.close()
print("tries", name, tries, flush=True)
"""


CLAIMER = r"""
import sys
from persistkit.tracker import Tracker

tracker = Tracker(sys.argv[1], max_tries=1)
print("ready", flush=True)
sys.stdin.readline()
for key in list(tracker.todo_keys()):
    if tracker.should_try(key):  # one record, decided against every record before it
        tracker.mark_done(key)
        tracker.sync()
        print("did", key, flush=True)
tracker.close()
"""


def test_with_max_tries_1_each_task_runs_on_exactly_one_worker(s3_server: S3Endpoint) -> None:
    bucket = s3_server.create_bucket()
    tracker = Tracker(s3_server.store(bucket, "job"))
    tracker.add_many(f"t{i}" for i in range(24))
    tracker.close()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CLAIMER, f"s3://{bucket}/job"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **s3_server.env()},
        )
        for _ in range(3)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
    for worker in workers:  # released together, all iterating the same tasks
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    did = [worker.communicate(timeout=600)[0].split() for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0, 0]
    done = sorted(word for words in did for word in words if word != "did")
    assert done == sorted(f"t{i}" for i in range(24))  # each task once, none left out
    final = Tracker(s3_server.store(bucket, "job"))
    assert final.progress() == (24, 24, 24, 0)


MARKER = r"""
import sys
from persistkit.core import S3ObjectStore, StoreUnavailableError
from persistkit.tracker import Tracker

endpoint, key_id, secret, bucket = sys.argv[1:5]
objects = S3ObjectStore(bucket, "crash", endpoint_url=endpoint, access_key=key_id,
                        secret_key=secret, region="us-east-1", retries=2, settle_attempts=2)
tracker = Tracker(objects)
tracker.add_many(f"t{i}" for i in range(1000))
tracker.sync()
try:
    for i in range(1000):
        tracker.mark_done(f"t{i}")
        tracker.sync()
        print("ack", i, flush=True)
except StoreUnavailableError as error:
    print("error", type(error).__name__, flush=True)
"""


@pytest.mark.slow
def test_the_server_killed_mid_sync_loses_no_acknowledged_mark(seaweedfs: StartSeaweed) -> None:
    server = seaweedfs()
    endpoint = server.endpoint
    bucket = endpoint.create_bucket()
    # SIGKILL of the server while the writer syncs its next mark; its exit sync fails too
    # (one line on stderr), so its exit status is not the point here.
    run = run_until_killed(endpoint.spawn_python(MARKER, bucket), server.kill, after=21)
    acknowledged = max(int(words[0]) for words in run.acks)

    server.start()
    with endpoint.store(bucket, "crash") as objects:
        tracker = Tracker(objects)
        done = {key for key in tracker if tracker.done(key)}
        tracker.close()
    acked = {f"t{i}" for i in range(acknowledged + 1)}
    assert acked <= done  # every acknowledged sync is there
    assert done - acked <= {f"t{acknowledged + 1}"}  # and at most the one in flight besides


@pytest.mark.slow
def test_workers_on_two_gateways_count_exactly_through_a_volume_server_kill(
    seaweedfs_cluster: Callable[..., object], tmp_path: Path
) -> None:
    # Four workers, two on each S3 gateway of a distributed SeaweedFS (as if on different
    # machines), work through one job; a volume server is SIGKILLed while they run. Every
    # task ends done, every acknowledged mark_done is there, and the tries on record are
    # exactly the tries the workers made.
    cluster: Any = seaweedfs_cluster()
    gateways: list[S3Endpoint] = cluster.endpoints
    bucket = gateways[0].create_bucket()
    location = f"s3://{bucket}/crawl"
    tasks = [f"page-{i}" for i in range(80)]
    tracker = Tracker(gateways[0].store(bucket, "crawl"))
    tracker.add_many(tasks)
    tracker.close()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, location, f"w{i}"],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **gateways[i % 2].env()},
        )
        for i in range(4)
    ]
    acknowledged: set[str] = set()
    tries = 0
    killed = False
    streams = [worker.stdout for worker in workers if worker.stdout is not None]
    while streams:
        ready, _, _ = select.select(streams, [], [])
        for stream in ready:
            line = stream.readline()
            if not line:
                streams.remove(stream)
                continue
            words = line.split()
            if words[0] == "ack":
                acknowledged.add(words[2])
            elif words[0] == "tries":
                tries += int(words[2])
            if len(acknowledged) >= 20 and not killed:
                cluster.kill("volume1")  # SIGKILL one of the three volume servers
                killed = True
    assert [worker.wait(timeout=600) for worker in workers] == [0, 0, 0, 0]
    assert killed and acknowledged == set(tasks)

    for gateway in gateways:
        tracker = Tracker(gateway.store(bucket, "crawl"), read_only=True)
        assert all(tracker.done(task) for task in tasks)
        assert tracker.progress() == (80, 80, 80, 0)
        assert sum(tracker.tries(task) for task in tasks) == tries


class LostShardReply(LocalObjectStore):
    """A folder of objects where the first shard write of a checkpoint lands, then fails.

    No real server loses one reply on cue for a local store, so the fault is made at the
    object-store boundary: the object is stored and the caller hears OutcomeUnknownError.
    """

    failed = False

    def put_if_absent(self, key: str, data: bytes) -> str:
        version = super().put_if_absent(key, data)
        if key.startswith("shards/") and not self.failed:
            self.failed = True
            raise OutcomeUnknownError(errno.EIO, "no answer", key)
        return version


def test_a_checkpoint_that_failed_half_way_can_be_tried_again(tmp_path: Path) -> None:
    store = LostShardReply(tmp_path / "objects")
    tracker = Tracker(store, file_size=2)
    tracker.add_many(range(5))
    tracker.sync()
    state = tracker._state
    with pytest.raises(OutcomeUnknownError):
        state.checkpoint()  # type: ignore[attr-defined]  # the engine's own call
    assert store.failed
    assert list(store.list("shards/")) == []  # the failed attempt removed what it wrote
    assert state.checkpoint()  # type: ignore[attr-defined]  # as above
    tracker.close()
    reopened = Tracker(LocalObjectStore(tmp_path / "objects"))
    assert reopened._state.upto == 1  # type: ignore[attr-defined]  # read from the checkpoint
    assert reopened.progress().total == 5
