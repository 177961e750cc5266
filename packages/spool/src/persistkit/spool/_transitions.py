"""How a message moves between areas so that no power cut loses it or brings it back.

The rules, for ``durability="durable"`` (issue 10; proven on core's power-cut filesystem):

1. **Never lost.** A message moving to another area gets its new name with a hard link,
   that name's folder is fsynced, and only then is the old name removed. One rename across
   two folders cannot promise this where each folder reaches the disk on its own (ext4
   without a journal, the strict model): a producer's fsync of ``new/`` right after a claim
   would make the removal durable before the addition, and a power cut would leave the
   message in neither folder. A move within one folder (a lease taken over or renewed) is
   one rename: a folder reaches the disk whole.
2. **Never back once finished.** ``done``, ``dead_letter`` and the other finishing moves
   fsync every folder the message's life removed it from, ``new/`` included (its claim
   removed it from there without an fsync), before they return.
3. **Duplicates are one message.** Between a link and its removal a message has two names,
   and a power cut can keep both. They name one file, so a finishing move that finds the
   file with more than one name removes the others (same id, same inode) before its
   fsyncs. A message is therefore handed out at most once more after a cut, and never
   after ``done`` returned.

Consumers racing for one message each link it to their own claim name; removing the
``new/`` name decides the race (exactly one unlink succeeds), and the losers remove their
link again.

Costs, per message handed off: deliver fsyncs the file and ``new/``, claim fsyncs ``cur/``,
done fsyncs ``cur/`` and ``new/``: five flushes, where the classic maildir hand-off pays
three and can lose a claimed message or hand a finished one out again. With
``durability="atomic"`` every move is one rename and nothing is fsynced.
"""

from __future__ import annotations

import contextlib
import os

from persistkit.core import (
    Durability,
    UnsupportedOperationError,
    fsync_dir,
    link,
    remove,
    rename,
)
from persistkit.spool._message_names import parse_name

_FINISHED_SCAN_AREAS = ("new", "cur", "dead")


class Transitions:
    """The moves of one spool's messages, by the rules above."""

    def __init__(self, dirs: dict[str, str], durability: Durability) -> None:
        self._dirs = dirs
        self._durable = durability == "durable"
        self._links = True  # False once the filesystem has refused a hard link

    def claim(self, source: str, target: str) -> None:
        """Move a waiting (or expired) message to its claim name in ``cur``.

        Raises:
            FileNotFoundError: another consumer took it first.
            TargetExistsError: the claim name is taken.
        """
        if not self._durable or _parent(source) == _parent(target) or not self._links:
            rename(source, target, overwrite=False, durability="atomic")
            return
        try:
            link(source, target)
        except UnsupportedOperationError:
            self._links = False
            rename(source, target, overwrite=False, durability="atomic")
            return
        try:
            remove(source, durability="atomic")
        except FileNotFoundError:
            # Another consumer linked it too and removed the source first: theirs.
            remove(target, durability="atomic", missing_ok=True)
            raise

    def move(self, source: str, target: str, *, finishing: bool) -> None:
        """Move a claimed (or dead) message held by this caller to ``target``.

        Guarantees when it returns (durable): the message is in ``target`` and gone from
        ``source`` and from ``new/``, surviving power loss. ``finishing`` (dead letter,
        keep_done, too many tries) also removes the message's other names.

        Raises:
            FileNotFoundError: ``source`` is gone (the lease was taken over); nothing moved.
            TargetExistsError: ``target`` exists.
        """
        if not self._durable:
            rename(source, target, overwrite=False, durability="atomic")
            return
        info = os.lstat(source)
        folders = {_parent(source), self._dirs["new"]}
        if self._link_then_remove(source, target):
            folders.discard(_parent(target))  # the link fsynced it already
        else:
            folders.add(_parent(target))
        if finishing and info.st_nlink > 1:
            folders |= self._remove_other_names(source, info, keep=target)
        _sync(folders)

    def finish(self, path: str) -> None:
        """Remove a claimed message for good: it is never handed out again.

        Guarantees when it returns (durable): no name of the message is left in ``new``,
        ``cur`` or ``dead``, surviving power loss.

        Raises:
            FileNotFoundError: ``path`` is gone (the lease was taken over).
        """
        if not self._durable:
            # Atomic moves are single renames: a message never has two names to clean up.
            remove(path, durability="atomic")
            return
        info = os.lstat(path)
        remove(path, durability="atomic")
        folders = {_parent(path), self._dirs["new"]}
        if info.st_nlink > 1:
            folders |= self._remove_other_names(path, info, keep=None)
        _sync(folders)

    def _link_then_remove(self, source: str, target: str) -> bool:
        """Move by link, then removal; False when it fell back to a rename (nothing synced)."""
        if self._links:
            try:
                link(source, target)
            except UnsupportedOperationError:
                self._links = False
            else:
                try:
                    remove(source, durability="atomic")
                except FileNotFoundError:
                    remove(target, durability="atomic", missing_ok=True)
                    raise
                return True
        # No hard links here: one rename, both folders synced by the caller (the weaker
        # promise of a rename across folders; the guide says where it falls short).
        rename(source, target, overwrite=False, durability="atomic")
        return False

    def _remove_other_names(
        self, source: str, info: os.stat_result, *, keep: str | None
    ) -> set[str]:
        """Remove every other name of the message's file; return the folders changed."""
        unique = parse_name(os.path.basename(source)).unique
        changed: set[str] = set()
        for area in _FINISHED_SCAN_AREAS:
            folder = self._dirs[area]
            with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
                for entry in entries:
                    if entry.path in (source, keep) or parse_name(entry.name).unique != unique:
                        continue
                    with contextlib.suppress(FileNotFoundError):
                        if entry.inode() == info.st_ino and remove(
                            entry.path, durability="atomic", missing_ok=True
                        ):
                            changed.add(folder)
        return changed


def _parent(path: str) -> str:
    return os.path.dirname(path)


def _sync(folders: set[str]) -> None:
    # One after the other. Issued together from two threads they did not share the disk's
    # flush on the test disk (interleaved runs: 0.46-0.47x the rate of one fsync, against
    # 0.45-0.54x one after the other), so threads would buy nothing.
    for folder in sorted(folders):
        fsync_dir(folder)
