"""persistkit-store: one value in one file, replaced atomically on every commit.

atomic_store's API (switch with ``from persistkit import store as atomic_store``), with what
its README promises kept: an exception in a ``with`` block does not commit, the default is
copied, a corrupt file raises instead of being replaced, the file's mode survives, and every
commit is durable by default. Beyond it, `AtomicStore.transaction` locks the file across
processes so concurrent updates are not lost, and a store can live in an object store
(``open("s3://bucket/prefix/name.json")``), where transactions compare and swap.

Example:
    >>> from persistkit import store
    >>> with store.open("runs.json", default=[]) as runs:  # doctest: +SKIP
    ...     runs.value.append("2024-05-01 12:00")
"""

from importlib import metadata as _metadata

from persistkit.store._format_bases import AbstractFormatBstr, AbstractFormatFile, WrapBinaryFormat
from persistkit.store._store import AtomicStore, open
from persistkit.store.errors import (
    CorruptFileError,
    FormatError,
    LockTimeoutError,
    SerializationError,
    TransactionConflictError,
    TransactionError,
)

__version__ = _metadata.version("persistkit-store")

__all__ = [
    "AbstractFormatBstr",
    "AbstractFormatFile",
    "AtomicStore",
    "CorruptFileError",
    "FormatError",
    "LockTimeoutError",
    "SerializationError",
    "TransactionConflictError",
    "TransactionError",
    "WrapBinaryFormat",
    "__version__",
    "open",
]
