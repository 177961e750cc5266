"""The S3 backend on a distributed SeaweedFS: two gateways at once, and a volume server killed.

The cluster (one master with ``-defaultReplication=001``, three volume servers, two filers
started one after the other in one filer group, one S3 gateway per filer) runs on loopback;
workers pointed at different gateways stand for different machines. The faults are real: a
volume server is killed with SIGKILL in the middle of the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from persistkit.core.pytest_plugin import StartCluster
from persistkit.core.testing import S3Endpoint

sys.path.insert(0, os.path.dirname(__file__))
from objectstore_support import Backend, race, s3_backend

pytestmark = pytest.mark.slow


def backends_on(gateways: list[S3Endpoint], bucket: str) -> list[Backend]:
    return [s3_backend(gateway, bucket, "cluster") for gateway in gateways]


def test_compare_and_swap_through_two_gateways_at_once_is_exact(
    seaweedfs_cluster: StartCluster,
) -> None:
    cluster = seaweedfs_cluster()
    bucket = cluster.endpoints[0].create_bucket()
    gateways = backends_on(cluster.endpoints, bucket)

    keys = [f"race/{i}" for i in range(8)]
    results = race(gateways, 16, "create", *keys)
    wins = Counter(key for line in results for key in line.split()[1:])
    assert wins == Counter({key: 1 for key in keys})

    gateways[0].store.put_if_absent("counter", b"0 start")
    race(gateways, 16, "count", "counter", "5")
    for backend in gateways:  # both gateways see the exact count
        assert int(backend.store.get("counter").data.split()[0]) == 16 * 5


WRITER = r"""
import sys
from persistkit.core import S3ObjectStore, StoreUnavailableError
endpoint, key_id, secret, bucket, count = sys.argv[1:6]
store = S3ObjectStore(bucket, "cluster", endpoint_url=endpoint, access_key=key_id,
                      secret_key=secret, region="us-east-1")
for i in range(int(count)):
    body = (f"object {i} ".encode() * 2000)[:20000]
    while True:
        try:
            store.put(f"obj/{i}", body)
            break
        except StoreUnavailableError as error:
            print("retry", i, type(error).__name__, flush=True)
    print("ack", i, flush=True)
print("done", flush=True)
"""


def test_a_volume_server_killed_mid_run_loses_nothing_acknowledged(
    seaweedfs_cluster: StartCluster,
) -> None:
    cluster = seaweedfs_cluster()
    writer_gateway, reader_gateway = cluster.endpoints
    bucket = writer_gateway.create_bucket()
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WRITER,
            writer_gateway.endpoint_url,
            writer_gateway.access_key,
            writer_gateway.secret_key,
            bucket,
            "200",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
    )
    assert writer.stdout is not None
    acknowledged = set()
    killed = False
    for line in writer.stdout:
        if line.startswith("ack"):
            acknowledged.add(int(line.split()[1]))
        if len(acknowledged) == 50 and not killed:
            cluster.kill("volume1")  # SIGKILL one of the three volume servers mid-run
            killed = True
    assert writer.wait(timeout=600) == 0
    assert killed and len(acknowledged) == 200  # the job finished

    store = reader_gateway.store(bucket, "cluster")
    for i in sorted(acknowledged):
        assert store.get(f"obj/{i}").data == (f"object {i} ".encode() * 2000)[:20000], i
