"""Spool on the power-cut filesystem: every durable transition, cut at every barrier and at
random points, in both modes, and real processes cut mid-work (issue 10).

After each cut the spool is reopened with its own API and drained by a consumer whose clock
is far past every lease: what it is handed is what the spool would ever deliver again. The
invariants: a message whose delivery was acknowledged (deliver returned) is delivered, and
exactly once, unless its consumer had called ``done``; once ``done`` (or ``dead_letter``)
returned it is never delivered again; every message has exactly its content; no temporary
file is visible through the API.
"""

from __future__ import annotations

import collections
import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.core.testing import (
    PowerCut,
    PowerCutFS,
    cut_at_every_barrier,
    cut_at_random_points,
    cut_processes,
)
from persistkit.spool import Message, Spool

pytestmark = pytest.mark.powercut

PAYLOAD = b"a message that spans more than one page " * 120
FAR_FUTURE = 4_000_000_000.0


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def drain(path: Path) -> dict[str, list[bytes]]:
    """Claim and finish everything the spool would still hand out; id -> contents handed."""
    spool = Spool(path, lease=60, max_tries=10_000, clock=lambda: FAR_FUTURE, watch="poll")
    handed: dict[str, list[bytes]] = collections.defaultdict(list)
    while (message := spool.claim()) is not None:
        handed[message.id].append(message.read_bytes())
        spool.done(message)
    return dict(handed)


def ids_in(path: Path, area: str) -> list[str]:
    spool = Spool(path, create=False, watch="poll")
    return [os.path.basename(name).partition(":")[0] for name in spool.list(area)]


def visible_temporaries(path: Path) -> list[str]:
    spool = Spool(path, create=False, watch="poll")
    return [name for area in spool.areas for name in spool.list(area) if ".pktmp" in name]


class Scenario:
    """One message delivered durably in setup; ``operation`` works on it in a child."""

    def __init__(self, root: Path, **options: object) -> None:
        self.path = root / "spool"
        self.options = options
        self.clock = Clock()
        self.id = ""

    def spool(self) -> Spool:
        options: dict[str, object] = {"lease": 60, "clock": self.clock, "watch": "poll"}
        return Spool(self.path, **{**options, **self.options})  # type: ignore[arg-type]

    def setup(self) -> None:
        self.id = self.spool().deliver(PAYLOAD)

    def claim(self, spool: Spool) -> Message:
        message = spool.claim()
        assert message is not None and message.id == self.id
        return message


def check_message(
    scenario: Scenario, *, completed_area: str | None, may_be_finished: bool
) -> Callable[[PowerCut], None]:
    """The check after a cut, for an operation that ends with the message in ``completed_area``.

    ``completed_area`` None means the operation finishes the message (done without
    keep_done). ``may_be_finished``: a cut before the operation returned may already show
    it finished (its last step reached the disk).
    """

    def check(point: PowerCut) -> None:
        assert visible_temporaries(scenario.path) == []
        finished_in = [
            area for area in ("dead", "done") if scenario.id in ids_in(scenario.path, area)
        ]
        assert len(finished_in) <= 1
        handed = drain(scenario.path)
        assert set(handed) <= {scenario.id}
        copies = handed.get(scenario.id, [])
        assert all(content == PAYLOAD for content in copies)
        assert len(copies) <= 1, "delivered twice"
        if point.completed:
            if completed_area in (None, "dead", "done"):
                assert copies == [], "handed out again after the spool said it was finished"
                assert finished_in == ([] if completed_area is None else [completed_area])
            else:
                assert copies == [PAYLOAD]
        else:
            assert copies or finished_in or may_be_finished, "an acknowledged message was lost"

    return check


def run(power_cut: PowerCutFS, scenario: Scenario, operation: Callable[[], object], check) -> None:
    cut_at_every_barrier(power_cut, operation, setup=scenario.setup, check=check, seeds=(0, 1))
    cut_at_random_points(power_cut, operation, setup=scenario.setup, check=check, runs=4)


@pytest.mark.parametrize("keep_done", [False, True])
def test_claim_then_done(power_cut: PowerCutFS, keep_done: bool) -> None:
    scenario = Scenario(power_cut.root, keep_done=keep_done)

    def operation() -> None:
        spool = scenario.spool()
        spool.done(scenario.claim(spool))

    # With keep_done a finished message is still in done/, so a cut that left it nowhere
    # lost it; without keep_done that cannot be told from done() having reached the disk.
    check = check_message(
        scenario, completed_area="done" if keep_done else None, may_be_finished=not keep_done
    )
    run(power_cut, scenario, operation, check)


def test_claim_then_release(power_cut: PowerCutFS) -> None:
    scenario = Scenario(power_cut.root)

    def operation() -> None:
        spool = scenario.spool()
        spool.release(scenario.claim(spool))

    run(
        power_cut,
        scenario,
        operation,
        check_message(scenario, completed_area="new", may_be_finished=False),
    )


def test_claim_then_dead_letter(power_cut: PowerCutFS) -> None:
    scenario = Scenario(power_cut.root)

    def operation() -> None:
        spool = scenario.spool()
        spool.dead_letter(scenario.claim(spool))

    check = check_message(scenario, completed_area="dead", may_be_finished=False)
    run(power_cut, scenario, operation, check)


def test_a_lease_taken_over_then_done(power_cut: PowerCutFS) -> None:
    scenario = Scenario(power_cut.root)

    def operation() -> None:
        spool = scenario.spool()
        scenario.claim(spool)  # its consumer "dies"; the lease runs out
        scenario.clock.now += 3600
        spool.done(scenario.claim(spool))

    run(
        power_cut,
        scenario,
        operation,
        check_message(scenario, completed_area=None, may_be_finished=True),
    )


def test_too_many_tries_buries_the_message(power_cut: PowerCutFS) -> None:
    scenario = Scenario(power_cut.root, max_tries=1)

    def operation() -> None:
        spool = scenario.spool()
        scenario.claim(spool)
        scenario.clock.now += 3600
        assert spool.claim() is None  # its one try is used up: buried

    check = check_message(scenario, completed_area="dead", may_be_finished=False)
    run(power_cut, scenario, operation, check)


def test_requeue_from_dead(power_cut: PowerCutFS) -> None:
    scenario = Scenario(power_cut.root)

    def setup() -> None:
        scenario.setup()
        spool = scenario.spool()
        spool.dead_letter(scenario.claim(spool))

    def operation() -> None:
        scenario.spool().requeue(scenario.id)

    check = check_message(scenario, completed_area="new", may_be_finished=False)
    cut_at_every_barrier(power_cut, operation, setup=setup, check=check, seeds=(0, 1))


@pytest.mark.parametrize("many", [False, True])
def test_deliveries(power_cut: PowerCutFS, many: bool) -> None:
    path = power_cut.root / "spool"
    payloads = [PAYLOAD, b"second", b"third" * 2000]

    def operation() -> None:
        spool = Spool(path, watch="poll")
        if many:
            spool.deliver_many(payloads)
        else:
            for payload in payloads:
                spool.deliver(payload)

    def check(point: PowerCut) -> None:
        assert visible_temporaries(path) == []
        handed = drain(path)
        contents = sorted(copies[0] for copies in handed.values())
        assert all(len(copies) == 1 for copies in handed.values()), "delivered twice"
        assert set(contents) <= set(payloads)  # whole messages only, never torn or empty
        if point.completed:
            assert contents == sorted(payloads)

    setup = lambda: Spool(path, watch="poll").close()  # noqa: E731 - a one-line setup
    cut_at_every_barrier(power_cut, operation, setup=setup, check=check, seeds=(0, 1))
    cut_at_random_points(power_cut, operation, setup=setup, check=check, runs=4)


# A worker acknowledges an operation by printing a line once it returned.
ACKNOWLEDGE = """
import sys
def say(*words):
    print(*words, flush=True)
"""

PRODUCER = (
    ACKNOWLEDGE
    + """
from persistkit.spool import Spool
spool = Spool(sys.argv[1], watch="poll")
for n in range(10_000):
    say("delivered", spool.deliver(f"{sys.argv[2]}-{n}".encode()))
"""
)

CONSUMER = (
    ACKNOWLEDGE
    + """
from persistkit.spool import Spool
spool = Spool(sys.argv[1], lease=3600, watch="poll")
while True:
    message = spool.claim(timeout=None)
    if sys.argv[2] == "release" and message.tries == 1:
        spool.release(message)
        continue
    say("finishing", message.id)  # from here on it may be gone
    if sys.argv[2] == "dead" and message.read_bytes().endswith(b"7"):
        spool.dead_letter(message)
        say("dead", message.id)
        continue
    spool.done(message)
    say("done", message.id)
"""
)


@pytest.mark.parametrize("mode", ["strict", "random"])
def test_producers_and_consumers_killed_by_a_power_cut(power_cut: PowerCutFS, mode: str) -> None:
    path = power_cut.root / "spool"
    Spool(path, watch="poll").close()
    power_cut.sync()
    commands = [
        [sys.executable, "-c", PRODUCER, str(path), "p0"],
        [sys.executable, "-c", PRODUCER, str(path), "p1"],
        [sys.executable, "-c", CONSUMER, str(path), "done"],
        [sys.executable, "-c", CONSUMER, str(path), "release"],
        [sys.executable, "-c", CONSUMER, str(path), "dead"],
    ]
    for seed in range(2):
        snapshot = power_cut.snapshot()
        result = cut_processes(power_cut, commands, after_lines=80, mode=mode, seed=seed)
        said: dict[str, set[str]] = collections.defaultdict(set)
        for line in result.lines:
            verb, _, message_id = line.partition(" ")
            said[verb].add(message_id)
        dead = set(ids_in(path, "dead"))
        assert said["dead"] <= dead, f"seed {seed}: a dead letter came back"
        assert visible_temporaries(path) == []
        handed = drain(path)
        for message_id, copies in handed.items():
            assert len(copies) == 1, f"seed {seed}: {message_id} delivered twice"
        assert not said["done"] & set(handed), f"seed {seed}: delivered again after done()"
        assert not said["dead"] & set(handed), f"seed {seed}: delivered after dead_letter()"
        lost = said["delivered"] - said["finishing"] - dead - set(handed)
        assert not lost, f"seed {seed}: acknowledged deliveries lost: {sorted(lost)}"
        power_cut.restore(snapshot)
