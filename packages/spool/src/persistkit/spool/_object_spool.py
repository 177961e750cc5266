"""A spool in an object store (S3, or core's local backend): exactly-once claims between machines.

`Spool` returns an `ObjectSpool` when its location is an ``s3://`` URL or an `ObjectStore`.
The maildir renames become objects and conditional writes, under the spool's prefix:

- ``new/<id>``: the message, created if absent by `deliver` (ids are maildir-unique names,
  so a listing of ``new/`` comes roughly in delivery order).
- ``claims/<id>``: the message's claim, a small JSON document (`Claim`) whose ``state`` is
  ``claimed`` (until a deadline), ``waiting`` (released), ``done`` or ``dead``. A first claim
  creates it if absent; every later change (renewal, release, takeover of an expired lease,
  finishing) is a compare-and-swap from the version its writer read. So of any number of
  consumers, on any number of machines, exactly one gets each claim, and only the holder of
  the current claim can finish the message.
- ``done/<id>`` (with ``keep_done``) and ``dead/<id>``: copies of finished and dead messages.

The commit point of `ObjectSpool.done` and of a dead letter is the swap of the claim to the
terminal state ``done`` or ``dead``: from then on nobody can claim the message again. What
follows is tidying, in an order that keeps that true after a crash at any point: the copy
into ``done/`` or ``dead/``, then the deletion of ``new/<id>``, then of ``claims/<id>`` (a
claim whose message is gone is recognised as stale). A consumer that meets a terminal claim
finishes the tidying. Only unconditional deletes are used, so servers that ignore
``If-Match`` on DELETE (Ceph RGW) serve a spool too.

Every claim document carries a writer id, fresh for a claim or a renewal and derived from the
claim it replaces for a release or a finish. The bodies of successive writes therefore always
differ (S3 versions are content hashes), and a call whose reply was lost recognises its own
write when it reads the claim back; so does a `done` called again after an error.
"""

from __future__ import annotations

import builtins
import collections
import dataclasses
import errno
import hashlib
import io
import json
import math
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO

from persistkit.core import Durability, ObjectStore, WatchKind, open_object_store
from persistkit.core.errors import (
    ConflictError,
    CorruptFileError,
    InvalidArgumentError,
    InvalidNameError,
    ObjectExistsError,
    ObjectNotFoundError,
    OutcomeUnknownError,
    StoreUnavailableError,
)
from persistkit.spool._message_names import unique_name
from persistkit.spool._spool import MAILDIR_TMP_MAX_AGE, Message, Payload, Spool, as_bytes
from persistkit.spool._store_names import check_area
from persistkit.spool.errors import LeaseLostError

CLAIM_FORMAT = 1
_AREAS = ("tmp", "new", "cur", "dead", "done")
_POLL_FIRST = 0.05
_POLL_MOST = 1.0
_SHUFFLED = 16
_RECHECK_MS = 5000


def new_writer() -> str:
    """Return a fresh writer id."""
    return secrets.token_hex(8)


def derived_writer(writer: str, change: str) -> str:
    """The writer id of ``change`` made to the claim written by ``writer`` (the same each time)."""
    return hashlib.sha256(f"{writer}/{change}".encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Claim:
    """The document in ``claims/<id>``.

    Attributes:
        state: ``"claimed"``, ``"waiting"`` (released), ``"done"`` or ``"dead"``.
        tries: claims so far.
        until_ms: when a ``claimed`` lease ends (ms of the spool's clock).
        writer: who wrote this version (see the module's docstring).
        owner: host and pid of the consumer, for people reading the bucket.
    """

    state: str
    tries: int
    until_ms: int
    writer: str
    owner: str

    def encode(self) -> bytes:
        """Return the claim as the bytes of its object."""
        return json.dumps(
            {
                "persistkit-spool": CLAIM_FORMAT,
                "state": self.state,
                "tries": self.tries,
                "until": self.until_ms,
                "writer": self.writer,
                "owner": self.owner,
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def decode(cls, data: bytes, where: str) -> Claim:
        """Read a claim object.

        Raises:
            CorruptFileError: it is not a claim this version of persistkit-spool wrote.
        """
        try:
            fields = json.loads(data)
            if fields["persistkit-spool"] != CLAIM_FORMAT:
                raise CorruptFileError(where, "a claim of another format")
            claim = cls(
                fields["state"], fields["tries"], fields["until"], fields["writer"], fields["owner"]
            )
        except (ValueError, TypeError, KeyError):
            raise CorruptFileError(where, "not a persistkit-spool claim") from None
        if claim.state not in ("claimed", "waiting", "done", "dead") or not all(
            isinstance(value, int) for value in (claim.tries, claim.until_ms)
        ):
            raise CorruptFileError(where, "not a persistkit-spool claim")
        return claim

    @property
    def finished(self) -> bool:
        """Whether the message is done or dead (nobody may claim it again)."""
        return self.state in ("done", "dead")


@dataclass(frozen=True, slots=True)
class ObjectMessage(Message):
    """A message claimed from a spool in an object store (see `Message`).

    Its content was read when it was claimed. ``path`` is the location of its claim object.

    Attributes:
        data: the content.
        version: the version of the claim object this record holds.
        writer: the writer id of that claim.
    """

    __module__ = "persistkit.spool"

    data: bytes = b""
    version: str = ""
    writer: str = ""

    def read_bytes(self) -> bytes:
        """Return the message's content."""
        return self.data

    def open(self) -> BinaryIO:
        """Return the message's content as a binary file object."""
        return io.BytesIO(self.data)


class ObjectSpool(Spool):
    """A `Spool` whose messages are objects of an object store; same API, same guarantees.

    Made by ``Spool("s3://bucket/prefix")`` or ``Spool(object_store)``; see `Spool` for the
    arguments and docs/spool.md for the protocol and its cost. Opening writes nothing (there
    are no folders to create); ``durability`` applies to a `LocalObjectStore` only as that
    store was made, and ``watch`` may only be ``"auto"`` or ``"poll"``: a consumer waiting
    for a message lists ``new/`` with backoff (0.05 s doubling to 1 s).
    """

    __module__ = "persistkit.spool"

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
        del create  # there is nothing to create: objects need no folders
        self._take_options(lease, max_tries, durability, keep_done, clock, watch)
        if watch == "inotify":
            raise InvalidArgumentError("a spool in an object store cannot use inotify: poll")
        self._owned = not isinstance(path, ObjectStore)
        self.objects = open_object_store(path)
        self.path = self.objects.location.rstrip("/")
        self._owner = f"{socket.gethostname()}:{os.getpid()}"
        self._pending: collections.deque[tuple[str, bool]] = collections.deque()
        self._recheck_ms: int | None = None
        self._lock = threading.Lock()
        self.scans = 0

    def _where(self, area: str, unique: str) -> str:
        return f"{self.path}/{area}/{unique}"

    def _ids(self, area: str) -> builtins.list[str]:
        start = len(area) + 1
        return [key[start:] for key in self.objects.list(f"{area}/")]

    # -- folders -----------------------------------------------------------------------

    def prepare(self) -> None:
        """Do nothing: a spool in an object store has no folders."""

    def list(self, area: str) -> builtins.list[str]:
        """Return the locations of the messages in ``area``, in the order of their ids.

        ``new``: waiting (never claimed, released, or in a lease that ran out and was not
        taken over yet: ``cur`` lists those); ``cur``: claimed; ``dead`` and ``done``:
        the copies kept there; ``tmp``: always empty. Reads only: one listing per area
        involved, and one read per claim for ``new`` and ``cur``.

        Raises:
            InvalidAreaError: ``area`` is not one of `areas`.
        """
        check_area(area, _AREAS)
        if area in ("dead", "done"):
            return [self._where(area, unique) for unique in self._ids(area)]
        if area == "tmp":
            return []
        claimed = set()
        for unique in self._ids("claims"):
            claim = self._readable_claim(unique)
            if claim is not None and claim[0].state == "claimed":
                claimed.add(unique)
        waiting = self._ids("new")
        if area == "cur":
            return [self._where("claims", unique) for unique in waiting if unique in claimed]
        return [self._where("new", unique) for unique in waiting if unique not in claimed]

    def strays(self) -> dict[str, str]:
        """Return the objects under the prefix that are not the spool's, with what they are.

        Objects outside ``new/``, ``claims/``, ``dead/`` and ``done/``, and claims that do not
        decode (a message with such a claim is never claimed). The spool never claims, moves
        or deletes them. Reads only: one listing, and one read per claim.
        """
        found: dict[str, str] = {}
        for key in self.objects.list():
            if key.startswith("claims/"):
                try:
                    self._read_claim(key[len("claims/") :])
                except CorruptFileError:
                    found[f"{self.path}/{key}"] = "not a claim persistkit-spool wrote"
            elif not key.startswith(("new/", "dead/", "done/")):
                found[f"{self.path}/{key}"] = "an object outside the spool's areas"
        return found

    # -- producing ---------------------------------------------------------------------

    def deliver(self, data: Payload, *, encoding: str = "utf-8") -> str:
        """Deliver one message: create ``new/<id>`` under a fresh maildir-unique id.

        One request (a create-only PUT). When it returns, the message is stored as durably
        as the object store keeps what it acknowledged, and any consumer can claim it. If it
        raises `StoreUnavailableError`, the message may or may not have been delivered.

        Returns:
            The message id.

        Raises:
            SerializationError: ``data`` is none of the accepted types.
            StoreUnavailableError: the server could not be reached or kept failing.
        """
        payload = as_bytes(data, encoding)
        unique = unique_name()
        self.objects.put_if_absent(f"new/{unique}", payload)
        return unique

    def deliver_many(
        self, items: Iterable[Payload], *, encoding: str = "utf-8"
    ) -> builtins.list[str]:
        """Deliver several messages, one request each, in order.

        Returns:
            The ids of the messages, in order.

        Raises:
            SerializationError: an item is none of the accepted types; the items before it
                stay delivered.
            StoreUnavailableError: as `deliver`; the items before it stay delivered.
        """
        return [self.deliver(item, encoding=encoding) for item in items]

    # -- consuming ---------------------------------------------------------------------

    def claim(self, timeout: float | None = 0.0) -> Message | None:
        """Claim the oldest waiting message, or one whose lease has ended.

        A message nobody claimed yet costs two requests (create ``claims/<id>`` if absent,
        read ``new/<id>``); one claimed before, three (read the claim, swap it, read the
        message). Of several consumers racing for a message exactly one wins, through the
        server's create-only or compare-and-swap write; the others move on to the next. A
        message whose expired claim has had ``max_tries`` tries becomes a dead letter.

        Args:
            timeout: seconds to wait for a message: 0 returns at once, None waits for ever.
                Waiting lists ``new/`` with backoff (0.05 s doubling to 1 s).

        Returns:
            The claimed `Message` (its content already read), or None.

        Raises:
            InvalidArgumentError: ``timeout`` is negative.
            StoreUnavailableError: the server could not be reached or kept failing; a claim
                made in the meantime runs out with its lease.
        """
        if timeout is not None and not timeout >= 0:
            raise InvalidArgumentError(f"timeout must be >= 0 or None, not {timeout!r}")
        end = None if timeout is None else time.monotonic() + timeout
        pause = _POLL_FIRST
        while True:
            message = self._claim_now()
            if message is not None:
                return message
            wait = pause if end is None else min(pause, end - time.monotonic())
            if wait <= 0:
                return None
            time.sleep(wait)
            pause = min(pause * 2, _POLL_MOST)

    def renew(self, message: Message, lease: float | None = None) -> Message:
        """Extend a claim's lease to ``lease`` seconds (default: the spool's) from now.

        One compare-and-swap of the claim; the old `Message` is no longer valid afterwards.

        Returns:
            The `Message` with its new deadline.

        Raises:
            LeaseLostError: the claim was lost (its lease ended and another consumer took
                the message over, or it was finished).
        """
        held = self._held(message)
        lease_ms = self._lease_ms if lease is None else math.ceil(lease * 1000)
        deadline = self._now_ms() + lease_ms
        # A fresh writer: as on a file, the record before a renewal is stale afterwards.
        renewed = Claim("claimed", held.tries, deadline, new_writer(), self._owner)
        version, landed = self._change(held, renewed)
        return dataclasses.replace(
            held, deadline=landed.until_ms / 1000, version=version, writer=landed.writer
        )

    def done(self, message: Message) -> None:
        """Finish a claimed message: it is never handed out again.

        The commit point is one compare-and-swap of its claim to ``done``; then the message
        is copied to ``done/`` (with ``keep_done``) and ``new/<id>`` and the claim are
        deleted (three or four requests in all). Calling it again after it raised
        `StoreUnavailableError` is safe: a finish that had landed is recognised.

        Raises:
            LeaseLostError: the claim was lost; the message was not touched.
            StoreUnavailableError: the server failed; the message may or may not be
                finished (call `done` again to know).
        """
        held = self._held(message)
        final = Claim("done", held.tries, 0, derived_writer(held.writer, "done"), self._owner)
        self._change(held, final)
        self._tidy(held.id, final, held.data)

    def release(self, message: Message, *, count_try: bool = True) -> None:
        """Put a claimed message back for any consumer to claim (one compare-and-swap).

        Args:
            message: the claimed message.
            count_try: whether this claim counts towards ``max_tries``.

        Raises:
            LeaseLostError: the claim was lost; nothing was changed.
        """
        held = self._held(message)
        tries = held.tries if count_try else max(held.tries - 1, 0)
        waiting = Claim("waiting", tries, 0, derived_writer(held.writer, "release"), self._owner)
        self._change(held, waiting)
        self._recheck_ms = None  # this consumer may claim it again at once

    def dead_letter(self, message: Message) -> None:
        """Make a claimed message a dead letter now: copied to ``dead/``, never retried.

        Raises:
            LeaseLostError: the claim was lost; nothing was changed.
        """
        held = self._held(message)
        dead = Claim("dead", held.tries, 0, derived_writer(held.writer, "dead"), self._owner)
        self._change(held, dead)
        self._tidy(held.id, dead, held.data)

    def requeue(self, message: str) -> str:
        """Put a dead message back into ``new/`` with its try count reset.

        Deletes its claim, writes ``new/<id>``, then deletes ``dead/<id>``. A crash in
        between leaves the message dead (call again) or both waiting and in ``dead/``.

        Args:
            message: its id, or its location as ``list("dead")`` returns it.

        Returns:
            The message id.

        Raises:
            InvalidNameError: a location outside this spool's ``dead`` area.
            FileNotFoundError: ``dead`` holds no such message.
        """
        unique = message
        if "/" in message:
            area_prefix = f"{self.path}/dead/"
            if not message.startswith(area_prefix):
                raise InvalidNameError(f"{message!r} is not in {area_prefix!r}")
            unique = message[len(area_prefix) :]
        try:
            data = self.objects.get(f"dead/{unique}").data
        except ObjectNotFoundError:
            raise FileNotFoundError(
                errno.ENOENT, "no such dead message", self._where("dead", unique)
            ) from None
        self.objects.delete(f"claims/{unique}")
        self.objects.put(f"new/{unique}", data)
        self.objects.delete(f"dead/{unique}")
        return unique

    # -- housekeeping ------------------------------------------------------------------

    def clean(
        self, max_age: float = MAILDIR_TMP_MAX_AGE, *, temp_min_age: float = 60.0
    ) -> builtins.list[str]:
        """Finish the tidying that crashed consumers left: claims of finished messages.

        A claim in state ``done`` or ``dead`` is tidied as `done` would have (copy, delete
        ``new/<id>``, delete the claim); a claim whose message is in neither ``new/`` nor
        ``dead/`` is deleted (a consumer claimed it from a stale listing). Messages are
        never touched. ``max_age`` and ``temp_min_age`` have no meaning here.

        Returns:
            The locations deleted.
        """
        del max_age, temp_min_age
        removed: builtins.list[str] = []
        waiting = set(self._ids("new"))
        for unique in self._ids("claims"):
            found = self._readable_claim(unique)
            if found is None:
                continue
            claim, _ = found
            if claim.finished:
                if unique in waiting:
                    removed.append(self._where("new", unique))
                self._tidy(unique, claim, None)
                removed.append(self._where("claims", unique))
            elif (
                unique not in waiting
                and not self._exists(f"new/{unique}")
                and not self._exists(f"dead/{unique}")
            ):
                self.objects.delete(f"claims/{unique}")
                removed.append(self._where("claims", unique))
        return removed

    def close(self) -> None:
        """Close the object store's connections if this spool opened it."""
        if self._owned:
            self.objects.close()

    def __enter__(self) -> ObjectSpool:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------

    def _exists(self, key: str) -> bool:
        try:
            self.objects.get(key)
        except ObjectNotFoundError:
            return False
        return True

    def _read_claim(self, unique: str) -> tuple[Claim, str] | None:
        try:
            found = self.objects.get(f"claims/{unique}")
        except ObjectNotFoundError:
            return None
        return Claim.decode(found.data, self._where("claims", unique)), found.version

    def _readable_claim(self, unique: str) -> tuple[Claim, str] | None:
        """The claim, or None when there is none or it is not one of ours (`strays` tells)."""
        try:
            return self._read_claim(unique)
        except CorruptFileError:
            return None

    def _held(self, message: Message) -> ObjectMessage:
        if not isinstance(message, ObjectMessage) or not message.path.startswith(
            f"{self.path}/claims/"
        ):
            raise InvalidArgumentError(f"{message!r} was not claimed from this spool")
        return message

    def _claim_now(self) -> Message | None:
        with self._lock:
            fresh = False
            if not self._pending:
                self._refill()
                fresh = True
            while True:
                while self._pending:
                    unique, claimed_before = self._pending.popleft()
                    message = self._try_claim(unique, claimed_before)
                    if message is not None:
                        return message
                if fresh:
                    return None
                self._refill()
                fresh = True

    def _refill(self) -> None:
        """Refill the candidates: ``new/`` in id order, messages without a claim first.

        One scan (a listing of ``new/`` and of ``claims/``) serves many claims.
        """
        self.scans += 1
        claimed = set(self._ids("claims"))
        waiting = self._ids("new")
        candidates = [(unique, False) for unique in waiting if unique not in claimed]
        # Messages in flight cost a read of their claim each: read them only when a lease
        # seen may have run out, or a release by another consumer may have come (at most
        # _RECHECK_MS late), not on every poll of an idle consumer.
        now = self._now_ms()
        if self._recheck_ms is None or now >= self._recheck_ms:
            self._recheck_ms = now + _RECHECK_MS
            candidates += [(unique, True) for unique in waiting if unique in claimed]
        self._pending = collections.deque(candidates)

    def _try_claim(self, unique: str, claimed_before: bool) -> ObjectMessage | None:
        now = self._now_ms()
        if not claimed_before:
            first = Claim("claimed", 1, now + self._lease_ms, new_writer(), self._owner)
            try:
                version = self.objects.put_if_absent(f"claims/{unique}", first.encode())
            except ObjectExistsError:
                self._spread()
                return None  # claimed since the listing, so its lease is young: move on
            return self._open(unique, first, version)
        return self._claim_again(unique, now)

    def _spread(self) -> None:
        """Take the next few candidates in random order, after losing a race for one.

        Consumers that listed at about the same time would otherwise keep racing for the
        same oldest message, each loss a wasted request; a lone consumer keeps FIFO order.
        """
        head = [self._pending.popleft() for _ in range(min(_SHUFFLED, len(self._pending)))]
        random.shuffle(head)
        self._pending.extendleft(reversed(head))

    def _claim_again(self, unique: str, now: int) -> ObjectMessage | None:
        """Take over a claim that ran out or was released; tidy or bury as it requires."""
        found = self._readable_claim(unique)
        if found is None:
            return None  # finished and tidied since the listing (or not a claim we wrote)
        current, version = found
        if current.finished:
            self._tidy(unique, current, None)
            return None
        if current.state == "claimed" and current.until_ms > now:
            if self._recheck_ms is not None:
                self._recheck_ms = min(self._recheck_ms, current.until_ms)
            return None
        if current.tries >= self.max_tries:
            dead = Claim(
                "dead", current.tries, 0, derived_writer(current.writer, "dead"), self._owner
            )
            if self._swap(unique, dead, version) is not None:
                self._tidy(unique, dead, None)
            return None
        taken = Claim("claimed", current.tries + 1, now + self._lease_ms, new_writer(), self._owner)
        new_version = self._swap(unique, taken, version)
        return None if new_version is None else self._open(unique, taken, new_version)

    def _open(self, unique: str, claim: Claim, version: str) -> ObjectMessage | None:
        try:
            data = self.objects.get(f"new/{unique}").data
        except ObjectNotFoundError:
            # Finished and tidied after our listing: this claim is stale; nobody needs it.
            self.objects.delete(f"claims/{unique}")
            return None
        return ObjectMessage(
            unique,
            self._where("claims", unique),
            claim.tries,
            claim.until_ms / 1000,
            data=data,
            version=version,
            writer=claim.writer,
        )

    def _swap(self, unique: str, claim: Claim, version: str) -> str | None:
        """Replace a claim read at ``version``; None when another consumer changed it first."""
        key = f"claims/{unique}"
        try:
            return self.objects.put_if_match(key, claim.encode(), version)
        except ConflictError:
            return None
        except OutcomeUnknownError as unknown:
            found = self._settle(unique, unknown)
            return found[1] if found is not None and found[0].writer == claim.writer else None

    def _change(self, held: ObjectMessage, claim: Claim) -> tuple[str, Claim]:
        """Replace the claim ``held`` stands for by ``claim``; return the version and claim.

        A lost swap is settled by reading the claim: if it is ``claim``'s writer's (this very
        change, landed before: a lost reply, or a second call after an error), it stands.

        Raises:
            LeaseLostError: the claim is someone else's now.
            OutcomeUnknownError: the server failed and the claim is still as ``held`` read
                it: nothing changed; calling again is safe.
        """
        key = f"claims/{held.id}"
        try:
            return self.objects.put_if_match(key, claim.encode(), held.version), claim
        except (ConflictError, OutcomeUnknownError) as error:
            found = self._settle(held.id, error)
            if found is not None and found[0].writer == claim.writer:
                return found[1], found[0]
            if (
                isinstance(error, OutcomeUnknownError)
                and found is not None
                and found[1] == held.version
            ):
                raise
        raise LeaseLostError(held.path)

    def _settle(
        self, unique: str, error: ConflictError | OutcomeUnknownError
    ) -> tuple[Claim, str] | None:
        """Read the claim back after an unclear or lost swap.

        Raises:
            OutcomeUnknownError: ``error`` was one and the claim cannot be read either.
        """
        try:
            return self._read_claim(unique)
        except StoreUnavailableError:
            if isinstance(error, OutcomeUnknownError):
                raise error from None
            raise

    def _tidy(self, unique: str, claim: Claim, data: bytes | None) -> None:
        """Finish a done or dead message's tidying: copy it, delete ``new/``, then the claim."""
        area = "dead" if claim.state == "dead" else "done" if self.keep_done else None
        if area is not None:
            if data is None:
                try:
                    data = self.objects.get(f"new/{unique}").data
                except ObjectNotFoundError:
                    data = None  # copied and tidied by someone else already
            if data is not None:
                self.objects.put(f"{area}/{unique}", data)
        self.objects.delete(f"new/{unique}")
        self.objects.delete(f"claims/{unique}")

    def _now_ms(self) -> int:
        return math.floor(self._clock() * 1000)
