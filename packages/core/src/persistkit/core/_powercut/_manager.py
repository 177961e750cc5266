"""The manager process: owns one power-cut filesystem and its successive mounts.

Started by the test process (``python -m persistkit.core._powercut._manager FD``) and driven
over the socket FD. For each mount it forks a server process from itself (so a mount costs
a fork, not a new interpreter) and a power cut kills that server: the kernel aborts the
FUSE connection, so no process can see or change the mount any more, and the mount is
detached. The crash state is then mounted by a fresh server.

When the test process goes away (its end of the socket closes) the manager kills its server
and detaches the mount, so a crashed test leaves no mount behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import tempfile
import traceback
from typing import Any

from persistkit.core._powercut import _wire
from persistkit.core._powercut._model import Model

_READY_TIMEOUT = 60.0


class MountFailedError(RuntimeError):
    """A server could not mount the filesystem; the message holds libfuse's words."""


class _Server:
    """One forked server process serving one mount."""

    def __init__(self, pid: int, channel: socket.socket) -> None:
        self.pid = pid
        self.channel = channel

    def ask(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        _wire.send(self.channel, request)
        reply = _wire.receive(self.channel)
        assert isinstance(reply, tuple)
        if reply[0] != "ok":
            raise RuntimeError(f"the server refused {request[0]!r}: {reply}")
        return reply

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        self.channel.close()


class Manager:
    """Serve the test process's requests for one mount point."""

    def __init__(self, channel: socket.socket) -> None:
        self.channel = channel
        self.mountpoint = ""
        self.options: dict[str, Any] = {}
        self.server: _Server | None = None
        self.crashed: list[Model] = []
        self.snapshots: dict[int, Model] = {}

    def run(self) -> None:
        """Answer requests until ``stop`` or until the test process goes away."""
        while True:
            try:
                request = _wire.receive(self.channel)
            except _wire.PeerGoneError:
                return
            assert isinstance(request, tuple)
            try:
                reply = self.handle(request)
            except Exception as error:  # every failure goes back to the test
                reply = ("error", type(error).__name__, str(error), traceback.format_exc())
            _wire.send(self.channel, reply)
            if request[0] == "stop":
                return

    def handle(self, request: tuple[Any, ...]) -> tuple[Any, ...]:
        """Carry out one request."""
        command = request[0]
        handler = getattr(self, f"_do_{command}", None)
        if handler is None:
            raise ValueError(f"unknown request {command!r}")
        reply: tuple[Any, ...] = handler(*request[1:])
        return reply

    def _do_start(self, mountpoint: str, options: dict[str, Any]) -> tuple[Any, ...]:
        self.mountpoint, self.options = mountpoint, options
        self._mount(Model.load(mountpoint))
        return ("ok",)

    def _do_freeze(self, plan: list[tuple[str, int | None]]) -> tuple[Any, ...]:
        _, crashed, reports = self._require_server("freeze").ask(("cut", plan))
        self._unmount()
        self.crashed = crashed
        return ("ok", reports)

    def _do_power_on(self) -> tuple[Any, ...]:
        if not self.crashed:
            raise RuntimeError("power_on without a cut")
        self._unmount()
        self._mount(self.crashed.pop(0))
        return ("ok", len(self.crashed))

    def _do_sync(self) -> tuple[Any, ...]:
        self._require_server("sync").ask(("sync",))
        return ("ok",)

    def _do_pending(self) -> tuple[Any, ...]:
        return ("ok", self._require_server("pending").ask(("pending",))[1])

    def _do_snapshot(self) -> tuple[Any, ...]:
        model = self._require_server("snapshot").ask(("snapshot",))[1]
        key = len(self.snapshots) + 1
        self.snapshots[key] = model
        return ("ok", key)

    def _do_restore(self, key: int) -> tuple[Any, ...]:
        model = self.snapshots[key].snapshot()
        self._unmount()
        self.crashed = []
        self._mount(model)
        return ("ok",)

    def _do_stop(self, write_back: bool) -> tuple[Any, ...]:
        model: Model | None = None
        if write_back and self.server is not None:
            model = self.server.ask(("snapshot",))[1]
        elif write_back and self.crashed:
            model = self.crashed[0]
        self._unmount()
        if model is not None:
            model.store(self.mountpoint)
        return ("ok",)

    def _require_server(self, command: str) -> _Server:
        if self.server is None:
            raise RuntimeError(f"{command!r}: the filesystem is not mounted (cut, not powered on)")
        return self.server

    def _mount(self, model: Model) -> None:
        from persistkit.core._powercut import _server  # noqa: PLC0415 - loads libfuse

        mine, theirs = socket.socketpair()
        # PERSISTKIT_POWERCUT_LOG names a file that collects what the servers print (libfuse's
        # errors, a traceback from an operation) for a developer chasing a failure.
        kept_log = os.environ.get("PERSISTKIT_POWERCUT_LOG")
        log = open(kept_log, "ab") if kept_log else tempfile.TemporaryFile()  # noqa: SIM115
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the server process
            try:
                mine.close()
                self.channel.close()
                os.dup2(log.fileno(), 2)
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.chdir("/")
                _server.serve(model, self.mountpoint, theirs, self.options)
            except BaseException:  # reported through the log
                traceback.print_exc()
            finally:
                os._exit(0)
        theirs.close()
        server = _Server(pid, mine)
        try:
            reply = _wire.receive(mine, timeout=_READY_TIMEOUT)
        except (_wire.PeerGoneError, TimeoutError):
            server.kill()
            log.seek(0)
            message = log.read().decode(errors="replace").strip()
            raise MountFailedError(message or "the server exited without a word") from None
        finally:
            log.close()
        assert reply == ("ready",)
        self.server = server

    def _unmount(self) -> None:
        from persistkit.core._powercut import _server  # noqa: PLC0415 - loads libfuse

        if self.server is not None:
            self.server.kill()
            self.server = None
            _server.detach(self.mountpoint)

    def shutdown(self) -> None:
        """Leave no server and no mount behind."""
        with contextlib.suppress(Exception):
            self._unmount()


def main() -> None:
    """Run the manager on the socket whose descriptor is the first argument."""
    channel = socket.socket(fileno=int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the test process decides when to stop
    try:
        import mfusepy  # noqa: F401, PLC0415 - checks for libfuse 3 before any request

        from persistkit.core._powercut import _server  # noqa: F401, PLC0415 - load once
    except (ImportError, OSError) as error:
        _wire.send(channel, ("unavailable", f"{type(error).__name__}: {error}"))
        return
    if not os.path.exists("/dev/fuse"):
        _wire.send(channel, ("unavailable", "/dev/fuse does not exist"))
        return
    _wire.send(channel, ("hello",))
    manager = Manager(channel)
    try:
        manager.run()
    finally:
        manager.shutdown()


if __name__ == "__main__":
    main()
