"""New files are staged unnamed (O_TMPFILE) and linked in: nothing to sweep after a crash."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from persistkit.core import Batch, TargetExistsError, _temp, write_bytes
from persistkit.core.testing import CrashPoint, crash_at_every_call, inject_error, record_calls


def test_a_crash_at_any_call_leaves_no_name_at_all(tmp_path: Path) -> None:
    target = tmp_path / "new"

    def check(point: CrashPoint) -> None:
        assert os.listdir(tmp_path) in ([], ["new"]), f"a leftover name after {point}"
        if target.exists():
            assert target.read_bytes() == b"payload"

    crash_at_every_call(
        lambda: write_bytes(target, b"payload"),
        setup=lambda: target.unlink(missing_ok=True),
        check=check,
    )


def test_where_unnamed_files_are_refused_a_named_temp_is_used_and_remembered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every mount here supports O_TMPFILE, so the refusal is injected (EOPNOTSUPP)."""
    monkeypatch.setattr(_temp, "_no_anonymous_files", set())
    with inject_error(errno.EOPNOTSUPP, call="create", nth=1) as failed:
        calls = record_calls(lambda: write_bytes(tmp_path / "a", b"1"))
    assert failed
    assert [c.name for c in calls] == ["create", "create", "write", "fsync", "rename", "fsync_dir"]
    assert (tmp_path / "a").read_bytes() == b"1"
    calls = record_calls(lambda: write_bytes(tmp_path / "b", b"2"))
    assert [c.name for c in calls][0:2] == ["create", "write"]
    assert calls[0].path.endswith(".pktmp"), "the device's refusal was not remembered"
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_target_created_meanwhile_is_replaced_when_overwriting(tmp_path: Path) -> None:
    target = tmp_path / "raced"
    staged = _temp.stage(target, overwrite=True, anonymous=True)
    assert staged.path is None
    os.write(staged.fd, b"ours")
    target.write_bytes(b"theirs")
    staged.publish(sync_directory=True)
    assert target.read_bytes() == b"ours"
    assert os.listdir(tmp_path) == ["raced"]


def test_target_created_meanwhile_wins_when_create_only(tmp_path: Path) -> None:
    target = tmp_path / "raced"
    staged = _temp.stage(target, overwrite=False, anonymous=True)
    os.write(staged.fd, b"ours")
    target.write_bytes(b"theirs")
    with pytest.raises(TargetExistsError):
        staged.publish(sync_directory=True)
    staged.discard()
    assert target.read_bytes() == b"theirs"
    assert os.listdir(tmp_path) == ["raced"]


def test_unnamed_files_get_the_umask_mode_and_xattrs(tmp_path: Path) -> None:
    previous = os.umask(0o077)
    try:
        write_bytes(tmp_path / "private", b"x", xattrs={"user.k": b"v"})
    finally:
        os.umask(previous)
    assert (tmp_path / "private").stat().st_mode & 0o777 == 0o600
    assert os.getxattr(tmp_path / "private", "user.k") == b"v"


def test_a_batch_of_new_files_leaves_nothing_when_it_fails(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), Batch() as batch:
        for i in range(5):
            batch.write_bytes(tmp_path / f"f{i}", b"x")
        raise RuntimeError
    assert os.listdir(tmp_path) == []
