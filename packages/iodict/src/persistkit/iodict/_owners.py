"""Who holds a claim: a token naming this process, and whether such a process still runs.

A token is ``<boot>.<pid namespace>.<pid>.<start time>``. The start time (field 22 of
``/proc/<pid>/stat``, in clock ticks since boot) tells a reused pid from the process that
took the claim, the boot id tells a process of an earlier boot, and the pid namespace keeps
a process in another container from being looked up by a pid that means something else
here. Where the answer cannot be known (another pid namespace, no ``/proc``), `owner_alive`
says None and the claim's lease alone decides.
"""

from __future__ import annotations

import os

from persistkit.iodict._meta import BOOT, BOOT_IS_EXACT

_BOOT_TAG = BOOT.replace("-", "")[:12] if BOOT_IS_EXACT else ""
_tokens: dict[int, str] = {}


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """Return the start time of process ``pid``, or None when it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            line = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ")".
    fields = line[line.rfind(b")") + 2 :].split()
    if len(fields) <= 19 or fields[0] in (b"Z", b"X"):
        return None  # a killed process waiting to be reaped will never settle its claims
    return fields[19].decode()


_NAMESPACE = _pid_namespace()


def current_owner() -> str:
    """Return the token of this process (computed once per process, fork included)."""
    pid = os.getpid()
    token = _tokens.get(pid)
    if token is None:
        start = _start_time(pid) if _BOOT_TAG and _NAMESPACE else None
        token = f"{_BOOT_TAG}.{_NAMESPACE}.{pid}.{start or ''}"
        _tokens[pid] = token
    return token


def _local_pid(token: str) -> int | None:
    """The pid in ``token`` if it names a process of this boot and pid namespace."""
    parts = token.split(".")
    if len(parts) != 4 or not parts[2].isdigit() or not _BOOT_TAG:
        return None
    boot, namespace, pid, _ = parts
    if boot != _BOOT_TAG or namespace != _NAMESPACE:
        return None
    return int(pid)


def owner_gone(token: str) -> bool:
    """Say quickly (one ``kill(pid, 0)``) whether the process of ``token`` has exited.

    True only when it surely has; a running process, a zombie and a reused pid all answer
    False here: `owner_alive` tells those apart.
    """
    pid = _local_pid(token)
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def owner_alive(token: str) -> bool | None:
    """Say whether the process named by ``token`` is running.

    Returns:
        True or False when it can be told; None when it cannot (the token comes from
        another pid namespace, or this system has no ``/proc``).
    """
    if token == current_owner():
        return True
    parts = token.split(".")
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    boot, namespace, pid, start = parts
    if not (boot and start and _BOOT_TAG):
        return None
    if boot != _BOOT_TAG:
        return False  # a process of an earlier boot
    if namespace != _NAMESPACE:
        return None
    return _start_time(int(pid)) == start
