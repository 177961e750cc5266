"""A store folder on disk: tastypy's shard files plus a manifest that makes checkpoints atomic.

The journal of syncs since the last checkpoint is `_state`'s; here are the files it is
checkpointed into, and the manifest's ``journal`` field: the journal position the shards hold.

Layout (``N`` shards)::

    0.json ... N-1.json          tastypy's files (``.json.gz`` when gzipped)
    persistkit-tracker.json      the manifest: generation, and what every shard must hold
    persistkit-tracker.lock      the flock that serialises writers (never deleted)
    .pk-pending.<gen>.<i>        a shard's next content, only while a sync runs

The manifest records, for each shard, its line count, a CRC-32 of its text and a CRC-32 of
its list of keys (a `ShardRecord`). Opening a store checks every shard against its record:

- the text matches: the file is the one persistkit wrote;
- fewer lines than recorded, or other keys in the recorded lines: the file was truncated,
  emptied or replaced. tastypy never removes a line, so this is damage: `IntegrityError`
  naming the file, and nothing is written;
- the recorded keys are all there, in order, with other values or more lines after them:
  tastypy changed values or added keys (the two things tastypy does to a store). The file is
  adopted as it is.

Numbered shard files past the manifest's count are tastypy's new shards: adopted when they
follow on without a gap, `IntegrityError` naming the missing file otherwise. Only files
persistkit wrote itself are ever removed: its pending files, core's temporary files, and
shards it dropped in a sync whose text still matches the manifest's record of them.

A sync of generation ``g`` that changes several shards ``S`` (the commit protocol, a redo log
whose log records are the new files themselves):

1. write every changed shard to ``.pk-pending.g.<i>`` with one core `Batch` (content flushed
   once, published, directory fsynced);
2. write the manifest ``{generation: g, commit: S, shards: [...]}`` durably with core's
   `write_bytes`: this one atomic rename is the commit point;
3. rename each pending file onto ``<i>.json`` and remove shards past the new count; fsync the
   folder.

Opening a store (under the lock) finishes step 3 if the manifest names pending files that
are still there (roll forward) and deletes pending files the manifest does not name (a sync
that crashed before its commit point: roll back). A store on read-only media is read the
same way without writing: the pending files the manifest names are read in place of their
shards. A crash anywhere therefore leaves the old state or the new one.

Every commit takes this path, also for a single shard: the manifest also records the journal
position the new shards hold, and after the commit point only the new shards may be seen
(a shard left old would skip the records its new content holds).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import json
import os
import re
import zlib
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
from persistkit.tracker._lines import Key, encode_keys, parse_shard
from persistkit.tracker.errors import IntegrityError, ReadOnlyStoreError, StoreMismatchError

MANIFEST_NAME = "persistkit-tracker.json"
LOCK_NAME = "persistkit-tracker.lock"
FORMAT_NAME = "persistkit-tracker"
JOURNAL_NAME = "persistkit-tracker.journal"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
HISTORY_LENGTH = 32
HISTORY_MAX_FILES = 64
_PENDING = re.compile(r"^\.pk-pending\.(\d+)\.(\d+)$")
# tastypy names shard i exactly "<i>.json"; "01.json" is not a shard of anyone's.
_PLAIN_SHARD = re.compile(r"^(0|[1-9][0-9]*)\.json$")
_GZIP_SHARD = re.compile(r"^(0|[1-9][0-9]*)\.json\.gz$")

Signature = tuple[int, int, int]


def find_store(folder: str) -> bool | None:
    """Tell whether ``folder`` holds a store: None if not, else whether it is gzipped.

    Reads only the folder listing and, where there is one, the manifest. A store whose
    syncs are all still in its journal (no checkpoint yet) has no shard to be gzipped.
    """
    names = os.listdir(folder)
    if MANIFEST_NAME in names:
        try:
            with open(os.path.join(folder, MANIFEST_NAME), "rb") as f:
                document = json.loads(f.read())
            return bool(document["gzipped"])
        except (OSError, ValueError, KeyError, TypeError):
            return False  # opening it reports what is wrong with the manifest
    if any(_PLAIN_SHARD.match(name) for name in names):
        return False
    if any(_GZIP_SHARD.match(name) for name in names):
        return True
    if JOURNAL_NAME in names:
        return False
    return None


@dataclass(frozen=True)
class ShardRecord:
    """What one shard file holds, as recorded in the manifest.

    Attributes:
        lines: the number of key-value lines.
        text_crc: CRC-32 of the file's UTF-8 text (after gunzip).
        keys_crc: CRC-32 of the JSON list of its keys, in file order.
    """

    lines: int
    text_crc: int
    keys_crc: int

    @classmethod
    def of(cls, text: bytes, keys: list[Key]) -> ShardRecord:
        """Return the record of a shard whose text is ``text`` and keys ``keys``."""
        return cls(len(keys), zlib.crc32(text), keys_crc(keys))

    def to_json(self) -> list[int]:
        """Return the record as the manifest stores it."""
        return [self.lines, self.text_crc, self.keys_crc]

    @classmethod
    def from_json(cls, value: Any) -> ShardRecord:
        """Decode a record written by `to_json`."""
        lines, text_crc, keys = value
        return cls(int(lines), int(text_crc), int(keys))


def keys_crc(keys: list[Key]) -> int:
    """Return the CRC-32 of ``keys`` as one canonical JSON list."""
    return zlib.crc32(encode_keys(keys).encode())


@dataclass
class Manifest:
    """What the manifest file records about the last committed sync.

    ``records`` holds one `ShardRecord` per shard (None for each shard of a version 1
    manifest, which recorded only their number). ``commit`` names the shards whose pending
    files the sync renames into place. ``alternative`` was set by a one-shard sync of format 2
    (read, no longer written): that shard
    may still hold its previous content (a record, or None when the shard is new). ``drop``
    records the shards past the new count that the sync removes. ``journal`` is the journal
    position the shards hold every record up to (None: replay the whole journal).
    """

    generation: int = 0
    records: list[ShardRecord | None] = field(default_factory=list)
    file_size: int = 1000
    gzipped: bool = False
    commit: list[int] = field(default_factory=list)
    alternative: tuple[int, ShardRecord | None] | None = None
    drop: dict[int, ShardRecord] = field(default_factory=dict)
    history: list[tuple[int, list[int] | None]] = field(default_factory=list)
    journal: int | None = None

    @property
    def shards(self) -> int:
        """The number of shards the manifest lists."""
        return len(self.records)

    def to_bytes(self) -> bytes:
        """Return the manifest's JSON file content."""
        document: dict[str, Any] = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "generation": self.generation,
            "file_size": self.file_size,
            "gzipped": self.gzipped,
            "shards": [None if r is None else r.to_json() for r in self.records],
            "commit": self.commit,
            "history": [[generation, files] for generation, files in self.history],
            "journal": self.journal,
        }
        if self.alternative is not None:
            index, record = self.alternative
            document["alternative"] = [index, None if record is None else record.to_json()]
        if self.drop:
            document["drop"] = [[index, *record.to_json()] for index, record in self.drop.items()]
        return (json.dumps(document) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes, path: str) -> Manifest:
        """Decode a manifest, raising `IntegrityError` if it is not one."""
        try:
            document = json.loads(data)
            if document.get("format") != FORMAT_NAME:
                raise ValueError(f"format is {document.get('format')!r}")
            version = document.get("version")
            if version not in READABLE_VERSIONS:
                raise ValueError(f"unsupported version {version!r}")
            shards = document["shards"]
            records: list[ShardRecord | None]
            if version == 1:
                records = [None] * int(shards)
            else:
                records = [None if r is None else ShardRecord.from_json(r) for r in shards]
            alternative = None
            if "alternative" in document:
                index, record = document["alternative"]
                alternative = (
                    int(index),
                    None if record is None else ShardRecord.from_json(record),
                )
            return cls(
                generation=int(document["generation"]),
                records=records,
                file_size=int(document["file_size"]),
                gzipped=bool(document["gzipped"]),
                commit=[int(i) for i in document["commit"]],
                alternative=alternative,
                drop={
                    int(entry[0]): ShardRecord.from_json(entry[1:])
                    for entry in document.get("drop", [])
                },
                history=[
                    (int(generation), None if files is None else [int(i) for i in files])
                    for generation, files in document["history"]
                ],
                journal=None if document.get("journal") is None else int(document["journal"]),
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
    """One shard as read from disk.

    Attributes:
        keys: its keys, in file order.
        values: their values.
        signature: (inode, size, mtime) of the file read, to tell later if it changed.
        record: what the file holds, as the manifest records it.
        adopted: the file was changed by another program (tastypy) since persistkit wrote it.
        path: the file read (a shard, or a pending file standing in for one).
    """

    keys: list[Any]
    values: list[Any]
    signature: Signature | None
    record: ShardRecord
    adopted: bool = False
    path: str = ""


@dataclass
class Layout:
    """Which file holds each shard of a store, as found on disk.

    Attributes:
        manifest: the manifest (None for a new store or one tastypy wrote).
        sources: the file to read for each shard, in order.
        expected: what each listed shard must hold (None: not recorded).
        alternatives: a record each shard may hold instead (a one-shard sync's old content).
        optional: the index of a last shard that may be missing (a new shard announced by a
            one-shard sync that did not happen), or None.
    """

    manifest: Manifest | None
    sources: list[str]
    expected: list[ShardRecord | None]
    alternatives: dict[int, ShardRecord]
    optional: int | None


class StoreFolder:
    """The files of one store: reading shards, recovery and the atomic commit."""

    def __init__(self, folder: str, gzipped: bool, *, read_only: bool = False) -> None:
        self.folder = folder
        self.gzipped = gzipped
        self.read_only = read_only
        self.suffix = ".json.gz" if gzipped else ".json"
        self.manifest_path = os.path.join(folder, MANIFEST_NAME)
        # A reader takes a shared lock, and only where the lock file exists: on read-only
        # media (a backup, a snapshot) it cannot be created, and no writer can be running.
        self.lock = FileLock.for_path(
            os.path.join(folder, LOCK_NAME), shared=read_only, create=not read_only
        )

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

    def refuse_writes(self) -> None:
        """Raise `ReadOnlyStoreError` if this store was opened for reading only."""
        if self.read_only:
            raise ReadOnlyStoreError(
                errno.EROFS,
                "the store was opened for reading only; it cannot be synced",
                self.folder,
            )

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

    def _shard_numbers(self, names: list[str]) -> list[int]:
        mine, other = (_GZIP_SHARD, _PLAIN_SHARD) if self.gzipped else (_PLAIN_SHARD, _GZIP_SHARD)
        numbers = sorted(int(m.group(1)) for name in names if (m := mine.match(name)))
        if not numbers and any(other.match(name) for name in names):
            raise StoreMismatchError(
                f"the store {self.folder!r} holds {'plain' if self.gzipped else 'gzipped'} "
                f"files; open it with gzipped={not self.gzipped}"
            )
        return numbers

    def layout(self, manifest: Manifest | None) -> Layout:
        """Find the file of every shard: the manifest's, then tastypy's additions after them.

        Pending files the manifest names stand in for their shards (a commit not yet rolled
        forward, read in place on read-only media). Files past the manifest's count that
        match its record of a dropped shard are persistkit's own leftovers and are skipped.

        Raises:
            IntegrityError: a shard the manifest lists is missing, or the numbered files
                past it have a gap.
        """
        names = os.listdir(self.folder)
        present = set(names)
        numbers = self._shard_numbers(names)
        listed = manifest.shards if manifest is not None else 0
        sources: list[str] = []
        expected: list[ShardRecord | None] = []
        alternatives: dict[int, ShardRecord] = {}
        optional = None
        if manifest is not None:
            committed = set(manifest.commit)
            for index in range(listed):
                pending = f".pk-pending.{manifest.generation}.{index}"
                if index in committed and pending in present:
                    sources.append(os.path.join(self.folder, pending))
                else:
                    sources.append(self.shard_path(index))
            expected = list(manifest.records)
            if manifest.alternative is not None:
                index, old = manifest.alternative
                if old is not None:
                    alternatives[index] = old
                elif index == listed - 1:
                    optional = index
        extra = [number for number in numbers if number >= listed]
        if manifest is not None and manifest.drop:
            extra = [n for n in extra if not self._is_dropped(n, manifest.drop.get(n))]
        for expected_number, number in enumerate(extra, listed):
            if number != expected_number:
                raise IntegrityError(
                    self.shard_path(expected_number),
                    f"file missing: found {number}{self.suffix} but not "
                    f"{expected_number}{self.suffix}",
                )
            sources.append(self.shard_path(number))
            expected.append(None)
        return Layout(manifest, sources, expected, alternatives, optional)

    def _is_dropped(self, index: int, record: ShardRecord | None) -> bool:
        if record is None:
            return False
        try:
            with open(self.shard_path(index), "rb") as f:
                data = f.read()
            return zlib.crc32(self._decode(data, self.shard_path(index)).encode()) == (
                record.text_crc
            )
        except (OSError, IntegrityError):
            return False

    def read_shard(
        self,
        path: str,
        expected: ShardRecord | None,
        alternative: ShardRecord | None = None,
    ) -> ShardFile:
        """Read and decode one shard file and check it against the manifest's record.

        Args:
            path: the file (a shard, or a pending file standing in for one).
            expected: what the manifest says the file holds (None: nothing recorded).
            alternative: another record the file may match (a one-shard sync's old content).

        Raises:
            IntegrityError: the file is missing, cannot be decoded, or holds less than, or
                other keys than, the manifest records.
        """
        try:
            with open(path, "rb") as f:
                data = f.read()
                info = os.fstat(f.fileno())
        except FileNotFoundError:
            raise IntegrityError(path, "file missing (the manifest lists it)") from None
        signature = (info.st_ino, info.st_size, info.st_mtime_ns)
        text = self._decode(data, path)
        raw = text.encode() if self.gzipped else data
        keys, values = parse_shard(text, path)
        crc = zlib.crc32(raw)
        for record in (expected, alternative):
            if record is not None and crc == record.text_crc and len(keys) == record.lines:
                return ShardFile(keys, values, signature, record, path=path)
        record = ShardRecord(len(keys), crc, keys_crc(keys))
        if expected is None:
            return ShardFile(keys, values, signature, record, path=path)
        candidates = [r for r in (expected, alternative) if r is not None]
        for candidate in candidates:
            if len(keys) >= candidate.lines and (
                keys_crc(keys[: candidate.lines]) == candidate.keys_crc
            ):
                # Every key persistkit wrote is there, in order: values changed or lines
                # added after them, as tastypy changes a store.
                return ShardFile(keys, values, signature, record, adopted=True, path=path)
        if all(len(keys) < candidate.lines for candidate in candidates):
            raise IntegrityError(
                path,
                f"holds {len(keys)} lines where persistkit wrote {expected.lines}: the file "
                "was truncated or emptied (restore it from a backup; nothing was changed)",
            )
        raise IntegrityError(
            path,
            "its keys are not the ones persistkit wrote: the file was replaced or damaged "
            "(restore it from a backup; nothing was changed)",
        )

    def read_lines(self, path: str, signature: Signature | None) -> list[str] | None:
        """Return a shard file's lines if it is still the file last seen, else None."""
        if signature is None:
            return None
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

    def encode_raw(self, data: bytes) -> bytes:
        """Return the bytes of a shard file whose UTF-8 text is ``data``."""
        # mtime=0 keeps equal content byte-identical, so an unchanged shard is never rewritten.
        return gzip.compress(data, mtime=0) if self.gzipped else data

    # -- recovery ----------------------------------------------------------------------------

    def recover(self, durability: Durability) -> Manifest | None:
        """Finish or undo an interrupted sync; the caller holds the lock.

        Only persistkit's own files are touched: committed pending files are renamed onto
        their shards, other pending files and core's temporary files are removed, and shards
        a sync dropped are removed if they still hold exactly what the manifest recorded.

        Returns:
            The manifest (None when the store has none yet).
        """
        self.refuse_writes()
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
            for index, record in manifest.drop.items():
                if index >= manifest.shards and self._is_dropped(index, record):
                    remove(self.shard_path(index), durability="atomic", missing_ok=True)
                    changed = True
        if changed and durability == "durable":
            fsync_dir(self.folder)
        with contextlib.suppress(OSError):
            # Every write here happens under the store lock, which we hold: a temporary file
            # is a dead writer's however young it is (sweep still checks its flock).
            sweep(self.folder, min_age=0)
        return manifest

    def unfinished(self, manifest: Manifest) -> bool:
        """Tell whether a sync committed in ``manifest`` left renames or removals undone."""
        return any(
            os.path.exists(self.pending_path(manifest.generation, index))
            for index in manifest.commit
        ) or any(os.path.exists(self.shard_path(index)) for index in manifest.drop)

    # -- the commit ----------------------------------------------------------------------------

    def commit(
        self,
        files: dict[int, tuple[bytes, ShardRecord]],
        records: list[ShardRecord],
        disk: list[ShardRecord],
        *,
        file_size: int,
        journal: int | None,
        durability: Durability,
    ) -> Manifest:
        """Replace the given shards and set the shard count, all or nothing.

        The caller holds the lock. When this returns the new state is committed, and with
        ``durability="durable"`` it survives power loss. If it raises before the commit
        point, the old state is intact; after it, recovery completes the new state.

        Args:
            files: new content (and its record) by shard index.
            records: what every shard holds after the commit, in order.
            disk: what every shard file holds now, in order (tastypy's additions included);
                those past ``len(records)`` are removed.
            file_size: recorded in the manifest, for information.
            journal: the journal position the new shards hold every record up to.
            durability: ``"durable"`` or ``"atomic"``.

        Returns:
            The new manifest.
        """
        self.refuse_writes()
        previous = self.recover_if_needed(durability)
        generation = (previous.generation if previous is not None else 0) + 1
        history = previous.history[: HISTORY_LENGTH - 1] if previous is not None else []
        order = sorted(files)
        drop = {index: disk[index] for index in range(len(records), len(disk))}
        history_entry = order if len(order) <= HISTORY_MAX_FILES and not drop else None
        manifest = Manifest(
            generation=generation,
            records=list(records),
            file_size=file_size,
            gzipped=self.gzipped,
            commit=order,
            drop=drop,
            history=[(generation, history_entry), *history],
            journal=journal,
        )
        pending = {index: self.pending_path(generation, index) for index in order}
        try:
            with Batch(durability=durability) as batch:
                for index in order:
                    batch.write_bytes(pending[index], files[index][0])
        except BaseException:
            self._discard(pending.values())
            raise
        self._needs_recovery = True
        try:
            write_bytes(self.manifest_path, manifest.to_bytes(), durability=durability)
        except BaseException:
            # A failure after the manifest's rename (in its directory fsync) has passed the
            # commit point: then the pending files stay and recovery rolls them forward.
            with contextlib.suppress(Exception):
                on_disk = self.read_manifest()
                if on_disk is None or on_disk.generation != generation:
                    self._discard(pending.values())
                    self._needs_recovery = False
            raise
        for index in order:
            rename(pending[index], self.shard_path(index), durability="atomic")
        for index in drop:
            remove(self.shard_path(index), durability="atomic", missing_ok=True)
        if durability == "durable":
            fsync_dir(self.folder)
        if drop:
            # Forget the dropped shards' records, so a file another program creates later
            # under one of their names is never taken for persistkit's leftover.
            manifest.drop = {}
            manifest.commit = []
            write_bytes(self.manifest_path, manifest.to_bytes(), durability=durability)
        self._needs_recovery = False
        return manifest

    _needs_recovery = False

    @staticmethod
    def _discard(paths: Any) -> None:
        for path in paths:
            with contextlib.suppress(OSError):
                remove(path, durability="atomic", missing_ok=True)

    def recover_if_needed(self, durability: Durability) -> Manifest | None:
        """Return the manifest, first finishing a commit this process left half done."""
        if self._needs_recovery:
            manifest = self.recover(durability)
            self._needs_recovery = False
            return manifest
        return self.read_manifest()
