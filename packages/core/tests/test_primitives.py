from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from persistkit.core import (
    CrossDeviceError,
    TargetExistsError,
    UnsupportedOperationError,
    _capabilities,
    _primitives,
    _syscalls,
    capabilities,
    exchange,
    fsync_dir,
    move_atomic,
    remove,
    rename,
    replace_atomic,
)
from persistkit.core.testing import inject_error, record_calls


def test_rename_replaces_and_syncs_both_directories(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"new")
    (tmp_path / "b" / "x").write_bytes(b"old")
    calls = record_calls(lambda: rename(tmp_path / "a" / "x", tmp_path / "b" / "x"))
    assert (tmp_path / "b" / "x").read_bytes() == b"new"
    synced = {call.path for call in calls if call.name == "fsync_dir"}
    assert synced == {str(tmp_path / "a"), str(tmp_path / "b")}


def test_create_only_rename_refuses_an_existing_destination(tmp_path: Path) -> None:
    (tmp_path / "src").write_bytes(b"new")
    (tmp_path / "dst").write_bytes(b"old")
    with pytest.raises(TargetExistsError):
        rename(tmp_path / "src", tmp_path / "dst", overwrite=False)
    assert (tmp_path / "dst").read_bytes() == b"old"
    assert (tmp_path / "src").read_bytes() == b"new"


def test_link_unlink_fallback_where_noreplace_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No mount here refuses RENAME_NOREPLACE: the refusal is injected (EINVAL at the seam)
    and the probe's answer for this device replaced; link + unlink then run for real."""
    device = (tmp_path).stat().st_dev
    real = capabilities(tmp_path)
    monkeypatch.setitem(
        _capabilities._cache,
        device,
        _capabilities.Capabilities(device, False, real.rename_exchange, False, 0, True),
    )
    monkeypatch.setattr(_primitives, "_noreplace_refused", set())
    (tmp_path / "src").write_bytes(b"data")
    with inject_error(errno.EINVAL, call="renameat2") as failed:
        calls = record_calls(lambda: rename(tmp_path / "src", tmp_path / "dst", overwrite=False))
    assert failed
    assert [c.name for c in calls][:3] == ["renameat2", "link", "unlink"]
    assert (tmp_path / "dst").read_bytes() == b"data"
    assert not (tmp_path / "src").exists()
    # remembered per device: the next create-only rename goes straight to link + unlink
    (tmp_path / "src2").write_bytes(b"more")

    def refused() -> None:
        with pytest.raises(TargetExistsError):
            rename(tmp_path / "src2", tmp_path / "dst", overwrite=False)

    calls = record_calls(refused)
    assert [c.name for c in calls] == ["link"]
    assert (tmp_path / "dst").read_bytes() == b"data"
    assert (tmp_path / "src2").read_bytes() == b"more"


def test_exchange_swaps_files_and_folders(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"f")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "inner").write_bytes(b"i")
    exchange(tmp_path / "file", tmp_path / "dir")
    assert (tmp_path / "dir").read_bytes() == b"f"
    assert (tmp_path / "file" / "inner").read_bytes() == b"i"


def test_exchange_unsupported_is_a_typed_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Injected: every mount here supports RENAME_EXCHANGE."""
    device = tmp_path.stat().st_dev
    monkeypatch.setitem(
        _capabilities._cache,
        device,
        _capabilities.Capabilities(device, True, False, False, 0, True),
    )
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    with inject_error(errno.EINVAL, call="renameat2"), pytest.raises(UnsupportedOperationError):
        exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == b"a"


def test_exchange_with_a_missing_name_is_file_not_found(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    with pytest.raises(FileNotFoundError):
        exchange(tmp_path / "a", tmp_path / "missing")


def test_rename_across_filesystems_is_exdev_never_a_copy(tmp_path: Path, small_tmpfs: Path) -> None:
    (tmp_path / "src").write_bytes(b"data")
    for overwrite in (True, False):
        with pytest.raises(CrossDeviceError) as caught:
            rename(tmp_path / "src", small_tmpfs / "dst", overwrite=overwrite)
        assert caught.value.errno == errno.EXDEV
    assert not (small_tmpfs / "dst").exists()
    assert (tmp_path / "src").read_bytes() == b"data"


def test_remove_is_durable_and_reports_missing(tmp_path: Path) -> None:
    (tmp_path / "x").write_bytes(b"x")
    calls = record_calls(lambda: remove(tmp_path / "x"))
    assert [c.name for c in calls] == ["unlink", "fsync_dir"]
    assert not (tmp_path / "x").exists()
    assert remove(tmp_path / "x", missing_ok=True) is False
    with pytest.raises(FileNotFoundError):
        remove(tmp_path / "x")


def test_atomicwrites_style_helpers(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"1")
    (tmp_path / "b").write_bytes(b"2")
    replace_atomic(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "b").read_bytes() == b"1"
    (tmp_path / "c").write_bytes(b"3")
    with pytest.raises(FileExistsError):
        move_atomic(tmp_path / "c", tmp_path / "b")
    move_atomic(tmp_path / "c", tmp_path / "d")
    assert (tmp_path / "d").read_bytes() == b"3"


def test_fsync_dir_reports_success(tmp_path: Path) -> None:
    assert fsync_dir(tmp_path) is True


def test_capabilities_of_this_disk_and_a_tmpfs(tmp_path: Path, small_tmpfs: Path) -> None:
    disk = capabilities(tmp_path)
    assert disk.rename_noreplace and disk.rename_exchange and disk.dir_fsync
    assert disk.user_xattrs and disk.xattr_max_size > 0
    (tmp_path / "a-file").write_bytes(b"")
    assert capabilities(tmp_path / "a-file") is disk  # a file: its folder's filesystem
    ram = capabilities(small_tmpfs, refresh=True)
    assert ram.device != disk.device
    assert ram.rename_exchange
    assert [p for p in small_tmpfs.iterdir()] == [], "the probe must clean up after itself"


def test_refresh_replaces_a_stale_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A remount can reuse a device number; refresh=True probes the filesystem that is there."""
    device = tmp_path.stat().st_dev
    stale = _capabilities.Capabilities(device, False, False, False, 0, False)
    monkeypatch.setitem(_capabilities._cache, device, stale)
    assert capabilities(tmp_path) is stale
    fresh = capabilities(tmp_path, refresh=True)
    assert fresh.rename_exchange
    assert capabilities(tmp_path) is fresh


def test_fsync_file_goes_through_the_seam_and_reports_failure(tmp_path: Path) -> None:
    """EIO injected: a real fsync failure cannot be had here."""
    from persistkit.core import SyncError, fsync_file

    (tmp_path / "f").write_bytes(b"x")
    assert [c.name for c in record_calls(lambda: fsync_file(tmp_path / "f"))] == ["fsync"]
    with inject_error(errno.EIO, call="fsync"), pytest.raises(SyncError):
        fsync_file(tmp_path / "f")


def test_rename_can_leave_the_source_directory_unsynced(tmp_path: Path) -> None:
    (tmp_path / "tmp").mkdir()
    (tmp_path / "new").mkdir()
    (tmp_path / "tmp" / "m").write_bytes(b"m")
    calls = record_calls(
        lambda: rename(tmp_path / "tmp" / "m", tmp_path / "new" / "m", sync_source=False)
    )
    assert [(c.name, c.path) for c in calls if c.name == "fsync_dir"] == [
        ("fsync_dir", str(tmp_path / "new"))
    ]


@pytest.mark.skipif(
    _syscalls._sys_renameat2 is None, reason="no renameat2 syscall number for this machine"
)
def test_raw_syscall_route_where_libc_lacks_renameat2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """This libc has the wrapper, so it is hidden; the raw syscall(2) then runs for real."""
    monkeypatch.setattr(_syscalls, "_renameat2", None)
    (tmp_path / "a").write_bytes(b"A")
    (tmp_path / "b").write_bytes(b"B")
    exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a").read_bytes() == b"B"
    with pytest.raises(TargetExistsError):
        rename(tmp_path / "a", tmp_path / "b", overwrite=False)
    rename(tmp_path / "a", tmp_path / "c", overwrite=False)
    assert (tmp_path / "c").read_bytes() == b"B"


def test_make_dirs_syncs_every_parent_that_gained_a_name(tmp_path: Path) -> None:
    from persistkit.core import make_dirs

    target = tmp_path / "a" / "b" / "c"
    calls = record_calls(lambda: make_dirs(target))
    assert [(c.name, c.path) for c in calls] == [
        ("mkdir", str(tmp_path / "a")),
        ("mkdir", str(tmp_path / "a" / "b")),
        ("mkdir", str(target)),
        ("fsync_dir", str(tmp_path)),
        ("fsync_dir", str(tmp_path / "a")),
        ("fsync_dir", str(tmp_path / "a" / "b")),
    ]
    assert target.is_dir()
    assert make_dirs(target) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        make_dirs(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "x"


def test_make_dirs_after_a_crash_at_any_call_can_be_finished(tmp_path: Path) -> None:
    import shutil

    from persistkit.core import make_dirs
    from persistkit.core.testing import crash_at_every_call

    target = tmp_path / "x" / "y"

    def check(point: object) -> None:
        make_dirs(target)  # whatever a crash left, running it again finishes the job
        assert target.is_dir()

    crash_at_every_call(
        lambda: make_dirs(target),
        setup=lambda: shutil.rmtree(tmp_path / "x", ignore_errors=True),
        check=check,
    )


def test_write_at_overwrites_in_place_through_the_seam(tmp_path: Path) -> None:
    from persistkit.core import write_at

    path = tmp_path / "index"
    path.write_bytes(b"abcdef")
    fd = os.open(path, os.O_RDWR)
    try:
        calls = record_calls(lambda: write_at(fd, b"XY", 2, path=path))
        write_at(fd, b"tail", 6, path=path)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"abXYeftail"
    assert [(c.name, c.path) for c in calls] == [("write", str(path))]


def test_write_at_on_a_full_disk_raises_enospc(small_tmpfs: Path) -> None:
    """A real full disk (a 64 KiB tmpfs): growing the file fails, the bytes before stay."""
    from persistkit.core import write_at

    path = small_tmpfs / "index"
    path.write_bytes(b"head")
    fd = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(OSError) as raised:
            write_at(fd, b"x" * (1 << 20), 4, path=path)
    finally:
        os.close(fd)
    assert raised.value.errno == errno.ENOSPC
    assert path.read_bytes()[:4] == b"head"


def test_sync_files_shares_one_flush_where_syncfs_reaches_the_disk(tmp_path: Path) -> None:
    from persistkit.core import sync_files

    paths = [tmp_path / f"f{i}" for i in range(5)]
    for path in paths:
        path.write_bytes(b"written without an fsync")
    calls = record_calls(lambda: sync_files(paths))
    assert [c.name for c in calls] == ["syncfs"]  # ext4: one flush for the five files


def test_sync_files_reports_a_failed_flush(tmp_path: Path) -> None:
    """EIO injected: a real flush failure cannot be had here."""
    from persistkit.core import SyncError, sync_files

    (tmp_path / "f").write_bytes(b"x")
    with inject_error(errno.EIO, call="syncfs") as failed, pytest.raises(SyncError):
        sync_files([tmp_path / "f"])
    assert failed
    with pytest.raises(FileNotFoundError):
        sync_files([tmp_path / "missing"])
