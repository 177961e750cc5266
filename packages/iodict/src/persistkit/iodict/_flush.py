"""FlushQueue: a mixin that saves an in-memory queue's items to disk and restores them."""

from __future__ import annotations

import contextlib
import os
import queue
from typing import Any

from persistkit.iodict._queue import DurableQueue


class FlushQueue:
    """Give a `queue.Queue` (or `multiprocessing.Queue`) ``flush`` and ``ingest``.

    Mix it in after the queue class, and set ``path`` (and optionally ``lock`` and
    ``semaphore``, as iodict does) in ``__init__``. `flush` moves every in-memory item into
    a `DurableQueue` at ``path`` (one durable group commit); `ingest` puts them back in the
    same order and removes them from disk only after all are back in memory.

    Example:
        >>> class NewQueue(queue.Queue, FlushQueue):  # doctest: +SKIP
        ...     def __init__(self, path, lock=None, semaphore=None):
        ...         super().__init__()
        ...         self.path, self.lock, self.semaphore = path, lock, semaphore
    """

    path: str
    lock: Any = None
    semaphore: Any = None

    def __init__(self, path: str, lock: Any = None, semaphore: Any = None) -> None:
        self.path = path
        self.lock = lock
        self.semaphore = semaphore

    def _durable(self) -> DurableQueue[Any]:
        return DurableQueue(self.path, lock=self.lock, semaphore=self.semaphore)

    def _take_all(self) -> list[Any]:
        taken: list[Any] = []
        source: Any = self
        while True:
            try:
                taken.append(source.get_nowait())
            except queue.Empty:
                # A multiprocessing.Queue's feeder thread may still be pushing items that
                # qsize() already counts; wait for those rather than dropping them.
                pending = 0
                with contextlib.suppress(NotImplementedError, AttributeError):
                    pending = source.qsize()
                if pending <= 0:
                    return taken
                with contextlib.suppress(queue.Empty):
                    taken.append(source.get(timeout=1.0))

    def flush(self) -> None:
        """Move every item of this queue to disk at ``self.path``; the queue ends empty.

        When it returns the items are durable on disk, after any items already there.
        """
        items = self._take_all()
        if items:
            self._durable().put_many(items)

    def ingest(self) -> None:
        """Put the items saved at ``self.path`` back into this queue, oldest first.

        Items are removed from disk only after all of them are back in memory, so a failure
        midway loses nothing that is on disk.
        """
        if not os.path.isdir(self.path):
            return
        target: Any = self
        self._durable()._drain_into(target.put)
