"""DirectoryWatch: real inotify events from real file operations, in one and several processes."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import shutil
from pathlib import Path

import pytest

from persistkit.core import DirectoryWatch
from persistkit.core.errors import InvalidArgumentError

CTX = multiprocessing.get_context("spawn")


def inotify_descriptors() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:inotify":
                count += 1
        except OSError:
            continue
    return count


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "watched"
    path.mkdir()
    return path


def test_a_new_name_wakes_the_waiter_and_nothing_else_does(folder: Path) -> None:
    with DirectoryWatch(folder) as watch:
        assert watch.kind == "inotify"
        assert watch.wait(timeout=0) is False
        (folder / ".writer-at-work").write_bytes(b"")
        assert watch.wait(timeout=0) is False  # hidden names do not count
        os.rename(folder / ".writer-at-work", folder / "message")
        assert watch.wait(timeout=0) is True
        assert watch.wait(timeout=0) is False  # the event was consumed
        (folder / "message").write_bytes(b"more")  # a change, not an addition
        (folder / "message").unlink()
        assert watch.wait(timeout=0) is False


def test_a_change_made_before_the_wait_is_not_missed(folder: Path) -> None:
    watch = DirectoryWatch(folder)
    (folder / "early").write_bytes(b"")  # after the watch exists, before the wait
    assert watch.wait(timeout=None) is True
    watch.close()


def test_hidden_names_can_be_asked_for(folder: Path) -> None:
    with DirectoryWatch(folder, hidden=True) as watch:
        (folder / ".tmp").write_bytes(b"")
        assert watch.wait(timeout=0) is True


def test_removals_and_changes_when_asked_for(folder: Path) -> None:
    (folder / "a").write_bytes(b"")
    (folder / "b").write_bytes(b"")
    with (
        DirectoryWatch(folder, events=["removed"]) as removed,
        DirectoryWatch(folder, events=["changed"]) as changed,
    ):
        (folder / "c").write_bytes(b"")
        assert removed.wait(timeout=0) is False
        assert changed.wait(timeout=0) is True  # c was written and closed
        (folder / "a").unlink()
        assert removed.wait(timeout=0) is True
        os.rename(folder / "b", folder.parent / "b")
        assert removed.wait(timeout=0) is True
        with (folder / "c").open("ab") as f:
            f.write(b"x")
        assert changed.wait(timeout=0) is True


def waiter(path: str, report: multiprocessing.connection.Connection) -> None:
    watch = DirectoryWatch(path)
    report.send("watching")
    report.send(watch.wait(timeout=None))


def test_another_process_sleeps_until_a_name_appears(folder: Path) -> None:
    ours, theirs = CTX.Pipe()
    child = CTX.Process(target=waiter, args=(str(folder), theirs))
    child.start()
    assert ours.recv() == "watching"
    assert not ours.poll()  # still asleep: nothing has appeared
    (folder / "job").write_bytes(b"")
    assert ours.recv() is True
    child.join()
    assert child.exitcode == 0


def test_a_forked_child_makes_its_own_watch_and_steals_no_event(folder: Path) -> None:
    watch = DirectoryWatch(folder)
    (folder / "before-fork").write_bytes(b"")
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(read_end)
            first = watch.wait(timeout=0)  # its own watch: look again
            os.write(write_end, b"ready")
            second = watch.wait(timeout=None)
            status = 0 if (first, second) == (True, True) else 2
        finally:
            os._exit(status)
    os.close(write_end)
    assert os.read(read_end, 5) == b"ready"
    (folder / "after-fork").write_bytes(b"")
    _, status = os.waitpid(pid, 0)
    os.close(read_end)
    assert os.waitstatus_to_exitcode(status) == 0
    assert watch.wait(timeout=0) is True  # the parent's events are all still there
    assert watch.wait(timeout=0) is False
    watch.close()


def test_a_removed_and_recreated_folder_is_watched_again(folder: Path) -> None:
    watch = DirectoryWatch(folder)
    shutil.rmtree(folder)
    assert watch.wait(timeout=0) is True  # gone: look again
    assert watch.wait(timeout=0) is True  # still missing: polled, look again
    folder.mkdir()
    assert watch.wait(timeout=0) is True  # a new watch: look again
    assert watch.wait(timeout=0) is False
    (folder / "job").write_bytes(b"")
    assert watch.wait(timeout=None) is True
    watch.close()


def test_close_releases_the_descriptor_and_a_later_wait_watches_anew(folder: Path) -> None:
    before = inotify_descriptors()
    watch = DirectoryWatch(folder)
    assert inotify_descriptors() == before + 1
    watch.close()
    watch.close()
    assert inotify_descriptors() == before
    assert watch.wait(timeout=0) is True
    (folder / "job").write_bytes(b"")
    assert watch.wait(timeout=0) is True
    watch.close()
    assert inotify_descriptors() == before


def test_polling_holds_no_descriptor_and_always_says_look_again(folder: Path) -> None:
    before = inotify_descriptors()
    with DirectoryWatch(folder, kind="poll") as watch:
        assert watch.kind == "poll"
        assert inotify_descriptors() == before
        assert watch.wait(timeout=0) is True
        watch.found()


def test_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        DirectoryWatch(tmp_path / "missing", kind="inotify")
    assert DirectoryWatch(tmp_path / "missing").kind == "poll"


@pytest.mark.parametrize("arguments", [{"kind": "x"}, {"events": ["x"]}, {"events": []}])
def test_bad_arguments(folder: Path, arguments: dict[str, object]) -> None:
    with pytest.raises(InvalidArgumentError):
        DirectoryWatch(folder, **arguments)  # type: ignore[arg-type]
