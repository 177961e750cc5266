"""Reading never writes: locks, capabilities and values on a real read-only mount."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistkit.core import FileLock, capabilities, read_value, write_value
from persistkit.core.pytest_plugin import MountTmpfs
from persistkit.core.testing import snapshot_tree


@pytest.fixture
def read_only_mount(mounted_tmpfs: MountTmpfs) -> Iterator[Path]:
    """A real tmpfs holding one value and one lock file, remounted read-only."""
    mount = mounted_tmpfs("1m")
    write_value(mount / "value.json", {"n": 1})
    FileLock(mount / "value.lock").acquire().release()
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)


def test_capabilities_of_a_read_only_mount_probe_nothing(read_only_mount: Path) -> None:
    before = snapshot_tree(read_only_mount)
    caps = capabilities(read_only_mount, refresh=True)
    assert caps.read_only
    assert not caps.rename_exchange
    assert snapshot_tree(read_only_mount) == before


def test_readers_lock_and_read_on_a_read_only_mount(read_only_mount: Path) -> None:
    before = snapshot_tree(read_only_mount)
    with FileLock(read_only_mount / "value.lock", shared=True, create=False):
        assert read_value(read_only_mount / "value.json") == {"n": 1}
    with FileLock(read_only_mount / "never-created.lock", shared=True, create=False):
        pass
    assert snapshot_tree(read_only_mount) == before


def test_a_reader_lock_creates_nothing_and_still_excludes_a_writer(tmp_path: Path) -> None:
    reader = FileLock(tmp_path / "store.lock", shared=True, create=False, timeout=0)
    with reader:
        assert not (tmp_path / "store.lock").exists()
    writer = FileLock(tmp_path / "store.lock", timeout=0)
    with writer:
        assert (tmp_path / "store.lock").exists()
        with pytest.raises(TimeoutError):
            FileLock(tmp_path / "store.lock", shared=True, create=False, timeout=0).acquire()


def test_capabilities_of_a_missing_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        capabilities(tmp_path / "missing")
    with pytest.raises(FileNotFoundError):
        capabilities(tmp_path / "missing" / "deeper")
    assert list(tmp_path.iterdir()) == []


def test_capabilities_command_on_a_missing_path(tmp_path: Path, persistkit_command) -> None:  # type: ignore[no-untyped-def]
    for missing in (tmp_path / "missing", tmp_path / "missing" / "deeper"):
        result = persistkit_command("capabilities", str(missing))
        assert result.returncode == 1, result.stdout
        assert result.stderr.startswith("persistkit: ") and "Traceback" not in result.stderr
        assert f"{missing}: no such file or folder" in result.stderr
