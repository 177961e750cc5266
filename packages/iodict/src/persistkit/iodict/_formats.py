"""Choosing the codec of a store or queue that may already record its value format.

One rule for a folder's `IODict`, an `ObjectIODict` and a `DurableQueue`: a recorded
format wins, ``format=`` may only repeat it, and a recorded format that is not one of the
named built-ins must be passed (it names a codec only the caller can supply).
"""

from __future__ import annotations

from typing import Any

from persistkit.core import Codec, resolve_format
from persistkit.iodict.errors import LayoutError

NAMED_FORMATS = ("pickle", "json", "bson")


def resolve_recorded_format(format: Any, stored: str | None, where: str) -> Codec:
    """Return the codec to use given the caller's ``format`` and the recorded one.

    Args:
        format: what the caller passed as ``format=`` (None: as recorded, else pickle).
        stored: the recorded format's name, or None when nothing is recorded yet.
        where: the store's location, for the error message.

    Raises:
        LayoutError: ``format`` differs from the recorded one, or the recorded one is not
            a named format and ``format`` was not given.
    """
    if stored is None:
        return resolve_format("pickle" if format is None else format)
    if format is None:
        if stored not in NAMED_FORMATS:
            raise LayoutError(f"{where!r} stores values as {stored!r}; pass that format")
        return resolve_format(stored)
    codec = resolve_format(format)
    if codec.name != stored:
        raise LayoutError(f"{where!r} stores values as {stored!r}, not {codec.name!r}")
    return codec
