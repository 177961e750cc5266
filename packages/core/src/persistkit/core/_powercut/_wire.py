"""Messages between the test process, the manager process and the filesystem server.

Each message is one pickled Python object behind an 8-byte length. The three processes
are all persistkit's own, started from the same interpreter, so pickle is safe here.
"""

from __future__ import annotations

import pickle
import select
import socket
import struct

_HEADER = struct.Struct("!Q")


class PeerGoneError(EOFError):
    """The process at the other end closed the channel (it exited or was killed)."""


def send(channel: socket.socket, message: object) -> None:
    """Send one message."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    channel.sendall(_HEADER.pack(len(body)) + body)


def receive(channel: socket.socket, timeout: float | None = None) -> object:
    """Receive one message; wait at most ``timeout`` seconds for it to start.

    Raises:
        PeerGoneError: the other end closed the channel.
        TimeoutError: nothing arrived in time.
    """
    if timeout is not None:
        ready, _, _ = select.select([channel], [], [], timeout)
        if not ready:
            raise TimeoutError("no answer in time")
    size = _HEADER.unpack(_read(channel, _HEADER.size))[0]
    return pickle.loads(_read(channel, size))


def _read(channel: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = channel.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise PeerGoneError("the other process closed the channel")
        chunks += chunk
    return bytes(chunks)
