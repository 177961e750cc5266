from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest

from persistkit.core import write_bytes
from persistkit.core.testing import (
    ChildError,
    crash_at,
    crash_at_every_call,
    inject_error,
    record_calls,
    sockets_left_open,
)


def test_crash_at_reports_the_call_it_died_before(tmp_path: Path) -> None:
    point = crash_at(3, lambda: write_bytes(tmp_path / "x", b"data"))
    assert point.call is not None and point.call.name == "fsync" and point.call.index == 3
    assert not (tmp_path / "x").exists()
    assert crash_at(99, lambda: write_bytes(tmp_path / "x", b"data")).completed
    assert (tmp_path / "x").read_bytes() == b"data"


def test_crash_at_every_call_visits_each_call_once(tmp_path: Path) -> None:
    expected = [c.name for c in record_calls(lambda: write_bytes(tmp_path / "y", b"d"))]
    seen: list[str | None] = []
    runs = crash_at_every_call(
        lambda: write_bytes(tmp_path / "y", b"d"),
        setup=lambda: (tmp_path / "y").unlink(missing_ok=True),
        check=lambda point: seen.append(point.call.name if point.call else None),
    )
    assert runs == len(expected) + 1
    assert seen == [*expected, None]


def test_an_exception_in_the_child_is_reported(tmp_path: Path) -> None:
    def broken() -> None:
        raise KeyError("inside the child")

    with pytest.raises(ChildError, match="inside the child"):
        crash_at(1, broken)


def test_inject_error_fails_the_nth_matching_call_only(tmp_path: Path) -> None:
    write_bytes(tmp_path / "a", b"1")
    with inject_error(errno.ENOSPC, call="write", nth=2) as failed:
        write_bytes(tmp_path / "a", b"2")
        with pytest.raises(OSError) as caught:
            write_bytes(tmp_path / "a", b"3")
        write_bytes(tmp_path / "b", b"4")
    assert caught.value.errno == errno.ENOSPC
    assert len(failed) == 1 and failed[0].name == "write"
    assert (tmp_path / "a").read_bytes() == b"2"
    assert (tmp_path / "b").read_bytes() == b"4"


def test_inject_error_by_path(tmp_path: Path) -> None:
    with inject_error(errno.EIO, call="fsync_dir", path_contains=str(tmp_path / "sub")) as failed:
        write_bytes(tmp_path / "a", b"1")
        (tmp_path / "sub").mkdir()
        with pytest.raises(OSError):
            write_bytes(tmp_path / "sub" / "b", b"2")
    assert failed and failed[0].path == str(tmp_path / "sub")


def test_leftovers_finds_only_persistkit_temporaries(tmp_path: Path) -> None:
    from persistkit.core.testing import leftovers

    (tmp_path / ".state.0123456789ab.pktmp").write_text("partial")
    (tmp_path / "state").write_text("whole")
    (tmp_path / ".hidden").write_text("a user's file")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".x.0123456789ab.pktmp").write_text("partial")
    assert leftovers(tmp_path) == [".state.0123456789ab.pktmp"]
    assert leftovers(tmp_path, recursive=True) == [
        ".state.0123456789ab.pktmp",
        "sub/.x.0123456789ab.pktmp",
    ]


def test_snapshot_tree_sees_a_touch_a_new_file_and_an_xattr(tmp_path: Path) -> None:
    import os

    from persistkit.core.testing import snapshot_tree

    (tmp_path / "a").write_text("x")
    before = snapshot_tree(tmp_path)
    assert snapshot_tree(tmp_path) == before
    os.utime(tmp_path / "a", ns=(1, 1))
    touched = snapshot_tree(tmp_path)
    assert touched != before
    (tmp_path / "b.lock").touch()
    assert snapshot_tree(tmp_path) != touched
    created = snapshot_tree(tmp_path)
    try:
        os.setxattr(tmp_path / "a", "user.k", b"v")
    except OSError:
        return  # no user xattrs here; the rest was checked
    assert snapshot_tree(tmp_path) != created


@pytest.mark.parametrize("required", ["0", "1"])
def test_facility_unavailable_skips_or_fails(tmp_path: Path, required: str) -> None:
    import os
    import subprocess
    import sys

    test = tmp_path / "test_needs.py"
    test.write_text(
        "from persistkit.core.testing import facility_unavailable\n"
        "def test_needs():\n"
        "    facility_unavailable('no frobnicator here')\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(test)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PERSISTKIT_REQUIRE_FACILITIES": required},
        check=False,
    )
    assert "no frobnicator here" in result.stdout
    if required == "1":
        assert result.returncode == 1 and "1 failed" in result.stdout
    else:
        assert result.returncode == 0 and "1 skipped" in result.stdout


def test_spawn_python_and_kill_hard_kill_a_real_program_at_a_chosen_moment(
    tmp_path: Path,
) -> None:
    from persistkit.core.testing import kill_hard, spawn_python

    code = (
        "import os, sys\n"
        "open(sys.argv[1], 'w').write('started')\n"
        "os.write(1, b'ready\\nunread\\n')\n"  # one write: both lines are there at once
        "sys.stdin.read()\n"
    )
    proc = spawn_python(code, tmp_path / "marker")
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
    assert kill_hard(proc) == "unread\n"
    assert proc.returncode == -9
    assert (tmp_path / "marker").read_text() == "started"
    finished = spawn_python("pass")
    finished.wait()
    with pytest.raises(ChildError):
        kill_hard(finished)


def test_sockets_left_open_names_what_a_failed_operation_still_holds() -> None:
    held: list[socket.socket] = []

    def leaks() -> None:
        held.extend(socket.socketpair())
        raise ValueError("failed after connecting")

    def cleans_up() -> None:
        pair = socket.socketpair()
        for end in pair:
            end.close()
        raise ValueError("failed, closed first")

    assert len(sockets_left_open(leaks, ValueError)) == 2
    assert sockets_left_open(cleans_up, ValueError) == set()
    for end in held:
        end.close()
    with pytest.raises(AssertionError, match="did not raise ValueError"):
        sockets_left_open(lambda: None, ValueError)
