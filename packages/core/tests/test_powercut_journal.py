"""The journal on the power-cut filesystem: cut at every barrier, at random, under processes.

After every cut the journal reopens without error; it holds its old records, then a prefix of
what the operation appended, at least up to the last flush that had returned; it takes new
commits; and a checkpoint's effects are either in the journal or in the main file.
"""

from __future__ import annotations

import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from persistkit.core import Journal, _fs, write_bytes
from persistkit.core.testing import (
    PowerCut,
    PowerCutFS,
    cut_at_every_barrier,
    cut_at_random_points,
    cut_processes,
)

pytestmark = pytest.mark.powercut

BEFORE = [b"before %d " % i * 30 for i in range(3)]


def payloads(path: Path) -> list[bytes]:
    with Journal(path) as journal:
        return [record.data for record in journal.records()]


def still_usable(path: Path, found: list[bytes]) -> None:
    with Journal(path) as journal:
        journal.commit(b"after the cut")
    assert payloads(path) == [*found, b"after the cut"]


def setup_journal(path: Path, *, size: int = 1 << 20) -> None:
    with Journal(path, size=size) as journal:
        for data in BEFORE:
            journal.commit(data)


NEW = [b"A" * 300, b"B" * 5000, b"C" * 10, b"D" * 100, b"E" * 100]


def commit_some(path: Path, acks: Path) -> None:
    """Commit and append NEW, noting outside the mount how many records are durable."""
    with open(acks, "w") as noted, Journal(path) as journal:
        journal.commit(NEW[0])
        noted.write("1\n")
        noted.flush()
        journal.append(NEW[1])
        journal.commit(NEW[2])  # its flush covers B too
        noted.write("3\n")
        noted.flush()
        journal.append(NEW[3])
        journal.commit(NEW[4], durability="atomic")


def cut_commits(power_cut: PowerCutFS, tmp_path: Path, modes: tuple[str, ...]) -> None:
    path = power_cut.root / "journal"
    # Outside the mount, so the cut spares it. (The calls a run makes are not always the
    # same: a remount may give the mount a new device number, and the journal then rebuilds
    # its coordination file on open, with one more fdatasync.)
    acks = tmp_path / "acks"

    def check(point: PowerCut) -> None:
        found = payloads(path)
        assert found[: len(BEFORE)] == BEFORE
        added = found[len(BEFORE) :]
        assert added == NEW[: len(added)]
        promised = max(map(int, acks.read_text().split()), default=0)
        assert len(added) >= promised, "a flush returned, and its records are lost"
        if point.completed:
            assert promised == 3
        still_usable(path, found)

    cut_at_every_barrier(
        power_cut,
        lambda: commit_some(path, acks),
        setup=lambda: setup_journal(path),
        check=check,
        modes=modes,  # type: ignore[arg-type]
        seeds=(0, 1),
    )


def test_commits_survive_a_cut_at_every_barrier(power_cut: PowerCutFS, tmp_path: Path) -> None:
    cut_commits(power_cut, tmp_path, ("strict", "random"))


def test_a_journal_without_its_fdatasync_is_caught(
    power_cut: PowerCutFS, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fs, "fdatasync", lambda fd, path: None)
    with pytest.raises(AssertionError, match="a flush returned, and its records are lost"):
        cut_commits(power_cut, tmp_path, ("strict",))


def test_a_commit_that_grows_the_log_survives_cuts(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "journal"
    big = bytes(range(256)) * 60  # more than the 8 KiB the log starts with

    def operation() -> None:
        with Journal(path, size=8192) as journal:
            journal.commit(big)

    def check(point: PowerCut) -> None:
        found = payloads(path)
        assert found in (BEFORE, [*BEFORE, big])
        if point.completed:
            assert found == [*BEFORE, big]
        still_usable(path, found)

    cut_at_every_barrier(
        power_cut,
        operation,
        setup=lambda: setup_journal(path, size=8192),
        check=check,
        seeds=(0, 1, 2),
    )


def test_a_checkpoint_cut_anywhere_keeps_every_record_in_the_journal_or_the_file(
    power_cut: PowerCutFS,
) -> None:
    path = power_cut.root / "journal"
    main = power_cut.root / "main"

    def setup() -> None:
        setup_journal(path)
        write_bytes(main, b"")

    def operation() -> None:
        with Journal(path) as journal:
            with journal.lock():
                end = journal.end
                lines = set(main.read_bytes().splitlines())
                lines.update(record.data for record in journal.records())
                write_bytes(main, b"\n".join(sorted(lines)))
                journal.recycle(upto=end)
            journal.commit(b"after the checkpoint")

    def check(point: PowerCut) -> None:
        found = payloads(path)
        assert found in (BEFORE, [], [b"after the checkpoint"])
        in_main = set(main.read_bytes().splitlines())
        assert set(BEFORE) <= in_main | set(found)
        if point.completed:
            assert found == [b"after the checkpoint"]
            assert in_main == set(BEFORE)
        still_usable(path, found)

    cut_at_every_barrier(power_cut, operation, setup=setup, check=check, seeds=(0, 1))


def test_appends_recycles_and_flushes_cut_at_random_points(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "journal"

    def operation() -> None:
        with Journal(path, size=8192) as journal:
            for round_ in range(3):
                for i in range(6):
                    journal.append(b"%d.%d " % (round_, i) * (40 * i + 1))
                journal.flush()
                journal.recycle(upto=journal.end)
            for i in range(4):
                journal.commit(b"tail %d" % i)

    def check(point: PowerCut) -> None:
        found = payloads(path)  # never raises: a cut only ever tears unflushed records
        still_usable(path, found)
        if point.completed:
            assert found == [b"tail %d" % i for i in range(4)]

    cut_at_random_points(
        power_cut, operation, setup=lambda: setup_journal(path, size=8192), check=check, runs=16
    )


WRITER = textwrap.dedent(
    """
    import os
    import sys
    from persistkit.core import Journal

    journal = Journal(sys.argv[1], size=16384)
    name = sys.argv[2]
    for i in range(1_000_000):
        data = f"{name}:{i}|".encode() + b"x" * (50 * (i % 7))
        if i % 3:
            journal.commit(data)
            print(f"{name}:{i}", flush=True)
        else:
            journal.append(data)  # shared, not acknowledged until a later flush covers it
    """
)


@pytest.mark.parametrize(("mode", "seed"), [("strict", None), ("random", 1), ("random", 2)])
def test_processes_committing_at_once_keep_every_acknowledged_record_once(
    power_cut: PowerCutFS, mode: str, seed: int | None
) -> None:
    path = power_cut.root / "journal"
    Journal(path, size=16384).close()
    power_cut.sync()
    result = cut_processes(
        power_cut,
        [[sys.executable, "-c", WRITER, str(path), f"w{n}"] for n in range(4)],
        after_lines=120,
        mode=mode,  # type: ignore[arg-type]
        seed=seed,
    )
    found = Counter(data.split(b"|")[0].decode() for data in payloads(path))
    assert max(found.values(), default=1) == 1
    missing = [line for line in result.lines if found[line] != 1]
    assert not missing, (missing, result.report)
    assert len(result.lines) >= 120
    still_usable(path, payloads(path))
