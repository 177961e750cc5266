"""Leases: the record that an item was delivered by ``claim()`` and is not settled yet.

A lease lives in the queue's journal (an ``L`` record) until a checkpoint writes it,
durably, as a small file ``.persistkit-queue.leases/<item>`` holding ``<tries> <deadline in
ms> <owner>``; only then does the journal let go of the record. A lease file that cannot be
read (damaged by hand) counts as one try, given back: the item is delivered again.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

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
