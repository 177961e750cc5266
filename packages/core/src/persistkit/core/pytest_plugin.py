"""pytest fixtures for testing code built on persistkit (and persistkit's own suites).

Registered through the ``pytest11`` entry point, so the fixtures are there as soon as
persistkit-core and pytest are installed together; each one only does something when a test
asks for it by name. Disable with ``pytest -p no:persistkit``.

Fixtures:
    mounted_tmpfs: mount a small real tmpfs (or ramfs) for the test: a real full disk, a real
        second filesystem, a real mount without user xattrs. Needs root; elsewhere the test is
        skipped (or fails, under ``PERSISTKIT_REQUIRE_FACILITIES=1``).
    leftovers: `persistkit.core.testing.leftovers`, the temporary files left in a folder.
    persistkit_command: run the ``persistkit`` command in a fresh interpreter.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import pytest

from persistkit.core import capabilities
from persistkit.core.testing import (
    MountUnavailableError,
    facility_unavailable,
    mount_tmpfs,
)
from persistkit.core.testing import (
    leftovers as _leftovers,
)


class MountTmpfs(Protocol):
    """Mount a fresh filesystem for the running test and return its mount point."""

    def __call__(self, size: str = "64k", *, fstype: str = "tmpfs") -> Path:
        """Mount ``fstype`` (``"tmpfs"`` of ``size``, or ``"ramfs"``) and return where."""
        ...


@pytest.fixture
def mounted_tmpfs(tmp_path: Path) -> Iterator[MountTmpfs]:
    """Mount real tmpfs or ramfs filesystems under the test's folder; unmounted after it."""
    with contextlib.ExitStack() as mounts:
        count = 0

        def mount(size: str = "64k", *, fstype: str = "tmpfs") -> Path:
            nonlocal count
            count += 1
            folder = tmp_path / f"{fstype}-{count}"
            try:
                mountpoint = mounts.enter_context(mount_tmpfs(folder, size=size, fstype=fstype))
            except MountUnavailableError as reason:
                facility_unavailable(str(reason))
            # A new mount may reuse a device number another mount had: forget its answers.
            capabilities(mountpoint, refresh=True)
            return mountpoint

        yield mount


@pytest.fixture
def leftovers() -> Callable[..., list[str]]:
    """The persistkit temporary files in a folder (``recursive=True`` for a whole tree)."""
    return _leftovers


@pytest.fixture
def persistkit_command() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``persistkit ARGS...`` in a fresh interpreter and return the finished process."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "persistkit.core", *args],
            capture_output=True,
            text=True,
            input=input,
            check=False,
        )

    return run
