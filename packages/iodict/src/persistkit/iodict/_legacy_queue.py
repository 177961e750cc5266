"""Items of an iodict 0.0.8 DurableQueue (or FlushQueue flush) found in a queue directory.

iodict 0.0.8 keeps a queue as an IODict whose keys are ``str(uuid4())``: each item is a
pickle in a file named ``sha3_224(key).hexdigest()`` with the key in ``user.key`` and a
wall-clock ``user.birthtime`` (8-byte big-endian double), or, on a mount without xattrs,
in a file named by the key itself. ``get`` pops the item with the oldest birth time
(``st_ctime`` where the attribute is missing).

persistkit does not move or rewrite these files. The first write to the queue gives them
numbers at the tail, in iodict's order, by recording ``number -> file name`` in
``.persistkit-queue.legacy.json`` (durably, before the tail moves past them); from then on
they are delivered like any other item, straight from where iodict wrote them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import struct

from persistkit.core import CorruptFileError, write_bytes
from persistkit.iodict._json_records import read_json_object
from persistkit.iodict._queue_names import LEGACY_MAP_NAME

_HASHED = re.compile(r"[0-9a-f]{56}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_KEY_ATTR = "user.key"
_BIRTH_ATTR = "user.birthtime"
# persistkit's own IODict items carry this; an item with it is never a queue item.
_PERSISTKIT_ORDER_ATTR = "user.pk.order"
_NO_ATTR = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM})


def _birth_time(path: str, info: os.stat_result) -> float:
    try:
        return float(struct.unpack(">d", os.getxattr(path, _BIRTH_ATTR, follow_symlinks=False))[0])
    except OSError as error:
        if error.errno not in _NO_ATTR:
            raise
    except struct.error:
        pass
    return info.st_ctime


def _is_queue_item(path: str, name: str) -> bool:
    """Whether a 56-hex file is an iodict 0.0.8 queue item (a uuid4 key that hashes to it)."""
    try:
        attrs = os.listxattr(path, follow_symlinks=False)
        if _PERSISTKIT_ORDER_ATTR in attrs or _KEY_ATTR not in attrs:
            return False
        key = os.getxattr(path, _KEY_ATTR, follow_symlinks=False)
    except OSError as error:
        if error.errno in _NO_ATTR or error.errno == errno.ENOENT:
            return False
        raise
    text = key.decode("ascii", "replace")
    return bool(_UUID.fullmatch(text)) and hashlib.sha3_224(key).hexdigest() == name


def find_legacy_items(directory: str) -> list[str]:
    """Return the names of iodict 0.0.8 queue items in ``directory``, in iodict's order.

    Reads only (a listing, and the xattrs of 56-hex files).
    """
    found: list[tuple[float, str]] = []
    try:
        entries = os.scandir(directory)
    except FileNotFoundError:
        return []
    with entries:
        for entry in entries:
            name = entry.name
            hashed = len(name) == 56 and _HASHED.fullmatch(name)
            if not hashed and not (len(name) == 36 and _UUID.fullmatch(name)):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode):
                    continue
                if hashed and not _is_queue_item(entry.path, name):
                    continue
                found.append((_birth_time(entry.path, info), name))
            except FileNotFoundError:
                continue
    found.sort()
    return [name for _, name in found]


def read_legacy_map(directory: str) -> dict[int, str]:
    """Return the recorded ``number -> file name`` of adopted iodict 0.0.8 items.

    Raises:
        CorruptFileError: the record exists but cannot be read.
    """
    path = os.path.join(directory, LEGACY_MAP_NAME)
    document = read_json_object(path)
    if document is None:
        return {}
    try:
        mapping = {int(number): str(name) for number, name in document["items"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise CorruptFileError(path, f"{type(error).__name__}: {error}") from error
    for name in mapping.values():
        if not (_HASHED.fullmatch(name) or _UUID.fullmatch(name)):
            raise CorruptFileError(path, f"{name!r} is not an iodict 0.0.8 item name")
    return mapping


def write_legacy_map(directory: str, mapping: dict[int, str]) -> None:
    """Replace the record of adopted items, atomically and durably."""
    document = {"items": {str(number): name for number, name in sorted(mapping.items())}}
    write_bytes(
        os.path.join(directory, LEGACY_MAP_NAME),
        (json.dumps(document, indent=0) + "\n").encode(),
        follow_symlinks=False,
    )
