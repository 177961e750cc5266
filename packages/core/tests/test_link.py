"""link: the primitive of a move that no power cut can lose (issue 10)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from persistkit.core import (
    CrossDeviceError,
    TargetExistsError,
    UnsupportedOperationError,
    link,
    remove,
)
from persistkit.core.testing import crash_at_every_call, record_calls


@pytest.fixture
def areas(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "new").mkdir()
    (tmp_path / "cur").mkdir()
    (tmp_path / "new" / "m").write_bytes(b"message")
    return tmp_path / "new", tmp_path / "cur"


def test_link_gives_a_second_name_and_syncs_its_directory(areas):
    new, cur = areas
    calls = record_calls(lambda: link(new / "m", cur / "m"))
    assert [(call.name, call.path) for call in calls] == [
        ("link", str(cur / "m")),
        ("fsync_dir", str(cur)),
    ]
    assert os.path.samefile(new / "m", cur / "m")
    assert os.stat(cur / "m").st_nlink == 2
    assert link(new / "m", cur / "again", durability="atomic") is False


def test_link_never_replaces_and_reports_a_missing_source(areas):
    new, cur = areas
    (cur / "m").write_bytes(b"someone else's")
    with pytest.raises(TargetExistsError):
        link(new / "m", cur / "m")
    assert (cur / "m").read_bytes() == b"someone else's"
    with pytest.raises(FileNotFoundError):
        link(new / "gone", cur / "x")
    assert not (cur / "x").exists()


def test_link_of_a_folder_says_so(areas):
    new, cur = areas
    with pytest.raises(UnsupportedOperationError) as raised:
        link(new, cur / "new")
    assert (raised.value.errno, raised.value.strerror) == (
        errno.EPERM,
        "a folder has no hard links",
    )
    assert os.listdir(cur) == []


def test_link_across_filesystems_is_exdev(areas, small_tmpfs):
    new, _ = areas
    with pytest.raises(CrossDeviceError):
        link(new / "m", small_tmpfs / "m")


def test_a_move_by_link_then_remove_always_leaves_the_file_named(areas):
    new, cur = areas

    def setup() -> None:
        for folder in (new, cur):
            for name in os.listdir(folder):
                os.unlink(folder / name)
        (new / "m").write_bytes(b"message")

    def check(point: object) -> None:
        names = [p for p in (new / "m", cur / "m") if p.exists()]
        assert names  # at every moment at least one name holds the file
        assert all(p.read_bytes() == b"message" for p in names)

    def move() -> None:
        link(new / "m", cur / "m")
        remove(new / "m", durability="atomic")

    assert crash_at_every_call(move, check=check, setup=setup) == 4
