"""A spool in an object store: the same API on objects and conditional writes.

The behaviour runs on core's local object store and on the real SeaweedFS server of core's
fixtures (``place``). Faults: a reply lost or a server failing at the HTTP boundary is
injected with `S3FaultProxy` (no server fails on cue), and the tests say so; the cluster test
(test_object_spool_cluster.py) kills a real volume server.
"""

from __future__ import annotations

import copy
import pickle
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from persistkit.core import LocalObjectStore, ObjectStore, OutcomeUnknownError
from persistkit.core.errors import InvalidArgumentError
from persistkit.core.pytest_plugin import StartSeaweed
from persistkit.core.testing import Fault, S3Endpoint, S3FaultProxy, run_until_killed
from persistkit.spool import LeaseLostError, Message, Spool
from persistkit.spool._object_spool import Claim, ObjectSpool


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def objects(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """Core's local object store, then a prefix in a fresh bucket of the real S3 server."""
    if request.param == "local":
        yield LocalObjectStore(tmp_path / "objects")
        return
    server: S3Endpoint = request.getfixturevalue("s3_server")
    bucket: str = request.getfixturevalue("s3_bucket")
    with server.store(bucket, "spool") as opened:
        yield opened


def spool_on(objects: ObjectStore, clock: Any, **options: object) -> ObjectSpool:
    made = Spool(objects, lease=60, max_tries=3, clock=clock, **options)  # type: ignore[arg-type]
    assert isinstance(made, ObjectSpool)
    return made


def test_opening_writes_nothing_and_a_round_trip_leaves_nothing(
    objects: ObjectStore, clock: Any
) -> None:
    spool = spool_on(objects, clock)
    assert list(objects.list()) == []
    ids = [spool.deliver(text) for text in ("one", "two", "three")]
    assert spool.count("new") == 3
    seen = []
    while (message := spool.claim()) is not None:
        assert message.tries == 1
        assert message.deadline == clock.now + 60
        seen.append((message.id, message.read_text(), message.open().read()))
        assert spool.count("cur") == 1
        spool.done(message)
    assert seen == [(i, t, t.encode()) for i, t in zip(ids, ("one", "two", "three"), strict=True)]
    assert list(objects.list()) == []  # done removes the message and its claim


def test_an_s3_url_opens_a_spool_there(
    s3_server: S3Endpoint, s3_bucket: str, s3_environment: S3Endpoint
) -> None:
    with Spool(f"s3://{s3_bucket}/jobs") as spool:
        assert spool.path == f"s3://{s3_bucket}/jobs"
        unique = spool.deliver(b"job")
        assert spool.list("new") == [f"s3://{s3_bucket}/jobs/new/{unique}"]
        message = spool.claim()
        assert message is not None
        assert pickle.loads(pickle.dumps(message)) == message  # hand it to a worker process
        spool.done(message)
    with s3_server.store(s3_bucket, "jobs") as objects:
        assert list(objects.list()) == []


def test_keep_done_keeps_a_copy(objects: ObjectStore, clock: Any) -> None:
    spool = spool_on(objects, clock, keep_done=True)
    unique = spool.deliver(b"report")
    message = spool.claim()
    assert message is not None
    spool.done(message)
    assert spool.list("done") == [f"{spool.path}/done/{unique}"]
    assert objects.get(f"done/{unique}").data == b"report"
    assert spool.claim() is None


def test_an_expired_lease_is_taken_over_and_the_old_holder_can_no_longer_finish(
    objects: ObjectStore, clock: Any
) -> None:
    first_consumer = spool_on(objects, clock)
    second_consumer = spool_on(objects, clock)
    first_consumer.deliver(b"job")
    held = first_consumer.claim()
    assert held is not None
    assert second_consumer.claim() is None  # the lease holds
    clock.now += 61
    taken = second_consumer.claim()
    assert taken is not None
    assert taken.tries == 2
    for finish in (first_consumer.done, first_consumer.release, first_consumer.renew):
        with pytest.raises(LeaseLostError) as caught:
            finish(held)
        assert isinstance(caught.value, FileNotFoundError)
    second_consumer.done(taken)
    assert list(objects.list()) == []


def test_release_puts_it_back_and_renew_extends_the_lease(objects: ObjectStore, clock: Any) -> None:
    spool = spool_on(objects, clock)
    spool.deliver(b"job")
    message = spool.claim()
    assert message is not None
    spool.release(message, count_try=False)
    assert spool.count("new") == 1
    message = spool.claim()
    assert message is not None
    assert message.tries == 1  # the released try was not counted
    clock.now += 50
    renewed = spool.renew(message)
    assert renewed.deadline == clock.now + 60
    clock.now += 50  # past the first deadline, within the renewed one
    assert spool.claim() is None
    with pytest.raises(LeaseLostError):
        spool.renew(message)  # the record before the renewal is stale
    spool.done(renewed)


def test_after_max_tries_a_message_is_a_dead_letter_until_requeued(
    objects: ObjectStore, clock: Any
) -> None:
    spool = spool_on(objects, clock)
    unique = spool.deliver(b"poison")
    for tries in (1, 2, 3):
        message = spool.claim()
        assert message is not None
        assert message.tries == tries
        clock.now += 61  # the consumer died: its lease runs out
    assert spool.claim() is None
    assert spool.list("dead") == [f"{spool.path}/dead/{unique}"]
    assert spool.count("new") == 0
    assert spool.requeue(spool.list("dead")[0]) == unique
    message = spool.claim()
    assert message is not None
    assert (message.tries, message.read_bytes()) == (1, b"poison")
    spool.dead_letter(message)
    assert spool.list("dead") == [f"{spool.path}/dead/{unique}"]
    assert spool.claim() is None


def test_what_a_consumer_killed_after_its_commit_point_left_is_tidied(
    objects: ObjectStore, clock: Any
) -> None:
    spool = spool_on(objects, clock)
    unique = spool.deliver(b"job")
    message = spool.claim()
    assert message is not None
    # What a consumer leaves when it dies right after its claim became "done" (the commit
    # point), before deleting new/<id> and the claim: written here as it would have.
    objects.put(f"claims/{unique}", Claim("done", 1, 0, "feedc0de", "dead:1").encode())
    other = spool_on(objects, clock)
    assert other.claim() is None  # never handed out again
    assert list(objects.list()) == []  # and tidied by the consumer that met it
    stale = spool.deliver(b"other")
    objects.put(f"claims/{stale}", Claim("done", 1, 0, "feedc0de", "dead:1").encode())
    assert spool.clean() == [f"{spool.path}/new/{stale}", f"{spool.path}/claims/{stale}"]
    assert list(objects.list()) == []


def test_objects_the_spool_did_not_write_are_reported_and_left_alone(
    objects: ObjectStore, clock: Any
) -> None:
    spool = spool_on(objects, clock)
    unique = spool.deliver(b"job")
    objects.put(f"claims/{unique}", b"written by someone else")
    objects.put("notes.txt", b"hello")
    assert spool.claim() is None  # a message whose claim is not ours is never claimed
    assert spool.strays() == {
        f"{spool.path}/claims/{unique}": "not a claim persistkit-spool wrote",
        f"{spool.path}/notes.txt": "an object outside the spool's areas",
    }
    assert spool.clean() == []
    assert sorted(objects.list()) == sorted([f"new/{unique}", f"claims/{unique}", "notes.txt"])
    assert objects.get(f"claims/{unique}").data == b"written by someone else"


def test_a_release_by_another_consumer_is_seen_within_seconds(
    objects: ObjectStore, clock: Any
) -> None:
    mine = spool_on(objects, clock)
    theirs = spool_on(objects, clock)
    mine.deliver(b"job")
    held = theirs.claim()
    assert held is not None
    assert mine.claim() is None  # in flight: its claim was read
    theirs.release(held)
    clock.now += 5  # an idle consumer reads the claims in flight again every 5 s
    again = mine.claim()
    assert again is not None
    assert again.tries == 2


def test_a_spool_object_can_still_be_copied(objects: ObjectStore, tmp_path: Path) -> None:
    # Spool.__new__ picks the class from the location; copy makes objects without one.
    for spool in (Spool(objects), Spool(tmp_path / "files")):
        twin = copy.copy(spool)
        assert (type(twin), twin.path) == (type(spool), spool.path)


def test_a_message_from_another_spool_or_a_file_spool_is_refused(
    objects: ObjectStore, clock: Any, tmp_path: Path
) -> None:
    spool = spool_on(objects, clock)
    files = Spool(tmp_path / "files")
    files.deliver(b"x")
    message = files.claim()
    assert message is not None
    with pytest.raises(InvalidArgumentError):
        spool.done(message)
    with pytest.raises(InvalidArgumentError, match="inotify"):
        Spool(objects, watch="inotify")


@pytest.mark.slow
def test_sixteen_consumers_claim_each_message_exactly_once(
    s3_server: S3Endpoint, s3_bucket: str
) -> None:
    # Threads, each with its own spool and connections: the server arbitrates every claim.
    with s3_server.store(s3_bucket, "race") as objects:
        ids = Spool(objects).deliver_many(f"job {i}" for i in range(48))
    gate = threading.Barrier(16)
    finished: list[str] = []
    errors: list[BaseException] = []

    def consumer() -> None:
        with s3_server.store(s3_bucket, "race") as mine:
            spool = Spool(mine)
            gate.wait()
            try:
                while (message := spool.claim()) is not None:
                    spool.done(message)
                    finished.append(message.id)
            except BaseException as error:
                errors.append(error)

    threads = [threading.Thread(target=consumer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Counter(finished) == Counter(ids)  # each exactly once, none lost


# -- the server fails mid-call (injected at the HTTP boundary) -----------------------------


@pytest.fixture
def proxy(s3_server: S3Endpoint) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_server) as running:
        yield running


@pytest.fixture
def through_proxy(proxy: S3FaultProxy, s3_bucket: str) -> Iterator[ObjectStore]:
    """The bucket's ``spool`` prefix through the proxy (the capability probe done first)."""
    with proxy.endpoint.store(s3_bucket, "spool", settle_attempts=2) as opened:
        opened.capabilities()
        yield opened


def claimed(spool: Spool) -> Message:
    message = spool.claim()
    assert message is not None
    return message


def test_a_done_whose_outcome_the_server_left_open_is_settled_from_the_claim(
    proxy: S3FaultProxy,
    through_proxy: ObjectStore,
    s3_server: S3Endpoint,
    s3_bucket: str,
    clock: Any,
) -> None:
    spool = spool_on(through_proxy, clock)
    spool.deliver(b"job")
    message = claimed(spool)
    # Injected: the swap to "done" lands but its reply is lost, and core's own re-reads
    # (HEAD) fail too, so core gives up with OutcomeUnknownError; the spool reads the claim.
    proxy.plan(Fault("PUT", when="after", status=503))
    proxy.plan(Fault("HEAD", when="before", status=503, conditional_only=False, count=2))
    spool.done(message)
    assert [method for method, _, _ in proxy.hits] == ["PUT", "HEAD", "HEAD"]
    with s3_server.store(s3_bucket, "spool") as direct:
        assert list(direct.list()) == []
    assert spool.claim() is None


def test_a_done_refused_by_a_failing_server_raises_and_can_be_called_again(
    proxy: S3FaultProxy, through_proxy: ObjectStore, clock: Any
) -> None:
    spool = spool_on(through_proxy, clock)
    spool.deliver(b"job")
    message = claimed(spool)
    # Injected: the server answers 503 without applying the swap, every time it is sent.
    proxy.plan(Fault("PUT", when="before", status=503, count=2))
    with pytest.raises(OutcomeUnknownError):
        spool.done(message)
    assert spool.count("cur") == 1  # nothing changed: still claimed by us
    spool.done(message)
    assert list(through_proxy.list()) == []


# -- the server killed mid-run (real) -------------------------------------------------------

PRODUCER = r"""
import sys
from persistkit.core import S3ObjectStore, StoreUnavailableError
from persistkit.spool import Spool
endpoint, key_id, secret, bucket = sys.argv[1:5]
objects = S3ObjectStore(bucket, "jobs", endpoint_url=endpoint, access_key=key_id,
                        secret_key=secret, region="us-east-1", retries=2, settle_attempts=2)
spool = Spool(objects)
try:
    for i in range(100_000):
        unique = spool.deliver(f"job {i}".encode())
        print("ack", unique, i, flush=True)
except StoreUnavailableError as error:
    print("error", type(error).__name__, flush=True)
"""


@pytest.mark.slow
def test_the_server_killed_mid_delivery_loses_nothing_acknowledged_and_brings_nothing_back(
    seaweedfs: StartSeaweed,
) -> None:
    server = seaweedfs()
    endpoint = server.endpoint
    bucket = endpoint.create_bucket()
    with endpoint.store(bucket, "jobs") as objects:
        consumer = Spool(objects)
        finished = consumer.deliver(b"finished before the crash")
        message = consumer.claim()
        assert message is not None
        consumer.done(message)
    # SIGKILL of the server while the producer delivers the next message
    run = run_until_killed(endpoint.spawn_python(PRODUCER, bucket), server.kill, after=20)
    assert run.returncode == 0
    assert run.lines[-1].startswith("error "), run.lines[-3:]  # its last word
    acknowledged = {unique: f"job {i}".encode() for unique, i in run.acks}

    server.start()
    with endpoint.store(bucket, "jobs") as objects:
        spool = Spool(objects)
        found = {}
        while (message := spool.claim()) is not None:
            found[message.id] = message.read_bytes()  # whole: every message is complete
            spool.done(message)
    assert finished not in found  # a message done before the crash stays done
    # Every acknowledged delivery is there; the one in flight may have landed too.
    assert {unique: found[unique] for unique in acknowledged} == acknowledged
    assert len(found) - len(acknowledged) in (0, 1)


def test_the_command_shows_a_spool_on_s3_without_writing(
    s3_server: S3Endpoint,
    s3_bucket: str,
    persistkit_command: Any,
    s3_environment: S3Endpoint,
) -> None:
    with s3_server.store(s3_bucket, "jobs") as objects:
        spool = Spool(objects)
        for data in (b"1", b"2", b"3"):
            spool.deliver(data)
        spool.claim()
        objects.put("notes.txt", b"not a message")
        before = {key: objects.get(key) for key in objects.list()}
        result = persistkit_command("spool", f"s3://{s3_bucket}/jobs")
        assert {key: objects.get(key) for key in objects.list()} == before
    assert result.returncode == 1, result.stderr  # the stray is a problem
    counts = dict(line.split() for line in result.stdout.splitlines())
    assert counts == {"area": "messages", "new": "2", "cur": "1", "dead": "0", "done": "0"}
    assert "notes.txt: not a message, left alone" in result.stderr
