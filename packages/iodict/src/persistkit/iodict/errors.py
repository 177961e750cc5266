"""The errors persistkit-iodict raises on purpose.

Each is rooted in `persistkit.core.errors.PersistkitError` and is also the builtin exception a
user of a plain ``dict`` or ``queue.Queue`` would already catch. All of them pickle, so they
cross process boundaries intact.
"""

from __future__ import annotations

import errno

from persistkit.core.errors import InvalidArgumentError, PersistkitError, PersistkitOSError

__all__ = [
    "KeyTooLongError",
    "LayoutError",
    "LeaseLostError",
    "QueueClosedError",
    "StorePathError",
    "UnsupportedKeyError",
]


class UnsupportedKeyError(PersistkitError, TypeError):
    """A key of a type IODict does not store (only str, bytes, int and tuples of them).

    Raised before anything on disk changes.
    """


class KeyTooLongError(InvalidArgumentError):
    """A key is too long for the extended attribute that would hold it.

    Only stores kept in extended attributes limit keys (to a little under the mount's
    ``xattr_max_size``); raised before anything on disk changes.
    """


class StorePathError(PersistkitOSError, NotADirectoryError):
    """The store's path exists and is not a directory; it is left untouched."""


class LayoutError(InvalidArgumentError):
    """The directory was written in another layout or format than the one asked for."""


class QueueClosedError(PersistkitError, ValueError):
    """`DurableQueue.close` was called; the queue object can no longer be used."""


class LeaseLostError(PersistkitOSError, FileNotFoundError):
    """A `Claim` no longer holds its item; nothing was changed.

    Its lease ran out and another consumer claimed the item (which will settle it), or the
    claim was already settled.
    """

    def __init__(self, path: str) -> None:
        super().__init__(errno.ENOENT, "the claim on this item was lost (its lease ran out?)", path)

    def __reduce__(self) -> tuple[type[LeaseLostError], tuple[str]]:
        return (type(self), (str(self.filename),))
