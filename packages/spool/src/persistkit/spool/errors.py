"""The errors persistkit-spool raises on purpose.

Each is rooted in `persistkit.core.errors` and is also the builtin a caller would already
catch: a bad name is a `ValueError`, a lost claim a `FileNotFoundError`.
"""

from __future__ import annotations

import errno

from persistkit.core.errors import (
    InvalidArgumentError,
    InvalidNameError,
    PersistkitError,
    PersistkitOSError,
    TargetExistsError,
)

__all__ = [
    "InvalidAreaError",
    "InvalidNameError",
    "LeaseLostError",
    "PersistkitError",
    "SpoolError",
    "TargetExistsError",
]


class SpoolError(PersistkitError):
    """Root of the errors that only persistkit-spool raises."""


class InvalidAreaError(SpoolError, InvalidArgumentError):
    """An area was named that the store does not have (``tmp``, ``new``, ``cur``...)."""


class LeaseLostError(SpoolError, PersistkitOSError, FileNotFoundError):
    """The claimed message is no longer held under this claim.

    Its lease expired and another consumer took it over (or it was already finished,
    released or dead-lettered through another `Message` object). Nothing was changed.
    """

    def __init__(self, path: str) -> None:
        super().__init__(
            errno.ENOENT, "the claim on this message was lost (its lease expired?)", path
        )

    def __reduce__(self) -> tuple[type[LeaseLostError], tuple[str]]:
        return (type(self), (str(self.filename),))
