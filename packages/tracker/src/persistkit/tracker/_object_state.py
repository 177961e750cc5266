"""A store on an object store (S3): a log of immutable sync records, and checkpoints by CAS.

Objects under the store's location::

    journal/<seq:012d>        one sync: {"format", "writer", "nonce", "ops"}, created if absent
    checkpoint                {"format", "generation", "upto", "writer", "shards", "digests"}
    shards/<g>-<writer>-<n>/<i>
                              shard ``i`` of checkpoint generation ``g`` (attempt nonce ``n``),
                              in tastypy's lines

**Appending.** A writer that has applied every record up to ``seq`` syncs by creating
``journal/<seq+1>`` with ``put_if_absent``. Only one writer can create a number; the one that
loses (`ObjectExistsError`) reads the records it missed, applies them, rebases its pending
changes on them and tries the next number. A number is taken only by a writer that saw the
one before it, so the journal has no gaps, and everyone folds the same records in the same
order: every process that has read up to ``seq`` holds the same content. A record is durable
when its ``put_if_absent`` returns. Its body carries the writer id and a nonce, so a create
whose answer was lost (`OutcomeUnknownError`) is settled by reading the record back.

**Records hold operations, not states,** so changes from machines that did not see each
other merge: ``["s", key, value]`` sets a whole value, ``["f", key, fields, removed, tries]``
sets top-level fields of a dict value (the last record wins per field) and adds ``tries`` to
its ``_tries`` (a counter: tries counted on two machines add up), ``["d", key]`` removes a
key, ``["c"]`` removes them all, and ``["t", key, max_tries, allow_aborted]`` (`should_try`)
adds one try only if the task is worth trying at that place in the journal: its writer has
read every record before it once it is stored, so it knows the answer exactly. A sync
computes the operations by comparing each pending value with its value in ``base``, the
fold of the records read so far.

**Checkpoints.** Every `CHECKPOINT_RECORDS`-th record's writer (and `close`) writes the
shards that changed as new objects under a fresh name, then publishes them with one
``put_if_match`` of ``checkpoint`` (``upto`` = the last record they hold). Of racing
checkpointers one wins; losers (and an attempt the server failed before it published)
delete the objects they created. The winner deletes the shard objects only the old
checkpoint named. An opener reads the checkpoint, its shards (again from a newer checkpoint
if one replaced them meanwhile), then the records after ``upto``.

**Journal records are never deleted automatically.** Deleting ``journal/<n>`` would let a
writer that stalled across a checkpoint create ``n`` again and believe its record durable,
although every reader starts after ``upto``. Listing from ``upto`` on costs the same however
many older records there are.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import secrets
from typing import Any

from persistkit.core import (
    ConflictError,
    Durability,
    ObjectExistsError,
    ObjectNotFoundError,
    ObjectStore,
    OutcomeUnknownError,
    StoreUnavailableError,
)
from persistkit.core.errors import InvalidArgumentError
from persistkit.tracker._lines import Key, decode_key, encode_key, encode_lines, parse_shard
from persistkit.tracker._model import MemoryModel, Shard
from persistkit.tracker._tasks import task_flags
from persistkit.tracker.errors import IntegrityError, ReadOnlyStoreError

JOURNAL = "journal/"
CHECKPOINT = "checkpoint"
SHARDS = "shards/"
CHECKPOINT_RECORDS = 200
"""The writer of every record whose number is a multiple of this checkpoints."""

_RECORD_FORMAT = "persistkit-tracker-record/1"
_CHECKPOINT_FORMAT = "persistkit-tracker-checkpoint/1"
_OPEN_ATTEMPTS = 8
_MISSING: Any = object()
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def journal_key(seq: int) -> str:
    """Return the object key of record ``seq`` (fixed width: names sort like the numbers)."""
    return f"{JOURNAL}{seq:012d}"


def _same(old: Any, new: Any) -> bool:
    """Whether two JSON values are the same JSON (``1``, ``1.0`` and ``True`` differ)."""
    if type(old) is not type(new):
        return False
    if isinstance(old, dict | list):
        try:
            return bool(_encode(old) == _encode(new))
        except (TypeError, ValueError):  # not JSON: the sync refuses it when it encodes
            return False
    return bool(old == new)


def _tries(value: Any) -> int | None:
    return value if type(value) is int else None


def diff(key: Key, old: Any, new: Any) -> list[Any] | None:
    """Return the operation that turns ``old`` (or absent: `_MISSING`) into ``new``, or None."""
    if old is _MISSING:
        return ["s", encode_key(key), new]
    if type(old) is dict and type(new) is dict:
        fields: dict[str, Any] = {}
        delta = 0
        old_tries, new_tries = _tries(old.get("_tries")), _tries(new.get("_tries"))
        for field, value in new.items():
            if field == "_tries" and old_tries is not None and new_tries is not None:
                delta = new_tries - old_tries
            elif field not in old or not _same(old[field], value):
                fields[field] = value
        removed = [field for field in old if field not in new]
        if not fields and not removed and not delta:
            return None
        return ["f", encode_key(key), fields, removed, delta]
    if _same(old, new):
        return None
    return ["s", encode_key(key), new]


def apply_op(values: dict[Key, Any], op: list[Any], where: str) -> Key | None:
    """Apply one operation to ``values``; return the key it changed (None: every key).

    Raises:
        IntegrityError: the operation is not one this version writes.
    """
    tag = op[0] if op else None
    if tag == "c":
        values.clear()
        return None
    if tag not in {"s", "f", "d", "t"} or len(op) < 2 or type(op[1]) is not str:
        raise IntegrityError(where, f"holds an operation this version cannot read: {op!r:.80}")
    key = decode_key(op[1], where)
    if tag == "t":
        _, _, max_tries, allow_aborted = op
        current = values.get(key)
        if type(current) is dict and worth_trying(current, max_tries, allow_aborted):
            values[key] = {**current, "_tries": (_tries(current.get("_tries", 0)) or 0) + 1}
    elif tag == "d":
        values.pop(key, None)
    elif tag == "s":
        values[key] = op[2]
    else:
        _, _, fields, removed, delta = op
        current = values.get(key)
        value = dict(current) if type(current) is dict else {}
        for field in removed:
            value.pop(field, None)
        value.update(fields)
        if delta:
            tries = _tries(value.get("_tries", 0))
            value["_tries"] = max(0, (tries or 0) + delta)
        values[key] = value
    return key


def worth_trying(task: dict[str, Any], max_tries: int, allow_aborted: bool) -> bool:
    """Whether a gated try (``["t", key, max_tries, allow_aborted]``) counts on ``task``."""
    tries = _tries(task.get("_tries", 0)) or 0
    return (
        not task.get("_done")
        and (max_tries < 1 or tries < max_tries)
        and (allow_aborted or not task.get("_aborted"))
    )


def _parse(data: bytes, where: str, expected: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise IntegrityError(where, f"is not JSON ({error})") from None
    if type(document) is not dict or document.get("format") != expected:
        raise IntegrityError(where, f"is not a {expected} object")
    return document


class ObjectState(MemoryModel):
    """One store on an object store: its content in memory, and how a sync reaches the store.

    ``base`` is the fold of every record up to ``seq`` (plus the checkpoint below them):
    what every process that read that far holds. ``values`` is ``base`` with this object's
    pending changes; a sync writes the difference.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        file_size: int,
        read_only: bool = False,
        owns_store: bool = False,
    ) -> None:
        super().__init__(store.location, file_size=file_size)
        self.store = store
        self.owns_store = owns_store  # opened from a URL: closed with the tracker
        self._read_only = read_only
        self.writer = secrets.token_hex(8)
        self.base: dict[Key, Any] = {}
        self.seq = 0
        self.generation = 0
        self.upto = 0
        self.checkpoint_version: str | None = None
        self.shard_keys: list[str] = []
        self.shard_digests: list[str] = []
        # A record whose create got no clear answer: (seq, nonce), settled by the next sync.
        self.in_flight: tuple[int, str] | None = None
        # Nonces of records found absent when settled: a late landing is still ours.
        self.orphans: set[str] = set()

    @property
    def read_only(self) -> bool:
        """Whether the store was opened for reading only."""
        return self._read_only

    def refuse_writes(self) -> None:
        """Raise `ReadOnlyStoreError` if the store is open for reading only."""
        if self._read_only:
            raise ReadOnlyStoreError(
                errno.EROFS,
                "the store was opened for reading only; it cannot be synced",
                self.folder,
            )

    # -- loading ------------------------------------------------------------------------------

    def load(self) -> None:
        """Read the checkpoint, its shards and every record after it; drop pending changes.

        Raises:
            IntegrityError: an object of the store is not what this version wrote.
            StoreUnavailableError: the server could not be reached.
        """
        for _attempt in range(_OPEN_ATTEMPTS):
            try:
                found = self.store.get(CHECKPOINT)
            except ObjectNotFoundError:
                fields: tuple[int, int, list[str], list[str]] = (0, 0, [], [])
                version = None
            else:
                fields = self._checkpoint_fields(found.data)
                version = found.version
            try:
                texts = [self.store.get(key).data for key in fields[2]]
            except ObjectNotFoundError:
                continue  # a newer checkpoint replaced these shards while we read them
            break
        else:
            raise IntegrityError(
                self.folder, "its checkpoint kept changing under the reader; try again later"
            )
        base: dict[Key, Any] = {}
        values: dict[Key, Any] = {}
        for key, text in zip(fields[2], texts, strict=True):
            try:
                decoded = text.decode("utf-8")
            except UnicodeDecodeError:
                raise IntegrityError(self._where(key), "is not UTF-8") from None
            keys, shard_values = parse_shard(decoded, self._where(key))
            base.update(zip(keys, shard_values, strict=True))
            values.update(zip(keys, parse_shard(decoded, self._where(key))[1], strict=True))
        self.base = base
        self.values = values
        self._lay_out()
        self.generation, self.upto, self.shard_keys, self.shard_digests = fields
        self.seq = self.upto
        self.checkpoint_version = version
        self.forget_changes()
        self.counts = None
        self.in_flight = None
        self.catch_up()

    def _checkpoint_fields(self, data: bytes) -> tuple[int, int, list[str], list[str]]:
        """Return a checkpoint's generation, upto, shard keys and shard digests."""
        document = _parse(data, self._where(CHECKPOINT), _CHECKPOINT_FORMAT)
        try:
            shards = [str(key) for key in document["shards"]]
            digests = [str(digest) for digest in document["digests"]]
            if len(shards) != len(digests):
                raise ValueError("one digest per shard")
            return int(document["generation"]), int(document["upto"]), shards, digests
        except (KeyError, TypeError, ValueError):
            raise IntegrityError(
                self._where(CHECKPOINT), "lacks a field or has a bad one"
            ) from None

    def _where(self, key: str) -> str:
        return f"{self.folder}/{key}"

    def _lay_out(self) -> None:
        """Cut ``values`` (in order) into shards of ``file_size`` keys."""
        keys = list(self.values)
        size = self.file_size
        self.shards = [
            Shard(keys[i : i + size], 0, None, None, None) for i in range(0, len(keys), size)
        ]
        self.shard_of = {key: i // size for i, key in enumerate(keys)}

    def catch_up(self, *, known: int | None = None) -> None:
        """Apply every record after ``seq``, keeping this object's pending changes on top.

        Args:
            known: a record number a create just found taken: it is read even if the
                listing does not show it yet.

        Raises:
            IntegrityError: a record is damaged.
        """
        records: list[tuple[int, bytes]] = []
        expected = self.seq + 1
        for name in self.store.list(JOURNAL, start_after=journal_key(self.seq)):
            number = name[len(JOURNAL) :]
            if len(number) != 12 or not number.isdigit():
                continue
            if int(number) != expected:
                break  # a listing is no snapshot: what follows a record not shown yet waits
            try:
                records.append((expected, self.store.get(name).data))
            except ObjectNotFoundError:
                raise IntegrityError(self._where(name), "was listed, then not found") from None
            expected += 1
        if known is not None and expected == known:
            # The create said it exists; conditional writes are exact where listings may lag.
            records.append((known, self.store.get(journal_key(known)).data))
        chunk: list[tuple[int, bytes]] = []
        for seq, data in records:
            if self.orphans and self._orphan(seq, data):
                # Our own record from a sync that got no clear answer, landed late: memory
                # holds its changes already, so it is folded in as ours, not rebased on.
                if chunk:
                    self._apply_records(chunk)
                    chunk = []
                self._applied_own(seq, data)
            else:
                chunk.append((seq, data))
        if chunk:
            self._apply_records(chunk)

    def _orphan(self, seq: int, data: bytes) -> bool:
        document = _parse(data, self._where(journal_key(seq)), _RECORD_FORMAT)
        if document.get("writer") != self.writer or document.get("nonce") not in self.orphans:
            return False
        self.orphans.discard(document["nonce"])
        return True

    def _apply_records(self, records: list[tuple[int, bytes]]) -> None:
        """Fold other writers' records into ``base`` and rebase the pending changes on them.

        Memory ends up as ``base`` with this object's pending operations applied again on
        top, keys in ``base``'s order, then this object's new keys.
        """
        mine = self._pending_ops()
        self._fold_pending()
        changed, moved = self._fold_records(records)
        cleared = bool(mine) and mine[0][0] == "c"
        if changed is None or cleared:
            changed = dict.fromkeys([*self.values, *self.base])
        own: dict[Key, list[list[Any]]] = {}
        for op in mine:
            if op[0] != "c":
                own.setdefault(decode_key(op[1]), []).append(op)

        def target(key: Key) -> Any:
            value = _MISSING if cleared and key not in own else self._copy_of_base(key)
            for op in own.get(key, ()):
                scratch = {} if value is _MISSING else {key: value}
                apply_op(scratch, op, "<pending>")
                value = scratch.get(key, _MISSING)
            return value

        fresh = [key for key in changed if key not in self.values or key in moved]
        for key in changed:
            if key not in self.values or key in moved:
                continue
            self._set_in_memory(key, target(key))
        if fresh:
            order = {key: index for index, key in enumerate(self.base)}
            fresh.sort(key=lambda key: order.get(key, len(order)))
        for key in fresh:
            value = target(key)
            if value is not _MISSING and key in self.shard_of:
                self._move_to_end(key)
            self._set_in_memory(key, value)
        for key in list(self.added):  # this writer's new keys come after the others' in order
            if key in self.shard_of and key not in self.base:
                self._move_to_end(key)

    def _fold_records(
        self, records: list[tuple[int, bytes]]
    ) -> tuple[dict[Key, None] | None, set[Key]]:
        """Apply records to ``base``.

        Returns:
            The keys they changed (None: they cleared the store), and the keys they removed
            (a key removed then set again moves to the end).
        """
        changed: dict[Key, None] | None = {}
        moved: set[Key] = set()
        for seq, data in records:
            where = self._where(journal_key(seq))
            for op in _parse(data, where, _RECORD_FORMAT)["ops"]:
                if op and op[0] == "d":
                    moved.add(decode_key(op[1], where))
                key = apply_op(self.base, op, where)
                if key is None:
                    changed = None
                elif changed is not None:
                    changed[key] = None
            self.seq = seq
        return changed, moved

    def _copy_of_base(self, key: Key) -> Any:
        value = self.base.get(key, _MISSING)
        if value is _MISSING or not isinstance(value, dict | list):
            return value
        return json.loads(_encode(value))

    def _set_in_memory(self, key: Key, target: Any) -> None:
        """Make memory hold ``target`` for ``key`` (`_MISSING`: no key), counters kept exact."""
        present = key in self.values
        if target is _MISSING:
            if present:
                self._remove(key)
                self.pending.pop(key, None)
            return
        if not present:
            shards = self.shards
            if not shards or len(shards[-1].keys) >= self.file_size:
                shards.append(Shard.new())
            shards[-1].keys.append(key)
            self.shard_of[key] = len(shards) - 1
            self.values[key] = target
            self._count(target, 1)
            return
        old = self.values[key]
        if old is target:
            return
        self._count(old, -1)
        self._count(target, 1)
        if key in self.pending:
            self.pending[key] = task_flags(target) if self.counts is not None else 0
        if type(old) is dict and type(target) is dict:
            # Keep the caller's dict object: code holding a task it is changing stays live.
            old.clear()
            old.update(target)
        else:
            self.values[key] = target

    def _move_to_end(self, key: Key) -> None:
        index = self.shard_of[key]
        self.shards[index].keys.remove(key)
        shards = self.shards
        if len(shards[-1].keys) >= self.file_size:
            shards.append(Shard.new())
        shards[-1].keys.append(key)
        self.shard_of[key] = len(shards) - 1

    # -- syncing ------------------------------------------------------------------------------

    def _pending_ops(self) -> list[list[Any]]:
        """Return the operations that turn ``base`` into ``values`` for the pending keys."""
        ops: list[list[Any]] = []
        if self.cleared:
            ops.append(["c"])
        base = self.base
        for key in self.deleted:
            if key in base and (self.cleared is False):
                ops.append(["d", encode_key(key)])
        values = self.values
        for key in self.pending:
            old = _MISSING if self.cleared else base.get(key, _MISSING)
            if key in self.deleted:
                old = _MISSING
            op = diff(key, old, values[key])
            if op is not None:
                ops.append(op)
        return ops

    def sync(self, durability: Durability | None = None) -> bool:
        """Write every pending change as one record: all of it lands, or none of it.

        When it returns, the record is stored (as durable as the server makes an
        acknowledged write) and this object holds every record before it; with nothing to
        write, it reads what the other writers synced (one listing). ``durability``
        is accepted for the API's sake: an object store has only one.

        Returns:
            True when a record was written.

        Raises:
            ReadOnlyStoreError: there are changes and the store is open for reading only.
            SerializationError: a value cannot be stored as JSON; nothing was written.
            OutcomeUnknownError: the server failed and whether the record landed could not
                be settled; the changes stay pending, and the next sync settles it first.
            StoreUnavailableError: the server could not be reached; nothing was written.
        """
        del durability
        return self._write_record([]) is not None

    def gated_try(self, key: Key, max_tries: int, allow_aborted: bool) -> bool:
        """Count a try of ``key`` if, at its place in the journal, the task is worth trying.

        The pending changes go in the same record, before the try. Exact between machines:
        the answer is decided against every record before this one, which this process has
        read when the record is stored.

        Returns:
            True when the try counted (this caller should do the task).

        Raises:
            The errors of `sync`.
        """
        granted = self._write_record([["t", encode_key(key), max_tries, allow_aborted]])
        return granted is not None and key in granted

    def _write_record(self, extra: list[list[Any]]) -> set[Key] | None:
        """Write the pending changes and ``extra`` as one record, after catching up if needed.

        Returns:
            None when there was nothing to write, else the keys whose gated tries counted.
        """
        if self.in_flight is not None:
            self._settle()
        ops = self._pending_ops() + extra
        if not ops:
            self.forget_changes()
            self.catch_up()
            return None
        self.refuse_writes()
        while True:
            seq = self.seq + 1
            nonce = secrets.token_hex(8)
            body = self._record(ops, nonce)
            self.in_flight = (seq, nonce)
            try:
                self.store.put_if_absent(journal_key(seq), body)
            except ObjectExistsError:
                self.in_flight = None
                self.catch_up(known=seq)
                ops = self._pending_ops() + extra
                if not ops:
                    self.forget_changes()
                    return None
                continue
            except ConflictError:
                self.in_flight = None
                raise
            self.in_flight = None
            granted = self._applied_own(seq, body)
            self.forget_changes()
            if seq % CHECKPOINT_RECORDS == 0:
                self._checkpoint_quietly()
            return granted

    def _record(self, ops: list[list[Any]], nonce: str) -> bytes:
        document = {"format": _RECORD_FORMAT, "writer": self.writer, "nonce": nonce, "ops": ops}
        try:
            return _encode(document).encode("utf-8")
        except (TypeError, ValueError) as error:
            from persistkit.core.errors import SerializationError  # noqa: PLC0415 - rare path

            raise SerializationError(f"value cannot be stored as JSON: {error}") from error

    def _applied_own(self, seq: int, body: bytes) -> set[Key]:
        """Fold this object's own record into ``base``; return the keys whose tries counted.

        Memory holds the record's changes already, except the gated tries: a try that
        counted is added to memory here.
        """
        where = self._where(journal_key(seq))
        granted: set[Key] = set()
        for op in _parse(body, where, _RECORD_FORMAT)["ops"]:  # fresh objects: base owns them
            if op[0] != "t":
                apply_op(self.base, op, where)
                continue
            key = decode_key(op[1], where)
            before = self.base.get(key)
            apply_op(self.base, op, where)
            if self.base.get(key) is not before:
                granted.add(key)
        self.seq = seq
        self._fold_pending()
        for key in granted:
            value = self.values.get(key)
            if type(value) is dict:
                tries = _tries(value.get("_tries", 0)) or 0
                self._set_in_memory(key, {**value, "_tries": tries + 1})
        return granted

    def _settle(self) -> None:
        """Find out whether the record of a sync that got no clear answer landed."""
        if self.in_flight is None:
            return
        seq, nonce = self.in_flight
        if seq != self.seq + 1:
            self.in_flight = None
            return
        try:
            found = self.store.get(journal_key(seq))
        except ObjectNotFoundError:
            # Not there (yet): the changes stay pending. Should the request still land, after
            # this read, catching up recognises it by its nonce.
            self.in_flight = None
            self.orphans.add(nonce)
            return
        document = _parse(found.data, self._where(journal_key(seq)), _RECORD_FORMAT)
        self.in_flight = None
        if document.get("writer") == self.writer and document.get("nonce") == nonce:
            # It landed: fold it in; a pending key whose value is the record's now differs
            # from nothing, and the cleared flag it carried is spent.
            self._applied_own(seq, found.data)
            if document["ops"] and document["ops"][0] == ["c"]:
                self.cleared = False
            self.deleted = {key: None for key in self.deleted if key in self.base}
            return
        self.catch_up()

    # -- checkpoints --------------------------------------------------------------------------

    def checkpoint(self) -> bool:
        """Write the shards that changed and publish them as the new checkpoint.

        Returns:
            True when this object published a checkpoint; False when there was nothing to
            do or another writer published one first (nothing is lost either way: the
            records stay).
        """
        if self._read_only or self.seq <= self.upto:
            return False
        generation = self.generation + 1
        # A fresh name per attempt: an attempt that failed half-way may have left objects
        # under its name, and creating them again would fail for ever.
        folder = f"{SHARDS}{generation:09d}-{self.writer}-{secrets.token_hex(4)}/"
        size = self.file_size
        shard_keys, digests, created = self._write_shards(folder)
        document = {
            "format": _CHECKPOINT_FORMAT,
            "generation": generation,
            "upto": self.seq,
            "writer": self.writer,
            "file_size": size,
            "shards": shard_keys,
            "digests": digests,
        }
        body = _encode(document).encode("utf-8")
        previous = list(self.shard_keys)
        try:
            if self.checkpoint_version is None:
                version = self.store.put_if_absent(CHECKPOINT, body)
            else:
                version = self.store.put_if_match(CHECKPOINT, body, self.checkpoint_version)
        except ConflictError:
            for key in created:  # nobody can name them: they were never published
                self.store.delete(key)
            self._read_checkpoint_info()
            return False
        except OutcomeUnknownError:
            if self._read_checkpoint_info() != self.writer or self.generation != generation:
                return False  # maybe published and replaced since: its shards may be in use
            version = self.checkpoint_version or ""
        old = set(previous) - set(shard_keys)
        self.generation, self.upto = generation, self.seq
        self.checkpoint_version = version
        self.shard_keys, self.shard_digests = shard_keys, digests
        for key in sorted(old):  # garbage: a reader that still wants them opens again
            self.store.delete(key)
        return True

    def _write_shards(self, folder: str) -> tuple[list[str], list[str], list[str]]:
        """Create the shard objects that changed under ``folder``, unpublished.

        Returns:
            The checkpoint's shard keys, their digests, and the keys created here.

        Raises:
            StoreUnavailableError: the server failed; the objects created are removed.
        """
        keys = list(self.base)
        size = self.file_size
        shard_keys: list[str] = []
        digests: list[str] = []
        created: list[str] = []
        try:
            for index, start in enumerate(range(0, len(keys), size)):
                text = encode_lines(keys[start : start + size], self.base).encode("utf-8")
                digest = hashlib.md5(text, usedforsecurity=False).hexdigest()
                if index < len(self.shard_digests) and self.shard_digests[index] == digest:
                    shard_keys.append(self.shard_keys[index])
                else:
                    key = f"{folder}{index}"
                    created.append(key)  # first: a create with no clear answer may have landed
                    self.store.put_if_absent(key, text)
                    shard_keys.append(key)
                digests.append(digest)
        except StoreUnavailableError:
            # Unpublished, so nobody names them; a delete that fails too leaves garbage only.
            with contextlib.suppress(StoreUnavailableError):
                for key in created:
                    self.store.delete(key)
            raise
        return shard_keys, digests, created

    def _read_checkpoint_info(self) -> str | None:
        """Read the checkpoint's position (if newer than ours); return its writer's id."""
        try:
            found = self.store.get(CHECKPOINT)
        except ObjectNotFoundError:
            return None
        fields = self._checkpoint_fields(found.data)
        if fields[0] >= self.generation:
            self.generation, self.upto, self.shard_keys, self.shard_digests = fields
            self.checkpoint_version = found.version
        return str(json.loads(found.data).get("writer"))

    def _checkpoint_quietly(self) -> None:
        """Checkpoint after a sync; a failure leaves the records, which lose nothing."""
        with contextlib.suppress(StoreUnavailableError, ConflictError):
            self.checkpoint()

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """Sync, checkpoint when records follow the last checkpoint, and stop."""
        if self.closed:
            return
        if not self._read_only:
            self.sync()
            self._checkpoint_quietly()
        elif self._pending_ops():
            self.refuse_writes()
        self.closed = True
        if self.owns_store:
            self.store.close()

    def exit_sync(self) -> str | None:
        """Sync at exit or on a signal (the exit hooks call this); never raise.

        Returns:
            None when everything was written; otherwise one line saying what was not.
        """
        if self.closed:
            return None
        try:
            count = len(self._pending_ops())
        except Exception:  # a value JSON cannot hold: count every pending key
            count = self.change_count()
        if not count:
            return None
        try:
            self.sync()
        except OutcomeUnknownError as error:
            return (
                f"could not sync {self.folder} at exit ({error}): the changes to {count} "
                "key(s) since its last sync may or may not have been written; every earlier "
                "sync is safe"
            )
        except Exception as error:  # at exit nobody can catch it: say it in one line
            return (
                f"could not sync {self.folder} at exit ({error}): the changes to {count} "
                "key(s) since its last sync are lost; every earlier sync is safe"
            )
        return None


def check_object_options(gzipped: bool) -> None:
    """Refuse the options that mean nothing on an object store."""
    if gzipped:
        raise InvalidArgumentError(
            "gzipped=True is for a folder; an object store keeps shards as they are"
        )
