"""FileStore: gocept.filestore's API, where gocept.filestore is wrong made right."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from persistkit.core.errors import SyncError, TargetExistsError
from persistkit.core.testing import crash_at_every_call, record_calls
from persistkit.spool import FileStore, InvalidAreaError, InvalidNameError


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    filestore = FileStore(tmp_path / "store")
    filestore.prepare()
    return filestore


def write(store: FileStore, name: str, text: str, area: str = "new") -> None:
    with store.create(name) as f:
        f.write(text)
    if area != "tmp":
        store.move(name, "tmp", area)


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


ESCAPES = ["../x", "../../x", "..", ".", "", "a/b", "/etc/passwd", "x\0y", ".hidden", "a" * 256]


@pytest.mark.parametrize("name", ESCAPES)
def test_create_refuses_names_that_could_escape(store, tmp_path, name):
    before = snapshot(tmp_path)
    with pytest.raises(InvalidNameError):
        store.create(name)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", [*ESCAPES, str(Path("/etc/hostname"))])
@pytest.mark.parametrize("operation", ["move", "copy"])
def test_move_and_copy_refuse_names_outside_the_source_area(store, tmp_path, name, operation):
    write(store, "kept", "data", "cur")
    (tmp_path / "x").write_text("outside")
    before = snapshot(tmp_path)
    with pytest.raises(InvalidNameError):
        getattr(store, operation)(name, "cur", "new")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", [*ESCAPES, "/etc/hostname"])
def test_remove_refuses_names_outside_the_area(store, tmp_path, name):
    (tmp_path / "x").write_text("outside")
    before = snapshot(tmp_path)
    with pytest.raises(InvalidNameError):
        store.remove(name, "cur")
    assert snapshot(tmp_path) == before


def test_a_path_into_another_area_is_refused(store):
    write(store, "a", "data", "new")
    with pytest.raises(InvalidNameError):
        store.move(store.list("new")[0], "cur", "tmp")
    assert [Path(p).name for p in store.list("new")] == ["a"]


@pytest.mark.parametrize("area", ["", "../new", "tmp/", "new/..", "/tmp", "dead", 7])
def test_unknown_areas_are_refused(store, area):
    with pytest.raises(InvalidAreaError):
        store.list(area)
    with pytest.raises(ValueError, match="area"):
        store.move("a", "tmp", area)


def test_full_paths_from_list_are_accepted_everywhere(store):
    write(store, "a", "payload", "new")
    store.move(store.list("new")[0], "new", "cur")
    store.copy(store.list("cur")[0], "cur", "tmp")
    store.remove(store.list("tmp")[0], "tmp")
    assert store.list("tmp") == []
    assert [Path(p).read_text() for p in store.list("cur")] == ["payload"]


def test_move_never_overwrites(store):
    write(store, "a", "first", "new")
    write(store, "a", "second", "tmp")
    with pytest.raises(TargetExistsError) as caught:
        store.move("a", "tmp", "new")
    assert isinstance(caught.value, FileExistsError)
    assert Path(store.list("new")[0]).read_text() == "first"
    assert Path(store.list("tmp")[0]).read_text() == "second"


def test_copy_never_overwrites_and_keeps_the_mode(store):
    write(store, "a", "first", "cur")
    os.chmod(store.list("cur")[0], 0o640)
    store.copy("a", "cur", "new")
    assert os.stat(store.list("new")[0]).st_mode & 0o777 == 0o640
    with pytest.raises(TargetExistsError):
        store.copy("a", "cur", "new")


def test_create_never_truncates_an_existing_file(store):
    write(store, "a", "precious", "tmp")
    with pytest.raises(FileExistsError):
        store.create("a")
    assert Path(store.list("tmp")[0]).read_text() == "precious"


def test_create_accepts_binary_and_append_modes_but_not_reading(store):
    with store.create("b", "wb") as f:
        f.write(b"\x00\x01")
    with store.create("c", "a", encoding="utf-8") as f:
        f.write("é")
    with pytest.raises(ValueError, match="writing mode"):
        store.create("d", "r")
    assert Path(store.path, "tmp", "b").read_bytes() == b"\x00\x01"
    assert Path(store.path, "tmp", "c").read_text(encoding="utf-8") == "é"


def test_list_skips_hidden_temporary_files_and_folders(store):
    write(store, "a", "data", "new")
    Path(store.path, "new", ".a.0123456789ab.pktmp").write_text("partial")
    Path(store.path, "new", "folder").mkdir()
    assert [Path(p).name for p in store.list("new")] == ["a"]


def test_list_is_sorted_by_arrival_then_name(store):
    for name in ["m", "z", "a", "q", "b"]:
        write(store, name, name, "new")
    listed = store.list("new")
    keys = [(os.stat(p).st_ctime_ns, Path(p).name) for p in listed]
    assert keys == sorted(keys)
    assert sorted(Path(p).name for p in listed) == ["a", "b", "m", "q", "z"]


def test_durable_move_out_of_tmp_syncs_the_file_before_publishing(store, monkeypatch):
    # Fault injection (a failing fsync cannot be had for real): the file must not be
    # published when its content could not be made durable.
    write(store, "a", "data", "tmp")

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "injected")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(SyncError):
        store.move("a", "tmp", "new")
    monkeypatch.undo()
    assert store.list("new") == []
    assert [Path(p).name for p in store.list("tmp")] == ["a"]


def test_durable_move_out_of_tmp_syncs_file_then_renames_then_syncs_new(store):
    write(store, "a", "data", "tmp")
    calls = record_calls(lambda: store.move("a", "tmp", "new"))
    new, tmp = os.path.join(store.path, "new"), os.path.join(store.path, "tmp")
    assert [(c.name, c.path) for c in calls] == [
        ("fsync", os.path.join(tmp, "a")),
        ("renameat2", os.path.join(new, "a")),
        ("fsync_dir", new),
    ]


def test_durable_move_between_other_areas_syncs_both_folders(store):
    write(store, "a", "data", "tmp")
    store.move("a", "tmp", "new")
    calls = record_calls(lambda: store.move("a", "new", "cur"))
    new, cur = os.path.join(store.path, "new"), os.path.join(store.path, "cur")
    assert [(c.name, c.path) for c in calls] == [
        ("renameat2", os.path.join(cur, "a")),
        ("fsync_dir", cur),
        ("fsync_dir", new),
    ]


def test_atomic_store_does_not_sync(tmp_path):
    store = FileStore(tmp_path / "s", durability="atomic")
    store.prepare()
    write(store, "a", "data", "tmp")
    calls = record_calls(lambda: store.move("a", "tmp", "new"))
    assert [c.name for c in calls] == ["renameat2"]


def test_copy_is_atomic_at_every_crash_point(tmp_path):
    store = FileStore(tmp_path / "s")
    content = "x" * 100_000

    def setup() -> None:
        for area in ("tmp", "new", "cur"):
            for path in Path(store.path, area).glob("*") if Path(store.path).exists() else []:
                path.unlink()
        store.prepare()
        write(store, "a", content, "cur")

    def check(point) -> None:
        copies = store.list("new")
        assert copies in ([], [os.path.join(store.path, "new", "a")])
        if copies:
            assert Path(copies[0]).read_text() == content
        assert [Path(p).read_text() for p in store.list("cur")] == [content]

    runs = crash_at_every_call(lambda: store.copy("a", "cur", "new"), check=check, setup=setup)
    assert runs >= 5


def test_prepare_is_idempotent_and_recreates_a_removed_store(tmp_path):
    store = FileStore(tmp_path / "deep" / "store")
    store.prepare()
    store.prepare()
    assert sorted(os.listdir(store.path)) == ["cur", "new", "tmp"]
    os.rmdir(os.path.join(store.path, "cur"))
    store.prepare()
    assert sorted(os.listdir(store.path)) == ["cur", "new", "tmp"]


def test_bad_durability_is_refused(tmp_path):
    with pytest.raises(ValueError, match="durability"):
        FileStore(tmp_path, durability="fast")  # type: ignore[arg-type]


def test_public_names_are_exported():
    import persistkit.spool as spool

    assert len(set(spool.__all__)) == len(spool.__all__)
    assert all(hasattr(spool, name) for name in spool.__all__)
    from importlib import metadata

    assert spool.__version__ == metadata.version("persistkit-spool")


def test_create_and_copy_go_through_cores_seam_where_crash_tests_see_them(store):
    """Issue 12: create() used its own os.open and copy() its own os.fchmod."""
    tmp = os.path.join(store.path, "tmp", "a")
    created = record_calls(lambda: store.create("a").close())
    assert [(call.name, call.path) for call in created] == [("create", tmp)]
    os.chmod(tmp, 0o604)
    copied = [call.name for call in record_calls(lambda: store.copy("a", "tmp", "new"))]
    assert copied.index("create") < copied.index("chmod") < copied.index("fsync")
    assert os.stat(store.list("new")[0]).st_mode & 0o777 == 0o604
