"""Acknowledged delivery: claim, ack, nack, leases, retries and dead letters (issue 9, item 5)."""

from __future__ import annotations

import pickle
import queue
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from persistkit.iodict import Claim, DurableQueue, LeaseLostError


def test_claim_and_ack(tmp_path: Path) -> None:
    q: DurableQueue[str] = DurableQueue(tmp_path / "q")
    q.put_many(["a", "b"])
    job = q.claim()
    assert isinstance(job, Claim)
    assert (job.item, job.id, job.tries) == ("a", 0, 1)
    assert q.qsize() == 1  # a leased item is not waiting
    assert q.unfinished_tasks == 2
    job.ack()
    assert job.settled and q.unfinished_tasks == 1
    with pytest.raises(LeaseLostError):
        job.ack()  # no item is acknowledged twice
    assert q.get() == "b"
    assert DurableQueue(tmp_path / "q").qsize() == 0


def test_a_claim_of_a_killed_process_comes_back_at_once(tmp_path: Path) -> None:
    path = tmp_path / "q"
    q: DurableQueue[str] = DurableQueue(path)
    q.put_many(["job", "other"])
    script = textwrap.dedent(
        """
        import sys
        from persistkit.iodict import DurableQueue
        job = DurableQueue(sys.argv[1]).claim()
        print(job.item, flush=True)
        sys.stdin.read()
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "job\n"
    assert q.qsize() == 1
    child.send_signal(signal.SIGKILL)
    child.wait()
    # Its lease has 300 s to run, but its holder is gone: the item waits again, first.
    assert q.qsize() == 2
    again = q.claim(block=False)
    assert (again.item, again.tries) == ("job", 2)
    again.ack()
    assert q.get_nowait() == "other"


def test_an_expired_lease_is_taken_over_and_the_late_ack_refused(tmp_path: Path) -> None:
    q: DurableQueue[str] = DurableQueue(tmp_path / "q")
    q.put("slow")
    first = q.claim(lease=0)
    second = DurableQueue[str](tmp_path / "q").claim(block=False)
    assert (second.item, second.tries) == ("slow", 2)
    with pytest.raises(LeaseLostError):
        first.ack()
    with pytest.raises(LeaseLostError):
        first.nack()
    second.ack()
    with pytest.raises(queue.Empty):
        q.claim(block=False)
    assert q.unfinished_tasks == 0


def test_an_expired_lease_not_yet_taken_over_can_still_be_acked(tmp_path: Path) -> None:
    q: DurableQueue[str] = DurableQueue(tmp_path / "q")
    q.put("late")
    job = q.claim(lease=0)
    job.ack()
    with pytest.raises(queue.Empty):
        q.get_nowait()


def test_nack_gives_the_item_back_first(tmp_path: Path) -> None:
    q: DurableQueue[int] = DurableQueue(tmp_path / "q")
    q.put_many([1, 2, 3])
    job = q.claim()
    job.nack()
    assert q.qsize() == 3
    again = q.claim()
    assert (again.item, again.tries) == (1, 2)
    again.nack(count_try=False)
    assert q.claim().tries == 2


def test_nack_with_a_delay(tmp_path: Path) -> None:
    q: DurableQueue[int] = DurableQueue(tmp_path / "q")
    q.put_many([1, 2])
    q.claim().nack(delay=3600)
    assert q.qsize() == 1
    assert q.claim(block=False).item == 2
    with pytest.raises(queue.Empty):
        q.claim(block=False)


def test_dead_letter_after_max_tries(tmp_path: Path) -> None:
    q: DurableQueue[str] = DurableQueue(tmp_path / "q", max_tries=2)
    q.put_many(["poison", "fine"])
    q.claim().nack()
    second = q.claim()
    assert (second.item, second.tries) == ("poison", 2)
    second.nack()  # the second try failed as well: it is set aside
    [letter] = q.dead_letters()
    assert (letter.id, letter.tries, letter.error) == (0, 2, "")
    assert "2 times" in letter.reason
    assert q.qsize() == 1 and q.claim().item == "fine"


def test_expired_leases_count_as_tries(tmp_path: Path) -> None:
    q: DurableQueue[str] = DurableQueue(tmp_path / "q", max_tries=2)
    q.put("crashes its consumers")
    q.claim(lease=0)
    q.claim(lease=0)
    with pytest.raises(queue.Empty):
        q.claim(block=False)  # the third delivery would exceed max_tries
    [letter] = q.dead_letters()
    assert letter.tries == 2 and "without an ack" in letter.reason
    assert q.unfinished_tasks == 0


def test_explicit_dead_letter_and_renew(tmp_path: Path) -> None:
    q: DurableQueue[str] = DurableQueue(tmp_path / "q", lease=0)
    q.put_many(["a", "b"])
    job = q.claim()
    job.renew(3600)  # without it the lease of 0 s would let the item go at once
    assert job.deadline > q.claim().deadline  # the next claim got "b", not "a" again
    job.dead_letter("bad input")
    [letter] = q.dead_letters()
    assert (letter.id, letter.reason) == (0, "bad input")


def test_context_manager_acks_or_gives_back(tmp_path: Path) -> None:
    q: DurableQueue[int] = DurableQueue(tmp_path / "q")
    q.put_many([1, 2])
    with q.claim() as job:
        assert job.item == 1
    assert job.settled
    with pytest.raises(RuntimeError), q.claim() as job:
        raise RuntimeError("work failed")
    assert q.claim().tries == 2  # given back, and the failure counted
    q2: DurableQueue[int] = DurableQueue(tmp_path / "q2")
    q2.put(1)
    with pytest.raises(KeyboardInterrupt), q2.claim():
        raise KeyboardInterrupt
    assert q2.claim().tries == 1  # an interrupt does not count as a try


def test_get_takes_a_given_back_item_for_good(tmp_path: Path) -> None:
    q: DurableQueue[str] = DurableQueue(tmp_path / "q")
    q.put_many(["a", "b"])
    q.claim().nack()
    assert q.get() == "a"
    assert q.get() == "b"
    with pytest.raises(queue.Empty):
        q.claim(block=False)


def test_join_waits_for_acks(tmp_path: Path) -> None:
    q: DurableQueue[int] = DurableQueue(tmp_path / "q")
    q.put(1)
    job = q.claim()
    with pytest.raises(TimeoutError):
        q.join(timeout=0)
    job.ack()
    q.join(timeout=0)


def test_claim_arguments(tmp_path: Path) -> None:
    q: DurableQueue[int] = DurableQueue(tmp_path / "q")
    with pytest.raises(ValueError):
        q.claim(lease=-1)
    with pytest.raises(ValueError):
        DurableQueue(tmp_path / "q", max_tries=0)
    with pytest.raises(ValueError):
        DurableQueue(tmp_path / "q", lease=float("nan"))
    with pytest.raises(queue.Empty):
        q.claim(timeout=0)
    q.put(1)
    job = q.claim()
    with pytest.raises(TypeError):
        pickle.dumps(job)
    with pytest.raises(ValueError):
        job.nack(delay=-1)
    assert "leased" in repr(job)


def test_claims_on_a_queue_that_does_not_exist_write_nothing(tmp_path: Path) -> None:
    q: DurableQueue[Any] = DurableQueue(tmp_path / "missing")
    with pytest.raises(queue.Empty):
        q.claim(block=False)
    assert not (tmp_path / "missing").exists()
