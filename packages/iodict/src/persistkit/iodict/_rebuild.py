"""Rebuilding the order index from the items, which are the source of truth.

1. List the item files (regular files with a 56-hex-digit name).
2. Walk the old index, if any: a live slot whose key hashes to a present file keeps its
   place; a dead slot whose file is present (a crash between publishing and indexing, or a
   copy that lost its xattrs) is remembered as a source for that file's key.
3. Read the remaining files (their xattrs or header) for key and stamp; a key is used only
   if it hashes to the file's name. Files with no recoverable key are reported, never
   removed.
4. Merge the two by stamp into a new index.

A missing or damaged old index only makes step 3 longer.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass

from persistkit.iodict._index_files import (
    DamagedIndexError,
    Head,
    IndexBuilder,
    IndexView,
    StampKey,
)
from persistkit.iodict._keys import NAME_PATTERN
from persistkit.iodict._layouts import Layout, NotAnItemError, Stamp


@dataclass(frozen=True, slots=True)
class FolderStamp:
    """The store folder's identity and times: what an index must match to be trusted."""

    device: int
    inode: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, directory: str) -> FolderStamp:
        """Stat the folder now."""
        info = os.stat(directory)
        return cls(info.st_dev, info.st_ino, info.st_mtime_ns, info.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """A freshly built index.

    Attributes:
        order: the order file's content.
        keys: the key file's content.
        folder: the folder stamp it matches (taken before the folder was listed).
        keyless: paths of item files whose key could not be recovered.
    """

    order: bytes
    keys: bytes
    folder: FolderStamp
    keyless: list[str]


def _item_digests(directory: str) -> set[bytes]:
    with os.scandir(directory) as entries:
        return {
            bytes.fromhex(entry.name)
            for entry in entries
            if NAME_PATTERN.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
        }


def _digest(key_bytes: bytes) -> bytes:
    return hashlib.sha3_224(key_bytes).digest()


def _walk_old(
    old: IndexView | None, present: set[bytes]
) -> tuple[bytearray, dict[bytes, tuple[bytes, StampKey]]]:
    """Mark which old slots stay; collect dead slots' keys for files still present."""
    keep = bytearray()
    dead: dict[bytes, tuple[bytes, StampKey]] = {}
    if old is None:
        return keep, dead
    try:
        state = old.state()
        for slot, key_bytes in old.entries(0, state.count, live_only=False):
            digest = _digest(key_bytes)
            if slot.live and digest in present:
                present.discard(digest)
                keep.extend(b"\0" * (slot.index - len(keep)))
                keep.append(1)
            elif not slot.live and digest in present:
                dead[digest] = (key_bytes, slot.stamp)
    except DamagedIndexError:
        pass  # what was read before the damage is still good; the rest comes from the items
    return keep, dead


def _read_remaining(
    directory: str,
    layout: Layout,
    present: set[bytes],
    dead: dict[bytes, tuple[bytes, StampKey]],
) -> tuple[list[tuple[StampKey, bytes]], list[str]]:
    found: list[tuple[StampKey, bytes]] = []
    keyless: list[str] = []
    for digest in present:
        name = digest.hex()
        path = os.path.join(directory, name)
        try:
            identity = layout.read_identity(path)
        except NotAnItemError:
            continue
        key, stamp = identity.key, identity.stamp
        remembered = dead.get(digest)
        if key is None and remembered is not None:
            key = remembered[0]
        if key is None or _digest(key) != digest:
            keyless.append(path)
            continue
        if stamp is not None:
            found.append((stamp.sort_key(), key))
        elif remembered is not None:
            found.append((remembered[1], key))
        else:
            ctime = os.stat(path, follow_symlinks=False).st_ctime
            found.append((Stamp(0, 0, ctime).sort_key(), key))
    found.sort()
    keyless.sort()
    return found, keyless


def rebuild(directory: str, layout: Layout, old: IndexView | None, *, boot: bytes) -> Rebuilt:
    """Build a new index of the store at ``directory`` from its items (and ``old``).

    The folder is stat'ed before it is listed: a change made while this runs leaves the
    folder newer than the index, so the next check rebuilds again rather than trusting it.
    """
    folder = FolderStamp.of(directory)
    present = _item_digests(directory)
    keep, dead = _walk_old(old, present)
    extra, keyless = _read_remaining(directory, layout, present, dead)
    builder = IndexBuilder(
        Head(secrets.randbits(63), folder.device, folder.inode, boot, len(keyless))
    )
    pending = iter(extra)
    upcoming = next(pending, None)
    if old is not None and keep:
        try:
            for slot, key_bytes in old.entries(0, len(keep)):
                if not keep[slot.index]:
                    continue
                while upcoming is not None and upcoming[0] < slot.stamp:
                    builder.add(upcoming[1], upcoming[0])
                    upcoming = next(pending, None)
                builder.add(key_bytes, slot.stamp)
        except (DamagedIndexError, ValueError) as error:
            # The old slots changed under us or were out of order: start from the items.
            raise DamagedIndexError(f"cannot reuse the old index: {error}") from error
    while upcoming is not None:
        builder.add(upcoming[1], upcoming[0])
        upcoming = next(pending, None)
    order, keys = builder.finish(folder.mtime_ns, folder.ctime_ns)
    return Rebuilt(order, keys, folder, keyless)


def rebuild_from_items(directory: str, layout: Layout, *, boot: bytes) -> Rebuilt:
    """Build a new index from the items alone (the old one is unusable)."""
    return rebuild(directory, layout, None, boot=boot)
