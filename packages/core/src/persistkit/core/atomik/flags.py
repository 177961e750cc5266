"""atomik's rename flags: which renameat2 behaviour `persistkit.core.atomik.rename.rename` uses."""

from __future__ import annotations

import enum

__all__ = ["Flag"]


class Flag(enum.StrEnum):
    """How a rename treats an existing destination (the values are atomik's)."""

    RENAME = "REPLACE"
    """Replace an existing destination (plain ``rename``)."""
    RENAME_NOREPLACE = "NO_REPLACE"
    """Fail with `FileAlreadyExistsError` if the destination exists."""
    RENAME_EXCHANGE = "EXCHANGE"
    """Swap two existing names."""
