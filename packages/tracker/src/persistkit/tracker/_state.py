"""The sync engine: one store's content in memory, and how changes reach its files.

`StoreState` holds the keys in shard order, the values, what is pending for the next sync,
and the tracker counters; `load`, `refresh` and `sync` move it to and from a `StoreFolder`.
The public mapping classes (`PersistentOrderedDict` and the shared ones) sit on top of it.
"""

from __future__ import annotations

import os
from typing import Any

from persistkit.core import Durability
from persistkit.core.errors import SerializationError
from persistkit.tracker._lines import (
    Key,
    encode_key,
    encode_line_keeping,
    encode_lines,
)
from persistkit.tracker._shards import Manifest, ShardFile, ShardRecord, Signature, StoreFolder
from persistkit.tracker._tasks import ABORTED, DONE, TRIED, task_flags
from persistkit.tracker.errors import IntegrityError


class _Shard:
    """The keys of one shard file, in order, and what is known about the file on disk."""

    __slots__ = ("disk_count", "keys", "record", "rewrite", "signature")

    def __init__(
        self,
        keys: list[Key],
        disk_count: int,
        signature: Signature | None,
        record: ShardRecord | None,
    ) -> None:
        self.keys = keys
        self.disk_count = disk_count  # keys[:disk_count] are the file's lines, in order
        self.signature = signature
        self.record = record  # what the file on disk holds (None: no file yet)
        self.rewrite = False  # a key was removed: the file must be written from scratch

    @classmethod
    def read(cls, shard: ShardFile) -> _Shard:
        """Return the shard of a file just read."""
        return cls(shard.keys, len(shard.keys), shard.signature, shard.record)


class StoreState:
    """The in-memory content of one store, shared by the POD objects that are clones.

    ``pending`` holds the keys to look at on the next sync: keys that were set, and keys
    whose (mutable) value was handed out and may have been changed in place. At sync each
    pending key's line is encoded and compared with the line on disk, so a key that was only
    read costs no write. For tracker counters, ``pending`` maps each key to the task flags its
    value had when it became pending (the counters still count those flags).
    """

    def __init__(
        self,
        folder: str,
        *,
        gzipped: bool,
        file_size: int,
        durability: Durability,
        read_only: bool = False,
    ) -> None:
        self.folder = folder
        self.files = StoreFolder(folder, gzipped, read_only=read_only)
        self.gzipped = gzipped
        self.file_size = file_size
        self.durability: Durability = durability
        self.values: dict[Key, Any] = {}
        self.shard_of: dict[Key, int] = {}
        self.shards: list[_Shard] = []
        self.disk_shards = 0
        self.pending: dict[Key, int] = {}
        self.rewrite_shards: set[int] = set()
        self.force_shards: set[int] = set()
        self.generation = 0
        self.counts: list[int] | None = None
        self.closed = False
        self.owner_pid = os.getpid()

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the whole store from disk, finishing an interrupted sync first.

        Raises:
            IntegrityError: a shard is missing, undecodable, or holds less than (or other
                keys than) the manifest records; nothing is written.
        """
        files = self.files
        with files.lock:
            # Reading only: a commit left half done is read as committed, not finished.
            manifest = files.read_manifest() if files.read_only else files.recover(self.durability)
            layout = files.layout(manifest)
            values: dict[Key, Any] = {}
            shard_of: dict[Key, int] = {}
            shards: list[_Shard] = []
            for index, path in enumerate(layout.sources):
                if index == layout.optional and not os.path.exists(path):
                    break  # a new shard announced by a one-shard sync that did not happen
                shard = files.read_shard(
                    path, layout.expected[index], layout.alternatives.get(index)
                )
                last = index == len(layout.sources) - 1
                if manifest is None and not last and len(shard.keys) != self.file_size:
                    raise IntegrityError(
                        path,
                        f"has {len(shard.keys)} lines instead of file_size={self.file_size} "
                        "(a store written by tastypy must be opened with its file_size)",
                    )
                before = len(values)
                values.update(zip(shard.keys, shard.values, strict=True))
                if len(values) - before != len(shard.keys):
                    raise IntegrityError(path, "a key appears twice")
                shard_of.update(dict.fromkeys(shard.keys, index))
                shards.append(_Shard.read(shard))
        self.values, self.shard_of, self.shards = values, shard_of, shards
        self.disk_shards = len(shards)
        self.generation = manifest.generation if manifest is not None else 0
        self.pending = {}
        self.rewrite_shards = set()
        self.force_shards = set()
        self.counts = None

    def refresh(self) -> None:
        """Bring memory up to date with what other processes committed; the lock is held.

        Only the shards changed since this process last looked are read again (all of them
        when more changed than the manifest's history remembers).
        """
        files = self.files
        manifest = files.read_manifest()
        if manifest is None:
            if self.generation != 0:
                self.load()
            return
        unfinished = files.unfinished(manifest)
        if unfinished and not files.read_only:
            # A writer died between its commit point and the end of its renames.
            files.recover(self.durability)
        if manifest.generation == self.generation and not unfinished:
            return
        changed = manifest.changed_since(self.generation)
        if changed is None or unfinished or self.pending or self.rewrite_shards:
            self.load()
            return
        self._reload_shards(sorted(changed), manifest)
        self.generation = manifest.generation

    def _reload_shards(self, indexes: list[int], manifest: Manifest) -> None:
        counts = self.counts
        count = manifest.shards
        alternative = manifest.alternative
        while len(self.shards) < count:
            self.shards.append(_Shard([], 0, None, None))
        for index in indexes:
            if index >= count:
                continue
            path = self.files.shard_path(index)
            old = None
            if alternative is not None and alternative[0] == index:
                old = alternative[1]
                if old is None and index == count - 1 and not os.path.exists(path):
                    count -= 1  # a new shard announced by a one-shard sync that did not happen
                    break
            shard = self.files.read_shard(path, manifest.records[index], old)
            self._drop_keys(self.shards[index].keys, index)
            for key, value in zip(shard.keys, shard.values, strict=True):
                if counts is not None:
                    if key in self.values:
                        self._count(self.values[key], -1)
                    self._count(value, 1)
                self.values[key] = value
                self.shard_of[key] = index
            self.shards[index] = _Shard.read(shard)
        for index in range(count, len(self.shards)):
            self._drop_keys(self.shards[index].keys, index)
        del self.shards[count:]
        self.disk_shards = count

    def _drop_keys(self, keys: list[Key], index: int) -> None:
        for key in keys:
            if self.shard_of.get(key) == index:
                if self.counts is not None:
                    self._count(self.values[key], -1)
                del self.values[key]
                del self.shard_of[key]

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
            last = _Shard([], 0, None, None)
            shards.append(last)
        last.keys.append(key)
        self.shard_of[key] = len(shards) - 1
        self.values[key] = value
        self.pending[key] = 0  # a new key: the counters do not count it yet

    def delete(self, key: Key) -> Any:
        """Remove ``key`` (present) and return its value."""
        index = self.shard_of.pop(key)
        value = self.values.pop(key)
        old = self.pending.pop(key, None)
        if self.counts is not None:
            if old is None:
                self._count(value, -1)
            else:
                for bit, slot in ((DONE, 0), (TRIED, 1), (ABORTED, 2)):
                    self.counts[slot] -= bool(old & bit)
        self.shards[index].keys.remove(key)
        self.shards[index].rewrite = True
        self.rewrite_shards.add(index)
        return value

    def clear(self) -> None:
        """Remove every key."""
        for index, shard in enumerate(self.shards):
            if shard.keys:
                shard.keys = []
                shard.rewrite = True
                self.rewrite_shards.add(index)
        self.values.clear()
        self.shard_of.clear()
        self.pending.clear()
        if self.counts is not None:
            self.counts = [0, 0, 0]

    # -- syncing ------------------------------------------------------------------------------

    def exit_sync(self) -> None:
        """Sync pending changes at exit or on a signal (the exit hooks call this)."""
        if not self.closed and (self.pending or self.rewrite_shards or self.force_shards):
            self.sync()

    def sync(self, durability: Durability | None = None) -> bool:
        """Write every pending change in one atomic commit.

        Returns:
            True when files were written (False when nothing had changed on disk).

        Raises:
            SerializationError: a value cannot be stored as JSON; nothing was written and
                the pending changes are kept.
        """
        self._fold_pending()
        candidates = set(map(self.shard_of.__getitem__, self.pending))
        candidates |= self.rewrite_shards | self.force_shards
        count = len(self.shards)
        while count and not self.shards[count - 1].keys:
            count -= 1
        texts: dict[int, str] = {}
        for index in sorted(candidates):
            if index < count:
                text = self._shard_text(index, index in self.force_shards)
                if text is not None:
                    texts[index] = text
        if not texts and count == self.disk_shards:
            self._synced(texts, count)
            return False
        self.files.refuse_writes()
        files: dict[int, tuple[bytes, ShardRecord]] = {}
        for index, text in texts.items():
            raw = text.encode("utf-8")
            files[index] = (
                self.files.encode_raw(raw),
                ShardRecord.of(raw, self.shards[index].keys),
            )
        records: list[ShardRecord] = []
        for index in range(count):
            record = files[index][1] if index in files else self.shards[index].record
            if record is None:  # pragma: no cover - a shard not on disk always has new text
                raise AssertionError(f"shard {index} has neither a file nor new content")
            records.append(record)
        disk: list[ShardRecord] = []
        for shard in self.shards[: self.disk_shards]:
            if shard.record is None:  # pragma: no cover - every shard read has a record
                raise AssertionError("a shard on disk has no record")
            disk.append(shard.record)
        with self.files.lock:
            manifest = self.files.commit(
                files,
                records,
                disk,
                file_size=self.file_size,
                durability=durability or self.durability,
            )
            for index in texts:
                shard = self.shards[index]
                shard.signature = self.files.signature(index)
                shard.record = files[index][1]
        previous = self.generation
        self.generation = manifest.generation if manifest.generation == previous + 1 else -1
        self._synced(texts, count)
        return True

    def _synced(self, texts: dict[int, str], count: int) -> None:
        for index in texts:
            shard = self.shards[index]
            shard.disk_count = len(shard.keys)
            shard.rewrite = False
        for index in self.rewrite_shards:
            if index < len(self.shards):
                self.shards[index].rewrite = False
        del self.shards[count:]
        self.disk_shards = count
        self.pending.clear()
        self.rewrite_shards.clear()
        self.force_shards.clear()

    def _shard_text(self, index: int, force: bool) -> str | None:
        """Return the new text of shard ``index``, or None when it would not change.

        When the file on disk is still the one this process last read or wrote, only the
        lines of pending keys are encoded and the others are reused as they are.

        Raises:
            SerializationError: a pending value cannot be stored as JSON.
        """
        shard = self.shards[index]
        values = self.values
        if not shard.rewrite and shard.disk_count and index < self.disk_shards:
            lines = self.files.read_lines(index, shard.signature)
            if lines is not None and len(lines) == shard.disk_count:
                changed = force
                pending = self.pending
                members = shard.keys
                for where in range(shard.disk_count):
                    key = members[where]
                    if key in pending:
                        line = encode_line_keeping(key, values[key], lines[where])
                        if lines[where] != line:
                            lines[where] = line
                            changed = True
                if len(members) > shard.disk_count:
                    lines.append(encode_lines(members[shard.disk_count :], values)[:-1])
                    changed = True
                return "\n".join(lines) + "\n" if changed else None
        try:
            return encode_lines(shard.keys, values)
        except SerializationError:
            return self._shard_text_keeping(index)

    def _shard_text_keeping(self, index: int) -> str:
        """Encode shard ``index`` line by line, keeping NaN or Infinity a file already holds."""
        shard = self.shards[index]
        old: dict[str, str] = {}
        if index < self.disk_shards:
            for line in self.files.read_lines(index, shard.signature) or []:
                old[line.partition("\t")[0]] = line
        lines = [
            encode_line_keeping(key, self.values[key], old.get(encode_key(key)))
            for key in shard.keys
        ]
        return "".join(line + "\n" for line in lines)
