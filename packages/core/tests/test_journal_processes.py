"""The journal shared by independent processes: group commit, SIGKILL, exactly once."""

from __future__ import annotations

import os
import select
import subprocess
import textwrap
from collections import Counter
from pathlib import Path

from persistkit.core import Journal
from persistkit.core.testing import kill_hard, spawn_python

WRITER = textwrap.dedent(
    """
    import sys
    from persistkit.core import Journal

    path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    journal = Journal(path)
    for i in range(count):
        journal.commit(f"{name}:{i}".encode())
        print(f"{name}:{i}", flush=True)
    """
)

# Holds the flush lock and stops just before its fdatasync, telling the test so on stdout.
LEADER = textwrap.dedent(
    """
    import os, sys
    from persistkit.core import Journal
    from persistkit.core import _fs

    journal = Journal(sys.argv[1])
    end = journal.append(b"leader")

    def stop_before_fdatasync(call, path):
        if call == "fdatasync":
            print("holding the flush lock", flush=True)
            os.read(0, 1)  # never answered: the test kills this process here

    _fs.set_observer(stop_before_fdatasync)
    journal.flush(end)
    """
)

FOLLOWER = textwrap.dedent(
    """
    import sys
    from persistkit.core import Journal
    from persistkit.core.testing import record_calls

    journal = Journal(sys.argv[1])
    end = journal.append(sys.argv[2].encode())
    print(end, flush=True)
    sys.stdin.readline()  # the test says when to flush
    calls = record_calls(lambda: journal.flush(end))
    flushed = sum(call.name == "fdatasync" for call in calls)
    print(flushed, flush=True)
    """
)


def records(path: Path) -> list[bytes]:
    with Journal(path) as journal:
        return [record.data for record in journal.records()]


def test_independent_processes_commit_concurrently_and_each_record_lands_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal"
    Journal(path).close()
    writers = [spawn_python(WRITER, str(path), f"w{n}", "150") for n in range(6)]
    acked = []
    for writer in writers:
        out, _ = writer.communicate(timeout=300)
        assert writer.returncode == 0
        acked.extend(out.split())
    Path(f"{path}-shm").unlink()  # recover from the log alone, as after a reboot
    found = [data.decode() for data in records(path)]
    assert len(acked) == 900
    assert Counter(found) == Counter(acked)
    for n in range(6):
        assert [x for x in found if x.startswith(f"w{n}:")] == [f"w{n}:{i}" for i in range(150)]


def test_processes_killed_while_committing_lose_no_acknowledged_record(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    Journal(path).close()
    writers = [spawn_python(WRITER, str(path), f"w{n}", "1000000") for n in range(4)]
    acked: list[str] = []
    assert all(writer.stdout is not None for writer in writers)
    for writer in writers:
        for _ in range(50):  # each has had 50 commits acknowledged
            acked.append(writer.stdout.readline().strip())  # type: ignore[union-attr]
    for writer in writers:
        acked.extend(kill_hard(writer).split())
    counts = Counter(data.decode() for data in records(path))
    assert all(counts[name] == 1 for name in acked)
    assert max(counts.values()) == 1
    with Journal(path) as journal:
        journal.commit(b"after the kills")
    assert records(path)[-1] == b"after the kills"


def _blocked_on(path: Path) -> int:
    """How many lock requests the kernel lists as waiting on ``path`` (/proc/locks).

    The journal's flush locks are open-file-description locks, listed without a pid.
    """
    info = os.stat(path)
    name = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    with open("/proc/locks", encoding="ascii") as locks:
        return sum(
            1
            for fields in (line.split() for line in locks)
            if len(fields) > 6 and fields[1] == "->" and fields[6] == name
        )


def _printed(procs: list[subprocess.Popen[str]]) -> bool:
    """Whether any of ``procs`` has written to its stdout (without reading it)."""
    ready, _, _ = select.select([proc.stdout for proc in procs], [], [], 0)
    return bool(ready)


def test_followers_of_a_leader_killed_mid_flush_flush_themselves(tmp_path: Path) -> None:
    path = tmp_path / "journal"
    with Journal(path) as journal:
        journal.commit(b"before")
    # The followers' records are appended first, so the leader's flush would cover them:
    # had it published them as flushed before its fdatasync, they would return undurable.
    followers = [spawn_python(FOLLOWER, str(path), f"follower {n}") for n in range(3)]
    ends = [int(follower.stdout.readline()) for follower in followers]  # type: ignore[union-attr]
    leader = spawn_python(LEADER, str(path))
    assert leader.stdout is not None
    assert leader.stdout.readline().strip() == "holding the flush lock"
    shm = Path(f"{path}-shm")
    for follower in followers:
        follower.stdin.write("flush\n")  # type: ignore[union-attr]
        follower.stdin.flush()  # type: ignore[union-attr]
    # Wait until the kernel lists every follower as blocked on a flush lock: one waits to
    # lead the next flush, the others wait for that one.
    while _blocked_on(shm) != len(followers):
        assert not _printed(followers)
        os.sched_yield()
    kill_hard(leader)
    # The leader died before its fdatasync: a follower had to flush, once for all of them.
    assert sum(_flushes_done(followers)) == 1
    with Journal(path) as journal:
        assert all(end <= journal.end for end in ends)
    found = records(path)
    assert found[0] == b"before"
    assert sorted(found[1:]) == [b"follower 0", b"follower 1", b"follower 2", b"leader"]


def _flushes_done(followers: list[subprocess.Popen[str]]) -> list[int]:
    """Wait for each follower to finish (a hang fails here) and return its fdatasync count."""
    flushes = []
    for follower in followers:
        out, _ = follower.communicate(timeout=60)
        assert follower.returncode == 0
        flushes.append(int(out))
    return flushes


def test_a_claimed_flush_whose_leader_is_killed_is_taken_over_not_skipped(
    tmp_path: Path,
) -> None:
    # A flush is claimed (its lock held) while the one before it still runs; writers that
    # append meanwhile wait for the claimed one. Its leader is killed before it starts: the
    # waiters must take it over, not hang and not return, since nothing has flushed their
    # records; then the running leader is killed before its fdatasync too.
    path = tmp_path / "journal"
    shm = Path(f"{path}-shm")
    with Journal(path) as journal:
        journal.commit(b"before")
    running = spawn_python(LEADER, str(path))
    assert running.stdout is not None
    assert running.stdout.readline().strip() == "holding the flush lock"
    claimer = spawn_python(FOLLOWER, str(path), "claimer")
    assert claimer.stdout is not None
    claimer.stdout.readline()
    claimer.stdin.write("flush\n")  # type: ignore[union-attr]
    claimer.stdin.flush()  # type: ignore[union-attr]
    while _blocked_on(shm) != 1:  # the claimer holds the next flush and waits to start it
        assert claimer.poll() is None
        os.sched_yield()
    followers = [spawn_python(FOLLOWER, str(path), f"follower {n}") for n in range(3)]
    ends = [int(follower.stdout.readline()) for follower in followers]  # type: ignore[union-attr]
    for follower in followers:
        follower.stdin.write("flush\n")  # type: ignore[union-attr]
        follower.stdin.flush()  # type: ignore[union-attr]
    while _blocked_on(shm) != 1 + len(followers):
        assert not _printed(followers)
        os.sched_yield()
    kill_hard(claimer)
    # One follower takes the claimed flush over and waits for the running one; the others
    # wait for it. None of them returns: their records are not durable yet.
    while _blocked_on(shm) != len(followers):
        assert not _printed(followers)
        assert all(follower.poll() is None for follower in followers)
        os.sched_yield()
    kill_hard(running)
    # The follower that took over flushed, once, for everybody.
    assert sum(_flushes_done(followers)) == 1
    with Journal(path) as journal:
        assert all(end <= journal.end for end in ends)
        assert journal.stats().flushes >= 1
    found = records(path)
    assert found[0] == b"before"
    assert sorted(found[1:]) == [
        b"claimer",
        b"follower 0",
        b"follower 1",
        b"follower 2",
        b"leader",
    ]
