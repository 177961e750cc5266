"""A fault-injecting HTTP proxy in front of a real S3 server, for the faults no server gives on cue.

Every request goes to the real server (re-signed for it with the same credentials); on
request, the proxy changes what happens at the HTTP boundary: it answers a request with a 5xx
or 409 *after* the server applied it (the reply lost on the way back), or *before* sending it
on, or drops the connection after forwarding, or removes ``If-Match`` from DELETE requests (a
server that ignores the condition, as Ceph RGW does). These are injected faults, and the tests
that use them say so; server crashes are tested by killing the real server.
"""

from __future__ import annotations

import contextlib
import http.client
import http.server
import socket
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from persistkit.core._seaweed import S3Endpoint

_HOP_HEADERS = frozenset(
    {
        "authorization",
        "x-amz-date",
        "x-amz-content-sha256",
        "host",
        "content-length",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "expect",
    }
)


@dataclass
class Fault:
    """One planned fault: which requests it hits, and what happens to them.

    Attributes:
        method: ``"PUT"``, ``"DELETE"``, ``"GET"``, ``"HEAD"``.
        when: ``"after"`` (forward, then answer ``status``), ``"before"`` (answer ``status``
            without forwarding) or ``"drop"`` (forward, then close the connection unanswered).
        status: the status answered (ignored for ``"drop"``).
        conditional_only: hit only requests with ``If-Match`` or ``If-None-Match``.
        count: how many matching requests to hit.
        then: called once the server has (or, for ``"before"``, has not) seen the request and
            before the client gets its answer: another writer acting in that gap.
    """

    method: str
    when: str = "after"
    status: int = 503
    conditional_only: bool = True
    count: int = 1
    then: Callable[[], object] | None = None


class S3FaultProxy:
    """Forward S3 requests to ``upstream``, injecting the faults planned with `plan`.

    Args:
        upstream: the real server.

    Attributes:
        endpoint: where clients connect (same credentials as ``upstream``).
        hits: the faults injected so far, as ``(method, path, when)`` tuples.
        forwarded: every request the server received, as ``(method, path, conditional)``.
        conditions: the ``If-Match`` and ``If-None-Match`` values of every request, as sent.
        strip_if_match_on_delete: remove ``If-Match`` from every DELETE (off by default).
    """

    def __init__(self, upstream: S3Endpoint) -> None:
        self.upstream = upstream
        self.strip_if_match_on_delete = False
        self.hits: list[tuple[str, str, str]] = []
        self.forwarded: list[tuple[str, str, bool]] = []
        self.conditions: list[str] = []
        self._connections: set[socket.socket] = set()
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        port = self._server.server_address[1]
        self.endpoint = S3Endpoint(
            f"http://127.0.0.1:{port}", upstream.access_key, upstream.secret_key, upstream.region
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def plan(self, fault: Fault) -> None:
        """Add a fault; it hits the next ``fault.count`` matching requests."""
        with self._lock:
            self._faults.append(fault)

    def close(self) -> None:
        """Stop serving, and end the connections clients keep open (and their threads)."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._thread.join()

    def __enter__(self) -> S3FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _take(self, method: str, conditional: bool) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and (conditional or not fault.conditional_only):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        from botocore.auth import S3SigV4Auth  # noqa: PLC0415 - tests only
        from botocore.awsrequest import AWSRequest  # noqa: PLC0415 - tests only
        from botocore.credentials import Credentials  # noqa: PLC0415 - tests only

        upstream = urllib.parse.urlsplit(self.upstream.endpoint_url)
        kept = {name: value for name, value in headers.items() if name.lower() not in _HOP_HEADERS}
        if method == "DELETE" and self.strip_if_match_on_delete:
            kept = {name: value for name, value in kept.items() if name.lower() != "if-match"}
        request = AWSRequest(
            method=method, url=f"{self.upstream.endpoint_url}{path}", data=body, headers=kept
        )
        credentials = Credentials(self.upstream.access_key, self.upstream.secret_key)
        S3SigV4Auth(credentials, "s3", self.upstream.region).add_auth(request)
        connection = http.client.HTTPConnection(upstream.netloc, timeout=60)
        try:
            connection.request(method, path, body=body, headers=dict(request.headers.items()))
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                with contextlib.suppress(OSError):
                    super().finish()

            def log_message(self, format: str, *args: Any) -> None:
                del format, args  # quiet: the test report is the place for findings

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {name: value for name, value in self.headers.items()}
                sent = [
                    value
                    for name, value in headers.items()
                    if name.lower() in ("if-match", "if-none-match")
                ]
                conditional = bool(sent)
                proxy.conditions.extend(sent)
                fault = proxy._take(self.command, conditional)
                if fault is not None:
                    proxy.hits.append((self.command, self.path, fault.when))
                if fault is not None and fault.when == "before":
                    if fault.then is not None:
                        fault.then()
                    self._reply(fault.status, [], _error_body(fault.status))
                    return
                proxy.forwarded.append((self.command, self.path, conditional))
                status, reply_headers, reply = proxy._forward(
                    self.command, self.path, headers, body
                )
                if fault is not None and fault.then is not None:
                    fault.then()
                if fault is None:
                    self._reply(status, reply_headers, reply)
                elif fault.when == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(2)
                else:
                    self._reply(fault.status, [], _error_body(fault.status))

            def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_PUT = do_DELETE = do_HEAD = do_POST = _serve

        return Handler


def _error_body(status: int) -> bytes:
    code = {409: "ConditionalRequestConflict", 500: "InternalError", 503: "SlowDown"}.get(
        status, "InternalError"
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>injected by the test proxy</Message></Error>"
    ).encode()
