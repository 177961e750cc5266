"""Crash the journal at every filesystem call of append, flush, recovery, growth, checkpoint."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from persistkit.core import Journal, write_bytes
from persistkit.core.testing import CrashPoint, crash_at_every_call

BEFORE = [b"before %d" % i for i in range(5)]


def contents(path: Path) -> list[bytes]:
    with Journal(path) as journal:
        return [record.data for record in journal.records()]


def usable_after(path: Path, expected: list[bytes]) -> None:
    """The journal takes new commits after the crash, and keeps them after the old ones."""
    with Journal(path) as journal:
        journal.commit(b"after the crash")
    assert contents(path) == [*expected, b"after the crash"]


def fresh(folder: Path, *, size: int = 1 << 20) -> Callable[[], None]:
    def setup() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        with Journal(folder / "journal", size=size) as journal:
            for data in BEFORE:
                journal.commit(data)

    return setup


def test_a_crash_anywhere_in_a_commit_keeps_all_or_none_of_it(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    path = folder / "journal"
    outcomes = set()

    def check(point: CrashPoint) -> None:
        found = contents(path)
        assert found in (BEFORE, [*BEFORE, b"new"]), point
        outcomes.add(len(found))
        if point.completed:
            assert found == [*BEFORE, b"new"]
        usable_after(path, found)

    def commit() -> None:
        with Journal(path) as journal:
            journal.commit(b"new")

    runs = crash_at_every_call(commit, setup=fresh(folder), check=check)
    assert runs == 3  # write, fdatasync, done
    assert outcomes == {len(BEFORE), len(BEFORE) + 1}


def test_a_crash_anywhere_in_a_growing_commit_keeps_all_or_none_of_it(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    path = folder / "journal"
    big = b"b" * 10_000

    def check(point: CrashPoint) -> None:
        found = contents(path)
        assert found in (BEFORE, [*BEFORE, big]), point
        if point.completed:
            assert found == [*BEFORE, big]
        usable_after(path, found)

    def commit() -> None:
        with Journal(path, size=8192) as journal:
            journal.commit(big)

    runs = crash_at_every_call(commit, setup=fresh(folder, size=8192), check=check)
    assert runs >= 4  # zeros, record, fdatasync, done


def test_a_crash_anywhere_in_a_group_flush_loses_nothing_appended(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    path = folder / "journal"
    appended = [b"appended %d" % i for i in range(3)]

    def setup() -> None:
        fresh(folder)()
        with Journal(path) as journal:
            for data in appended:
                journal.append(data)

    def check(point: CrashPoint) -> None:
        assert contents(path) == [*BEFORE, *appended], point
        with Journal(path) as journal:
            journal.flush()
        usable_after(path, [*BEFORE, *appended])

    def flush() -> None:
        with Journal(path) as journal:
            journal.flush()

    assert crash_at_every_call(flush, setup=setup, check=check) == 2


def test_a_crash_anywhere_in_recovery_recovers_next_time(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    path = folder / "journal"
    shm = folder / "journal-shm"

    def setup() -> None:
        fresh(folder)()
        shm.unlink()  # as after a reboot: the coordination must be rebuilt from the log

    def check(point: CrashPoint) -> None:
        assert contents(path) == BEFORE, point
        usable_after(path, BEFORE)

    def recover() -> None:
        Journal(path).close()

    runs = crash_at_every_call(recover, setup=setup, check=check)
    assert runs == 4  # create the coordination file, write it, fdatasync the log, done


def test_a_crash_anywhere_in_creation_leaves_no_journal_or_an_empty_one(tmp_path: Path) -> None:
    folder = tmp_path / "j"
    path = folder / "journal"

    def setup() -> None:
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()

    def check(point: CrashPoint) -> None:
        if path.exists():
            assert contents(path) == []
        else:
            assert not point.completed
        usable_after(path, [])

    runs = crash_at_every_call(lambda: Journal(path).close(), setup=setup, check=check)
    assert runs >= 5


def test_a_crash_anywhere_in_a_checkpoint_recovers_to_the_same_state(tmp_path: Path) -> None:
    # The owner's checkpoint: apply the records to the main file durably, then recycle.
    # Records are redo records ("line i"): replaying them onto the main file is idempotent.
    folder = tmp_path / "j"
    path = folder / "journal"
    main = folder / "main"

    def state() -> set[bytes]:
        lines = set(main.read_bytes().splitlines()) if main.exists() else set()
        return lines | set(contents(path))

    def setup() -> None:
        fresh(folder)()
        write_bytes(main, b"")

    def checkpoint() -> None:
        with Journal(path) as journal, journal.lock():
            end = journal.end
            lines = set(main.read_bytes().splitlines())
            lines.update(record.data for record in journal.records())
            write_bytes(main, b"\n".join(sorted(lines)))
            journal.recycle(upto=end)

    def check(point: CrashPoint) -> None:
        assert state() == set(BEFORE), point
        if point.completed:
            assert contents(path) == []
        found = contents(path)
        assert found in ([], BEFORE), point
        usable_after(path, found)

    runs = crash_at_every_call(checkpoint, setup=setup, check=check)
    assert runs >= 6
