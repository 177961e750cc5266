"""The errors persistkit-iodict raises on purpose.

Each is rooted in `persistkit.core.errors.PersistkitError` and is also the builtin exception a
user of a plain ``dict`` or ``queue.Queue`` would already catch. All of them pickle, so they
cross process boundaries intact.
"""

from __future__ import annotations

from persistkit.core.errors import InvalidArgumentError, PersistkitError, PersistkitOSError

__all__ = [
    "KeyTooLongError",
    "LayoutError",
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
