"""Cut the power under the peers and persistkit: ``python bench/powercut_peers.py [--cuts N]``.

Run by ``nox -s powercut_peers`` (root and FUSE needed, as for the ``powercut`` session). For
each store, ``--cuts`` times: boot into the store's durable starting state, let a forked
writer make acknowledged writes (a write is acknowledged when the store's call returned), cut
the power in random mode after a random number of acknowledgements, kill the writer, reopen
the store with its own API and count:

- acknowledged writes lost: a key whose last acknowledged value is gone (missing, or an
  older value), or an acknowledged item (queue, maildir) that is missing; when the store
  cannot be opened at all, every acknowledged write of that cut counts as lost;
- torn: a file or value that is neither a complete value nor absent (empty, cut short, zeros);
- unreadable: cuts after which the store could not be opened or read at all.

Values are 5 KiB (64 KiB for one diskcache row), written over 8 keys or appended as items.
Everything runs on the power-cut filesystem (strict POSIX: ext4 without a journal), so the
numbers say what each store's own flushes guarantee, not what a journaling filesystem adds.
"""

from __future__ import annotations

import argparse
import contextlib
import mailbox
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persistkit.core.testing import PowerCutFS, power_cut_fs

KEYS = 8
MAX_ACKS = 40
TORN = -1


def make_value(n: int, size: int) -> bytes:
    """The n-th value: its number, filler, and an end mark, so a torn value shows."""
    return f"{n:08d}|".encode() + b"x" * size + b"|end"


def parse(data: bytes | str | None, size: int) -> int:
    """Return the number of a complete value, or TORN."""
    if isinstance(data, str):
        data = data.encode()
    if not data or len(data) != size + 13 or not data.endswith(b"|end"):
        return TORN
    head = data[:8]
    return int(head) if head.isdigit() else TORN


def by_number(payloads: Iterable[bytes | str | None], size: int) -> dict[str, int]:
    """What an append-style store holds: each value by its number, torn ones by position."""
    found = {}
    for position, payload in enumerate(payloads):
        number = parse(payload, size)
        found[str(number) if number != TORN else f"torn {position}"] = number
    return found


def drained(get: Callable[[], Any], empty: type[Exception]) -> Iterator[Any]:
    """Take items with ``get`` until it raises ``empty``."""
    while True:
        try:
            yield get()
        except empty:
            return


Writer = Callable[[int], str]
Reader = Callable[[], dict[str, int]]


@dataclass
class Store:
    """One store under test: how to create it, write to it and read it back."""

    name: str
    durable: str
    kind: str  # "replace": values over KEYS keys; "append": one new item per write
    init: Callable[[Path], None]
    writer: Callable[[Path, int], Writer]
    reader: Callable[[Path, int], Reader]
    size: int = 5000


@dataclass
class Tally:
    """What the cuts of one store did."""

    cuts: int = 0
    acked: int = 0
    lost: int = 0
    cuts_with_loss: int = 0
    torn: int = 0
    unreadable: int = 0
    errors: list[str] = field(default_factory=list)


# -- the stores ------------------------------------------------------------------------


def key_of(n: int) -> str:
    return f"k{n % KEYS}"


def files_reader(folder: Path, size: int) -> Reader:
    """Read the key files (a writer's leftover temporary files are not values)."""

    def read() -> dict[str, int]:
        keys = {key_of(n) for n in range(KEYS)}
        return {
            path.name: parse(path.read_bytes(), size)
            for path in folder.iterdir()
            if path.name in keys
        }

    return read


def atomicwrites_store() -> Store:
    def writer(root: Path, size: int) -> Writer:
        from atomicwrites import atomic_write

        def write(n: int) -> str:
            with atomic_write(root / key_of(n), mode="wb", overwrite=True) as f:
                f.write(make_value(n, size))
            return key_of(n)

        return write

    return Store(
        "atomicwrites 1.4.1",
        "fsync file + dir",
        "replace",
        lambda root: None,
        writer,
        files_reader,
    )


def safer_store() -> Store:
    def writer(root: Path, size: int) -> Writer:
        import safer

        def write(n: int) -> str:
            with safer.open(root / key_of(n), "wb") as f:
                f.write(make_value(n, size))
            return key_of(n)

        return write

    return Store("safer 6.1.0", "no fsync", "replace", lambda root: None, writer, files_reader)


def atomic_store_store(module: str, label: str, durable: str) -> Store:
    def init(root: Path) -> None:
        opened = __import__(module, fromlist=["open"]).open
        with opened(str(root / "store.json"), default={}) as store:
            store.commit()

    def writer(root: Path, size: int) -> Writer:
        opened = __import__(module, fromlist=["open"]).open
        store = opened(str(root / "store.json"), default={})

        def write(n: int) -> str:
            store.value[key_of(n)] = make_value(n, size).decode()
            store.commit()
            return key_of(n)

        return write

    def reader(root: Path, size: int) -> Reader:
        def read() -> dict[str, int]:
            opened = __import__(module, fromlist=["open"]).open
            with opened(str(root / "store.json"), default={}) as store:
                return {key: parse(value, size) for key, value in store.value.items()}

        return read

    return Store(label, durable, "replace", init, writer, reader)


def iodict_store(module: str, label: str, durable: str) -> Store:
    def writer(root: Path, size: int) -> Writer:
        store = __import__(module, fromlist=["IODict"]).IODict(str(root / "d"))

        def write(n: int) -> str:
            store[key_of(n)] = make_value(n, size)
            return key_of(n)

        return write

    def reader(root: Path, size: int) -> Reader:
        def read() -> dict[str, int]:
            store = __import__(module, fromlist=["IODict"]).IODict(str(root / "d"))
            found = {}
            for key in list(store.keys()):
                try:
                    found[key] = parse(store[key], size)
                except KeyError:
                    continue
                except Exception:  # an item that cannot be decoded is a torn value
                    found[key] = TORN
            return found

        return read

    def init(root: Path) -> None:
        __import__(module, fromlist=["IODict"]).IODict(str(root / "d"))

    return Store(label, durable, "replace", init, writer, reader)


def gocept_store() -> Store:
    def init(root: Path) -> None:
        from gocept.filestore import FileStore

        FileStore(str(root / "fs")).prepare()

    def writer(root: Path, size: int) -> Writer:
        from gocept.filestore import FileStore

        store = FileStore(str(root / "fs"))

        def write(n: int) -> str:
            with store.create(f"m{n}", "wb") as f:
                f.write(make_value(n, size))
            store.move(f"m{n}", "tmp", "new")
            return str(n)

        return write

    def reader(root: Path, size: int) -> Reader:
        def read() -> dict[str, int]:
            folder = root / "fs" / "new"
            return {path.name[1:]: parse(path.read_bytes(), size) for path in folder.iterdir()}

        return read

    return Store("gocept.filestore 1.0", "no fsync", "append", init, writer, reader)


def maildir_store() -> Store:
    def init(root: Path) -> None:
        mailbox.Maildir(str(root / "mail"), create=True)

    def writer(root: Path, size: int) -> Writer:
        box = mailbox.Maildir(str(root / "mail"), create=False)

        def write(n: int) -> str:
            box.add(make_value(n, size))
            return str(n)

        return write

    def reader(root: Path, size: int) -> Reader:
        def read() -> dict[str, int]:
            box = mailbox.Maildir(str(root / "mail"), create=False)
            # Iterating a Mailbox yields messages, so the keys are asked for.
            return by_number((box.get_bytes(key) for key in box.keys()), size)  # noqa: SIM118

        return read

    return Store("mailbox.Maildir (stdlib)", "fsync file, not dir", "append", init, writer, reader)


def sqlite_store(label: str, pragmas: list[str], durable: str) -> Store:
    def connect(root: Path) -> sqlite3.Connection:
        connection = sqlite3.connect(str(root / "db.sqlite"), isolation_level=None)
        for pragma in pragmas:
            connection.execute(pragma)
        return connection

    def init(root: Path) -> None:
        with contextlib.closing(connect(root)) as connection:
            connection.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v BLOB)")

    def writer(root: Path, size: int) -> Writer:
        connection = connect(root)

        def write(n: int) -> str:
            connection.execute(
                "INSERT OR REPLACE INTO kv VALUES (?, ?)", (key_of(n), make_value(n, size))
            )
            return key_of(n)

        return write

    def reader(root: Path, size: int) -> Reader:
        def read() -> dict[str, int]:
            with contextlib.closing(sqlite3.connect(str(root / "db.sqlite"))) as connection:
                (check,) = connection.execute("PRAGMA integrity_check").fetchone()
                if check != "ok":
                    raise sqlite3.DatabaseError(check)
                rows = connection.execute("SELECT k, v FROM kv").fetchall()
            return {key: parse(value, size) for key, value in rows}

        return read

    return Store(label, durable, "replace", init, writer, reader)


def diskcache_store(size: int, label: str) -> Store:
    def writer(root: Path, size: int) -> Writer:
        from diskcache import Cache

        cache = Cache(str(root / "cache"))

        def write(n: int) -> str:
            cache[key_of(n)] = make_value(n, size)
            return key_of(n)

        return write

    def reader(root: Path, size: int) -> Reader:
        def read() -> dict[str, int]:
            from diskcache import Cache

            with Cache(str(root / "cache")) as cache:
                found = {}
                for key in list(cache.iterkeys()):
                    try:
                        found[key] = parse(cache.get(key), size)
                    except Exception:  # a value file that cannot be read is a torn value
                        found[key] = TORN
                return found

        return read

    def init(root: Path) -> None:
        from diskcache import Cache

        Cache(str(root / "cache")).close()

    return Store(label, "WAL, synchronous=NORMAL", "replace", init, writer, reader, size)


def persist_queue_store(sqlite: bool) -> Store:
    def open_queue(root: Path) -> Any:
        import persistqueue

        if sqlite:
            return persistqueue.SQLiteQueue(str(root / "q"), auto_commit=True)
        return persistqueue.Queue(str(root / "q"), tempdir=str(root))

    def writer(root: Path, size: int) -> Writer:
        queue = open_queue(root)

        def write(n: int) -> str:
            queue.put(make_value(n, size))
            return str(n)

        return write

    def reader(root: Path, size: int) -> Reader:
        def read() -> dict[str, int]:
            import persistqueue

            queue = open_queue(root)
            return by_number(drained(lambda: queue.get(block=False), persistqueue.Empty), size)

        return read

    def init(root: Path) -> None:
        open_queue(root)

    if sqlite:
        return Store(
            "persist-queue 1.1.0 SQLiteQueue", "fsync per put", "append", init, writer, reader
        )
    return Store(
        "persist-queue 1.1.0 Queue (files)", "fsync every 100 puts", "append", init, writer, reader
    )


def persistkit_write_bytes(durability: str) -> Store:
    def writer(root: Path, size: int) -> Writer:
        from persistkit.core import write_bytes

        def write(n: int) -> str:
            write_bytes(root / key_of(n), make_value(n, size), durability=durability)  # type: ignore[arg-type]
            return key_of(n)

        return write

    durable = "fsync file + dir" if durability == "durable" else "no fsync"
    return Store(
        f'persistkit write_bytes, "{durability}"',
        durable,
        "replace",
        lambda root: None,
        writer,
        files_reader,
    )


def persistkit_queue() -> Store:
    def writer(root: Path, size: int) -> Writer:
        from persistkit.iodict import DurableQueue

        queue = DurableQueue(str(root / "q"))

        def write(n: int) -> str:
            queue.put(make_value(n, size))
            return str(n)

        return write

    def reader(root: Path, size: int) -> Reader:
        def read() -> dict[str, int]:
            import queue as stdlib_queue

            from persistkit.iodict import DurableQueue

            durable_queue = DurableQueue(str(root / "q"))
            return by_number(drained(durable_queue.get_nowait, stdlib_queue.Empty), size)

        return read

    def init(root: Path) -> None:
        from persistkit.iodict import DurableQueue

        DurableQueue(str(root / "q"))

    return Store("persistkit DurableQueue.put", "durable", "append", init, writer, reader)


def persistkit_spool() -> Store:
    def init(root: Path) -> None:
        from persistkit.spool import Spool

        Spool(str(root / "spool")).close()

    def writer(root: Path, size: int) -> Writer:
        from persistkit.spool import Spool

        spool = Spool(str(root / "spool"))

        def write(n: int) -> str:
            spool.deliver(make_value(n, size))
            return str(n)

        return write

    def reader(root: Path, size: int) -> Reader:
        def read() -> dict[str, int]:
            from persistkit.spool import Spool

            with Spool(str(root / "spool"), create=False) as spool:
                return by_number((Path(path).read_bytes() for path in spool.list("new")), size)

        return read

    return Store("persistkit Spool.deliver", "durable", "append", init, writer, reader)


def stores() -> list[Store]:
    return [
        atomicwrites_store(),
        safer_store(),
        atomic_store_store("atomic_store", "atomic_store 0.0.1", "via atomicwrites"),
        iodict_store("iodict", "iodict 0.0.8", "no fsync, in place"),
        gocept_store(),
        maildir_store(),
        sqlite_store("sqlite3, rollback journal, synchronous=FULL", [], "FULL (default)"),
        sqlite_store(
            "sqlite3, rollback journal, synchronous=EXTRA",
            ["PRAGMA synchronous=EXTRA"],
            "FULL + fsync dir after the journal's unlink",
        ),
        sqlite_store(
            "sqlite3, WAL, synchronous=FULL",
            ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"],
            "fsync per commit",
        ),
        sqlite_store(
            "sqlite3, WAL, synchronous=NORMAL",
            ["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"],
            "fsync at checkpoints",
        ),
        diskcache_store(5000, "diskcache 5.6.3 defaults"),
        diskcache_store(64 << 10, "diskcache 5.6.3 defaults, 64 KiB values"),
        persist_queue_store(sqlite=True),
        persist_queue_store(sqlite=False),
        persistkit_write_bytes("durable"),
        persistkit_write_bytes("atomic"),
        atomic_store_store("persistkit.store", "persistkit.store", "durable"),
        iodict_store("persistkit.iodict", "persistkit IODict", "durable"),
        persistkit_queue(),
        persistkit_spool(),
    ]


# -- the cuts --------------------------------------------------------------------------


def run_writer(store: Store, root: Path, report: int) -> None:
    """In the forked child: write until killed, acknowledging each returned write."""
    try:
        write = store.writer(root, store.size)
        for n in range(1_000_000):
            token = write(n)
            os.write(report, f"{token} {n}\n".encode())
    except BaseException:
        os.write(report, b"ERROR " + traceback.format_exc().encode().replace(b"\n", b" | "))
    finally:
        os._exit(0)


def one_cut(fs: PowerCutFS, store: Store, root: Path, target: int, seed: int) -> list[str]:
    """Write until ``target`` acknowledgements, cut (random mode), return every ack line."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        run_writer(store, root, write_end)
    os.close(write_end)
    received = b""
    while received.count(b"\n") < target:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        received += chunk
    fs.power_off("random", seed=seed)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    while chunk := os.read(read_end, 65536):
        received += chunk
    os.close(read_end)
    fs.power_on()
    lines = received.decode(errors="replace").split("\n")
    errors = [line for line in lines if line.startswith("ERROR")]
    if errors and lines.index(errors[0]) < target:
        raise RuntimeError(errors[0])
    return [line for line in lines if line and not line.startswith("ERROR")]


def judge(store: Store, acks: list[str], found: dict[str, int] | None, tally: Tally) -> None:
    """Count what this cut lost and tore."""
    if store.kind == "replace":
        last: dict[str, int] = {}
        for line in acks:
            token, number = line.split()
            last[token] = int(number)
        promised = last
    else:
        promised = {line.split()[1]: int(line.split()[1]) for line in acks}
    tally.acked += len(acks)
    if found is None:
        tally.unreadable += 1
        lost = len(promised)
    else:
        tally.torn += sum(1 for number in found.values() if number == TORN)
        if store.kind == "replace":
            lost = sum(1 for key, number in promised.items() if found.get(key, -2) < number)
        else:
            lost = sum(1 for key in promised if key not in found)
    tally.lost += lost
    tally.cuts_with_loss += lost > 0
    # PERSISTKIT_POWERCUT_PEERS_DEBUG=1 prints what each lossy cut acknowledged and found.
    if lost and os.environ.get("PERSISTKIT_POWERCUT_PEERS_DEBUG"):
        print(f"LOSS {store.name}: acks={acks} found={found}", file=sys.stderr)


def measure(fs: PowerCutFS, store: Store, cuts: int, seed: int) -> Tally:
    tally = Tally()
    root = fs.root / "store"
    fs.restore(fs.snapshot())  # a fresh boot
    for path in list(fs.root.iterdir()):
        if path.is_dir():
            import shutil

            shutil.rmtree(path)
        else:
            path.unlink()
    root.mkdir()
    store.init(root)
    fs.sync()
    base = fs.snapshot()
    rng = random.Random(seed)
    for _ in range(cuts):
        fs.restore(base)
        target = rng.randint(1, MAX_ACKS)
        acks = one_cut(fs, store, root, target, rng.randrange(2**32))
        try:
            found: dict[str, int] | None = store.reader(root, store.size)()
        except Exception as error:
            found = None
            tally.errors.append(f"{type(error).__name__}: {error}")
        judge(store, acks, found, tally)
        tally.cuts += 1
    return tally


def main() -> int:
    # persist-queue's Queue.__del__ fails noisily on a queue it could not open; that failure is
    # already counted as "unreadable".
    sys.unraisablehook = lambda unraisable: None
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cuts", type=int, default=100, help="random cuts per store")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--only", nargs="*", help="stores whose name contains one of these")
    args = parser.parse_args()
    chosen = [
        store
        for store in stores()
        if not args.only or any(part.lower() in store.name.lower() for part in args.only)
    ]
    print(
        f"{args.cuts} random power cuts per store after 1-{MAX_ACKS} acknowledged writes, "
        f"seed {args.seed}, {time.strftime('%Y-%m-%d')}, Python {sys.version.split()[0]}\n"
    )
    print(
        "| store | flushes | acknowledged writes | lost | cuts with a loss "
        "| torn values | unreadable after the cut |"
    )
    print("|---|---|--:|--:|--:|--:|--:|")
    with tempfile.TemporaryDirectory() as scratch, power_cut_fs(scratch) as fs:
        for store in chosen:
            started = time.monotonic()
            try:
                tally = measure(fs, store, args.cuts, args.seed)
            except Exception as error:
                failure = f"error: {type(error).__name__}: {error}"
                print(f"| {store.name} | {store.durable} | {failure} |||||")
                continue
            print(
                f"| {store.name} | {store.durable} | {tally.acked} | {tally.lost} "
                f"| {tally.cuts_with_loss} | {tally.torn} | {tally.unreadable} |",
                flush=True,
            )
            if tally.errors:
                kinds = sorted(set(tally.errors))[:3]
                print(f"<!-- {store.name}: {len(tally.errors)} unreadable: {kinds} -->")
            print(f"<!-- {store.name}: {time.monotonic() - started:.0f} s -->", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
