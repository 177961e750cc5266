from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from persistkit.core import (
    CrossDeviceError,
    TargetExistsError,
    atomic_file,
    atomic_folder,
    atomik,
)


def test_atomik_file_creates_and_refuses_to_overwrite_by_default(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    with atomik.file(target) as f:
        print("{}", file=f)
    assert target.read_text() == "{}\n"
    with pytest.raises(FileExistsError), atomik.file(target) as f:
        f.write("again")
    assert target.read_text() == "{}\n"
    with atomik.file(target, overwrite=True) as f:
        f.write("replaced")
    assert target.read_text() == "replaced"


def test_atomik_file_bytes_mode(tmp_path: Path) -> None:
    with atomik.file(tmp_path / "b", mode=atomik.BYTES) as f:
        f.write(b"\x00")
    assert (tmp_path / "b").read_bytes() == b"\x00"


def test_atomik_folder_example(tmp_path: Path) -> None:
    with atomik.folder(tmp_path / "result_folder") as folder:
        with open(Path(folder, "result_1.json"), "w") as f:
            print("1", file=f)
        with open(Path(folder, "result_2.json"), "w") as f:
            print("2", file=f)
    assert sorted(os.listdir(tmp_path / "result_folder")) == ["result_1.json", "result_2.json"]
    assert sorted(os.listdir(tmp_path)) == ["result_folder"]


def test_folder_overwrite_works_when_the_destination_is_missing(tmp_path: Path) -> None:
    with atomic_folder(tmp_path / "new", overwrite=True) as folder:
        (folder / "x").write_text("x")
    assert (tmp_path / "new" / "x").read_text() == "x"


def test_folder_overwrite_swaps_and_removes_the_old_tree(tmp_path: Path) -> None:
    target = tmp_path / "site"
    target.mkdir()
    (target / "old").write_text("old")
    (target / "deep").mkdir()
    (target / "deep" / "old").write_text("old")
    with atomic_folder(target, overwrite=True) as folder:
        (folder / "new").write_text("new")
        assert (target / "old").exists(), "the old folder stays in place while building"
    assert sorted(os.listdir(target)) == ["new"]
    assert sorted(os.listdir(tmp_path)) == ["site"]


def test_folder_refuses_existing_without_overwrite(tmp_path: Path) -> None:
    (tmp_path / "site").mkdir()
    with pytest.raises(TargetExistsError), atomic_folder(tmp_path / "site") as folder:
        (folder / "x").write_text("x")
    assert os.listdir(tmp_path / "site") == []
    assert sorted(os.listdir(tmp_path)) == ["site"]


def test_folder_error_in_block_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError), atomic_folder(tmp_path / "site") as folder:
        (folder / "x").write_text("x")
        raise ValueError
    assert os.listdir(tmp_path) == []


def test_folder_and_file_modes_follow_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        with atomic_folder(tmp_path / "d") as folder:
            (folder / "x").write_text("x")
        with atomic_file(tmp_path / "f") as f:
            f.write("x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(tmp_path / "d").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(tmp_path / "f").st_mode) == 0o644


def test_tmp_dir_on_another_filesystem_fails_without_leaking(
    tmp_path: Path, small_tmpfs: Path
) -> None:
    with pytest.raises(CrossDeviceError), atomik.file(tmp_path / "f", tmp_dir=small_tmpfs) as f:
        f.write("x")
    with pytest.raises(CrossDeviceError), atomic_folder(tmp_path / "d", tmp_dir=small_tmpfs) as d:
        (d / "x").write_text("x")
    assert list(small_tmpfs.iterdir()) == []
    assert list(tmp_path.iterdir()) == [small_tmpfs]


def test_tmp_dir_on_the_same_filesystem_works(tmp_path: Path) -> None:
    (tmp_path / "work").mkdir()
    with atomic_folder(tmp_path / "d", tmp_dir=tmp_path / "work") as folder:
        assert folder.parent == tmp_path / "work"
        (folder / "x").write_text("x")
    assert (tmp_path / "d" / "x").read_text() == "x"
    assert list((tmp_path / "work").iterdir()) == []


def test_atomik_modes_by_enum_and_by_name(tmp_path: Path) -> None:
    with atomik.file(tmp_path / "b", mode=atomik.Mode.BYTES) as f:
        f.write(b"\x00bytes")
    with atomik.file(tmp_path / "c", mode="BYTES") as f:  # atomik's Mode is a str enum
        f.write(b"named")
    with atomik.file(tmp_path / "t", mode="TEXT") as f:
        f.write("text")
    assert (tmp_path / "b").read_bytes() == b"\x00bytes"
    assert (tmp_path / "c").read_bytes() == b"named"
    assert (tmp_path / "t").read_text() == "text"
    with pytest.raises(ValueError), atomik.file(tmp_path / "x", mode="APPEND"):
        pass
    assert not (tmp_path / "x").exists()


def test_atomik_errors_are_atomiks_and_persistkits(tmp_path: Path, small_tmpfs: Path) -> None:
    from persistkit.core.atomik.errors import (
        AtomikError,
        FileAlreadyExistsError,
        InvalidCrossDeviceError,
    )

    (tmp_path / "taken").write_text("old")
    with pytest.raises(FileAlreadyExistsError) as exists, atomik.file(tmp_path / "taken") as f:
        f.write("new")
    assert isinstance(exists.value, TargetExistsError) and isinstance(exists.value, AtomikError)
    (tmp_path / "dir").mkdir()
    with pytest.raises(FileAlreadyExistsError), atomik.folder(tmp_path / "dir"):
        pass
    with (
        pytest.raises(InvalidCrossDeviceError) as cross,
        atomik.file(tmp_path / "f", tmp_dir=small_tmpfs) as f,
    ):
        f.write("x")
    assert isinstance(cross.value, CrossDeviceError)
    assert (tmp_path / "taken").read_text() == "old"


def test_atomik_rename_with_each_flag(tmp_path: Path) -> None:
    from persistkit.core.atomik.errors import FileAlreadyExistsError
    from persistkit.core.atomik.flags import Flag
    from persistkit.core.atomik.rename import rename

    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("A")
    b.write_text("B")
    with pytest.raises(FileAlreadyExistsError):
        rename(a, b)  # RENAME_NOREPLACE by default, as atomik
    rename(a, b, Flag.RENAME_EXCHANGE)
    assert (a.read_text(), b.read_text()) == ("B", "A")
    rename(a, b, "REPLACE")
    assert not a.exists() and b.read_text() == "B"
