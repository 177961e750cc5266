"""A store folder on disk: tastypy's shard files plus a manifest that makes syncs atomic.

Layout (``N`` shards)::

    0.json ... N-1.json          tastypy's files (``.json.gz`` when gzipped)
    persistkit-tracker.json      the manifest: generation, shard count, last commit
    persistkit-tracker.lock      the flock that serialises writers (never deleted)
    .pk-pending.<gen>.<i>        a shard's next content, only while a sync runs

A sync of generation ``g`` that changes several shards ``S`` (the commit protocol, a redo log
whose log records are the new files themselves):

1. write every changed shard to ``.pk-pending.g.<i>`` with one core `Batch` (content flushed
   once, published, directory fsynced);
2. write the manifest ``{generation: g, commit: S, shards: N}`` with core's `write_bytes`:
   this one atomic rename is the commit point;
3. rename each pending file onto ``<i>.json`` and remove shards past ``N``; fsync the folder.

Opening a store (under the lock) finishes step 3 if the manifest names pending files that
are still there (roll forward) and deletes pending files the manifest does not name (a sync
that crashed before its commit point: roll back). A crash anywhere therefore leaves the old
state or the new one, and the cost of a sync is the changed shards plus one small file.

A sync that changes a single shard (the common case for a job that syncs as it goes) needs
no redo log: it announces the change in the manifest, then replaces the shard with one
atomic write; see `StoreFolder._commit_one`.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

from persistkit.core import (
    Batch,
    Durability,
    FileLock,
    fsync_dir,
    remove,
    rename,
    sweep,
    write_bytes,
)
from persistkit.tracker._lines import parse_shard
from persistkit.tracker.errors import IntegrityError, StoreMismatchError

MANIFEST_NAME = "persistkit-tracker.json"
LOCK_NAME = "persistkit-tracker.lock"
FORMAT_NAME = "persistkit-tracker"
FORMAT_VERSION = 1
HISTORY_LENGTH = 32
HISTORY_MAX_FILES = 64
_PENDING = re.compile(r"^\.pk-pending\.(\d+)\.(\d+)$")
_PLAIN_SHARD = re.compile(r"^(\d+)\.json$")
_GZIP_SHARD = re.compile(r"^(\d+)\.json\.gz$")

_locks: dict[str, FileLock] = {}
_locks_guard = threading.Lock()

Signature = tuple[int, int, int]


def store_lock(folder: str) -> FileLock:
    """Return this process's one `FileLock` for a store folder.

    flock(2) locks belong to open file descriptions, so two lock objects on one file in one
    process would block each other; sharing one object keeps the lock reentrant per thread.
    """
    with _locks_guard:
        lock = _locks.get(folder)
        if lock is None:
            lock = _locks[folder] = FileLock(os.path.join(folder, LOCK_NAME))
        return lock


@dataclass
class Manifest:
    """What the manifest file records about the last committed sync."""

    generation: int = 0
    shards: int = 0
    file_size: int = 1000
    gzipped: bool = False
    commit: list[int] = field(default_factory=list)
    history: list[tuple[int, list[int] | None]] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        """Return the manifest's JSON file content."""
        document = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "generation": self.generation,
            "shards": self.shards,
            "file_size": self.file_size,
            "gzipped": self.gzipped,
            "commit": self.commit,
            "history": [[generation, files] for generation, files in self.history],
        }
        return (json.dumps(document) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, path: str) -> Manifest:
        """Decode a manifest, raising `IntegrityError` if it is not one."""
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT_NAME:
                raise ValueError(f"format is {document.get('format')!r}")
            if document.get("version") != FORMAT_VERSION:
                raise ValueError(f"unsupported version {document.get('version')!r}")
            return cls(
                generation=int(document["generation"]),
                shards=int(document["shards"]),
                file_size=int(document["file_size"]),
                gzipped=bool(document["gzipped"]),
                commit=[int(i) for i in document["commit"]],
                history=[
                    (int(generation), None if files is None else [int(i) for i in files])
                    for generation, files in document["history"]
                ],
            )
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise IntegrityError(path, f"not a persistkit-tracker manifest: {error}") from None

    def changed_since(self, generation: int) -> set[int] | None:
        """Return the shards changed after ``generation``, or None when not known."""
        if generation == self.generation:
            return set()
        changed: set[int] = set()
        for committed, files in self.history:
            if committed <= generation:
                return changed
            if files is None:
                return None
            changed.update(files)
        return None


@dataclass
class ShardFile:
    """One shard as read from disk."""

    keys: list[Any]
    values: list[Any]
    signature: Signature | None


class StoreFolder:
    """The files of one store: reading shards, recovery and the atomic commit."""

    def __init__(self, folder: str, gzipped: bool) -> None:
        self.folder = folder
        self.gzipped = gzipped
        self.suffix = ".json.gz" if gzipped else ".json"
        self.manifest_path = os.path.join(folder, MANIFEST_NAME)
        self.lock = store_lock(folder)

    def close_lock(self) -> None:
        """Close the lock file's descriptor, unless the lock is held (it reopens on demand)."""
        with contextlib.suppress(RuntimeError):
            self.lock.close()

    def shard_path(self, index: int) -> str:
        """Return the path of shard ``index``."""
        return os.path.join(self.folder, f"{index}{self.suffix}")

    def pending_path(self, generation: int, index: int) -> str:
        """Return the path a sync of ``generation`` stages shard ``index`` under."""
        return os.path.join(self.folder, f".pk-pending.{generation}.{index}")

    # -- reading ---------------------------------------------------------------------------

    def read_manifest(self) -> Manifest | None:
        """Return the manifest, or None for a new store or one tastypy wrote."""
        try:
            with open(self.manifest_path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return None
        manifest = Manifest.from_bytes(data, self.manifest_path)
        if manifest.gzipped != self.gzipped:
            raise StoreMismatchError(
                f"the store {self.folder!r} was written with gzipped={manifest.gzipped}; "
                f"open it with gzipped={manifest.gzipped}"
            )
        return manifest

    def read_generation(self) -> int:
        """Return the committed generation (0 before the first sync)."""
        manifest = self.read_manifest()
        return 0 if manifest is None else manifest.generation

    def shard_count_without_manifest(self, file_size: int) -> int:
        """Count the shards of a store tastypy wrote, checking tastypy's own rules."""
        mine, other = (_GZIP_SHARD, _PLAIN_SHARD) if self.gzipped else (_PLAIN_SHARD, _GZIP_SHARD)
        names = os.listdir(self.folder)
        numbers = sorted(int(m.group(1)) for name in names if (m := mine.match(name)))
        if not numbers and any(other.match(name) for name in names):
            raise StoreMismatchError(
                f"the store {self.folder!r} holds {'plain' if self.gzipped else 'gzipped'} "
                f"files; open it with gzipped={not self.gzipped}"
            )
        for expected, number in enumerate(numbers):
            if number != expected:
                raise IntegrityError(
                    self.shard_path(expected),
                    f"file missing: found {number}{self.suffix} but not {expected}{self.suffix}",
                )
        return len(numbers)

    def read_shard(self, index: int) -> ShardFile:
        """Read and decode shard ``index``; a missing file raises `IntegrityError`."""
        path = self.shard_path(index)
        try:
            with open(path, "rb") as f:
                data = f.read()
                info = os.fstat(f.fileno())
        except FileNotFoundError:
            raise IntegrityError(path, "file missing (the manifest lists it)") from None
        signature = (info.st_ino, info.st_size, info.st_mtime_ns)
        text = self._decode(data, path)
        keys, values = parse_shard(text, path)
        return ShardFile(keys, values, signature)

    def read_lines(self, index: int, signature: Signature | None) -> list[str] | None:
        """Return shard ``index``'s lines if the file is still the one last seen, else None."""
        if signature is None:
            return None
        path = self.shard_path(index)
        try:
            with open(path, "rb") as f:
                info = os.fstat(f.fileno())
                if (info.st_ino, info.st_size, info.st_mtime_ns) != signature:
                    return None
                data = f.read()
        except FileNotFoundError:
            return None
        try:
            text = self._decode(data, path)
        except IntegrityError:
            return None
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()
        return lines

    def signature(self, index: int) -> Signature | None:
        """Return the identity (inode, size, mtime) of shard ``index`` as it is now."""
        try:
            info = os.stat(self.shard_path(index))
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def _decode(self, data: bytes, path: str) -> str:
        try:
            if self.gzipped:
                data = gzip.decompress(data)
            return data.decode("utf-8")
        except (OSError, EOFError, UnicodeDecodeError) as error:
            raise IntegrityError(path, f"cannot decode the file: {error}") from None

    def encode(self, text: str) -> bytes:
        """Return the bytes of a shard file holding ``text``."""
        data = text.encode("utf-8")
        # mtime=0 keeps equal content byte-identical, so an unchanged shard is never rewritten.
        return gzip.compress(data, mtime=0) if self.gzipped else data

    # -- recovery ----------------------------------------------------------------------------

    def recover(self, durability: Durability) -> Manifest | None:
        """Finish or undo an interrupted sync; the caller holds the lock.

        Returns:
            The manifest (None when the store has none yet).
        """
        manifest = self.read_manifest()
        names = os.listdir(self.folder)
        committed = set(manifest.commit) if manifest is not None else set()
        changed = False
        leftovers: list[str] = []
        for name in names:
            match = _PENDING.match(name)
            if match is None:
                continue
            generation, index = int(match.group(1)), int(match.group(2))
            pending = os.path.join(self.folder, name)
            if (
                manifest is not None
                and generation == manifest.generation
                and index in committed
                and index < manifest.shards
            ):
                rename(pending, self.shard_path(index), durability="atomic")
                changed = True
            else:
                leftovers.append(pending)
        for pending in leftovers:
            remove(pending, durability="atomic", missing_ok=True)
            changed = True
        if manifest is not None:
            pattern = _GZIP_SHARD if self.gzipped else _PLAIN_SHARD
            for name in names:
                match = pattern.match(name)
                if match is not None and int(match.group(1)) >= manifest.shards:
                    remove(os.path.join(self.folder, name), durability="atomic", missing_ok=True)
                    changed = True
        if changed and durability == "durable":
            fsync_dir(self.folder)
        with contextlib.suppress(OSError):
            # Every write here happens under the store lock, which we hold: a temporary file
            # is a dead writer's however young it is (sweep still checks its flock).
            sweep(self.folder, min_age=0)
        return manifest

    # -- the commit ----------------------------------------------------------------------------

    def commit(
        self,
        files: dict[int, bytes],
        *,
        shards: int,
        known_shards: int,
        file_size: int,
        durability: Durability,
    ) -> Manifest:
        """Replace the given shards and set the shard count, all or nothing.

        The caller holds the lock. When this returns the new state is committed, and with
        ``durability="durable"`` it survives power loss. If it raises before the commit
        point, the old state is intact; after it, recovery completes the new state.

        Args:
            files: new content by shard index.
            shards: the number of shards after the commit (higher ones are removed).
            known_shards: how many shard files the caller last saw on disk (used when the
                store has no manifest yet, i.e. a store tastypy wrote).
            file_size: recorded in the manifest, for information.
            durability: ``"durable"`` or ``"atomic"``.

        Returns:
            The new manifest.
        """
        previous = self.recover_if_needed(durability)
        generation = (previous.generation if previous is not None else 0) + 1
        old_shards = previous.shards if previous is not None else known_shards
        history = previous.history[: HISTORY_LENGTH - 1] if previous is not None else []
        order = sorted(files)
        if len(order) == 1 and (shards == old_shards or order[0] == old_shards == shards - 1):
            return self._commit_one(
                index=order[0],
                data=files[order[0]],
                grows=shards != old_shards,
                shards=shards,
                file_size=file_size,
                history=history,
                generation=generation,
                durability=durability,
            )
        pending = {index: self.pending_path(generation, index) for index in order}
        try:
            with Batch(durability=durability) as batch:
                for index in order:
                    batch.write_bytes(pending[index], files[index])
            history_entry = order if len(order) <= HISTORY_MAX_FILES else None
            if shards < old_shards:
                history_entry = None
            manifest = Manifest(
                generation=generation,
                shards=shards,
                file_size=file_size,
                gzipped=self.gzipped,
                commit=order,
                history=[(generation, history_entry), *history],
            )
            write_bytes(self.manifest_path, manifest.to_bytes(), durability=durability)
        except BaseException:
            for path in pending.values():
                with contextlib.suppress(OSError):
                    remove(path, durability="atomic", missing_ok=True)
            raise
        self._needs_recovery = True
        for index in order:
            rename(pending[index], self.shard_path(index), durability="atomic")
        for index in range(shards, old_shards):
            remove(self.shard_path(index), durability="atomic", missing_ok=True)
        if durability == "durable":
            fsync_dir(self.folder)
        self._needs_recovery = False
        return manifest

    _needs_recovery = False

    def _commit_one(
        self,
        *,
        index: int,
        data: bytes,
        grows: bool,
        shards: int,
        file_size: int,
        history: list[tuple[int, list[int] | None]],
        generation: int,
        durability: Durability,
    ) -> Manifest:
        """Commit a change to one shard: one atomic file write needs no redo log.

        The manifest goes first, announcing that shard ``index`` changes in ``generation``,
        then the shard is replaced. If the process dies in between, the shard still holds
        its old content and readers that re-read it because of the announcement find just
        that: the old state. The manifest needs no fsync: its generation only tells live
        processes what to re-read, and a power loss leaves none alive.

        A new last shard (the store grows by one file) goes the other way round: the file
        first, invisible while the manifest's shard count excludes it (recovery removes such
        a file), then the manifest, durably, since the count is what publishes the file.
        """
        manifest = Manifest(
            generation=generation,
            shards=shards,
            file_size=file_size,
            gzipped=self.gzipped,
            commit=[],
            history=[(generation, [index]), *history],
        )
        if grows:
            write_bytes(self.shard_path(index), data, durability=durability)
            write_bytes(self.manifest_path, manifest.to_bytes(), durability=durability)
        else:
            write_bytes(self.manifest_path, manifest.to_bytes(), durability="atomic")
            write_bytes(self.shard_path(index), data, durability=durability)
        return manifest

    def recover_if_needed(self, durability: Durability) -> Manifest | None:
        """Return the manifest, first finishing a commit this process left half done."""
        if self._needs_recovery:
            manifest = self.recover(durability)
            self._needs_recovery = False
            return manifest
        return self.read_manifest()
