from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.core import (
    AtomicWriter,
    CrossDeviceError,
    InvalidArgumentError,
    SyncError,
    TargetExistsError,
    TargetIsDirectoryError,
    atomic_write,
    write_bytes,
    write_text,
)
from persistkit.core.testing import facility_unavailable, inject_error


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_text_replaces_content(
    old_file: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    with atomic_write(old_file) as f:
        f.write("new")
    assert old_file.read_text() == "new"
    assert leftovers(old_file.parent) == []


def test_atomic_write_binary_mode_yields_a_binary_file(tmp_path: Path) -> None:
    target = tmp_path / "blob"
    with atomic_write(target, "wb") as f:
        f.write(b"\x00\xff")
    assert target.read_bytes() == b"\x00\xff"


def test_exception_in_block_keeps_old_content_and_removes_temp(
    old_file: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    with pytest.raises(RuntimeError, match="boom"), atomic_write(old_file) as f:
        f.write("half")
        raise RuntimeError("boom")
    assert old_file.read_bytes() == b"old"
    assert leftovers(old_file.parent) == []


def test_content_is_invisible_until_the_block_exits(old_file: Path) -> None:
    with atomic_write(old_file) as f:
        f.write("new")
        f.flush()
        assert old_file.read_bytes() == b"old"
    assert old_file.read_bytes() == b"new"


def test_overwrite_false_refuses_existing_file_before_writing(
    old_file: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    with pytest.raises(TargetExistsError) as caught, atomic_write(old_file, overwrite=False) as f:
        f.write("new")
    assert caught.value.filename == str(old_file)
    assert old_file.read_bytes() == b"old"
    assert leftovers(old_file.parent) == []


def test_overwrite_false_creates_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "fresh"
    result = write_bytes(target, b"x", overwrite=False)
    assert target.read_bytes() == b"x"
    assert result.durable


def test_overwrite_false_loses_a_race_cleanly(
    tmp_path: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    target = tmp_path / "raced"
    with pytest.raises(TargetExistsError), atomic_write(target, overwrite=False) as f:
        f.write("mine")
        target.write_text("theirs")  # another writer publishes first
    assert target.read_text() == "theirs"
    assert leftovers(tmp_path) == []


def test_replaced_file_keeps_its_mode(old_file: Path) -> None:
    os.chmod(old_file, 0o640)
    write_bytes(old_file, b"new")
    assert mode_of(old_file) == 0o640
    os.chmod(old_file, 0o644)
    with atomic_write(old_file) as f:
        f.write("again")
    assert mode_of(old_file) == 0o644


def test_new_file_follows_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_bytes(tmp_path / "a", b"x")
        with atomic_write(tmp_path / "b") as f:
            f.write("x")
    finally:
        os.umask(previous)
    assert mode_of(tmp_path / "a") == 0o640
    assert mode_of(tmp_path / "b") == 0o640


def test_symlink_is_followed_by_default(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    result = write_text(link, "new")
    assert link.is_symlink()
    assert real.read_text() == "new"
    assert result.path == str(real)


def test_symlink_itself_replaced_when_not_following(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    write_text(link, "new", follow_symlinks=False)
    assert not link.is_symlink()
    assert link.read_text() == "new"
    assert real.read_text() == "old"


def test_dangling_symlink_target_is_created(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing")
    write_text(link, "made")
    assert (tmp_path / "missing").read_text() == "made"


def test_missing_parent_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_bytes(tmp_path / "no" / "such" / "file", b"x")


def test_directory_target_is_refused_with_a_typed_error(
    tmp_path: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    (tmp_path / "folder").mkdir()
    with pytest.raises(TargetIsDirectoryError):
        write_bytes(tmp_path / "folder", b"x")
    assert (tmp_path / "folder").is_dir()
    assert leftovers(tmp_path) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_raises_permission_error(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"old")
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(PermissionError):
            write_bytes(tmp_path / "f", b"new")
    finally:
        tmp_path.chmod(0o755)
    assert (tmp_path / "f").read_bytes() == b"old"


def test_read_only_mount_raises_and_keeps_the_file(
    small_tmpfs: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    """A real read-only filesystem (works as root, where permission bits do not stop writes)."""
    import subprocess

    (small_tmpfs / "f").write_bytes(b"old")
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    try:
        with pytest.raises(OSError) as caught:
            write_bytes(small_tmpfs / "f", b"new")
        assert caught.value.errno == errno.EROFS
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_tmpfs)], check=True)
    assert (small_tmpfs / "f").read_bytes() == b"old"
    assert leftovers(small_tmpfs) == []


def test_real_full_disk_keeps_old_content_and_leaves_no_temp(
    small_tmpfs: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    target = small_tmpfs / "state"
    target.write_bytes(b"old")
    with pytest.raises(OSError) as caught:
        write_bytes(target, b"x" * (1 << 20))
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert leftovers(small_tmpfs) == []
    with pytest.raises(OSError) as caught, atomic_write(target, "wb") as f:
        f.write(b"y" * (1 << 20))
    assert caught.value.errno == errno.ENOSPC
    assert target.read_bytes() == b"old"
    assert leftovers(small_tmpfs) == []


def test_temp_dir_on_another_filesystem_is_exdev(
    old_file: Path, small_tmpfs: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    writer = AtomicWriter(old_file, "w", dir=str(small_tmpfs))
    with pytest.raises(CrossDeviceError) as caught, writer.open() as f:
        f.write("new")
    assert caught.value.errno == errno.EXDEV
    assert isinstance(caught.value, OSError)
    assert old_file.read_bytes() == b"old"
    assert leftovers(small_tmpfs) == []
    assert leftovers(old_file.parent) == []


def test_fsync_failure_aborts_keeps_old_and_removes_temp(
    old_file: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    """EIO from fsync cannot be caused for real here: injected at the filesystem-call seam."""
    with inject_error(errno.EIO, call="fsync") as failed, pytest.raises(SyncError) as caught:
        write_bytes(old_file, b"new")
    assert failed, "the fault was not injected"
    assert caught.value.errno == errno.EIO
    assert old_file.read_bytes() == b"old"
    assert leftovers(old_file.parent) == []


def test_fsync_failure_in_context_manager_aborts(
    old_file: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    """Injected EIO, as above, through the AtomicWriter steps."""
    with (
        inject_error(errno.EIO, call="fsync") as failed,
        pytest.raises(SyncError),
        atomic_write(old_file) as f,
    ):
        f.write("new")
    assert failed
    assert old_file.read_bytes() == b"old"
    assert leftovers(old_file.parent) == []


def test_fsync_is_never_retried(old_file: Path) -> None:
    """After an injected fsync failure no second fsync is attempted on the abandoned file."""
    from persistkit.core.testing import record_calls

    def attempt() -> None:
        with inject_error(errno.EIO, call="fsync"), pytest.raises(SyncError):
            write_bytes(old_file, b"new")

    calls = record_calls(attempt)
    assert [call.name for call in calls].count("fsync") == 1  # attempted once, never again
    assert old_file.read_bytes() == b"old"


def test_atomic_durability_skips_every_fsync(tmp_path: Path) -> None:
    from persistkit.core.testing import record_calls

    target = tmp_path / "fast"
    results = []
    calls = record_calls(lambda: results.append(write_bytes(target, b"x", durability="atomic")))
    names = [call.name for call in calls]
    assert "fsync" not in names
    assert "fsync_dir" not in names
    assert results[0].durable is False
    assert target.read_bytes() == b"x"


@pytest.mark.parametrize("mode", ["a", "ab", "r+", "x", "r"])
def test_modes_that_cannot_be_atomic_are_refused(tmp_path: Path, mode: str) -> None:
    with pytest.raises(InvalidArgumentError):
        AtomicWriter(tmp_path / "f", mode)
    assert list(tmp_path.iterdir()) == []


def test_unknown_durability_is_refused_before_touching_disk(old_file: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        write_bytes(old_file, b"new", durability="eventually")  # type: ignore[arg-type]
    assert old_file.read_bytes() == b"old"


def test_xattrs_appear_with_the_content(tmp_path: Path) -> None:
    from persistkit.core import capabilities

    if not capabilities(tmp_path).user_xattrs:
        facility_unavailable("this filesystem has no user xattrs")
    target = tmp_path / "tagged"
    write_bytes(target, b"x", xattrs={"user.key": b"k1"})
    assert os.getxattr(target, "user.key") == b"k1"


def test_long_target_names_get_valid_temp_names(
    tmp_path: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    target = tmp_path / ("é" * 127)  # 254 bytes in UTF-8, the longest legal name here
    write_bytes(target, b"x")
    assert target.read_bytes() == b"x"
    assert leftovers(tmp_path) == []


def test_subclass_can_override_a_step(old_file: Path) -> None:
    synced: list[str] = []

    class Recording(AtomicWriter):
        def sync(self, f):  # type: ignore[no-untyped-def]
            synced.append("sync")
            super().sync(f)

    with atomic_write(old_file, writer_cls=Recording) as f:
        f.write("new")
    assert synced == ["sync"]
    assert old_file.read_text() == "new"


def test_write_text_encoding_error_leaves_no_trace(
    old_file: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    with pytest.raises(UnicodeEncodeError):
        write_text(old_file, "é", encoding="ascii")
    assert old_file.read_bytes() == b"old"
    assert leftovers(old_file.parent) == []


def test_replacing_a_link_itself_gives_the_default_mode(tmp_path: Path) -> None:
    real = tmp_path / "secret"
    real.write_text("old")
    real.chmod(0o600)
    link = tmp_path / "link"
    link.symlink_to(real)
    previous = os.umask(0o022)
    try:
        write_text(link, "new", follow_symlinks=False)
    finally:
        os.umask(previous)
    assert mode_of(link) == 0o644
    assert mode_of(real) == 0o600


def test_create_only_refuses_an_existing_symlink(tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing")
    with pytest.raises(TargetExistsError):
        write_text(link, "new", overwrite=False)
    assert link.is_symlink()
    assert not (tmp_path / "missing").exists()


def test_writes_through_a_symlinked_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    write_text(tmp_path / "alias" / "f", "x")
    assert (tmp_path / "real" / "f").read_text() == "x"
    assert (tmp_path / "alias").is_symlink()


def test_require_durable_turns_a_non_durable_write_into_an_error(tmp_path: Path) -> None:
    from persistkit.core import NotDurableError

    assert write_bytes(tmp_path / "a", b"x").require_durable().durable
    with pytest.raises(NotDurableError) as caught:
        write_bytes(tmp_path / "b", b"x", durability="atomic").require_durable()
    assert caught.value.filename == str(tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b"x", "the write itself happened, atomically"


def test_a_refused_directory_fsync_is_reported_not_durable(tmp_path: Path) -> None:
    """No mount here refuses directory fsync (some FUSE and network mounts do): EINVAL is
    injected at the seam."""
    from persistkit.core import NotDurableError

    with inject_error(errno.EINVAL, call="fsync_dir") as failed:
        result = write_bytes(tmp_path / "c", b"x")
    assert failed
    assert result.durable is False
    assert (tmp_path / "c").read_bytes() == b"x"
    with pytest.raises(NotDurableError):
        result.require_durable()
