"""How one item is laid out on disk: its value, its key and its order stamp.

Two layouts, chosen per store when it is created:

``"xattr"`` (iodict 0.0.8's): the file holds only the encoded value; the key is in
``user.key`` (canonical bytes, as iodict 0.0.8 wrote it) and the order stamp in
``user.pk.order`` (big-endian uint32 epoch, uint64 monotonic ns). Both are set on the
temporary file before it is renamed into place, so they appear together with the value.
iodict 0.0.8's ``user.birthtime`` is not written for new items: a third attribute no longer
fits inside an ext4 inode and costs an extra block per item; iodict 0.0.8 reading such a
directory orders those items by ctime (its own fallback) but reads keys and values.
A key longer than the mount's xattr values can hold is written as a *headed item* (below)
instead, with no xattrs, so the layout has no key-length limit.

``"header"`` (for mounts without user xattrs): the same facts in a small binary header at
the start of the file, followed by the encoded value. One rename publishes all of it, so it
is exactly as atomic as the xattr layout; only iodict 0.0.8 cannot read it.

A file is recognised as headed only when its header's key hashes to the file's own name,
which no value can fake. Files written by iodict 0.0.8 have no order stamp; they sort before
every persistkit item, among themselves by their ``user.birthtime`` (epoch 0). A copy that
dropped the xattrs (``cp -r``, plain ``tar``) has neither key nor stamp in its plain items:
the order index beside the items has both (`ItemIdentity` reports them as unknown).
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass

from persistkit.core import CorruptFileError
from persistkit.iodict._keys import file_name

KEY_ATTR = "user.key"
BIRTH_ATTR = "user.birthtime"
ORDER_ATTR = "user.pk.order"
_BIRTH = struct.Struct(">d")
_ORDER = struct.Struct(">IQ")
_MAGIC = b"PKIOD\x01"
_HEADER = struct.Struct(">QQdI")
_HEADER_END = len(_MAGIC) + _HEADER.size
_MISSING_ATTR = frozenset({errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM})
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True, slots=True)
class Stamp:
    """An item's place in iteration order.

    Attributes:
        epoch: 0 for items written by iodict 0.0.8, else the store epoch at insertion.
        ns: the monotonic clock at insertion (0 for iodict 0.0.8 items).
        birthtime: the wall clock at insertion; it orders only iodict 0.0.8 items (epoch 0)
            and is kept in the header layout for inspection.
    """

    epoch: int
    ns: int
    birthtime: float

    def sort_key(self) -> tuple[int, int]:
        """Return the (epoch, ns) pair items are sorted by (epoch 0: birth time in ns)."""
        if self.epoch:
            return (self.epoch, self.ns)
        return (0, max(int(self.birthtime * 1e9), 0))

    @classmethod
    def from_sort_key(cls, key: tuple[int, int]) -> Stamp:
        """Rebuild a stamp from an index's (epoch, ns) pair."""
        epoch, ns = key
        return cls(epoch, ns, 0.0) if epoch else cls(0, 0, ns / 1e9)


@dataclass(frozen=True, slots=True)
class ItemIdentity:
    """What an item file says about itself.

    Attributes:
        key: its canonical key bytes, or None when the file does not carry them (an item
            of the xattr layout copied without its xattrs).
        stamp: its order stamp, or None when the file does not carry one.
    """

    key: bytes | None
    stamp: Stamp | None


class NotAnItemError(Exception):
    """The name is not (or no longer) a regular item file."""


def read_all(fd: int) -> bytes:
    """Read an open file to its end (its size may change while it is read)."""
    size = os.fstat(fd).st_size
    first = os.read(fd, size + 1)
    if len(first) <= size:
        return first
    chunks = [first]
    while chunks[-1]:
        chunks.append(os.read(fd, 1 << 20))
    return b"".join(chunks)


def open_item(path: str) -> int:
    """Open an item file for reading without following a symlink.

    Raises:
        NotAnItemError: there is no item file at ``path`` (missing, or a symlink).
    """
    try:
        return os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise NotAnItemError(path) from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise NotAnItemError(path) from None
        raise


def _getxattr(target: str | int, name: str) -> bytes | None:
    """Return an xattr's value, or None when the file has no such attribute."""
    try:
        if isinstance(target, int):
            return os.getxattr(target, name)
        return os.getxattr(target, name, follow_symlinks=False)
    except FileNotFoundError:
        raise NotAnItemError(str(target)) from None
    except OSError as error:
        if error.errno not in _MISSING_ATTR:
            raise
        return None


def encode_header(key_bytes: bytes, stamp: Stamp, payload: bytes) -> bytes:
    """Return a headed item's content: magic, stamp, key, then the value."""
    header = _HEADER.pack(stamp.epoch, stamp.ns, stamp.birthtime, len(key_bytes))
    return b"".join((_MAGIC, header, key_bytes, payload))


def parse_header(path: str, data: bytes) -> tuple[bytes, Stamp, int]:
    """Return (key bytes, stamp, where the value starts) of a headed item.

    Raises:
        CorruptFileError: ``data`` does not start with a complete header.
    """
    if len(data) < _HEADER_END or not data.startswith(_MAGIC):
        raise CorruptFileError(path, "missing or truncated item header")
    epoch, ns, birth, key_length = _HEADER.unpack_from(data, len(_MAGIC))
    end = _HEADER_END + key_length
    if len(data) < end:
        raise CorruptFileError(path, "truncated key in item header")
    return data[_HEADER_END:end], Stamp(epoch, ns, birth), end


def _headed_identity(path: str, data: bytes) -> tuple[bytes, Stamp, int] | None:
    """The header of ``data`` if it is really this file's header (its key names the file)."""
    if not data.startswith(_MAGIC):
        return None
    try:
        key, stamp, end = parse_header(path, data)
    except CorruptFileError:
        return None
    return (key, stamp, end) if file_name(key) == os.path.basename(path) else None


def _read_head(path: str) -> bytes:
    """Read enough of a file to hold its header and key."""
    fd = open_item(path)
    try:
        data = os.read(fd, 4096)
        if len(data) >= _HEADER_END and data.startswith(_MAGIC):
            key_length = _HEADER.unpack_from(data, len(_MAGIC))[3]
            while len(data) < _HEADER_END + key_length:
                more = os.read(fd, _HEADER_END + key_length - len(data))
                if not more:
                    break
                data += more
        return data
    finally:
        os.close(fd)


class XattrLayout:
    """Value in the file; key and order stamp in extended attributes (long keys headed)."""

    name = "xattr"

    def __init__(self, max_key_bytes: int | None = None) -> None:
        self.max_key_bytes = max_key_bytes

    def encode(
        self, key_bytes: bytes, stamp: Stamp, payload: bytes
    ) -> tuple[bytes, dict[str, bytes] | None]:
        """Return the file content and the xattrs to set on the temporary file."""
        if self.max_key_bytes is not None and len(key_bytes) > self.max_key_bytes:
            return encode_header(key_bytes, stamp, payload), None
        attrs = {KEY_ATTR: key_bytes}
        if stamp.epoch:
            attrs[ORDER_ATTR] = _ORDER.pack(stamp.epoch, stamp.ns)
        else:
            # An iodict 0.0.8 item being overwritten keeps its place among its peers.
            attrs[BIRTH_ATTR] = _BIRTH.pack(stamp.birthtime)
        return payload, attrs

    def read_identity(self, path: str) -> ItemIdentity:
        """Return what the item at ``path`` says about its key and place.

        Raises:
            NotAnItemError: the file is gone.
        """
        key = _getxattr(path, KEY_ATTR)
        order = _getxattr(path, ORDER_ATTR)
        if order is not None and len(order) == _ORDER.size:
            epoch, ns = _ORDER.unpack(order)
            return ItemIdentity(key, Stamp(epoch, ns, 0.0))
        birth = _getxattr(path, BIRTH_ATTR)
        if birth is not None and len(birth) == _BIRTH.size:
            return ItemIdentity(key, Stamp(0, 0, _BIRTH.unpack(birth)[0]))
        if key is not None:
            # iodict 0.0.8 fell back to ctime when it could not set the attribute.
            try:
                ctime = os.stat(path, follow_symlinks=False).st_ctime
            except FileNotFoundError:
                raise NotAnItemError(path) from None
            return ItemIdentity(key, Stamp(0, 0, ctime))
        headed = _headed_identity(path, _read_head(path))
        if headed is not None:
            return ItemIdentity(headed[0], headed[1])
        return ItemIdentity(None, None)

    def read_payload(self, path: str, key_bytes: bytes) -> bytes:
        """Return the encoded value of the item at ``path``, checking its key.

        A plain item without ``user.key`` (a copy that lost its xattrs) is identified by
        its name alone, which is the hash of the key asked for.

        Raises:
            NotAnItemError: no item file there.
            CorruptFileError: the file belongs to another key.
        """
        fd = open_item(path)
        try:
            stored = _getxattr(fd, KEY_ATTR)
            data = read_all(fd)
        finally:
            os.close(fd)
        if stored is None:
            headed = _headed_identity(path, data)
            if headed is not None:
                if headed[0] != key_bytes:
                    raise CorruptFileError(path, "the file holds another key")
                return data[headed[2] :]
            return data
        if stored != key_bytes:
            raise CorruptFileError(path, "the file holds another key")
        return data


class HeaderLayout:
    """Key, birth time and order stamp in a header at the start of the file, then the value."""

    name = "header"

    def encode(self, key_bytes: bytes, stamp: Stamp, payload: bytes) -> tuple[bytes, None]:
        """Return the file content (header, key, value); no xattrs."""
        return encode_header(key_bytes, stamp, payload), None

    def read_identity(self, path: str) -> ItemIdentity:
        """Return what the item at ``path`` says about its key and place.

        Raises:
            NotAnItemError: the file is gone.
        """
        headed = _headed_identity(path, _read_head(path))
        if headed is None:
            return ItemIdentity(None, None)
        return ItemIdentity(headed[0], headed[1])

    def read_payload(self, path: str, key_bytes: bytes) -> bytes:
        """Return the encoded value of the item at ``path``, checking its key."""
        fd = open_item(path)
        try:
            data = read_all(fd)
        finally:
            os.close(fd)
        key, _, end = parse_header(path, data)
        if key != key_bytes:
            raise CorruptFileError(path, "the file holds another key")
        return data[end:]


Layout = XattrLayout | HeaderLayout
