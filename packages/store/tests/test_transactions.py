"""Cross-process transactions: lock, re-read, modify, commit; and the risk without them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from persistkit import store
from persistkit.store import CorruptFileError, LockTimeoutError, TransactionError

sys.path.insert(0, os.path.dirname(__file__))
from store_places import Place

PROCESSES = 8
INCREMENTS = 200

INCREMENTER = """
import sys
from persistkit import store

path, mode, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
counter = store.open(path, default=0)
sys.stdin.readline()  # the start gate: every process begins at once
for _ in range(count):
    if mode == "transaction":
        with counter.transaction(timeout=60) as state:
            state.value += 1
    else:
        with store.open(path, default=0) as state:  # reads, then commits: no lock
            state.value += 1
"""


def _run_incrementers(path: Path, mode: str, watch: Callable[[], object]) -> None:
    children = [
        subprocess.Popen(
            [sys.executable, "-c", INCREMENTER, str(path), mode, str(INCREMENTS)],
            stdin=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(PROCESSES)
    ]
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
    while any(child.poll() is None for child in children):
        watch()
    for child in children:
        assert child.stderr is not None
        errors = child.stderr.read().decode()
        assert child.wait() == 0, errors


def _watcher(path: Path, reads: list[Any]) -> Callable[[], None]:
    def watch() -> None:
        if path.exists():
            # Any reader, at any moment, sees a whole JSON document.
            reads.append(json.loads(path.read_bytes()))

    return watch


@pytest.mark.slow
def test_eight_processes_of_transactional_increments_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "counter.json"
    reads: list[Any] = []
    _run_incrementers(path, "transaction", _watcher(path, reads))
    assert json.loads(path.read_text()) == PROCESSES * INCREMENTS
    assert all(isinstance(value, int) for value in reads)
    assert (tmp_path / "counter.json.lock").exists()  # the lock file stays, by design


@pytest.mark.slow
def test_without_a_transaction_updates_may_be_lost_but_the_file_is_never_torn(
    tmp_path: Path,
) -> None:
    path = tmp_path / "counter.json"
    reads: list[Any] = []
    # Each child also re-opens the file 200 times; a torn file would fail it with
    # CorruptFileError, and _run_incrementers asserts every child exited cleanly.
    _run_incrementers(path, "plain", _watcher(path, reads))
    final = json.loads(path.read_text())
    assert isinstance(final, int)
    assert 1 <= final <= PROCESSES * INCREMENTS
    assert all(isinstance(value, int) for value in reads)


def test_lost_update_without_transaction_none_with_it(place: Place) -> None:
    first = place.open("counter.json", default=0)
    second = place.open("counter.json", default=0)
    first.value += 1
    second.value += 1
    first.commit()
    second.commit()
    assert place.stored("counter.json") == b"1"  # deterministic: one increment lost

    with first.transaction() as state:
        state.value += 1  # re-read first: 1 + 1
    with second.transaction() as state:
        state.value += 1  # re-read first: 2 + 1, although second.value was stale
    assert place.stored("counter.json") == b"3"


def test_the_loop_of_attempts_commits_once_and_runs_on_every_backend(place: Place) -> None:
    counter = place.open("counter.json", default=0)
    runs = 0
    for attempt in counter.transaction(timeout=10):
        with attempt as state:
            runs += 1
            state.value += 1
    assert runs == 1
    assert place.stored("counter.json") == b"1"


def test_a_transaction_yields_the_store_with_the_value_reread(place: Place) -> None:
    stale = place.open("s.json", default=[])
    other = place.open("s.json", default=[])
    other.value.append("from other")
    other.commit()
    with stale.transaction() as state:
        assert state is stale
        assert state.value == ["from other"]
        state.value.append("from stale")
    assert json.loads(place.stored("s.json") or b"") == ["from other", "from stale"]


def test_a_transaction_that_raises_writes_nothing_and_releases_the_lock(place: Place) -> None:
    place.write("s.json", b"1")
    state = place.open("s.json")
    with pytest.raises(ZeroDivisionError), state.transaction():
        state.value = 2
        raise ZeroDivisionError
    assert place.stored("s.json") == b"1"
    with place.open("s.json").transaction(timeout=0) as again:  # the lock (if any) is free
        assert again.value == 1
    for attempt in state.transaction():  # the block raised: the loop stops, nothing written
        with pytest.raises(ZeroDivisionError), attempt:
            state.value = 3
            raise ZeroDivisionError
    assert place.stored("s.json") == b"1"


def test_a_transaction_on_a_value_corrupted_since_opening_raises(place: Place) -> None:
    state = place.open("s.json", default=0)
    place.write("s.json", b"[")
    with pytest.raises(CorruptFileError), state.transaction():
        pytest.fail("the block must not run")
    assert place.stored("s.json") == b"["


def test_a_transaction_on_a_corrupt_file_raises_and_releases(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("[")
    state = store.open(tmp_path / "other.json")
    state.path = str(path)  # the file went bad after the store was opened
    with pytest.raises(CorruptFileError), state.transaction():
        pytest.fail("the block must not run")
    assert path.read_text() == "["
    with store.open(tmp_path / "other.json").transaction(timeout=0):
        pass


def test_a_second_transaction_waits_and_times_out(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    holder = store.open(path, default=0)
    waiter = store.open(path, default=0)
    inside = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with holder.transaction():
            inside.set()
            release.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert inside.wait(10)
        with pytest.raises(LockTimeoutError), waiter.transaction(timeout=0):
            pytest.fail("two transactions ran at once")
        with pytest.raises(TimeoutError), waiter.transaction(timeout=0.01):
            pytest.fail("two transactions ran at once")
    finally:
        release.set()
        thread.join()
    assert json.loads(path.read_text()) == 0


def test_the_loop_form_on_a_file_holds_the_lock_until_its_commit_is_done(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.json"
    holder = store.open(path, default=0)
    waiter = store.open(path, default=0)
    for attempt in holder.transaction():
        with attempt as state:
            state.value += 1
            with pytest.raises(LockTimeoutError), waiter.transaction(timeout=0):
                pytest.fail("two transactions ran at once")
    with waiter.transaction(timeout=0) as state:  # committed and unlocked
        assert state.value == 1


def test_nesting_a_transaction_in_a_with_block_is_refused(place: Place) -> None:
    state = place.open("s.json", default=0)
    with state:
        state.value = 5
        with pytest.raises(TransactionError), state.transaction():
            pytest.fail("must not start")
        with pytest.raises(TransactionError):
            state.transaction().__enter__()
    with state.transaction(), pytest.raises(TransactionError), state.transaction():
        pytest.fail("must not start")
    assert place.stored("s.json") == b"5"


@pytest.mark.parametrize("ignore_inner_exits", [False, True])
def test_a_with_block_inside_a_transaction_is_an_inner_block(
    place: Place, ignore_inner_exits: bool
) -> None:
    place.write("s.json", b'"before"')
    state = place.open("s.json", ignore_inner_exits=ignore_inner_exits)
    with state.transaction():
        with state:
            state.value = "inner"
        assert place.stored("s.json") == (b'"before"' if ignore_inner_exits else b'"inner"')
        state.value = "end"
    assert place.stored("s.json") == b'"end"'


def test_stores_opened_through_a_symlink_share_the_lock(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    link = tmp_path / "link.json"
    link.symlink_to(real)
    through_link = store.open(link, default=0)
    direct = store.open(real, default=0)
    assert through_link.lock_path == direct.lock_path == str(real) + ".lock"
    with through_link.transaction(), pytest.raises(LockTimeoutError), direct.transaction(0):
        pytest.fail("two transactions ran at once")


def test_a_killed_transaction_holder_releases_the_lock_and_commits_nothing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.json"
    path.write_text("10")
    script = (
        "import sys\n"
        "from persistkit import store\n"
        "with store.open(sys.argv[1]).transaction() as state:\n"
        "    state.value = 999\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.readline()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "locked\n"
    state = store.open(path)
    with pytest.raises(LockTimeoutError), state.transaction(timeout=0):
        pytest.fail("the child holds the lock")
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL
    with state.transaction(timeout=30):
        assert state.value == 10
        state.value += 1
    assert path.read_text() == "11"
