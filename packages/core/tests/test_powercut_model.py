"""The power-cut model on its own (no FUSE): what is durable when, and what a cut leaves."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from persistkit.core._powercut._model import (
    PAGE_SIZE,
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    Model,
    walk,
)

FILE = stat.S_IFREG | 0o644
DIR = stat.S_IFDIR | 0o755


def tree(model: Model) -> dict[str, bytes | None]:
    """Every path and its content (None for a directory)."""
    return {path: None if node.is_dir else bytes(node.data) for path, node in walk(model)}


def new_file(model: Model, path: str, data: bytes, *, fsync: bool = False) -> int:
    ino = model.create(path, FILE, 0, 0)
    model.write(ino, 0, data)
    if fsync:
        model.fsync(ino)
    return ino


def test_a_new_file_vanishes_unless_its_directory_is_fsynced() -> None:
    model = Model()
    new_file(model, "/a", b"data", fsync=True)
    assert tree(model.crash("strict")[0]) == {}
    model.fsync_dir(1)
    assert tree(model.crash("strict")[0]) == {"a": b"data"}


def test_a_durable_name_with_unflushed_data_is_an_empty_file() -> None:
    model = Model()
    new_file(model, "/a", b"data")
    model.fsync_dir(1)
    assert tree(model.crash("strict")[0]) == {"a": b""}


def test_overwriting_in_place_without_fsync_keeps_the_old_data_in_strict_mode() -> None:
    model = Model()
    ino = new_file(model, "/a", b"old", fsync=True)
    model.fsync_dir(1)
    model.truncate(ino, 0)
    model.write(ino, 0, b"new!")
    assert tree(model.crash("strict")[0]) == {"a": b"old"}
    model.fsync(ino)
    assert tree(model.crash("strict")[0]) == {"a": b"new!"}


def test_a_rename_is_durable_only_with_its_directory() -> None:
    model = Model()
    model.create("/d", DIR, 0, 0)
    ino = new_file(model, "/d/tmp", b"new", fsync=True)
    model.fsync_dir(1)
    model.fsync_dir(model.resolve("/d"))
    model.rename("/d/tmp", "/d/final")
    assert tree(model.crash("strict")[0]) == {"d": None, "d/tmp": b"new"}
    model.fsync_dir(model.resolve("/d"))
    assert tree(model.crash("strict")[0]) == {"d": None, "d/final": b"new"}
    assert model.resolve("/d/final") == ino


def test_a_rename_across_directories_synced_on_one_side_leaves_both_names() -> None:
    # The maildir rule: fsync only the destination, and the source name may come back.
    model = Model()
    model.create("/tmp", DIR, 0, 0)
    model.create("/new", DIR, 0, 0)
    new_file(model, "/tmp/m", b"msg", fsync=True)
    for directory in ("/", "/tmp", "/new"):
        model.fsync_dir(model.resolve(directory))
    model.rename("/tmp/m", "/new/m")
    model.fsync_dir(model.resolve("/new"))
    crashed = model.crash("strict")[0]
    assert tree(crashed)["tmp/m"] == tree(crashed)["new/m"] == b"msg"
    assert crashed.nodes[crashed.resolve("/new/m")].nlink == 2


def test_random_mode_keeps_a_rename_whole_or_not_at_all() -> None:
    model = Model()
    new_file(model, "/a", b"A", fsync=True)
    model.fsync_dir(1)
    model.rename("/a", "/b")
    outcomes = {tuple(sorted(tree(model.crash("random", seed)[0]))) for seed in range(40)}
    assert outcomes == {("a",), ("b",)}


def test_random_mode_tears_writes_only_at_page_boundaries() -> None:
    model = Model()
    ino = new_file(model, "/a", b"o" * (3 * PAGE_SIZE), fsync=True)
    model.fsync_dir(1)
    model.write(ino, 0, b"n" * (3 * PAGE_SIZE))
    seen = set()
    for seed in range(60):
        data = tree(model.crash("random", seed)[0])["a"]
        assert data is not None
        pages = [data[i : i + PAGE_SIZE] for i in range(0, len(data), PAGE_SIZE)]
        assert all(page in (b"o" * PAGE_SIZE, b"n" * PAGE_SIZE) for page in pages)
        seen.add(data)
    assert len(seen) == 8  # every mix of the three pages appears


def test_random_mode_can_keep_a_new_size_without_its_data() -> None:
    model = Model()
    ino = new_file(model, "/a", b"", fsync=True)
    model.fsync_dir(1)
    model.write(ino, 0, b"x" * 100)
    contents = {tree(model.crash("random", seed)[0])["a"] for seed in range(40)}
    assert contents == {b"", b"x" * 100, bytes(100)}


def test_strict_mode_is_the_durable_image_whatever_the_seed() -> None:
    model = Model()
    new_file(model, "/a", b"A", fsync=True)
    model.fsync_dir(1)
    new_file(model, "/b", b"B")
    crashed, report = model.crash("strict", 123)
    assert tree(crashed) == {"a": b"A"}
    assert report.kept == 0 and report.pending == 2 and report.seed is None


def test_rename_flags() -> None:
    model = Model()
    a = new_file(model, "/a", b"A")
    b = new_file(model, "/b", b"B")
    with pytest.raises(FileExistsError):
        model.rename("/a", "/b", RENAME_NOREPLACE)
    model.rename("/a", "/b", RENAME_EXCHANGE)
    assert (model.resolve("/a"), model.resolve("/b")) == (b, a)
    with pytest.raises(FileNotFoundError):
        model.rename("/a", "/c", RENAME_EXCHANGE)
    with pytest.raises(OSError):
        model.rename("/a", "/c", RENAME_EXCHANGE | RENAME_NOREPLACE)


def test_an_exchange_is_one_change() -> None:
    model = Model()
    new_file(model, "/a", b"A", fsync=True)
    new_file(model, "/b", b"B", fsync=True)
    model.fsync_dir(1)
    model.rename("/a", "/b", RENAME_EXCHANGE)
    outcomes = {tuple(sorted(tree(model.crash("random", s)[0]).items())) for s in range(30)}
    assert outcomes == {(("a", b"A"), ("b", b"B")), (("a", b"B"), ("b", b"A"))}


def test_xattrs_and_mode_are_durable_with_the_file() -> None:
    model = Model()
    ino = new_file(model, "/a", b"", fsync=True)
    model.fsync_dir(1)
    model.setxattr(ino, "user.k", b"v")
    model.chmod(ino, 0o600)
    crashed = model.crash("strict")[0]
    node = crashed.nodes[crashed.resolve("/a")]
    assert node.xattrs == {} and stat.S_IMODE(node.mode) == 0o644
    model.fsync(ino)
    crashed = model.crash("strict")[0]
    node = crashed.nodes[crashed.resolve("/a")]
    assert node.xattrs == {"user.k": b"v"} and stat.S_IMODE(node.mode) == 0o600


def test_an_unlinked_open_file_lives_until_closed() -> None:
    model = Model()
    ino = new_file(model, "/a", b"A")
    model.open(ino)
    model.unlink("/a")
    assert model.read(ino, 10, 0) == b"A"
    model.close(ino)
    assert ino not in model.nodes


def test_posix_errors() -> None:
    model = Model()
    model.create("/d", DIR, 0, 0)
    new_file(model, "/d/f", b"")
    new_file(model, "/f", b"")
    with pytest.raises(OSError, match="Directory not empty"):
        model.rmdir("/d")
    with pytest.raises(IsADirectoryError):
        model.rename("/f", "/d")
    with pytest.raises(NotADirectoryError):
        model.rename("/d", "/f")
    with pytest.raises(FileExistsError):
        model.create("/f", FILE, 0, 0)
    with pytest.raises(FileNotFoundError):
        model.unlink("/nothing")


def test_forgotten_inodes_are_collected() -> None:
    model = Model()
    for i in range(300):
        new_file(model, f"/f{i}", b"x", fsync=True)
        model.fsync_dir(1)
        model.unlink(f"/f{i}")
        model.fsync_dir(1)
    assert len(model.records) < 100
    assert tree(model.crash("strict")[0]) == {}


def test_load_and_store_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "source"
    (source / "d").mkdir(parents=True)
    (source / "d" / "f").write_bytes(b"data")
    (source / "d" / "f").chmod(0o640)
    (source / "hard").hardlink_to(source / "d" / "f")
    (source / "link").symlink_to("d/f")
    (source / "d" / "f").touch()
    import os

    os.setxattr(source / "d" / "f", "user.k", b"v")
    model = Model.load(str(source))
    assert model.nodes[model.resolve("/hard")] is model.nodes[model.resolve("/d/f")]
    target = tmp_path / "target"
    target.mkdir()
    (target / "stale").write_text("gone after store")
    model.store(str(target))
    assert sorted(p.name for p in target.iterdir()) == ["d", "hard", "link"]
    assert (target / "d" / "f").read_bytes() == b"data"
    assert (target / "d" / "f").stat().st_mode & 0o777 == 0o640
    assert (target / "hard").stat().st_ino == (target / "d" / "f").stat().st_ino
    assert os.readlink(target / "link") == "d/f"
    assert os.getxattr(target / "d" / "f", "user.k") == b"v"
