"""`Journal`: an append-only log whose commits cost one shared flush.

Write-ahead logging for persistkit's packages: an owner appends a record describing a change,
flushes, and only then changes its main files (or never, until a checkpoint). Every process
and thread on a host that uses one journal shares its flushes (group commit).

The protocol, across threads and processes:

- **Append** (under the append lock: a per-process reentrant lock plus ``flock`` on the log):
  write the record at the end with ``pwrite`` into space already written with zeros, then
  publish the new end in the coordination file. Nothing is flushed.
- **Flush** (one thread per process takes part; the others wait for it in the process): a
  flush is a numbered *generation* whose leader holds that generation's lock (see
  `_journal_locks`) from the moment it claims it until its ``fdatasync`` is over. A writer
  whose record is not flushed yet waits, with a shared lock, for the latest claimed
  generation if that one has not yet read the end of the log (it will cover the record);
  otherwise it claims the next generation itself, waits for the running one to end, reads
  the end, calls ``fdatasync`` once and publishes that end as flushed. Everybody who appended
  meanwhile is covered by that one flush, and wakes when its generation's lock is let go:
  the next leader takes another generation's lock, so it never holds back the waiters of
  the one before. A leader that dies releases its lock with its life; whoever waited finds
  the position unflushed and claims or takes over the generation. Whether a record is
  durable is decided by the flushed position alone, never by the generation counters.
- **Recover** (when the coordination file may be stale): scan the log from the epoch's start
  along the checksum chain; drop a torn tail; raise `CorruptJournalError` where damage hits
  data a later record proves was durable; ``fdatasync`` what was found; publish it.
- **Recycle** (the owner's checkpoint is durable): write the other header slot with a new
  epoch starting at the current end, ``fdatasync``; the old records are dead from then on.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from persistkit.core import _fs
from persistkit.core._durability import Durability, check_durability
from persistkit.core._journal_coordination import (
    NO_RECORD,
    SIZE,
    W_CAPACITY,
    W_CLAIMED,
    W_DIRTY,
    W_DONE,
    W_END,
    W_EPOCH,
    W_FLUSHED,
    W_FLUSHES,
    W_HEADER_CRC,
    W_LAST,
    W_POISONED,
    W_PREV,
    W_RECORDS,
    W_SALT,
    W_SLOT,
    W_START,
    W_STARTED,
    Coordination,
    device_and_inode,
)
from persistkit.core._journal_format import (
    ALIGN,
    DATA_OFFSET,
    MAX_RECORD,
    SLOT_OFFSETS,
    Header,
    LogReader,
    Record,
    encode_record,
    make_header,
    read_header,
    record_size,
)
from persistkit.core._journal_locks import GenerationLocks
from persistkit.core._writer import write_bytes
from persistkit.core.errors import (
    CorruptJournalError,
    InvalidArgumentError,
    SyncError,
    TargetExistsError,
    UnsupportedOperationError,
)

DEFAULT_SIZE = 1 << 20
_PAGE = 4096
_ZEROS = bytes(1 << 20)


class JournalRecord(NamedTuple):
    """One record read back from a journal (a named tuple: it also unpacks as three).

    Attributes:
        lsn: its position in the journal.
        end: the position just after it: the next record's ``lsn``, and what to pass as
            ``after`` to read only the records that follow it.
        data: the bytes that were appended.
    """

    lsn: int
    end: int
    data: bytes


@dataclass(frozen=True, slots=True)
class JournalStats:
    """Counters shared by every process using a journal, since its coordination was rebuilt.

    Attributes:
        records: records appended.
        flushes: ``fdatasync`` calls made to flush them (commits per flush is the ratio).
    """

    records: int
    flushes: int


def _new_salt() -> int:
    return int.from_bytes(os.urandom(8), "little") | 1


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _create_log(path: str, size: int) -> None:
    # The whole file is written (zeros, not holes) and published by core's create-only
    # protocol, so a log exists only complete, and later record writes never allocate.
    content = bytearray(size)
    header = make_header(0, 1, _new_salt(), 0).encode()
    content[: len(header)] = header
    with contextlib.suppress(TargetExistsError):
        write_bytes(path, content, overwrite=False)


def _sync_error(error: OSError, path: str) -> SyncError:
    return SyncError(
        error.errno or errno.EIO,
        f"fdatasync of the journal failed ({error.strerror}); its durability is unknown",
        path,
    )


class _SharedLog:
    """One process's open log and coordination file, shared by every `Journal` on the file."""

    def __init__(self, path: str, fd: int, size: int) -> None:
        self.path = path
        self.fd = fd
        self.identity = device_and_inode(fd)
        self.pid = os.getpid()
        self.refs = 0
        self.grow_step = size
        self.nonce = int.from_bytes(os.urandom(4), "little")
        self._append_mutex = threading.RLock()
        self._depth = 0
        self._flush_turn = threading.Condition(threading.Lock())
        self._flushing = False
        self.shm_path = path + "-shm"
        self.shm_fd = _fs.open_or_create(self.shm_path)
        coordination: Coordination | None = None
        try:
            self._acquire_append()
            try:
                have = os.fstat(self.shm_fd).st_size
                if have < SIZE:
                    # Written, not a hole: a mapped hole that a full disk cannot back kills
                    # the process with SIGBUS; a write fails with ENOSPC instead.
                    _fs.pwrite_all(self.shm_fd, _ZEROS[: SIZE - have], have, self.shm_path)
                self.coordination = coordination = Coordination(self.shm_fd)
                self.words = coordination.words
                self._generations = GenerationLocks(self.shm_fd)
                if not self._fresh():
                    self._rebuild()
            finally:
                self._release_append()
        except BaseException:
            if coordination is not None:
                coordination.close()
            os.close(self.shm_fd)
            raise

    # -- locks ------------------------------------------------------------------------------

    def _acquire_append(self) -> None:
        self._append_mutex.acquire()
        try:
            if self._depth == 0:
                fcntl.flock(self.fd, fcntl.LOCK_EX)
            self._depth += 1
        except BaseException:
            self._append_mutex.release()
            raise

    def _release_append(self) -> None:
        try:
            self._depth -= 1
            if self._depth == 0:
                fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            self._append_mutex.release()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the append lock; repair the coordination if a writer died mid-update."""
        self._acquire_append()
        try:
            if self._depth == 1 and self.words[W_DIRTY]:
                self._rebuild()
            yield
        finally:
            self._release_append()

    @contextlib.contextmanager
    def _flush_locked(self) -> Iterator[None]:
        """Lead a flush generation: no other flush runs in any process meanwhile."""
        turn = self._flush_turn
        with turn:
            while self._flushing:
                turn.wait()
            self._flushing = True
        try:
            generation = self._claim(None)
            assert generation is not None  # None only once a given position is flushed
            try:
                self._wait_for_previous(generation)
                self.words[W_STARTED] = generation
                yield
                self.words[W_DONE] = generation
            finally:
                self._generations.release(generation)
        finally:
            with turn:
                self._flushing = False
                turn.notify_all()

    def _claim(self, upto: int | None) -> int | None:
        """Claim a new flush generation and hold its lock; None once ``upto`` is flushed.

        The latest claimed generation, if it has not read the end of the log yet, will cover
        every record appended so far: wait for it. Otherwise claim the next one (one claimer
        wins; the others wait for it). A claimer that let go without starting (it died, or
        failed) leaves its generation to whoever finds it so. Every wait ends with a look at
        the flushed position, the only thing durability is decided by.
        """
        words = self.words
        locks = self._generations
        while upto is None or words[W_FLUSHED] < upto:
            claimed = words[W_CLAIMED]
            if words[W_STARTED] < claimed:
                locks.wait(claimed)
                if (
                    words[W_CLAIMED] == claimed
                    and words[W_STARTED] < claimed
                    and (upto is None or words[W_FLUSHED] < upto)
                    and locks.try_hold(claimed)
                ):
                    if words[W_CLAIMED] == claimed and words[W_STARTED] < claimed:
                        return claimed
                    locks.release(claimed)
                continue
            following = claimed + 1
            if locks.try_hold(following):
                if words[W_CLAIMED] == claimed:
                    words[W_CLAIMED] = following
                    return following
                locks.release(following)
            else:
                locks.wait(following)
        return None

    def _wait_for_previous(self, generation: int) -> None:
        # One fdatasync at a time: the next one starts when this one ends, and covers
        # everything appended meanwhile.
        if self.words[W_DONE] < generation - 1:
            self._generations.wait(generation - 1)

    # -- coordination ------------------------------------------------------------------------

    def header(self) -> Header:
        """The current epoch, as the coordination file knows it."""
        words = self.words
        return Header(
            words[W_SLOT], words[W_EPOCH], words[W_SALT], words[W_START], words[W_HEADER_CRC]
        )

    def _fresh(self) -> bool:
        # Stale if stamped in another boot or for another file, left mid-update, poisoned, or
        # if the log disagrees with it.
        words = self.words
        if not self.coordination.describes(*self.identity) or words[W_POISONED]:
            return False
        try:
            header = read_header(self.fd, self.path)
            size = os.fstat(self.fd).st_size
            if header != self.header() or words[W_CAPACITY] > size:
                return False
            return self._tail_matches(LogReader(self.fd, self.path, header, size))
        except CorruptJournalError:
            return False

    def _tail_matches(self, reader: LogReader) -> bool:
        # The coordination file can disagree with the log within one boot when a filesystem
        # is restored or remounted after a power cut (the power-cut filesystem does exactly
        # that): it may name records the cut tore, or miss records a flush made durable.
        words = self.words
        end, prev = words[W_END], words[W_PREV]
        if words[W_LAST] == NO_RECORD:
            if prev != reader.header.crc or end != reader.header.start:
                return False
        else:
            record = reader.record_at(words[W_LAST])
            if record is None or record.crc != prev or record.end != end:
                return False
        following = reader.record_at(end)
        if following is not None and following.prev == prev:
            return False
        # Only unflushed records can be torn; check those (raises CorruptJournalError).
        reader.records(max(words[W_FLUSHED], reader.header.start), end, None)
        return True

    def _rebuild(self) -> None:
        words = self.words
        if not self.coordination.stamped_for(*self.identity):
            # Left by another boot or another log: its generations mean nothing here.
            words[W_CLAIMED] = words[W_STARTED] = words[W_DONE] = 0
        with self._flush_locked():
            words = self.words
            words[W_DIRTY] = 1
            header = read_header(self.fd, self.path)
            reader = LogReader(self.fd, self.path, header)
            end, prev, last = reader.scan()
            # What the scan found may sit only in the page cache (a writer that died before
            # flushing): make it durable before publishing it as flushed.
            try:
                _fs.fdatasync(self.fd, self.path)
            except OSError as error:
                raise _sync_error(error, self.path) from error
            words[W_SLOT] = header.slot
            words[W_EPOCH] = header.epoch
            words[W_SALT] = header.salt
            words[W_START] = header.start
            words[W_HEADER_CRC] = header.crc
            words[W_PREV] = prev
            words[W_LAST] = NO_RECORD if last is None else last
            words[W_CAPACITY] = reader.size
            words[W_FLUSHED] = end
            words[W_END] = end
            words[W_POISONED] = 0
            words[W_RECORDS] = 0
            words[W_FLUSHES] = 0
            self.coordination.stamp(*self.identity)
            words[W_DIRTY] = 0

    # -- operations --------------------------------------------------------------------------

    def append(self, data: bytes | bytearray | memoryview) -> int:
        # The hot path: `locked()` written out, without a generator.
        self._acquire_append()
        try:
            words = self.words
            if self._depth == 1 and words[W_DIRTY]:
                self._rebuild()
            end = words[W_END]
            offset = DATA_OFFSET + end - words[W_START]
            size = record_size(len(data))
            if offset + size > words[W_CAPACITY]:
                self._grow(offset + size)
            raw, crc = encode_record(
                data,
                salt=words[W_SALT],
                lsn=end,
                flushed=words[W_FLUSHED],
                nonce=self.nonce,
                prev=words[W_PREV],
            )
            _fs.pwrite_all(self.fd, raw, offset, self.path)
            words[W_DIRTY] = 1
            words[W_PREV] = crc
            words[W_LAST] = end
            words[W_RECORDS] += 1
            words[W_END] = end + size
            words[W_DIRTY] = 0
            return end + size
        finally:
            self._release_append()

    def _grow(self, needed: int) -> None:
        # Written zeros, not fallocate: an unwritten extent turns into a written one on first
        # write, a metadata change every later fdatasync would have to flush.
        words = self.words
        least = _round_up(needed, _PAGE)
        try:
            self._extend(max(least, words[W_CAPACITY] + self.grow_step))
        except OSError as error:
            # On a nearly full disk, take only what this record needs.
            if error.errno != errno.ENOSPC:
                raise
            if words[W_CAPACITY] < least:
                self._extend(least)

    def _extend(self, target: int) -> None:
        words = self.words
        capacity = words[W_CAPACITY]
        while capacity < target:
            count = min(len(_ZEROS), target - capacity)
            _fs.pwrite_all(self.fd, memoryview(_ZEROS)[:count], capacity, self.path)
            capacity += count
            words[W_CAPACITY] = capacity

    def flush(self, upto: int | None) -> None:
        words = self.words
        if upto is None:
            upto = words[W_END]
        elif upto > words[W_END]:
            raise InvalidArgumentError(
                f"position {upto} is past the end of journal {self.path!r} ({words[W_END]})"
            )
        if words[W_FLUSHED] >= upto:
            return
        # One thread per process takes part in the cross-process protocol; the others wait
        # for it here and return as soon as the flushed position covers them, instead of
        # queueing behind the next leader's fdatasync.
        turn = self._flush_turn
        with turn:
            while self._flushing:
                if words[W_FLUSHED] >= upto:
                    return
                turn.wait()
            if words[W_FLUSHED] >= upto:
                return
            self._flushing = True
        try:
            self._flush_across_processes(upto)
        finally:
            with turn:
                self._flushing = False
                turn.notify_all()

    def _flush_across_processes(self, upto: int) -> None:
        generation = self._claim(upto)
        if generation is None:
            return
        words = self.words
        try:
            self._wait_for_previous(generation)
            self._check_not_poisoned()
            words[W_STARTED] = generation
            target = words[W_END]
            if words[W_FLUSHED] < target:
                try:
                    _fs.fdatasync(self.fd, self.path)
                except OSError as error:
                    words[W_POISONED] = 1
                    raise _sync_error(error, self.path) from error
                words[W_FLUSHED] = max(words[W_FLUSHED], target)
                words[W_FLUSHES] += 1
            words[W_DONE] = generation
        finally:
            self._generations.release(generation)

    def _check_not_poisoned(self) -> None:
        if self.words[W_POISONED]:
            raise SyncError(
                errno.EIO,
                "an earlier fdatasync of this journal failed; reopen it to recover",
                self.path,
            )

    def records(self, after: int | None) -> list[Record]:
        found = self._records_unlocked(after)
        if found is not None:
            return found
        with self.locked():
            words = self.words
            start, end = words[W_START], words[W_END]
            after = _check_after(self.path, after, start, end)
            reader = LogReader(self.fd, self.path, self.header(), words[W_CAPACITY])
            return reader.records(after, end, words[W_HEADER_CRC] if after == start else None)

    def _records_unlocked(self, after: int | None) -> list[Record] | None:
        """Read the records without the append lock; None where the lock must decide.

        Records below the end never change within an epoch, and only a recycle starts a new
        one, so a read that begins and ends in one epoch, with the words not mid-update,
        saw what a locked read would have (readers then never queue behind appenders).
        """
        words = self.words
        epoch = words[W_EPOCH]
        if words[W_DIRTY]:
            return None
        start, end = words[W_START], words[W_END]
        header, capacity = self.header(), words[W_CAPACITY]
        if words[W_DIRTY] or words[W_EPOCH] != epoch:
            return None
        try:
            after = _check_after(self.path, after, start, end)
            reader = LogReader(self.fd, self.path, header, capacity)
            found = reader.records(after, end, header.crc if after == start else None)
        except (CorruptJournalError, InvalidArgumentError):
            return None  # a recycle may have raced the read: the locked read decides
        return found if words[W_EPOCH] == epoch else None

    def recycle(self, upto: int) -> None:
        with self.locked():
            words = self.words
            if upto != words[W_END]:
                raise InvalidArgumentError(
                    f"cannot recycle journal {self.path!r} up to {upto}: it ends at "
                    f"{words[W_END]}, and records you have not applied would be lost"
                )
            if upto == words[W_START]:
                return
            with self._flush_locked():
                self._check_not_poisoned()
                slot = 1 - words[W_SLOT]
                header = make_header(slot, words[W_EPOCH] + 1, _new_salt(), upto)
                # Marked mid-update first: whoever finds it so (this writer died) rebuilds
                # from the log, which then shows the old epoch or the new one, both correct.
                words[W_DIRTY] = 1
                _fs.pwrite_all(self.fd, header.encode(), SLOT_OFFSETS[slot], self.path)
                try:
                    _fs.fdatasync(self.fd, self.path)
                except OSError as error:
                    words[W_POISONED] = 1
                    raise _sync_error(error, self.path) from error
                words[W_SLOT] = slot
                words[W_EPOCH] = header.epoch
                words[W_SALT] = header.salt
                words[W_START] = upto
                words[W_HEADER_CRC] = header.crc
                words[W_PREV] = header.crc
                words[W_LAST] = NO_RECORD
                words[W_FLUSHED] = max(words[W_FLUSHED], upto)
                words[W_FLUSHES] += 1
                words[W_DIRTY] = 0

    def close(self) -> None:
        self.coordination.close()
        os.close(self.shm_fd)
        os.close(self.fd)

    def abandon(self) -> None:
        """Drop what a forked child inherited, without touching the parent's locks."""
        with contextlib.suppress(BufferError, ValueError, OSError):
            self.coordination.close()
        for fd in (self.shm_fd, self.fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _payload(data: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    """Return ``data`` as bytes its ``len`` counts, or raise if too long for a record."""
    if isinstance(data, memoryview) and (
        data.itemsize != 1 or data.ndim != 1 or not data.c_contiguous
    ):
        data = data.tobytes()  # len() of a memoryview counts items, not bytes
    if len(data) > MAX_RECORD:
        raise InvalidArgumentError(f"a journal record holds at most {MAX_RECORD} bytes")
    return data


def _check_after(path: str, after: int | None, start: int, end: int) -> int:
    if after is None:
        return start
    if after < start:
        raise InvalidArgumentError(
            f"journal {path!r} was recycled: its records start at {start}, after {after}; "
            "the earlier ones are in the main files"
        )
    if after > end or (after - start) % ALIGN:
        raise InvalidArgumentError(f"{after} is not a record position of journal {path!r}")
    return after


class _ReadOnlyLog:
    """A log opened for reading only: no coordination file, no writes, a shared flock."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        self._mutex = threading.RLock()
        self._depth = 0
        try:
            with self.locked():
                pass
        except BaseException:
            os.close(self.fd)
            raise

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with self._mutex:
            if self._depth == 0:
                fcntl.flock(self.fd, fcntl.LOCK_SH)
            self._depth += 1
            try:
                if self._depth == 1:
                    self._scan()
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self.fd, fcntl.LOCK_UN)

    def _scan(self) -> None:
        self.header = read_header(self.fd, self.path)
        self.reader = LogReader(self.fd, self.path, self.header)
        self.end, _, _ = self.reader.scan()

    def records(self, after: int | None) -> list[Record]:
        with self.locked():
            after = _check_after(self.path, after, self.header.start, self.end)
            prev = self.header.crc if after == self.header.start else None
            return self.reader.records(after, self.end, prev)

    def close(self) -> None:
        os.close(self.fd)


class _Registry:
    """This process's open logs by file identity, so every `Journal` on a file shares one.

    flock(2) locks belong to open file descriptions: two descriptors for one log in one
    process would lock each other out, and the same thread would deadlock across objects.
    """

    def __init__(self) -> None:
        self._logs: dict[tuple[int, int], _SharedLog] = {}
        # Reentrant: a Journal dropped without close() is detached by the garbage collector,
        # which may run inside attach() in the same thread.
        self._guard = threading.RLock()

    def attach(self, path: str, size: int) -> _SharedLog:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        try:
            identity = device_and_inode(fd)
            with self._guard:
                shared = self._logs.get(identity)
                if shared is None:
                    shared = self._logs[identity] = _SharedLog(path, fd, size)
                    fd = -1
                shared.refs += 1
                return shared
        finally:
            if fd >= 0:
                os.close(fd)

    def detach(self, shared: _SharedLog) -> None:
        with self._guard:
            shared.refs -= 1
            if shared.refs == 0:
                if self._logs.get(shared.identity) is shared:
                    del self._logs[shared.identity]
                shared.close()

    def forget_after_fork(self) -> None:
        # The parent's descriptors and locks are not the child's: start afresh.
        self._guard = threading.RLock()
        for shared in self._logs.values():
            shared.abandon()
        self._logs.clear()


_registry = _Registry()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_registry.forget_after_fork)


class Journal:
    """An append-only log of checksummed records; a commit costs one flush, shared.

    Every thread and process on this host that opens the same journal shares its appends
    (a record is visible to all of them at once) and its flushes (group commit: everybody
    waiting for durability while a flush runs is covered by the next one). After a crash or
    power cut the journal holds a prefix of what was appended: every record whose flush
    returned, then possibly some that were appended later; a torn record at the end is
    dropped, never returned.

    Records are *redo* records: after a crash the owner replays every record from `start`,
    including records it had already applied, so applying one twice must be harmless.

    Two files: ``path`` (the log, ``size`` bytes written up front, grown in ``size`` steps)
    and ``path + "-shm"`` (a small coordination file every writer maps; rebuilt from the log
    when stale, never needed for recovery). Neither is ever deleted by the journal.

    Args:
        path: the log file.
        readonly: open for reading only: nothing is created, written or mapped, so this
            works on read-only media; only a shared ``flock`` is taken while reading.
        create: create the log (durably) if it does not exist; otherwise raise
            `FileNotFoundError`.
        size: bytes to preallocate when creating the log, and the step it grows by.

    Raises:
        CorruptJournalError: the log is damaged where data was already durable, or is not a
            journal.
        FileNotFoundError: the log is missing (or its folder is, when creating).

    Example:
        >>> with Journal("state/.journal") as journal:  # doctest: +SKIP
        ...     end = journal.commit(b"set a=1")
        ...     for record in journal.records():
        ...         apply(record.data)
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readonly: bool = False,
        create: bool = True,
        size: int = DEFAULT_SIZE,
    ) -> None:
        self.path = os.path.realpath(os.fspath(path))
        self.readonly = readonly
        self._size = _round_up(max(size, DATA_OFFSET + _PAGE), _PAGE)
        self._closed = False
        self._shared: _SharedLog | None = None
        self._reader: _ReadOnlyLog | None = None
        if readonly:
            self._reader = _ReadOnlyLog(self.path)
            return
        if create and not os.path.exists(self.path):
            _create_log(self.path, self._size)
        self._shared = _registry.attach(self.path, self._size)

    def _log(self) -> _SharedLog:
        shared = self._shared
        if shared is None:
            if self._closed:
                raise InvalidArgumentError(f"journal {self.path!r} is closed")
            raise UnsupportedOperationError(
                errno.EBADF, "the journal was opened readonly", self.path
            )
        if shared.pid != os.getpid():
            self._shared = shared = _registry.attach(self.path, self._size)
        return shared

    def _read_side(self) -> _SharedLog | _ReadOnlyLog:
        if self._reader is not None:
            return self._reader
        return self._log()

    @property
    def start(self) -> int:
        """The position of the first record kept: everything before was recycled.

        Read it inside `lock` to get a value that cannot change under you.
        """
        side = self._read_side()
        if isinstance(side, _ReadOnlyLog):
            return side.header.start
        return side.words[W_START]

    @property
    def end(self) -> int:
        """The position just after the last record appended (by anyone)."""
        side = self._read_side()
        if isinstance(side, _ReadOnlyLog):
            return side.end
        return side.words[W_END]

    def append(self, data: bytes | bytearray | memoryview) -> int:
        """Append one record, without flushing it.

        The record is all-or-nothing and visible to `records` in every process at once. It is
        durable only once a `flush` covers it (yours or anybody's); until then a power cut
        may drop it, and every record after it.

        Args:
            data: the record, up to 2**31 - 1 bytes.

        Returns:
            The position just after the record: pass it to `flush` to make it durable.

        Raises:
            OSError: ``ENOSPC`` when the log must grow and the disk is full; nothing already
                appended is affected, and appending works again once there is room.
        """
        return self._log().append(_payload(data))

    def flush(self, upto: int | None = None) -> None:
        """Make every record before ``upto`` durable (group commit).

        When it returns, every record before ``upto``, appended by anyone, survives power
        loss. If another thread or process is flushing, this waits for it and usually finds
        its records covered; otherwise it runs one ``fdatasync`` for everybody waiting.

        Args:
            upto: a position from `append` or `commit`; None means the end of the log now.

        Raises:
            SyncError: the ``fdatasync`` failed. It is never retried: every later flush of
                this journal, in any process, raises too, until the journal is reopened.
        """
        self._log().flush(upto)

    def commit(
        self, data: bytes | bytearray | memoryview, *, durability: Durability = "durable"
    ) -> int:
        """Append one record and, if durable, flush it: one shared ``fdatasync`` at most.

        With ``durability="durable"`` the record survives power loss when this returns; with
        ``"atomic"`` it survives a crash of the process (not of the machine) and costs no
        flush.

        Returns:
            The position just after the record.
        """
        flush = check_durability(durability)
        payload = _payload(data)
        log = self._log()
        end = log.append(payload)
        if flush:
            log.flush(end)
        return end

    def records(self, after: int | None = None) -> list[JournalRecord]:
        """Return the records from position ``after`` (the `start` when None) to the end.

        Includes records other processes appended and have not flushed yet.

        Raises:
            InvalidArgumentError: ``after`` is before `start` (those records were recycled:
                reload your main files) or is not a record position of this journal.
            CorruptJournalError: a record in the range is damaged.
        """
        found = self._read_side().records(after)
        return [JournalRecord(record.lsn, record.end, record.data) for record in found]

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the journal's append lock, across processes and threads; reentrant per thread.

        While you hold it nobody else appends or recycles, so what you read with `records`
        and what you append form one atomic step. Do not flush durably while holding it
        unless you must: everybody else's appends wait for your ``fdatasync``. A readonly
        journal takes a shared lock, which only keeps writers out.
        """
        return self._read_side().locked()

    def recycle(self, *, upto: int) -> None:
        """Drop every record before ``upto`` and reuse their space (after a checkpoint).

        Call it once everything before ``upto`` is durably applied to your main files,
        ideally inside `lock`. When it returns the journal is empty and `start` is ``upto``,
        durably. A crash before then leaves the old records, which will be replayed.

        Args:
            upto: must equal `end`: the position up to which you have applied the records.

        Raises:
            InvalidArgumentError: ``upto`` is not the end (records were appended that you
                have not applied).
            SyncError: the ``fdatasync`` failed.
        """
        self._log().recycle(upto)

    def stats(self) -> JournalStats:
        """Records appended and flushes done by every process, since the last rebuild."""
        words = self._log().words
        return JournalStats(words[W_RECORDS], words[W_FLUSHES])

    def close(self) -> None:
        """Release the files; the journal object cannot be used afterwards."""
        if self._closed:
            return
        self._closed = True
        shared, self._shared = self._shared, None
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()
        if shared is not None and shared.pid == os.getpid():
            _registry.detach(shared)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:  # noqa: SIM105 - at interpreter exit contextlib may already be gone
            self.close()
        except Exception:  # a finalizer must not raise
            pass

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("readonly" if self.readonly else "open")
        return f"<Journal {self.path!r} {state}>"
