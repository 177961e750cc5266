"""A store's value kept as one object of an object store (S3, or core's local backend).

The protocol, per call (S3 requests in brackets):

- read: ``get`` the object [1 GET]; missing means the default. The envelope's lineage
  (`_envelope`) and the object's version are remembered.
- plain commit: ``put`` the envelope of a new write on top of the remembered lineage [1 PUT].
  Like a commit to a local file, it replaces whatever is there.
- commit inside a transaction: ``put_if_match`` from the remembered version, or
  ``put_if_absent`` when the object was missing [1 PUT]. If another writer replaced the
  object since it was read, nothing is written and `TransactionConflictError` is raised: the
  transaction runs its block again on a fresh read.

The commit point is the server's acceptance of that one request; there is no other object
and nothing to clean up after a crash.

When the server fails in the middle of a compare-and-swap and core cannot settle it
(`OutcomeUnknownError`: the object changed since, and not to our write), the object is read
again: if our writer id is in its lineage, the write landed; if the lineage reaches back to
the version we replaced (or to the object's first write) without our id, it did not, and the
transaction is simply run again; only when more writes than the lineage remembers came in
between does `OutcomeUnknownError` reach the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from persistkit.core import ObjectStore
from persistkit.core.errors import (
    ConflictError,
    CorruptFileError,
    ObjectNotFoundError,
    OutcomeUnknownError,
    StoreUnavailableError,
)
from persistkit.store._envelope import Lineage, new_writer, unwrap, wrap
from persistkit.store.errors import TransactionConflictError


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What one read found: the encoded value, and where it stands in the object's history.

    Attributes:
        value: the encoded value (the envelope removed), or None when there is no object.
        version: the object's version (None when there is no object).
        lineage: the envelope's lineage.
    """

    value: bytes | None
    version: str | None
    lineage: Lineage


class ObjectValue:
    """One store's object: reads it, and writes it plainly or by compare-and-swap.

    Args:
        objects: the object store.
        key: the object's key in it.
    """

    def __init__(self, objects: ObjectStore, key: str) -> None:
        self.objects = objects
        self.key = key
        self.where = f"{objects.location.rstrip('/')}/{key}"
        self._version: str | None = None
        self._lineage = Lineage()
        # Our write landed but others wrote on top before we could read it back: the next
        # compare-and-swap of this transaction must fail, from whichever version.
        self._overtaken = False

    @property
    def durable(self) -> bool:
        """Whether an accepted write is durable (S3: as the server makes it; local: fsynced)."""
        return getattr(self.objects, "durability", "durable") == "durable"

    def fetch(self) -> Snapshot:
        """Read the object (one GET); nothing is remembered until `adopt`.

        Raises:
            CorruptFileError: its envelope header is damaged.
            StoreUnavailableError: the server cannot be reached.
        """
        try:
            found = self.objects.get(self.key)
        except ObjectNotFoundError:
            return Snapshot(None, None, Lineage())
        lineage, value = unwrap(found.data, self.where)
        return Snapshot(value, found.version, lineage)

    def adopt(self, snapshot: Snapshot) -> None:
        """Remember ``snapshot`` as the version the next writes build on."""
        self._version, self._lineage = snapshot.version, snapshot.lineage
        self._overtaken = False

    def put(self, value: bytes) -> None:
        """Replace the object unconditionally with ``value`` in a new envelope (one PUT)."""
        lineage = self._lineage.after(new_writer())
        version = self.objects.put(self.key, wrap(lineage, value))
        self._version, self._lineage, self._overtaken = version, lineage, False

    def swap(self, value: bytes) -> None:
        """Replace the object with ``value`` only if it is still the version last read.

        Raises:
            TransactionConflictError: another writer replaced (or created) the object since;
                nothing was written.
            OutcomeUnknownError: the server failed, and neither core nor a re-read could tell
                whether the write landed.
        """
        if self._overtaken:
            raise TransactionConflictError(
                f"{self.where!r} was changed by another writer since this transaction read it"
            )
        writer = new_writer()
        lineage = self._lineage.after(writer)
        body = wrap(lineage, value)
        try:
            if self._version is None:
                version: str | None = self.objects.put_if_absent(self.key, body)
            else:
                version = self.objects.put_if_match(self.key, body, self._version)
        except ConflictError:
            raise TransactionConflictError(
                f"{self.where!r} was changed by another writer since this transaction read it"
            ) from None
        except OutcomeUnknownError as unknown:
            version = self._settle(writer, unknown)
        self._version, self._lineage, self._overtaken = version, lineage, version is None

    def _settle(self, writer: str, unknown: OutcomeUnknownError) -> str | None:
        """Tell from the object's lineage whether our write landed.

        Returns:
            The object's version if our write is its newest; None if it landed and others
            wrote on top since.

        Raises:
            TransactionConflictError: it did not land.
            OutcomeUnknownError: the object cannot be read, or more writes than its lineage
                keeps came in between.
        """
        try:
            found = self.fetch()
        except (StoreUnavailableError, CorruptFileError):
            raise unknown from None
        if writer in found.lineage.writers:
            return found.version if found.lineage.head == writer else None
        if found.version is not None and (
            found.lineage.complete()
            or (self._lineage.head is not None and self._lineage.head in found.lineage.writers)
        ):
            raise TransactionConflictError(
                f"{self.where!r}: the server failed and the write did not land "
                "(another writer's is there)"
            ) from unknown
        raise unknown
