"""DurableQueue: a FIFO queue on a directory, shared by any number of processes."""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from persistkit.core import (
    Batch,
    CorruptFileError,
    InvalidArgumentError,
    check_durability,
    fsync_dir,
    remove,
    rename,
    resolve_format,
    sweep,
    write_bytes,
)
from persistkit.iodict._directory import StoreLock, open_directory, resolve_user_lock
from persistkit.iodict._layouts import NotAnItemError, open_item
from persistkit.iodict.errors import QueueClosedError

QUEUE_LOCK_NAME = ".persistkit-queue.lock"
ITEMS_NAME = ".persistkit-queue.items"
_MARKER_PREFIX = ".persistkit-queue."
_KINDS = ("head", "tail", "done")
_SEQ_DIGITS = 20
_FIRST_WAIT = 0.001
_MAX_WAIT = 0.05
# How far a counter is probed upward from its cached value before the directory is listed.
_PROBE_LIMIT = 64


def _item_name(seq: int) -> str:
    return f"{seq:0{_SEQ_DIGITS}d}"


class DurableQueue:
    """A FIFO queue kept in a directory, with the `queue.Queue` API.

    Each item is one file named by its sequence number, in the ``.persistkit-queue.items``
    subdirectory. Three empty marker files beside it carry the
    counters in their names: ``.persistkit-queue.head.<n>`` (the next item to get),
    ``.persistkit-queue.tail.<n>`` (the next number to put) and
    ``.persistkit-queue.done.<n>`` (`task_done` calls, for `join`). Every operation takes
    the queue's cross-process file lock, finds the markers (one ``stat`` each; the values
    are cached), touches the item files it needs and commits by renaming one marker. So
    ``get`` costs the same at any depth, with no directory scan (iodict 0.0.8 scanned and
    sorted the whole directory on every get) and without creating any file.

    Any number of processes, related or not, may put and get on one directory at once:
    every item is delivered to exactly one ``get``, in FIFO order, and none is lost. The
    queue outlives the processes: reopening the directory continues where it stopped.

    Guarantees: when `put` returns, the item is in the queue, atomically and (with
    ``durability="durable"``, the default) durably. When `get` returns an item, its removal
    is durable; a consumer killed inside ``get`` either took the item (it is gone) or did
    not (it stays at the head), never both. Items are at-most-once: a consumer that dies
    *after* ``get`` returned has consumed its item.

    Values are pickled by default (as iodict does): **only open directories you trust**.

    Args:
        path: the queue directory; created if missing.
        lock: a lock object or factory (iodict's argument), taken in addition to the
            queue's own file lock.
        semaphore: accepted for compatibility with iodict and not used: blocking is
            driven by the queue's own state, which also sees other processes' puts.
        maxsize: ``put`` blocks while the queue holds this many items; 0 is unbounded.
        format: ``"pickle"`` (default), ``"json"``, or any format persistkit-core accepts.
        durability: ``"durable"`` or ``"atomic"`` (no fsync: safe against a process crash
            only).

    Example:
        >>> q = DurableQueue("/tmp/jobs")  # doctest: +SKIP
        >>> q.put("test")  # doctest: +SKIP
        >>> q.get()  # doctest: +SKIP
        'test'
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        lock: Any = None,
        semaphore: Any = None,
        *,
        maxsize: int = 0,
        format: Any = None,
        durability: str = "durable",
    ) -> None:
        del semaphore
        check_durability(durability)
        if maxsize < 0:
            raise InvalidArgumentError("maxsize must be 0 (unbounded) or positive")
        self._durability: Any = durability
        self._codec = resolve_format("pickle" if format is None else format)
        self._directory = open_directory(path)
        self._items = open_directory(os.path.join(self._directory, ITEMS_NAME))
        self._tidied_at = -1
        self._counters = {kind: -1 for kind in _KINDS}
        self._lock = StoreLock(
            os.path.join(self._directory, QUEUE_LOCK_NAME), resolve_user_lock(lock)
        )
        self.maxsize = maxsize
        self._closed = False
        self._changed = threading.Condition()
        with self._lock:
            self._recover()

    @property
    def path(self) -> str:
        """The absolute path of the queue directory."""
        return self._directory

    # -- counters ----------------------------------------------------------------------

    def _marker(self, kind: str, value: int) -> str:
        return os.path.join(self._directory, f"{_MARKER_PREFIX}{kind}.{value}")

    def _scan_markers(self) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {kind: [] for kind in _KINDS}
        with os.scandir(self._directory) as entries:
            for entry in entries:
                if not entry.name.startswith(_MARKER_PREFIX):
                    continue
                kind, _, number = entry.name[len(_MARKER_PREFIX) :].partition(".")
                if kind in found and number.isdigit():
                    found[kind].append(int(number))
        return found

    def _counter(self, kind: str) -> int:
        """Return a counter's value; the caller holds the lock."""
        cached = self._counters[kind]
        if cached >= 0:
            for value in range(cached, cached + _PROBE_LIMIT):
                if os.path.lexists(self._marker(kind, value)):
                    self._counters[kind] = value
                    return value
        values = self._scan_markers()[kind]
        if not values:
            raise CorruptFileError(self._marker(kind, 0), f"the queue's {kind} marker is missing")
        self._counters[kind] = max(values)
        return self._counters[kind]

    def _advance(self, kind: str, old: int, new: int) -> None:
        """Commit a counter change with one rename; the caller holds the lock."""
        rename(self._marker(kind, old), self._marker(kind, new), durability=self._durability)
        self._counters[kind] = new

    def _item_path(self, seq: int) -> str:
        return os.path.join(self._items, _item_name(seq))

    def _item_numbers(self) -> list[int]:
        with os.scandir(self._items) as entries:
            return [
                int(entry.name)
                for entry in entries
                if len(entry.name) == _SEQ_DIGITS and entry.name.isdigit()
            ]

    def _recover(self) -> None:
        """Make sure each marker exists exactly once (the caller holds the lock).

        Two markers of one kind can only be a rename cut short by power loss; the higher
        one is kept. Missing markers (a new queue) are created from the items present.
        Only the small top directory is listed, never the items.
        """
        found = self._scan_markers()
        numbers = [] if all(found.values()) else self._item_numbers()
        changed = False
        values: dict[str, int] = {}
        for kind in ("head", "tail", "done"):
            present = found[kind]
            if present:
                values[kind] = max(present)
                for stale in present:
                    if stale != values[kind]:
                        remove(self._marker(kind, stale), durability="atomic", missing_ok=True)
                        changed = True
                continue
            if kind == "head":
                values[kind] = min(numbers, default=0)
            elif kind == "tail":
                values[kind] = max(numbers, default=values["head"] - 1) + 1
            else:
                values[kind] = values["head"]
            write_bytes(
                self._marker(kind, values[kind]),
                b"",
                overwrite=False,
                durability="atomic",
                follow_symlinks=False,
            )
            changed = True
        if changed and self._durability == "durable":
            fsync_dir(self._directory)
        self._counters.update(values)
        sweep(self._directory)

    def _tidy(self, head: int, tail: int) -> None:
        """Remove item files outside [head, tail); called when the queue is found empty.

        They are what a process killed inside ``get`` (below the head) or ``put`` (at or
        beyond the tail) left: never delivered twice, never acknowledged. An empty queue's
        item directory holds only such files, so listing it then is cheap.
        """
        if self._tidied_at == head:
            return
        for number in self._item_numbers():
            if not head <= number < tail:
                remove(self._item_path(number), durability="atomic", missing_ok=True)
        sweep(self._items)
        self._tidied_at = head

    def _decode(self, path: str, payload: bytes) -> Any:
        try:
            return self._codec.loads(payload)
        except (OSError, MemoryError):
            raise
        except Exception as error:
            raise CorruptFileError(path, f"{type(error).__name__}: {error}") from error

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosedError("the queue is closed")

    # -- waiting -----------------------------------------------------------------------

    def _wait(self, deadline: float | None, delay: float) -> float:
        """Wait for a change by this process or until the next poll; return the next delay."""
        if deadline is not None:
            delay = min(delay, max(deadline - time.monotonic(), 0.0))
        with self._changed:
            self._changed.wait(delay)
        return min(delay * 2, _MAX_WAIT) or _FIRST_WAIT

    def _notify(self) -> None:
        with self._changed:
            self._changed.notify_all()

    @staticmethod
    def _deadline(block: bool, timeout: float | None) -> float | None:
        if timeout is not None and timeout < 0:
            raise ValueError("'timeout' must be a non-negative number")
        if not block or timeout is None:
            return None
        return time.monotonic() + timeout

    # -- putting -----------------------------------------------------------------------

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        """Append ``item``; atomic, and durable with the default durability.

        Blocks only when ``maxsize`` is set and the queue is full.

        Raises:
            queue.Full: the queue stayed full (``block=False``, or ``timeout`` ran out).
            SerializationError: ``item`` cannot be encoded; the queue is unchanged.
        """
        self._put([item], block, timeout)

    def put_nowait(self, item: Any) -> None:
        """Append ``item`` without blocking (`queue.Full` if full)."""
        self.put(item, block=False)

    def put_many(self, items: Iterable[Any]) -> None:
        """Append several items with one group commit (one flush, one directory fsync).

        All items are encoded first: one that cannot be encoded raises before anything is
        written. ``maxsize`` is not enforced here. When it returns all items are in the
        queue in order; if the process dies midway, a prefix of them is.
        """
        self._put(list(items), block=True, timeout=None, bounded=False)

    def _put(
        self, items: list[Any], block: bool, timeout: float | None, *, bounded: bool = True
    ) -> None:
        self._check_open()
        payloads = [self._codec.dumps(item) for item in items]
        if not payloads:
            return
        deadline = self._deadline(block, timeout)
        delay = _FIRST_WAIT
        while True:
            with self._lock:
                head, tail = self._counter("head"), self._counter("tail")
                if not bounded or not self.maxsize or tail - head < self.maxsize:
                    with Batch(durability=self._durability) as batch:
                        for offset, payload in enumerate(payloads):
                            batch.write_bytes(
                                self._item_path(tail + offset), payload, follow_symlinks=False
                            )
                    # The items are published (and durable) before the tail moves past
                    # them: the tail never counts an item that is not there.
                    self._advance("tail", tail, tail + len(payloads))
                    break
            if not block or (deadline is not None and time.monotonic() >= deadline):
                raise queue.Full
            delay = self._wait(deadline, delay)
        self._notify()

    # -- getting -----------------------------------------------------------------------

    def _take(self) -> tuple[bool, Any]:
        """Take the head item if there is one; the caller holds no lock."""
        with self._lock:
            head, tail = self._counter("head"), self._counter("tail")
            start = head
            while head < tail:
                path = self._item_path(head)
                try:
                    fd = open_item(path)
                except NotAnItemError:
                    # Only a power loss in the middle of put_many leaves a hole; skip it.
                    head += 1
                    continue
                with os.fdopen(fd, "rb") as f:
                    value = self._decode(path, f.read())
                # The head moves (durably) first; only then is the file removed, so a kill
                # in between leaves a leftover file below the head, never a repeat.
                self._advance("head", start, head + 1)
                remove(path, durability="atomic", missing_ok=True)
                return True, value
            if head != start:
                self._advance("head", start, head)
            self._tidy(head, tail)
            return False, None

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        """Remove and return the oldest item.

        Args:
            block: wait for an item when the queue is empty.
            timeout: with ``block``, wait at most this many seconds (None: forever).

        Returns:
            The item.

        Raises:
            queue.Empty: no item arrived in time (or at once, with ``block=False``).
            ValueError: ``timeout`` is negative.
        """
        self._check_open()
        deadline = self._deadline(block, timeout)
        delay = _FIRST_WAIT
        while True:
            found, value = self._take()
            if found:
                self._notify()
                return value
            if not block or (deadline is not None and time.monotonic() >= deadline):
                raise queue.Empty
            delay = self._wait(deadline, delay)

    def _drain_into(self, put: Callable[[Any], object]) -> int:
        """Hand every item to ``put`` in order, then remove them all; return how many.

        The items leave the disk only after ``put`` accepted every one of them.
        """
        self._check_open()
        with self._lock:
            head, tail = self._counter("head"), self._counter("tail")
            present = []
            for seq in range(head, tail):
                path = self._item_path(seq)
                try:
                    fd = open_item(path)
                except NotAnItemError:
                    continue
                with os.fdopen(fd, "rb") as f:
                    present.append((path, self._decode(path, f.read())))
            for _, value in present:
                put(value)
            done = self._counter("done")
            self._advance("head", head, tail)
            # Items handed back to memory are no longer tasks of this queue.
            self._advance("done", done, min(done + len(present), tail))
            for path, _ in present:
                remove(path, durability="atomic", missing_ok=True)
        self._notify()
        return len(present)

    def get_nowait(self) -> Any:
        """Remove and return the oldest item, or raise `queue.Empty` at once."""
        return self.get(block=False)

    def getter(self) -> Iterator[Any]:
        """Yield items until the queue is empty (each removed as it is yielded).

        Example:
            >>> for job in q.getter():  # doctest: +SKIP
            ...     run(job)
        """
        while True:
            try:
                yield self.get_nowait()
            except queue.Empty:
                return

    # -- sizes and tasks ---------------------------------------------------------------

    def qsize(self) -> int:
        """Return the number of items in the queue (exact when read, as for any queue)."""
        with self._lock:
            return self._counter("tail") - self._counter("head")

    def empty(self) -> bool:
        """Return True if the queue holds no item."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Return True if ``maxsize`` is set and reached."""
        return bool(self.maxsize) and self.qsize() >= self.maxsize

    def task_done(self) -> None:
        """Tell the queue that one item taken by `get` has been processed.

        The count of unfinished tasks is kept in the queue directory, so `join` in one
        process waits for ``task_done`` calls made in others (and across restarts: a
        consumer killed between ``get`` and ``task_done`` leaves the count raised).

        Raises:
            ValueError: called more times than items were put.
        """
        self._check_open()
        with self._lock:
            done, tail = self._counter("done"), self._counter("tail")
            if done >= tail:
                raise ValueError("task_done() called too many times")
            self._advance("done", done, done + 1)
        self._notify()

    def join(self, timeout: float | None = None) -> None:
        """Block until every item put has been marked done with `task_done`.

        Args:
            timeout: give up after this many seconds (an extension; `queue.Queue.join`
                has none).

        Raises:
            TimeoutError: ``timeout`` ran out first.
        """
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _FIRST_WAIT
        while self._unfinished():
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("unfinished tasks remain")
            delay = self._wait(deadline, delay)

    def _unfinished(self) -> int:
        with self._lock:
            return self._counter("tail") - self._counter("done")

    def close(self) -> None:
        """Stop using this queue object; later calls raise `QueueClosedError`.

        The items stay on disk for the next opener. iodict 0.0.8's ``close`` deleted every
        item and the directory; delete the directory yourself if that is what you want.
        """
        self._closed = True

    def __enter__(self) -> DurableQueue:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
