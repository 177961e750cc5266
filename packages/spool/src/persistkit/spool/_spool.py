"""`Spool`: producers deliver, consumers claim under a lease, then finish or release."""

from __future__ import annotations

import builtins
import collections
import contextlib
import errno
import math
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, BinaryIO

from persistkit.core import (
    Batch,
    DirectoryWatch,
    Durability,
    ObjectStore,
    WatchKind,
    atomic_write,
    check_durability,
    fsync_dir,
    remove,
    rename,
    sweep,
    write_bytes,
)
from persistkit.core.errors import (
    InvalidArgumentError,
    InvalidNameError,
    SerializationError,
    TargetExistsError,
)
from persistkit.spool._entries import message_names, strays
from persistkit.spool._filestore import make_area_dirs
from persistkit.spool._message_names import MessageName, parse_name, unique_name
from persistkit.spool._store_names import NAME_MAX, check_area, name_in_area
from persistkit.spool._transitions import Transitions
from persistkit.spool.errors import LeaseLostError

Payload = bytes | bytearray | memoryview | str | IO[bytes] | IO[str]

MAILDIR_TMP_MAX_AGE = 36 * 3600.0
"""Maildir's rule: a file in ``tmp`` untouched for 36 hours belongs to a dead writer."""

_AREAS = ("tmp", "new", "cur", "dead", "done")
_CHUNK = 1 << 20
_FIRST_READ = 1 << 16  # most messages are smaller: one read, no fstat
# A message is a regular file; a symlink in its place (put there by someone else) must not
# make a consumer read whatever it points to.
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


@dataclass(frozen=True, slots=True)
class Message:
    """A claimed message: what `Spool.claim` returns.

    A `Message` is a plain record (it pickles, so it can be handed to a worker process).
    The claim it stands for is valid until its lease ends; after that another consumer may
    take the message over, and finishing it through this record raises `LeaseLostError`.

    Attributes:
        id: the message's unique name, the same from delivery to the end.
        path: the claimed file (in ``cur``); its name records the tries and the lease.
        tries: how many times the message has been claimed, this claim included.
        deadline: when the lease ends, in seconds of the spool's clock.
    """

    __module__ = "persistkit.spool"

    id: str
    path: str
    tries: int
    deadline: float

    def read_bytes(self) -> bytes:
        """Return the message's content.

        Raises:
            OSError: the claimed file is gone or is no longer a regular file (a symlink
                put in its place is never followed).
        """
        fd = os.open(self.path, _READ_FLAGS)
        try:
            first = os.read(fd, _FIRST_READ)
            if len(first) < _FIRST_READ:  # a short read of a regular file is its end
                return first
            chunks = [first, os.read(fd, os.fstat(fd).st_size + 1 - len(first))]
            while chunks[-1]:
                chunks.append(os.read(fd, _CHUNK))
        finally:
            os.close(fd)
        return b"".join(chunks)

    def read_text(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        """Return the message's content decoded as text."""
        return self.read_bytes().decode(encoding, errors)

    def open(self) -> BinaryIO:
        """Open the message's content for reading (binary); a symlink is never followed."""
        return open(self.path, "rb", opener=lambda path, _flags: os.open(path, _READ_FLAGS))


class Spool:
    """A maildir spool: any number of producers and consumers, no lock, no server.

    Producers `deliver` messages into ``new``; consumers `claim` the oldest waiting message,
    which moves it to ``cur`` under a lease, and then call `done` (remove or archive it),
    `release` (put it back) or `dead_letter`. Every state change is one atomic rename, so
    when two consumers race for a message exactly one wins; the loser simply takes the
    next. A consumer that dies keeps nothing: its lease ends and the message is claimed
    again. After ``max_tries`` claims a message goes to ``dead`` instead.

    Folders: ``tmp`` (free for the `FileStore` staging API), ``new``, ``cur``, ``dead``
    and, with ``keep_done``, ``done``. Writers stage under hidden names (readers skip names
    starting with a dot, as the maildir spec asks).

    In an object store (``Spool("s3://bucket/prefix")``, or an `ObjectStore`) the same API
    runs on objects and conditional writes: see `ObjectSpool` and the guide.

    Args:
        path: the spool's folder; it and its areas are created where missing. Or an
            ``s3://bucket/prefix`` URL or an `ObjectStore` (then an `ObjectSpool` is made).
        lease: seconds a claim lasts before the message can be claimed again (`renew`
            extends it). 0 means a claim may be taken over at once (useful in tests).
        max_tries: claims a message gets before it is moved to ``dead``.
        durability: ``"durable"`` (the default): a delivery survives power loss once
            `deliver` returns, and so does the removal by `done`. ``"atomic"``: no fsync at
            all; safe against a crash of any process, not against power loss.
        keep_done: move finished messages to ``done`` instead of removing them.
        clock: returns the current time in seconds; leases are measured with it (inject
            one to test expiry without waiting). All consumers should use the same clock.
        watch: how `claim` waits: ``"inotify"``, ``"poll"`` (sleep with backoff, 1 ms up to
            0.5 s; use it on network filesystems, where inotify misses other hosts) or
            ``"auto"`` (inotify on Linux, else polling).
        create: create the folder and its areas where missing (the default). With False
            nothing is created or written when the spool is opened: for inspecting, and for
            a spool on read-only media or in a backup. Missing areas then hold nothing.

    Raises:
        InvalidArgumentError: an argument is out of range.
        FileNotFoundError: ``create`` is False and ``path`` is not a folder.

    Example:
        >>> spool = Spool("/var/spool/jobs")  # doctest: +SKIP
        >>> spool.deliver(b'{"resize": "cat.png"}')  # doctest: +SKIP
        '1717171717.M123456P4242Q0R9f...e1.myhost'
        >>> message = spool.claim(timeout=10)  # doctest: +SKIP
        >>> handle(message.read_bytes())  # doctest: +SKIP
        >>> spool.done(message)  # doctest: +SKIP
    """

    __module__ = "persistkit.spool"

    areas: tuple[str, ...] = _AREAS

    def __init__(
        self,
        path: str | os.PathLike[str] | ObjectStore,
        *,
        lease: float = 300.0,
        max_tries: int = 5,
        durability: Durability = "durable",
        keep_done: bool = False,
        clock: Callable[[], float] = time.time,
        watch: WatchKind = "auto",
        create: bool = True,
    ) -> None:
        self._take_options(lease, max_tries, durability, keep_done, clock, watch)
        self.path = os.fspath(path)  # type: ignore[arg-type] # an ObjectStore made an ObjectSpool
        self._watch_kind: WatchKind = watch
        self._dirs = {area: os.path.join(self.path, area) for area in _AREAS}
        # "<spool>/<area>/", so the hot paths build a file's path with one concatenation.
        self._prefix = {area: os.path.join(directory, "") for area, directory in self._dirs.items()}
        self._moves = Transitions(self._dirs, durability)
        self._candidates: collections.deque[tuple[str, str]] = collections.deque()
        self._next_cur_scan_ms: int | None = None
        self._wake_for_leases_ms: int | None = None
        self._lock = threading.Lock()
        self._watch: DirectoryWatch | None = None
        self.scans = 0
        if create:
            self.prepare()
        elif not os.path.isdir(self.path):
            raise FileNotFoundError(errno.ENOENT, "no spool here (not a folder)", self.path)

    def __new__(
        cls, path: str | os.PathLike[str] | ObjectStore | None = None, **options: Any
    ) -> Spool:
        """Make a `Spool`, or an `ObjectSpool` for an ``s3://`` URL or an `ObjectStore`.

        ``path`` may be missing only for `copy`, which makes the object without arguments.
        """
        if cls is Spool and is_object_location(path):
            # ObjectSpool subclasses Spool, so it can only be imported once Spool exists.
            from persistkit.spool._object_spool import ObjectSpool  # noqa: PLC0415

            return object.__new__(ObjectSpool)
        return object.__new__(cls)

    def _take_options(  # noqa: PLR0917 - the options both kinds of spool share, checked once
        self,
        lease: float,
        max_tries: int,
        durability: Durability,
        keep_done: bool,
        clock: Callable[[], float],
        watch: str,
    ) -> None:
        """Check the options a `Spool` and an `ObjectSpool` share, then keep them."""
        if not (isinstance(lease, int | float) and math.isfinite(lease) and lease >= 0):
            raise InvalidArgumentError(f"lease must be a number of seconds >= 0, not {lease!r}")
        if not isinstance(max_tries, int) or max_tries < 1:
            raise InvalidArgumentError(f"max_tries must be an int >= 1, not {max_tries!r}")
        check_durability(durability)
        if watch not in ("auto", "inotify", "poll"):
            raise InvalidArgumentError(f"watch must be 'auto', 'inotify' or 'poll', not {watch!r}")
        self.lease = float(lease)
        self.max_tries = max_tries
        self.durability: Durability = durability
        self.keep_done = keep_done
        self._clock = clock
        self._lease_ms = math.ceil(self.lease * 1000)

    # -- folders -----------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the spool's folder and areas where missing (idempotent, durable)."""
        areas = _AREAS if self.keep_done else _AREAS[:-1]
        make_area_dirs(self.path, areas, durable=self.durability == "durable")

    def list(self, area: str) -> list[str]:
        """Return the full paths of the messages in ``area``, oldest delivery first.

        Only messages are listed: regular files with visible names (in ``cur``, with the
        claim in their name). See `strays` for the rest.

        Raises:
            InvalidAreaError: ``area`` is not one of `areas`.
        """
        directory = self._dirs[check_area(area, _AREAS)]
        return [os.path.join(directory, name) for name in message_names(directory, area)]

    def count(self, area: str) -> int:
        """Return how many messages ``area`` holds."""
        return len(self.list(area))

    def strays(self) -> dict[str, str]:
        """Return what the areas hold that is not a message, each path with what it is.

        Folders, symlinks, fifos and other non-regular files in any area, and files in
        ``cur`` whose name carries no claim, were not written by the spool. It never
        claims, follows, counts, moves or deletes them; this is how to find them.
        Writers' hidden temporary files are not strays (`clean` handles them). Reads only.

        Returns:
            ``{path: what it is}``, sorted by path.
        """
        found: dict[str, str] = {}
        for area in _AREAS:
            found.update(strays(self._dirs[area], area))
        return found

    # -- producing ---------------------------------------------------------------------

    def deliver(self, data: Payload, *, encoding: str = "utf-8") -> str:
        """Deliver one message into ``new``, under a fresh maildir-unique name.

        The content is written through persistkit-core to a temporary file that readers
        cannot see and published into ``new`` create-only. With ``durability="durable"`` the
        temporary file is in ``new`` itself (unnamed, or hidden where the filesystem has no
        unnamed files: readers skip hidden names), fsynced, and ``new`` is fsynced after:
        when this returns, the message survives power loss. With ``durability="atomic"`` it
        is staged in ``tmp``, maildir's staging area. Either way a consumer sees the whole
        message or nothing, and if this raises, no message was delivered.

        Args:
            data: the content: bytes, text (encoded with ``encoding``) or a file object
                open for reading (copied in 1 MiB chunks).
            encoding: how text is encoded.

        Returns:
            The message id (its unique name).

        Raises:
            SerializationError: ``data`` is none of the accepted types.
        """
        payload = data if type(data) is bytes else _payload(data, encoding)
        unique = unique_name()
        target = self._prefix["new"] + unique
        if isinstance(payload, bytes | bytearray | memoryview):
            write_bytes(
                target,
                payload,
                overwrite=False,
                durability=self.durability,
                follow_symlinks=False,
                # Without fsync, staging in maildir's tmp/ is the cheapest whole hand-off
                # (measured 15% faster than an unnamed file in new/, whose inode churn slows
                # the claims); durable, it would cost a third fsync, of tmp/.
                temp_dir=self._dirs["tmp"] if self.durability == "atomic" else None,
            )
        else:
            with atomic_write(
                target, "wb", overwrite=False, durability=self.durability, follow_symlinks=False
            ) as out:
                while chunk := payload.read(_CHUNK):
                    out.write(chunk.encode(encoding) if isinstance(chunk, str) else chunk)
        return unique

    def deliver_many(
        self, items: Iterable[Payload], *, encoding: str = "utf-8"
    ) -> builtins.list[str]:
        """Deliver several messages, sharing the cost of durability among them.

        The messages are staged and published together (one flush of the disk and one
        fsync of ``new`` per 256 messages rather than two fsyncs each). When it returns,
        every message is delivered (durably with ``durability="durable"``). If it raises,
        the messages already published stay delivered and the others were not.

        Returns:
            The ids of the messages, in order.

        Raises:
            SerializationError: an item is none of the accepted types; the items before
                it that were already published stay delivered.
        """
        ids: builtins.list[str] = []
        with Batch(durability=self.durability) as batch:
            for item in items:
                payload = _payload(item, encoding)
                if not isinstance(payload, bytes | bytearray | memoryview):
                    payload = _read_all(payload, encoding)
                unique = unique_name()
                batch.write_bytes(
                    os.path.join(self._dirs["new"], unique),
                    payload,
                    overwrite=False,
                    follow_symlinks=False,
                )
                ids.append(unique)
        return ids

    # -- consuming ---------------------------------------------------------------------

    def claim(self, timeout: float | None = 0.0) -> Message | None:
        """Claim the oldest waiting message, or one whose lease has ended.

        The message moves from ``new`` (or from its expired name in ``cur``) to a name in
        ``cur`` that records the try count and the lease's end. Of several consumers racing
        for a message exactly one wins; the others move on to the next message. A message
        that has had ``max_tries`` claims is moved to ``dead`` instead of being claimed.

        With ``durability="durable"`` the claim name is linked and fsynced before the name
        in ``new`` is removed, so no power cut can lose the message, whoever fsyncs ``new``
        meanwhile; `done` makes the removal from ``new`` durable. A takeover of an expired
        lease is one rename within ``cur``.

        Args:
            timeout: seconds to wait for a message when none is waiting: 0 (the default)
                returns at once, None waits for ever. Waiting uses inotify (no polling) or
                polling with backoff, see ``watch``; it also wakes when a known lease ends.

        Returns:
            The claimed `Message`, or None when nothing could be claimed in time.

        Raises:
            InvalidArgumentError: ``timeout`` is negative.
        """
        if timeout is not None and not timeout >= 0:
            raise InvalidArgumentError(f"timeout must be >= 0 or None, not {timeout!r}")
        if timeout == 0:
            return self._claim_now()
        # The watch exists before the scan, so a delivery right after the scan still wakes us.
        watch = self._ensure_watch()
        end = None if timeout is None else time.monotonic() + timeout
        while True:
            message = self._claim_now()
            if message is not None:
                watch.found()
                return message
            wait = None if end is None else end - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            if self._wake_for_leases_ms is not None:
                until = max(self._wake_for_leases_ms / 1000 - self._clock(), 0.0) + 0.001
                wait = until if wait is None else min(wait, until)
            watch.wait(wait)

    def renew(self, message: Message, lease: float | None = None) -> Message:
        """Extend a claim's lease to ``lease`` seconds (default: the spool's) from now.

        One atomic rename; the old `Message` record is no longer valid afterwards.

        Returns:
            The `Message` with its new deadline.

        Raises:
            LeaseLostError: the claim was lost (the lease ended and another consumer took
                the message, or it was already finished).
        """
        lease_ms = self._lease_ms if lease is None else math.ceil(lease * 1000)
        deadline = self._now_ms() + lease_ms
        current = parse_name(os.path.basename(message.path))
        if current.deadline_ms is not None and deadline == current.deadline_ms:
            deadline += 1
        renewed = MessageName(current.unique, current.tries, deadline)
        target = os.path.join(self._dirs["cur"], str(renewed))
        try:
            rename(message.path, target, overwrite=False, durability="atomic")
        except FileNotFoundError:
            raise LeaseLostError(message.path) from None
        return Message(message.id, target, message.tries, deadline / 1000)

    def done(self, message: Message) -> None:
        """Finish a claimed message: remove it, or move it to ``done`` with ``keep_done``.

        Guarantees when it returns: the message is out of ``cur`` and ``new`` (every name of
        it: see the guide on duplicates) and will never be claimed again; with
        ``durability="durable"`` that survives power loss (``cur`` and ``new`` are fsynced,
        and with ``keep_done`` the message is in ``done``, fsynced first).

        Raises:
            LeaseLostError: the claim was lost; the message was not touched.
        """
        try:
            if self.keep_done:
                finished = MessageName(message.id, message.tries)
                target = os.path.join(self._dirs["done"], str(finished))
                self._moves.move(message.path, target, finishing=True)
            else:
                self._moves.finish(message.path)
        except FileNotFoundError:
            raise LeaseLostError(message.path) from None

    def release(self, message: Message, *, count_try: bool = True) -> None:
        """Put a claimed message back into ``new`` for any consumer to claim.

        Args:
            message: the claimed message.
            count_try: whether this claim counts towards ``max_tries`` (False, e.g., when
                a worker shuts down before it started on the message).

        Guarantees when it returns: the message waits in ``new`` and is out of ``cur``
        (durably with ``durability="durable"``: linked into ``new``, which is fsynced, before
        it leaves ``cur``, which is fsynced after).

        Raises:
            LeaseLostError: the claim was lost; nothing was changed.
        """
        tries = message.tries if count_try else max(message.tries - 1, 0)
        target = os.path.join(self._dirs["new"], str(MessageName(message.id, tries)))
        try:
            self._moves.move(message.path, target, finishing=False)
        except FileNotFoundError:
            raise LeaseLostError(message.path) from None

    def dead_letter(self, message: Message) -> None:
        """Move a claimed message to ``dead`` at once (it will not be retried).

        Guarantees when it returns: the message is in ``dead`` and in no other area (durably
        with ``durability="durable"``: ``dead`` is fsynced before the message leaves ``cur``,
        then ``cur`` and ``new`` are).

        Raises:
            LeaseLostError: the claim was lost; nothing was changed.
        """
        target = os.path.join(self._dirs["dead"], str(MessageName(message.id, message.tries)))
        try:
            self._moves.move(message.path, target, finishing=True)
        except FileNotFoundError:
            raise LeaseLostError(message.path) from None

    def requeue(self, message: str) -> str:
        """Move a dead message back to ``new`` with its try count reset.

        Args:
            message: its id, or its path as ``list("dead")`` returns it.

        Returns:
            The message id.

        Raises:
            InvalidNameError: the name could reach outside ``dead``, or names something that
                is not a message (see `strays`), which is left where it is.
            FileNotFoundError: ``dead`` holds no such message.
        """
        dead_dir = self._dirs["dead"]
        name = name_in_area(message, dead_dir)
        unique = parse_name(name).unique
        if name == unique:
            matches = [
                entry
                for entry in message_names(dead_dir, "dead")
                if parse_name(entry).unique == unique
            ]
            if matches:
                name = matches[0]
        path = os.path.join(dead_dir, name)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, "no such dead message", path) from None
        if not stat.S_ISREG(mode):
            raise InvalidNameError(f"{path!r} is not a message (not a regular file)")
        self._moves.move(path, os.path.join(self._dirs["new"], unique), finishing=False)
        return unique

    # -- housekeeping ------------------------------------------------------------------

    def clean(
        self, max_age: float = MAILDIR_TMP_MAX_AGE, *, temp_min_age: float = 60.0
    ) -> builtins.list[str]:
        """Remove what dead writers left behind.

        Files in ``tmp`` not modified for ``max_age`` seconds (maildir's 36 hours by
        default; modification rather than access time, which ``noatime`` mounts never
        update) are removed, and in every area persistkit's hidden temporary files whose
        writer is gone (`persistkit.core.sweep`; a live writer holds a lock on its file).
        Messages are never touched. The removals are fsynced with ``durability="durable"``.

        Args:
            max_age: the age in seconds after which a file in ``tmp`` is stale.
            temp_min_age: leave temporary files younger than this alone.

        Returns:
            The paths removed.
        """
        if not max_age >= 0:
            raise InvalidArgumentError(f"max_age must be >= 0, not {max_age!r}")
        removed: builtins.list[str] = []
        tmp_dir = self._dirs["tmp"]
        now = time.time()
        with contextlib.suppress(FileNotFoundError), os.scandir(tmp_dir) as entries:
            stale = [
                entry.path
                for entry in entries
                if not entry.name.startswith(".")
                and entry.is_file(follow_symlinks=False)
                and now - entry.stat(follow_symlinks=False).st_mtime >= max_age
            ]
            for path in stale:
                if remove(path, durability="atomic", missing_ok=True):
                    removed.append(path)
        if removed and self.durability == "durable":
            fsync_dir(tmp_dir)
        for area in _AREAS:
            with contextlib.suppress(FileNotFoundError):
                removed.extend(sweep(self._dirs[area], min_age=temp_min_age))
        return removed

    def close(self) -> None:
        """Release the inotify descriptor, if any (the spool stays usable)."""
        self._drop_watch()

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _now_ms(self) -> int:
        return math.floor(self._clock() * 1000)

    def _ensure_watch(self) -> DirectoryWatch:
        if self._watch is None:
            self._watch = DirectoryWatch(self._dirs["new"], kind=self._watch_kind)
        return self._watch

    def _drop_watch(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()

    def _claim_now(self) -> Message | None:
        with self._lock:
            now = self._now_ms()
            fresh = False
            if not self._candidates or (
                self._next_cur_scan_ms is not None and now >= self._next_cur_scan_ms
            ):
                self._scan(now)
                fresh = True
            while True:
                while self._candidates:
                    area, name = self._candidates.popleft()
                    message = self._take(area, name, now)
                    if message is not None:
                        return message
                if fresh:
                    return None
                self._scan(now)
                fresh = True

    def _scan(self, now: int) -> None:
        """Refill the candidates: expired claims first, then ``new`` in delivery order.

        One scan serves many claims (a stale entry costs one failed rename), so a claim
        costs O(1) on average instead of a listing of the whole folder. ``cur`` is listed
        only when a lease may have run out since it was last listed.
        """
        self.scans += 1
        waiting = message_names(self._dirs["new"], "new")
        due = self._next_cur_scan_ms
        expired = self._expired_claims(now) if due is None or now >= due else []
        self._candidates = collections.deque(
            [("cur", name) for name in expired] + [("new", name) for name in waiting]
        )

    def _expired_claims(self, now: int) -> builtins.list[str]:
        # Every claim made after this listing ends at least one lease from now (consumers
        # share the lease length), so until then only the deadlines seen here can pass.
        next_scan = now + self._lease_ms
        # A waiting consumer wakes for those deadlines (at most once a second for very
        # short leases).
        wake = now + max(self._lease_ms, 1000)
        expired: builtins.list[str] = []
        for name in message_names(self._dirs["cur"], "cur"):
            deadline = parse_name(name).deadline_ms
            if deadline is None:  # pragma: no cover - message_names keeps claimed names only
                continue
            if deadline <= now:
                expired.append(name)
            else:
                next_scan = min(next_scan, deadline)
                wake = min(wake, deadline)
        self._next_cur_scan_ms = next_scan
        self._wake_for_leases_ms = wake
        return expired

    def _take(self, area: str, name: str, now: int) -> Message | None:
        parsed = parse_name(name)
        source = self._prefix[area] + name
        deadline = now + self._lease_ms
        try:
            if parsed.tries >= self.max_tries:
                self._bury(source, parsed)
                return None
            claimed_name = str(MessageName(parsed.unique, parsed.tries + 1, deadline))
            if len(claimed_name) * 4 > NAME_MAX and len(os.fsencode(claimed_name)) > NAME_MAX:
                # A foreign name too long to carry a lease can never be claimed.
                self._bury(source, MessageName(parsed.unique, parsed.tries))
                return None
            target = self._prefix["cur"] + claimed_name
            self._moves.claim(source, target)
        except (FileNotFoundError, TargetExistsError):
            # Another consumer was faster (or the name is taken): try the next one.
            return None
        return Message(parsed.unique, target, parsed.tries + 1, deadline / 1000)

    def _bury(self, source: str, parsed: MessageName) -> None:
        dead_name = str(MessageName(parsed.unique, parsed.tries))
        if len(os.fsencode(dead_name)) > NAME_MAX:
            dead_name = os.path.basename(source)
        self._moves.move(source, os.path.join(self._dirs["dead"], dead_name), finishing=True)


def _payload(data: object, encoding: str) -> bytes | bytearray | memoryview | IO[Any]:
    if isinstance(data, bytes | bytearray | memoryview):
        return data
    if isinstance(data, str):
        try:
            return data.encode(encoding)
        except UnicodeEncodeError as error:
            raise SerializationError(f"the text cannot be encoded: {error}") from None
    if callable(getattr(data, "read", None)):
        return data  # type: ignore[return-value] # any object with read() is accepted
    raise SerializationError(
        f"a message is bytes, str or a readable file object, not {type(data).__name__}"
    )


def as_bytes(data: Payload, encoding: str) -> bytes:
    """Return a message's whole content as bytes (a file object is read to its end).

    Raises:
        SerializationError: ``data`` is none of the accepted types.
    """
    payload = _payload(data, encoding)
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    return _read_all(payload, encoding)


def is_object_location(path: object) -> bool:
    """Whether ``path`` names an object store (an `ObjectStore` or an ``s3://`` URL)."""
    return isinstance(path, ObjectStore) or (isinstance(path, str) and path.startswith("s3://"))


def _read_all(source: IO[Any], encoding: str) -> bytes:
    content = source.read()
    return content.encode(encoding) if isinstance(content, str) else bytes(content)
