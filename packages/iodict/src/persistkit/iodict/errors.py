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
    "KeylessItemsWarning",
    "LayoutError",
    "LeaseLostError",
    "QueueClosedError",
    "ReadOnlyStoreError",
    "StorePathError",
    "UnsupportedKeyError",
]


class UnsupportedKeyError(PersistkitError, TypeError):
    """A key of a type IODict does not store (only str, bytes, int and tuples of them).

    Raised before anything on disk changes.
    """


class KeyTooLongError(InvalidArgumentError):
    """A key is too long for any layout to hold (more than 4 GiB of canonical bytes).

    Keys longer than the mount's extended attributes can hold are stored in a header inside
    the item instead; raised before anything on disk changes.
    """


class StorePathError(PersistkitOSError, NotADirectoryError):
    """The store's path exists and is not a directory; it is left untouched."""


class LayoutError(InvalidArgumentError):
    """The directory was written in another layout or format than the one asked for."""


class ReadOnlyStoreError(PersistkitOSError, PermissionError):
    """A write was asked of a store opened for reading (``read_only=True``).

    Stores on read-only media open for reading by themselves; a write there fails with the
    system's own ``OSError`` (``EROFS``) instead. Nothing on disk changed.
    """


class KeylessItemsWarning(UserWarning):
    """Item files whose key cannot be recovered were found; they are kept, not iterated.

    Such a file has lost its ``user.key`` xattr (a copy made without xattrs) and is not in
    the order index that a copy carries along. `IODict.keyless_files` lists them.
    """


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
