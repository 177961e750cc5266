"""How one item is laid out on disk: its value, its key and its order stamp.

Two layouts, chosen per store when it is created:

``"xattr"`` (iodict 0.0.8's): the file holds only the encoded value; the key is in
``user.key`` (canonical bytes, as iodict 0.0.8 wrote it) and the order stamp in
``user.pk.order`` (big-endian uint32 epoch, uint64 monotonic ns). Both are set on the
temporary file before it is renamed into place, so they appear together with the value.
iodict 0.0.8's ``user.birthtime`` is not written for new items: a third attribute no longer
fits inside an ext4 inode and costs an extra block per item; iodict 0.0.8 reading such a
directory orders those items by ctime (its own fallback) but reads keys and values.

``"header"`` (for mounts without user xattrs): the same three facts in a small binary header
at the start of the file, followed by the encoded value. One rename publishes all of it,
so it is exactly as atomic as the xattr layout; only iodict 0.0.8 cannot read it.

Files written by iodict 0.0.8 have no order stamp; they sort before every persistkit item,
among themselves by their ``user.birthtime`` (epoch 0).
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass

from persistkit.core import CorruptFileError

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

    def sort_key(self) -> tuple[int, int, float]:
        """Return the tuple items are sorted by."""
        return (self.epoch, self.ns, self.birthtime)


class NotAnItemError(Exception):
    """The name is not (or no longer) a regular item file."""


def _read_all(fd: int) -> bytes:
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


class XattrLayout:
    """Value in the file; key, birth time and order stamp in extended attributes."""

    name = "xattr"

    def encode(
        self, key_bytes: bytes, stamp: Stamp, payload: bytes
    ) -> tuple[bytes, dict[str, bytes]]:
        """Return the file content and the xattrs to set on the temporary file."""
        attrs = {KEY_ATTR: key_bytes}
        if stamp.epoch:
            attrs[ORDER_ATTR] = _ORDER.pack(stamp.epoch, stamp.ns)
        else:
            # An iodict 0.0.8 item being overwritten keeps its place among its peers.
            attrs[BIRTH_ATTR] = _BIRTH.pack(stamp.birthtime)
        return payload, attrs

    def read_stamp(self, path: str) -> Stamp | None:
        """Return the stamp of the item at ``path``, or None when there is none."""
        try:
            order: bytes | None = os.getxattr(path, ORDER_ATTR, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno not in _MISSING_ATTR:
                raise
            order = None
        return self._stamp(path, order)

    def _stamp(self, path: str, order: bytes | None) -> Stamp:
        if order is not None:
            try:
                epoch, ns = _ORDER.unpack(order)
            except struct.error as error:
                raise CorruptFileError(path, f"bad {ORDER_ATTR}: {error}") from error
            return Stamp(epoch, ns, 0.0)
        try:
            birth = _BIRTH.unpack(os.getxattr(path, BIRTH_ATTR, follow_symlinks=False))[0]
        except OSError as error:
            if error.errno not in _MISSING_ATTR:
                raise
            # iodict 0.0.8 fell back to ctime when it could not set the attribute.
            birth = os.stat(path, follow_symlinks=False).st_ctime
        except struct.error as error:
            raise CorruptFileError(path, f"bad {BIRTH_ATTR}: {error}") from error
        return Stamp(0, 0, birth)

    def read_entry(self, path: str) -> tuple[bytes, Stamp]:
        """Return the key bytes and stamp of the item at ``path`` (for iteration).

        Raises:
            NotAnItemError: the file is gone.
            CorruptFileError: the file has no key.
        """
        try:
            key = os.getxattr(path, KEY_ATTR, follow_symlinks=False)
        except FileNotFoundError:
            raise NotAnItemError(path) from None
        except OSError as error:
            if error.errno not in _MISSING_ATTR:
                raise
            raise CorruptFileError(path, f"the item has no {KEY_ATTR} attribute") from None
        try:
            order: bytes | None = os.getxattr(path, ORDER_ATTR, follow_symlinks=False)
        except FileNotFoundError:
            raise NotAnItemError(path) from None
        except OSError as error:
            if error.errno not in _MISSING_ATTR:
                raise
            order = None
        if order is not None and len(order) == _ORDER.size:
            epoch, ns = _ORDER.unpack(order)
            return key, Stamp(epoch, ns, 0.0)
        try:
            return key, self._stamp(path, order)
        except FileNotFoundError:
            raise NotAnItemError(path) from None

    def read_payload(self, path: str, key_bytes: bytes) -> bytes:
        """Return the encoded value of the item at ``path``, checking its key.

        Raises:
            NotAnItemError: no item file there.
            CorruptFileError: the file belongs to another key or has none.
        """
        fd = open_item(path)
        try:
            try:
                stored = os.getxattr(fd, KEY_ATTR)
            except OSError as error:
                if error.errno not in _MISSING_ATTR:
                    raise
                raise CorruptFileError(path, f"the item has no {KEY_ATTR} attribute") from None
            if stored != key_bytes:
                raise CorruptFileError(path, "the file holds another key")
            return _read_all(fd)
        finally:
            os.close(fd)


class HeaderLayout:
    """Key, birth time and order stamp in a header at the start of the file, then the value."""

    name = "header"

    def encode(self, key_bytes: bytes, stamp: Stamp, payload: bytes) -> tuple[bytes, None]:
        """Return the file content (header, key, value); no xattrs."""
        header = _HEADER.pack(stamp.epoch, stamp.ns, stamp.birthtime, len(key_bytes))
        return b"".join((_MAGIC, header, key_bytes, payload)), None

    def _parse(self, path: str, data: bytes) -> tuple[bytes, Stamp, int]:
        if len(data) < _HEADER_END or not data.startswith(_MAGIC):
            raise CorruptFileError(path, "missing or truncated item header")
        epoch, ns, birth, key_length = _HEADER.unpack_from(data, len(_MAGIC))
        end = _HEADER_END + key_length
        if len(data) < end:
            raise CorruptFileError(path, "truncated key in item header")
        return data[_HEADER_END:end], Stamp(epoch, ns, birth), end

    def _read_head(self, path: str) -> bytes:
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

    def read_stamp(self, path: str) -> Stamp | None:
        """Return the stamp of the item at ``path``, or None when there is none."""
        try:
            return self._parse(path, self._read_head(path))[1]
        except NotAnItemError:
            return None

    def read_entry(self, path: str) -> tuple[bytes, Stamp]:
        """Return the key bytes and stamp of the item at ``path`` (for iteration)."""
        key, stamp, _ = self._parse(path, self._read_head(path))
        return key, stamp

    def read_payload(self, path: str, key_bytes: bytes) -> bytes:
        """Return the encoded value of the item at ``path``, checking its key."""
        fd = open_item(path)
        try:
            data = _read_all(fd)
        finally:
            os.close(fd)
        key, _, end = self._parse(path, data)
        if key != key_bytes:
            raise CorruptFileError(path, "the file holds another key")
        return data[end:]


Layout = XattrLayout | HeaderLayout
