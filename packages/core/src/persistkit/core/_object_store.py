"""The object-store interface: whole objects by key, with conditional writes.

Two implementations stand behind it: `LocalObjectStore` (a folder, written with core's
protocol) and `S3ObjectStore` (an S3-compatible server, through boto3). Packages that want
to run on either write against `ObjectStore` and nothing else.

Every write replaces a whole object at once: a reader sees the old bytes or the new, never a
mix. Versions are opaque strings; two objects with equal bytes have equal versions (S3's ETag
is the content's MD5, and the local backend uses the same), so a value that must survive an
A-B-A change (a counter that goes back, a state that returns) carries its own version or
writer id inside.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from dataclasses import dataclass

from persistkit.core.errors import InvalidArgumentError, ObjectNotFoundError

# S3's ListObjectsV2 returns at most this many keys per request.
MAX_PAGE_SIZE = 1000


def check_page_size(page_size: int) -> None:
    """Refuse a listing page size outside 1..1000 (`InvalidArgumentError`)."""
    if isinstance(page_size, bool) or not isinstance(page_size, int):
        raise InvalidArgumentError(f"page_size must be an int, not {page_size!r}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidArgumentError(f"page_size must be from 1 to {MAX_PAGE_SIZE}, not {page_size}")


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object's bytes and the version they have.

    Attributes:
        data: the whole object.
        version: an opaque token naming exactly these bytes; pass it to `put_if_match` or
            `delete_if_match`.
    """

    data: bytes
    version: str


class ObjectStore(abc.ABC):
    """Whole objects by key, with create-only writes and compare-and-swap.

    Keys are any non-empty strings (see the object-key encoding in the docs); two different
    keys never share an object and no key reaches outside the store's location.

    Example:
        >>> store = open_object_store("s3://my-bucket/jobs")  # doctest: +SKIP
        >>> first = store.put_if_absent("counter", b"0")  # doctest: +SKIP
        >>> store.put_if_match("counter", b"1", first)  # doctest: +SKIP
    """

    @property
    @abc.abstractmethod
    def location(self) -> str:
        """Where the objects live: a folder, or ``s3://bucket/prefix``."""

    @abc.abstractmethod
    def get(self, key: str) -> StoredObject:
        """Read a whole object and its version.

        Raises:
            ObjectNotFoundError: there is no object under ``key``.
        """

    def exists(self, key: str) -> bool:
        """Tell whether an object has ``key``, without reading it (one HEAD on S3)."""
        try:
            self.get(key)
        except ObjectNotFoundError:
            return False
        return True

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> str:
        """Create or replace an object unconditionally.

        When it returns, the object holds exactly ``data`` and is durable (the local backend
        with ``durability="atomic"`` excepted); readers never see part of it.

        Returns:
            The new version.
        """

    @abc.abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str:
        """Create an object only if no object has ``key``: of racing writers, exactly one wins.

        Returns:
            The new version.

        Raises:
            ObjectExistsError: the object exists; nothing was written.
            OutcomeUnknownError: the server failed mid-call and could not tell afterwards
                whether this write landed.
        """

    @abc.abstractmethod
    def put_if_match(self, key: str, data: bytes, version: str) -> str:
        """Replace an object only if it still has ``version`` (compare-and-swap).

        Returns:
            The new version.

        Raises:
            ConflictError: the object changed or is gone; nothing was written.
            OutcomeUnknownError: the outcome could not be settled (see `put_if_absent`).
            ConditionNotHonouredError: the server ignores ``If-Match`` on writes.
        """

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object if it exists (a missing object is not an error)."""

    @abc.abstractmethod
    def delete_if_match(self, key: str, version: str) -> None:
        """Remove an object only if it still has ``version``.

        Raises:
            ConflictError: the object changed or is gone; nothing was removed.
            OutcomeUnknownError: the outcome could not be settled (see `put_if_absent`).
            ConditionNotHonouredError: the server ignores ``If-Match`` on deletes.
        """

    @abc.abstractmethod
    def list(
        self, prefix: str = "", *, start_after: str | None = None, page_size: int = MAX_PAGE_SIZE
    ) -> Iterator[str]:
        """Yield the keys that start with ``prefix``, page by page.

        Keys come in the order of their object names' bytes, the same on every backend (not
        the order of the keys themselves). The listing is not a snapshot: objects written or
        removed while it runs may or may not appear.

        Args:
            prefix: only keys starting with this.
            start_after: only keys after this one in listing order (to resume a listing).
            page_size: how many keys one request asks for, 1 to 1000 (S3's most). A small
                page makes reading only the first few keys cheap; the keys are the same.

        Raises:
            InvalidArgumentError: ``page_size`` is not in 1..1000.
        """

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release connections and open files; the store may not be used afterwards."""

    def __enter__(self) -> ObjectStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
