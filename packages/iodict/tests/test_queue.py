from __future__ import annotations

import multiprocessing
import os
import queue
import threading
from pathlib import Path

import pytest

from persistkit.core import CorruptFileError, SerializationError
from persistkit.core.testing import record_calls
from persistkit.iodict import DurableQueue, QueueClosedError


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
    deep = DurableQueue(tmp_path / "deep", durability="atomic")
    deep.put_many(range(2000))

    def no_listing(*args: object) -> None:
        raise AssertionError("get listed the directory")

    monkeypatch.setattr(os, "scandir", no_listing)
    monkeypatch.setattr(os, "listdir", no_listing)
    shallow_calls = [c.name for c in record_calls(shallow.get)]
    deep_calls = [c.name for c in record_calls(deep.get)]
    # The same few calls at depth 2 and 2000: write the state file, remove the item.
    assert deep_calls == shallow_calls
    assert deep_calls[-2:] == ["rename", "unlink"]


def test_json_format(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q", format="json")
    q.put({"a": [1]})
    with pytest.raises(SerializationError):
        q.put(object())
    assert q.qsize() == 1
    assert DurableQueue(tmp_path / "q", format="json").get() == {"a": [1]}


def test_corrupt_item_raises_and_stays(tmp_path: Path) -> None:
    q = DurableQueue(tmp_path / "q")
    q.put("x")
    item = tmp_path / "q" / ".persistkit-queue.items" / ("0" * 20)
    with open(item, "r+b") as f:
        f.truncate(2)
    with pytest.raises(CorruptFileError):
        q.get_nowait()
    assert item.exists() and q.qsize() == 1


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
