"""persistkit-spool: a maildir spool for lock-free, crash-safe hand-off between processes.

`FileStore` is gocept.filestore's API (switch by changing the import) made safe: names
cannot leave the store, nothing is silently overwritten, copies are atomic and moves into
``new`` durable. `Spool` is the whole maildir protocol: producers `Spool.deliver` messages
under maildir-unique names, durable once the call returns; consumers `Spool.claim` the oldest
one with one atomic rename (the loser of a race takes the next), under a lease that brings
the message back if the consumer dies, with a retry count and a dead-letter area. Given an
``s3://bucket/prefix`` URL or an object store, `Spool` makes an `ObjectSpool`: the same API
with exactly-once claims between machines, through conditional writes.

Example:
    >>> from persistkit.spool import Spool
    >>> spool = Spool("/var/spool/jobs")  # doctest: +SKIP
    >>> spool.deliver(b"resize cat.png")  # doctest: +SKIP
    >>> message = spool.claim(timeout=None)  # doctest: +SKIP
    >>> spool.done(message)  # doctest: +SKIP
"""

from importlib import metadata as _metadata

from persistkit.spool._filestore import FileStore
from persistkit.spool._object_spool import ObjectMessage, ObjectSpool
from persistkit.spool._spool import MAILDIR_TMP_MAX_AGE, Message, Spool
from persistkit.spool.errors import (
    InvalidAreaError,
    InvalidNameError,
    LeaseLostError,
    SpoolError,
    TargetExistsError,
)

__version__ = _metadata.version("persistkit-spool")

__all__ = [
    "MAILDIR_TMP_MAX_AGE",
    "FileStore",
    "InvalidAreaError",
    "InvalidNameError",
    "LeaseLostError",
    "Message",
    "ObjectMessage",
    "ObjectSpool",
    "Spool",
    "SpoolError",
    "TargetExistsError",
    "__version__",
]
