"""How an IODict lays itself out in an object store: the objects' keys and bodies.

Under the store's location (an ``s3://bucket/prefix`` or any core `ObjectStore`):

- ``meta``: JSON ``{"persistkit-iodict": 1, "format": "pickle"}``, created once
  (``put_if_absent``) by the first writer; the format is kept for life.
- ``births``: the birth counter, JSON ``{"next": n, "by": token}``. A new key takes the next
  birth by compare-and-swap; numbers only grow, so two bodies are never equal (no A-B-A), and
  a number is used only once its swap is confirmed: a number lost to an unclear answer is a
  gap, never a duplicate.
- ``items/<sha3-224 of the key's canonical bytes>``: one item: a header, the key's canonical
  bytes, its birth and the value's payload. Created with ``put_if_absent`` (one creator of a
  key wins), replaced with ``put_if_match`` (the birth is kept), removed with
  ``delete_if_match`` (one remover wins).
- ``order/<birth:012d>k<key, base64url>``: the order index, one immutable object per birth,
  created (``put_if_absent``) before its item and removed after it. Listing ``order/`` gives
  the keys in birth order (1,000 per request on S3) without reading any object. A key longer
  than `_KEY_IN_NAME` bytes is named by its item's hash instead (``order/<birth>h<hash>``)
  and read from the entry's body, which always holds the key's canonical bytes.

The fixed-width birth is kept literally by core's key encoding (digits are never escaped), so
the entries' object names sort like their births on every backend.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import struct
from dataclasses import dataclass

from persistkit.core import CorruptFileError
from persistkit.iodict._keys import file_name

META = "meta"
BIRTHS = "births"
ITEMS = "items/"
ORDER = "order/"
FORMAT_VERSION = 1

_ITEM_MAGIC = b"PKIODICT"
_ITEM_HEAD = struct.Struct(">8sBQI")  # magic, version, birth, key length
_BIRTH_DIGITS = 12
# Keys up to this many canonical bytes are spelled out in their order entry's name (base64url:
# 4/3 bytes each, never escaped by core's encoding); longer ones are named by their hash.
_KEY_IN_NAME = 384
_ENTRY = re.compile(r"order/(\d{12})([kh])([A-Za-z0-9_-]*)")
_DIGEST = re.compile(r"[0-9a-f]{56}")


def item_key(key_bytes: bytes) -> str:
    """The object key of a key's item."""
    return ITEMS + file_name(key_bytes)


def digest_of_item(object_key: str) -> str | None:
    """The hash an item's object key ends in (None for objects that are not items)."""
    digest = object_key[len(ITEMS) :]
    return digest if object_key.startswith(ITEMS) and _DIGEST.fullmatch(digest) else None


@dataclass(frozen=True, slots=True)
class Entry:
    """One order entry: a key's place, as its object's name tells it.

    Attributes:
        birth: the key's birth number.
        digest: the hash naming the key's item.
        key_bytes: the key's canonical bytes, or None when only the entry's body holds them.
        name: the entry's object key.
    """

    birth: int
    digest: str
    key_bytes: bytes | None
    name: str


def entry_names(birth: int, key_bytes: bytes) -> tuple[str, str]:
    """The entry's object key spelling the key out, and the one naming it by its hash.

    The first is used unless the key is too long for it (or the location too long for the
    name: the store then refuses it with `InvalidNameError` before any request).
    """
    stamp = f"{ORDER}{birth:0{_BIRTH_DIGITS}d}"
    hashed = f"{stamp}h{file_name(key_bytes)}"
    if len(key_bytes) > _KEY_IN_NAME:
        return hashed, hashed
    spelled = base64.urlsafe_b64encode(key_bytes).rstrip(b"=").decode("ascii")
    return f"{stamp}k{spelled}", hashed


def parse_entry(object_key: str) -> Entry | None:
    """Read an order entry's name (None for an object that is not one)."""
    match = _ENTRY.fullmatch(object_key)
    if match is None:
        return None
    birth, form, rest = int(match[1]), match[2], match[3]
    if form == "h":
        return Entry(birth, rest, None, object_key) if _DIGEST.fullmatch(rest) else None
    try:
        key_bytes = base64.urlsafe_b64decode(rest + "=" * (-len(rest) % 4))
    except (binascii.Error, ValueError):
        return None
    return Entry(birth, file_name(key_bytes), key_bytes, object_key)


@dataclass(frozen=True, slots=True)
class Item:
    """An item as read: its birth, value payload and the object's version."""

    birth: int
    payload: bytes
    version: str


def encode_item(key_bytes: bytes, birth: int, payload: bytes) -> bytes:
    """An item's body: header, key, payload."""
    head = _ITEM_HEAD.pack(_ITEM_MAGIC, FORMAT_VERSION, birth, len(key_bytes))
    return b"".join((head, key_bytes, payload))


def decode_item(data: bytes, where: str) -> tuple[bytes, int, bytes]:
    """Split an item's body into its key's canonical bytes, its birth and its payload.

    Raises:
        CorruptFileError: the body is not an item (the object is left as it is).
    """
    if len(data) < _ITEM_HEAD.size:
        raise CorruptFileError(where, "too short to be an IODict item")
    magic, version, birth, length = _ITEM_HEAD.unpack_from(data)
    if magic != _ITEM_MAGIC or version != FORMAT_VERSION:
        raise CorruptFileError(where, "not an IODict item (unknown header)")
    end = _ITEM_HEAD.size + length
    if end > len(data):
        raise CorruptFileError(where, "truncated key")
    return data[_ITEM_HEAD.size : end], birth, data[end:]


def encode_meta(format_name: str) -> bytes:
    """The ``meta`` object's body."""
    return json.dumps({"persistkit-iodict": FORMAT_VERSION, "format": format_name}).encode()


def decode_meta(data: bytes, where: str) -> str:
    """Return the format named by a ``meta`` object.

    Raises:
        CorruptFileError: the body is not an IODict's meta object.
    """
    try:
        meta = json.loads(data)
        if meta["persistkit-iodict"] != FORMAT_VERSION or not isinstance(meta["format"], str):
            raise ValueError("unknown version")
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptFileError(where, f"not an IODict's meta object ({error})") from None
    return str(meta["format"])


def encode_births(next_birth: int) -> bytes:
    """A ``births`` body; the random token keeps equal counts from ever having equal bodies."""
    return json.dumps({"next": next_birth, "by": secrets.token_hex(8)}).encode()


def decode_births(data: bytes, where: str) -> int:
    """Return the next free birth a ``births`` body holds.

    Raises:
        CorruptFileError: the body is not a birth counter.
    """
    try:
        value = json.loads(data)["next"]
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"bad count {value!r}")
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptFileError(where, f"not an IODict birth counter ({error})") from None
    return value
