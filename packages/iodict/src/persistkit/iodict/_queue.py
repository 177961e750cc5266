"""DurableQueue: a FIFO queue on a directory, shared by any number of processes.

The commit protocol. Every change is one record appended to the queue's journal (core's
`Journal`) while its lock is held, after catching up with the records other processes
appended, so every decision (which item is the head, who holds a lease) is made on the
whole state: each item goes to one consumer. The lock is then released and the record
flushed: one ``fdatasync``, shared with every producer and consumer flushing at the same
time (group commit). Only then are files the record made useless removed (write-ahead).

- ``put``: one record with the items (``put_many``: one record with all of them).
- ``get``: the record says the item was taken; then its file, if it has one, is removed.
- ``claim``: the record is the lease; ``ack``: the record says the item is finished.
- an item that cannot be decoded is moved to the dead-letter area (durably), then a record
  says so.

The files are the last checkpoint: when the journal holds about 512 KiB, the process that
notices writes the state the records reached (items still waiting, in one segment file;
leases; counters) into the files, durably, and lets the journal start again empty.
"""

from __future__ import annotations

import contextlib
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from persistkit.core import (
    Codec,
    CorruptFileError,
    DirectoryWatch,
    Durability,
    InvalidArgumentError,
    Journal,
    UnloadableValueError,
    check_durability,
    make_dirs,
    remove,
)
from persistkit.iodict._claim import Claim
from persistkit.iodict._dead_letters import DeadLetter, bury, dead_path, list_dead, reason_path
from persistkit.iodict._directory import LockLike, refuse_object_location, resolve_user_lock
from persistkit.iodict._formats import resolve_recorded_format
from persistkit.iodict._leases import Lease, lease_path
from persistkit.iodict._legacy_queue import find_legacy_items
from persistkit.iodict._owners import current_owner, owner_alive, owner_gone
from persistkit.iodict._queue_files import Found, QueueFiles
from persistkit.iodict._queue_meta import read_queue_format
from persistkit.iodict._queue_names import DEAD_NAME, JOURNAL_NAME
from persistkit.iodict._queue_state import (
    QueueState,
    ack_record,
    adopt_record,
    dead_record,
    head_record,
    lease_record,
    put_record,
    take_record,
    task_done_record,
)
from persistkit.iodict.errors import LayoutError, LeaseLostError, QueueClosedError, StorePathError

T = TypeVar("T")

# A checkpoint once the journal holds this much; the journal is made twice as large, so it
# rarely needs to grow in between.
_CHECKPOINT_BYTES = 512 << 10
_JOURNAL_SIZE = 1 << 20
# How long a "this process is alive" answer is trusted; "dead" is final.
_ALIVE_FOR = 0.5
# A waiting consumer looks again this often while other processes hold leases: a lease
# whose holder dies ends without any change in the folder to wake it.
_LEASE_RECHECK = 1.0
_UNDECODABLE = (CorruptFileError, UnloadableValueError)


def _now_ms() -> int:
    return math.floor(time.time() * 1000)


def _replay_from(covered: int | None, journal: Journal) -> int:
    """Where replay starts: after what the checkpoint covers, or at the journal's start.

    The checkpoint's position is past the start when a crash came between writing the
    state file and recycling the journal: the records in between are in the files already.
    """
    if covered is None or not journal.start <= covered <= journal.end:
        return journal.start
    return covered


def _check_seconds(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise InvalidArgumentError(f"{name} must be a number of seconds >= 0, not {value!r}")
    return float(value)


@dataclass
class _Done:
    """What an operation decided under the lock, to finish after it.

    Attributes:
        end: flush the journal up to here (None: nothing to flush).
        remove: files that left the queue, removed once the flush returned.
        result: what the operation returns.
        error: what it raises instead (after the flush: the move it reports is durable).
    """

    end: int | None = None
    remove: list[str] = field(default_factory=list)
    result: Any = None
    error: Exception | None = None
    found: bool = True


_NOTHING = _Done(found=False)


@dataclass(frozen=True, slots=True)
class QueueSummary:
    """A queue at one moment, as ``persistkit iodict`` shows it.

    Attributes:
        waiting: items `get` or `claim` would deliver (what `DurableQueue.qsize` returns).
        unfinished: tasks not finished (`DurableQueue.unfinished_tasks`).
        head: the number of the oldest item still in the queue.
        tail: the number the next put gets.
        leases_held: items delivered by `claim` whose lease is live.
        leases_returned: leases whose holder died or whose deadline passed: those items
            are delivered again.
        dead: items in the dead-letter area.
        format: the value format's name.
    """

    waiting: int
    unfinished: int
    head: int
    tail: int
    leases_held: int
    leases_returned: int
    dead: int
    format: str


class DurableQueue(Generic[T]):
    """A FIFO queue kept in a directory, with the `queue.Queue` API and acknowledged gets.

    Any number of processes, related or not, may put, get and claim on one directory at
    once; the queue outlives them, and reopening the directory continues where it stopped.
    A durable ``put``, ``get``, ``claim`` or ``ack`` costs one flush of the queue's journal,
    shared with every process flushing at the same moment, and the same at any depth (no
    directory scan: iodict 0.0.8 scanned and sorted the whole directory on every get).

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
            addition to the queue's own lock.
        semaphore: accepted for compatibility with iodict and not used: blocking is
            driven by the queue's own state, which also sees other processes' puts.
        maxsize: ``put`` blocks while this many items wait; 0 is unbounded.
        format: ``"pickle"`` (the default for a new queue), ``"json"``, or any format
            persistkit-core accepts; for an existing queue None means "as recorded".
        durability: ``"durable"`` or ``"atomic"`` (no flush: safe against a process crash
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
        refuse_object_location(path, "DurableQueue")  # docs/iodict.md says why, for now
        directory = os.path.abspath(os.path.expanduser(os.fspath(path)))
        if os.path.lexists(directory) and not os.path.isdir(directory):
            raise StorePathError(20, "the store path exists and is not a directory", directory)
        self._directory = directory
        self._durability = cast(Durability, durability)  # checked just above
        self.maxsize = maxsize
        self.lease = _check_seconds("lease", lease)
        self.max_tries = max_tries
        self._files = QueueFiles(directory, self._durability)
        self._dead = os.path.join(directory, DEAD_NAME)
        self._journal_path = os.path.join(directory, JOURNAL_NAME)
        self._user_lock: LockLike | None = resolve_user_lock(lock)
        self._format = format
        self._codec: Codec = resolve_recorded_format(
            format, read_queue_format(directory), directory
        )
        self._legacy_pending = find_legacy_items(directory)
        self._journal: Journal | None = None
        self._reader: Journal | None = None
        self._set_up = False
        self._state = QueueState()
        self._seen = -1
        self._alive: dict[str, tuple[bool | None, float]] = {}
        self._tidied_at = -1
        # One watch per thread: a watch is for one waiter (its events are consumed by it).
        self._watches = threading.local()
        self._closed = False

    @property
    def path(self) -> str:
        """The absolute path of the queue directory."""
        return self._directory

    # -- the journal and the state -----------------------------------------------------

    def _open_journal(self, *, create: bool) -> bool:
        """Open the journal for writing; False when there is no queue and ``create`` is not set.

        Called without the lock. A queue without a journal (new, or written by persistkit
        0.1 or iodict 0.0.8) gets one only when it is created or has something to deliver,
        so a `get` on an empty folder writes nothing.
        """
        if self._journal is not None:
            return True
        if not os.path.exists(self._journal_path) and not create:
            if not os.path.isdir(self._directory):
                return False
            counters = self._files.counters()
            waiting = counters is not None and counters[0] < counters[1]
            if not (waiting or self._legacy_pending or self._files.load()[0].leases):
                return False
        make_dirs(self._directory, durability=self._durability)
        self._journal = Journal(self._journal_path, size=_JOURNAL_SIZE)
        return True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[QueueState]:
        """Hold the user's lock and the journal's, with the state caught up."""
        journal = self._journal
        assert journal is not None
        with self._lock_journal(journal):
            yield self._caught_up(journal)

    @contextlib.contextmanager
    def _lock_journal(self, journal: Journal) -> Iterator[None]:
        """Hold the user's lock and the journal's (the state may be behind)."""
        user_lock = self._user_lock if self._user_lock is not None else contextlib.nullcontext()
        with user_lock, journal.lock():
            yield

    def _caught_up(self, journal: Journal) -> QueueState:
        """Set the queue up if needed and return its state as of now (the lock is held)."""
        if not self._set_up:
            self._codec = self._files.set_up(self._format, self._codec, journal.start)
            self._set_up = True
        self._catch_up(journal)
        if self._legacy_pending:
            self._adopt_legacy()
        return self._state

    def _catch_up(self, journal: Journal) -> None:
        if self._seen < journal.start:  # first use, or another process checkpointed
            self._state, covered = self._files.load()
            self._seen = _replay_from(covered, journal)
        if journal.end == self._seen:  # nobody appended since our last look: no read at all
            return
        for record in journal.records(after=self._seen):
            self._state.apply(record.data, where=journal.path)
            self._seen = record.end

    def _append(self, record: bytes) -> int:
        """Append a record and apply it (the lock is held, the state caught up)."""
        assert self._journal is not None
        end = self._journal.append(record)
        self._state.apply(record)
        self._seen = end
        return end

    def _finish(self, done: _Done) -> Any:
        """After the lock: flush, remove what left, checkpoint if due, then return or raise."""
        journal = self._journal
        assert journal is not None
        if done.end is not None and self._durability == "durable":
            journal.flush(done.end)
        for path in done.remove:
            remove(path, durability="atomic", missing_ok=True)
        if journal.end - journal.start >= _CHECKPOINT_BYTES:
            self._checkpoint(journal, when_due=True)
        if done.error is not None:
            raise done.error
        return done.result

    def checkpoint(self) -> None:
        """Write the queue's state into its files and empty its journal.

        This happens by itself whenever the journal holds about 512 KiB; call it to leave the
        folder with every waiting item in a segment file (nothing pending in the journal) and
        no segment whose items have all left. When it returns the files hold the whole
        state, durably with the default durability.
        """
        self._check_open()
        if not self._open_journal(create=False):
            return
        journal = self._journal
        assert journal is not None
        self._checkpoint(journal, when_due=False)

    def _checkpoint(self, journal: Journal, *, when_due: bool) -> None:
        with self._lock_journal(journal):
            if when_due and journal.end - journal.start < _CHECKPOINT_BYTES:
                # Others saw the journal full too, and one of them checkpointed while this
                # process waited for the lock: catching up only to write again would be
                # wasted, with every producer held up behind the lock.
                return
            state = self._caught_up(journal)
            self._files.checkpoint(state, journal.end)
            journal.recycle(upto=journal.end)
            self._seen = journal.start

    def _adopt_legacy(self) -> None:
        """Number the iodict 0.0.8 items found when the queue was opened (lock held)."""
        state = self._state
        known = set(state.legacy.values())
        names = [
            name
            for name in self._legacy_pending
            if name not in known and os.path.lexists(os.path.join(self._directory, name))
        ]
        if names and self._codec.name != "pickle":
            raise LayoutError(
                f"{self._directory!r} holds items of iodict 0.0.8, which are pickles, but the "
                f"queue's format is {self._codec.name!r}"
            )
        self._legacy_pending = []
        if names:
            # Any later record that is flushed makes this one durable too (the journal
            # keeps a prefix), so it needs no flush of its own.
            self._append(adopt_record(state.tail, names))

    # -- leases ------------------------------------------------------------------------

    def _alive_owner(self, owner: str) -> bool | None:
        known = self._alive.get(owner)
        if known is not None and (known[0] is False or time.monotonic() < known[1]):
            # A process that exited is seen at once; the full check (a zombie, a reused
            # pid) is repeated every _ALIVE_FOR seconds.
            if known[0] and owner_gone(owner):
                self._alive[owner] = (False, 0.0)
                return False
            return known[0]
        answer = owner_alive(owner)
        self._alive[owner] = (answer, time.monotonic() + _ALIVE_FOR)
        return answer

    def _returned(self, lease: Lease, now_ms: int) -> bool:
        if lease.deadline_ms <= now_ms:
            return True
        if not lease.owner:
            return False
        return self._alive_owner(lease.owner) is False

    def _held(self, state: QueueState, claim: Claim[Any]) -> Lease:
        """Return the lease ``claim`` still holds (lock held), or raise `LeaseLostError`."""
        lease = state.leases.get(claim.id)
        if claim.settled or lease is None or lease.tries != claim.tries:
            raise LeaseLostError(lease_path(self._files.leases, claim.id))
        if lease.owner != claim._owner:
            raise LeaseLostError(lease_path(self._files.leases, claim.id))
        return lease

    def _new_claim(self, lease: Lease, value: Any) -> Claim[T]:
        return Claim(
            self,
            value,
            id=lease.item,
            tries=lease.tries,
            deadline=lease.deadline_ms / 1000,
            owner=lease.owner,
        )

    # -- taking ------------------------------------------------------------------------

    def _bury(
        self,
        item: int,
        found: Found,
        *,
        reason: str,
        error: str,
        tries: int,
        head: int,
    ) -> tuple[int, str]:
        """Move ``item`` to the dead-letter area, durably, then record it (lock held)."""
        target = bury(
            self._dead,
            item,
            found.file,
            found.data,
            reason=reason,
            error=error,
            tries=tries,
            durability=self._durability,
        )
        return self._append(dead_record(item, head)), target

    def _decode(self, item: int, found: Found, tries: int, head: int) -> tuple[Any, _Done | None]:
        """Decode an item; one that cannot be decoded is buried and its error returned."""
        source = found.source or self._journal_path
        try:
            if found.damage is not None:
                raise CorruptFileError(source, found.damage)
            return self._codec.decode(found.data, source), None
        except _UNDECODABLE as error:
            end, target = self._bury(
                item,
                found,
                reason=error.reason,
                error=type(error).__name__,
                tries=tries,
                head=head,
            )
            failure = type(error)(
                target,
                f"{error.reason} (item {item} was moved to the dead-letter area; "
                f"DurableQueue.requeue_dead({item}) puts it back)",
            )
            failure.__cause__ = error
            return None, _Done(end=end, error=failure)

    def _deliver(self, state: QueueState, item: int, found: Found, lease_ms: int | None) -> _Done:
        """Hand out ``item``: taken for good by `get`, or leased by `claim` (lock held)."""
        lease = state.leases.get(item)
        tries = lease.tries if lease is not None else 0
        head = item + 1 if lease is None else state.head
        value, failed = self._decode(item, found, tries, head)
        if failed is not None:
            return failed
        if lease_ms is None:
            end = self._append(take_record(item, head, state.taken + 1))
            return _Done(end=end, remove=[found.file] if found.file else [], result=value)
        claimed = Lease(item, tries + 1, _now_ms() + lease_ms, current_owner())
        end = self._append(lease_record(claimed, head))
        return _Done(end=end, result=self._new_claim(claimed, value))

    def _take_returned(self, state: QueueState, lease_ms: int | None) -> _Done:
        now_ms = _now_ms()
        for item in sorted(state.leases):
            lease = state.leases[item]
            if not self._returned(lease, now_ms):
                continue
            found = self._files.payload(state, item)
            if found is None:  # finished just before a crash of persistkit 0.1
                self._append(ack_record(item))
                continue
            if lease.tries >= self.max_tries:
                self._bury(
                    item,
                    found,
                    reason=f"delivered {lease.tries} times by claim() without an ack",
                    error="",
                    tries=lease.tries,
                    head=state.head,
                )
                continue
            return self._deliver(state, item, found, lease_ms)
        return _NOTHING

    def _take_head(self, state: QueueState, lease_ms: int | None) -> _Done:
        head = state.head
        while head < state.tail:
            if head not in state.leases:
                found = self._files.payload(state, head)
                if found is not None:
                    return self._deliver(state, head, found, lease_ms)
            head += 1  # leased (a claim that died mid-way, before 0.2), or a hole
        if head != state.head:
            self._append(head_record(head))
        return _NOTHING

    def _take(self, lease_ms: int | None) -> _Done:
        """Deliver the next item (a value, or a `Claim` with ``lease_ms``) if there is one."""
        if not self._open_journal(create=False):
            return _NOTHING
        with self._locked() as state:
            before = self._seen
            done = self._take_returned(state, lease_ms)
            if not done.found:
                done = self._take_head(state, lease_ms)
            if not done.found:
                if state.head == state.tail and self._tidied_at != state.head:
                    self._files.tidy(state)
                    self._tidied_at = state.head
                if self._seen != before:  # holes skipped, dead letters, stale leases
                    done = _Done(end=self._seen, found=False)
        return done

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosedError("the queue is closed")

    # -- waiting -----------------------------------------------------------------------

    def _watcher(self) -> DirectoryWatch:
        # Made before the first look, so a change right after it still wakes the waiter.
        # Journal appends are writes to a hidden file, hence "changed" and hidden=True. A
        # folder that does not exist yet is polled (waiting must not create it).
        exists = os.path.isdir(self._directory)
        watch: DirectoryWatch | None = getattr(self._watches, "watch", None)
        if watch is None or (watch.kind == "poll" and exists):
            if watch is not None:
                watch.close()
            watch = self._watches.watch = DirectoryWatch(
                self._directory,
                kind="auto" if exists else "poll",
                events=("added", "changed"),
                hidden=True,
            )
        return watch

    def _wait(self, watch: DirectoryWatch, deadline: float | None) -> None:
        timeout = None if deadline is None else max(deadline - time.monotonic(), 0.0)
        if self._state.leases:
            timeout = _LEASE_RECHECK if timeout is None else min(timeout, _LEASE_RECHECK)
        watch.wait(timeout)

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
        watch = self._watcher() if block else None
        while True:
            done = self._take(lease_ms)
            if done.found:
                if watch is not None:
                    watch.found()
                return self._finish(done)
            if done.end is not None:
                self._finish(done)  # holes skipped, poison buried, leases dropped
            if watch is None or (deadline is not None and time.monotonic() >= deadline):
                raise queue.Empty
            self._wait(watch, deadline)

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
        """Append several items as one record: one flush for all of them.

        All items are encoded first: one that cannot be encoded raises before anything is
        written. ``maxsize`` is not enforced here. When it returns all items are in the
        queue in order; after a crash or power cut, either all of them or none are.
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
        self._open_journal(create=True)
        journal = self._journal
        assert journal is not None
        if not self._set_up or self._legacy_pending:
            with self._locked():  # set up, and iodict 0.0.8's items numbered first
                pass
        if self._codec is not codec:  # another process recorded the format first
            codec = self._codec
            payloads = [codec.dumps(item) for item in items]
        record = put_record(payloads)
        if not (bounded and self.maxsize):
            # Items are numbered when the record is applied, so putting reads nothing: one
            # append (the journal's own lock) and the shared flush.
            user_lock = self._user_lock if self._user_lock is not None else contextlib.nullcontext()
            with user_lock:
                end = journal.append(record)
            self._finish(_Done(end=end))
            return
        watch: DirectoryWatch | None = None
        while True:
            with self._locked() as state:
                waiting = state.tail - state.head - state.leased_between(state.head, state.tail)
                if waiting < self.maxsize:
                    end = self._append(record)
                    break
            if not block or (deadline is not None and time.monotonic() >= deadline):
                raise queue.Full
            if watch is None:
                watch = self._watcher()
                continue
            self._wait(watch, deadline)
        self._finish(_Done(end=end))

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
        self._check_open()
        with self._locked() as state:
            self._held(state, claim)
            source = self._files.own_file(state, claim.id)
            end = self._append(ack_record(claim.id))
        self._finish(_Done(end=end, remove=[source] if source else []))

    def _nack(self, claim: Claim[Any], delay: float, count_try: bool) -> None:
        self._check_open()
        delay_ms = math.ceil(_check_seconds("delay", delay) * 1000)
        done = _Done()
        with self._locked() as state:
            held = self._held(state, claim)
            tries = held.tries if count_try else held.tries - 1
            found = self._files.payload(state, claim.id)
            if tries >= self.max_tries and found is not None:
                done.end, _ = self._bury(
                    claim.id,
                    found,
                    reason=f"given back {tries} times by claim() consumers",
                    error="",
                    tries=tries,
                    head=state.head,
                )
            else:
                # Not flushed: after a power cut every lease has ended anyway.
                given_back = Lease(claim.id, tries, _now_ms() + delay_ms, "")
                self._append(lease_record(given_back, state.head))
        self._finish(done)

    def _dead_letter(self, claim: Claim[Any], reason: str) -> None:
        self._check_open()
        done = _Done()
        with self._locked() as state:
            held = self._held(state, claim)
            found = self._files.payload(state, claim.id)
            if found is None:
                done.end = self._append(ack_record(claim.id))
            else:
                done.end, _ = self._bury(
                    claim.id,
                    found,
                    reason=reason,
                    error="",
                    tries=held.tries,
                    head=state.head,
                )
        self._finish(done)

    def _renew(self, claim: Claim[Any], lease: float | None) -> None:
        self._check_open()
        seconds = self.lease if lease is None else _check_seconds("lease", lease)
        with self._locked() as state:
            held = self._held(state, claim)
            deadline = _now_ms() + math.ceil(seconds * 1000)
            renewed = Lease(claim.id, held.tries, deadline, held.owner)
            self._append(lease_record(renewed, state.head))
        claim.deadline = deadline / 1000

    # -- FlushQueue --------------------------------------------------------------------

    def _drain_into(self, put: Callable[[Any], object]) -> int:
        """Hand every waiting item to ``put`` in order, then remove them; return how many.

        The items leave the queue only after ``put`` accepted every one of them. Items that
        cannot be decoded are moved to the dead-letter area, and the first such error is
        raised once the others are in.
        """
        self._check_open()
        if not self._open_journal(create=False):
            return 0
        done = _Done()
        with self._locked() as state:
            values = []
            for item in range(state.head, state.tail):
                found = None if item in state.leases else self._files.payload(state, item)
                if found is None:
                    continue
                value, failed = self._decode(item, found, 0, state.head)
                if failed is not None:
                    done.error = done.error or failed.error
                    continue
                values.append(value)
                if found.file is not None:
                    done.remove.append(found.file)
            for value in values:
                put(value)
            # Items handed back to memory are no longer tasks of this queue: moving the
            # head past them is all it takes.
            done.end = self._append(head_record(state.tail))
            done.result = len(values)
        count: int = self._finish(done)
        return count

    # -- dead letters ------------------------------------------------------------------

    def dead_letters(self) -> list[DeadLetter]:
        """Return the items in the dead-letter area, lowest id first (reads only)."""
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
        number = item.id if isinstance(item, DeadLetter) else int(item)
        source = dead_path(self._dead, number)
        with open(source, "rb") as f:
            data = f.read()
        self._open_journal(create=True)
        with self._locked() as state:
            new_id = state.tail
            end = self._append(put_record([data]))
        self._finish(_Done(end=end, remove=[source, reason_path(self._dead, number)]))
        return new_id

    def discard_dead(self, item: int | DeadLetter) -> None:
        """Delete a dead letter for good (durably, by default).

        Raises:
            FileNotFoundError: there is no such dead letter.
        """
        self._check_open()
        number = item.id if isinstance(item, DeadLetter) else int(item)
        remove(dead_path(self._dead, number), durability=self._durability)
        remove(reason_path(self._dead, number), durability="atomic", missing_ok=True)

    # -- sizes and tasks ---------------------------------------------------------------

    def _counts(self) -> tuple[int, int]:
        """Return the items waiting and the unfinished tasks (reads only)."""
        with self._state_now() as state:
            return self._count(state)

    @contextlib.contextmanager
    def _state_now(self) -> Iterator[QueueState]:
        """Yield the queue's state as of now, held still while the block runs (reads only)."""
        if self._journal is not None:
            with self._locked() as state:
                yield state
            return
        if not os.path.isdir(self._directory):
            yield QueueState()
            return
        if not os.path.exists(self._journal_path):
            yield self._files.load()[0]
            return
        if self._reader is None:
            self._reader = Journal(self._journal_path, readonly=True)
        # Under the journal's shared lock no checkpoint can change the files between
        # reading them and reading the records.
        with self._reader.lock():
            state, covered = self._files.load()
            for record in self._reader.records(after=_replay_from(covered, self._reader)):
                state.apply(record.data, where=self._journal_path)
            yield state

    def _summary(self) -> QueueSummary:
        """What ``persistkit iodict`` shows of a queue (reads only)."""
        with self._state_now() as state:
            waiting, unfinished = self._count(state)
            now_ms = _now_ms()
            returned = sum(1 for lease in state.leases.values() if self._returned(lease, now_ms))
            head, tail, leases = state.head, state.tail, len(state.leases)
        return QueueSummary(
            waiting=waiting,
            unfinished=unfinished,
            head=head,
            tail=tail,
            leases_held=leases - returned,
            leases_returned=returned,
            dead=len(self.dead_letters()),
            format=self._codec.name,
        )

    def _count(self, state: QueueState) -> tuple[int, int]:
        now_ms = _now_ms()
        in_region = state.leased_between(state.head, state.tail)
        returned = sum(1 for lease in state.leases.values() if self._returned(lease, now_ms))
        adopted = set(state.legacy.values())
        legacy = sum(
            1
            for name in self._legacy_pending
            if name not in adopted and os.path.lexists(os.path.join(self._directory, name))
        )
        span = state.tail - state.head
        waiting = max(span - in_region, 0) + returned + legacy
        unfinished = span + state.taken + len(state.leases) - in_region + legacy
        return waiting, unfinished

    def qsize(self) -> int:
        """Return the number of items waiting to be delivered (reads only).

        Items leased by `claim` are not counted until they are given back.
        """
        return self._counts()[0]

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
        return self._counts()[1]

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
        if not self._open_journal(create=False):
            raise ValueError("task_done() called too many times")
        with self._locked() as state:
            if state.taken <= 0:
                raise ValueError("task_done() called too many times")
            end = self._append(task_done_record(state.taken - 1))
        self._finish(_Done(end=end))

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
        watch = self._watcher()
        while self.unfinished_tasks:
            if watch is None or (deadline is not None and time.monotonic() >= deadline):
                raise TimeoutError("unfinished tasks remain")
            self._wait(watch, deadline)

    def close(self) -> None:
        """Stop using this queue object; later calls raise `QueueClosedError`.

        The items stay on disk for the next opener. iodict 0.0.8's ``close`` deleted every
        item and the directory; delete the directory yourself if that is what you want.
        """
        self._closed = True
        watch = getattr(self._watches, "watch", None)
        for resource in (watch, self._journal, self._reader):
            if resource is not None:
                resource.close()
        self._watches = threading.local()
        self._journal = self._reader = None

    def __enter__(self) -> DurableQueue[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
