"""``.persistkit-queue.json``: the value format a DurableQueue was created with.

The first write to a queue records its format, so a later ``DurableQueue(path)`` without
``format=`` decodes what is there instead of guessing pickle. A queue written by persistkit
0.1 has no record; its format is recognised from its oldest item and recorded then.
"""

from __future__ import annotations

import json
import os

from persistkit.core import CorruptFileError, write_bytes
from persistkit.iodict._json_records import read_json_object
from persistkit.iodict._queue_names import META_NAME

_MAGIC = "persistkit-queue"


def read_queue_format(directory: str) -> str | None:
    """Return the recorded format name, or None when the queue has no record (reads only).

    Raises:
        CorruptFileError: the record exists but is not one.
    """
    path = os.path.join(directory, META_NAME)
    document = read_json_object(path)
    if document is None:
        return None
    if document.get("store") != _MAGIC or not isinstance(document.get("format"), str):
        raise CorruptFileError(path, "not a persistkit queue record")
    return str(document["format"])


def write_queue_format(directory: str, format_name: str) -> None:
    """Record the format, create-only and durably (a concurrent first writer wins)."""
    document = {"store": _MAGIC, "version": 1, "format": format_name}
    write_bytes(
        os.path.join(directory, META_NAME),
        (json.dumps(document, indent=1) + "\n").encode(),
        overwrite=False,
        follow_symlinks=False,
    )


def sniff_format(data: bytes) -> str | None:
    """Tell which built-in format an item written by persistkit 0.1 uses, if it can be told.

    pickle (protocol 2 and later) starts with ``0x80``; a BSON document starts with its own
    length (int32, little-endian) and ends with a zero byte; JSON is what json decodes.
    """
    if data[:1] == b"\x80":
        return "pickle"
    if len(data) >= 5 and int.from_bytes(data[:4], "little") == len(data) and data[-1:] == b"\0":
        return "bson"
    try:
        json.loads(data)
    except ValueError:
        return None
    return "json"
