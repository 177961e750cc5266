"""Bad files and bad values: a typed error naming the file, and the file never changed."""

from __future__ import annotations

import errno
import json
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from persistkit import store
from persistkit.core.errors import SyncError
from persistkit.core.testing import inject_error, record_calls
from persistkit.store import CorruptFileError, SerializationError

sys.path.insert(0, os.path.dirname(__file__))
from store_places import Place


def _snapshot(path: Path) -> tuple[bytes, int, int]:
    info = path.stat()
    return path.read_bytes(), info.st_ino, info.st_mtime_ns


@pytest.mark.parametrize(
    ("content", "format"),
    [
        (b"", None),
        (b"", "pickle"),
        (b'{"half": [1, 2', None),
        (b"\xff\xfe not utf-8", None),
        (pickle.dumps(list(range(1000)))[:-100], "pickle"),
    ],
    ids=["empty-json", "empty-pickle", "truncated-json", "not-utf8", "truncated-pickle"],
)
def test_a_corrupt_file_raises_and_is_never_replaced_by_the_default(
    place: Place, content: bytes, format: Any
) -> None:
    place.write("state", content)
    with pytest.raises(CorruptFileError) as caught:
        place.open("state", default={"fresh": True}, format=format)
    assert caught.value.path == place.where("state")
    assert place.where("state") in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert place.stored("state") == content
    assert place.names() == ["state"]


def test_reload_of_a_file_corrupted_later_keeps_the_value(place: Place) -> None:
    state = place.open("s.json", default=[1])
    state.commit()
    place.write("s.json", b"[1, ")
    with pytest.raises(CorruptFileError):
        state.reload()
    assert state.value == [1]
    assert place.stored("s.json") == b"[1, "


def test_a_directory_in_place_of_the_file_raises_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        store.open(path, default=1)
    assert caught.value.filename == str(path)


@pytest.fixture
def unreadable() -> Iterator[Path]:
    """A store file its reader may not read (mode 000, in a directory it may enter)."""
    folder = Path(tempfile.mkdtemp(prefix="persistkit-store-"))
    os.chmod(folder, 0o755)
    path = folder / "secret.json"
    path.write_text('{"secret": 1}')
    os.chmod(path, 0)
    try:
        yield path
    finally:
        os.chmod(path, 0o600)
        path.unlink()
        folder.rmdir()


def test_an_unreadable_file_raises_permission_error_naming_it(unreadable: Path) -> None:
    # Root reads any file, so when we are root a forked reader drops to nobody: a real EACCES.
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe and exits
        code = 1
        try:
            if os.geteuid() == 0:
                os.setgroups([])
                os.setgid(65534)
                os.setuid(65534)
            store.open(unreadable, default={"fresh": True})
        except PermissionError as error:
            os.write(write_end, str(error.filename).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        reported = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the reader got no PermissionError"
    assert reported == str(unreadable)
    os.chmod(unreadable, 0o600)
    assert json.loads(unreadable.read_text()) == {"secret": 1}


@pytest.mark.parametrize(
    ("value", "format"),
    [
        ({"a set": {1, 2}}, None),
        ("\ud800 lone surrogate", None),
        (["x" * 300_000, "\ud800 lone surrogate"], None),
        (lambda: None, "pickle"),
    ],
    ids=["json-set", "json-surrogate", "json-surrogate-several-slices", "pickle-lambda"],
)
def test_a_value_that_cannot_be_encoded_leaves_the_file_untouched(
    place: Place, value: Any, format: Any
) -> None:
    kwargs = {"ensure_ascii": False} if format is None else None
    state = place.open("s", default=["old"], format=format, dump_kwargs=kwargs)
    state.commit()
    before = place.snapshot("s")
    state.value = value
    with pytest.raises(SerializationError):
        state.commit()
    assert place.snapshot("s") == before
    assert place.names() == ["s"]  # no leftovers


@pytest.mark.parametrize("size", [10, 300_000], ids=["small", "several-slices"])
def test_json_encoding_fails_before_any_filesystem_call(tmp_path: Path, size: int) -> None:
    state = store.open(tmp_path / "s.json", default=None)
    state.value = {"rows": ["x" * 10] * size, "bad": {1, 2}}
    failures: list[BaseException] = []

    def commit() -> None:
        try:
            state.commit()
        except SerializationError as error:
            failures.append(error)

    assert record_calls(commit) == []
    assert len(failures) == 1
    assert list(tmp_path.iterdir()) == []


def test_a_circular_value_is_refused_and_the_file_kept(place: Place) -> None:
    state = place.open("s.json", default=[])
    state.commit()
    loop: list[Any] = []
    loop.append(loop)
    state.value = loop
    with pytest.raises(ValueError, match="ircular"):
        state.commit()
    assert place.stored("s.json") == b"[]"


def test_an_encoding_error_at_the_end_of_a_with_block_propagates(place: Place) -> None:
    place.write("s.json", b"[]")
    with pytest.raises(SerializationError), place.open("s.json") as state:
        state.value = {object()}
    assert place.stored("s.json") == b"[]"


def test_a_full_disk_keeps_the_old_file(
    small_tmpfs: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    # A real ENOSPC: the tmpfs holds 64 KiB.
    path = small_tmpfs / "s.json"
    state = store.open(path, default={"small": True})
    state.commit()
    state.value = {"big": "x" * (256 << 10)}
    with pytest.raises(OSError) as caught:
        state.commit()
    assert caught.value.errno == errno.ENOSPC
    assert json.loads(path.read_text()) == {"small": True}
    assert leftovers(small_tmpfs) == []


def test_an_fsync_error_aborts_the_commit(
    tmp_path: Path, leftovers: Callable[[Path], list[str]]
) -> None:
    # Injected: no real disk here reports EIO on fsync on demand.
    path = tmp_path / "s.json"
    state = store.open(path, default="old")
    state.commit()
    state.value = "new"
    with inject_error(errno.EIO, call="fsync") as failed, pytest.raises(SyncError):
        state.commit()
    assert failed
    assert path.read_text() == '"old"'
    assert leftovers(tmp_path) == []
