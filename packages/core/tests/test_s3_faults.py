"""What the S3 servers teach, each proven against a real SeaweedFS.

Two kinds of fault appear here, and each test says which it uses:
- real: the ``weed`` server process killed with SIGKILL in the middle of a run;
- injected at the HTTP boundary: `S3FaultProxy` forwards every request to the real server
  and then loses its reply (a 5xx or 409 after the write was applied, or a dropped
  connection), or strips ``If-Match`` from DELETE (a server that ignores the condition, as
  Ceph RGW does). No server loses a reply on cue, hence the proxy.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from persistkit.core import (
    ConditionNotHonouredError,
    ConflictError,
    InvalidArgumentError,
    ObjectExistsError,
    ObjectNotFoundError,
    OutcomeUnknownError,
    S3ObjectStore,
    StoreUnavailableError,
    _s3_capabilities,
    open_object_store,
)
from persistkit.core.pytest_plugin import StartSeaweed
from persistkit.core.testing import Fault, S3Endpoint, S3FaultProxy, run_until_killed


@pytest.fixture
def proxy(s3_server: S3Endpoint) -> Iterator[S3FaultProxy]:
    with S3FaultProxy(s3_server) as running:
        yield running


@pytest.fixture
def via_proxy(proxy: S3FaultProxy, s3_bucket: str) -> S3ObjectStore:
    """A store whose requests pass the fault proxy (its probe already done, fault-free)."""
    store = proxy.endpoint.store(s3_bucket, "faults")
    store.capabilities()
    return store


@pytest.fixture
def direct(s3_server: S3Endpoint, s3_bucket: str) -> S3ObjectStore:
    """The same objects as ``via_proxy``, reached without the proxy."""
    return s3_server.store(s3_bucket, "faults")


def conditional_puts(proxy: S3FaultProxy, key: str = "k") -> int:
    """How many conditional PUTs of ``key`` (under the ``faults`` prefix) the server received."""
    return sum(
        1
        for method, path, conditional in proxy.forwarded
        if method == "PUT" and conditional and path.split("?")[0].endswith(f"/faults/{key}")
    )


# -- a reply lost after the write was applied (injected) ------------------------------------


@pytest.mark.parametrize(("when", "status"), [("after", 503), ("after", 409), ("drop", 0)])
def test_a_create_whose_reply_is_lost_is_settled_as_won(
    proxy: S3FaultProxy, via_proxy: S3ObjectStore, direct: S3ObjectStore, when: str, status: int
) -> None:
    proxy.plan(Fault("PUT", when=when, status=status))
    version = via_proxy.put_if_absent("k", b"mine")
    assert proxy.hits, "the fault was not injected"
    assert direct.get("k") == type(direct.get("k"))(b"mine", version)
    # One conditional PUT reached the server: boto3 did not retry it behind our back (a
    # retried winner would come back 412 and look like a loser).
    assert conditional_puts(proxy) == 1


def test_a_create_refused_before_the_server_saw_it_is_sent_again(
    proxy: S3FaultProxy, via_proxy: S3ObjectStore, direct: S3ObjectStore
) -> None:
    proxy.plan(Fault("PUT", when="before", status=503, count=2))
    version = via_proxy.put_if_absent("k", b"mine")
    assert len(proxy.hits) == 2
    assert direct.get("k").version == version
    assert conditional_puts(proxy) == 1


def test_a_create_that_failed_while_another_writer_won_is_a_conflict(
    proxy: S3FaultProxy, via_proxy: S3ObjectStore, direct: S3ObjectStore
) -> None:
    proxy.plan(Fault("PUT", when="before", status=503, then=lambda: direct.put("k", b"theirs")))
    with pytest.raises(ObjectExistsError):
        via_proxy.put_if_absent("k", b"mine")
    assert direct.get("k").data == b"theirs"


def test_a_swap_whose_reply_is_lost_is_applied_exactly_once(
    proxy: S3FaultProxy, via_proxy: S3ObjectStore, direct: S3ObjectStore
) -> None:
    first = direct.put("k", b"1 writer-a")
    proxy.plan(Fault("PUT", when="after", status=500))
    second = via_proxy.put_if_match("k", b"2 writer-b", first)
    assert direct.get("k").data == b"2 writer-b"
    assert direct.get("k").version == second
    assert conditional_puts(proxy) == 1


def test_a_swap_overtaken_before_it_could_be_settled_raises_outcome_unknown(
    proxy: S3FaultProxy, via_proxy: S3ObjectStore, direct: S3ObjectStore
) -> None:
    first = direct.put("k", b"1")

    def another_writer_swaps_on_top() -> None:
        direct.put_if_match("k", b"3", direct.get("k").version)

    proxy.plan(Fault("PUT", when="after", status=503, then=another_writer_swaps_on_top))
    with pytest.raises(OutcomeUnknownError) as caught:
        via_proxy.put_if_match("k", b"2", first)
    assert isinstance(caught.value, StoreUnavailableError)
    assert direct.get("k").data == b"3"


def test_a_conditional_delete_whose_reply_is_lost_is_settled_as_done(
    proxy: S3FaultProxy, via_proxy: S3ObjectStore, direct: S3ObjectStore
) -> None:
    version = direct.put("k", b"x")
    proxy.plan(Fault("DELETE", when="after", status=503))
    via_proxy.delete_if_match("k", version)
    assert proxy.hits
    with pytest.raises(ObjectNotFoundError):
        direct.get("k")


def test_a_server_that_keeps_failing_gives_outcome_unknown_after_the_allowed_sends(
    proxy: S3FaultProxy, s3_bucket: str, direct: S3ObjectStore
) -> None:
    store = proxy.endpoint.store(s3_bucket, "faults", settle_attempts=3)
    store.capabilities()
    proxy.plan(Fault("PUT", when="before", status=503, count=3))
    with pytest.raises(OutcomeUnknownError):
        store.put_if_absent("k", b"x")
    assert len(proxy.hits) == 3
    with pytest.raises(ObjectNotFoundError):
        direct.get("k")


def test_a_failed_swap_from_a_stale_version_is_not_passed_off_as_a_plain_conflict(
    proxy: S3FaultProxy, via_proxy: S3ObjectStore, direct: S3ObjectStore
) -> None:
    # A 503 may come after the server applied the swap; finding neither our write nor the
    # version we expected, the client cannot tell "never applied" from "applied, then
    # replaced", and a caller retrying a "conflict" could apply its change twice.
    stale = direct.put("k", b"1")
    direct.put("k", b"2")
    proxy.plan(Fault("PUT", when="before", status=503))
    with pytest.raises(OutcomeUnknownError):
        via_proxy.put_if_match("k", b"3", stale)
    assert direct.get("k").data == b"2"
    with pytest.raises(ConflictError):  # without a fault, the same call is a plain conflict
        via_proxy.put_if_match("k", b"3", stale)


def test_etags_are_sent_unquoted(
    proxy: S3FaultProxy, via_proxy: S3ObjectStore, direct: S3ObjectStore
) -> None:
    # Ceph RGW rejects a quoted ETag in If-Match; SeaweedFS and AWS take both.
    version = direct.put("k", b"1")
    version = via_proxy.put_if_match("k", b"2", version)
    via_proxy.delete_if_match("k", version)
    assert proxy.conditions
    assert not any('"' in value for value in proxy.conditions)


# -- the capability probe ---------------------------------------------------------------------


def test_seaweedfs_honours_every_condition_and_the_probe_leaves_nothing(
    s3_server: S3Endpoint, s3_bucket: str
) -> None:
    _s3_capabilities.forget()
    store = s3_server.store(s3_bucket, "probe")
    found = store.capabilities()
    assert (found.if_none_match_put, found.if_match_put, found.if_match_delete) == (True,) * 3
    client = s3_server.client()
    assert client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0
    # Cached per endpoint and bucket: another store there asks nothing.
    assert s3_server.store(s3_bucket, "elsewhere").capabilities() is found


def test_a_server_ignoring_if_match_on_delete_is_refused_not_trusted(
    proxy: S3FaultProxy, s3_bucket: str, direct: S3ObjectStore
) -> None:
    # Injected: the proxy strips If-Match from DELETE, which is what Ceph RGW 16 does with it.
    proxy.strip_if_match_on_delete = True
    store = proxy.endpoint.store(s3_bucket, "faults")
    found = store.capabilities()
    assert found.if_match_delete is False
    assert found.if_match_put and found.if_none_match_put
    stale = direct.put("k", b"1")
    direct.put("k", b"2")
    with pytest.raises(ConditionNotHonouredError) as caught:
        store.delete_if_match("k", stale)
    assert "If-Match on DELETE" in str(caught.value)
    assert direct.get("k").data == b"2"
    # What it does honour keeps working.
    assert store.put_if_match("k", b"3", direct.get("k").version)


def test_an_unreachable_server_is_a_typed_error(s3_bucket: str) -> None:
    from persistkit.core._seaweed import free_port
    from persistkit.core.testing import S3Endpoint as Endpoint

    nowhere = Endpoint(f"http://127.0.0.1:{free_port()}", "x", "y")
    store = nowhere.store(s3_bucket, retries=1, settle_attempts=1)
    with pytest.raises(StoreUnavailableError):
        store.get("k")
    with pytest.raises(StoreUnavailableError):
        store.put_if_absent("k", b"x")


# -- locations --------------------------------------------------------------------------------


def test_an_s3_url_takes_the_endpoint_and_credentials_from_the_aws_environment(
    s3_server: S3Endpoint, s3_bucket: str, s3_environment: S3Endpoint
) -> None:
    store = open_object_store(f"s3://{s3_bucket}/from/env/")
    assert isinstance(store, S3ObjectStore)
    assert store.location == f"s3://{s3_bucket}/from/env"
    store.put_if_absent("k", b"x")
    assert s3_server.client().get_object(Bucket=s3_bucket, Key="from/env/k")["Body"].read() == b"x"


@pytest.mark.parametrize(
    "url",
    [
        "s3://",
        "s3:///prefix",
        "s3://b/a//b",
        "s3://b/a/../b",
        "s3://b/./a",
        "s3://b/a\\b",
        "s3://b/p?x=1",
        "gs://b/p",
        "s3://b/" + "x" * 256,
    ],
)
def test_a_malformed_location_is_refused(url: str) -> None:
    with pytest.raises(InvalidArgumentError):
        open_object_store(url)


def test_importing_core_does_not_import_boto3() -> None:
    code = "import sys, persistkit.core; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


# -- the real server killed mid-run (real fault) -------------------------------------------

WRITER = r"""
import sys
from persistkit.core import S3ObjectStore, StoreUnavailableError
endpoint, key_id, secret, bucket = sys.argv[1:5]
store = S3ObjectStore(bucket, "crash", endpoint_url=endpoint, access_key=key_id,
                      secret_key=secret, region="us-east-1", retries=2, settle_attempts=2)
i = 0
try:
    while True:
        body = (f"object {i} ".encode() * 4096)[:65536]
        if i % 2:
            store.put_if_absent(f"obj/{i}", body)
        else:
            store.put(f"obj/{i}", body)
        print("ack", i, flush=True)
        i += 1
except StoreUnavailableError as error:
    print("error", type(error).__name__, flush=True)
"""


@pytest.mark.slow
def test_the_server_killed_mid_run_loses_nothing_acknowledged(seaweedfs: StartSeaweed) -> None:
    server = seaweedfs()
    endpoint = server.endpoint
    bucket = endpoint.create_bucket()
    # SIGKILL of the server while the writer is sending its next object
    run = run_until_killed(endpoint.spawn_python(WRITER, bucket), server.kill, after=40)
    assert run.returncode == 0
    acknowledged = [int(words[0]) for words in run.acks]

    server.start()
    store = endpoint.store(bucket, "crash")
    present = set(store.list("obj/"))
    for i in acknowledged:
        assert f"obj/{i}" in present, f"acknowledged object {i} was lost"
    for key in present:  # nothing half-visible: every object there is whole
        i = int(key.split("/")[1])
        assert store.get(key).data == (f"object {i} ".encode() * 4096)[:65536]
    assert present <= {f"obj/{i}" for i in range(max(acknowledged) + 2)}


def test_a_request_boto3_refuses_is_an_invalid_argument_not_an_unknown_outcome(
    direct: S3ObjectStore,
) -> None:
    direct.put("k", b"1")
    with pytest.raises(InvalidArgumentError):
        direct.put_if_match("k", b"2", None)  # type: ignore[arg-type] # the bad value is the point
    assert direct.get("k").data == b"1"
