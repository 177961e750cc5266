"""The power-cut filesystem's state: what programs see, and what a power cut would leave.

Two images of one tree are kept side by side:

- the *live* image, which every program on the mount reads and writes (POSIX semantics);
- the *durable* image: what the disk is known to hold. It changes only at the barriers of
  the model, never by an ordinary write:

  * ``fsync``/``fdatasync`` of a file makes that file's data, size, mode, owner and extended
    attributes durable (not its name);
  * ``fsync`` of a directory makes that directory's entries durable (creations, renames,
    links and removals of names in it) and its own mode and attributes;
  * nothing else does. ``syncfs`` and ``sync`` never reach a FUSE filesystem at all.

Everything done since the last barrier is kept as a list of *pending changes*: per inode,
the data and attribute operations not yet flushed; for the directories, the entry changes
not yet flushed, one change per system call (a rename, even across two directories, is one
change). A power cut (`Model.crash`) builds the tree a reboot would find: in ``strict``
mode the durable image alone; in ``random`` mode each pending change is independently kept
or lost, and a kept write may be torn at page boundaries.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

ROOT = 1
PAGE_SIZE = 4096
KEEP_PROBABILITY = 0.5

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2

XATTR_CREATE = 1
XATTR_REPLACE = 2

# Pending per-inode operations, as tuples whose first item says which.
_WRITE = 0  # (_WRITE, offset, data)
_SIZE = 1  # (_SIZE, size)
_XATTR = 2  # (_XATTR, name, value or None to remove)
_MODE = 3  # (_MODE, mode)
_OWNER = 4  # (_OWNER, uid, gid)
Op = tuple[object, ...]


def _error(code: int, detail: str = "") -> OSError:
    return OSError(code, os.strerror(code) + (f": {detail}" if detail else ""))


@dataclass(slots=True)
class Inode:
    """One file, directory or symbolic link, live or as the disk holds it."""

    mode: int
    uid: int = 0
    gid: int = 0
    data: bytearray = field(default_factory=bytearray)
    entries: dict[str, int] = field(default_factory=dict)
    target: str = ""
    xattrs: dict[str, bytes] = field(default_factory=dict)
    mtime_ns: int = 0
    ctime_ns: int = 0
    atime_ns: int = 0
    nlink: int = 0

    @property
    def is_dir(self) -> bool:
        """Whether this is a directory."""
        return stat.S_ISDIR(self.mode)

    def copy(self) -> Inode:
        """Return an independent copy."""
        return Inode(
            self.mode,
            self.uid,
            self.gid,
            bytearray(self.data),
            dict(self.entries),
            self.target,
            dict(self.xattrs),
            self.mtime_ns,
            self.ctime_ns,
            self.atime_ns,
            self.nlink,
        )


@dataclass(slots=True)
class Change:
    """One system call's changes to directory entries, kept or lost as a whole.

    ``parts`` maps each directory touched to its entry updates, in order: a name and the
    inode it now names, or None when the name was removed. A directory fsync makes its own
    part durable and removes it; the change is done when no part is left.
    """

    parts: dict[int, list[tuple[str, int | None]]]


@dataclass(frozen=True, slots=True)
class CrashReport:
    """What one power cut did.

    Attributes:
        mode: ``"strict"`` or ``"random"``.
        seed: the random seed (None in strict mode).
        pending: changes not yet durable at the cut (entry changes plus data and attribute
            operations).
        kept: how many of them the crash state kept (always 0 in strict mode).
        torn_writes: kept writes of which only some pages were kept.
    """

    mode: str
    seed: int | None
    pending: int
    kept: int
    torn_writes: int


class Model:
    """The live and durable images of one filesystem tree, and its pending changes."""

    def __init__(self) -> None:
        now = time.time_ns()
        root = Inode(stat.S_IFDIR | 0o755, mtime_ns=now, ctime_ns=now, atime_ns=now, nlink=1)
        self.nodes: dict[int, Inode] = {ROOT: root}
        self.records: dict[int, Inode] = {ROOT: root.copy()}
        self.pending: dict[int, list[Op]] = {}
        self.changes: list[Change] = []
        self.dir_changes: dict[int, list[Change]] = {}
        self.open_count: dict[int, int] = {}
        self.next_ino = ROOT + 1
        self._since_collect = 0

    # -- names --------------------------------------------------------------------------

    def resolve(self, path: str) -> int:
        """Return the inode that ``path`` (absolute, inside the mount) names."""
        ino = ROOT
        for name in _components(path):
            node = self.nodes[ino]
            if not node.is_dir:
                raise _error(errno.ENOTDIR, path)
            try:
                ino = node.entries[name]
            except KeyError:
                raise _error(errno.ENOENT, path) from None
        return ino

    def _parent(self, path: str) -> tuple[int, str]:
        names = _components(path)
        if not names:
            raise _error(errno.EBUSY, "the root has no parent")
        parent = self.resolve("/" + "/".join(names[:-1]))
        if not self.nodes[parent].is_dir:
            raise _error(errno.ENOTDIR, path)
        name = names[-1]
        if len(name.encode("utf-8", "surrogateescape")) > 255:
            raise _error(errno.ENAMETOOLONG, path)
        return parent, name

    def node(self, ino: int) -> Inode:
        """Return the live inode ``ino``."""
        try:
            return self.nodes[ino]
        except KeyError:
            raise _error(errno.ENOENT) from None

    # -- reading ------------------------------------------------------------------------

    def stat(self, ino: int) -> dict[str, int]:
        """Return the ``stat`` fields of a live inode."""
        node = self.node(ino)
        size = len(node.data) if stat.S_ISREG(node.mode) else len(node.target)
        return {
            "st_ino": ino,
            "st_mode": node.mode,
            "st_nlink": node.nlink,
            "st_uid": node.uid,
            "st_gid": node.gid,
            "st_size": size,
            "st_blocks": (size + 511) // 512,
            "st_blksize": PAGE_SIZE,
            "st_atime": node.atime_ns,
            "st_mtime": node.mtime_ns,
            "st_ctime": node.ctime_ns,
        }

    def read(self, ino: int, size: int, offset: int) -> bytes:
        """Read up to ``size`` bytes at ``offset``."""
        return bytes(self.node(ino).data[offset : offset + size])

    def entries(self, ino: int) -> list[tuple[str, int, int]]:
        """List a directory: (name, inode, mode) for each entry."""
        node = self.node(ino)
        if not node.is_dir:
            raise _error(errno.ENOTDIR)
        return [(name, child, self.nodes[child].mode) for name, child in node.entries.items()]

    # -- creating and removing names ----------------------------------------------------

    def _new_inode(self, mode: int, uid: int, gid: int, target: str = "") -> int:
        now = time.time_ns()
        ino = self.next_ino
        self.next_ino += 1
        node = Inode(
            mode, uid, gid, target=target, mtime_ns=now, ctime_ns=now, atime_ns=now, nlink=0
        )
        self.nodes[ino] = node
        # The inode as created is what the disk holds for it until its first fsync; it is
        # reachable after a cut only if a durable (or kept) entry names it.
        self.records[ino] = node.copy()
        return ino

    def _record_change(self, parts: dict[int, list[tuple[str, int | None]]]) -> None:
        change = Change(parts)
        self.changes.append(change)
        for directory in parts:
            self.dir_changes.setdefault(directory, []).append(change)

    def _touch(self, *inos: int) -> None:
        now = time.time_ns()
        for ino in inos:
            node = self.nodes[ino]
            node.mtime_ns = node.ctime_ns = now

    def create(self, path: str, mode: int, uid: int, gid: int, target: str = "") -> int:
        """Create a file, directory or symlink (by ``mode``'s type bits) at ``path``."""
        parent, name = self._parent(path)
        entries = self.nodes[parent].entries
        if name in entries:
            raise _error(errno.EEXIST, path)
        ino = self._new_inode(mode, uid, gid, target)
        entries[name] = ino
        self.nodes[ino].nlink = 1
        self._touch(parent)
        self._record_change({parent: [(name, ino)]})
        return ino

    def link(self, existing: str, path: str) -> int:
        """Give the inode at ``existing`` the extra name ``path``."""
        ino = self.resolve(existing)
        node = self.nodes[ino]
        if node.is_dir:
            raise _error(errno.EPERM, "hard links to directories")
        parent, name = self._parent(path)
        entries = self.nodes[parent].entries
        if name in entries:
            raise _error(errno.EEXIST, path)
        entries[name] = ino
        node.nlink += 1
        node.ctime_ns = time.time_ns()
        self._touch(parent)
        self._record_change({parent: [(name, ino)]})
        return ino

    def unlink(self, path: str) -> None:
        """Remove the name ``path`` of a file or symlink."""
        parent, name = self._parent(path)
        ino = self._lookup(parent, name, path)
        if self.nodes[ino].is_dir:
            raise _error(errno.EISDIR, path)
        del self.nodes[parent].entries[name]
        self._drop_link(ino)
        self._touch(parent)
        self._record_change({parent: [(name, None)]})

    def rmdir(self, path: str) -> None:
        """Remove the empty directory ``path``."""
        parent, name = self._parent(path)
        ino = self._lookup(parent, name, path)
        node = self.nodes[ino]
        if not node.is_dir:
            raise _error(errno.ENOTDIR, path)
        if node.entries:
            raise _error(errno.ENOTEMPTY, path)
        del self.nodes[parent].entries[name]
        self._drop_link(ino)
        self._touch(parent)
        self._record_change({parent: [(name, None)]})

    def rename(self, old: str, new: str, flags: int = 0) -> None:
        """Move a name as the rename system calls do, ``RENAME_NOREPLACE``/``EXCHANGE`` included."""
        if flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE) or flags == (
            RENAME_NOREPLACE | RENAME_EXCHANGE
        ):
            raise _error(errno.EINVAL, "unsupported rename flags")
        old_parent, old_name = self._parent(old)
        new_parent, new_name = self._parent(new)
        ino = self._lookup(old_parent, old_name, old)
        old_entries = self.nodes[old_parent].entries
        new_entries = self.nodes[new_parent].entries
        replaced = new_entries.get(new_name)
        if flags & RENAME_EXCHANGE:
            if replaced is None:
                raise _error(errno.ENOENT, new)
            old_entries[old_name], new_entries[new_name] = replaced, ino
            parts: dict[int, list[tuple[str, int | None]]] = {}
            parts.setdefault(old_parent, []).append((old_name, replaced))
            parts.setdefault(new_parent, []).append((new_name, ino))
            self._touch(old_parent, new_parent)
            self._record_change(parts)
            return
        if replaced is not None:
            if flags & RENAME_NOREPLACE:
                raise _error(errno.EEXIST, new)
            if replaced == ino:
                return  # two names of one inode: rename(2) does nothing
            self._check_replace(ino, replaced, new)
        del old_entries[old_name]
        new_entries[new_name] = ino
        if replaced is not None:
            self._drop_link(replaced)
        parts = {}
        parts.setdefault(old_parent, []).append((old_name, None))
        parts.setdefault(new_parent, []).append((new_name, ino))
        self._touch(old_parent, new_parent)
        self._record_change(parts)

    def _check_replace(self, ino: int, replaced: int, new: str) -> None:
        source, target = self.nodes[ino], self.nodes[replaced]
        if source.is_dir and not target.is_dir:
            raise _error(errno.ENOTDIR, new)
        if target.is_dir and not source.is_dir:
            raise _error(errno.EISDIR, new)
        if target.is_dir and target.entries:
            raise _error(errno.ENOTEMPTY, new)

    def _lookup(self, parent: int, name: str, path: str) -> int:
        try:
            return self.nodes[parent].entries[name]
        except KeyError:
            raise _error(errno.ENOENT, path) from None

    def _drop_link(self, ino: int) -> None:
        node = self.nodes[ino]
        node.nlink -= 1
        node.ctime_ns = time.time_ns()
        if node.nlink <= 0 and not self.open_count.get(ino):
            del self.nodes[ino]

    # -- open files ----------------------------------------------------------------------

    def open(self, ino: int) -> None:
        """Note one more open handle on ``ino`` (an unlinked file lives while one is open)."""
        self.node(ino)
        self.open_count[ino] = self.open_count.get(ino, 0) + 1

    def close(self, ino: int) -> None:
        """Note that one handle on ``ino`` was closed."""
        left = self.open_count.get(ino, 0) - 1
        if left > 0:
            self.open_count[ino] = left
            return
        self.open_count.pop(ino, None)
        node = self.nodes.get(ino)
        if node is not None and node.nlink <= 0:
            del self.nodes[ino]

    # -- data and attributes -------------------------------------------------------------

    def _file(self, ino: int) -> Inode:
        node = self.node(ino)
        if node.is_dir:
            raise _error(errno.EISDIR)
        return node

    def _log(self, ino: int, op: Op) -> None:
        self.pending.setdefault(ino, []).append(op)

    def write(self, ino: int, offset: int, data: bytes) -> int:
        """Write ``data`` at ``offset`` (live only, until the file is fsynced)."""
        node = self._file(ino)
        _apply(node, (_WRITE, offset, data))
        self._log(ino, (_WRITE, offset, data))
        self._touch(ino)
        return len(data)

    def truncate(self, ino: int, size: int) -> None:
        """Set the file's size (live only, until the file is fsynced)."""
        if size < 0:
            raise _error(errno.EINVAL)
        node = self._file(ino)
        _apply(node, (_SIZE, size))
        self._log(ino, (_SIZE, size))
        self._touch(ino)

    def setxattr(self, ino: int, name: str, value: bytes, flags: int = 0) -> None:
        """Set an extended attribute; durable with the inode's next fsync."""
        node = self.node(ino)
        if flags & XATTR_CREATE and name in node.xattrs:
            raise _error(errno.EEXIST, name)
        if flags & XATTR_REPLACE and name not in node.xattrs:
            raise _error(errno.ENODATA, name)
        self._meta(ino, (_XATTR, name, bytes(value)))

    def removexattr(self, ino: int, name: str) -> None:
        """Remove an extended attribute."""
        if name not in self.node(ino).xattrs:
            raise _error(errno.ENODATA, name)
        self._meta(ino, (_XATTR, name, None))

    def getxattr(self, ino: int, name: str) -> bytes:
        """Return an extended attribute's value."""
        try:
            return self.node(ino).xattrs[name]
        except KeyError:
            raise _error(errno.ENODATA, name) from None

    def listxattr(self, ino: int) -> list[str]:
        """List the extended attribute names of an inode."""
        return list(self.node(ino).xattrs)

    def chmod(self, ino: int, mode: int) -> None:
        """Change the permission bits (the type bits stay)."""
        node = self.node(ino)
        self._meta(ino, (_MODE, stat.S_IFMT(node.mode) | stat.S_IMODE(mode)))

    def chown(self, ino: int, uid: int, gid: int) -> None:
        """Change the owner; -1 keeps a field."""
        node = self.node(ino)
        self._meta(ino, (_OWNER, node.uid if uid < 0 else uid, node.gid if gid < 0 else gid))

    def _meta(self, ino: int, op: Op) -> None:
        node = self.nodes[ino]
        _apply(node, op)
        node.ctime_ns = time.time_ns()
        self._log(ino, op)

    def utimens(self, ino: int, atime_ns: int | None, mtime_ns: int | None) -> None:
        """Set the access and modification times (None keeps one)."""
        node = self.node(ino)
        if atime_ns is not None:
            node.atime_ns = atime_ns
        if mtime_ns is not None:
            node.mtime_ns = mtime_ns
        node.ctime_ns = time.time_ns()

    # -- barriers ------------------------------------------------------------------------

    def fsync(self, ino: int) -> None:
        """Make the file's data, size, mode, owner and attributes durable (not its names)."""
        node = self.node(ino)
        if node.is_dir:
            self.fsync_dir(ino)
            return
        record = self.records[ino]
        for op in self.pending.pop(ino, ()):
            _apply(record, op)
        record.mtime_ns = node.mtime_ns

    def fsync_dir(self, ino: int) -> None:
        """Make the directory's entries (and its own attributes) durable."""
        node = self.node(ino)
        record = self.records[ino]
        for op in self.pending.pop(ino, ()):
            _apply(record, op)
        for change in self.dir_changes.pop(ino, ()):
            for name, child in change.parts.pop(ino, ()):
                _set_entry(record.entries, name, child)
        record.mtime_ns = node.mtime_ns
        self._since_collect += 1
        if self._since_collect > 64 and len(self.records) > 2 * len(self.nodes) + 64:
            self.collect()

    def sync_all(self) -> None:
        """Make everything durable, as a clean shutdown would."""
        self.records = {ino: node.copy() for ino, node in self.nodes.items()}
        self.pending.clear()
        self.changes.clear()
        self.dir_changes.clear()

    def collect(self) -> None:
        """Forget durable inodes nothing can reach any more, on disk or after a cut."""
        self._since_collect = 0
        self.changes = [change for change in self.changes if change.parts]
        needed = {ROOT, *self.nodes}
        for change in self.changes:
            needed.update(change.parts)
            for updates in change.parts.values():
                needed.update(child for _name, child in updates if child is not None)
        stack = list(needed)
        while stack:
            record = self.records.get(stack.pop())
            if record is None:
                continue
            for child in record.entries.values():
                if child not in needed:
                    needed.add(child)
                    stack.append(child)
        for ino in [ino for ino in self.records if ino not in needed]:
            del self.records[ino]
            self.pending.pop(ino, None)

    # -- power cuts ----------------------------------------------------------------------

    def pending_count(self) -> int:
        """Count the changes that are not durable yet."""
        entry_changes = sum(1 for change in self.changes if change.parts)
        return entry_changes + sum(len(ops) for ops in self.pending.values())

    def crash(self, mode: str, seed: int | None = None) -> tuple[Model, CrashReport]:
        """Build the tree a reboot after a power cut now would find.

        Args:
            mode: ``"strict"`` (only what is durable) or ``"random"`` (each pending change
                kept or lost at random, kept writes possibly torn at page boundaries).
            seed: the random seed (random mode).

        Returns:
            The new model, everything in it durable, and what the cut did.
        """
        if mode not in ("strict", "random"):
            raise ValueError(f"mode must be 'strict' or 'random', not {mode!r}")
        rng = random.Random(seed) if mode == "random" else None
        pending = self.pending_count()
        kept = torn = 0
        entries = {ino: dict(rec.entries) for ino, rec in self.records.items() if rec.is_dir}
        if rng is not None:
            for change in self.changes:
                if change.parts and rng.random() < KEEP_PROBABILITY:
                    kept += 1
                    for directory, updates in change.parts.items():
                        for name, child in updates:
                            _set_entry(entries[directory], name, child)
        images: dict[int, Inode] = {}
        for ino in sorted(self.records):
            image = self.records[ino].copy()
            if rng is not None:
                for op in self.pending.get(ino, ()):
                    outcome = _replay(image, op, rng)
                    kept += outcome > 0
                    torn += outcome == 2
            images[ino] = image
        crashed = Model.__new__(Model)
        crashed._adopt(images, entries)
        report = CrashReport(mode, seed if rng is not None else None, pending, kept, torn)
        return crashed, report

    def snapshot(self) -> Model:
        """Return a copy of the live tree with everything durable (a clean shutdown)."""
        images = {ino: node.copy() for ino, node in self.nodes.items()}
        entries = {ino: dict(node.entries) for ino, node in images.items() if node.is_dir}
        copy = Model.__new__(Model)
        copy._adopt(images, entries)
        return copy

    def _adopt(self, images: dict[int, Inode], entries: dict[int, dict[str, int]]) -> None:
        """Become the tree of ``images`` reachable from the root, all of it durable."""
        nodes: dict[int, Inode] = {}
        queue = [ROOT]
        root = images[ROOT]
        root.nlink = 1
        nodes[ROOT] = root
        while queue:
            directory = queue.pop()
            kept: dict[str, int] = {}
            for name in sorted(entries.get(directory, {})):
                child = entries[directory][name]
                image = images.get(child)
                if image is None:
                    continue
                if image.is_dir:
                    # A directory reachable twice (a rename across folders made durable in
                    # one of them only) keeps its first name, as fsck would.
                    if child in nodes:
                        continue
                    image.nlink = 1
                    nodes[child] = image
                    queue.append(child)
                elif child in nodes:
                    nodes[child].nlink += 1
                else:
                    image.nlink = 1
                    nodes[child] = image
                kept[name] = child
            nodes[directory].entries = kept
        self.nodes = nodes
        self.records = {ino: node.copy() for ino, node in nodes.items()}
        self.pending = {}
        self.changes = []
        self.dir_changes = {}
        self.open_count = {}
        self.next_ino = max(images, default=ROOT) + 1
        self._since_collect = 0

    # -- a real directory in and out -----------------------------------------------------

    @classmethod
    def load(cls, directory: str) -> Model:
        """Read a real directory tree (files, folders, symlinks, hard links, user xattrs)."""
        model = cls()
        info = os.lstat(directory)
        root = model.nodes[ROOT]
        root.mode, root.uid, root.gid = info.st_mode, info.st_uid, info.st_gid
        root.xattrs = _read_xattrs(directory)
        root.mtime_ns = info.st_mtime_ns
        seen: dict[tuple[int, int], int] = {}
        model._load_children(directory, ROOT, seen)
        model.sync_all()
        return model

    def _load_children(self, directory: str, parent: int, seen: dict[tuple[int, int], int]) -> None:
        with os.scandir(directory) as scan:
            children = sorted(scan, key=lambda entry: entry.name)
        for entry in children:
            info = entry.stat(follow_symlinks=False)
            key = (info.st_dev, info.st_ino)
            entries = self.nodes[parent].entries
            if key in seen and not entry.is_dir(follow_symlinks=False):
                entries[entry.name] = seen[key]
                self.nodes[seen[key]].nlink += 1
                continue
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(entry.path)
            elif stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode):
                target = ""
            else:
                continue  # sockets, fifos and devices have no place in the model
            ino = self._new_inode(info.st_mode, info.st_uid, info.st_gid, target)
            node = self.nodes[ino]
            node.nlink = 1
            node.mtime_ns = info.st_mtime_ns
            node.atime_ns = info.st_atime_ns
            entries[entry.name] = ino
            seen[key] = ino
            if stat.S_ISLNK(info.st_mode):
                continue
            node.xattrs = _read_xattrs(entry.path)
            if stat.S_ISREG(info.st_mode):
                with open(entry.path, "rb") as f:
                    node.data = bytearray(f.read())
            else:
                self._load_children(entry.path, ino, seen)

    def store(self, directory: str) -> None:
        """Make the real directory hold exactly the live tree (everything else in it goes)."""
        for name in os.listdir(directory):
            _remove(os.path.join(directory, name))
        written: dict[int, str] = {}
        self._store_children(ROOT, directory, written)
        root = self.nodes[ROOT]
        _write_attributes(directory, root)

    def _store_children(self, ino: int, directory: str, written: dict[int, str]) -> None:
        for name, child in sorted(self.nodes[ino].entries.items()):
            path = os.path.join(directory, name)
            node = self.nodes[child]
            if child in written:
                os.link(written[child], path)
                continue
            if stat.S_ISLNK(node.mode):
                os.symlink(node.target, path)
                continue
            if node.is_dir:
                os.mkdir(path, 0o700)
                self._store_children(child, path, written)
            else:
                with open(path, "xb") as f:
                    f.write(node.data)
                written[child] = path
            _write_attributes(path, node)


def _components(path: str) -> list[str]:
    return [name for name in path.split("/") if name]


def _set_entry(entries: dict[str, int], name: str, child: int | None) -> None:
    if child is None:
        entries.pop(name, None)
    else:
        entries[name] = child


def _apply(node: Inode, op: Op) -> None:
    kind = op[0]
    if kind == _WRITE:
        offset, data = cast(tuple[int, bytes], op[1:])
        _write_into(node.data, offset, data)
    elif kind == _SIZE:
        _resize(node.data, cast(int, op[1]))
    elif kind == _XATTR:
        name, value = cast(tuple[str, bytes | None], op[1:])
        if value is None:
            node.xattrs.pop(name, None)
        else:
            node.xattrs[name] = value
    elif kind == _MODE:
        node.mode = cast(int, op[1])
    elif kind == _OWNER:
        node.uid, node.gid = cast(tuple[int, int], op[1:])


def _replay(image: Inode, op: Op, rng: random.Random) -> int:
    """Apply ``op`` to a crash image in part or not at all; 0 lost, 1 kept, 2 torn."""
    if op[0] != _WRITE:
        if rng.random() < KEEP_PROBABILITY:
            _apply(image, op)
            return 1
        return 0
    offset, data = cast(tuple[int, bytes], op[1:])
    end = offset + len(data)
    # Each page of the write reaches the disk or not; the size it gives the file is
    # inode metadata, written (or not) on its own: a kept size with lost pages reads zeros.
    pieces = 0
    kept = 0
    start = offset
    while start < end:
        stop = min(end, (start // PAGE_SIZE + 1) * PAGE_SIZE)
        pieces += 1
        if rng.random() < KEEP_PROBABILITY:
            kept += 1
            _write_into(image.data, start, data[start - offset : stop - offset])
        start = stop
    grew = end > len(image.data) and rng.random() < KEEP_PROBABILITY
    if grew:
        _resize(image.data, end)
    if kept == 0 and not grew:
        return 0
    return 1 if kept == pieces else 2


def _write_into(data: bytearray, offset: int, chunk: bytes) -> None:
    if offset > len(data):
        data.extend(bytes(offset - len(data)))
    data[offset : offset + len(chunk)] = chunk


def _resize(data: bytearray, size: int) -> None:
    if size < len(data):
        del data[size:]
    else:
        data.extend(bytes(size - len(data)))


def _read_xattrs(path: str) -> dict[str, bytes]:
    values: dict[str, bytes] = {}
    if not hasattr(os, "listxattr"):  # pragma: no cover - Linux has them
        return values
    with contextlib.suppress(OSError):
        for name in os.listxattr(path, follow_symlinks=False):
            if name.startswith("user."):
                with contextlib.suppress(OSError):
                    values[name] = os.getxattr(path, name, follow_symlinks=False)
    return values


def _write_attributes(path: str, node: Inode) -> None:
    for name, value in node.xattrs.items():
        with contextlib.suppress(OSError):
            os.setxattr(path, name, value, follow_symlinks=False)
    with contextlib.suppress(OSError):
        os.chown(path, node.uid, node.gid, follow_symlinks=False)
    os.chmod(path, stat.S_IMODE(node.mode))
    os.utime(path, ns=(node.atime_ns, node.mtime_ns), follow_symlinks=False)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        for name in os.listdir(path):
            _remove(os.path.join(path, name))
        os.rmdir(path)
    else:
        os.unlink(path)


def walk(model: Model) -> Iterator[tuple[str, Inode]]:
    """Yield every live path (relative, ``/``-separated) and its inode, parents first."""
    stack = [("", ROOT)]
    while stack:
        prefix, ino = stack.pop()
        for name, child in sorted(model.nodes[ino].entries.items()):
            path = f"{prefix}{name}"
            node = model.nodes[child]
            yield path, node
            if node.is_dir:
                stack.append((path + "/", child))
