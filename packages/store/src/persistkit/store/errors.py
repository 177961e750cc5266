"""The errors persistkit-store raises.

Besides its own `TransactionError`, the store raises core's errors, re-exported here so one
import covers everything a store user catches:

- `CorruptFileError` (a `ValueError`): the file exists but cannot be decoded. The file is left
  as it is and never replaced by the default.
- `SerializationError` (a `TypeError` and `ValueError`): the value cannot be encoded; the
  file was not touched.
- `FormatError` (a `ValueError`): the format is unknown or lacks dump/load or dumps/loads.
- `LockTimeoutError` (a `TimeoutError`): a transaction could not take the lock in time.
- `InvalidArgumentError` (a `ValueError`): an argument the store cannot accept.

Errors of the environment (a missing directory, a file nobody may read, a full disk) arrive as
the builtin `OSError` subclass with ``filename`` set.
"""

from __future__ import annotations

from persistkit.core.errors import (
    CorruptFileError,
    FormatError,
    InvalidArgumentError,
    LockTimeoutError,
    PersistkitError,
    SerializationError,
)

__all__ = [
    "CorruptFileError",
    "FormatError",
    "InvalidArgumentError",
    "LockTimeoutError",
    "SerializationError",
    "TransactionError",
]


class TransactionError(PersistkitError, RuntimeError):
    """A transaction was started where it could not keep its promise.

    Raised before the lock is taken and before anything is read or written: when the store is
    already inside a ``with`` block or another transaction, because re-reading the file would
    silently throw away the changes that block has made in memory.
    """
