"""The power-cut filesystem itself: POSIX for the programs on it, and the model at a cut.

Everything here runs on a real FUSE mount with real system calls from real processes.
"""

from __future__ import annotations

import errno
import mmap
import os
import select
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from persistkit.core import (
    capabilities,
    exchange,
    fsync_dir,
    rename,
    sync_files,
    write_bytes,
)
from persistkit.core._syscalls import syncfs
from persistkit.core.testing import PowerCutFS, power_cut_fs

pytestmark = pytest.mark.powercut


def mounted_at(path: Path) -> bool:
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        return any(line.split()[4] == str(path) for line in f)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def test_files_folders_and_links_behave_as_posix_says(power_cut: PowerCutFS) -> None:
    root = power_cut.root
    (root / "d").mkdir()
    (root / "d" / "f").write_bytes(b"hello")
    with open(root / "d" / "f", "ab") as f:
        f.write(b" world")
    assert (root / "d" / "f").read_bytes() == b"hello world"
    os.link(root / "d" / "f", root / "hard")
    assert (root / "hard").stat().st_ino == (root / "d" / "f").stat().st_ino
    assert (root / "hard").stat().st_nlink == 2
    (root / "link").symlink_to("d/f")
    assert (root / "link").read_bytes() == b"hello world"
    assert os.readlink(root / "link") == "d/f"
    os.chmod(root / "d" / "f", 0o600)
    assert stat.S_IMODE((root / "d" / "f").stat().st_mode) == 0o600
    os.utime(root / "d" / "f", ns=(1_000_000_000, 2_000_000_000))
    assert (root / "d" / "f").stat().st_mtime_ns == 2_000_000_000
    os.truncate(root / "d" / "f", 5)
    assert (root / "hard").read_bytes() == b"hello"
    with open(root / "d" / "f", "wb") as f:  # O_TRUNC
        f.write(b"x")
    assert (root / "d" / "f").read_bytes() == b"x"
    assert sorted(os.listdir(root)) == ["d", "hard", "link"]
    assert [entry.is_dir() for entry in os.scandir(root / "d")] == [False]
    with pytest.raises(OSError) as raised:
        (root / "d").rmdir()
    assert raised.value.errno == errno.ENOTEMPTY
    big = os.urandom(3 << 20)
    (root / "big").write_bytes(big)
    assert (root / "big").read_bytes() == big


def test_an_unlinked_open_file_stays_readable(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "f"
    path.write_bytes(b"data")
    with open(path, "r+b") as f:
        path.unlink()
        f.write(b"DA")
        f.flush()
        os.fsync(f.fileno())
        f.seek(0)
        assert f.read() == b"DAta"
    assert os.listdir(power_cut.root) == []


def test_rename_flags_and_extended_attributes(power_cut: PowerCutFS) -> None:
    root = power_cut.root
    (root / "a").write_bytes(b"A")
    (root / "b").write_bytes(b"B")
    with pytest.raises(FileExistsError):
        rename(root / "a", root / "b", overwrite=False)
    exchange(root / "a", root / "b")
    assert ((root / "a").read_bytes(), (root / "b").read_bytes()) == (b"B", b"A")
    os.setxattr(root / "a", "user.key", b"value")
    assert os.getxattr(root / "a", "user.key") == b"value"
    assert os.listxattr(root / "a") == ["user.key"]
    os.removexattr(root / "a", "user.key")
    with pytest.raises(OSError) as raised:
        os.getxattr(root / "a", "user.key")
    assert raised.value.errno == errno.ENODATA


def test_capabilities_see_what_fuse_cannot_do(power_cut: PowerCutFS) -> None:
    caps = capabilities(power_cut.root)
    assert caps.rename_noreplace and caps.rename_exchange and caps.dir_fsync
    assert caps.user_xattrs and caps.xattr_max_size == 65536
    assert not caps.anonymous_files  # no O_TMPFILE through libfuse's high-level API
    assert not caps.syncfs  # FUSE never forwards syncfs(2)
    with pytest.raises(OSError) as raised:
        os.open(power_cut.root, os.O_TMPFILE | os.O_RDWR, 0o600)
    assert raised.value.errno == errno.EOPNOTSUPP


def test_a_file_fsync_keeps_data_but_not_the_name(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "f"
    with open(path, "wb") as f:
        f.write(b"data")
        f.flush()
        os.fsync(f.fileno())
    power_cut.cut()
    assert not path.exists()


def test_a_directory_fsync_keeps_the_name_but_not_the_data(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "f"
    path.write_bytes(b"data")
    fsync_dir(power_cut.root)
    power_cut.cut()
    assert path.read_bytes() == b""


def test_fsync_of_both_keeps_the_file(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "f"
    with open(path, "wb") as f:
        f.write(b"data")
        f.flush()
        os.fdatasync(f.fileno())
    fsync_dir(power_cut.root)
    power_cut.cut()
    assert path.read_bytes() == b"data"


def test_syncfs_and_sync_make_nothing_durable(power_cut: PowerCutFS) -> None:
    # Not a choice of this filesystem: the kernel does not forward them to any FUSE server.
    path = power_cut.root / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"data")
        assert syncfs(fd)
        os.sync()
    finally:
        os.close(fd)
    assert power_cut.pending() == 2
    power_cut.cut()
    assert not path.exists()


def test_mmap_writes_are_durable_after_msync_and_fsync(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "shared"
    path.write_bytes(bytes(8192))
    fsync_file(path)
    fsync_dir(power_cut.root)
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), 8192) as mapped:
        mapped[4096:4100] = b"page"
        mapped.flush()
        os.fsync(f.fileno())
    power_cut.cut()
    assert path.read_bytes()[4096:4100] == b"page"


def test_sync_files_flushes_file_by_file_where_syncfs_does_not_reach(
    power_cut: PowerCutFS,
) -> None:
    # The kernel never passes syncfs on to a FUSE server: one shared flush would keep nothing.
    paths = [power_cut.root / f"f{i}" for i in range(3)]
    for path in paths:
        path.write_bytes(b"data")
    fsync_dir(power_cut.root)
    sync_files(paths)
    power_cut.cut()
    assert [path.read_bytes() for path in paths] == [b"data"] * 3


def test_a_cut_ends_every_open_file(power_cut: PowerCutFS) -> None:
    path = power_cut.root / "f"
    write_bytes(path, b"durable")
    fd = os.open(path, os.O_RDWR)
    power_cut.cut()
    for call in (lambda: os.read(fd, 10), lambda: os.write(fd, b"late"), lambda: os.fsync(fd)):
        with pytest.raises(OSError) as raised:
            call()
        assert raised.value.errno == errno.ENOTCONN
    with pytest.raises(OSError):
        os.close(fd)  # the descriptor is released all the same; closing reports the dead mount
    assert path.read_bytes() == b"durable"


def test_random_cuts_are_reproducible_from_their_seed(power_cut: PowerCutFS) -> None:
    root = power_cut.root
    for i in range(20):
        (root / f"f{i}").write_bytes(b"x" * 10_000)
    base = power_cut.snapshot()
    seen = []
    for _ in range(2):
        power_cut.restore(base)
        for i in range(20):
            (root / f"f{i}").write_bytes(b"y" * 10_000)
        report = power_cut.cut("random", seed=7)
        assert report.seed == 7 and report.pending > report.kept > 0
        seen.append({p.name: p.read_bytes() for p in sorted(root.iterdir())})
    assert seen[0] == seen[1]


def test_the_directory_holds_the_files_and_no_mount_is_left(tmp_path: Path) -> None:
    (tmp_path / "before").write_bytes(b"kept")
    with power_cut_fs(tmp_path) as fs:
        assert mounted_at(tmp_path)
        assert (fs.root / "before").read_bytes() == b"kept"
        (fs.root / "after").write_bytes(b"written")
        fs.cut()
        (fs.root / "again").write_bytes(b"live")
    assert not mounted_at(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["again", "before"]


def test_a_failing_block_still_unmounts(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), power_cut_fs(tmp_path):
        raise RuntimeError("the test failed")
    assert not mounted_at(tmp_path)


def test_a_killed_test_process_leaves_no_mount(tmp_path: Path) -> None:
    program = textwrap.dedent(
        f"""
        import sys
        from persistkit.core.testing import power_cut_fs
        mounted = power_cut_fs({str(tmp_path)!r})
        fs = mounted.__enter__()
        print(fs._process.pid, flush=True)
        sys.stdin.read()
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", program], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    manager = int(process.stdout.readline())
    assert mounted_at(tmp_path)
    pidfd = os.pidfd_open(manager)
    try:
        process.kill()
        process.wait()
        readable, _, _ = select.select([pidfd], [], [], 60)  # the manager's exit
        assert readable
    finally:
        os.close(pidfd)
    assert process.stdin is not None
    process.stdin.close()
    assert not mounted_at(tmp_path)


WORKER = """
import sys
from persistkit.core import write_bytes
worker = sys.argv[1]
for n in range(10_000):
    write_bytes(f"{worker}-{n}", f"value {n} of {worker}".encode() * 300)
    print(f"{worker}-{n}", flush=True)
"""


@pytest.mark.parametrize("mode", ["strict", "random"])
def test_four_processes_killed_by_a_cut_keep_every_acknowledged_write(
    power_cut: PowerCutFS, mode: str
) -> None:
    from persistkit.core.testing import cut_processes

    result = cut_processes(
        power_cut,
        [[sys.executable, "-c", WORKER, f"w{i}"] for i in range(4)],
        after_lines=40,
        mode=mode,  # type: ignore[arg-type]
        seed=11,
    )
    assert all(code == -9 for code in result.returncodes), result.stderr
    assert len(result.lines) >= 40
    for name in result.lines:
        worker, n = name.split("-")
        assert (power_cut.root / name).read_bytes() == f"value {n} of {worker}".encode() * 300
    for path in power_cut.root.iterdir():
        if not path.name.startswith("."):
            worker, n = path.name.split("-")
            assert path.read_bytes() == f"value {n} of {worker}".encode() * 300
