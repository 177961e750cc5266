"""Pending changes are synced at exit, on an uncaught exception, on SIGTERM and SIGINT.

Each case runs a real Python program in a subprocess and sends it real signals; the program
says "ready" on stdout once its unsynced change is made, so no sleeping is needed.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pytest

from persistkit.tracker import POD, Tracker

# A program started from a non-interactive shell's background job inherits SIGINT ignored,
# and persistkit rightly leaves ignored signals ignored; the programs here start as a
# foreground Python program does, with Python's own SIGINT handler.
PRELUDE = """
import os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
from persistkit import tracker as tastypy
"""


def start(tmp_path, *parts):
    script = "".join(textwrap.dedent(part) for part in (PRELUDE, *parts))
    return subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_ready(proc):
    line = proc.stdout.readline()
    assert line == "ready\n", line + proc.stderr.read()


def stored(tmp_path, name="my.pod"):
    return dict(POD(tmp_path / name, clone=False).items())


WAIT_FOR_SIGNAL = """
my_pod = tastypy.POD('my.pod')
my_pod['foo'] = 'bar'
print('ready', flush=True)
sys.stdin.readline()   # blocks until the signal ends the program
print('not killed', flush=True)
"""


def test_normal_exit_syncs(tmp_path):
    # tastypy's first example, with only the import changed.
    proc = start(
        tmp_path,
        """
        from persistkit.tracker import POD
        my_pod = POD('path/to/my.pod')
        my_pod['foo'] = 'bar'
        exit()
        """,
    )
    assert proc.wait() == 0, proc.stderr.read()
    assert POD(tmp_path / "path/to/my.pod", clone=False)["foo"] == "bar"


def test_uncaught_exception_syncs(tmp_path):
    proc = start(
        tmp_path,
        """
        my_pod = tastypy.Tracker('my.pod')
        my_pod.add('task')
        my_pod.mark_done('task')
        raise RuntimeError('boom')
        """,
    )
    assert proc.wait() == 1
    assert "boom" in proc.stderr.read()
    assert stored(tmp_path)["task"]["_done"] is True


def test_sigterm_syncs_and_the_process_still_dies_by_sigterm(tmp_path):
    proc = start(tmp_path, WAIT_FOR_SIGNAL)
    wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == -signal.SIGTERM
    assert stored(tmp_path) == {"foo": "bar"}


def test_sigint_syncs_and_raises_keyboard_interrupt(tmp_path):
    proc = start(tmp_path, WAIT_FOR_SIGNAL)
    wait_ready(proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait() == -signal.SIGINT  # Python's exit after an uncaught KeyboardInterrupt
    assert "KeyboardInterrupt" in proc.stderr.read()
    assert stored(tmp_path) == {"foo": "bar"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_application_handler_installed_first_is_chained(tmp_path, signum):
    # The application's handler ends the process with os._exit, which runs no cleanup at
    # all: the data is there only because persistkit synced before calling it.
    proc = start(
        tmp_path,
        f"""
        def handler(signum, frame):
            with open('handled', 'w') as f:
                f.write(str(signum))
            os._exit(7)
        signal.signal({int(signum)}, handler)
        """,
        WAIT_FOR_SIGNAL,
    )
    wait_ready(proc)
    proc.send_signal(signum)
    assert proc.wait() == 7
    assert (tmp_path / "handled").read_text() == str(int(signum))
    assert stored(tmp_path) == {"foo": "bar"}


def test_application_handler_that_returns_keeps_the_program_running(tmp_path):
    proc = start(
        tmp_path,
        """
        calls = []
        signal.signal(signal.SIGTERM, lambda s, f: calls.append(s))
        """,
        WAIT_FOR_SIGNAL.replace(
            "print('not killed', flush=True)",
            "print('not killed', calls, flush=True)\nmy_pod['later'] = 1",
        ),
    )
    wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    # The handler ran (and the store was synced) but the program goes on until we let it.
    out, err = proc.communicate("go\n")
    assert proc.returncode == 0, err
    assert out == f"not killed [{int(signal.SIGTERM)}]\n"
    assert stored(tmp_path) == {"foo": "bar", "later": 1}


def test_application_handler_installed_later_still_gets_data_synced_on_sys_exit(tmp_path):
    proc = start(
        tmp_path,
        """
        my_pod = tastypy.POD('my.pod')
        my_pod['foo'] = 'bar'
        signal.signal(signal.SIGTERM, lambda s, f: sys.exit(5))
        print('ready', flush=True)
        sys.stdin.readline()
        """,
    )
    wait_ready(proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() == 5
    assert stored(tmp_path) == {"foo": "bar"}


def test_ignored_signal_stays_ignored(tmp_path):
    proc = start(
        tmp_path,
        """
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        """,
        WAIT_FOR_SIGNAL,
    )
    wait_ready(proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate("go\n")
    assert proc.returncode == 0, err
    assert out == "not killed\n"
    assert stored(tmp_path) == {"foo": "bar"}


def test_signal_during_an_operation_is_handled_when_it_ends(tmp_path):
    # A signal that arrives while a store operation is half done must not sync a half-updated
    # state: it is noted and re-sent when the operation ends. The operation is simulated by
    # entering the guard the store's methods use, then sending a real SIGTERM.
    proc = start(
        tmp_path,
        """
        from persistkit.tracker import _exit_hooks
        my_pod = tastypy.POD('my.pod')
        my_pod['foo'] = 'bar'
        _exit_hooks.GUARD.depth += 1
        os.kill(os.getpid(), signal.SIGTERM)
        print('deferred', _exit_hooks.GUARD.deferred, flush=True)
        my_pod['second'] = 2
        _exit_hooks.GUARD.depth -= 1
        _exit_hooks.operation_ended()
        print('not reached', flush=True)
        """,
    )
    out, _err = proc.communicate()
    assert proc.returncode == -signal.SIGTERM
    assert out == f"deferred [{int(signal.SIGTERM)}]\n"
    assert stored(tmp_path) == {"foo": "bar", "second": 2}


def test_forked_child_does_not_sync_the_parents_data(tmp_path):
    proc = start(
        tmp_path,
        """
        my_pod = tastypy.POD('my.pod')
        my_pod['parent'] = 1
        pid = os.fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGTERM)
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        print(os.listdir('my.pod'), flush=True)
        os._exit(0)
        """,
    )
    out, err = proc.communicate()
    assert proc.returncode == 0, err
    assert "0.json" not in out


def test_ctrl_c_during_the_exit_sync_prints_no_traceback_and_loses_nothing(tmp_path):
    # A real SIGINT, sent by the program to itself at the moment its exit sync checkpoints
    # (a Ctrl-C cannot be timed there from outside): the sync finishes, and the program ends
    # with its own status and without a traceback.
    proc = start(
        tmp_path,
        """
        from persistkit.tracker._state import StoreState
        checkpoint = StoreState.checkpoint
        def interrupted(self, **options):
            if not hasattr(interrupted, "sent"):
                interrupted.sent = True
                os.kill(os.getpid(), signal.SIGINT)
            return checkpoint(self, **options)
        StoreState.checkpoint = interrupted
        tracker = tastypy.Tracker("job")
        tracker.add_many(range(10))
        tracker.mark_done(3)
        """,
    )
    _out, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (0, "")
    tracker = Tracker(tmp_path / "job", clone=False)
    assert len(tracker) == 10 and tracker.done(3)
    tracker.close()
