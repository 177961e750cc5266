"""A process killed at any filesystem call of deliver, claim, done... loses and duplicates nothing.

`crash_at_every_call` runs the operation in a forked child that dies (os._exit) just before
its k-th filesystem call, for every k, and the check runs on the files the dead child left:
a real process death, not a simulation.

A durable move links the message under its new name before it removes the old one, so a
crash in between leaves one message with two names (one file, two hard links). That is one
message: the spool hands it out once and a finishing move removes every name. The checks
therefore look at files (inodes), and drain the spool to see what it would still deliver.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.core.testing import CrashPoint, crash_at_every_call
from persistkit.spool import Message, Spool
from persistkit.spool._message_names import parse_name

AREAS = ("tmp", "new", "cur", "dead", "done")
MESSAGE_AREAS = AREAS[1:]  # tmp/ is staging: what is there was never delivered
PAYLOADS = {b"first" * 1000, b"second", b"third"}


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def inventory(path: str) -> dict[str, list[tuple[str, bytes]]]:
    """Every visible message per area, as (id, content)."""
    found: dict[str, list[tuple[str, bytes]]] = {}
    for area in MESSAGE_AREAS:
        directory = Path(path, area)
        if not directory.exists():
            continue
        found[area] = [
            (parse_name(entry.name).unique, entry.read_bytes())
            for entry in sorted(directory.iterdir())
            if not entry.name.startswith(".")
        ]
    return found


def locate(path: str) -> dict[str, str]:
    """Map each visible message id to its area(s), "+"-joined; fail on partial content, or on
    two names of one id that are not the same file."""
    where: dict[str, list[str]] = {}
    files: dict[str, set[int]] = {}
    for area, messages in inventory(path).items():
        for message_id, content in messages:
            assert content in PAYLOADS, "a partial message is visible"
            where.setdefault(message_id, []).append(area)
    for area in MESSAGE_AREAS:
        directory = Path(path, area)
        if directory.exists():
            for entry in directory.iterdir():
                if not entry.name.startswith("."):
                    files.setdefault(parse_name(entry.name).unique, set()).add(entry.stat().st_ino)
    for message_id, inodes in files.items():
        assert len(inodes) == 1, f"{message_id} is two different files in {where[message_id]}"
    return {message_id: "+".join(areas) for message_id, areas in where.items()}


def drain(path: str) -> list[str]:
    """Claim and finish everything the spool would still hand out; the ids, in order."""
    spool = Spool(path, lease=30, max_tries=1000, clock=lambda: 4e9)
    handed = []
    while (message := spool.claim()) is not None:
        handed.append(message.id)
        spool.done(message)
    return handed


def assert_each_message_once(
    path: str, ids: set[str], *, finished: set[str] = frozenset()
) -> dict[str, str]:
    """Each id is in exactly one area with its full content, unless it was finished."""
    where = locate(path)
    assert set(where) <= ids
    assert ids - set(where) <= finished, "a message was lost"
    return where


def assert_handed_out_once(path: str, where: dict[str, str]) -> None:
    """Draining hands out each waiting or claimed message once, a finished one never; one
    caught in the middle of being finished (a name in cur/ and one in done/ or dead/) at
    most once. The drain changes the spool: call it last."""
    areas = {message_id: set(joined.split("+")) for message_id, joined in where.items()}
    handed = drain(path)
    assert len(handed) == len(set(handed)), "handed out twice"
    for message_id, names in areas.items():
        if not names & {"dead", "done"}:
            assert message_id in handed, "a waiting or claimed message was lost"
        elif not names & {"new", "cur"}:
            assert message_id not in handed, "a finished message was handed out again"


class World:
    """A spool put back into the same starting state before every crash run."""

    def __init__(self, root: Path, **options: object) -> None:
        self.path = str(root / "spool")
        self.clock = Clock()
        self.options = options
        self.ids: set[str] = set()
        self.claimed: list[Message] = []

    def spool(self) -> Spool:
        return Spool(self.path, lease=30, max_tries=2, clock=self.clock, **self.options)

    def reset(self, claim: int = 0, expire: bool = False) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.clock.now = 1_700_000_000.0
        spool = self.spool()
        self.ids = {spool.deliver(payload) for payload in sorted(PAYLOADS)}
        self.claimed = [spool.claim() for _ in range(claim)]
        if expire:
            self.clock.now += 31

    def run(
        self, operation: Callable[[], object], check: Callable[[CrashPoint], None], **reset: object
    ) -> int:
        return crash_at_every_call(operation, check=check, setup=lambda: self.reset(**reset))


def assert_no_temp_left_after_clean(world: World) -> None:
    spool = world.spool()
    spool.clean(temp_min_age=0)
    for area in AREAS:
        directory = Path(world.path, area)
        if directory.exists():
            assert [p.name for p in directory.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("durability", ["durable", "atomic"])
def test_deliver(tmp_path, durability):
    world = World(tmp_path, durability=durability)

    def check(point: CrashPoint) -> None:
        where = locate(world.path)
        assert world.ids <= set(where), "an earlier message was lost"
        delivered = set(where) - world.ids
        assert len(delivered) <= 1
        if point.completed:
            assert len(delivered) == 1
        assert {where[i] for i in delivered} <= {"new"}
        # What a crash leaves (a hidden temp beside the target, or a staged file in tmp/)
        # is cleaned up and never becomes a message.
        assert_no_temp_left_after_clean(world)
        world.spool().clean(max_age=0)
        assert os.listdir(Path(world.path, "tmp")) == []
        assert locate(world.path) == where

    runs = world.run(lambda: world.spool().deliver(b"second"), check)
    assert runs >= (5 if durability == "durable" else 1)


@pytest.mark.parametrize("expire", [False, True], ids=["from-new", "expired-lease"])
def test_claim(tmp_path, expire):
    world = World(tmp_path)

    def check(point: CrashPoint) -> None:
        where = assert_each_message_once(world.path, world.ids)
        assert len(where) == 3
        claimed = sorted(i for i, area in where.items() if "cur" in area)
        # One claim at most happened in the child, besides the one made in setup.
        assert len(claimed) <= (2 if expire else 1)
        fresh = world.spool().claim()
        assert fresh is not None, "after the crash, a message must still be claimable"
        world.spool().release(fresh, count_try=False)
        assert_handed_out_once(world.path, where)

    world.run(lambda: world.spool().claim(), check, claim=1 if expire else 0, expire=expire)


@pytest.mark.parametrize("keep_done", [False, True])
def test_done(tmp_path, keep_done):
    world = World(tmp_path, keep_done=keep_done)

    def check(point: CrashPoint) -> None:
        finished = {world.claimed[0].id}
        where = assert_each_message_once(
            world.path, world.ids, finished=set() if keep_done else finished
        )
        assert where.get(world.claimed[0].id) in ("cur", "done", "cur+done", None)
        if point.completed:
            assert where.get(world.claimed[0].id) == ("done" if keep_done else None)
        assert_handed_out_once(world.path, where)

    world.run(lambda: world.spool().done(world.claimed[0]), check, claim=1)


def test_release(tmp_path):
    world = World(tmp_path)

    def check(point: CrashPoint) -> None:
        where = assert_each_message_once(world.path, world.ids)
        assert len(where) == 3
        if point.completed:
            assert where[world.claimed[0].id] == "new"
        assert_handed_out_once(world.path, where)

    world.run(lambda: world.spool().release(world.claimed[0]), check, claim=1)


def test_dead_lettering_by_claim(tmp_path):
    world = World(tmp_path)

    def setup_second_expiry() -> None:
        world.reset(claim=1, expire=True)
        spool = world.spool()
        spool.claim()  # the second try, which also expires
        world.clock.now += 31

    def check(point: CrashPoint) -> None:
        where = assert_each_message_once(world.path, world.ids)
        assert len(where) == 3
        if point.completed:
            assert "dead" in where.values()
        assert_handed_out_once(world.path, where)

    runs = crash_at_every_call(
        lambda: world.spool().claim(), check=check, setup=setup_second_expiry
    )
    assert runs >= 3
    assert os.path.isdir(os.path.join(world.path, "dead"))
