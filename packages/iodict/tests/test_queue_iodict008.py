"""Queue directories written by the real iodict 0.0.8 (issue 9, item 6).

iodict 0.0.8 is a test dependency of this package, so these run everywhere the suite runs.
"""

from __future__ import annotations

import os
import pickle
import queue
import shutil
import uuid
from pathlib import Path
from typing import Any

import iodict
import pytest

from persistkit.core import UnloadableValueError
from persistkit.core.testing import CrashPoint, crash_at_every_call, snapshot_tree
from persistkit.iodict import DurableQueue, FlushQueue, IODict


class SavingQueue(queue.Queue, FlushQueue):  # type: ignore[type-arg]
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path


class OldSavingQueue(queue.Queue, iodict.FlushQueue):  # type: ignore[misc,type-arg]
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path, self.lock, self.semaphore = path, None, None


def _old_queue(directory: Path, items: list[Any]) -> None:
    old = iodict.DurableQueue(path=str(directory))
    for item in items:
        old.put(item)


def test_a_queue_of_iodict_008_is_counted_and_delivered_in_its_order(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    _old_queue(directory, ["first", {"second": 2}, ["third"]])
    before = snapshot_tree(directory)
    q: DurableQueue[Any] = DurableQueue(directory)
    assert q.qsize() == 3 and q.unfinished_tasks == 3 and not q.empty()
    assert snapshot_tree(directory) == before  # counting them wrote nothing
    assert q.get() == "first"
    assert DurableQueue(directory).qsize() == 2  # another process sees the same
    assert q.get() == {"second": 2}
    assert q.get() == ["third"]
    with pytest.raises(queue.Empty):
        q.get_nowait()
    leftover = [name for name in os.listdir(directory) if not name.startswith(".persistkit")]
    assert leftover == []  # each file was removed when its item was delivered


def test_new_items_come_after_the_old_ones(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    _old_queue(directory, [1, 2])
    q: DurableQueue[int] = DurableQueue(directory)
    q.put(3)
    assert q.qsize() == 3
    assert list(DurableQueue[int](directory).getter()) == [1, 2, 3]


def test_claimed_old_items_come_back_and_are_acked(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    _old_queue(directory, ["a", "b"])
    q: DurableQueue[str] = DurableQueue(directory)
    first = q.claim()
    assert first.item == "a"
    first.nack()
    again = q.claim()
    assert (again.item, again.tries) == ("a", 2)
    again.ack()
    with q.claim() as job:
        assert job.item == "b"
    assert q.qsize() == 0 and q.unfinished_tasks == 0


def test_an_old_item_whose_class_is_gone_is_moved_aside(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    _old_queue(directory, ["ok", "placeholder"])
    # What iodict 0.0.8 pickled for an object whose module has since been renamed.
    payload = b"\x80\x02cjobs_renamed_since\nJob\nq\x00)\x81q\x01."
    [name] = [
        n
        for n in os.listdir(directory)
        if (directory / n).read_bytes().endswith(b"placeholder\x94.")
    ]
    (directory / name).write_bytes(payload)
    q: DurableQueue[Any] = DurableQueue(directory)
    assert q.get() == "ok"
    with pytest.raises(UnloadableValueError) as raised:
        q.get()
    assert Path(raised.value.path).read_bytes() == payload
    assert [letter.error for letter in q.dead_letters()] == ["UnloadableValueError"]


def test_a_flush_of_iodict_008_is_ingested(tmp_path: Path) -> None:
    path = str(tmp_path / "saved")
    old = OldSavingQueue(path)
    old.put("one")
    old.put({"two": 2})
    old.flush()
    assert old.qsize() == 0
    restored = SavingQueue(path)
    restored.ingest()
    assert [restored.get_nowait(), restored.get_nowait()] == ["one", {"two": 2}]
    assert DurableQueue(path).qsize() == 0


def test_a_directory_shared_with_an_iodict_keeps_the_dict_out_of_the_queue(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "shared"
    data = IODict(directory)
    data[str(uuid.uuid4())] = "a dict value under a uuid key"
    _old_queue(directory, ["queued"])
    q: DurableQueue[str] = DurableQueue(directory)
    assert q.qsize() == 1
    assert q.get() == "queued"
    assert list(data.values()) == ["a dict value under a uuid key"]


def test_items_named_by_their_uuid_without_xattrs(tmp_path: Path) -> None:
    """iodict 0.0.8 on a mount without xattrs names each file str(key) (hand-made here)."""
    directory = tmp_path / "q"
    directory.mkdir()
    for value in ["x", "y"]:
        (directory / str(uuid.uuid4())).write_bytes(pickle.dumps(value))
    assert list(DurableQueue[str](directory).getter()) == ["x", "y"]  # ctime order


def test_adopting_old_items_is_crash_safe(tmp_path: Path) -> None:
    directory = tmp_path / "q"
    template = tmp_path / "template"
    _old_queue(template, ["a", "b", "c"])
    allowed = [["a", "b", "c"], ["a", "b", "c", "new"]]
    seen: set[int] = set()

    def setup() -> None:
        shutil.rmtree(directory, ignore_errors=True)
        shutil.copytree(template, directory)  # copytree keeps the xattrs

    def check(point: CrashPoint) -> None:
        items = list(DurableQueue[str](directory).getter())
        assert items in allowed, f"after a crash at {point}: {items}"
        seen.add(allowed.index(items))

    crash_at_every_call(lambda: DurableQueue(directory).put("new"), setup=setup, check=check)
    assert seen == {0, 1}
