"""The sync engine: one store's content in memory, and how changes reach its files.

A store is its shard files (tastypy's format: the *checkpoint*) plus a journal of what
changed since (core's `Journal`, ``persistkit-tracker.journal``). A sync of a few keys is one
journal record, made durable by one shared ``fdatasync``; the shards are rewritten only at a
checkpoint (a sync of many keys, a journal grown past `CHECKPOINT_BYTES`, `close`, exit), so
a closed store is plain tastypy files.

A record holds one sync's changes as UTF-8 lines, applied in order::

    T1                                  the record format
    C                                   every key removed (clear)
    D <TAB> json(key)                   a key removed
    S <TAB> shard <TAB> json(key) <TAB> json(value)
                                        a key set; a key not present is appended to the end
                                        of shard ``shard``, so every process lays keys out
                                        exactly as the writer did
    K <TAB> generation                  a checkpoint of that generation starts here

Replaying records that a checkpoint already holds would move re-added keys; the manifest
therefore records the journal position its shards hold (``journal``), and opening replays
only what follows it. The checkpoint:

1. under the store lock, append a ``K`` record and flush the journal to its end ``L``
   (write-ahead: nothing replaces a shard before the records it holds are durable, and ``L``
   never points past what a power cut leaves of the journal);
2. write the shards changed since the last checkpoint and a manifest holding ``L`` with the
   commit protocol of `StoreFolder.commit` (always durable: a shard never becomes a file
   whose data was not flushed);
3. recycle the journal up to ``L``. A crash before this leaves records the manifest says the
   shards hold: they are skipped.

Processes sharing a store (`SharedPOD`) take the store lock for every operation and catch up:
nothing to do when the journal ends where they last looked (one read of shared memory);
otherwise the new records are applied, unless a checkpoint happened (the journal was recycled
past them, or a ``K`` record of a newer generation is among them): then the shards the
manifest names as changed are read again and only the records after its ``L`` applied. They
change memory and append one record before letting go. Their flushes happen outside the lock,
so concurrent commits share them.
"""

from __future__ import annotations

import errno
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from persistkit.core import Durability, Journal, JournalRecord
from persistkit.core.errors import InvalidArgumentError, SerializationError
from persistkit.tracker._lines import (
    Key,
    decode_key,
    encode_key,
    encode_line_keeping,
    encode_lines,
)
from persistkit.tracker._model import MemoryModel, Shard
from persistkit.tracker._shards import (
    JOURNAL_NAME,
    Manifest,
    ShardRecord,
    Signature,
    StoreFolder,
)
from persistkit.tracker.errors import IntegrityError

CHECKPOINT_KEYS = 1000
"""A sync that changes this many keys writes the shards instead of a journal record."""

CHECKPOINT_BYTES = 768 * 1024
"""A journal holding this many bytes of records is checkpointed (it is created at 1 MiB)."""

LARGE_RECORD = 256 * 1024
"""A sync whose record would be this large writes the shards instead (values written once)."""

_RECORD_FORMAT = "T1"
_CHECKPOINT_PREFIX = b"T1\nK\t"
_LINE_CACHE = 16
_decode_value = json.JSONDecoder().decode
_VALUE_CACHE = 256
_value_cache: dict[str, dict[str, Any]] = {}
_SCALARS = (str, int, float, bool, type(None))


def _decode_record_value(column: str) -> Any:
    """Decode a record's value column; a flat object of scalars (any task) is cached.

    Catching up with other processes decodes a value per record, and a tracker's records
    spell a handful of task values over and over.
    """
    cached = _value_cache.get(column)
    if cached is not None:
        return cached.copy()
    value = _decode_value(column)
    if type(value) is dict and all(type(item) in _SCALARS for item in value.values()):
        if len(_value_cache) >= _VALUE_CACHE:
            _value_cache.clear()
        _value_cache[column] = value.copy()
    return value


# One Journal object per journal file (and mode) in this process, shared by every store
# object on it and closed when the last one closes. A Journal is never left for the garbage
# collector to close: its finalizer can run inside another Journal's open and deadlock there.
# An entry is reused only while the path still names the file it opened (a store folder
# removed and made again gets a journal of its own).
_journals: dict[tuple[str, bool], tuple[Journal, tuple[int, int]]] = {}
_journal_users: dict[int, int] = {}  # id(journal): how many store objects use it
_journals_guard = threading.Lock()


def _identity(path: str) -> tuple[int, int]:
    info = os.stat(path)
    return (info.st_dev, info.st_ino)


def _open_journal(path: str, readonly: bool) -> Journal:
    with _journals_guard:
        entry = _journals.get((path, readonly))
        if entry is None or entry[1] != _identity(path):
            journal = Journal(path, readonly=readonly)
            entry = _journals[path, readonly] = (journal, _identity(path))
        journal = entry[0]
        _journal_users[id(journal)] = _journal_users.get(id(journal), 0) + 1
        return journal


def _release_journal(journal: Journal) -> None:
    with _journals_guard:
        users = _journal_users.pop(id(journal), 1) - 1
        if users > 0:
            _journal_users[id(journal)] = users
            return
        key = (journal.path, journal.readonly)
        entry = _journals.get(key)
        if entry is not None and entry[0] is journal:
            del _journals[key]
    journal.close()


@dataclass(slots=True)
class _FileLines:
    """A shard file's lines as last read, and (built when first needed) each key's line."""

    signature: Signature
    lines: list[str]
    positions: dict[Key, int] | None = None


@dataclass
class Changes:
    """One sync's changes, in the order a record replays them."""

    cleared: bool = False
    deleted: list[Key] = field(default_factory=list)
    sets: list[tuple[int, Key, str]] = field(default_factory=list)  # (shard, key, line)

    def __bool__(self) -> bool:
        return self.cleared or bool(self.deleted) or bool(self.sets)

    def record(self) -> bytes:
        """Return the journal record of these changes."""
        lines = [_RECORD_FORMAT]
        if self.cleared:
            lines.append("C")
        lines.extend(f"D\t{encode_key(key)}" for key in self.deleted)
        lines.extend(f"S\t{index}\t{line}" for index, _key, line in self.sets)
        return "\n".join(lines).encode("utf-8")


class StoreState(MemoryModel):
    """One store on a folder: its content in memory, shared by the POD objects that are clones.

    At sync each pending key's line is encoded and compared with its durable line (its last
    journal record's, else its shard file's), so a key that was only read costs no write.

    ``journaled`` maps each key set by a journal record since the last checkpoint to its line,
    and ``dirty`` holds the shards that differ from their files: the next checkpoint writes
    them.
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
        super().__init__(folder, file_size=file_size)
        self.files = StoreFolder(folder, gzipped, read_only=read_only)
        self.gzipped = gzipped
        self.durability: Durability = durability
        self.journal_path = os.path.join(folder, JOURNAL_NAME)
        self.journal: Journal | None = None
        self.disk_shards = 0
        self.journaled: dict[Key, str] = {}
        self.generation = 0
        self.manifest_signature: Signature | None = None
        self.seen = 0  # the journal position every record before which is applied
        self.deferred: list[JournalRecord] = []  # read, not applied yet; see `refresh`
        # The end of this object's last record. Never reset: flushing up to a position that is
        # durable already costs one read of shared memory, and threads of a shared store may
        # append while another flushes.
        self.unflushed: int | None = None
        self.shared = False
        self.stale = False  # memory may differ from what was shared: read it all again
        self._line_cache: OrderedDict[int, _FileLines] = OrderedDict()

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the whole store: the shards, then the journal records that follow them.

        A sync interrupted before its commit point is undone first, one interrupted after it
        finished (on read-only media both are read as the disk says, nothing is written).

        Raises:
            IntegrityError: a shard is missing, undecodable, or holds less than (or other
                keys than) the manifest records; nothing is written.
            CorruptJournalError: a journal record that was durable is damaged.
        """
        files = self.files
        with files.lock:
            # Reading only: a commit left half done is read as committed, not finished.
            manifest = files.read_manifest() if files.read_only else files.recover(self.durability)
            self.manifest_signature = self._manifest_signature()
            layout = files.layout(manifest)
            values: dict[Key, Any] = {}
            shard_of: dict[Key, int] = {}
            shards: list[Shard] = []
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
                shards.append(Shard.read(shard))
            self.values, self.shard_of, self.shards = values, shard_of, shards
            self.disk_shards = len(shards)
            self.generation = manifest.generation if manifest is not None else 0
            self.forget_changes()
            self.journaled.clear()
            self.dirty.clear()
            self.counts = None
            self._line_cache.clear()
            self.deferred.clear()
            self._open_journal(manifest)

    def _open_journal(self, manifest: Manifest | None) -> None:
        """Open the journal if there is one and apply the records the shards do not hold."""
        covered = manifest.journal if manifest is not None else None
        if self.journal is None:
            if not os.path.exists(self.journal_path):
                self.seen = 0
                if covered is not None and not self.files.read_only:
                    # The journal the manifest knew is gone (deleted, or a copy without
                    # it): a new one starts at 0, which the manifest must not skip.
                    self.checkpoint(journal_lost=True)
                return
            self.journal = _open_journal(self.journal_path, self.files.read_only)
            self.unflushed = None
        journal = self.journal
        with journal.lock():
            start, end = journal.start, journal.end
            # A position past the end belongs to a journal that is not this one.
            after = covered if covered is not None and start <= covered <= end else start
            self.seen = after
            self._catch_up(journal)

    def _catch_up(self, journal: Journal, key: Key | None = None) -> None:
        """Apply the records after `seen`; the caller holds the store's lock.

        If another process checkpointed meanwhile (the journal was recycled past `seen`, or
        a checkpoint record of a newer generation follows it), the shards it changed are read
        again first and only the records after the manifest's position are applied.

        With ``key``, an existing key that is all the coming operation touches, records that
        only set other keys are kept in `deferred` instead, for `apply_deferred` to apply
        once the store's lock is let go.
        """
        if journal.end == self.seen:
            return
        if self.seen < journal.start:
            self._reload_after_checkpoint(journal)
        records = journal.records(after=self.seen)
        newer = any(self._newer_checkpoint(record.data) for record in records)
        if newer and self._reload_after_checkpoint(journal):
            records = journal.records(after=self.seen)
        if key is not None and records and self._only_others(records, key):
            self.deferred.extend(records)
            self.seen = records[-1].end
            return
        for record in records:
            self._apply(record.data, record.lsn)
            self.seen = record.end

    def _only_others(self, records: list[JournalRecord], key: Key) -> bool:
        """Whether ``records`` only set keys other than ``key``, which exists."""
        if key not in self.values:
            return False  # it may be among them, and adding it needs every record applied
        # A set line is "S <tab> shard <tab> key <tab> value", and JSON holds no raw tab, so
        # the key column between tabs is found only where a line sets it (or, harmlessly,
        # where a shard number reads like it).
        column = f"\t{encode_key(key)}\t".encode()
        return not any(
            column in record.data
            or b"\nD\t" in record.data
            or b"\nC" in record.data
            or b"\nK" in record.data
            for record in records
        )

    def apply_deferred(self) -> None:
        """Apply the records `refresh` deferred, after the operation that deferred them.

        They set only keys that operation did not touch, so applying them after it gives
        what applying them first would have.
        """
        deferred, self.deferred = self.deferred, []
        if self.stale:
            return  # everything is read again at the next refresh
        try:
            for record in deferred:
                self._apply(record.data, record.lsn)
        except BaseException:
            self.stale = True  # memory holds part of them: the next refresh reads it all
            raise

    def catch_up_early(self) -> None:
        """Apply what other processes shared before this one waits for the store's lock.

        A record never changes once appended, so applying it needs no store lock. Done while
        another process holds the lock, it leaves `refresh` (which every other process waits
        for) only the records appended meanwhile. A checkpoint, whether a recycled journal or
        its record, is left to `refresh`.
        """
        journal = self.journal
        if self.stale or journal is None or not journal.start <= self.seen < journal.end:
            return
        try:
            records = journal.records(after=self.seen)
        except InvalidArgumentError:
            return  # recycled meanwhile: `refresh` reads the checkpoint
        for record in records:
            if record.data.startswith(_CHECKPOINT_PREFIX):
                return
            self._apply(record.data, record.lsn)
            self.seen = record.end

    def _newer_checkpoint(self, data: bytes) -> bool:
        if not data.startswith(_CHECKPOINT_PREFIX):
            return False
        return int(data[len(_CHECKPOINT_PREFIX) :]) > self.generation

    def _reload_after_checkpoint(self, journal: Journal) -> bool:
        """Take in a checkpoint another process made; False if there was none after all.

        The shards the manifest names as changed since this process's generation are read
        again (all of them if it does not know), and `seen` moves to the manifest's position.
        """
        manifest = self.files.read_manifest()
        self.manifest_signature = self._manifest_signature()
        current = manifest.generation if manifest is not None else 0
        if current == self.generation and self.seen >= journal.start:
            return False  # a checkpoint record of an attempt that did not commit
        if manifest is None:  # pragma: no cover - a recycle always follows a manifest
            self.seen = journal.start
            return True
        changed = manifest.changed_since(self.generation)
        if changed is None or self.files.unfinished(manifest):
            if not self.files.read_only:
                self.files.recover(self.durability)
            self.load()
            return True
        self._reload_shards(sorted(changed), manifest)
        self.generation = manifest.generation
        self.journaled.clear()
        self.dirty.clear()
        self._line_cache.clear()
        start, end = journal.start, journal.end
        covered = manifest.journal
        self.seen = covered if covered is not None and start <= covered <= end else start
        return True

    def _apply(self, data: bytes, lsn: int) -> None:
        """Apply one journal record to memory (see the module description)."""
        lines = data.decode("utf-8").split("\n")
        if lines[0] != _RECORD_FORMAT:
            raise IntegrityError(
                self.journal_path, f"the record at position {lsn} is not a tracker record"
            )
        for line in lines[1:]:
            tag, _, rest = line.partition("\t")
            if tag == "S":
                self._apply_set(rest)
            elif tag == "D":
                key = decode_key(rest, self.journal_path)
                if key in self.values:
                    self._remove(key)
                self.journaled.pop(key, None)
            elif tag == "C":
                self._remove_all()
                self.journaled.clear()
            elif tag != "K":  # K: a checkpoint, taken in by _catch_up
                raise IntegrityError(
                    self.journal_path, f"the record at position {lsn} has a line {tag!r}"
                )

    def _apply_set(self, rest: str) -> None:
        index_text, _, line = rest.partition("\t")
        key_column, _, value_column = line.partition("\t")
        key = decode_key(key_column, self.journal_path)
        value = _decode_record_value(value_column)
        counts = self.counts
        if key in self.values:
            if counts is not None:
                self._count(self.values[key], -1)
            index = self.shard_of[key]
        else:
            index = int(index_text)
            while len(self.shards) <= index:
                self.shards.append(Shard.new())
            self.shards[index].keys.append(key)
            self.shard_of[key] = index
        if counts is not None:
            self._count(value, 1)
        self.values[key] = value
        self.journaled[key] = line
        self.dirty.add(index)

    def _manifest_signature(self) -> Signature | None:
        try:
            info = os.stat(self.files.manifest_path)
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_size, info.st_mtime_ns)

    def refresh(self, key: Key | None = None) -> None:
        """Catch up with what other processes did; the store lock is held, nothing pending.

        With a journal this costs one read of shared memory when nothing happened; without
        one (a store on read-only media that never had one) one ``stat`` of the manifest.

        Args:
            key: the one key the coming operation reads or changes, if it touches one only:
                records of other keys may then wait in `deferred` until `apply_deferred`,
                out of the time other processes wait for the lock.
        """
        if self.stale:
            self.stale = False
            self.load()
            return
        journal = self._journal_if_any()
        if journal is not None:
            self._catch_up(journal, key)
            return
        signature = self._manifest_signature()
        if signature != self.manifest_signature:
            manifest = self.files.read_manifest()
            self.manifest_signature = signature
            if manifest is None or manifest.generation != self.generation:
                self.load()

    def _journal_if_any(self) -> Journal | None:
        if self.journal is None and not self.files.read_only:
            return self._journal()
        if self.journal is None and os.path.exists(self.journal_path):
            self.journal = _open_journal(self.journal_path, self.files.read_only)
            self.unflushed = None
            self.seen = self.journal.start
        return self.journal

    def share(self) -> None:
        """Prepare for use by several processes (the journal exists from now on).

        Syncs journal every pending key without comparing it with the disk first: a shared
        store hands out copies, so its pending keys were changed through its
        methods: comparing them would cost a shard read to save a few bytes of journal.
        """
        self.shared = True
        if not self.files.read_only:
            with self.files.lock:
                self._journal_if_any()

    def _reload_shards(self, indexes: list[int], manifest: Manifest) -> None:
        counts = self.counts
        count = manifest.shards
        alternative = manifest.alternative
        while len(self.shards) < count:
            self.shards.append(Shard.new())
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
            self.shards[index] = Shard.read(shard)
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

    @property
    def read_only(self) -> bool:
        """Whether the store was opened for reading only."""
        return self.files.read_only

    def refuse_writes(self) -> None:
        """Raise `ReadOnlyStoreError` if the store is open for reading only."""
        self.files.refuse_writes()

    # -- syncing ------------------------------------------------------------------------------

    def close(self, *, checkpoint: bool = True) -> None:
        """Checkpoint (sync only, when reading only), then let go of the files.

        A shared store checkpoints under its own lock first and passes ``checkpoint=False``:
        a checkpoint must see every other process's records.
        """
        if self.closed:
            return
        if checkpoint:
            if self.files.read_only:
                self.sync()
            else:
                self.checkpoint()
        self.closed = True
        if self.journal is not None:
            _release_journal(self.journal)
            self.journal = None
        self.files.close_lock()

    def exit_sync(self) -> str | None:
        """Write everything at exit or on a signal (the exit hooks call this); never raise.

        Pending changes are synced first: one journal record, which fits in the journal's
        preallocated room where a checkpoint may not (a full disk). Then the checkpoint
        writes everything into the shard files.

        Returns:
            None when everything was written (or there was nothing to write); otherwise one
            line saying what was not written and what that loses (see `exit_report`).
        """
        if self.closed:
            return None
        unsynced = self.unsynced_count()
        synced = False
        try:
            if unsynced or self.files.read_only:
                self.sync()  # read-only: raises if something was changed
            synced = True
            if not self.files.read_only:
                self.checkpoint()
        except Exception as error:  # at exit nobody can catch it: say it in one line
            return self.exit_report(error, unsynced, synced=synced)
        return self.exit_report(None, unsynced)

    def unsynced_count(self) -> int:
        """How many keys have changes that no sync wrote yet (values only read not counted)."""
        try:
            changes = self.collect()
        except Exception:  # a value JSON cannot hold, or files gone: count every pending key
            return self.change_count()
        return len(changes.sets) + len(changes.deleted) + changes.cleared

    def exit_report(
        self, error: Exception | None, unsynced: int, *, synced: bool = True
    ) -> str | None:
        """Say in one line what an exit sync did not write, or None if nothing is missing.

        Args:
            error: what the sync or checkpoint raised (None: it raised nothing).
            unsynced: the keys whose changes no sync had written when the exit sync began.
            synced: False when the error came from the sync itself, not the checkpoint.
        """
        lost = "the changes to {} key(s) since its last sync are lost"
        if not os.path.isdir(self.folder):
            # Deleted or unmounted under the program: what was written went into files no
            # one can open again, and there is nothing left to checkpoint into.
            if not unsynced:
                return None
            return f"could not sync {self.folder} at exit: its folder is gone; " + lost.format(
                unsynced
            )
        if error is None:
            return None
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        still = self.unsynced_count() if unsynced else 0
        if still:
            return (
                f"could not sync {self.folder} at exit ({reason}): "
                + lost.format(still)
                + "; every earlier sync is safe"
            )
        if unsynced and not synced:
            # The record was written but its flush failed: it may not survive a power cut.
            return (
                f"could not sync {self.folder} at exit ({reason}): the changes to {unsynced} "
                "key(s) since its last sync were written but may not survive a power cut; "
                "every earlier sync is safe"
            )
        return (
            f"could not checkpoint {self.folder} at exit ({reason}): nothing is lost; its "
            "syncs stay in its journal, and the next open writes them into the shard files"
        )

    def sync(self, durability: Durability | None = None) -> bool:
        """Make every pending change durable (or atomic) in one all-or-nothing step.

        A few changed keys become one journal record; many (`CHECKPOINT_KEYS`) go straight
        to the shards. With ``durability="durable"`` the changes survive power loss when this
        returns.

        Returns:
            True when something was written.

        Raises:
            SerializationError: a value cannot be stored as JSON; nothing was written and
                the pending changes are kept.
            ReadOnlyStoreError: there are changes and the store is open for reading only.
        """
        with self.files.lock:
            appended = self.commit()
        if (durability or self.durability) == "durable":
            self.flush()
        return appended != 0

    def commit(self) -> int | None:
        """Write the pending changes as one journal record, not flushed; the lock is held.

        Many changed keys (`CHECKPOINT_KEYS`), a large record (`LARGE_RECORD`), a journal
        grown past `CHECKPOINT_BYTES`, or no room for the journal to grow make it a
        checkpoint instead, which is durable.

        Returns:
            The number of keys in the record; 0 when nothing changed; None after a
            checkpoint (everything is durable).

        Raises:
            SerializationError: a value cannot be stored as JSON; nothing was written.
            ReadOnlyStoreError: there are changes and the store is open for reading only.
        """
        changed = self.change_count()
        if not changed:
            return 0
        # Reading a value marks it, and a store open for reading can never checkpoint (which
        # compares whole shards): it compares key by key, so only a real change refuses.
        if changed < CHECKPOINT_KEYS or self.files.read_only:
            changes = self.collect()
            if not changes:
                self.forget_changes()
                return 0
            self.files.refuse_writes()
            appended = self._append_or_not(changes)
            if appended is not None:
                if self.journal is not None and (
                    self.journal.end - self.journal.start >= CHECKPOINT_BYTES
                ):
                    self._checkpoint_if_room()
                return appended
        self.files.refuse_writes()
        self.checkpoint()
        return None

    def _checkpoint_if_room(self) -> None:
        """Checkpoint a full journal; on a full disk, later (the records are safe in it)."""
        try:
            self.checkpoint()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise

    def _append_or_not(self, changes: Changes) -> int | None:
        """Append ``changes`` as a record, or return None where a checkpoint is better."""
        record = changes.record()
        if len(record) >= LARGE_RECORD:
            return None  # written once, into its shard, rather than twice
        try:
            self.append_record(changes, record)
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
            # No room for the journal to grow (or to be created): the shards need none of
            # it, and if there is no room for them either the checkpoint raises ENOSPC too.
            return None
        return len(changes.sets) + len(changes.deleted) + changes.cleared

    def collect(self) -> Changes:
        """Return the pending changes, each key's new line compared with its durable line.

        Raises:
            SerializationError: a pending value cannot be stored as JSON.
        """
        self._fold_pending()
        changes = Changes(self.cleared, list(self.deleted))
        added = self.added
        values = self.values
        shard_of = self.shard_of
        if self.shared:
            for key in self.pending:
                line = encode_line_keeping(key, values[key], self.journaled.get(key))
                changes.sets.append((shard_of[key], key, line))
            return changes
        for key in self.pending:
            index = shard_of[key]
            old = None if key in added else self._durable_line(key, index)
            line = encode_line_keeping(key, values[key], old)
            if line != old:
                changes.sets.append((index, key, line))
        return changes

    def _durable_line(self, key: Key, index: int) -> str | None:
        """Return the line that holds ``key``'s durable value, or None if it has none."""
        line = self.journaled.get(key)
        if line is not None:
            return line
        shard = self.shards[index]
        if not shard.disk_count:
            return None
        cached = self._cached_file(index)
        if cached is None:
            return None
        if cached.positions is None:
            # The file's keys in order; for one file (one signature) they never change.
            order = shard.disk_keys if shard.disk_keys is not None else shard.keys
            cached.positions = {k: at for at, k in enumerate(order[: shard.disk_count])}
        position = cached.positions.get(key)
        return None if position is None else cached.lines[position]

    def _file_lines(self, index: int) -> list[str] | None:
        """Return the lines of shard ``index``'s file, from a small cache of recent shards."""
        cached = self._cached_file(index)
        return None if cached is None else cached.lines

    def _cached_file(self, index: int) -> _FileLines | None:
        shard = self.shards[index]
        if shard.signature is None or shard.path is None:
            return None
        cache = self._line_cache
        cached = cache.get(index)
        if cached is not None and cached.signature == shard.signature:
            cache.move_to_end(index)
            return cached
        lines = self.files.read_lines(shard.path, shard.signature)
        if lines is None or len(lines) != shard.disk_count:
            return None
        cached = cache[index] = _FileLines(shard.signature, lines)
        if len(cache) > _LINE_CACHE:
            cache.popitem(last=False)
        return cached

    def _journal(self) -> Journal:
        """Return the journal, creating it (durably) on first use; the store lock is held."""
        if self.journal is None:
            self.journal = _open_journal(self.journal_path, False)
            self.unflushed = None
            self.seen = self.journal.start
        return self.journal

    def append_record(self, changes: Changes, record: bytes) -> int:
        """Append ``record``, the record of ``changes``, not flushed; the store lock is held.

        Returns:
            The journal position after the record.

        Raises:
            OSError: ``ENOSPC`` when the journal cannot be created or grow; nothing changed.
        """
        journal = self._journal()
        end = journal.append(record)
        self.seen = end
        self.unflushed = end
        self._applied(changes)
        return end

    def flush(self) -> None:
        """Make this process's records durable (one ``fdatasync``, shared with others)."""
        upto = self.unflushed
        if upto is not None and self.journal is not None:
            self.journal.flush(upto)

    def _applied(self, changes: Changes) -> None:
        if changes.cleared:
            self.journaled.clear()
        for key in changes.deleted:
            self.journaled.pop(key, None)
        for index, key, line in changes.sets:
            self.journaled[key] = line
            self.dirty.add(index)
        self.forget_changes()

    # -- the checkpoint -----------------------------------------------------------------------

    def checkpoint(self, *, journal_lost: bool = False) -> bool:
        """Write every change into the shard files, durably, and empty the journal.

        Returns:
            True when files were written.

        Raises:
            SerializationError: a pending value cannot be stored as JSON; nothing was written
                and the pending changes are kept.
        """
        files = self.files
        if files.read_only:
            return self.sync()
        self.apply_deferred()
        with files.lock:
            journal = self.journal
            if journal is None and os.path.exists(self.journal_path):
                journal = self._journal()
            touched = set(self.dirty)
            touched.update(map(self.shard_of.__getitem__, self.pending))
            count = len(self.shards)
            while count and not self.shards[count - 1].keys:
                count -= 1
            texts: dict[int, str] = {}
            for index in sorted(touched):
                if index < count:
                    text = self._shard_text(index)
                    if text is not None:
                        texts[index] = text
            pending_journal = journal is not None and journal.end != journal.start
            if not texts and count == self.disk_shards and not pending_journal and not journal_lost:
                self._checkpointed(touched, {}, count)
                return False
            end = None
            if journal is not None:
                manifest = files.read_manifest()
                generation = (manifest.generation if manifest is not None else 0) + 1
                # The checkpoint record tells other processes to read the shards again, and
                # the flush is write-ahead: the records are durable before the shards that
                # hold them replace the old ones.
                end = journal.append(_CHECKPOINT_PREFIX + str(generation).encode())
                journal.flush(end)
            written = self._write(texts, count, end)
            if journal is not None and end is not None and end != journal.start:
                journal.recycle(upto=end)
            if end is not None:
                self.seen = end
            self._checkpointed(touched, written, count)
        return True

    def _write(self, texts: dict[int, str], count: int, end: int | None) -> dict[int, ShardRecord]:
        """Commit the shard texts and the manifest; return the new records by shard."""
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
        manifest = self.files.commit(
            files, records, disk, file_size=self.file_size, journal=end, durability="durable"
        )
        previous = self.generation
        self.generation = manifest.generation if manifest.generation == previous + 1 else -1
        self.manifest_signature = self._manifest_signature()
        for index, (_data, record) in files.items():
            path = self.files.shard_path(index)
            self.shards[index].written(path, self.files.signature(index), record)
        return {index: record for index, (_data, record) in files.items()}

    def _checkpointed(self, touched: set[int], written: dict[int, ShardRecord], count: int) -> None:
        for index in touched:
            shard = self.shards[index] if index < count else None
            if shard is not None and index not in written and shard.record is not None:
                # Its text came out equal to the file's: the file holds exactly its keys.
                shard.written(
                    shard.path or self.files.shard_path(index), shard.signature, shard.record
                )
        del self.shards[count:]
        self.disk_shards = count
        self.journaled.clear()
        self.dirty.clear()
        self.forget_changes()

    def _shard_text(self, index: int) -> str | None:
        """Return the new text of shard ``index``, or None when its file already holds it.

        Lines of keys that did not change are reused from the file, journaled keys take the
        line of their last record, pending keys are encoded (and compared with that line),
        and keys new since the last sync are encoded together, in C.

        Raises:
            SerializationError: a pending value cannot be stored as JSON.
        """
        shard = self.shards[index]
        keys = shard.keys
        values = self.values
        if not shard.disk_count:
            return self._encode_shard(index) if keys else ""
        file_lines = self._file_lines(index)
        if file_lines is None:  # the file is not the one this process last read or wrote
            return self._encode_shard(index)
        journaled = self.journaled
        pending = self.pending
        added = self.added
        by_key = dict(zip(shard.disk_keys, file_lines, strict=True)) if shard.disk_keys else None
        disk_count = shard.disk_count
        lines: list[str] = []
        fresh: list[int] = []
        for position, key in enumerate(keys):
            if key in added and key not in journaled:
                fresh.append(position)
                lines.append("")
                continue
            if by_key is None:
                line = file_lines[position] if position < disk_count else None
            else:
                line = by_key.get(key)
            line = journaled.get(key, line)
            if key in pending or line is None:
                line = encode_line_keeping(key, values[key], line)
            lines.append(line)
        if fresh:
            for position, line in zip(
                fresh, self._encode_keys([keys[p] for p in fresh]), strict=True
            ):
                lines[position] = line
        if by_key is None and len(keys) == disk_count and lines == file_lines:
            return None
        return "".join(line + "\n" for line in lines)

    def _encode_keys(self, keys: list[Key]) -> list[str]:
        """Return the lines of ``keys`` (new keys: their values were checked when set)."""
        try:
            return encode_lines(keys, self.values).split("\n")[:-1]
        except SerializationError:
            return [encode_line_keeping(key, self.values[key], None) for key in keys]

    def _encode_shard(self, index: int) -> str:
        """Encode shard ``index`` from memory alone (its file is not the one last seen)."""
        shard = self.shards[index]
        try:
            return encode_lines(shard.keys, self.values)
        except SerializationError:
            return "".join(
                encode_line_keeping(key, self.values[key], self.journaled.get(key)) + "\n"
                for key in shard.keys
            )
