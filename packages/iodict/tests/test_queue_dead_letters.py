"""One item that cannot be decoded never blocks a DurableQueue (issue 9, item 4)."""

from __future__ import annotations

import importlib
import pickle
import queue
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persistkit.core import CorruptFileError, UnloadableValueError
from persistkit.iodict import DeadLetter, DurableQueue

ITEMS = ".persistkit-queue.items"


@pytest.fixture
def vanishing_class(tmp_path: Path) -> Iterator[Any]:
    """A class from a real module that is then deleted, as after a rename in a deploy."""
    package = tmp_path / "modules"
    package.mkdir()
    (package / "jobs_v1.py").write_text(
        "class Job:\n"
        "    def __init__(self, n):\n"
        "        self.n = n\n"
        "    def __eq__(self, other):\n"
        "        return type(other).__name__ == 'Job' and other.n == self.n\n"
    )
    sys.path.insert(0, str(package))
    try:
        module = importlib.import_module("jobs_v1")
        yield module.Job
    finally:
        sys.path.remove(str(package))
        sys.modules.pop("jobs_v1", None)


def _forget_module(module_file: Path) -> None:
    module_file.unlink()
    sys.modules.pop("jobs_v1", None)
    importlib.invalidate_caches()


def test_a_missing_class_is_moved_aside_and_named(tmp_path: Path, vanishing_class: Any) -> None:
    q: DurableQueue[Any] = DurableQueue(tmp_path / "q")
    q.put("first")
    q.put(vanishing_class(7))
    q.put("third")
    assert q.get() == "first"
    payload = pickle.dumps(vanishing_class(7))  # its only copy is in the queue's journal
    _forget_module(tmp_path / "modules" / "jobs_v1.py")

    with pytest.raises(UnloadableValueError) as raised:
        q.get()
    # The file is fine: the error must not call it corrupt, and must say where it went.
    assert not isinstance(raised.value, CorruptFileError)
    assert "jobs_v1" in raised.value.reason
    assert "requeue_dead(1)" in str(raised.value)
    assert Path(raised.value.path).read_bytes() == payload
    assert q.qsize() == 1
    assert q.get() == "third"  # the next get goes on

    [letter] = q.dead_letters()
    assert letter == DeadLetter(
        id=1,
        path=raised.value.path,
        reason=letter.reason,
        error="UnloadableValueError",
        tries=0,
        time=letter.time,
    )
    assert "jobs_v1" in letter.reason and letter.time > 0
    assert letter.read_bytes() == payload
    # Another process sees the same dead letters.
    assert DurableQueue(tmp_path / "q").dead_letters() == [letter]


def test_a_requeued_dead_letter_is_delivered_once_the_class_is_back(
    tmp_path: Path, vanishing_class: Any
) -> None:
    module_file = tmp_path / "modules" / "jobs_v1.py"
    source = module_file.read_text()
    q: DurableQueue[Any] = DurableQueue(tmp_path / "q")
    q.put(vanishing_class(3))
    _forget_module(module_file)
    with pytest.raises(UnloadableValueError):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get_nowait()

    module_file.write_text(source)  # the class is deployed again
    importlib.invalidate_caches()
    [letter] = q.dead_letters()
    new_id = q.requeue_dead(letter)
    assert q.dead_letters() == [] and q.qsize() == 1 and new_id == 1
    assert q.get().n == 3


def test_a_damaged_item_is_corrupt_and_moved_aside(
    tmp_path: Path, damage_stored: Callable[[Path, Any], bytes]
) -> None:
    q: DurableQueue[Any] = DurableQueue(tmp_path / "q")
    q.put_many(["x", "y"])
    q.checkpoint()  # now the items are in a file, not in the journal
    damaged = damage_stored(tmp_path / "q", "x")
    with pytest.raises(CorruptFileError) as raised:
        q.get_nowait()
    assert Path(raised.value.path).read_bytes() == damaged  # kept exactly as it was
    assert q.qsize() == 1
    assert q.get_nowait() == "y"
    [letter] = q.dead_letters()
    assert letter.error == "CorruptFileError" and "checksum" in letter.reason
    q.discard_dead(letter.id)
    assert q.dead_letters() == [] and not Path(letter.path).exists()


def test_json_queue_damage_is_corrupt(tmp_path: Path) -> None:
    q: DurableQueue[Any] = DurableQueue(tmp_path / "q", format="json")
    q.put_many([{"a": 1}, {"b": 2}])
    q.checkpoint()
    [segment] = (tmp_path / "q" / ITEMS).iterdir()
    data = segment.read_bytes()
    segment.write_bytes(data.replace(b'{"a": 1}', b'{"a": 2}'))
    with pytest.raises(CorruptFileError):
        q.get()
    assert q.get() == {"b": 2}


def test_claim_moves_a_poison_item_aside_too(tmp_path: Path, vanishing_class: Any) -> None:
    q: DurableQueue[Any] = DurableQueue(tmp_path / "q")
    q.put(vanishing_class(1))
    q.put("next")
    _forget_module(tmp_path / "modules" / "jobs_v1.py")
    with pytest.raises(UnloadableValueError):
        q.claim(block=False)
    with q.claim(block=False) as job:
        assert job.item == "next"
    assert q.unfinished_tasks == 0  # a dead letter is finished as far as join is concerned
    q.join(timeout=0)


def test_ingest_moves_undecodable_items_aside_and_restores_the_rest(
    tmp_path: Path, damage_stored: Callable[[Path, Any], bytes]
) -> None:
    q: DurableQueue[Any] = DurableQueue(tmp_path / "q")
    q.put_many([1, 2, 3])
    q.checkpoint()
    damage_stored(tmp_path / "q", 2)
    restored: list[Any] = []
    with pytest.raises(CorruptFileError):
        q._drain_into(restored.append)
    assert restored == [1, 3]
    assert q.qsize() == 0 and [d.id for d in q.dead_letters()] == [1]


def test_requeue_of_a_missing_dead_letter(tmp_path: Path) -> None:
    q: DurableQueue[Any] = DurableQueue(tmp_path / "q")
    with pytest.raises(FileNotFoundError):
        q.requeue_dead(5)
    with pytest.raises(FileNotFoundError):
        q.discard_dead(5)
