"""The errors persistkit-store raises.

Besides its own `TransactionError`, the store raises core's errors, re-exported here so one
import covers everything a store user catches:

- `CorruptFileError` (a `ValueError`): the file exists but cannot be decoded. The file is left
  as it is and never replaced by the default.
- `SerializationError` (a `TypeError` and `ValueError`): the value cannot be encoded; the
  file was not touched.
- `FormatError` (a `ValueError`): the format is unknown or lacks dump/load or dumps/loads.
- `LockTimeoutError` (a `TimeoutError`): a transaction could not take the lock in time.
- `TransactionConflictError` (a `ConflictError` and a `TimeoutError`): a transaction on an
  object store lost its compare-and-swap every time it was allowed to try; nothing of its
  last attempt was written.
- `InvalidArgumentError` (a `ValueError`): an argument the store cannot accept.

Errors of the environment (a missing directory, a file nobody may read, a full disk) arrive as
the builtin `OSError` subclass with ``filename`` set. On an object store the server's failures
arrive as core's `StoreUnavailableError` (a `ConnectionError`), and a transaction whose
outcome the server's failure left open, and re-reading could not settle, as
`OutcomeUnknownError`.
"""

from __future__ import annotations

from persistkit.core.errors import (
    ConflictError,
    CorruptFileError,
    FormatError,
    InvalidArgumentError,
    LockTimeoutError,
    OutcomeUnknownError,
    PersistkitError,
    SerializationError,
    StoreUnavailableError,
)

__all__ = [
    "CorruptFileError",
    "FormatError",
    "InvalidArgumentError",
    "LockTimeoutError",
    "OutcomeUnknownError",
    "SerializationError",
    "StoreUnavailableError",
    "TransactionConflictError",
    "TransactionError",
]


class TransactionError(PersistkitError, RuntimeError):
    """A transaction was started where it could not keep its promise.

    Raised before the lock is taken and before anything is read or written: when the store is
    already inside a ``with`` block or another transaction, because re-reading the file would
    silently throw away the changes that block has made in memory.
    """


class TransactionConflictError(ConflictError, TimeoutError):
    """A transaction on an object store could not commit: the value kept changing under it.

    Each attempt read the value, ran the block and tried to replace the value by
    compare-and-swap; another writer had replaced it first every time. Raised by a ``with
    store.transaction():`` block (one attempt) and by the ``for attempt in
    store.transaction():`` loop once its attempts or its timeout are used up. Nothing of the
    attempt that raised it was written; ``value`` holds what its block left (`reload` gives
    the stored value back). Also a `TimeoutError`, as `LockTimeoutError` is for a store on a
    local file: the transaction did not get its turn.
    """
