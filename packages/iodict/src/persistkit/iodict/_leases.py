"""Leases: the record that an item was delivered by ``claim()`` and is not settled yet.

A lease is a small file ``.persistkit-queue.leases/<item>`` holding ``<tries> <deadline in
ms> <owner>``. Its *existence* is what protects the item: its name is fsynced before the
head moves past the item, so a power cut can never leave an item that is neither waiting
nor leased; removing it (fsynced) is what acknowledges the item. Its *content* is replaced
atomically but not fsynced: after a power cut every lease belongs to a process of an
earlier boot, so only the try count can be lost, and an unreadable lease counts as one try.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from persistkit.core import write_bytes
from persistkit.iodict._owners import owner_alive
from persistkit.iodict._queue_names import item_name, parse_item_name


@dataclass(frozen=True, slots=True)
class Lease:
    """One lease as read from its file.

    Attributes:
        item: the leased item's number.
        tries: how many times the item was delivered by ``claim()``, this time included.
        deadline_ms: when the lease ends (wall clock, ms since the epoch).
        owner: the holder's process token; empty once the item was given back (nack), when
            the deadline says when it may be delivered again.
    """

    item: int
    tries: int
    deadline_ms: int
    owner: str

    def encode(self) -> bytes:
        """Return the file content."""
        return f"{self.tries} {self.deadline_ms} {self.owner}\n".encode()

    def returned(self, now_ms: int, alive: dict[str, bool | None]) -> bool:
        """Whether the item may be delivered again: lease over, or its holder is gone.

        Args:
            now_ms: the wall clock in ms.
            alive: a cache of `owner_alive` answers, filled as owners are looked up.
        """
        if self.deadline_ms <= now_ms:
            return True
        if not self.owner:  # given back with a delay that has not passed yet
            return False
        if self.owner not in alive:
            alive[self.owner] = owner_alive(self.owner)
        return alive[self.owner] is False


def lease_path(leases_dir: str, item: int) -> str:
    """Return the path of the lease file of item number ``item``."""
    return os.path.join(leases_dir, item_name(item))


def read_lease(leases_dir: str, item: int) -> Lease | None:
    """Read the lease of ``item``; None when there is none.

    A lease whose content was lost (a power cut before the kernel wrote it back) reads as
    one try, given back, so the item is delivered again.
    """
    try:
        with open(lease_path(leases_dir, item), "rb") as f:
            data = f.read(256)
    except FileNotFoundError:
        return None
    fields = data.split()
    if len(fields) == 3 and fields[0].isdigit() and fields[1].isdigit():
        return Lease(item, int(fields[0]), int(fields[1]), fields[2].decode("ascii", "replace"))
    if len(fields) == 2 and fields[0].isdigit() and fields[1].isdigit():
        return Lease(item, int(fields[0]), int(fields[1]), "")
    return Lease(item, 1, 0, "")


def list_leases(leases_dir: str) -> dict[int, Lease]:
    """Read every lease (the in-flight items, a short list)."""
    leases: dict[int, Lease] = {}
    try:
        names = os.listdir(leases_dir)
    except FileNotFoundError:
        return leases
    for name in names:
        item = parse_item_name(name)
        if item is not None:
            lease = read_lease(leases_dir, item)
            if lease is not None:
                leases[item] = lease
    return leases


def write_lease(leases_dir: str, lease: Lease, *, new: bool) -> None:
    """Create (``new``) or replace a lease file atomically, without any fsync."""
    write_bytes(
        lease_path(leases_dir, lease.item),
        lease.encode(),
        overwrite=not new,
        durability="atomic",
        follow_symlinks=False,
    )
