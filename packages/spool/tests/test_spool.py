"""Spool: delivery, claims under a lease, retries, dead letters and cleaning, in one process."""

from __future__ import annotations

import errno
import io
import os
import pickle
from pathlib import Path

import pytest

from persistkit.core.errors import SerializationError
from persistkit.core.testing import inject_error, record_calls
from persistkit.spool import FileStore, LeaseLostError, Message, Spool, _message_names


def names(spool: Spool, area: str) -> list[str]:
    return [os.path.basename(path) for path in spool.list(area)]


def test_deliver_claim_done(spool):
    message_id = spool.deliver(b"hello")
    assert names(spool, "new") == [message_id]
    message = spool.claim()
    assert message is not None
    assert (message.id, message.tries, message.read_bytes()) == (message_id, 1, b"hello")
    assert spool.list("new") == []
    assert spool.list("cur") == [message.path]
    spool.done(message)
    assert spool.list("cur") == []
    assert spool.claim() is None


def test_claims_come_oldest_delivery_first(spool):
    ids = [spool.deliver(f"m{i}") for i in range(30)]
    claimed = []
    while (message := spool.claim()) is not None:
        claimed.append(message.id)
        spool.done(message)
    assert claimed == ids


def test_every_kind_of_payload(spool, tmp_path):
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(3 << 20))
    payloads = [b"raw", bytearray(b"array"), memoryview(b"view"), "téxt"]
    for payload in payloads:
        spool.deliver(payload)
    with source.open("rb") as f:
        spool.deliver(f)
    spool.deliver(io.StringIO("streamed text"))
    contents = []
    while (message := spool.claim()) is not None:
        contents.append(message.read_bytes())
    assert contents == [
        b"raw",
        b"array",
        b"view",
        "téxt".encode(),
        source.read_bytes(),
        b"streamed text",
    ]


@pytest.mark.parametrize("bad", [None, 42, {"a": 1}, ["x"]])
def test_a_bad_payload_is_a_typed_error_and_delivers_nothing(spool, bad):
    with pytest.raises(SerializationError) as caught:
        spool.deliver(bad)
    assert isinstance(caught.value, TypeError)
    assert os.listdir(Path(spool.path, "new")) == []


def test_deliver_many_delivers_all_in_order(spool):
    ids = spool.deliver_many([b"a", "b", io.BytesIO(b"c")])
    assert names(spool, "new") == ids
    assert [spool.claim().read_bytes() for _ in ids] == [b"a", b"b", b"c"]


def test_unique_names_sort_in_delivery_order_and_never_collide():
    generated = [_message_names.unique_name() for _ in range(20_000)]
    assert len(set(generated)) == len(generated)
    # Within one second the order holds by construction; across a second boundary too.
    assert generated == sorted(generated)


def test_unique_names_are_unique_across_fork():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child writes its names and leaves
        os.close(read_end)
        with os.fdopen(write_end, "w") as out:
            out.write("\n".join(_message_names.unique_name() for _ in range(2000)))
        os._exit(0)
    os.close(write_end)
    mine = {_message_names.unique_name() for _ in range(2000)}
    with os.fdopen(read_end) as pipe:
        theirs = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    assert len(theirs) == 2000
    assert not mine & theirs
    assert all(f"P{pid}Q" in name for name in theirs)
    assert all(f"P{os.getpid()}Q" in name for name in mine)


def test_unique_names_escape_the_host_as_the_maildir_spec_asks(monkeypatch):
    monkeypatch.setattr(_message_names.socket, "gethostname", lambda: "a/b:c")
    _message_names._host_name.cache_clear()
    try:
        name = _message_names.unique_name()
    finally:
        _message_names._host_name.cache_clear()
    assert name.endswith(".a\\057b\\072c")
    assert "/" not in name
    assert ":" not in name


def test_a_claimed_message_is_not_claimed_again_during_its_lease(spool, tmp_path, clock):
    spool.deliver(b"job")
    other = Spool(spool.path, lease=60, clock=clock)
    first = spool.claim()
    assert other.claim() is None
    clock.now += 59.9
    assert other.claim() is None
    clock.now += 0.2
    second = other.claim()
    assert second is not None
    assert (second.id, second.tries) == (first.id, 2)
    # The first holder lost its claim: finishing through it fails and changes nothing.
    with pytest.raises(LeaseLostError) as caught:
        spool.done(first)
    assert isinstance(caught.value, FileNotFoundError)
    assert spool.list("cur") == [second.path]
    other.done(second)
    assert spool.list("cur") == []


def test_renew_extends_the_lease_and_invalidates_the_old_record(spool, clock):
    spool.deliver(b"job")
    message = spool.claim()
    clock.now += 50
    renewed = spool.renew(message)
    assert renewed.deadline == pytest.approx(clock.now + 60)
    clock.now += 50
    assert Spool(spool.path, clock=clock).claim() is None
    with pytest.raises(LeaseLostError):
        spool.renew(message)
    spool.done(renewed)


def test_release_puts_it_back_and_counts_the_try(spool):
    message_id = spool.deliver(b"job")
    spool.release(spool.claim())
    assert names(spool, "new") == [f"{message_id}:1,T1"]
    again = spool.claim()
    assert again.tries == 2
    spool.release(again, count_try=False)
    assert spool.claim().tries == 2


def test_after_max_tries_a_message_goes_to_dead_and_can_be_requeued(spool, clock):
    message_id = spool.deliver(b"poison")
    for attempt in range(1, 4):
        message = spool.claim()
        assert message.tries == attempt
        clock.now += 61  # the consumer died: its lease runs out
    assert spool.claim() is None
    assert names(spool, "dead") == [f"{message_id}:1,T3"]
    assert spool.list("cur") == []
    assert spool.requeue(message_id) == message_id
    assert spool.claim().tries == 1


def test_released_messages_also_count_towards_max_tries(spool):
    spool.deliver(b"poison")
    for _ in range(3):
        spool.release(spool.claim())
    assert spool.claim() is None
    assert len(spool.list("dead")) == 1


def test_dead_letter_and_requeue_by_path(spool):
    spool.deliver(b"bad")
    spool.dead_letter(spool.claim())
    assert spool.claim() is None
    spool.requeue(spool.list("dead")[0])
    assert spool.claim().read_bytes() == b"bad"


def test_keep_done_archives_instead_of_removing(tmp_path):
    spool = Spool(tmp_path / "s", keep_done=True)
    message_id = spool.deliver(b"x")
    spool.done(spool.claim())
    assert names(spool, "done") == [f"{message_id}:1,T1"]


def test_messages_delivered_through_filestore_are_claimable(spool):
    store = FileStore(spool.path)
    with store.create("invoice-7.xml") as f:
        f.write("<invoice/>")
    store.move("invoice-7.xml", "tmp", "new")
    message = spool.claim()
    assert (message.id, message.read_text()) == ("invoice-7.xml", "<invoice/>")


def test_clean_removes_stale_tmp_files_and_dead_writers_temps_only(spool):
    tmp = Path(spool.path, "tmp")
    stale, fresh = tmp / "stale", tmp / "fresh"
    stale.write_text("old")
    fresh.write_text("new")
    old = 1_000_000_000
    os.utime(stale, (old, old))
    leftover = Path(spool.path, "new", ".1700000000.M1.host.0123456789ab.pktmp")
    leftover.write_text("partial")
    os.utime(leftover, (old, old))
    message_id = spool.deliver(b"keep me")
    removed = spool.clean()
    assert sorted(removed) == sorted([str(stale), str(leftover)])
    assert fresh.exists()
    assert names(spool, "new") == [message_id]
    assert spool.clean(max_age=0) == [str(fresh)]


PUBLISH = {"renameat2", "link"}  # create-only: renameat2(NOREPLACE), or linkat of a temp


def test_the_durable_protocol_call_by_call(spool):
    """Issue 10: what each step syncs, and in which order (proven on the power-cut fs)."""
    new, cur = os.path.join(spool.path, "new"), os.path.join(spool.path, "cur")
    ids: list[str] = []
    deliver = record_calls(lambda: ids.append(spool.deliver(b"x")))
    names = [c.name for c in deliver]
    # The content is fsynced before it is published, and new/ after: two syncs in all.
    assert names.count("fsync") == 1
    published = [c for c in deliver if c.name in PUBLISH]
    assert [c.path for c in published] == [os.path.join(new, ids[0])]
    assert names.index("fsync") < names.index(published[0].name)
    assert [c.path for c in deliver if c.name == "fsync_dir"] == [new]
    assert names[-1] == "fsync_dir"

    held: list[Message] = []
    claim = record_calls(lambda: held.append(spool.claim()))
    # The claim name is durable before the message leaves new/, so no fsync of new/ by
    # anyone (a producer delivering) can make the message vanish from both folders.
    assert [(c.name, c.path) for c in claim] == [
        ("link", held[0].path),
        ("fsync_dir", cur),
        ("unlink", os.path.join(new, ids[0])),
    ]
    done = record_calls(lambda: spool.done(held[0]))
    # Both removals (from cur/ now, from new/ by the claim) are durable before done returns.
    assert [(c.name, c.path) for c in done] == [
        ("unlink", held[0].path),
        ("fsync_dir", cur),
        ("fsync_dir", new),
    ]


def test_atomic_durability_never_syncs(tmp_path):
    spool = Spool(tmp_path / "s", durability="atomic")
    calls = record_calls(lambda: spool.done(spool.claim() if spool.deliver(b"x") else None))
    assert "fsync" not in [c.name for c in calls]
    assert "fsync_dir" not in [c.name for c in calls]


def test_two_spools_racing_claim_each_message_once(tmp_path):
    a = Spool(tmp_path / "s", durability="atomic")
    b = Spool(tmp_path / "s", durability="atomic")
    ids = a.deliver_many([str(i) for i in range(200)])
    got: list[str] = []
    for _ in range(200):
        for consumer in (a, b):
            message = consumer.claim()
            if message is not None:
                got.append(message.id)
                consumer.done(message)
    assert sorted(got) == sorted(ids)


def test_records_and_errors_pickle(spool):
    spool.deliver(b"x")
    message = spool.claim()
    assert pickle.loads(pickle.dumps(message)) == message
    error = pickle.loads(pickle.dumps(LeaseLostError("/x")))
    assert isinstance(error, FileNotFoundError)
    assert error.filename == "/x"


@pytest.mark.parametrize(
    "kwargs",
    [{"lease": -1}, {"lease": float("nan")}, {"max_tries": 0}, {"durability": "x"}, {"watch": "x"}],
)
def test_bad_arguments_are_refused_before_anything_is_created(tmp_path, kwargs):
    with pytest.raises(ValueError):
        Spool(tmp_path / "s", **kwargs)
    assert not (tmp_path / "s").exists()


def test_a_negative_timeout_is_refused(spool):
    with pytest.raises(ValueError, match="timeout"):
        spool.claim(timeout=-1)


class FailingReader:
    """A source that breaks after its first chunk, like a network stream that drops."""

    def __init__(self) -> None:
        self.calls = 0

    def read(self, size: int = -1) -> bytes:
        self.calls += 1
        if self.calls > 1:
            raise ConnectionResetError("the producer's source broke")
        return b"x" * 1000


@pytest.mark.parametrize("durability", ["durable", "atomic"])
def test_a_delivery_that_fails_midway_leaves_nothing(tmp_path, durability):
    spool = Spool(tmp_path / "s", durability=durability)
    with pytest.raises(ConnectionResetError):
        spool.deliver(FailingReader())
    for area in ("tmp", "new", "cur"):
        assert os.listdir(Path(spool.path, area)) == []


def test_atomic_delivery_goes_through_core_without_a_sync(tmp_path):
    spool = Spool(tmp_path / "s", durability="atomic")
    calls = record_calls(lambda: spool.deliver(b"x"))
    assert Path(calls[0].path).parent == Path(spool.path, "tmp"), "staged in maildir's tmp/"
    assert calls[-1].name == "renameat2"
    calls = [c.name for c in calls]
    assert not {"fsync", "fsync_dir", "syncfs"} & set(calls)
    assert os.listdir(Path(spool.path, "tmp")) == []
    assert len(spool.list("new")) == 1


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 200_000])
@pytest.mark.parametrize("durability", ["durable", "atomic"])
def test_contents_of_every_size_come_back_exactly(tmp_path, size, durability):
    spool = Spool(tmp_path / "s", durability=durability)
    data = os.urandom(size)
    spool.deliver(data)
    message = spool.claim()
    assert message.read_bytes() == data
    with message.open() as f:
        assert f.read() == data


def test_without_hard_links_a_move_is_one_rename_then_one_fsync_of_each_folder(
    tmp_path: Path,
) -> None:
    # Injected: link(2) refused with EPERM, as FAT and some FUSE mounts refuse it; no such
    # filesystem can be mounted here.
    spool = Spool(tmp_path / "spool", lease=60, watch="poll")
    unique = spool.deliver(b"payload")
    with inject_error(errno.EPERM, call="link") as refused:
        message = spool.claim()
    assert refused, "the link was not refused"
    assert message is not None and message.id == unique
    assert spool.list("new") == [] and spool.list("cur") == [message.path]

    calls = record_calls(lambda: spool.release(message))
    assert calls[0].name in ("rename", "renameat2")  # no second link
    synced = [call.path for call in calls if call.name == "fsync_dir"]
    assert sorted(synced) == [str(tmp_path / "spool" / area) for area in ("cur", "new")]
    again = spool.claim()
    assert again is not None and again.read_bytes() == b"payload"
    spool.done(again)
    assert all(spool.count(area) == 0 for area in ("new", "cur", "dead"))
