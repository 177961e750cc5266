r"""Object keys to safe object names, one encoding for every object-store backend.

Any string is a valid key; the name it is stored under is safe on every backend:

- Its UTF-8 bytes (lone surrogates kept, ``surrogatepass``) are written out with letters,
  digits, ``-`` and ``_`` as they are and every other byte as ``%XX`` (upper-case hex). So a
  name holds no ``/``, ``.``, ``\``, space or control character of the key's own: nothing a
  server or a filesystem can read as a path (``a//b``, a trailing ``/``, ``..``), normalise or
  refuse (SeaweedFS turns ``\`` into ``/``, drops the body of a name ending in ``/``,
  rejects ``..`` segments and NUL).
- Every 240 bytes (at a ``%XX`` boundary) the name is cut by ``~/``. SeaweedFS and local
  filesystems refuse a path segment longer than 255 bytes; the ``~`` (which an encoded key
  never holds) keeps a cut segment's name from clashing with a key's own name, so locally a
  key can be a file while a longer key beginning with it lives in a folder beside it.
- A name (with its cuts) may be at most `MAX_NAME_BYTES` long, the S3 limit for a whole key;
  a longer key is refused with `InvalidNameError`. Keys longer than that belong in the value,
  under a hash as the key.

The encoding is prefix-preserving both ways: key ``k`` starts with ``p`` exactly when
``name(k)`` starts with ``name_prefix(p)``, so listing by a key prefix is a listing by a name
prefix on the server. Names sort by their bytes, which is not the order of their keys.
"""

from __future__ import annotations

import re

from persistkit.core.errors import InvalidNameError

MAX_NAME_BYTES = 1024
"""The longest object name (cuts included) a key may encode to: S3's limit for a whole key."""

SEGMENT_BYTES = 240
CUT = "~/"

_LITERAL = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
_CODEWORDS = [chr(byte) if byte in _LITERAL else f"%{byte:02X}" for byte in range(256)]
_NAME = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2}|~/)+")


def _encode(key: str) -> str:
    if not isinstance(key, str):
        raise InvalidNameError(f"an object key must be a str, not {type(key).__name__}")
    parts: list[str] = []
    length = 0
    for byte in key.encode("utf-8", "surrogatepass"):
        word = _CODEWORDS[byte]
        if length + len(word) > SEGMENT_BYTES:
            parts.append(CUT)
            length = 0
        parts.append(word)
        length += len(word)
    return "".join(parts)


def object_name(key: str, *, room: int = MAX_NAME_BYTES) -> str:
    """Return the safe object name for ``key``.

    Args:
        key: any non-empty string.
        room: the bytes left for the name once the location's own prefix is counted.

    Raises:
        InvalidNameError: the key is empty, not a string, or too long once encoded.
    """
    if key == "":
        raise InvalidNameError("an object key cannot be empty")
    name = _encode(key)
    if len(name) > room:
        raise InvalidNameError(
            f"the key {key[:40]!r}... encodes to {len(name)} bytes, more than the "
            f"{room} this location allows; store long keys inside the value under a hash"
        )
    return name


def name_prefix(prefix: str) -> str:
    """Return the name prefix that exactly the keys starting with ``prefix`` have."""
    return _encode(prefix)


def key_of(name: str) -> str | None:
    """Return the key stored under ``name``, or None when no key encodes to it.

    Names that are not encodings (another program's objects, temporary files, probes) are
    not keys: listings skip them.
    """
    if not _NAME.fullmatch(name):
        return None
    raw = bytearray()
    index = 0
    while index < len(name):
        char = name[index]
        if char == "%":
            raw.append(int(name[index + 1 : index + 3], 16))
            index += 3
        elif char == "~":
            index += 2
        else:
            raw.append(ord(char))
            index += 1
    try:
        key = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    return key if key and _encode(key) == name else None
