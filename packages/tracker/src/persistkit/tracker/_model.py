"""The in-memory model every tracker store shares, whatever keeps it: a folder or an object store.

A store's keys live in shards of at most ``file_size`` keys, in insertion order; ``values``
maps each key to its value and ``shard_of`` to its shard. ``pending`` holds the keys to look
at on the next sync: keys that were set, and keys whose (mutable) value was handed out and
may have been changed in place. For tracker counters, ``pending`` maps each key to the task
flags its value had when it became pending (the counters still count those flags).
``added`` are the pending keys that are new since the last sync, ``deleted`` the keys
removed since, ``cleared`` says the store was emptied. How a sync writes them is the
engine's business (`StoreState` for a folder, `ObjectState` for an object store).
"""

from __future__ import annotations

import abc
import os
from typing import Any

from persistkit.core import Durability
from persistkit.tracker._lines import Key
from persistkit.tracker._shards import ShardFile, ShardRecord, Signature
from persistkit.tracker._tasks import ABORTED, DONE, TRIED, task_flags


class Shard:
    """The keys of one shard, in order, and what is known about its file on disk."""

    __slots__ = ("disk_count", "disk_keys", "keys", "path", "record", "signature")

    def __init__(
        self,
        keys: list[Key],
        disk_count: int,
        signature: Signature | None,
        record: ShardRecord | None,
        path: str | None,
    ) -> None:
        self.keys = keys
        self.disk_count = disk_count  # the file's number of lines
        # The file's keys in order, once a removal made keys[:disk_count] differ from them.
        self.disk_keys: list[Key] | None = None
        self.signature = signature
        self.record = record  # what the file on disk holds (None: no file yet)
        self.path = path  # the file this shard was read from

    @classmethod
    def read(cls, shard: ShardFile) -> Shard:
        """Return the shard of a file just read."""
        return cls(shard.keys, len(shard.keys), shard.signature, shard.record, shard.path)

    @classmethod
    def new(cls) -> Shard:
        """Return a shard that has no file yet."""
        return cls([], 0, None, None, None)

    def keep_file_order(self) -> None:
        """Remember the file's keys before `keys` loses one of them."""
        if self.disk_keys is None:
            self.disk_keys = self.keys[: self.disk_count]

    def written(self, path: str, signature: Signature | None, record: ShardRecord) -> None:
        """Note that the file now holds exactly `keys`."""
        self.disk_count = len(self.keys)
        self.disk_keys = None
        self.path = path
        self.signature = signature
        self.record = record


class MemoryModel(abc.ABC):
    """A store's content in memory and what changed since its last sync."""

    gzipped = False

    def __init__(self, folder: str, *, file_size: int) -> None:
        self.folder = folder  # the folder, or the object store's location
        self.file_size = file_size
        self.values: dict[Key, Any] = {}
        self.shard_of: dict[Key, int] = {}
        self.shards: list[Shard] = []
        self.pending: dict[Key, int] = {}
        self.added: dict[Key, None] = {}
        self.deleted: dict[Key, None] = {}
        self.cleared = False
        self.dirty: set[int] = set()
        self.counts: list[int] | None = None
        self.closed = False
        self.owner_pid = os.getpid()

    # -- what an engine provides --------------------------------------------------------------

    @property
    @abc.abstractmethod
    def read_only(self) -> bool:
        """Whether the store was opened for reading only."""

    @abc.abstractmethod
    def refuse_writes(self) -> None:
        """Raise `ReadOnlyStoreError` if the store is open for reading only."""

    @abc.abstractmethod
    def load(self) -> None:
        """Read the whole store again, dropping every pending change."""

    @abc.abstractmethod
    def sync(self, durability: Durability | None = None) -> bool:
        """Write every pending change in one all-or-nothing step; True if something was written."""

    @abc.abstractmethod
    def close(self) -> None:
        """Sync, checkpoint, and let go of the store."""

    @abc.abstractmethod
    def exit_sync(self) -> str | None:
        """Write everything at exit; never raise; one line saying what failed, or None."""

    def _count(self, value: Any, sign: int) -> None:
        flags = task_flags(value)
        if flags and self.counts is not None:
            counts = self.counts
            if flags & DONE:
                counts[0] += sign
            if flags & TRIED:
                counts[1] += sign
            if flags & ABORTED:
                counts[2] += sign

    # -- counters -----------------------------------------------------------------------------

    def task_counts(self) -> list[int]:
        """Return [done, tried, aborted] over all values, exact at this moment."""
        if self.counts is None:
            self.counts = [0, 0, 0]
            pending = self.pending
            for key, value in self.values.items():
                self._count(value, 1)
                if key in pending:
                    pending[key] = task_flags(value)
            return self.counts
        self._fold_pending()
        return self.counts

    def _fold_pending(self) -> None:
        """Bring the counters up to date with in-place changes to pending values."""
        if self.counts is None:
            return
        counts = self.counts
        values = self.values
        pending = self.pending
        for key, old in pending.items():
            new = task_flags(values[key])
            if new != old:
                for bit, slot in ((DONE, 0), (TRIED, 1), (ABORTED, 2)):
                    counts[slot] += bool(new & bit) - bool(old & bit)
                pending[key] = new

    # -- changes ------------------------------------------------------------------------------

    def touch(self, key: Key) -> None:
        """Make ``key`` (present) pending: its value may be changed in place."""
        if key not in self.pending:
            self.pending[key] = task_flags(self.values[key]) if self.counts is not None else 0

    def append(self, key: Key, value: Any) -> None:
        """Add a new ``key`` (absent) at the end, with ``value`` (already validated)."""
        shards = self.shards
        last = shards[-1] if shards else None
        if last is None or len(last.keys) >= self.file_size:
            last = Shard.new()
            shards.append(last)
        last.keys.append(key)
        self.shard_of[key] = len(shards) - 1
        self.values[key] = value
        self.pending[key] = 0  # a new key: the counters do not count it yet
        self.added[key] = None

    def delete(self, key: Key) -> Any:
        """Remove ``key`` (present) and return its value."""
        value = self.values[key]
        old = self.pending.pop(key, None)
        self.added.pop(key, None)
        if self.counts is not None and old is not None:
            # The counters still count the flags the value had when it became pending.
            for bit, slot in ((DONE, 0), (TRIED, 1), (ABORTED, 2)):
                self.counts[slot] -= bool(old & bit)
            self._count(value, 1)
        self._remove(key)
        self.deleted[key] = None
        return value

    def _remove(self, key: Key) -> None:
        index = self.shard_of.pop(key)
        value = self.values.pop(key)
        if self.counts is not None:
            self._count(value, -1)
        shard = self.shards[index]
        shard.keep_file_order()
        shard.keys.remove(key)
        self.dirty.add(index)

    def clear(self) -> None:
        """Remove every key."""
        self._remove_all()
        self.pending.clear()
        self.added.clear()
        self.deleted.clear()
        self.cleared = True

    def _remove_all(self) -> None:
        for index, shard in enumerate(self.shards):
            if shard.keys or shard.disk_count:
                shard.keep_file_order()
                shard.keys = []
                self.dirty.add(index)
        self.values.clear()
        self.shard_of.clear()
        if self.counts is not None:
            self.counts = [0, 0, 0]

    def change_count(self) -> int:
        """How many keys the next sync looks at (set, read, added or removed)."""
        return len(self.pending) + len(self.deleted) + self.cleared

    def forget_changes(self) -> None:
        """Drop the record of what changed since the last sync (not the changes in memory)."""
        self.pending.clear()
        self.added.clear()
        self.deleted.clear()
        self.cleared = False
