"""A move by link, then remove, survives a power cut that one rename across folders does not.

Under the strict model (ext4 without a journal) each directory reaches the disk when it is
fsynced, by anyone. A rename from ``new/`` to ``cur/`` followed by another process's fsync
of ``new/`` (a producer delivering) makes the removal durable before the addition: a cut
then leaves the file in neither folder. ``link``, which makes the new name durable first,
cannot lose it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from persistkit.core import fsync_dir, link, remove, rename
from persistkit.core.testing import PowerCut, PowerCutFS, cut_at_every_barrier

pytestmark = pytest.mark.powercut


def run(power_cut: PowerCutFS, move_then_someone_syncs_new) -> None:
    new, cur = power_cut.root / "new", power_cut.root / "cur"

    def setup() -> None:
        new.mkdir()
        cur.mkdir()
        (new / "m").write_bytes(b"acknowledged")

    def check(point: PowerCut) -> None:
        names = [path for path in (new / "m", cur / "m") if path.exists()]
        assert names, "the file is in neither folder: lost"
        assert all(path.read_bytes() == b"acknowledged" for path in names)

    cut_at_every_barrier(
        power_cut,
        lambda: move_then_someone_syncs_new(new, cur),
        setup=setup,
        check=check,
        modes=("strict",),
    )


def test_link_then_remove_is_never_lost(power_cut: PowerCutFS) -> None:
    def move(new: Path, cur: Path) -> None:
        link(new / "m", cur / "m")  # durable in cur/ before it leaves new/
        remove(new / "m", durability="atomic")
        fsync_dir(new)  # another process's fsync of new/
        fsync_dir(cur)

    run(power_cut, move)


def test_one_rename_across_folders_can_be_lost(power_cut: PowerCutFS) -> None:
    def move(new: Path, cur: Path) -> None:
        rename(new / "m", cur / "m", durability="atomic")
        fsync_dir(new)  # another process's fsync of new/, before ours of cur/
        fsync_dir(cur)

    with pytest.raises(AssertionError, match="lost"):
        run(power_cut, move)
