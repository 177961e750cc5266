from __future__ import annotations

import os
import textwrap
from pathlib import Path

from persistkit.core import atomic_folder, atomic_write, sweep
from persistkit.core.testing import kill_hard, leftovers, spawn_python

DIES_MID_WRITE = textwrap.dedent(
    """
    import os, sys
    from persistkit.core import atomic_write, atomic_folder
    with atomic_write(sys.argv[1], "wb") as f:
        f.write(b"partial")
        f.flush()
        with atomic_folder(sys.argv[2]) as folder:
            (folder / "x").write_bytes(b"partial")
            os.write(1, b"ready\\n")
            os.read(0, 1)  # blocks until the test kills us
    """
)


def _age(path: Path) -> None:
    os.utime(path, (1, 1))


def test_sweep_removes_what_a_killed_writer_left_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("user data")
    (tmp_path / ".hidden-but-not-ours").write_text("user data")
    child = spawn_python(DIES_MID_WRITE, tmp_path / "f", tmp_path / "d")
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    kill_hard(child)
    temps = [tmp_path / name for name in leftovers(tmp_path)]
    assert len(temps) == 2
    for temp in temps:
        _age(temp)
    removed = sweep(tmp_path)
    assert sorted(removed) == sorted(str(t) for t in temps)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden-but-not-ours", "keep.txt"]


def test_sweep_leaves_a_live_writer_alone(tmp_path: Path) -> None:
    target = tmp_path / "f"
    with atomic_write(target) as f, atomic_folder(tmp_path / "d") as folder:
        f.write("in progress")
        f.flush()
        (folder / "x").write_text("in progress")
        for name in leftovers(tmp_path):
            _age(tmp_path / name)
        assert sweep(tmp_path) == []
    assert target.read_text() == "in progress"
    assert (tmp_path / "d" / "x").read_text() == "in progress"


def test_sweep_respects_min_age(tmp_path: Path) -> None:
    leftover = tmp_path / ".f.0123456789ab.pktmp"
    leftover.write_text("fresh leftover")
    assert sweep(tmp_path) == []
    assert sweep(tmp_path, min_age=0) == [str(leftover)]
    assert not leftover.exists()
