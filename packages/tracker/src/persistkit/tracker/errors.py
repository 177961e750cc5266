"""The errors persistkit-tracker raises.

Each one derives from `persistkit.core.errors.PersistkitError` and from the builtin a caller
would already catch: a duplicate task is a `KeyError`, a damaged store a `ValueError`, a key
of the wrong type both a `TypeError` and a `ValueError` (tastypy raised `ValueError`, a `dict`
raises `TypeError`). tastypy's exception names are kept as aliases so ``except`` clauses
written for tastypy keep working.
"""

from __future__ import annotations

from persistkit.core.errors import (
    CorruptFileError,
    InvalidArgumentError,
    PersistkitError,
    PersistkitOSError,
)

__all__ = [
    "CalledClosedTrackerError",
    "ClosedStoreError",
    "DuplicateKeyError",
    "IntegrityError",
    "InvalidKeyError",
    "PersistentOrderedDictException",
    "PersistentOrderedDictIntegrityError",
    "ReadOnlyStoreError",
    "StoreMismatchError",
    "TrackerError",
]


class TrackerError(PersistkitError):
    """Root of the errors this package raises (tastypy: ``PersistentOrderedDictException``)."""


class DuplicateKeyError(TrackerError, KeyError):
    """`ProgressTracker.add` was given a key that is already a task.

    Attributes:
        key: the key that exists already.
    """

    def __init__(self, key: object) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"the tracker already has the key {self.key!r}"


class InvalidKeyError(TrackerError, InvalidArgumentError, TypeError):
    """A key is not a str, an int or a (nested) tuple of them; nothing was changed."""


class IntegrityError(TrackerError, CorruptFileError):
    """A store's files cannot be read back as a whole (a file missing, a line undecodable).

    The files are left as they are: persistkit never replaces a damaged store with an empty
    one. ``path`` names the file (or the store folder) and ``reason`` says what is wrong.
    """


class ReadOnlyStoreError(TrackerError, PersistkitOSError, PermissionError):
    """A store opened for reading (``read_only=True``, or on read-only media) was changed.

    Reading works as usual; a sync that would write raises this, and the files are left as
    they are. ``errno`` is ``EROFS`` and ``filename`` the store's folder.
    """


class StoreMismatchError(TrackerError, InvalidArgumentError):
    """The folder holds a store that does not match the arguments (e.g. ``gzipped``)."""


class ClosedStoreError(TrackerError, ValueError):
    """The object was closed with ``close()`` and cannot be used any more."""


PersistentOrderedDictException = TrackerError
PersistentOrderedDictIntegrityError = IntegrityError
CalledClosedTrackerError = ClosedStoreError
