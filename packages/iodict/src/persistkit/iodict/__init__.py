"""persistkit-iodict: a dict on a directory in insertion order, and durable queues.

A drop-in for iodict: change ``from iodict import IODict`` to
``from persistkit.iodict import IODict`` (or ``import iodict`` to
``from persistkit import iodict``). Every item is written through persistkit-core
(temporary file, fsync, one rename, directory fsync), so a crash never leaves half an item.

Example:
    >>> from persistkit.iodict import IODict
    >>> data = IODict("/tmp/iodict-example")  # doctest: +SKIP
    >>> data["key"] = "value"  # doctest: +SKIP
"""

from importlib import metadata as _metadata

from persistkit.iodict import _object_iodict  # noqa: F401 - registers IODict's s3:// variant
from persistkit.iodict._base import BaseClass
from persistkit.iodict._claim import Claim
from persistkit.iodict._dead_letters import DeadLetter
from persistkit.iodict._flush import FlushQueue
from persistkit.iodict._iodict import IODict
from persistkit.iodict._keys import Key
from persistkit.iodict._queue import DurableQueue
from persistkit.iodict.errors import (
    KeylessItemsWarning,
    KeyTooLongError,
    LayoutError,
    LeaseLostError,
    QueueClosedError,
    ReadOnlyStoreError,
    StorePathError,
    UnsupportedKeyError,
)

__version__ = _metadata.version("persistkit-iodict")

__all__ = [
    "BaseClass",
    "Claim",
    "DeadLetter",
    "DurableQueue",
    "FlushQueue",
    "IODict",
    "Key",
    "KeyTooLongError",
    "KeylessItemsWarning",
    "LayoutError",
    "LeaseLostError",
    "QueueClosedError",
    "ReadOnlyStoreError",
    "StorePathError",
    "UnsupportedKeyError",
    "__version__",
]
