"""The power-cut checks bite: writers that skip a flush are caught, and ``atomic`` is measured.

The broken writers here are core with one of its flushes taken out (patched in the test
process, so the forked operation runs without it), and a writer that overwrites in place.
Each must make the same check that core passes fail.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.core import _fs, fsync_file, write_bytes
from persistkit.core.testing import PowerCut, PowerCutFS, cut_at_every_barrier

pytestmark = pytest.mark.powercut

OLD = b"the durable old value " * 400  # a few pages, so a torn file shows
NEW = b"THE NEW VALUE written now " * 400


def old_then(work: Path) -> Callable[[], None]:
    def setup() -> None:
        work.mkdir(exist_ok=True)
        (work / "f").write_bytes(OLD)

    return setup


def durable_replace(work: Path) -> Callable[[PowerCut], None]:
    """The promise of a durable replace: old or new at any cut, new once it returned."""

    def check(point: PowerCut) -> None:
        content = (work / "f").read_bytes() if (work / "f").exists() else None
        if point.completed:
            assert content == NEW, "the write returned as durable, and is lost"
        else:
            assert content in (OLD, NEW), "the file is neither old nor new"

    return check


def run(power_cut: PowerCutFS, operation: Callable[[], object], modes: tuple[str, ...]) -> None:
    work = power_cut.root / "work"
    cut_at_every_barrier(
        power_cut,
        operation,
        setup=old_then(work),
        check=durable_replace(work),
        modes=modes,  # type: ignore[arg-type]
        seeds=range(8),
    )


def test_core_as_it_is_passes(power_cut: PowerCutFS) -> None:
    work = power_cut.root / "work"
    run(power_cut, lambda: write_bytes(work / "f", NEW), ("strict", "random"))


def test_core_without_its_directory_fsync_is_caught(
    power_cut: PowerCutFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fs, "fsync_directory", lambda path: True)
    work = power_cut.root / "work"
    with pytest.raises(AssertionError, match="returned as durable, and is lost"):
        run(power_cut, lambda: write_bytes(work / "f", NEW), ("strict",))


def test_core_without_its_file_fsync_is_caught(
    power_cut: PowerCutFS, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fs, "fsync", lambda fd, path: None)
    work = power_cut.root / "work"
    with pytest.raises(AssertionError, match="returned as durable, and is lost"):
        run(power_cut, lambda: write_bytes(work / "f", NEW), ("strict",))


def overwrite_in_place(path: Path, *, flush_every: int | None) -> None:
    """Truncate and rewrite the file itself, fsyncing at the end (or every few bytes)."""
    with open(path, "wb") as f:
        for start in range(0, len(NEW), flush_every or len(NEW)):
            f.write(NEW[start : start + (flush_every or len(NEW))])
            f.flush()
            if flush_every is not None:
                fsync_file(path)
    fsync_file(path)


def test_an_in_place_overwrite_is_caught_by_random_cuts(power_cut: PowerCutFS) -> None:
    # With one fsync at the end, the strict state before it is the old file, after it the
    # new one: only an order that the model allows without a barrier (the truncation kept,
    # the writes lost) shows the damage, and the random mode draws it.
    path = power_cut.root / "work" / "f"
    run(power_cut, lambda: overwrite_in_place(path, flush_every=None), ("strict",))
    with pytest.raises(AssertionError, match="neither old nor new"):
        run(power_cut, lambda: overwrite_in_place(path, flush_every=None), ("random",))


def test_an_in_place_overwrite_that_flushes_as_it_goes_is_caught_by_strict_cuts(
    power_cut: PowerCutFS,
) -> None:
    path = power_cut.root / "work" / "f"
    with pytest.raises(AssertionError, match="neither old nor new"):
        run(power_cut, lambda: overwrite_in_place(path, flush_every=4096), ("strict",))


def test_what_a_power_cut_does_to_an_atomic_replace(power_cut: PowerCutFS) -> None:
    """``durability="atomic"``: measured, for docs/core.md and docs/powercut.md.

    Strict cuts after the write returned always find the old value: the new one is lost,
    nothing is torn. Random cuts (the rename reached the disk, the new file's pages only in
    part) can leave the new name holding a mix of the new pages and zeros, or nothing: the
    old durable value is destroyed. No flush orders the data before the rename.
    """
    work = power_cut.root / "work"
    outcomes: collections.Counter[str] = collections.Counter()

    def classify(point: PowerCut) -> None:
        content = (work / "f").read_bytes()
        kind = {OLD: "old", NEW: "new", b"": "empty"}.get(content, "torn")
        outcomes[f"{point.mode} {kind}"] += 1
        assert os.listdir(work) == ["f"] or all(
            name == "f" or name.startswith(".") for name in os.listdir(work)
        )

    cut_at_every_barrier(
        power_cut,
        lambda: write_bytes(work / "f", NEW, durability="atomic"),
        setup=old_then(work),
        check=classify,
        seeds=range(200),
    )
    assert outcomes["strict old"] == 1 and sum(outcomes.values()) == 201
    assert outcomes["random old"] > 0 and outcomes["random new"] > 0
    destroyed = outcomes["random empty"] + outcomes["random torn"]
    assert destroyed > 0, "the model lets a rename reach the disk before the data"
    print(f"atomic replace, 200 random cuts after it returned: {dict(outcomes)}")
