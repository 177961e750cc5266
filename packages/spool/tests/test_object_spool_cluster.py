"""A spool on a distributed SeaweedFS: consumers on two gateways, a volume server killed.

Four consumer processes, two on each S3 gateway of the cluster (as if on two machines),
work through one spool; one of the three volume servers is killed with SIGKILL (a real
fault) while they run. Every message must be done exactly once and none lost.
"""

from __future__ import annotations

from collections import Counter

import pytest

from persistkit.core.pytest_plugin import StartCluster
from persistkit.spool import Spool

pytestmark = pytest.mark.slow

MESSAGES = 120

CONSUMER = r"""
import sys
from persistkit.core import S3ObjectStore, StoreUnavailableError
from persistkit.spool import LeaseLostError, Spool

endpoint, key_id, secret, bucket = sys.argv[1:5]
objects = S3ObjectStore(bucket, "jobs", endpoint_url=endpoint, access_key=key_id,
                        secret_key=secret, region="us-east-1")
spool = Spool(objects, lease=10)
while True:
    try:
        message = spool.claim(timeout=1)
        if message is None:
            if not any(True for _ in objects.list("new/")):
                break  # every message is finished
            continue
        while True:
            try:
                spool.done(message)  # safe to call again after an unclear failure
                print("done", message.id, flush=True)
                break
            except LeaseLostError:
                break  # another consumer took it over and finishes it
            except StoreUnavailableError as error:
                print("retry", type(error).__name__, flush=True)
    except StoreUnavailableError as error:
        print("error", type(error).__name__, flush=True)
print("finished", flush=True)
"""


def test_consumers_on_two_gateways_finish_every_message_once_through_a_volume_server_kill(
    seaweedfs_cluster: StartCluster,
) -> None:
    cluster = seaweedfs_cluster()
    gateways = cluster.endpoints
    bucket = gateways[0].create_bucket()
    with gateways[0].store(bucket, "jobs") as objects:
        ids = Spool(objects).deliver_many(f"job {i}".encode() for i in range(MESSAGES))
    consumers = [gateway.spawn_python(CONSUMER, bucket) for gateway in (*gateways, *gateways)]
    first = consumers[0].stdout
    assert first is not None
    lines: list[str] = []
    killed = False
    for line in first:  # let the job get going, then kill a volume server under it
        lines.append(line)
        if sum(1 for seen in lines if seen.startswith("done")) == 5:
            cluster.kill("volume1")
            killed = True
            break
    assert killed
    for consumer in consumers:
        assert consumer.stdout is not None
        lines.extend(consumer.stdout.read().splitlines())
        assert consumer.wait(timeout=600) == 0
    done = Counter(line.split()[1] for line in lines if line.startswith("done"))
    assert done == Counter(ids)  # each message done exactly once, none lost
    with gateways[1].store(bucket, "jobs") as objects:
        assert list(objects.list()) == []  # nothing left waiting or claimed
