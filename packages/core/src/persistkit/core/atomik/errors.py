"""atomik's exceptions, each also the persistkit error and builtin it stands for.

``except atomik.errors.FileAlreadyExistsError`` keeps working after switching to
``persistkit.core.atomik``, and so do ``except FileExistsError`` and
``except persistkit.core.TargetExistsError``.
"""

from __future__ import annotations

from persistkit.core.errors import CrossDeviceError, PersistkitError, TargetExistsError

__all__ = ["AtomikError", "FileAlreadyExistsError", "InvalidCrossDeviceError"]


class AtomikError(PersistkitError):
    """Root of the errors atomik's API raises."""


class FileAlreadyExistsError(AtomikError, TargetExistsError):
    """The destination exists and the call was asked not to overwrite it."""


class InvalidCrossDeviceError(AtomikError, CrossDeviceError):
    """Source and destination are on different filesystems; nothing is copied."""
