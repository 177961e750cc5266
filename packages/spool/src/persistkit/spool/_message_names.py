"""Maildir-unique message names, and the claim information carried in them.

A message is named ``<unique>`` when delivered, where ``<unique>`` follows the maildir spec
(cr.yp.to/proto/maildir.html): ``<seconds>.M<microseconds>P<pid>Q<sequence>R<random>.<host>``.
Seconds and microseconds give the order of delivery; pid and the per-process sequence make
names unique within one host even within one microsecond and across ``fork``; 64 random bits
and the host name make them unique across hosts and pid reuse, with no coordination at all.

The state of a message travels in its name after maildir's experimental-info marker ``:1,``
(never parsed by other maildir readers), so one atomic rename moves a message *and* records
its new state:

- ``new/<unique>`` or ``new/<unique>:1,T<tries>``: waiting, claimed ``tries`` times before;
- ``cur/<unique>:1,T<tries>,L<deadline>``: claimed, for the ``tries``-th time, with a lease
  ending at ``deadline`` (milliseconds of the spool's clock);
- ``dead/<unique>:1,T<tries>`` and ``done/<unique>:1,T<tries>``: finished.
"""

from __future__ import annotations

import functools
import itertools
import os
import socket
import threading
import time
from dataclasses import dataclass

INFO_MARK = ":1,"


class _Order:
    """Per-process state: the last time part handed out, and a pool of random bytes."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last_micros = 0
        self.sequence = itertools.count()
        self.random = b""
        self.random_at = 0
        self.pid = os.getpid()  # getpid() is a system call; the pid changes only at fork

    def after_fork(self) -> None:
        # A lock held by another thread at fork() time would stay held in the child, and
        # the child must not hand out the random bytes its parent will also use.
        self.lock = threading.Lock()
        self.random = b""
        self.random_at = 0
        self.pid = os.getpid()

    def random_hex(self) -> str:
        """Return 64 fresh random bits as hex (one getrandom call per 512 names)."""
        if self.random_at >= len(self.random):
            self.random, self.random_at = os.urandom(4096), 0
        start, self.random_at = self.random_at, self.random_at + 8
        return self.random[start : start + 8].hex()


_order = _Order()
os.register_at_fork(after_in_child=_order.after_fork)


@functools.cache
def _host_name() -> str:
    # The spec's escapes for the two characters a unique name must not contain.
    name = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    return name[:64] or "localhost"


def unique_name() -> str:
    """Return a new maildir-unique name; in one process, later names sort after earlier ones."""
    with _order.lock:
        # Names of one process must sort in the order they were made, even within one
        # microsecond or when the clock steps back, so the time part never repeats here.
        micros = max(time.time_ns() // 1000, _order.last_micros + 1)
        _order.last_micros = micros
        sequence = next(_order.sequence)
        random_part = _order.random_hex()
        pid = _order.pid
    seconds, micro = divmod(micros, 1_000_000)
    return f"{seconds}.M{micro:06d}P{pid}Q{sequence}R{random_part}.{_host_name()}"


@dataclass(frozen=True, slots=True)
class MessageName:
    """A message file name taken apart.

    Attributes:
        unique: the message's id, the same in every area.
        tries: how many times it has been claimed.
        deadline_ms: the end of its lease (only for claimed messages), else None.
    """

    unique: str
    tries: int = 0
    deadline_ms: int | None = None

    def __str__(self) -> str:
        if self.deadline_ms is not None:
            return f"{self.unique}{INFO_MARK}T{self.tries},L{self.deadline_ms}"
        if self.tries:
            return f"{self.unique}{INFO_MARK}T{self.tries}"
        return self.unique


def parse_name(name: str) -> MessageName:
    """Take a file name apart; a name without valid claim information has none."""
    unique, mark, info = name.rpartition(INFO_MARK)
    if not mark or not unique:
        return MessageName(name)
    tries = 0
    deadline: int | None = None
    for field in info.split(","):
        key, digits = field[:1], field[1:]
        if not digits.isdigit() or not digits.isascii():
            return MessageName(name)
        if key == "T":
            tries = int(digits)
        elif key == "L":
            deadline = int(digits)
        else:
            return MessageName(name)
    return MessageName(unique, tries, deadline)
