"""Journal: records, positions, recycling, recovery of torn tails, damage, read-only use."""

from __future__ import annotations

import array
import errno
import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from persistkit.core import (
    CorruptFileError,
    CorruptJournalError,
    InvalidArgumentError,
    Journal,
    SyncError,
    UnsupportedOperationError,
    write_bytes,
)
from persistkit.core.pytest_plugin import MountTmpfs
from persistkit.core.testing import inject_error, record_calls, snapshot_tree, spawn_python

DATA_OFFSET = 4096
HEAD = 40


def payloads(journal: Journal, after: int | None = None) -> list[bytes]:
    return [record.data for record in journal.records(after)]


def reopen(path: Path, *, readonly: bool = False) -> Journal:
    """Open ``path`` as a new boot would: without the coordination file of this boot."""
    shm = Path(f"{path}-shm")
    if shm.exists() and not readonly:
        shm.unlink()
    return Journal(path, readonly=readonly)


def flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0xFF]))


def fill(filler: Path) -> None:
    """Fill the filesystem holding ``filler`` to the last block."""
    with open(filler, "wb", buffering=0) as file, pytest.raises(OSError) as caught:
        while True:
            file.write(b"\0" * 4096)
    assert caught.value.errno == errno.ENOSPC


def test_commits_come_back_in_order_with_their_positions(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as journal:
        assert (journal.start, journal.end, journal.records()) == (0, 0, [])
        ends = [journal.commit(b"record %d" % i) for i in range(5)]
        ends.append(journal.commit(b"", durability="atomic"))
        records = journal.records()
    assert [record.data for record in records] == [b"record %d" % i for i in range(5)] + [b""]
    assert [record.end for record in records] == ends
    assert [record.lsn for record in records] == [0, *ends[:-1]]
    with Journal(path) as journal:
        assert journal.records() == records
        assert journal.end == ends[-1]


def test_records_after_a_position_are_only_the_later_ones(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal") as journal:
        first = journal.commit(b"a")
        second = journal.commit(b"b")
        journal.commit(b"c")
        assert payloads(journal, first) == [b"b", b"c"]
        assert payloads(journal, second) == [b"c"]
        assert payloads(journal, journal.end) == []
        with pytest.raises(InvalidArgumentError):
            journal.records(first + 1)
        with pytest.raises(InvalidArgumentError):
            journal.records(journal.end + 8)


def test_append_is_visible_at_once_to_another_journal_object_and_process(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as writer, Journal(path) as reader:
        writer.append(b"shared, not flushed")
        assert payloads(reader) == [b"shared, not flushed"]
        script = (
            "import sys; from persistkit.core import Journal\n"
            "print([r.data.decode() for r in Journal(sys.argv[1]).records()])"
        )
        out = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    assert out.strip() == "['shared, not flushed']"


def test_commit_flushes_once_and_atomic_commit_never(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal") as journal:
        durable = [call.name for call in record_calls(lambda: journal.commit(b"x"))]
        atomic = [
            call.name for call in record_calls(lambda: journal.commit(b"y", durability="atomic"))
        ]
        covered = [call.name for call in record_calls(lambda: journal.flush(journal.end))]
        again = [call.name for call in record_calls(lambda: journal.flush(journal.end))]
    assert durable == ["write", "fdatasync"]
    assert atomic == ["write"]
    assert covered == ["fdatasync"]
    assert again == []


def test_durability_must_be_a_known_level(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal") as journal:
        with pytest.raises(InvalidArgumentError):
            journal.commit(b"x", durability="fast")  # type: ignore[arg-type]
        assert journal.records() == []


def test_flush_past_the_end_is_refused(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal") as journal:
        end = journal.append(b"x")
        with pytest.raises(InvalidArgumentError):
            journal.flush(end + 8)


def test_recycle_empties_the_journal_durably_and_reuses_its_space(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path, size=16384) as journal:
        size = path.stat().st_size
        for round_ in range(20):
            for i in range(20):
                journal.append(b"%d.%d" % (round_, i) * 10)
            end = journal.end
            with journal.lock():
                journal.recycle(upto=end)
            assert (journal.start, journal.end, journal.records()) == (end, end, [])
        last = journal.commit(b"after")
    assert path.stat().st_size == size
    with reopen(path) as journal:
        assert journal.start == end
        assert [(r.lsn, r.end, r.data) for r in journal.records()] == [(end, last, b"after")]


def test_recycle_refuses_to_drop_records_the_owner_has_not_seen(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal") as journal:
        seen = journal.commit(b"applied")
        journal.commit(b"appended meanwhile")
        with pytest.raises(InvalidArgumentError):
            journal.recycle(upto=seen)
        assert payloads(journal) == [b"applied", b"appended meanwhile"]


def test_reading_from_a_recycled_position_says_so(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as owner, Journal(path) as other:
        seen = other.commit(b"a")
        owner.commit(b"b")
        owner.recycle(upto=owner.end)
        with pytest.raises(InvalidArgumentError, match="recycled"):
            other.records(seen)
        assert seen < other.start


RECYCLER = """
import sys
from persistkit.core import Journal
journal = Journal(sys.argv[1])
print("ready", flush=True)
number = 0
while number < 60000:
    for _ in range(3):
        journal.append(b"%08d" % number * 16)
        number += 1
    journal.recycle(upto=journal.end)
"""


def test_reading_while_another_process_appends_and_recycles_never_mixes_epochs(
    mounted_tmpfs: MountTmpfs,
) -> None:
    # Readers do not take the append lock: a recycle can start a new epoch, and overwrite
    # the old records, while a read is under way. Such a read must be done again under
    # the lock: it returns the old records whole, or says they were recycled.
    path = mounted_tmpfs("8m") / "journal"  # fdatasync costs nothing: recycles come fast
    Journal(path).close()
    writer = spawn_python(RECYCLER, path)
    assert writer.stdout is not None and writer.stdout.readline() == "ready\n"
    reads = recycled = 0
    with Journal(path) as reader:
        while writer.poll() is None:
            try:
                found = payloads(reader, reader.start)
            except InvalidArgumentError:
                recycled += 1
                continue
            reads += 1
            numbers = [int(data[:8]) for data in found]
            assert all(data == data[:8] * 16 for data in found)
            first = numbers[0] if numbers else 0
            assert numbers == list(range(first, first + len(numbers)))
    assert writer.wait() == 0 and reads and recycled


def test_the_log_grows_in_steps_and_keeps_every_record(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path, size=8192) as journal:
        for i in range(300):
            journal.commit(b"%05d" % i * 20, durability="atomic")
        journal.flush()
    assert path.stat().st_size > 8192
    assert path.stat().st_size % 4096 == 0
    with reopen(path) as journal:
        assert payloads(journal) == [b"%05d" % i * 20 for i in range(300)]


def test_a_memoryview_of_wider_items_is_stored_as_its_bytes(tmp_path: Path) -> None:
    numbers = array.array("i", range(5))
    with Journal(tmp_path / "journal") as journal:
        journal.append(memoryview(numbers))
        journal.commit(memoryview(numbers)[::2])
        journal.append(b"after")
        assert payloads(journal) == [
            numbers.tobytes(),
            array.array("i", [0, 2, 4]).tobytes(),
            b"after",
        ]


def test_a_large_record_comes_back_whole(tmp_path: Path) -> None:
    big = os.urandom(3 << 20)
    with Journal(tmp_path / "journal") as journal:
        journal.commit(b"small")
        journal.commit(big)
    with reopen(tmp_path / "journal") as journal:
        assert payloads(journal) == [b"small", big]


def test_a_torn_tail_is_dropped_and_never_returned(tmp_path: Path) -> None:
    # What a power cut can leave: the last appended, never flushed record half written.
    path = tmp_path / "journal"
    with Journal(path) as journal:
        durable = journal.commit(b"durable")
        journal.append(b"torn" * 100)
    flip_byte(path, DATA_OFFSET + durable + HEAD + 200)
    for readonly in (True, False):
        with reopen(path, readonly=readonly) as journal:
            assert payloads(journal) == [b"durable"]
            assert journal.end == durable
    with Journal(path) as journal:
        journal.commit(b"next")
    with reopen(path) as journal:
        assert payloads(journal) == [b"durable", b"next"]


def test_a_tear_under_a_coordination_file_that_survived_is_found(tmp_path: Path) -> None:
    # A power cut that the coordination file outlives (a filesystem restored or remounted in
    # the same boot): it names an intact last record, but an unflushed one before it is torn.
    path = tmp_path / "journal"
    with Journal(path) as journal:
        durable = journal.commit(b"durable")
        journal.append(b"torn")
        journal.append(b"intact last record")
    flip_byte(path, DATA_OFFSET + durable + HEAD)
    with Journal(path) as journal:
        assert payloads(journal) == [b"durable"]
        journal.commit(b"next")
    with reopen(path) as journal:
        assert payloads(journal) == [b"durable", b"next"]


def test_a_coordination_file_older_than_the_log_is_not_trusted(tmp_path: Path) -> None:
    # Found by the power-cut filesystem: after a cut the coordination file (never flushed)
    # can come back older than the log, whose last commit was flushed. That commit must
    # count, and must not be overwritten by the next one.
    path = tmp_path / "journal"
    shm = Path(f"{path}-shm")
    with Journal(path) as journal:
        journal.commit(b"a")
        older = shm.read_bytes()
        journal.commit(b"b, durable")
    shm.write_bytes(older)
    with Journal(path) as journal:
        assert payloads(journal) == [b"a", b"b, durable"]
        journal.commit(b"c")
    with reopen(path) as journal:
        assert payloads(journal) == [b"a", b"b, durable", b"c"]


def test_records_after_a_torn_one_are_dropped_too(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as journal:
        durable = journal.commit(b"durable")
        journal.append(b"torn")
        journal.append(b"intact but after the tear")
    flip_byte(path, DATA_OFFSET + durable + HEAD)
    with reopen(path) as journal:
        assert payloads(journal) == [b"durable"]


def test_a_dropped_record_never_comes_back_after_a_rewrite_of_the_same_length(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal"
    with Journal(path) as journal:
        durable = journal.commit(b"durable")
        journal.append(b"same length")
        journal.append(b"ghost")
    flip_byte(path, DATA_OFFSET + durable + HEAD)
    with reopen(path) as journal:
        assert payloads(journal) == [b"durable"]
        journal.commit(b"same length")
    with reopen(path) as journal:
        assert payloads(journal) == [b"durable", b"same length"]


def test_damage_to_a_durable_record_in_the_middle_raises_naming_file_and_offset(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal"
    with Journal(path) as journal:
        first = journal.commit(b"first")
        journal.commit(b"second, damaged later")
        journal.commit(b"third, committed")
    flip_byte(path, DATA_OFFSET + first + HEAD + 3)
    before = snapshot_tree(tmp_path)
    for readonly in (True, False):
        with pytest.raises(CorruptJournalError) as caught:
            reopen(path, readonly=readonly)
        error = caught.value
        assert (error.path, error.offset) == (str(path), DATA_OFFSET + first)
        assert str(path) in str(error) and str(DATA_OFFSET + first) in str(error)
        assert isinstance(error, CorruptFileError) and isinstance(error, ValueError)
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.path, copy.offset, copy.reason) == (error.path, error.offset, error.reason)
    assert snapshot_tree(tmp_path)["journal"] == before["journal"]


def test_damage_found_while_reading_raises_too(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as journal:
        first = journal.commit(b"first")
        journal.commit(b"second")
        flip_byte(path, DATA_OFFSET + first + HEAD)
        with pytest.raises(CorruptJournalError) as caught:
            journal.records()
    assert caught.value.offset == DATA_OFFSET + first


def test_a_file_that_is_not_a_journal_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    path.write_bytes(b"not a journal" * 1000)
    for readonly in (True, False):
        with pytest.raises(CorruptJournalError) as caught:
            Journal(path, readonly=readonly)
        assert caught.value.offset == 0
    assert path.read_bytes() == b"not a journal" * 1000


def test_a_damaged_header_slot_falls_back_to_the_other(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as journal:
        journal.commit(b"old epoch")
        journal.recycle(upto=journal.end)
    flip_byte(path, 512 + 20)  # the second slot, written by the recycle
    with reopen(path) as journal:
        assert payloads(journal) == [b"old epoch"]  # replayed: records are redo records
    flip_byte(path, 20)
    with pytest.raises(CorruptJournalError, match="header"):
        reopen(path)


def test_a_stale_or_garbage_coordination_file_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as journal:
        journal.commit(b"a")
        journal.commit(b"b")
    shm = Path(f"{path}-shm")
    shm.write_bytes(os.urandom(4096))
    with Journal(path) as journal:
        assert payloads(journal) == [b"a", b"b"]
        journal.commit(b"c")
    shm.write_bytes(b"")
    with Journal(path) as journal:
        assert payloads(journal) == [b"a", b"b", b"c"]


def test_opening_readonly_writes_nothing_not_even_a_lock_file(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as journal:
        journal.commit(b"a")
    Path(f"{path}-shm").unlink()
    before = snapshot_tree(tmp_path)
    with Journal(path, readonly=True) as journal:
        assert payloads(journal) == [b"a"]
        with journal.lock():
            assert journal.end == journal.records()[-1].end
        for write in (
            lambda: journal.append(b"b"),
            lambda: journal.commit(b"b"),
            journal.flush,
            lambda: journal.recycle(upto=journal.end),
        ):
            with pytest.raises(UnsupportedOperationError):
                write()
    assert snapshot_tree(tmp_path) == before
    with pytest.raises(FileNotFoundError):
        Journal(tmp_path / "missing", readonly=True)
    with pytest.raises(FileNotFoundError):
        Journal(tmp_path / "missing", create=False)
    assert snapshot_tree(tmp_path) == before


def test_a_journal_on_a_read_only_mount_opens_for_reading(mounted_tmpfs: MountTmpfs) -> None:
    mount = mounted_tmpfs("4m")
    with Journal(mount / "journal") as journal:
        journal.commit(b"kept")
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    with Journal(mount / "journal", readonly=True) as journal:
        assert payloads(journal) == [b"kept"]
    with pytest.raises(OSError) as caught:
        Journal(mount / "journal")
    assert caught.value.errno == errno.EROFS


def test_a_full_disk_while_growing_loses_nothing_and_passes(mounted_tmpfs: MountTmpfs) -> None:
    # A real ENOSPC from a small tmpfs.
    mount = mounted_tmpfs("256k")
    path = mount / "journal"
    journal = Journal(path, size=8192)
    filler = mount / "filler"
    fill(filler)
    committed = []
    with pytest.raises(OSError) as caught:
        for i in range(10_000):
            journal.commit(b"%06d" % i * 10)
            committed.append(b"%06d" % i * 10)
    assert caught.value.errno == errno.ENOSPC
    assert committed
    assert payloads(journal) == committed
    journal.close()
    with Journal(path) as journal:
        assert payloads(journal) == committed
    filler.unlink()
    with Journal(path) as journal:
        journal.commit(b"room again" * 1000)
        journal.commit(b"and more" * 1000)
    with reopen(path) as journal:
        assert payloads(journal) == [*committed, b"room again" * 1000, b"and more" * 1000]


def test_a_full_disk_during_a_checkpoint_loses_nothing(mounted_tmpfs: MountTmpfs) -> None:
    mount = mounted_tmpfs("256k")
    path = mount / "journal"
    main = mount / "main"
    write_bytes(main, b"")
    with Journal(path, size=8192) as journal:
        for i in range(20):
            journal.commit(b"line %d\n" % i)
        filler = mount / "filler"
        fill(filler)

        def checkpoint() -> None:
            with journal.lock():
                end = journal.end
                state = main.read_bytes() + b"".join(r.data for r in journal.records())
                write_bytes(main, state)
                journal.recycle(upto=end)

        with pytest.raises(OSError) as caught:
            checkpoint()
        assert caught.value.errno == errno.ENOSPC
        assert main.read_bytes() == b""
        assert len(journal.records()) == 20
        filler.unlink()
        checkpoint()
        assert journal.records() == []
    assert main.read_bytes() == b"".join(b"line %d\n" % i for i in range(20))


def test_a_failed_fdatasync_is_never_trusted_again(tmp_path: Path) -> None:
    # Injected: no real disk can be made to fail an fdatasync on demand.
    path = tmp_path / "journal"
    with Journal(path) as journal, Journal(path) as other:
        journal.commit(b"durable")
        with inject_error(errno.EIO, call="fdatasync") as failed, pytest.raises(SyncError):
            journal.commit(b"unknown")
        assert failed
        with pytest.raises(SyncError):
            journal.commit(b"later")
        with pytest.raises(SyncError):
            other.flush()
    with Journal(path) as journal:
        assert payloads(journal)[0] == b"durable"
        journal.commit(b"after reopening")


def test_threads_share_one_journal_and_every_commit_lands_once(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    shared = Journal(path)
    errors: list[BaseException] = []

    def work(thread: int, own: bool) -> None:
        try:
            journal = Journal(path) if own else shared
            for i in range(100):
                journal.commit(b"%d:%d" % (thread, i))
            if own:
                journal.close()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(t, t % 2 == 0)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    found = payloads(shared)
    shared.close()
    expected = {b"%d:%d" % (t, i) for t in range(8) for i in range(100)}
    assert len(found) == len(expected) and set(found) == expected
    for t in range(8):
        mine = [p for p in found if p.startswith(b"%d:" % t)]
        assert mine == [b"%d:%d" % (t, i) for i in range(100)]


def test_two_journal_objects_in_one_thread_do_not_deadlock(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as first, Journal(path) as second, first.lock():
        second.commit(b"inside the other object's lock")
        assert payloads(first) == [b"inside the other object's lock"]


def test_a_journal_opened_before_fork_works_in_the_child(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    journal = Journal(path)
    journal.commit(b"parent")
    with journal.lock():
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                journal.commit(b"child")
            finally:
                os._exit(0)
        # The child's append needs the lock the parent holds: it waits for it.
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert payloads(journal) == [b"parent", b"child"]
    journal.close()


def test_journals_collected_while_another_opens_do_not_deadlock(tmp_path: Path) -> None:
    # A Journal dropped without close() in a reference cycle is finalized by the garbage
    # collector, which can run inside the registry's critical section of another open.
    script = (
        "import gc, sys\n"
        "from persistkit.core import Journal\n"
        "gc.set_threshold(1, 1, 1)\n"
        "for i in range(200):\n"
        "    j = Journal(f'{sys.argv[1]}/j{i}', size=8192)\n"
        "    j.cycle = j\n"
        "print('done')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,  # a deadlock fails here instead of hanging the suite
        check=True,
    )
    assert done.stdout == "done\n"


def test_stats_count_records_and_flushes(tmp_path: Path) -> None:
    with Journal(tmp_path / "journal") as journal:
        before = journal.stats()
        journal.commit(b"a")
        journal.commit(b"b", durability="atomic")
        journal.commit(b"c")
        after = journal.stats()
    assert (after.records - before.records, after.flushes - before.flushes) == (3, 2)


def test_a_closed_journal_refuses_work(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal")
    journal.close()
    journal.close()
    with pytest.raises(InvalidArgumentError):
        journal.commit(b"x")
    assert "closed" in repr(journal)
