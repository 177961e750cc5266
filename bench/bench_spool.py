"""persistkit.spool against gocept.filestore 1.0, stdlib mailbox.Maildir and the os-only hand-off.

Each operation is one message of 100 bytes handed from a producer to a consumer: deliver it,
then claim it and finish it (n deliveries first, then n claim + done, as a queue with a
backlog sees them; the consumer finds the messages by listing ``new``, as maildir readers do).

Durable workload (each message survives power loss once delivered, and its removal once done):

- os-only (baseline): the classic maildir hand-off written by hand with ``os``: write to
  ``tmp/``, fsync the file, rename into ``new/``, fsync ``new/``; rename into ``cur/``, fsync
  ``cur/``; unlink. Three fsyncs per message, and wrong on a disk without a metadata journal
  (this one): a power cut can lose a claimed message or bring a finished one back (issue 10).
- os-only, power-cut safe: the same by hand, correct on such a disk: the claim links into
  ``cur/``, fsyncs ``cur/``, then unlinks from ``new/``; the finish unlinks and fsyncs
  ``cur/`` and ``new/``. Five fsyncs per message: the floor for a correct hand-off.
- persistkit Spool: ``deliver`` (fsync file, create-only publish, fsync ``new/``), ``claim``
  (link into ``cur/``, fsync ``cur/``, unlink from ``new/``), ``done`` (unlink, fsync ``cur/``
  and ``new/``). Five fsyncs.
- mailbox.Maildir: ``add`` (fsyncs the file, never the folder), then the first key, its bytes
  and ``remove``; mailbox has no claim step, and re-lists the folders on every lookup.

Without fsync (safe against a process crash only):

- gocept.filestore (baseline): ``create`` + write + ``move`` tmp -> new; the consumer lists
  ``new`` once, then ``move`` new -> cur, reads, ``remove``.
- persistkit Spool with ``durability="atomic"``, and `FileStore` with ``durability="atomic"``
  used exactly as gocept.filestore is.
- os-only: the hand-written protocol without its fsyncs.

In an object store (no backlog; each message delivered, claimed and finished in turn): the
file spool (durable) against the same API on S3 (SeaweedFS on loopback, started by
``bench_objectstore``): deliver is 1 PUT, claim 2 requests (create the claim, read the
message) plus a listing of ``new/`` and ``claims/`` when its candidates run out, done 3 (swap
the claim, delete the message, delete the claim). Then 4 consumer threads, each with its own
spool and connections, working off a backlog delivered untimed: messages done per second;
also on a distributed SeaweedFS started here (one master, three volume servers with a second
copy of every volume, two filers, two S3 gateways), half of the consumers on each gateway, as
if on two machines. The threads share one Python process (boto3 spends milliseconds of CPU
per request), so on a small machine these rates are bound by the CPU.
"""

from __future__ import annotations

import atexit
import itertools
import mailbox
import os
import subprocess
import tempfile
import threading
from pathlib import Path

from harness import Workload, fsync_dir

from persistkit.spool import FileStore, LeaseLostError, Spool

try:
    import gocept.filestore as gocept_filestore
except ImportError:  # the peer is installed by the bench session; without it, skip its case
    gocept_filestore = None

PAYLOAD = b"x" * 100
BACKLOG = 5000


def _backlog(how: str):
    """Setup (untimed): a standing backlog of messages in ``new``, made as each design makes them.

    How a backlog is made matters on this disk: ext4 without a journal will not reuse an
    inode freed in the last 30 seconds, so creating files gets slower in a block group
    where many were just deleted. Each design's backlog therefore lives where that design
    creates its files (``tmp`` then renamed, or ``new`` itself), so that consuming the
    backlog frees inodes exactly where that design would free them in steady state.
    """

    def setup(directory: Path, n: int) -> None:
        # +T starts each case's folders in fresh block groups, so no case pays for the
        # files an earlier case deleted (PEERS.md, "Pitfalls of this disk").
        subprocess.run(["chattr", "+T", str(directory)], check=False, capture_output=True)
        if how == "spool-durable":  # hidden temporaries beside the target, in new/
            Spool(directory, durability="atomic").deliver_many(PAYLOAD for _ in range(BACKLOG))
        elif how == "spool-atomic":  # staged in tmp/
            spool = Spool(directory, durability="atomic")
            for _ in range(BACKLOG):
                spool.deliver(PAYLOAD)
        else:
            for name in ("tmp", "new", "cur"):
                (directory / name).mkdir()
            for i in range(BACKLOG):
                name = f"1000000000.M{i:06d}P1Q{i}.backlog"
                (directory / "tmp" / name).write_bytes(PAYLOAD)
                os.rename(directory / "tmp" / name, directory / "new" / name)
        # Without a journal, creating a file waits while its inode-table block is being
        # written back: flush the backlog now rather than during the timed run.
        os.sync()

    return setup


def _os_only(sync: bool, *, power_cut_safe: bool = False):
    def run(directory: Path, n: int) -> None:
        tmp, new, cur = (directory / area for area in ("tmp", "new", "cur"))
        pid = os.getpid()
        waiting: list[str] = []
        for i in range(n):
            name = f"{2000000000 + i}.P{pid}"
            staged = tmp / name
            fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                os.write(fd, PAYLOAD)
                if sync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(staged, new / name)
            if sync:
                fsync_dir(new)
            if not waiting:
                waiting = sorted(os.listdir(new), reverse=True)
            oldest = waiting.pop()
            claimed = cur / f"{oldest}:2,"
            if power_cut_safe:
                os.link(new / oldest, claimed)
                fsync_dir(cur)
                os.unlink(new / oldest)
            else:
                os.rename(new / oldest, claimed)
                if sync:
                    fsync_dir(cur)
            with open(claimed, "rb") as f:
                f.read()
            os.unlink(claimed)
            if power_cut_safe:
                fsync_dir(cur)
                fsync_dir(new)

    return run


def _spool(durability: str, *, opener=None):
    """A hand-off, one message at a time: in ``directory``, or where ``opener(directory)`` says."""

    def run(directory: Path, n: int) -> None:
        where = directory if opener is None else opener(directory)
        spool = Spool(where, durability=durability)  # type: ignore[arg-type]
        for _ in range(n):
            spool.deliver(PAYLOAD)
            message = spool.claim()
            assert message is not None
            message.read_bytes()
            spool.done(message)

    return run


def _filestore_like_gocept(make_store):
    def run(directory: Path, n: int) -> None:
        store = make_store(str(directory))
        store.prepare()
        waiting: list[str] = []
        for i in range(n):
            with store.create(f"msg-{i}", "wb") as f:
                f.write(PAYLOAD)
            store.move(f"msg-{i}", "tmp", "new")
            if not waiting:
                waiting = store.list("new")
            path = waiting.pop()
            store.move(path, "new", "cur")
            name = os.path.basename(path)
            with open(os.path.join(store.path, "cur", name), "rb") as f:
                f.read()
            store.remove(name, "cur")

    return run


def _maildir(directory: Path, n: int) -> None:
    box = mailbox.Maildir(directory, factory=None, create=True)
    for _ in range(n):
        box.add(PAYLOAD)
        key = next(box.iterkeys())
        box.get_bytes(key)
        box.remove(key)


def workloads(quick: bool) -> list[Workload]:
    n = 200 if quick else 500
    backlog = _backlog("staged")
    durable = Workload(
        f"spool: durable hand-off of 100 B messages, {BACKLOG:,} waiting (deliver + claim + done)",
        n,
        "os-only",
    )
    durable.add(
        "os-only", _os_only(sync=True), setup=backlog, note="fsync file + new/; rename + fsync cur/"
    )
    durable.add(
        "os-only, power-cut safe",
        _os_only(sync=True, power_cut_safe=True),
        setup=backlog,
        note="fsync file + new/; link + fsync cur/ + unlink; unlink + fsync cur/ + new/",
    )
    durable.add(
        "persistkit Spool",
        _spool("durable"),
        setup=_backlog("spool-durable"),
        note="fsync file + new/; link + fsync cur/ + unlink; unlink + fsync cur/ + new/",
    )
    durable.add(
        "mailbox.Maildir",
        _maildir,
        setup=backlog,
        note="fsyncs the file only; no claim; re-lists the mailbox per lookup",
    )

    fast = Workload(
        f"spool: hand-off without fsync, {BACKLOG:,} waiting (deliver + claim + done)",
        n * 5,
        "gocept.filestore",
    )
    if gocept_filestore is not None:
        fast.add(
            "gocept.filestore",
            _filestore_like_gocept(gocept_filestore.FileStore),
            setup=backlog,
            note="no fsync; move overwrites; names chosen by the caller",
        )
    else:
        fast.baseline = "os-only (no fsync)"
    fast.add(
        "persistkit Spool atomic",
        _spool("atomic"),
        setup=_backlog("spool-atomic"),
        note="unique names, leases, create-only renames",
    )
    fast.add(
        "persistkit FileStore atomic",
        _filestore_like_gocept(lambda path: FileStore(path, durability="atomic")),
        setup=backlog,
        note="gocept's API and usage, names checked, create-only",
    )
    fast.add("os-only (no fsync)", _os_only(sync=False), setup=backlog, note="hand-written")
    return [durable, fast, *_object_store_workloads(quick)]


CONSUMERS = 4


def _object_store_workloads(quick: bool):
    from bench_objectstore import s3, s3_endpoint  # the loopback S3 server, started once

    one = Workload(
        "spool in an object store: deliver + claim + done, one message at a time",
        50 if quick else 200,
        "file spool",
    )
    many = Workload(
        f"spool in an object store: {CONSUMERS} consumers working off a backlog (claim + done)",
        80 if quick else 400,
        "file spool",
        unit="messages/s",
    )
    one.add("file spool", _spool("durable"), note="durable: five fsyncs per message")
    many.add(
        "file spool",
        _consume_together,
        setup=lambda d, n: _prepare_consumers(lambda: Spool(d / "spool"), n),
        note=f"{CONSUMERS} threads, renames",
    )
    if s3_endpoint() is not None:
        one.add(
            "S3 (SeaweedFS, loopback)", _spool("durable", opener=s3), note="6 requests + listings"
        )
        many.add(
            "S3 (SeaweedFS, loopback)",
            _consume_together,
            setup=lambda d, n: _prepare_consumers(lambda: Spool(s3(d)), n),
            note=f"{CONSUMERS} threads, conditional writes",
        )
    gateways = _cluster_gateways()
    if gateways:
        many.add(
            CLUSTER_CASE,
            _consume_together,
            setup=lambda d, n: _prepare_consumers(_on_gateways(gateways, d), n, CLUSTER_CASE),
            note=f"{CONSUMERS} threads, half on each gateway; 3 volume servers, replicated",
        )
    return [one, many]


_cluster: list[object] = []


def _cluster_gateways():
    """Start a distributed SeaweedFS once for the run (its S3 gateways), or [] if it cannot run."""
    from persistkit.core.testing import SeaweedCluster, ServerUnavailableError

    if not _cluster:
        try:
            cluster = SeaweedCluster(Path(tempfile.mkdtemp(prefix="persistkit-bench-cluster-")))
            cluster.start()
        except (ServerUnavailableError, OSError) as reason:
            print(f"(cluster case skipped: {reason})")
            _cluster.append(None)
            return []
        atexit.register(cluster.kill)
        bucket = cluster.endpoints[0].create_bucket()
        _cluster.append([(gateway, bucket) for gateway in cluster.endpoints])
    return _cluster[0] or []


def _on_gateways(gateways, directory: Path):
    """A maker of spools on one prefix, each through the next gateway in turn."""
    turn = itertools.cycle(gateways)
    prefix = f"bench/{directory.parent.name}-{directory.name}"

    def make() -> Spool:
        gateway, bucket = next(turn)
        return Spool(gateway.store(bucket, prefix))

    return make


CLUSTER_CASE = "S3, SeaweedFS cluster, 2 gateways"
_consumers: list[Spool] = []
_case: list[str] = [""]
# Claims two consumers held at once, per case, over the repeats: the loser's `done` raised
# LeaseLostError (a server whose conditional writes are not atomic store-wide; docs/spool.md).
_claims_lost: dict[str, int] = {}


def _prepare_consumers(make_spool, n: int, case: str = "") -> None:
    """Deliver the backlog and open the consumers' spools (connections) before the clock runs."""
    _consumers[:] = [make_spool() for _ in range(CONSUMERS)]
    _consumers[0].deliver_many(PAYLOAD for _ in range(n))
    _case[0] = case


def _consume_together(directory: Path, n: int) -> None:
    spools, finished, lost = list(_consumers), [], []
    start = threading.Barrier(len(spools))

    def consumer(spool: Spool) -> None:
        start.wait()
        while (message := spool.claim()) is not None:
            try:
                spool.done(message)
            except LeaseLostError:
                lost.append(message.id)  # another consumer held the same claim and finishes it
                continue
            finished.append(message.id)

    threads = [threading.Thread(target=consumer, args=(spool,)) for spool in spools]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(finished)) == len(finished) == n  # each message done, and once
    if lost:
        if not _case[0]:
            raise AssertionError(f"{len(lost)} claims were held twice on one server")
        _claims_lost[_case[0]] = _claims_lost.get(_case[0], 0) + len(lost)


def extra_report(quick: bool) -> str:
    """Claims held twice in the consumers' table (only the cluster may have any)."""
    if not _cluster or not _cluster[0]:
        return ""
    lost = _claims_lost.get(CLUSTER_CASE, 0)
    return (
        "Claims two consumers held at once in the 4-consumer table, every repeat together: "
        f"{lost} on the SeaweedFS cluster (two filers; docs/spool.md says why), none elsewhere "
        "(a second claim there fails the run).\n"
    )


brief_report = extra_report
