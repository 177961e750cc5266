"""Syncing every open store when the program ends: normal exit, uncaught exception, signals.

- Normal exit and an uncaught exception both run `atexit` handlers, so one handler covers them.
- SIGTERM's default action kills the process without any Python cleanup, and an application's
  SIGINT handler may exit with ``os._exit``; so persistkit installs a handler for both that
  syncs, then hands the signal to whatever was installed before it (a Python handler is
  called; the default action is restored and the signal re-sent, so the process still dies
  *by* the signal and its parent sees the usual status). An ignored signal stays ignored.
- A signal can arrive in the middle of a store operation, between two bytecodes of ours. Syncing
  then would write a half-updated state, so while an operation runs the signal is only noted,
  and re-sent to the process as soon as the outermost operation ends.
- Stores are synced only by the process that opened them: a child made by ``fork`` inherits
  the parent's objects (and these handlers) but must not write the parent's unsynced data.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Protocol

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ExitSyncable(Protocol):
    """What the exit hooks need from an open store."""

    def exit_sync(self) -> str | None:
        """Write pending changes (at exit, on SIGTERM/SIGINT); say what failed, never raise."""


class _Guard:
    """Counts running store operations and the signals that arrived during them."""

    depth = 0
    deferred: list[int] = []  # noqa: RUF012 - one process-wide list, on purpose


GUARD = _Guard()
_registry: dict[int, tuple[int, ExitSyncable]] = {}
_previous: dict[int, Callable[[int, FrameType | None], object] | int | None] = {}
_registry_guard = threading.RLock()
_atexit_installed: list[bool] = []  # a list, so registering needs no global statement


def operation_ended() -> None:
    """Re-send a signal that arrived during the operation that just ended."""
    if GUARD.deferred and GUARD.depth == 0:
        signum = GUARD.deferred.pop()
        GUARD.deferred.clear()
        os.kill(os.getpid(), signum)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGTERM and SIGINT until the block ends, so no sync sees a half-made change."""
    GUARD.depth += 1
    try:
        yield
    finally:
        GUARD.depth -= 1
        operation_ended()


def register(store: ExitSyncable) -> None:
    """Sync ``store`` at exit and on SIGTERM/SIGINT, until `unregister`."""
    with _registry_guard:
        _registry[id(store)] = (os.getpid(), store)
        if not _atexit_installed:
            atexit.register(_sync_at_exit)
            _atexit_installed.append(True)
    install_signal_handlers()


def unregister(store: ExitSyncable) -> None:
    """Stop syncing ``store`` at exit."""
    with _registry_guard:
        _registry.pop(id(store), None)


def sync_all() -> None:
    """Sync and checkpoint every store this process opened (what exit and the signals call).

    Nothing raises: at exit there is no caller left to catch an error. A store that cannot be
    written gets one line on standard error naming it and saying what was not written (its
    changes since the last sync, lost; or only the checkpoint, with nothing lost), and the
    other stores are still synced. The exit status is left as the program set it.
    """
    pid = os.getpid()
    with _registry_guard:
        stores = [store for owner, store in _registry.values() if owner == pid]
    # A signal arriving now (a second Ctrl-C) waits until every store is written: handled
    # at once, it would sync again from inside this sync, or end it half-way.
    with signals_deferred():
        for store in stores:
            try:
                message = store.exit_sync()
            except Exception as error:  # a bug of ours: one line, never a traceback at exit
                message = f"could not sync a store at exit: {type(error).__name__}: {error}"
            if message:
                print(f"persistkit.tracker: {message}", file=sys.stderr, flush=True)


def _sync_at_exit() -> None:
    """The ``atexit`` handler: `sync_all`, and a Ctrl-C during it ends nothing but the wait.

    The program is ending already; a KeyboardInterrupt raised once the stores are written
    would only print a traceback from the exit handler.
    """
    with contextlib.suppress(KeyboardInterrupt):
        sync_all()


def install_signal_handlers() -> None:
    """Put the syncing handler in front of SIGTERM's and SIGINT's current handlers.

    Called each time a store is opened, so a handler the application installed after the
    first store is wrapped too. Does nothing outside the main thread (Python only allows
    signal handlers to be set there) and leaves ignored signals ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in _SIGNALS:
        current = signal.getsignal(signum)
        if current is _on_signal or current == signal.SIG_IGN:
            continue
        _previous[signum] = current
        signal.signal(signum, _on_signal)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    if GUARD.depth:
        GUARD.deferred.append(signum)
        return
    sync_all()
    previous = _previous.get(signum)
    if callable(previous):
        previous(signum, frame)
        return
    if previous == signal.SIG_IGN:  # pragma: no cover - ignored signals are never wrapped
        return
    # The default action (or a handler set outside Python): restore it and re-send, so the
    # process ends the way it would have without persistkit.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
