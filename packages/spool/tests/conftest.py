from __future__ import annotations

from pathlib import Path

import pytest

from persistkit.spool import Spool


class Clock:
    """A clock the test moves by hand, so leases expire without waiting."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def spool(tmp_path: Path, clock: Clock) -> Spool:
    """A spool with a 60 s lease and 3 tries, on the hand-moved clock."""
    return Spool(tmp_path / "spool", lease=60, max_tries=3, clock=clock)
