from __future__ import annotations

import errno
import gc
import json
import multiprocessing
import os
import pickle
import queue
import shutil
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistkit.core import CorruptFileError, SerializationError
from persistkit.core.pytest_plugin import MountTmpfs
from persistkit.core.testing import (
    CrashPoint,
    crash_at_every_call,
    facility_unavailable,
    record_calls,
    snapshot_tree,
)
from persistkit.iodict import DurableQueue, LayoutError, QueueClosedError


def test_queue_api(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q")
    assert q.empty() and q.qsize() == 0 and not q.full()
    q.put("a")
    q.put_nowait({"b": 1})
    q.put_many([3, 4])
    assert q.qsize() == 4 and not q.empty()
    assert q.get() == "a"
    assert q.get_nowait() == {"b": 1}
    assert list(q.getter()) == [3, 4]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0)
    with pytest.raises(ValueError):
        q.get(timeout=-1)


def test_fifo_across_restarts(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q")
    q.put_many(range(10))
    assert [q.get() for _ in range(3)] == [0, 1, 2]
    reopened = DurableQueue(tmp_path / "q")
    assert reopened.qsize() == 7
    reopened.put(10)
    assert list(reopened.getter()) == list(range(3, 11))


def test_get_touches_one_item_whatever_the_depth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shallow = DurableQueue(tmp_path / "shallow", durability="atomic")
    shallow.put_many(range(2))
    shallow.checkpoint()
    deep = DurableQueue(tmp_path / "deep", durability="atomic")
    deep.put_many(range(2000))
    deep.checkpoint()

    real_scandir, real_listdir = os.scandir, os.listdir

    def refuse_items(real: Any) -> Any:
        def listing(path: Any = ".") -> Any:
            # The queue directory itself (markers, leases) may be listed; the items never.
            if os.fspath(path).endswith(".persistkit-queue.items"):
                raise AssertionError("get listed the items")
            return real(path)

        return listing

    monkeypatch.setattr(os, "scandir", refuse_items(real_scandir))
    monkeypatch.setattr(os, "listdir", refuse_items(real_listdir))
    shallow_calls = [c.name for c in record_calls(shallow.get)]
    deep_calls = [c.name for c in record_calls(deep.get)]
    # The same calls at depth 2 and 2000: one journal record; the item is read where the
    # checkpoint put it, and nothing is removed.
    assert deep_calls == shallow_calls == ["write"]


def test_json_format(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q", format="json")
    q.put({"a": [1]})
    with pytest.raises(SerializationError):
        q.put(object())
    assert q.qsize() == 1
    assert DurableQueue(tmp_path / "q", format="json").get() == {"a": [1]}


def test_blocking_get_wakes_on_put_from_thread(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q", durability="atomic")
    got: list[object] = []
    waiting = threading.Event()

    def consumer() -> None:
        waiting.set()
        got.append(q.get(timeout=30))

    thread = threading.Thread(target=consumer)
    thread.start()
    waiting.wait()
    q.put("hello")
    thread.join()
    assert got == ["hello"]


def test_two_threads_waiting_on_one_queue_object_both_wake(tmp_path: Path) -> None:
    q: DurableQueue[str] = DurableQueue(tmp_path / "q", durability="atomic")
    q.put("first")
    assert q.get() == "first"  # the folder exists: the waiters watch it with inotify
    got: list[str] = []
    waiting = threading.Barrier(3)

    def consumer() -> None:
        waiting.wait()
        got.append(q.get(timeout=60))

    threads = [threading.Thread(target=consumer) for _ in range(2)]
    for thread in threads:
        thread.start()
    waiting.wait()
    DurableQueue(tmp_path / "q", durability="atomic").put_many(["a", "b"])
    for thread in threads:
        thread.join()
    assert sorted(got) == ["a", "b"]


def _put_later(path: str, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    ready.wait()
    DurableQueue(path).put("from another process")


def test_blocking_get_sees_put_from_another_process(tmp_path: Path) -> None:
    path = str(tmp_path / "q")
    q = DurableQueue(path)
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    process = ctx.Process(target=_put_later, args=(path, ready))
    process.start()
    ready.set()
    assert q.get(timeout=60) == "from another process"
    process.join()
    assert process.exitcode == 0


def test_maxsize(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q", maxsize=2)
    q.put(1)
    q.put(2)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0)
    assert q.get() == 1
    q.put(3)
    assert list(q.getter()) == [2, 3]


def test_task_done_and_join(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q")
    q.put_many(["a", "b"])
    with pytest.raises(TimeoutError):
        q.join(timeout=0)
    q.get()
    q.task_done()
    other = DurableQueue(tmp_path / "q")  # the count is shared through the directory
    other.get()
    other.task_done()
    q.join()
    with pytest.raises(ValueError):
        q.task_done()


def test_close_keeps_items(tmp_path: Path) -> None:
    with DurableQueue(tmp_path / "q") as q:
        q.put("kept")
    with pytest.raises(QueueClosedError):
        q.put("x")
    with pytest.raises(QueueClosedError):
        q.get()
    assert DurableQueue(tmp_path / "q").get() == "kept"


def test_leftovers_of_dead_processes_are_removed_when_empty(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q")
    items = tmp_path / "q" / ".persistkit-queue.items"
    q.put_many(["a", "b"])
    # Files a killed putter (at or past the tail) and a killed getter (below the head) leave.
    (items / f"{2:020d}").write_bytes(b"junk")
    (items / f"{99:020d}").write_bytes(b"junk")
    assert q.get() == "a"
    (items / f"{0:020d}").write_bytes(b"junk")
    reopened = DurableQueue(tmp_path / "q")
    assert reopened.qsize() == 1
    assert list(reopened.getter()) == ["b"]  # the junk is never delivered
    assert os.listdir(items) == []  # and once the queue is empty it is gone
    reopened.put("c")
    assert reopened.get() == "c"


def test_the_format_is_recorded(tmp_path: Path) -> None:
    DurableQueue(tmp_path / "q", format="json").put((1, 2))
    assert DurableQueue(tmp_path / "q").get_nowait() == [1, 2]  # JSON, not a pickle error
    with pytest.raises(LayoutError, match="json"):
        DurableQueue(tmp_path / "q", format="pickle")
    with pytest.raises(LayoutError):
        DurableQueue(tmp_path / "q", format=pickle)
    DurableQueue(tmp_path / "q", format=json).put(3)  # the module is the same format
    assert DurableQueue(tmp_path / "q").get_nowait() == 3


def test_the_format_of_a_custom_codec_must_be_passed_again(tmp_path: Path) -> None:
    class Upper:
        __name__ = "upper"

        @staticmethod
        def dumps(value: str) -> bytes:
            return value.upper().encode()

        @staticmethod
        def loads(data: bytes) -> str:
            return data.decode()

    DurableQueue(tmp_path / "q", format=Upper()).put("x")
    with pytest.raises(LayoutError, match="upper"):
        DurableQueue(tmp_path / "q")
    assert DurableQueue(tmp_path / "q", format=Upper()).get() == "X"


def _as_written_by_01(directory: Path, payloads: list[bytes], head: int, done: int) -> None:
    """A queue directory as persistkit 0.1 left it: no format record, a done marker."""
    items = directory / ".persistkit-queue.items"
    items.mkdir(parents=True)
    for seq, payload in enumerate(payloads):
        if seq >= head:
            (items / f"{seq:020d}").write_bytes(payload)
    for kind, value in [("head", head), ("tail", len(payloads)), ("done", done)]:
        (directory / f".persistkit-queue.{kind}.{value}").write_bytes(b"")
    (directory / ".persistkit-queue.lock").write_bytes(b"")


def test_a_queue_of_persistkit_01_keeps_its_format_and_task_count(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    # JSON items, 3 put, 2 gotten, 1 of those marked done: one task is still open.
    _as_written_by_01(directory, [b"1", b"2", b'{"a": 3}'], head=2, done=1)
    q: DurableQueue[Any] = DurableQueue(directory)
    assert q.qsize() == 1 and q.unfinished_tasks == 2
    assert q.get() == {"a": 3}  # recognised as JSON, and recorded
    assert (directory / ".persistkit-queue.json").exists()
    assert not list(directory.glob(".persistkit-queue.done.*"))
    assert q.unfinished_tasks == 2
    q.task_done()
    q.task_done()
    q.join(timeout=0)
    with pytest.raises(ValueError):
        q.task_done()


def test_converting_a_01_queue_leaves_no_marker_behind_whatever_the_crash(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "q"
    seen: set[bool] = set()

    def setup() -> None:
        shutil.rmtree(directory, ignore_errors=True)
        _as_written_by_01(directory, [b"1", b"2", b"3"], head=1, done=1)

    def check(point: CrashPoint) -> None:
        q: DurableQueue[Any] = DurableQueue(directory)
        seen.add(bool(list(directory.glob(".persistkit-queue.head.*"))))
        assert q.get() == 2, f"after a crash at {point}"
        markers = [p for p in directory.glob(".persistkit-queue.*.*") if p.suffix[1:].isdigit()]
        assert markers == [], f"after a crash at {point}"
        assert list(q.getter()) in ([3], [3, 4]), f"after a crash at {point}"

    crash_at_every_call(lambda: DurableQueue(directory).put(4), setup=setup, check=check)
    assert seen == {False, True}


def test_reading_writes_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    q: DurableQueue[int] = DurableQueue(directory)
    q.put_many(range(5))
    q.claim()
    before = snapshot_tree(directory)
    reader: DurableQueue[int] = DurableQueue(directory)
    assert (reader.qsize(), reader.empty(), reader.full(), reader.unfinished_tasks) == (
        4,
        False,
        False,
        5,
    )
    assert reader.dead_letters() == []
    assert snapshot_tree(directory) == before
    missing: DurableQueue[int] = DurableQueue(tmp_path / "nothing")
    assert missing.qsize() == 0 and missing.unfinished_tasks == 0
    with pytest.raises(queue.Empty):
        missing.get_nowait()
    assert not (tmp_path / "nothing").exists()


def test_a_queue_on_read_only_media_can_be_inspected(
    mounted_tmpfs: MountTmpfs, tmp_path: Path, damage_stored: Callable[[Path, Any], bytes]
) -> None:
    mountpoint = mounted_tmpfs("4m")
    directory = mountpoint / "q"

    def fill() -> None:
        q: DurableQueue[int] = DurableQueue(directory)
        q.put_many(range(3))
        q.claim()
        q.put(99)
        q.checkpoint()
        damage_stored(directory, 1)
        with pytest.raises(CorruptFileError):
            q.get_nowait()

    fill()
    gc.collect()  # the writer's journal descriptors would keep the mount busy
    remount = subprocess.run(
        ["mount", "-o", "remount,ro", str(mountpoint)],
        capture_output=True,
        text=True,
        check=False,
    )
    if remount.returncode != 0:
        facility_unavailable(f"cannot remount the tmpfs read-only: {remount.stderr.strip()}")
    before = snapshot_tree(directory)
    reader: DurableQueue[int] = DurableQueue(directory)
    assert reader.qsize() == 2 and reader.unfinished_tasks == 3
    assert [letter.id for letter in reader.dead_letters()] == [1]
    assert not reader.empty()
    with pytest.raises(OSError) as raised:
        reader.get_nowait()  # taking an item is a write
    assert raised.value.errno == errno.EROFS
    assert snapshot_tree(directory) == before


def test_generic(tmp_path: Path) -> None:
    q = DurableQueue[int](tmp_path / "q")
    q.put(1)
    value: int = q.get()
    assert value == 1
    assert DurableQueue[str].__origin__ is DurableQueue  # type: ignore[attr-defined]


def test_a_checkpoint_by_another_opener_is_seen(tmp_path: Path) -> None:
    writer: DurableQueue[bytes] = DurableQueue(tmp_path / "q", durability="atomic")
    reader: DurableQueue[bytes] = DurableQueue(tmp_path / "q", durability="atomic")
    big = [bytes([n]) * 4096 for n in range(256)]  # 1 MiB: at least one checkpoint
    writer.put(b"first")
    assert reader.get() == b"first"
    writer.put_many(big[:100])
    held = reader.claim()
    writer.put_many(big[100:])
    assert len(os.listdir(tmp_path / "q" / ".persistkit-queue.items")) > 0  # checkpointed
    assert held.item == big[0]
    assert [reader.get() for _ in range(255)] == big[1:]
    held.ack()
    assert reader.qsize() == 0 and writer.unfinished_tasks == 256  # gets await task_done
    for _ in range(256):
        reader.task_done()
    writer.join(timeout=0)


def test_checkpoint_is_crash_safe(tmp_path: Path) -> None:
    directory = tmp_path / "q"

    def setup() -> None:
        shutil.rmtree(directory, ignore_errors=True)
        q: DurableQueue[int] = DurableQueue(directory)
        q.put_many(range(4))
        q.checkpoint()
        q.put_many(range(4, 8))
        assert q.get() == 0
        q.claim().nack()  # 1 given back: first in line
        q.claim(lease=3600)  # 1 again, leased to this (living) process
        assert q.get() == 2

    def check(point: CrashPoint) -> None:
        q: DurableQueue[int] = DurableQueue(directory)
        assert q.unfinished_tasks == 8, f"after a crash at {point}"  # 0 and 2 await task_done
        assert list(q.getter()) == list(range(3, 8)), f"after a crash at {point}"

    crash_at_every_call(lambda: DurableQueue(directory).checkpoint(), setup=setup, check=check)


def test_a_checkpoint_keeps_items_in_one_segment_until_every_one_has_left(
    tmp_path: Path,
) -> None:
    items = tmp_path / "q" / ".persistkit-queue.items"
    q: DurableQueue[str] = DurableQueue(tmp_path / "q")
    q.put_many(["a", "b", "c"])
    q.checkpoint()
    [segment] = os.listdir(items)  # one file for the three items
    held = q.claim()
    assert q.get() == "b" and q.get() == "c"
    q.checkpoint()
    assert os.listdir(items) == [segment]  # "a" is leased: its bytes must stay
    held.ack()
    q.put("d")
    q.checkpoint()
    assert DurableQueue(tmp_path / "q").get() == "d"
    q.checkpoint()
    assert os.listdir(items) == []  # nothing is left for the drained queue


def test_a_damaged_segment_index_is_a_corrupt_file_error_naming_it(tmp_path: Path) -> None:
    q: DurableQueue[str] = DurableQueue(tmp_path / "q")
    q.put_many(["a", "b"])
    q.checkpoint()
    [segment] = (tmp_path / "q" / ".persistkit-queue.items").iterdir()
    data = segment.read_bytes()
    segment.write_bytes(data[:12] + bytes([data[12] ^ 0xFF]) + data[13:])
    with pytest.raises(CorruptFileError) as raised:
        DurableQueue(tmp_path / "q").get_nowait()
    assert raised.value.path == str(segment) and "checksum" in str(raised.value)
    segment.write_bytes(data)  # repaired (from a backup, say): nothing was lost or moved
    assert list(DurableQueue(tmp_path / "q").getter()) == ["a", "b"]
