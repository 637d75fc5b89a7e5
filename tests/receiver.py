"""A real HTTP receiver of webhooks on loopback for tests and the webhook benchmark.

It records every request (headers, body, the time it arrived, the status it answered) and
verifies each one with ``standardwebhooks`` — the specification's reference library — against
the secrets it is given, so a test proves that a receiver can check our deliveries with an
off-the-shelf library. It can be told to answer another status (503, 410, 500, ...), to be
slow, to answer ``302`` with a ``Location`` (which a sender must not follow), or to be down:
``down()`` closes the listening socket *and* every open keep-alive connection, so connections
are refused; ``up()`` listens again on the same port.

HTTP/1.1 with keep-alive, one thread per connection (``ThreadingHTTPServer``)::

    with Receiver() as receiver:
        receiver.secrets = [secret]
        ... deliver to receiver.url() ...
        receiver.wait_for(lambda r: len(r.ok) >= 10)
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

HOOK_PATH = "/hook"


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    at: float  # time.time() when it arrived
    status: int  # what the receiver answered
    verified: tuple[int, ...]  # indexes of the receiver's secrets the reference library accepted
    error: str | None  # why no secret verified (the reference library's message)

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    @property
    def signatures(self) -> list[str]:
        return self.headers.get("webhook-signature", "").split()

    @property
    def event(self) -> dict[str, Any]:
        return dict(json.loads(self.body))

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def arrived(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], receiver: Receiver) -> None:
        self.receiver = receiver
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # connections cut by down() or by a killed sender are expected, not test failures


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # The status line and headers, then the body, are two writes: without NODELAY a kept-alive
        # connection waits for the sender's delayed ACK (40 ms) between them.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.receiver._opened(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.receiver._closed(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        receiver = self.server.receiver
        status, delay, location = receiver._answer()
        if len(body) < length:
            status = 400  # the sender died mid-request: a truncated body is no delivery
        if delay:
            time.sleep(delay)
        headers = {k.lower(): v for k, v in self.headers.items()}
        verified, error = receiver._verify(body, headers)
        receiver._record(Received(self.command, self.path, headers, body, time.time(), status, verified, error))
        reply = json.dumps({"status": status}).encode()
        self.send_response(status)
        if location is not None and 300 <= status < 400:
            self.send_header("Location", location)
        if status == 503 and receiver.retry_after is not None:
            self.send_header("Retry-After", str(receiver.retry_after))
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = _handle
    do_GET = _handle


@dataclass
class Receiver:
    """The loopback receiver; a context manager (``start()``/``stop()``)."""

    secrets: Sequence[str] = ()
    status: int = 200
    delay: float = 0.0
    redirect_to: str | None = None  # with status 3xx: the Location header
    retry_after: int | None = None  # with status 503: the Retry-After header
    port: int = 0
    # A per-request rule: called with the request number (1-based), returns a status or None.
    rule: Callable[[int], int | None] | None = None
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _server: _Server | None = field(default=None, init=False, repr=False)
    _thread: threading.Thread | None = field(default=None, init=False, repr=False)
    _connections: set[socket.socket] = field(default_factory=set, init=False, repr=False)
    _count: int = field(default=0, init=False, repr=False)
    _changed: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._changed = threading.Condition(self._lock)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> Receiver:
        self._server = _Server(("127.0.0.1", self.port), self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="receiver", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        self._cut_connections()
        if thread is not None:
            thread.join(5)

    def down(self) -> None:
        """Refuse connections (the port stays ours: ``up()`` listens on it again)."""
        self.stop()

    def up(self) -> None:
        deadline = time.monotonic() + 5
        while True:
            try:
                self.start()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def is_up(self) -> bool:
        return self._server is not None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str = HOOK_PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    # -- what the handler asks ----------------------------------------------------------------
    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _cut_connections(self) -> None:
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _answer(self) -> tuple[int, float, str | None]:
        with self._lock:
            self._count += 1
            number = self._count
            status = self.status
            if self.rule is not None:
                status = self.rule(number) or status
            return status, self.delay, self.redirect_to

    def _verify(self, body: bytes, headers: dict[str, str]) -> tuple[tuple[int, ...], str | None]:
        verified: list[int] = []
        error: str | None = None
        for index, secret in enumerate(list(self.secrets)):
            try:
                Webhook(secret).verify(body, headers)
            except WebhookVerificationError as exc:
                error = str(exc)
            else:
                verified.append(index)
        if not self.secrets:
            error = "no secret to verify with"
        return tuple(verified), None if verified else error

    def _record(self, item: Received) -> None:
        with self._changed:
            self.received.append(item)
            self._changed.notify_all()

    # -- what tests read -----------------------------------------------------------------------
    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    @property
    def ok(self) -> list[Received]:
        """The requests answered 2xx (delivered), in arrival order."""
        return [r for r in self.snapshot() if r.ok]

    def delivered_ids(self) -> list[str]:
        return [r.webhook_id for r in self.ok]

    def duplicates(self) -> dict[str, int]:
        return {k: n for k, n in Counter(self.delivered_ids()).items() if n > 1}

    def clear(self) -> None:
        with self._lock:
            self.received.clear()

    def wait_for(self, condition: Callable[[Receiver], bool], timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not condition(self):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what or 'the receiver'}")
            with self._changed:
                self._changed.wait(min(left, 0.05))


def received_in_order(items: Sequence[Received]) -> dict[str | None, list[str]]:
    """The delivered event ids per instance, in arrival order (first arrival of each id)."""
    order: dict[str | None, list[str]] = {}
    for item in items:
        if not item.ok:
            continue
        instance = (item.event.get("instance") or {}).get("id")
        ids = order.setdefault(instance, [])
        if item.webhook_id not in ids:
            ids.append(item.webhook_id)
    return order
