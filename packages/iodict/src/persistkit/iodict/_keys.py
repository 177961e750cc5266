"""Keys: which types are stored, their canonical bytes, and the file name each one gets.

A ``str`` key's canonical bytes are its UTF-8 (lone surrogates kept through
``surrogatepass``), exactly what iodict 0.0.8 wrote to ``user.key`` and hashed for the file
name, so directories stay readable both ways. Every other supported key is a tagged,
length-prefixed encoding that starts with byte 0xFF, which never occurs in UTF-8 (nor in
``surrogatepass`` output), so no key of one type can encode to the bytes of another.

The file name is the SHA3-224 hex digest of the canonical bytes: 56 characters of
``[0-9a-f]``, whatever the key. No key can reach outside the directory or exceed NAME_MAX, and
distinct keys have distinct canonical bytes, so names collide only if SHA3-224 does; the
stored key is checked on every read anyway.
"""

from __future__ import annotations

import hashlib
import re
import struct
from typing import Union

from persistkit.iodict.errors import UnsupportedKeyError

Key = Union[str, bytes, int, tuple["Key", ...]]  # noqa: UP007 - a recursive alias needs Union
"""The keys an `IODict` stores: ``str``, ``bytes``, ``int`` (not ``bool``) and tuples of them."""

NAME_PATTERN = re.compile(r"[0-9a-f]{56}")
_NON_STR = b"\xff"
_LENGTH = struct.Struct(">I")
_MAX_DEPTH = 32


def canonical_bytes(key: object) -> bytes:
    """Return the canonical bytes of ``key``.

    Raises:
        UnsupportedKeyError: ``key`` is not a str, bytes, int (bool excluded) or a tuple of
            those.
    """
    if type(key) is str:
        return key.encode("utf-8", "surrogatepass")
    return _NON_STR + _tagged(key, 0)


def _tagged(key: object, depth: int) -> bytes:
    if depth > _MAX_DEPTH:
        raise UnsupportedKeyError(f"tuple keys may nest at most {_MAX_DEPTH} levels")
    if isinstance(key, str):
        payload, tag = key.encode("utf-8", "surrogatepass"), b"s"
    elif isinstance(key, bytes):
        payload, tag = key, b"b"
    elif isinstance(key, int) and not isinstance(key, bool):
        payload, tag = str(int(key)).encode(), b"i"
    elif isinstance(key, tuple):
        payload, tag = b"".join(_tagged(item, depth + 1) for item in key), b"t"
    else:
        raise UnsupportedKeyError(
            f"IODict keys must be str, bytes, int or tuples of them, not {type(key).__name__}"
        )
    return tag + _LENGTH.pack(len(payload)) + payload


def key_from_bytes(data: bytes) -> Key:
    """Decode canonical bytes back into the key.

    Raises:
        ValueError: ``data`` is not a canonical encoding.
    """
    if not data.startswith(_NON_STR):
        return data.decode("utf-8", "surrogatepass")
    key, end = _untag(data, 1)
    if end != len(data):
        raise ValueError("trailing bytes after the key")
    return key


def _untag(data: bytes, start: int) -> tuple[Key, int]:
    tag = data[start : start + 1]
    (length,) = _LENGTH.unpack_from(data, start + 1)
    begin = start + 1 + _LENGTH.size
    end = begin + length
    if end > len(data):
        raise ValueError("truncated key")
    payload = data[begin:end]
    if tag == b"s":
        return payload.decode("utf-8", "surrogatepass"), end
    if tag == b"b":
        return bytes(payload), end
    if tag == b"i":
        return int(payload.decode("ascii")), end
    if tag == b"t":
        items: list[Key] = []
        position = begin
        while position < end:
            item, position = _untag(data, position)
            items.append(item)
        if position != end:
            raise ValueError("malformed tuple key")
        return tuple(items), end
    raise ValueError(f"unknown key tag {tag!r}")


def file_name(key_bytes: bytes) -> str:
    """Return the item file name for a key's canonical bytes (iodict 0.0.8's naming)."""
    return hashlib.sha3_224(key_bytes).hexdigest()
