from __future__ import annotations

import contextlib
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from queue import Empty
from typing import Any

import pytest

from persistkit.core import CorruptFileError, ObjectStore, capabilities, resolve_format
from persistkit.core.pytest_plugin import MountTmpfs
from persistkit.core.testing import S3Endpoint, facility_unavailable
from persistkit.iodict import DurableQueue


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


@pytest.fixture
def damage_stored() -> Callable[[Path, Any], bytes]:
    """Flip the bytes of a checkpointed queue item where they lie on disk, as bit rot would.

    Call it with the queue directory and the item's value (encoded as a pickle); it returns
    the damaged bytes, whatever file the queue keeps its items in.
    """

    def damage(directory: Path, value: Any) -> bytes:
        payload = resolve_format("pickle").dumps(value)
        junk = bytes(byte ^ 0xFF for byte in payload)
        for path in sorted((directory / ".persistkit-queue.items").iterdir()):
            data = path.read_bytes()
            at = data.find(payload)
            if at >= 0:
                path.write_bytes(data[:at] + junk + data[at + len(payload) :])
                return junk
        raise AssertionError(f"{value!r} is in no checkpointed file of {directory}")

    return damage


@pytest.fixture
def drain() -> Callable[[DurableQueue[Any]], tuple[list[Any], int]]:
    """Get every item of a queue; return them and how many gets raised `CorruptFileError`."""

    def get_all(queue: DurableQueue[Any]) -> tuple[list[Any], int]:
        delivered, corrupt = [], 0
        while True:
            try:
                delivered.append(queue.get_nowait())
            except CorruptFileError:
                corrupt += 1
            except Empty:
                return delivered, corrupt

    return get_all
