"""Independent processes (started with subprocess, sharing nothing but the directory)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from persistkit.iodict import DurableQueue, IODict

PRODUCER = textwrap.dedent(
    """
    import sys
    from persistkit.iodict import DurableQueue
    path, name, count, durability = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    pad = "x" * int(sys.argv[5])
    q = DurableQueue(path, durability=durability)
    batch = 50
    for start in range(0, count, batch):
        q.put_many([(name, i, pad) for i in range(start, min(start + batch, count))])
    """
)

CONSUMER = textwrap.dedent(
    """
    import json, sys
    from persistkit.iodict import DurableQueue
    q = DurableQueue(sys.argv[1], durability=sys.argv[2])
    got = []
    while True:
        item = q.get(timeout=120)
        if item is None:
            break
        got.append(item)
    print(json.dumps(got))
    """
)


def _spawn(script: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _producers_and_consumers(
    path: Path, producers: int, consumers: int, per_producer: int, durability: str, pad: int = 0
) -> None:
    consumer_processes = [_spawn(CONSUMER, path, durability) for _ in range(consumers)]
    producer_processes = [
        _spawn(PRODUCER, path, f"p{n}", per_producer, durability, pad) for n in range(producers)
    ]
    for process in producer_processes:
        _, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    # Every producer is done, so FIFO puts these after every item: one stop per consumer.
    DurableQueue(path).put_many([None] * consumers)
    consumed: list[tuple[str, int]] = []
    per_consumer = []
    for process in consumer_processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        assert err == ""  # no exception, no warning, in any consumer
        got = [tuple(item[:2]) for item in json.loads(out)]
        per_consumer.append(got)
        consumed.extend(got)  # type: ignore[arg-type]
    expected = {(f"p{n}", i) for n in range(producers) for i in range(per_producer)}
    counts = Counter(consumed)
    assert set(counts) == expected  # none lost
    assert max(counts.values()) == 1  # none delivered twice
    for got in per_consumer:  # FIFO: each consumer sees each producer's items in order
        for n in range(producers):
            mine = [i for name, i in got if name == f"p{n}"]
            assert mine == sorted(mine)
    assert DurableQueue(path).qsize() == 0


@pytest.mark.slow
def test_four_producers_four_consumers_ten_thousand_items(fresh_tmp: Path) -> None:
    # "atomic" (no fsync) keeps this inside the suite's time budget; what it tests is the
    # locking and bookkeeping between processes, which durability does not change. The
    # smaller test below runs the same protocol with fsyncs.
    _producers_and_consumers(fresh_tmp / "q", 4, 4, 2500, "atomic")


def test_producers_and_consumers_durable(fresh_tmp: Path) -> None:
    _producers_and_consumers(fresh_tmp / "q", 2, 2, 150, "durable")


def test_producers_and_consumers_across_checkpoints(fresh_tmp: Path) -> None:
    # 2.4 MB of items: the journal is checkpointed several times while they run.
    _producers_and_consumers(fresh_tmp / "q", 2, 2, 300, "atomic", pad=4000)
    # The drained queue's last segments go with the next checkpoint.
    DurableQueue(fresh_tmp / "q").checkpoint()
    assert len(os.listdir(fresh_tmp / "q" / ".persistkit-queue.items")) == 0


def test_consumer_killed_mid_stream_loses_at_most_its_current_item(fresh_tmp: Path) -> None:
    path = fresh_tmp / "q"
    q = DurableQueue(path, durability="atomic")
    q.put_many(range(1000))
    script = textwrap.dedent(
        """
        import sys
        from persistkit.iodict import DurableQueue
        q = DurableQueue(sys.argv[1], durability="atomic")
        while True:
            print(q.get_nowait(), flush=True)
        """
    )
    victim = _spawn(script, path)
    assert victim.stdout is not None
    reported = [int(victim.stdout.readline()) for _ in range(100)]
    victim.send_signal(signal.SIGKILL)
    # Read through the same buffered reader (communicate() would skip what it buffered).
    rest = victim.stdout.read()
    victim.wait()
    reported += [int(line) for line in rest.split()]
    assert victim.returncode == -signal.SIGKILL
    remaining = list(DurableQueue(path).getter())
    assert reported == list(range(len(reported)))  # in order, no repeats
    assert remaining == list(range(remaining[0], 1000))
    # At most the one item the victim had taken but not yet printed is gone.
    assert remaining[0] - len(reported) in (0, 1)


WRITER = textwrap.dedent(
    """
    import sys
    from persistkit.iodict import IODict
    path, name = sys.argv[1], sys.argv[2]
    store = IODict(path, durability="atomic")
    for i in range(150):
        store[f"{name}-{i}"] = i
        store["shared"] = name
        if i % 10 == 0:
            store.pop(f"{name}-{i}")
    """
)


def test_independent_processes_share_one_iodict(fresh_tmp: Path) -> None:
    path = fresh_tmp / "store"
    IODict(path)
    writers = [_spawn(WRITER, path, f"w{n}") for n in range(4)]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    store = IODict(path)
    keys = list(store)
    assert len(keys) == len(store) == 4 * 135 + 1
    assert store["shared"] in {"w0", "w1", "w2", "w3"}
    for n in range(4):
        # Each process's inserts appear in the order it made them.
        mine = [key for key in keys if isinstance(key, str) and key.startswith(f"w{n}-")]
        assert mine == [f"w{n}-{i}" for i in range(150) if i % 10]
        assert all(store[key] == int(key.split("-")[1]) for key in mine)


CLAIMER = textwrap.dedent(
    """
    import os, queue, sys
    from persistkit.iodict import DurableQueue
    q = DurableQueue(sys.argv[1], durability="atomic")
    out = int(sys.argv[2])
    while q.unfinished_tasks:
        try:
            job = q.claim(timeout=1.0)
        except queue.Empty:
            continue
        os.write(out, f"working {job.item}\\n".encode())
        job.ack()
        os.write(out, f"acked {job.item}\\n".encode())
    """
)


def test_claimers_killed_at_random_every_item_acked_once(fresh_tmp: Path) -> None:
    path = fresh_tmp / "q"
    items = 400
    DurableQueue(path, durability="atomic").put_many(range(items))
    rng = random.Random(5)
    read_end, write_end = os.pipe()

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", CLAIMER, str(path), str(write_end)], pass_fds=(write_end,)
        )

    workers = [start() for _ in range(4)]
    worked: Counter[int] = Counter()
    acked: Counter[int] = Counter()
    kills = 0
    next_kill = rng.randint(10, 40)
    with os.fdopen(read_end, "rb") as lines:
        # Ends when every worker has exited (after the last kill, no one else holds the
        # pipe's write end), which they do once no task is unfinished.
        for line in lines:
            word, number = line.split()
            (acked if word == b"acked" else worked)[int(number)] += 1
            if kills < 8 and sum(acked.values()) >= next_kill:
                victim = workers.pop(rng.randrange(len(workers)))
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                workers.append(start())
                kills += 1
                next_kill += rng.randint(10, 40)  # 8 kills within 320 of 400 acks
                if kills == 8:
                    os.close(write_end)
    for worker in workers:
        assert worker.wait(timeout=120) == 0
    assert kills == 8
    q = DurableQueue(path)
    assert q.qsize() == 0 and q.unfinished_tasks == 0 and not q.dead_letters()
    assert set(worked) == set(range(items))  # at least once
    assert max(acked.values()) == 1  # an ack returns once per item, never twice
    assert os.listdir(path / ".persistkit-queue.leases") == []
