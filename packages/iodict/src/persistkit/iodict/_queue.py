"""DurableQueue: a FIFO queue on a directory, shared by any number of processes.

The commit protocol (see `persistkit.iodict._queue_names` for the names):

- ``put``: the items are written (core's `Batch`: flushed, renamed into place, directory
  fsynced), *then* the tail marker moves past them and the queue directory is fsynced. The
  tail never counts an item that is not there; a killed put leaves files at or past the
  tail, which are never delivered and are removed when the queue is next found empty.
- ``get``: the head item is read and decoded, the head marker moves past it (the commit
  point), the ``taken`` marker counts it for `join`, the queue directory is fsynced, then
  the file is removed. One flush.
- ``claim``: the head item is read and decoded, its lease file is created and the leases
  directory fsynced (the commit point: from here on the item is leased), then the head
  moves (not fsynced: a lease protects the item wherever the head is). One flush.
- ``ack``: the lease is removed and the leases directory fsynced (the commit point), then
  the item file is removed. One flush.
- an item that cannot be decoded is moved to the dead-letter area (durably) before the
  head or its lease lets go of it.

What `join` waits for is derived, not counted apart: the items waiting (tail - head), the
leases, and the ``taken`` count. So no crash between two steps can leave it stuck.

Every state change happens under the queue's cross-process file lock. Reading (``qsize``,
``dead_letters``...) takes the lock shared, without creating it, and writes nothing.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from persistkit.core import (
    Batch,
    Codec,
    CorruptFileError,
    FileLock,
    InvalidArgumentError,
    UnloadableValueError,
    check_durability,
    fsync_dir,
    make_dirs,
    remove,
    rename,
    resolve_format,
    sweep,
)
from persistkit.iodict._claim import Claim
from persistkit.iodict._dead_letters import DeadLetter, bury, dead_path, list_dead, reason_path
from persistkit.iodict._directory import StoreLock, resolve_user_lock
from persistkit.iodict._layouts import NotAnItemError, open_item
from persistkit.iodict._leases import Lease, lease_path, list_leases, read_lease, write_lease
from persistkit.iodict._legacy_queue import find_legacy_items, read_legacy_map, write_legacy_map
from persistkit.iodict._owners import current_owner
from persistkit.iodict._queue_meta import (
    read_queue_format,
    resolve_recorded_format,
    sniff_format,
    write_queue_format,
)
from persistkit.iodict._queue_names import (
    DEAD_NAME,
    ITEMS_NAME,
    KINDS,
    LEASES_NAME,
    LEGACY_MAP_NAME,
    LOCK_NAME,
    OLD_DONE_KIND,
    Markers,
    item_name,
    parse_item_name,
)
from persistkit.iodict.errors import (
    LayoutError,
    LeaseLostError,
    QueueClosedError,
    StorePathError,
)

T = TypeVar("T")

_FIRST_WAIT = 0.001
_MAX_WAIT = 0.05
# A busy consumer re-lists the leases this often, to find the items of consumers that died.
_LEASE_RESCAN = 1.0
_NOTHING: Any = object()
_UNDECODABLE = (CorruptFileError, UnloadableValueError)


def _now_ms() -> int:
    return math.floor(time.time() * 1000)


def _check_seconds(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise InvalidArgumentError(f"{name} must be a number of seconds >= 0, not {value!r}")
    return float(value)


class DurableQueue(Generic[T]):
    """A FIFO queue kept in a directory, with the `queue.Queue` API and acknowledged gets.

    Any number of processes, related or not, may put, get and claim on one directory at
    once; the queue outlives them, and reopening the directory continues where it stopped.
    ``get`` costs the same at any depth: no directory scan (iodict 0.0.8 scanned and sorted
    the whole directory on every get).

    Two ways to take an item:

    - `get` (``queue.Queue``'s): **at most once**. When it returns, the item's removal is
      durable; a consumer that dies afterwards has consumed it.
    - `claim`: **at least once**. The item is leased to this process until the returned
      `Claim` is acknowledged (`Claim.ack`); if the process dies, the lease runs out or the
      claim is given back (`Claim.nack`), the item is delivered again, first in line, with
      its try count raised. After ``max_tries`` deliveries it goes to the dead-letter area.
      An item is acknowledged at most once: an ack through a lost lease raises
      `LeaseLostError`.

    An item that cannot be decoded (a pickled class that no longer imports, a damaged
    file) never blocks the queue: it is moved to the dead-letter area, kept as it was, and
    the `get` or `claim` that met it raises `UnloadableValueError` or `CorruptFileError`
    naming where it now is; the next call returns the next item. `dead_letters` lists
    them, `requeue_dead` puts one back.

    Guarantees: when `put` returns, the item is in the queue, atomically and (with
    ``durability="durable"``, the default) durably; likewise for the removal by `get` and
    by `Claim.ack`. FIFO across processes and restarts (given-back items come first).

    Values are pickled by default (as iodict does): **only open directories you trust**.
    The format is recorded in the directory by the first write; reopening without
    ``format=`` uses it.

    Args:
        path: the queue directory; created by the first `put` if missing. Opening and
            reading write nothing, so a queue on read-only media can be inspected.
        lock: a lock object or factory (iodict's argument), taken around every change in
            addition to the queue's own file lock.
        semaphore: accepted for compatibility with iodict and not used: blocking is
            driven by the queue's own state, which also sees other processes' puts.
        maxsize: ``put`` blocks while this many items wait; 0 is unbounded.
        format: ``"pickle"`` (the default for a new queue), ``"json"``, or any format
            persistkit-core accepts; for an existing queue None means "as recorded".
        durability: ``"durable"`` or ``"atomic"`` (no fsync: safe against a process crash
            only).
        lease: seconds a `claim` lasts before its item may be delivered again
            (`Claim.renew` extends it). A claim of a process that died ends at once.
        max_tries: deliveries by `claim` an item gets before it is dead-lettered.

    Raises:
        StorePathError: ``path`` exists and is not a directory.
        LayoutError: ``format`` contradicts the one the queue recorded.

    Example:
        >>> q = DurableQueue("/tmp/jobs")  # doctest: +SKIP
        >>> q.put("test")  # doctest: +SKIP
        >>> with q.claim() as job:  # doctest: +SKIP
        ...     print(job.item)
        test
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
        lease: float = 300.0,
        max_tries: int = 5,
    ) -> None:
        del semaphore
        check_durability(durability)
        if maxsize < 0:
            raise InvalidArgumentError("maxsize must be 0 (unbounded) or positive")
        if not isinstance(max_tries, int) or max_tries < 1:
            raise InvalidArgumentError(f"max_tries must be an int >= 1, not {max_tries!r}")
        directory = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if os.path.lexists(directory) and not os.path.isdir(directory):
            raise StorePathError(20, "the store path exists and is not a directory", directory)
        self._directory = directory
        self._items = os.path.join(directory, ITEMS_NAME)
        self._leases_dir = os.path.join(directory, LEASES_NAME)
        self._dead = os.path.join(directory, DEAD_NAME)
        self._durability: Any = durability
        self.maxsize = maxsize
        self.lease = _check_seconds("lease", lease)
        self.max_tries = max_tries
        self._markers = Markers(directory)
        self._lock = StoreLock(os.path.join(directory, LOCK_NAME), resolve_user_lock(lock))
        self._format = format
        stored = read_queue_format(directory)
        self._codec: Codec = resolve_recorded_format(format, stored, directory)
        self._format_recorded = stored is not None
        self._legacy_pending = find_legacy_items(directory)
        self._legacy_map: dict[int, str] = {}
        self._legacy_signature: tuple[int, int, int] | None = None
        self._set_up = False
        self._leases: dict[int, Lease] = {}
        self._leases_listed = -math.inf
        self._next_deadline_ms = math.inf
        self._tidied_at = -1
        self._closed = False
        self._changed = threading.Condition()

    @property
    def path(self) -> str:
        """The absolute path of the queue directory."""
        return self._directory

    # -- setting up --------------------------------------------------------------------

    def _item_numbers(self) -> list[int]:
        try:
            names = os.listdir(self._items)
        except FileNotFoundError:
            return []
        return [n for n in map(parse_item_name, names) if n is not None]

    def _ensure_set_up(self, *, create: bool) -> bool:
        """Make sure markers and format record exist; the caller holds the write lock.

        Returns:
            False when ``create`` is False and there is nothing here to deliver, in which
            case nothing was written.
        """
        if not self._set_up:
            found = self._markers.scan()
            numbers: list[int] = []
            if not all(found[kind] for kind in KINDS) or found[OLD_DONE_KIND]:
                numbers = self._item_numbers()
                if not (create or numbers or self._legacy_pending or any(found.values())):
                    return False
            make_dirs(self._items, durability=self._durability)
            make_dirs(self._leases_dir, durability=self._durability)
            self._fix_markers(found, numbers)
            self._record_format()
            sweep(self._directory)
            self._set_up = True
        if self._legacy_pending:
            self._adopt_legacy()
        return True

    def _fix_markers(self, found: dict[str, list[int]], numbers: list[int]) -> None:
        """Leave exactly one marker of each kind (the highest), creating missing ones.

        A persistkit 0.1 queue's ``done`` marker becomes ``taken`` (head - done): the
        ``taken`` marker is created first, so a crash in between leaves both, and then the
        ``done`` marker is the one removed.
        """
        changed = False
        values: dict[str, int] = {}
        for kind in KINDS:
            present = found[kind]
            if present:
                values[kind] = max(present)
                for stale in present:
                    if stale != values[kind]:
                        remove(
                            self._markers.path(kind, stale), durability="atomic", missing_ok=True
                        )
                        changed = True
                self._markers.advance(kind, values[kind], values[kind], "atomic")
                continue
            if kind == "head":
                values[kind] = min(numbers, default=0)
            elif kind == "tail":
                values[kind] = max(numbers, default=values["head"] - 1) + 1
            else:
                done = max(found[OLD_DONE_KIND], default=values["head"])
                values[kind] = max(values["head"] - done, 0)
            self._markers.create(kind, values[kind])
            changed = True
        for done in found[OLD_DONE_KIND]:
            remove(self._markers.path(OLD_DONE_KIND, done), durability="atomic", missing_ok=True)
            changed = True
        if changed and self._durability == "durable":
            fsync_dir(self._directory)

    def _record_format(self) -> None:
        """Write the format record if there is none, recognising a 0.1 queue's format."""
        stored = read_queue_format(self._directory)
        if stored is None:
            if self._format is None:
                self._codec = resolve_format(self._guess_format())
            write_queue_format(self._directory, self._codec.name)
        else:
            self._codec = resolve_recorded_format(self._format, stored, self._directory)
        self._format_recorded = True

    def _guess_format(self) -> str:
        head, tail = self._markers.require("head"), self._markers.require("tail")
        for seq in range(head, tail):
            found = self._read_item(seq)
            if found is None:
                continue
            guess = sniff_format(found[1])
            if guess is None:
                raise LayoutError(
                    f"{self._directory!r} was written by persistkit 0.1, which did not record "
                    "its format, and its items are not pickle, JSON or BSON: pass format="
                )
            return guess
        return "pickle"

    def _adopt_legacy(self) -> None:
        """Number the iodict 0.0.8 items found when the queue was opened, at the tail."""
        if self._codec.name != "pickle":
            raise LayoutError(
                f"{self._directory!r} holds items of iodict 0.0.8, which are pickles, but the "
                f"queue's format is {self._codec.name!r}"
            )
        tail = self._markers.require("tail")
        mapping = {
            seq: name
            for seq, name in read_legacy_map(self._directory).items()
            if seq < tail and os.path.lexists(os.path.join(self._directory, name))
        }
        known = set(mapping.values())
        names = [
            name
            for name in self._legacy_pending
            if name not in known and os.path.lexists(os.path.join(self._directory, name))
        ]
        self._legacy_pending = []
        if not names:
            return
        for offset, name in enumerate(names):
            # Files at or past the tail are what killed puts left: never delivered.
            remove(self._item_path(tail + offset), durability="atomic", missing_ok=True)
            mapping[tail + offset] = name
        # Recorded durably before the tail counts them: a crash in between only leaves a
        # record of numbers past the tail, which the next adoption replaces.
        write_legacy_map(self._directory, mapping)
        self._markers.advance("tail", tail, tail + len(names), self._durability)
        self._legacy_map = mapping
        self._legacy_signature = self._map_signature()

    # -- items -------------------------------------------------------------------------

    def _item_path(self, seq: int) -> str:
        return os.path.join(self._items, item_name(seq))

    def _map_signature(self) -> tuple[int, int, int] | None:
        try:
            info = os.stat(os.path.join(self._directory, LEGACY_MAP_NAME))
        except FileNotFoundError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _legacy_path(self, seq: int) -> str | None:
        """Where item ``seq`` is if it is an adopted iodict 0.0.8 item, else None."""
        signature = self._map_signature()
        if signature != self._legacy_signature:
            self._legacy_map = read_legacy_map(self._directory) if signature else {}
            self._legacy_signature = signature
        name = self._legacy_map.get(seq)
        return None if name is None else os.path.join(self._directory, name)

    def _read_item(self, seq: int) -> tuple[str, bytes] | None:
        """Return the path and content of item ``seq``, or None if there is no such file."""
        path = self._item_path(seq)
        try:
            fd = open_item(path)
        except NotAnItemError:
            legacy = self._legacy_path(seq)
            if legacy is None:
                return None
            path = legacy
            try:
                fd = open_item(path)
            except NotAnItemError:
                return None
        with os.fdopen(fd, "rb") as f:
            return path, f.read()

    def _locate(self, seq: int) -> str | None:
        path = self._item_path(seq)
        if os.path.lexists(path):
            return path
        legacy = self._legacy_path(seq)
        return legacy if legacy is not None and os.path.lexists(legacy) else None

    # -- leases ------------------------------------------------------------------------

    def _returned_leases(self, now_ms: int, *, force: bool) -> list[Lease]:
        """Leases whose item may be delivered again, lowest number first (lock held)."""
        if (
            force
            or now_ms >= self._next_deadline_ms
            or time.monotonic() - self._leases_listed > _LEASE_RESCAN
        ):
            self._leases = list_leases(self._leases_dir)
            self._leases_listed = time.monotonic()
            self._next_deadline_ms = min(
                (lease.deadline_ms for lease in self._leases.values()), default=math.inf
            )
        alive: dict[str, bool | None] = {}
        return sorted(
            (lease for lease in self._leases.values() if lease.returned(now_ms, alive)),
            key=lambda lease: lease.item,
        )

    def _remember_lease(self, lease: Lease) -> None:
        self._leases[lease.item] = lease
        self._next_deadline_ms = min(self._next_deadline_ms, lease.deadline_ms)

    def _new_claim(self, lease: Lease, value: Any) -> Claim[T]:
        return Claim(
            self,
            value,
            id=lease.item,
            tries=lease.tries,
            deadline=lease.deadline_ms / 1000,
            owner=lease.owner,
        )

    def _held_lease(self, claim: Claim[Any]) -> Lease:
        """Return the lease ``claim`` still holds (lock held), or raise `LeaseLostError`."""
        lease = read_lease(self._leases_dir, claim.id)
        if (
            claim.settled
            or lease is None
            or lease.tries != claim.tries
            or lease.owner != claim._owner
        ):
            raise LeaseLostError(lease_path(self._leases_dir, claim.id))
        return lease

    def _drop_lease(self, seq: int) -> None:
        remove(lease_path(self._leases_dir, seq), durability="atomic", missing_ok=True)
        self._leases.pop(seq, None)

    # -- taking ------------------------------------------------------------------------

    def _count_taken(self) -> None:
        taken = self._markers.require("taken")
        self._markers.advance("taken", taken, taken + 1, "atomic")

    def _bury(
        self,
        seq: int,
        path: str,
        *,
        reason: str,
        error: str,
        tries: int,
        head_from: int | None = None,
    ) -> str:
        """Move item ``seq`` to the dead-letter area and let go of it (lock held).

        The item is moved durably first; only then does the head (``head_from``) or its
        lease let go of it, so it is never in neither place. A crash in between leaves a
        hole where it was (skipped) or a lease without an item (dropped).
        """
        target = bury(
            self._dead,
            seq,
            path,
            reason=reason,
            error=error,
            tries=tries,
            durability=self._durability,
        )
        if head_from is not None:
            self._markers.advance("head", head_from, seq + 1, self._durability)
        else:
            self._drop_lease(seq)
            if self._durability == "durable":
                fsync_dir(self._leases_dir)
        return target

    def _decode(
        self, seq: int, path: str, data: bytes, tries: int, head_from: int | None = None
    ) -> Any:
        """Decode an item; one that cannot be decoded is buried and its error raised."""
        try:
            return self._codec.decode(data, path)
        except _UNDECODABLE as error:
            target = self._bury(
                seq,
                path,
                reason=error.reason,
                error=type(error).__name__,
                tries=tries,
                head_from=head_from,
            )
            raise type(error)(
                target,
                f"{error.reason} (item {seq} was moved to the dead-letter area; "
                f"DurableQueue.requeue_dead({seq}) puts it back)",
            ) from error

    def _settle(self, seq: int, *, taken: bool) -> None:
        """Remove a leased item for good: the lease first (the commit), then the file.

        Args:
            seq: the item.
            taken: it goes to a `get` (counted until `task_done`) rather than to an ack.
        """
        path = self._locate(seq)
        self._drop_lease(seq)
        if self._durability == "durable":
            fsync_dir(self._leases_dir)
        if taken:
            self._count_taken()
            if self._durability == "durable":
                fsync_dir(self._directory)
        if path is not None:
            remove(path, durability="atomic", missing_ok=True)

    def _take_returned(self, lease: Lease, now_ms: int, lease_ms: int | None) -> Any:
        """Deliver the item of a returned lease, or return `_NOTHING` (lock held)."""
        current = read_lease(self._leases_dir, lease.item)
        if current is None:
            self._leases.pop(lease.item, None)
            return _NOTHING
        self._leases[lease.item] = current
        if not current.returned(now_ms, {}):
            return _NOTHING
        found = self._read_item(current.item)
        if found is None:  # acknowledged just before a crash: only the lease was left
            self._drop_lease(current.item)
            return _NOTHING
        path, data = found
        if current.tries >= self.max_tries:
            self._bury(
                current.item,
                path,
                reason=f"delivered {current.tries} times by claim() without an ack",
                error="",
                tries=current.tries,
            )
            return _NOTHING
        value = self._decode(current.item, path, data, current.tries)
        if lease_ms is None:
            self._settle(current.item, taken=True)
            return value
        renewed = Lease(current.item, current.tries + 1, now_ms + lease_ms, current_owner())
        write_lease(self._leases_dir, renewed, new=False)
        self._remember_lease(renewed)
        return self._new_claim(renewed, value)

    def _take_head(self, now_ms: int, lease_ms: int | None) -> Any:
        """Deliver the item at the head, or return `_NOTHING` (lock held)."""
        head, tail = self._markers.require("head"), self._markers.require("tail")
        start = head
        while head < tail:
            # An item can have a lease at the head only after a crash inside claim().
            if os.path.lexists(lease_path(self._leases_dir, head)):
                head += 1
                continue
            found = self._read_item(head)
            if found is None:  # a hole: only power loss in the middle of put_many leaves one
                head += 1
                continue
            path, data = found
            value = self._decode(head, path, data, 0, head_from=start)
            if lease_ms is None:
                self._markers.advance("head", start, head + 1, "atomic")
                self._count_taken()
                if self._durability == "durable":
                    fsync_dir(self._directory)
                remove(path, durability="atomic", missing_ok=True)
                return value
            lease = Lease(head, 1, now_ms + lease_ms, current_owner())
            write_lease(self._leases_dir, lease, new=True)
            if self._durability == "durable":
                fsync_dir(self._leases_dir)
            self._markers.advance("head", start, head + 1, "atomic")
            self._remember_lease(lease)
            return self._new_claim(lease, value)
        if head != start:
            self._markers.advance("head", start, head, "atomic")
        return _NOTHING

    def _take(self, lease_ms: int | None) -> Any:
        """Deliver the next item (a value, or a `Claim` with ``lease_ms``) or `_NOTHING`."""
        if not self._set_up and not os.path.isdir(self._directory):
            return _NOTHING
        with self._lock:
            if not self._ensure_set_up(create=False):
                return _NOTHING
            now_ms = _now_ms()
            for force in (False, True):
                for lease in self._returned_leases(now_ms, force=force):
                    taken = self._take_returned(lease, now_ms, lease_ms)
                    if taken is not _NOTHING:
                        return taken
                taken = self._take_head(now_ms, lease_ms)
                if taken is not _NOTHING:
                    return taken
            self._tidy()
            return _NOTHING

    def _tidy(self) -> None:
        """Remove what killed processes left, once the queue is found empty (lock held).

        Item files outside [head, tail) without a lease were left by a process killed
        inside ``put`` (at or past the tail: never acknowledged) or ``get`` (below the
        head: already delivered). An empty queue's item directory holds only such files,
        so listing it then is cheap.
        """
        head, tail = self._markers.require("head"), self._markers.require("tail")
        if head != tail or self._tidied_at == head:
            return
        leased = set(self._leases)
        for number in self._item_numbers():
            if number not in leased and not head <= number < tail:
                remove(self._item_path(number), durability="atomic", missing_ok=True)
        sweep(self._items)
        mapping = read_legacy_map(self._directory)
        if mapping:
            for seq, name in mapping.items():
                if seq not in leased:
                    remove(
                        os.path.join(self._directory, name), durability="atomic", missing_ok=True
                    )
            still_leased = {seq: name for seq, name in mapping.items() if seq in leased}
            if still_leased:
                write_legacy_map(self._directory, still_leased)
            else:
                remove(os.path.join(self._directory, LEGACY_MAP_NAME), durability="atomic")
        self._tidied_at = head

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

    def _wait_for(self, lease_ms: int | None, block: bool, timeout: float | None) -> Any:
        self._check_open()
        deadline = self._deadline(block, timeout)
        delay = _FIRST_WAIT
        while True:
            taken = self._take(lease_ms)
            if taken is not _NOTHING:
                self._notify()
                return taken
            if not block or (deadline is not None and time.monotonic() >= deadline):
                raise queue.Empty
            delay = self._wait(deadline, delay)

    # -- putting -----------------------------------------------------------------------

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        """Append ``item``; atomic, and durable with the default durability.

        Blocks only when ``maxsize`` is set and the queue is full.

        Raises:
            queue.Full: the queue stayed full (``block=False``, or ``timeout`` ran out).
            SerializationError: ``item`` cannot be encoded; the queue is unchanged.
        """
        self._put([item], block, timeout)

    def put_nowait(self, item: T) -> None:
        """Append ``item`` without blocking (`queue.Full` if full)."""
        self.put(item, block=False)

    def put_many(self, items: Iterable[T]) -> None:
        """Append several items with one group commit (one flush, one directory fsync).

        All items are encoded first: one that cannot be encoded raises before anything is
        written. ``maxsize`` is not enforced here. When it returns all items are in the
        queue in order; a process killed midway puts none of them.
        """
        self._put(list(items), block=True, timeout=None, bounded=False)

    def _put(
        self, items: list[Any], block: bool, timeout: float | None, *, bounded: bool = True
    ) -> None:
        self._check_open()
        codec = self._codec
        payloads = [codec.dumps(item) for item in items]
        if not payloads:
            return
        deadline = self._deadline(block, timeout)
        delay = _FIRST_WAIT
        if not self._set_up:
            make_dirs(self._directory, durability=self._durability)
        while True:
            with self._lock:
                self._ensure_set_up(create=True)
                if self._codec is not codec:  # another process recorded the format first
                    codec = self._codec
                    payloads = [codec.dumps(item) for item in items]
                head, tail = self._markers.require("head"), self._markers.require("tail")
                if not bounded or not self.maxsize or tail - head < self.maxsize:
                    with Batch(durability=self._durability) as batch:
                        for offset, payload in enumerate(payloads):
                            batch.write_bytes(
                                self._item_path(tail + offset), payload, follow_symlinks=False
                            )
                    # The items are published (and durable) before the tail moves past
                    # them: the tail never counts an item that is not there.
                    self._markers.advance("tail", tail, tail + len(payloads), self._durability)
                    break
            if not block or (deadline is not None and time.monotonic() >= deadline):
                raise queue.Full
            delay = self._wait(deadline, delay)
        self._notify()

    # -- getting -----------------------------------------------------------------------

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        """Remove and return the oldest item (at most once: see `claim` for at least once).

        Args:
            block: wait for an item when the queue is empty.
            timeout: with ``block``, wait at most this many seconds (None: forever).

        Returns:
            The item. When it returns, its removal is durable (default durability).

        Raises:
            queue.Empty: no item arrived in time (or at once, with ``block=False``).
            UnloadableValueError: the next item names a class that does not import; it
                was moved to the dead-letter area (the error's ``path``).
            CorruptFileError: the next item is damaged; likewise moved aside.
            ValueError: ``timeout`` is negative.
        """
        value: T = self._wait_for(None, block, timeout)
        return value

    def get_nowait(self) -> T:
        """Remove and return the oldest item, or raise `queue.Empty` at once."""
        return self.get(block=False)

    def claim(
        self, block: bool = True, timeout: float | None = None, *, lease: float | None = None
    ) -> Claim[T]:
        """Take the oldest item under a lease, to be acknowledged when it is done.

        Items given back (nacked, or whose lease ran out, or whose consumer died) come
        first, then the head of the queue. Settle the returned `Claim` with `Claim.ack`
        (or use it as a context manager, which acks on success and nacks on an error).

        Args:
            block: wait for an item when the queue is empty.
            timeout: with ``block``, wait at most this many seconds (None: forever).
            lease: seconds this claim lasts (default: the queue's ``lease``).

        Returns:
            The claim; ``claim.item`` is the value. When it returns the lease is durable:
            whatever happens to this process, the item is delivered again until acked.

        Raises:
            queue.Empty: no item arrived in time.
            UnloadableValueError, CorruptFileError: as for `get` (the item was moved to
                the dead-letter area).
        """
        seconds = self.lease if lease is None else _check_seconds("lease", lease)
        taken: Claim[T] = self._wait_for(math.ceil(seconds * 1000), block, timeout)
        return taken

    def getter(self) -> Iterator[T]:
        """Yield items until the queue is empty (each removed as it is yielded, by `get`).

        Example:
            >>> for job in q.getter():  # doctest: +SKIP
            ...     run(job)
        """
        while True:
            try:
                yield self.get_nowait()
            except queue.Empty:
                return

    # -- settling claims (called by Claim) ---------------------------------------------

    def _ack(self, claim: Claim[Any]) -> None:
        with self._lock:
            self._held_lease(claim)
            self._settle(claim.id, taken=False)
        self._notify()

    def _nack(self, claim: Claim[Any], delay: float, count_try: bool) -> None:
        delay_ms = math.ceil(_check_seconds("delay", delay) * 1000)
        with self._lock:
            held = self._held_lease(claim)
            tries = held.tries if count_try else held.tries - 1
            path = self._locate(claim.id)
            if tries >= self.max_tries and path is not None:
                self._bury(
                    claim.id,
                    path,
                    reason=f"given back {tries} times by claim() consumers",
                    error="",
                    tries=tries,
                )
            else:
                given_back = Lease(claim.id, tries, _now_ms() + delay_ms, "")
                write_lease(self._leases_dir, given_back, new=False)
                self._remember_lease(given_back)
        self._notify()

    def _dead_letter(self, claim: Claim[Any], reason: str) -> None:
        with self._lock:
            held = self._held_lease(claim)
            path = self._locate(claim.id)
            if path is None:
                self._settle(claim.id, taken=False)
            else:
                self._bury(claim.id, path, reason=reason, error="", tries=held.tries)
        self._notify()

    def _renew(self, claim: Claim[Any], lease: float | None) -> None:
        seconds = self.lease if lease is None else _check_seconds("lease", lease)
        with self._lock:
            held = self._held_lease(claim)
            renewed = Lease(claim.id, held.tries, _now_ms() + math.ceil(seconds * 1000), held.owner)
            write_lease(self._leases_dir, renewed, new=False)
            self._remember_lease(renewed)
        claim.deadline = renewed.deadline_ms / 1000

    # -- FlushQueue --------------------------------------------------------------------

    def _drain_into(self, put: Callable[[Any], object]) -> int:
        """Hand every waiting item to ``put`` in order, then remove them; return how many.

        The items leave the disk only after ``put`` accepted every one of them. Items that
        cannot be decoded are moved to the dead-letter area, and the first such error is
        raised once the others are in.
        """
        self._check_open()
        if not self._set_up and not os.path.isdir(self._directory):
            return 0
        with self._lock:
            if not self._ensure_set_up(create=False):
                return 0
            head, tail = self._markers.require("head"), self._markers.require("tail")
            present: list[tuple[str, Any]] = []
            undecodable: list[tuple[int, str, CorruptFileError | UnloadableValueError]] = []
            for seq in range(head, tail):
                if os.path.lexists(lease_path(self._leases_dir, seq)):
                    continue
                found = self._read_item(seq)
                if found is None:
                    continue
                path, data = found
                try:
                    present.append((path, self._codec.decode(data, path)))
                except _UNDECODABLE as error:
                    undecodable.append((seq, path, error))
            for _, value in present:
                put(value)
            first_error: Exception | None = None
            for seq, path, failure in undecodable:
                self._bury(seq, path, reason=failure.reason, error=type(failure).__name__, tries=0)
                if first_error is None:
                    first_error = type(failure)(
                        dead_path(self._dead, seq),
                        f"{failure.reason} (item {seq} was moved to the dead-letter area)",
                    )
            # Items handed back to memory are no longer tasks of this queue: moving the
            # head past them is all it takes.
            self._markers.advance("head", head, tail, self._durability)
            for path, _ in present:
                remove(path, durability="atomic", missing_ok=True)
        self._notify()
        if first_error is not None:
            raise first_error
        return len(present)

    # -- dead letters ------------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        """Return the items in the dead-letter area, lowest id first (reads only)."""
        with self._read_lock():
            return list_dead(self._dead)

    def requeue_dead(self, item: int | DeadLetter) -> int:
        """Put a dead letter back at the tail of the queue, with its try count reset.

        Guarantees when it returns: the item waits in the queue (durably, by default) and
        is gone from the dead-letter area. A power cut during the call can leave it in
        both places.

        Args:
            item: the dead letter, or its id.

        Returns:
            The item's new id in the queue.

        Raises:
            FileNotFoundError: there is no such dead letter.
        """
        self._check_open()
        seq = item.id if isinstance(item, DeadLetter) else int(item)
        source = dead_path(self._dead, seq)
        if not os.path.isfile(source):
            raise FileNotFoundError(2, "no such dead letter", source)
        with self._lock:
            self._ensure_set_up(create=True)
            tail = self._markers.require("tail")
            remove(self._item_path(tail), durability="atomic", missing_ok=True)
            # The tail moves first: a crash before the rename leaves a hole (skipped) and
            # the dead letter where it was, never an item that nothing counts.
            self._markers.advance("tail", tail, tail + 1, self._durability)
            rename(source, self._item_path(tail), overwrite=False, durability=self._durability)
            remove(reason_path(self._dead, seq), durability="atomic", missing_ok=True)
        self._notify()
        return tail

    def discard_dead(self, item: int | DeadLetter) -> None:
        """Delete a dead letter for good (durably, by default).

        Raises:
            FileNotFoundError: there is no such dead letter.
        """
        self._check_open()
        seq = item.id if isinstance(item, DeadLetter) else int(item)
        with self._lock:
            remove(dead_path(self._dead, seq), durability=self._durability)
            remove(reason_path(self._dead, seq), durability="atomic", missing_ok=True)

    # -- sizes and tasks ---------------------------------------------------------------

    def _read_lock(self) -> FileLock:
        # Shared, and never created: reading works on read-only media and writes nothing.
        return FileLock.for_path(
            os.path.join(self._directory, LOCK_NAME), shared=True, create=False
        )

    def _counters(self) -> tuple[int, int, int]:
        """Return head, tail and taken as they are, or as a setting up would make them."""
        head, tail, taken = (self._markers.get(kind) for kind in KINDS)
        if head is None or tail is None or taken is None:
            numbers = self._item_numbers()
            head = min(numbers, default=0) if head is None else head
            tail = max(numbers, default=head - 1) + 1 if tail is None else tail
            if taken is None:
                done = self._markers.get(OLD_DONE_KIND)
                taken = max(head - (head if done is None else done), 0)
        return head, tail, taken

    def _unadopted_legacy(self, tail: int) -> int:
        if not self._legacy_pending:
            return 0
        adopted = {name for seq, name in read_legacy_map(self._directory).items() if seq < tail}
        return sum(
            1
            for name in self._legacy_pending
            if name not in adopted and os.path.lexists(os.path.join(self._directory, name))
        )

    def _count(self) -> tuple[int, int]:
        """Return the items waiting and the unfinished tasks (reader lock held)."""
        head, tail, taken = self._counters()
        now_ms = _now_ms()
        alive: dict[str, bool | None] = {}
        waiting = tail - head
        leases = list_leases(self._leases_dir)
        for lease in leases.values():
            if head <= lease.item < tail:
                waiting -= 1  # leased by a claim that died before moving the head
            if lease.returned(now_ms, alive) and self._locate(lease.item) is not None:
                waiting += 1
        legacy = self._unadopted_legacy(tail)
        waiting = max(waiting, 0) + legacy
        return waiting, max(tail - head, 0) + taken + legacy + sum(
            1 for lease in leases.values() if not head <= lease.item < tail
        )

    def qsize(self) -> int:
        """Return the number of items waiting to be delivered (reads only).

        Items leased by `claim` are not counted until they are given back.
        """
        if not os.path.isdir(self._directory):
            return 0
        with self._read_lock():
            return self._count()[0]

    def empty(self) -> bool:
        """Return True if no item waits to be delivered."""
        return self.qsize() == 0

    def full(self) -> bool:
        """Return True if ``maxsize`` is set and reached."""
        return bool(self.maxsize) and self.qsize() >= self.maxsize

    @property
    def unfinished_tasks(self) -> int:
        """The tasks not finished yet (reads only).

        Items waiting, items claimed and not settled, and items taken by `get` and not
        yet marked with `task_done`.
        """
        if not os.path.isdir(self._directory):
            return 0
        with self._read_lock():
            return self._count()[1]

    def task_done(self) -> None:
        """Tell the queue that one item taken by `get` has been processed.

        The count is kept in the queue directory, so `join` in one process waits for
        ``task_done`` calls made in others (and across restarts: a consumer killed between
        ``get`` and ``task_done`` leaves the count raised). An item taken by `claim` is
        finished by `Claim.ack`: do not call this for it.

        Raises:
            ValueError: called more times than `get` returned items.
        """
        self._check_open()
        if not self._set_up and not os.path.isdir(self._directory):
            raise ValueError("task_done() called too many times")
        with self._lock:
            if not self._ensure_set_up(create=False):
                raise ValueError("task_done() called too many times")
            taken = self._markers.require("taken")
            if taken <= 0:
                raise ValueError("task_done() called too many times")
            self._markers.advance("taken", taken, taken - 1, self._durability)
        self._notify()

    def join(self, timeout: float | None = None) -> None:
        """Block until every item put has been finished (`task_done` or `Claim.ack`).

        Args:
            timeout: give up after this many seconds (an extension; `queue.Queue.join`
                has none).

        Raises:
            TimeoutError: ``timeout`` ran out first.
        """
        self._check_open()
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = _FIRST_WAIT
        while self.unfinished_tasks:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError("unfinished tasks remain")
            delay = self._wait(deadline, delay)

    def close(self) -> None:
        """Stop using this queue object; later calls raise `QueueClosedError`.

        The items stay on disk for the next opener. iodict 0.0.8's ``close`` deleted every
        item and the directory; delete the directory yourself if that is what you want.
        """
        self._closed = True

    def __enter__(self) -> DurableQueue[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
