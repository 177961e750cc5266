"""The examples of iodict's README, with only the import (and /tmp path) changed."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

from persistkit import iodict


def test_dictionary_usage(tmp_path: Path) -> None:
    data = iodict.IODict(path=str(tmp_path / "iodict"))  # Could be any path on the file system
    data["key"] = "value"
    assert repr(data) == repr({"key": "value"})
    assert data == {"key": "value"}
    names = dir(data)
    for name in [
        "__delitem__", "__enter__", "__eq__", "__exit__", "__getitem__", "__iter__",
        "__len__", "__repr__", "__setitem__", "_db_path", "_encoder", "_lock", "clear",
        "copy", "fromkeys", "get", "items", "keys", "pop", "popitem", "setdefault",
        "update", "values",
    ]:  # fmt: skip
        assert name in names


def test_lock_factory_usage(tmp_path: Path) -> None:
    data = iodict.IODict(path=str(tmp_path / "iodict"), lock=threading.Lock)
    data["a"] = 1
    assert data["a"] == 1


def test_durable_queue_usage(tmp_path: Path) -> None:
    q = iodict.DurableQueue(path=str(tmp_path / "iodict"))  # Could be any path on the file system
    q.put("test")
    data = q.get()
    assert data == "test"


def test_flushing_queue_usage(tmp_path: Path) -> None:
    class NewQueue(queue.Queue, iodict.FlushQueue):  # type: ignore[type-arg]
        def __init__(self, path, lock=None, semaphore=None):  # type: ignore[no-untyped-def]
            super().__init__()
            self.path = path
            self.lock = lock
            self.semaphore = semaphore

    q = NewQueue(path=str(tmp_path / "iodict"))  # Could be any path on the file system
    q.put("test")
    assert q.qsize() == 1
    q.flush()
    assert q.qsize() == 0
    q.ingest()
    assert q.qsize() == 1
    assert q.get() == "test"


def test_readme_examples_share_one_directory(tmp_path: Path) -> None:
    """The README points every example at the same /tmp/iodict: they must coexist."""
    path = str(tmp_path / "iodict")
    data = iodict.IODict(path=path)
    data["key"] = "value"
    q = iodict.DurableQueue(path=path)
    q.put("test")
    assert q.get() == "test"
    assert data == {"key": "value"}
