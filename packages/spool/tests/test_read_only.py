"""Inspecting a spool never writes: on a real read-only mount, and on a writable one.

Issue 9, item 8: ``persistkit spool DIR`` created ``dead/`` in a folder made by FileStore.
Each test compares the whole tree before and after (`snapshot_tree`: names, kinds, modes,
sizes, mtimes, contents, xattrs).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from persistkit.core.pytest_plugin import MountTmpfs
from persistkit.core.testing import snapshot_tree
from persistkit.spool import FileStore, Spool


@pytest.fixture
def read_only_spool(mounted_tmpfs: MountTmpfs) -> Iterator[Path]:
    """A spool on a real tmpfs, with messages in every area and one stray, remounted ro."""
    mount = mounted_tmpfs("1m")
    path = mount / "spool"
    spool = Spool(path)
    for data in (b"first", b"second", b"third", b"fourth"):
        spool.deliver(data)
    claimed = spool.claim()
    buried = spool.claim()
    assert claimed is not None and buried is not None
    spool.dead_letter(buried)
    (path / "new" / "a-folder").mkdir()
    subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(mount)], check=True)


def test_a_read_only_spool_opens_lists_and_reads(read_only_spool: Path) -> None:
    before = snapshot_tree(read_only_spool)
    for create in (False, True):  # with every area there, opening creates nothing anyway
        spool = Spool(read_only_spool, create=create)
        assert [spool.count(area) for area in ("new", "cur", "dead")] == [2, 1, 1]
        assert list(spool.strays()) == [str(read_only_spool / "new" / "a-folder")]
        spool.close()
    store = FileStore(read_only_spool)
    assert [Path(p).read_bytes() for p in store.list("new")] == [b"third", b"fourth"]
    assert snapshot_tree(read_only_spool) == before


def test_the_command_on_a_read_only_spool(read_only_spool: Path, persistkit_command) -> None:
    before = snapshot_tree(read_only_spool)
    result = persistkit_command("spool", str(read_only_spool), "--json")
    assert result.returncode == 1, result.stderr  # the stray folder is a problem
    document = json.loads(result.stdout)
    assert document["areas"] == {"tmp": 0, "new": 2, "cur": 1, "dead": 1}
    assert [stray["what"] for stray in document["strays"]] == ["a folder"]
    assert snapshot_tree(read_only_spool) == before


def test_the_command_on_a_filestore_folder_creates_no_area(tmp_path, persistkit_command):
    store = FileStore(tmp_path / "store")
    store.prepare()
    with store.create("invoice.xml") as f:
        f.write("<invoice/>")
    store.move("invoice.xml", "tmp", "new")
    before = snapshot_tree(tmp_path)
    result = persistkit_command("spool", str(tmp_path / "store"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["areas"] == {"tmp": 0, "new": 1, "cur": 0}
    assert snapshot_tree(tmp_path) == before


@pytest.mark.parametrize("where", ["missing", "missing/deeper", "a-file", "not-a-spool"])
def test_the_command_on_something_that_is_not_a_spool(tmp_path, persistkit_command, where):
    (tmp_path / "a-file").write_bytes(b"x")
    (tmp_path / "not-a-spool").mkdir()
    before = snapshot_tree(tmp_path)
    result = persistkit_command("spool", str(tmp_path / where))
    assert result.returncode == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert str(tmp_path / where) in result.stderr
    assert snapshot_tree(tmp_path) == before


def test_opening_without_create_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Spool(tmp_path / "missing", create=False)
    (tmp_path / "partial" / "new").mkdir(parents=True)
    before = snapshot_tree(tmp_path)
    spool = Spool(tmp_path / "partial", create=False)
    assert [spool.count(area) for area in spool.areas] == [0, 0, 0, 0, 0]
    assert spool.strays() == {}
    assert snapshot_tree(tmp_path) == before
    assert not (tmp_path / "missing").exists()
