"""The dead-letter area: items a queue could not deliver, kept with the reason why.

An item is moved (one rename, the item's bytes untouched) into ``.persistkit-queue.dead/``
under its number, beside a small JSON file saying why. Nothing there is ever delivered or
removed by the queue itself; `DurableQueue.requeue_dead` puts an item back and
`DurableQueue.discard_dead` removes it, each only when asked.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any

from persistkit.core import Durability, TargetExistsError, make_dirs, remove, rename, write_bytes
from persistkit.iodict._queue_names import item_name, parse_item_name

_REASON_SUFFIX = ".json"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An item in the dead-letter area, as `DurableQueue.dead_letters` lists it.

    Attributes:
        id: the item's number (what `DurableQueue.requeue_dead` takes).
        path: the item file, with its encoded value exactly as it was put.
        reason: why it was moved aside (the decoding error, or the tries it had).
        error: the error's class name (``"UnloadableValueError"``, ``"CorruptFileError"``),
            or ``""`` when it was moved for too many tries or by the consumer.
        tries: how many times ``claim()`` had delivered it.
        time: when it was moved (seconds since the epoch); 0.0 when unknown.
    """

    __module__ = "persistkit.iodict"

    id: int
    path: str
    reason: str
    error: str
    tries: int
    time: float

    def read_bytes(self) -> bytes:
        """Return the item's encoded value."""
        with open(self.path, "rb") as f:
            return f.read()


def dead_path(dead_dir: str, item: int) -> str:
    """Return where item number ``item`` lies in the dead-letter area."""
    return os.path.join(dead_dir, item_name(item))


def bury(
    dead_dir: str,
    item: int,
    source: str | None,
    data: bytes,
    *,
    reason: str,
    error: str,
    tries: int,
    durability: Durability,
) -> str:
    """Move item ``item`` into the dead-letter area; return its new path.

    The item file ``source`` is renamed there; an item without a file of its own (its only
    copy is in the journal) is written there from ``data``. The reason file is written
    first, so an item in the area always has its reason (a reason without an item is
    ignored). With ``"durable"`` the move survives power loss when this returns; a cut
    during it can leave the item in both places (then it is buried again, not duplicated),
    never in neither.
    """
    make_dirs(dead_dir, durability=durability)
    target = dead_path(dead_dir, item)
    document = {"reason": reason, "error": error, "tries": tries, "time": time.time()}
    write_bytes(
        target + _REASON_SUFFIX,
        (json.dumps(document) + "\n").encode(),
        durability=durability,
        follow_symlinks=False,
    )
    if source is None:
        write_bytes(target, data, durability=durability, follow_symlinks=False)
        return target
    try:
        rename(source, target, overwrite=False, durability=durability)
    except TargetExistsError:
        # Buried before, and a power cut brought the source name back: keep one copy.
        remove(source, durability=durability, missing_ok=True)
    return target


def _read_reason(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            document = json.loads(f.read())
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def list_dead(dead_dir: str) -> list[DeadLetter]:
    """Return the dead letters, oldest item first (reads only)."""
    try:
        names = os.listdir(dead_dir)
    except FileNotFoundError:
        return []
    letters = []
    for name in names:
        item = parse_item_name(name)
        path = os.path.join(dead_dir, name)
        if item is None or not os.path.isfile(path):
            continue
        document = _read_reason(path + _REASON_SUFFIX)
        tries = document.get("tries", 0)
        when = document.get("time", 0.0)
        letters.append(
            DeadLetter(
                id=item,
                path=path,
                reason=str(document.get("reason", "unknown (no reason file)")),
                error=str(document.get("error", "")),
                tries=tries if isinstance(tries, int) else 0,
                time=float(when) if isinstance(when, int | float) else 0.0,
            )
        )
    return sorted(letters, key=lambda letter: letter.id)


def reason_path(dead_dir: str, item: int) -> str:
    """Return the reason file of a dead letter."""
    return dead_path(dead_dir, item) + _REASON_SUFFIX
