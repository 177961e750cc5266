"""Durable changes through the store's journal (issue 11): one flush, replay, checkpoints.

A reboot after a power cut is simulated here only in its two effects on a store: items that
were published without a flush are lost (the test empties or removes them, as the power-cut
filesystem's own tests do for real), and the boot id changes (the test gives the store a new
one; the power-cut tests do the same after each cut).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from persistkit.core import Journal
from persistkit.core.testing import record_calls
from persistkit.iodict import IODict
from persistkit.iodict import _iodict as iodict_module
from persistkit.iodict._journal_records import SET, Entry, encode
from persistkit.iodict._layouts import Stamp

JOURNAL = Path(".persistkit-iodict.d") / "journal"


def _journal(directory: Path) -> Journal:
    return Journal(directory / JOURNAL, readonly=True)


def test_after_a_reboot_the_journal_restores_what_was_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "s"
    store = IODict(directory)
    store.update({"a": 1, "b": 2, "c": 3})
    store["a"] = "durable"
    del store["b"]
    store["d"] = 4
    # What a power cut may do to items published without a flush: gone, or empty.
    (directory / store._encoder("d")).unlink()
    with open(directory / store._encoder("a"), "r+b") as f:
        f.truncate(0)
    monkeypatch.setattr(iodict_module, "BOOT", "simulated-reboot")
    expected = [("a", "durable"), ("c", 3), ("d", 4)]
    reader = IODict(directory, read_only=True)  # a reader cannot replay: it reads through
    assert list(reader.items()) == expected and len(reader) == 3
    assert reader["d"] == 4 and "b" not in reader
    assert (directory / store._encoder("a")).stat().st_size == 0  # nothing written
    writer = IODict(directory)
    writer["e"] = 5  # the first write replays the journal into the items
    assert list(IODict(directory).items()) == [*expected, ("e", 5)]
    assert (directory / store._encoder("a")).stat().st_size > 0


def test_a_record_a_dead_writer_did_not_apply_is_applied_by_the_next(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    IODict(directory)["a"] = 1
    journal = Journal(directory / JOURNAL)
    IODict(directory)["warm"] = 0
    # A writer that died right after its record was flushed, before publishing the item.
    stamp = Stamp(10**6, 2**62, 0.0)
    journal.commit(encode([Entry(SET, b"late", stamp, pickle.dumps("value"))]))
    assert "late" not in IODict(directory, read_only=True)  # same boot: not done yet
    IODict(directory)["next"] = 1
    assert list(IODict(directory).items())[-2:] == [("late", "value"), ("next", 1)]


def test_a_checkpoint_flushes_the_items_and_recycles_the_journal(tmp_path: Path) -> None:
    directory = tmp_path / "s"
    store = IODict(directory)
    store["warm"] = 0  # the journal is created by the first durable write
    value = "x" * 2000
    calls: list[str] = []
    for i in range(120):  # about 250 KiB of records: past the checkpoint threshold
        calls += [call.name for call in record_calls(lambda i=i: store.__setitem__(f"k{i}", value))]
    assert calls.count("syncfs") == 1 and calls.count("fsync_dir") == 1  # one checkpoint
    journal = _journal(directory)
    assert journal.end - journal.start < 192 << 10  # recycled
    assert len(IODict(directory)) == 121


def test_a_write_the_journal_does_not_cover_checkpoints_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Replaying the journal must never bring back a value older than an unjournaled write."""
    directory = tmp_path / "s"
    IODict(directory)["k"] = "durable"
    IODict(directory, durability="atomic")["k"] = "newer, atomic"
    journal = _journal(directory)
    assert journal.end == journal.start  # checkpointed before the atomic write
    IODict(directory)["big"] = b"x" * (100 << 10)  # too large to journal: written durably
    assert [
        c.name
        for c in record_calls(lambda: IODict(directory).__setitem__("big", b"y" * (100 << 10)))
    ].count("fsync") == 1
    monkeypatch.setattr(iodict_module, "BOOT", "simulated-reboot")
    assert IODict(directory)["k"] == "newer, atomic"
    IODict(directory)["other"] = 1
    assert IODict(directory)["k"] == "newer, atomic"
    assert IODict(directory)["big"] == b"y" * (100 << 10)


def test_a_reader_opened_before_the_replay_sees_later_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader that read through the journal at open must not keep its values after that."""
    directory = tmp_path / "s"
    IODict(directory)["k"] = "old"
    monkeypatch.setattr(iodict_module, "BOOT", "simulated-reboot")
    reader = IODict(directory, read_only=True)  # the index is of another boot: reads through
    assert reader["k"] == "old" and "gone" not in reader
    writer = IODict(directory)
    writer["k"] = "new"
    writer["gone"] = 1
    assert reader["k"] == "new" and "gone" in reader
