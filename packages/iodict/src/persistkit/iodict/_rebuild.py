"""Rebuilding the order index from the items, which are the source of truth.

1. List the item files (regular files with a 56-hex-digit name).
2. Walk the old index, if any: a live slot whose key hashes to a present file keeps its
   place; a dead slot whose file is present (a crash between publishing and indexing, or a
   copy that lost its xattrs) is remembered as a source for that file's key.
3. Read the remaining files (their xattrs or header) for key and stamp; a key is used only
   if it hashes to the file's name. Files with no recoverable key are reported, never
   removed.
4. Merge the two by stamp into a new index (a second walk of the old index, keeping the
   slots marked in step 2).

A missing or damaged old index only makes step 3 longer.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from persistkit.iodict._index_files import (
    LIVE,
    DamagedIndexError,
    Head,
    IndexBuilder,
    IndexView,
    StampKey,
)
from persistkit.iodict._journal_records import SET, Entry
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


def _item_names(directory: str) -> set[str]:
    with os.scandir(directory) as entries:
        return {
            entry.name
            for entry in entries
            if len(entry.name) == 56
            and NAME_PATTERN.fullmatch(entry.name)
            and entry.is_file(follow_symlinks=False)
        }


def _name(key_bytes: bytes) -> str:
    return hashlib.sha3_224(key_bytes).hexdigest()


def _mark_old(
    old: IndexView | None, present: set[str]
) -> tuple[bytearray, dict[str, tuple[bytes, StampKey]]]:
    """Flag the old slots that stay (one byte per slot); collect usable dead slots' keys."""
    keep = bytearray()
    dead: dict[str, tuple[bytes, StampKey]] = {}
    if old is None:
        return keep, dead
    try:
        state = old.state()
        keep = bytearray(state.count)
        for chunk in old.chunks(0, state.count):
            keys = chunk.keys()
            for offset, name in enumerate(map(_name, keys)):
                if name not in present:
                    continue
                if chunk.states[offset] == LIVE:
                    present.discard(name)
                    keep[chunk.start + offset] = 1
                else:
                    stamp = (chunk.epochs[offset], chunk.nss[offset])
                    dead[name] = (keys[offset], stamp)
    except DamagedIndexError:
        pass  # what was read before the damage is still good; the rest comes from the items
    return keep, dead


def _read_remaining(
    directory: str,
    layout: Layout,
    present: set[str],
    dead: dict[str, tuple[bytes, StampKey]],
) -> tuple[list[tuple[StampKey, bytes]], list[str]]:
    found: list[tuple[StampKey, bytes]] = []
    keyless: list[str] = []
    for name in present:
        path = os.path.join(directory, name)
        try:
            identity = layout.read_identity(path)
        except NotAnItemError:
            continue
        key, stamp = identity.key, identity.stamp
        remembered = dead.get(name)
        if key is None and remembered is not None:
            key = remembered[0]
        if key is None or _name(key) != name:
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


def _merge(
    builder: IndexBuilder,
    old: IndexView | None,
    keep: bytearray,
    extra: list[tuple[StampKey, bytes]],
) -> None:
    """Add the kept old slots and the extra keys to ``builder``, in stamp order, in runs."""
    extra_stamps = [stamp for stamp, _ in extra]
    extra_keys = [key for _, key in extra]
    pending = 0
    if old is not None and any(keep):
        for chunk in old.chunks(0, len(keep)):
            selected = keep[chunk.start : chunk.start + len(chunk)]
            keys = list(itertools.compress(chunk.keys(), selected))
            stamps = list(itertools.compress(zip(chunk.epochs, chunk.nss, strict=True), selected))
            while keys:
                # The extras that sort before the next kept key go first, then the kept
                # keys up to the next extra.
                until = bisect.bisect_left(extra_stamps, stamps[0], lo=pending)
                builder.add_run(extra_keys[pending:until], extra_stamps[pending:until])
                pending = until
                limit = len(stamps)
                if pending < len(extra):
                    limit = bisect.bisect_right(stamps, extra_stamps[pending])
                builder.add_run(keys[:limit], stamps[:limit])
                keys, stamps = keys[limit:], stamps[limit:]
    builder.add_run(extra_keys[pending:], extra_stamps[pending:])


def rebuild(
    directory: str,
    layout: Layout,
    old: IndexView | None,
    *,
    boot: bytes,
    applied: int = 0,
    overlay: Mapping[bytes, Entry] | None = None,
) -> Rebuilt:
    """Build a new index of the store at ``directory`` from its items (and ``old``).

    The folder is stat'ed before it is listed: a change made while this runs leaves the
    folder newer than the index, so the next check rebuilds again rather than trusting it.

    Args:
        directory: the store folder.
        layout: how its items are laid out.
        old: the previous index, if any (its slots keep their places).
        boot: the current boot's tag.
        applied: the journal end the items reflect, recorded in the new index.
        overlay: for a reader that cannot replay the journal: the last journal entry of each
            key, which wins over the folder (a set adds the key at its stamp, a delete
            removes it).

    Raises:
        DamagedIndexError: ``old`` turned out unusable midway (the caller retries without).
    """
    folder = FolderStamp.of(directory)
    present = _item_names(directory)
    journaled: list[tuple[StampKey, bytes]] = []
    for key, entry in (overlay or {}).items():
        present.discard(_name(key))
        if entry.kind == SET:
            journaled.append((entry.stamp.sort_key(), key))
    keep, dead = _mark_old(old, present)
    extra, keyless = _read_remaining(directory, layout, present, dead)
    if journaled:
        extra = sorted(extra + journaled)
    builder = IndexBuilder(
        Head(secrets.randbits(63), folder.device, folder.inode, boot, len(keyless))
    )
    try:
        _merge(builder, old, keep, extra)
    except ValueError as error:
        # The old slots were out of stamp order or changed under us: start from the items.
        raise DamagedIndexError(f"cannot reuse the old index: {error}") from error
    order, keys = builder.finish(folder.mtime_ns, folder.ctime_ns, applied)
    return Rebuilt(order, keys, folder, keyless)
