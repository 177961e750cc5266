from __future__ import annotations

import gc
import multiprocessing
import os
import sys
import threading
from pathlib import Path

import pytest

from persistkit.core import FileLock, LockTimeoutError


def _increment(lock_path: str, counter: str, rounds: int, start_method: str) -> None:
    lock = FileLock(lock_path)
    for _ in range(rounds):
        with lock:
            value = int(Path(counter).read_text())
            Path(counter).write_text(str(value + 1))


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_lock_excludes_other_processes(tmp_path: Path, start_method: str) -> None:
    counter = tmp_path / "counter"
    counter.write_text("0")
    context = multiprocessing.get_context(start_method)
    workers = [
        context.Process(
            target=_increment, args=(str(tmp_path / "lock"), str(counter), 200, start_method)
        )
        for _ in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert counter.read_text() == "800"


def _hold(
    lock_path: str,
    held: multiprocessing.synchronize.Event,
    release: multiprocessing.synchronize.Event,
) -> None:
    with FileLock(lock_path):
        held.set()
        release.wait()


def test_timeout_raises_while_another_process_holds_the_lock(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(tmp_path / "lock"), held, release))
    holder.start()
    try:
        assert held.wait(timeout=30)
        lock = FileLock(tmp_path / "lock")
        with pytest.raises(LockTimeoutError):
            lock.acquire(timeout=0)
        with pytest.raises(TimeoutError):
            lock.acquire(timeout=0.05)
        assert not lock.is_locked
    finally:
        release.set()
        holder.join()
    with FileLock(tmp_path / "lock", timeout=0) as lock:
        assert lock.is_locked


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    held, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(str(tmp_path / "lock"), held, release))
    holder.start()
    assert held.wait(timeout=30)
    holder.kill()
    holder.join()
    with FileLock(tmp_path / "lock", timeout=0) as lock:
        assert lock.is_locked


def test_reentrant_in_one_thread_and_exclusive_across_threads(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "lock")
    results: list[bool] = []
    with lock, lock:
        assert lock.is_locked

        def other() -> None:
            try:
                lock.acquire(timeout=0)
            except LockTimeoutError:
                results.append(False)
            else:
                results.append(True)
                lock.release()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert results == [False]
    assert not lock.is_locked
    assert (tmp_path / "lock").exists(), "the lock file is never deleted"


def test_two_objects_on_one_file_exclude_each_other(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "lock"), FileLock(tmp_path / "lock")
    with first, pytest.raises(LockTimeoutError):
        second.acquire(timeout=0)


def test_shared_locks_coexist_and_block_exclusive(tmp_path: Path) -> None:
    a = FileLock(tmp_path / "lock", shared=True)
    b = FileLock(tmp_path / "lock", shared=True)
    with a, b, pytest.raises(LockTimeoutError):
        FileLock(tmp_path / "lock").acquire(timeout=0)


def test_release_without_acquire_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        FileLock(tmp_path / "lock").release()


def test_forked_child_does_not_inherit_a_held_lock(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "lock")
    with lock:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: must not believe it holds the parent's lock
            try:
                ok = not lock.is_locked
                try:
                    lock.acquire(timeout=0)
                    ok = False
                except LockTimeoutError:
                    pass
                os.write(write_end, b"1" if ok else b"0")
            finally:
                os._exit(0)
        os.close(write_end)
        answer = os.read(read_end, 1)
        os.waitpid(pid, 0)
        os.close(read_end)
        assert lock.is_locked, "the child must not release the parent's lock"
    assert answer == b"1"


def test_locking_again_reuses_the_open_lock_file(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "lock")
    with lock:
        pass
    opened = set(os.listdir("/proc/self/fd"))
    with lock:
        assert set(os.listdir("/proc/self/fd")) == opened
    lock.close()
    with lock:
        assert lock.is_locked
    with lock, pytest.raises(RuntimeError):
        lock.close()


def test_closing_a_forked_copy_keeps_the_parents_lock(tmp_path: Path) -> None:
    lock = FileLock(tmp_path / "lock")
    with lock:
        pid = os.fork()
        if pid == 0:
            try:
                lock.close()
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        with pytest.raises(LockTimeoutError):
            FileLock(tmp_path / "lock").acquire(timeout=0)


def test_for_path_gives_one_object_per_file_and_options(tmp_path: Path) -> None:
    first = FileLock.for_path(tmp_path / "a.lock")
    assert FileLock.for_path(str(tmp_path / "a.lock")) is first
    assert FileLock.for_path(tmp_path / "." / "a.lock") is first
    assert FileLock.for_path(tmp_path / "a.lock", shared=True) is not first
    with first, FileLock.for_path(tmp_path / "a.lock"):
        assert first.is_locked  # reentrant: the same object, not a second file description


def test_a_lock_whose_descriptor_will_not_close_is_dropped_without_a_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A FUSE mount unmounted under an open lock file makes close() fail with ENOTCONN; the
    # descriptor closed behind the object's back (EBADF) stands in for that here.
    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    lock = FileLock(tmp_path / "lock")
    with lock:
        pass
    os.close(lock._fd)
    del lock
    gc.collect()
    assert unraisable == []
