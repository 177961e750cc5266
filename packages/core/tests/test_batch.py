from __future__ import annotations

import errno
from pathlib import Path

import pytest

from persistkit.core import Batch, InvalidArgumentError, SyncError, TargetExistsError
from persistkit.core.testing import inject_error, leftovers, record_calls


def test_files_appear_only_when_the_batch_commits(tmp_path: Path) -> None:
    with Batch() as batch:
        for i in range(5):
            batch.write_bytes(tmp_path / f"f{i}", b"%d" % i)
        with batch.atomic_write(tmp_path / "text") as f:
            f.write("hello")
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == []
    assert [(tmp_path / f"f{i}").read_bytes() for i in range(5)] == [b"0", b"1", b"2", b"3", b"4"]
    assert (tmp_path / "text").read_text() == "hello"
    assert all(result.durable for result in batch.results)
    assert leftovers(tmp_path) == []


def test_one_flush_and_one_directory_fsync_for_many_files(tmp_path: Path) -> None:
    def operation() -> None:
        with Batch() as batch:
            for i in range(20):
                batch.write_bytes(tmp_path / f"f{i}", b"x")

    names = [call.name for call in record_calls(operation)]
    assert names.count("syncfs") == 1
    assert names.count("fsync_dir") == 1
    assert names.count("fsync") == 0
    assert names.count("link") == 20, "new files are unnamed until they are linked in"
    assert names.index("syncfs") < names.index("link") < names.index("fsync_dir")


def test_exception_in_the_block_publishes_nothing(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"old")
    with pytest.raises(RuntimeError), Batch() as batch:
        batch.write_bytes(tmp_path / "a", b"new")
        batch.write_bytes(tmp_path / "b", b"new")
        raise RuntimeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert (tmp_path / "a").read_bytes() == b"old"


def test_flush_failure_publishes_nothing(tmp_path: Path) -> None:
    """syncfs cannot be made to fail for real here: EIO injected at the seam."""
    (tmp_path / "a").write_bytes(b"old")
    with (
        inject_error(errno.EIO, call="syncfs") as failed,
        pytest.raises(SyncError),
        Batch() as batch,
    ):
        batch.write_bytes(tmp_path / "a", b"new")
        batch.write_bytes(tmp_path / "b", b"new")
    assert failed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert (tmp_path / "a").read_bytes() == b"old"


def test_last_write_to_a_path_wins(tmp_path: Path) -> None:
    with Batch() as batch:
        batch.write_bytes(tmp_path / "a", b"first")
        batch.write_bytes(tmp_path / "a", b"second")
    assert (tmp_path / "a").read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_max_pending_commits_early(tmp_path: Path) -> None:
    with Batch(max_pending=3) as batch:
        for i in range(3):
            batch.write_bytes(tmp_path / f"f{i}", b"x")
        assert len(list(tmp_path.glob("f*"))) == 3
        batch.write_bytes(tmp_path / "f3", b"x")
        assert not (tmp_path / "f3").exists()
    assert (tmp_path / "f3").exists()


def test_create_only_conflict_is_reported(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"old")
    with pytest.raises(TargetExistsError), Batch() as batch:
        batch.write_bytes(tmp_path / "a", b"new", overwrite=False)
    assert (tmp_path / "a").read_bytes() == b"old"


def test_atomic_batch_never_syncs(tmp_path: Path) -> None:
    def operation() -> None:
        with Batch(durability="atomic") as batch:
            batch.write_bytes(tmp_path / "a", b"x")

    names = [call.name for call in record_calls(operation)]
    assert not {"syncfs", "fsync", "fsync_dir"} & set(names)
    assert (tmp_path / "a").read_bytes() == b"x"


def test_bad_max_pending(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        Batch(max_pending=0)


def test_flush_files_fsyncs_each_file_instead_of_the_filesystem(tmp_path: Path) -> None:
    def operation() -> None:
        with Batch(flush="files") as batch:
            for i in range(3):
                batch.write_bytes(tmp_path / f"f{i}", b"x")

    names = [call.name for call in record_calls(operation)]
    assert names.count("fsync") == 3
    assert "syncfs" not in names
    assert names.index("fsync") < names.index("link")
    with pytest.raises(InvalidArgumentError):
        Batch(flush="everything")  # type: ignore[arg-type]
