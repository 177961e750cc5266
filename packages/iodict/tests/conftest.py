from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistkit.core import capabilities


def _mount(fstype: str, options: str) -> tuple[Path | None, str]:
    mountpoint = Path(tempfile.mkdtemp(prefix=f"iodict-{fstype}-"))
    try:
        result = subprocess.run(
            ["mount", "-t", fstype, "-o", options, fstype, str(mountpoint)],
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError:
        return None, "no mount command on this machine"
    if result.returncode != 0:
        mountpoint.rmdir()
        return None, f"cannot mount {fstype} here: {result.stderr.strip() or result.returncode}"
    return mountpoint, ""


@pytest.fixture(scope="session")
def no_xattr_mount() -> Iterator[Path]:
    """A real mount without user xattrs: ramfs refuses user.* attributes.

    It stays mounted for the whole session: core caches capabilities per st_dev, and an
    anonymous device number is reused as soon as a mount goes away.
    """
    mountpoint, reason = _mount("ramfs", "mode=0777")
    if mountpoint is None:
        pytest.skip(reason)
    try:
        if capabilities(mountpoint).user_xattrs:
            pytest.skip("this kernel's ramfs accepts user xattrs")
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        os.rmdir(mountpoint)


@pytest.fixture(scope="session")
def small_tmpfs() -> Iterator[Path]:
    """A real 1 MiB tmpfs, for a real full disk (kept for the session, see above)."""
    mountpoint, reason = _mount("tmpfs", "size=1m,mode=0777")
    if mountpoint is None:
        pytest.skip(reason)
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)
        os.rmdir(mountpoint)


@pytest.fixture(params=[None, False], ids=["xattr", "header"])
def use_xattrs(request: pytest.FixtureRequest) -> bool | None:
    """Run a test on both layouts: xattrs (auto-detected here) and the forced fallback."""
    if request.param is None and not capabilities(tempfile.gettempdir()).user_xattrs:
        pytest.skip("the test directory's filesystem has no user xattrs")
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def fresh_tmp(tmp_path: Path) -> Path:
    """A directory whose subdirectories ext4 places in fresh block groups (``chattr +T``).

    Only for speed: on ext4 without a journal, creating files next to many recently deleted
    ones is up to 10x slower, which would make the suite's time depend on what ran before.
    Where chattr is missing or refused, this is just a plain directory.
    """
    parent = tmp_path / "spread"
    parent.mkdir()
    with contextlib.suppress(FileNotFoundError):
        subprocess.run(["chattr", "+T", str(parent)], capture_output=True, check=False)
    return parent
