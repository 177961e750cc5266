from __future__ import annotations

import contextlib
import subprocess
import tempfile
from pathlib import Path

import pytest

from persistkit.core import ObjectStore, capabilities
from persistkit.core.pytest_plugin import MountTmpfs
from persistkit.core.testing import S3Endpoint, facility_unavailable


@pytest.fixture
def no_xattr_mount(mounted_tmpfs: MountTmpfs) -> Path:
    """A real mount without user xattrs: ramfs refuses user.* attributes."""
    mountpoint = mounted_tmpfs(fstype="ramfs")
    if capabilities(mountpoint).user_xattrs:
        facility_unavailable("this kernel's ramfs accepts user xattrs")
    return mountpoint


@pytest.fixture
def small_tmpfs(mounted_tmpfs: MountTmpfs) -> Path:
    """A real 1 MiB tmpfs, for a real full disk."""
    return mounted_tmpfs("1m")


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


@pytest.fixture
def s3_objects(s3_server: S3Endpoint, s3_bucket: str) -> ObjectStore:
    """A fresh prefix in a fresh bucket on the session's real SeaweedFS server."""
    return s3_server.store(s3_bucket, "dict")
