from __future__ import annotations

import contextlib
import multiprocessing
import multiprocessing.queues
import queue
from pathlib import Path
from typing import Any

from persistkit.iodict import DurableQueue, FlushQueue


class MemoryQueue(queue.Queue, FlushQueue):  # type: ignore[type-arg]
    def __init__(self, path: str, lock: Any = None, semaphore: Any = None) -> None:
        super().__init__()
        self.path = path
        self.lock = lock
        self.semaphore = semaphore


class ProcessQueue(multiprocessing.queues.Queue, FlushQueue):  # type: ignore[type-arg]
    def __init__(self, path: str) -> None:
        super().__init__(ctx=multiprocessing.get_context())
        self.path = path


def test_flush_and_ingest_keep_order(tmp_path: Path) -> None:
    path = str(tmp_path / "saved")
    q = MemoryQueue(path)
    for i in range(20):
        q.put(i)
    q.flush()
    assert q.qsize() == 0
    assert DurableQueue(path).qsize() == 20  # on disk, durable, for another process too
    restarted = MemoryQueue(path)
    restarted.ingest()
    assert [restarted.get_nowait() for _ in range(20)] == list(range(20))
    assert DurableQueue(path).qsize() == 0


def test_flush_appends_after_items_already_saved(tmp_path: Path) -> None:
    path = str(tmp_path / "saved")
    first = MemoryQueue(path)
    first.put("a")
    first.flush()
    second = MemoryQueue(path)
    second.put("b")
    second.flush()
    third = MemoryQueue(path)
    third.ingest()
    assert [third.get_nowait(), third.get_nowait()] == ["a", "b"]


def test_ingest_without_saved_items_does_nothing(tmp_path: Path) -> None:
    q = MemoryQueue(str(tmp_path / "never-created"))
    q.ingest()
    assert q.qsize() == 0
    assert not (tmp_path / "never-created").exists()


def test_ingest_keeps_items_on_disk_if_putting_fails(tmp_path: Path) -> None:
    path = str(tmp_path / "saved")
    DurableQueue(path).put_many([1, 2, 3])

    class Refusing(MemoryQueue):
        def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
            if item == 3:
                raise RuntimeError("memory queue refused")
            super().put(item, block, timeout)

    with contextlib.suppress(RuntimeError):
        Refusing(path).ingest()
    assert list(DurableQueue(path).getter()) == [1, 2, 3]


def test_multiprocessing_queue_flush_and_ingest(tmp_path: Path) -> None:
    path = str(tmp_path / "saved")
    q = ProcessQueue(path)
    for i in range(50):
        q.put(i)
    q.flush()  # waits for items still in the feeder thread rather than dropping them
    assert q.empty()
    assert DurableQueue(path).qsize() == 50
    q.ingest()
    assert [q.get(timeout=10) for _ in range(50)] == list(range(50))
    q.close()
    q.join_thread()
