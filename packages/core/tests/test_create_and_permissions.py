"""create_exclusive and the permissions= option: the primitives siblings used to rebuild.

Issue 12: spool's FileStore.create opened its files with its own os.open(O_CREAT|O_EXCL) and
FileStore.copy called os.fchmod on core's temp, so crash tests could not see either call.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from persistkit.core import (
    AtomicWriter,
    InvalidArgumentError,
    TargetExistsError,
    atomic_write,
    create_exclusive,
    write_bytes,
    write_text,
)
from persistkit.core.testing import crash_at_every_call, record_calls


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_create_exclusive_gives_a_plain_file_under_its_own_name(tmp_path: Path) -> None:
    path = tmp_path / "a-file"
    with create_exclusive(path) as f:
        assert (f.name, f.mode) == (str(path), "w")
        f.write("Die Ente bleibt draussen!")
        assert path.exists()  # in place, visible at once: not an atomic write
    assert path.read_text() == "Die Ente bleibt draussen!"
    with create_exclusive(tmp_path / "b", "wb") as b:
        b.write(b"\x00")
    with create_exclusive(tmp_path / "c", "a", encoding="latin-1") as c:
        c.write("é")
    assert (tmp_path / "c").read_bytes() == b"\xe9"


def test_create_exclusive_never_reuses_an_existing_name(tmp_path: Path) -> None:
    path = tmp_path / "taken"
    path.write_text("someone else's work")
    with pytest.raises(TargetExistsError) as caught:
        create_exclusive(path)
    assert caught.value.filename == str(path)
    assert path.read_text() == "someone else's work"  # never truncated
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        create_exclusive(link)  # a symlink, even dangling, is never followed
    assert not (tmp_path / "nowhere").exists()


def test_create_exclusive_goes_through_the_seam(tmp_path: Path) -> None:
    path = tmp_path / "seen"
    calls = record_calls(lambda: create_exclusive(path, permissions=0o600).close())
    assert [(call.name, call.path) for call in calls] == [
        ("create", str(path)),
        ("chmod", str(path)),
    ]


def test_create_exclusive_permissions_are_exact_and_the_default_follows_the_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0o027)
    try:
        create_exclusive(tmp_path / "default").close()
        create_exclusive(tmp_path / "exact", permissions=0o664).close()
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "default") == 0o640
    assert mode_of(tmp_path / "exact") == 0o664


def test_a_crash_while_creating_leaves_nothing_or_the_new_file(tmp_path: Path) -> None:
    path = tmp_path / "new"

    def setup() -> None:
        path.unlink(missing_ok=True)

    def check(point: object) -> None:
        # Not atomic by design: a crash may leave the new, empty file (never anyone else's).
        assert not path.exists() or path.read_bytes() == b""

    runs = crash_at_every_call(
        lambda: create_exclusive(path, permissions=0o640).close(), check=check, setup=setup
    )
    assert runs == 3


def test_a_failure_after_the_file_was_created_removes_it(tmp_path: Path) -> None:
    with pytest.raises(LookupError):
        create_exclusive(tmp_path / "x", encoding="no-such-codec")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", ["r", "r+", "rb", "", "t"])
def test_create_exclusive_needs_a_writing_mode(tmp_path: Path, mode: str) -> None:
    with pytest.raises(InvalidArgumentError):
        create_exclusive(tmp_path / "x", mode)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("permissions", [-1, 0o10000, 0.5, "644", True])
def test_bad_permissions_are_refused_before_anything_is_created(
    tmp_path: Path, permissions: object
) -> None:
    with pytest.raises(InvalidArgumentError):
        create_exclusive(tmp_path / "x", permissions=permissions)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        write_bytes(tmp_path / "y", b"", permissions=permissions)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("writer", ["write_bytes", "write_text", "atomic_write", "AtomicWriter"])
@pytest.mark.parametrize("existing", [False, True])
def test_every_writer_sets_permissions_before_the_content_is_synced(
    tmp_path: Path, leftovers: Callable[[Path], list[str]], writer: str, existing: bool
) -> None:
    path = tmp_path / "file"
    if existing:
        path.write_bytes(b"old")
        os.chmod(path, 0o600)

    def write() -> None:
        if writer == "write_bytes":
            write_bytes(path, b"new", permissions=0o640)
        elif writer == "write_text":
            write_text(path, "new", permissions=0o640)
        elif writer == "atomic_write":
            with atomic_write(path, "wb", permissions=0o640) as f:
                f.write(b"new")
        else:
            with AtomicWriter(path, "wb", permissions=0o640).open() as f:
                f.write(b"new")

    names = [call.name for call in record_calls(write)]
    assert names.index("chmod") < names.index("fsync")
    assert path.read_bytes() == b"new"
    assert mode_of(path) == 0o640
    assert leftovers(tmp_path) == []


def test_permissions_replace_the_kept_mode_of_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "shared"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)
    write_bytes(path, b"new")
    assert mode_of(path) == 0o644  # kept without the option
    write_bytes(path, b"newer", permissions=0o600)
    assert mode_of(path) == 0o600
