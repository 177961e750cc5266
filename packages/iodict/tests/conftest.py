from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistkit.core import capabilities
from persistkit.core.testing import MountUnavailableError, mount_tmpfs


@pytest.fixture(scope="session")
def no_xattr_mount(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real mount without user xattrs: ramfs refuses user.* attributes.

    Mounted for the whole session, and probed with refresh=True: an anonymous device number
    is reused as soon as another mount goes away, so a cached answer may be another's.
    """
    try:
        with mount_tmpfs(tmp_path_factory.mktemp("ramfs"), fstype="ramfs") as mountpoint:
            if capabilities(mountpoint, refresh=True).user_xattrs:
                pytest.skip("this kernel's ramfs accepts user xattrs")
            yield mountpoint
    except MountUnavailableError as reason:
        pytest.skip(str(reason))


@pytest.fixture(scope="session")
def small_tmpfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A real 1 MiB tmpfs, for a real full disk."""
    try:
        with mount_tmpfs(tmp_path_factory.mktemp("tmpfs"), size="1m") as mountpoint:
            capabilities(mountpoint, refresh=True)
            yield mountpoint
    except MountUnavailableError as reason:
        pytest.skip(str(reason))


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
