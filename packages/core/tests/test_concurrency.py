"""Readers running beside many writers never see a partial file."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from persistkit.core import write_bytes
from persistkit.core.testing import leftovers

VERSIONS = [bytes([48 + i]) * (8192 + 1024 * i) for i in range(10)]


def _writer(target: str, writer: int, rounds: int) -> None:
    for i in range(rounds):
        write_bytes(target, VERSIONS[(writer + i) % len(VERSIONS)], durability="atomic")


def _reader(
    target: str, stop: multiprocessing.synchronize.Event, bad: multiprocessing.Queue[bytes]
) -> None:
    reads = 0
    while not stop.is_set() or reads < 50:
        with open(target, "rb") as f:
            data = f.read()
        reads += 1
        if data not in VERSIONS:
            bad.put(data[:32])
            return
    bad.put(b"ok %d" % reads)


def test_readers_never_see_a_partial_file_while_four_processes_write(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    target = tmp_path / "shared"
    target.write_bytes(VERSIONS[0])
    stop = context.Event()
    bad: multiprocessing.Queue[bytes] = context.Queue()
    readers = [context.Process(target=_reader, args=(str(target), stop, bad)) for _ in range(2)]
    writers = [context.Process(target=_writer, args=(str(target), w, 300)) for w in range(4)]
    for process in readers + writers:
        process.start()
    for process in writers:
        process.join()
    stop.set()
    outcomes = [bad.get() for _ in readers]
    for process in readers:
        process.join()
    assert all(outcome.startswith(b"ok") for outcome in outcomes), outcomes
    assert all(process.exitcode == 0 for process in writers)
    assert target.read_bytes() in VERSIONS
    assert leftovers(tmp_path) == []
