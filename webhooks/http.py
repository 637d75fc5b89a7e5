"""One HTTP POST to a checked webhook target: pinned address, a timeout, no redirects.

Built on the standard library's ``http.client`` so that the connection goes to exactly the
address :func:`webhooks.ssrf.check` approved (TLS still verifies the certificate against the
host name). The response body is read up to a small limit: the delivery log keeps an excerpt.
Redirects are never followed: a 3xx is just a status (a failed attempt).

Connections are kept alive and reused per destination — the same scheme, *checked address*,
port and host name, so a connection never serves an address the SSRF check did not approve
for that delivery. An idle connection the receiver has closed is noticed before reuse; a
reused one that fails before any answer is retried once on a new connection (the receiver
then may see the message twice, with the same ``webhook-id``, which is what it dedupes on).
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from .ssrf import Target

EXCERPT_BYTES = 2048
USER_AGENT = "agglo-webhooks/1.0"
IDLE_SECONDS = 30.0  # an idle kept-alive connection older than this is closed, not reused
MAX_IDLE_PER_DESTINATION = 32


@dataclass(frozen=True)
class HttpResult:
    status: int | None  # None: no HTTP answer (network error, timeout)
    latency_ms: float
    excerpt: str
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = target.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, target: Target, timeout: float, context: ssl.SSLContext) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._address = target.address
        self._tls = context

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


_Key = tuple[str, str, int, str, int]


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """True when an idle connection cannot be reused: closed, or the peer sent something (EOF)."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
        return bool(readable)
    except (OSError, ValueError):
        return True


class ConnectionPool:
    """Idle kept-alive connections by destination; a connection is used by one thread at a time."""

    def __init__(self, max_idle: int = MAX_IDLE_PER_DESTINATION, idle_seconds: float = IDLE_SECONDS) -> None:
        self.max_idle = max_idle
        self.idle_seconds = idle_seconds
        self._idle: dict[_Key, list[tuple[http.client.HTTPConnection, float]]] = {}
        self._lock = threading.Lock()

    def take(self, key: _Key) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                connection, since = idle.pop()
            if now - since <= self.idle_seconds and not _dropped(connection):
                return connection
            connection.close()

    def give(self, key: _Key, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.max_idle:
                idle.append((connection, time.monotonic()))
                return
        connection.close()

    def clear(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection, _since in connections:
                connection.close()


POOL = ConnectionPool()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _new_connection(target: Target, timeout: float, tls: ssl.SSLContext | None) -> http.client.HTTPConnection:
    if target.scheme == "https":
        return _PinnedHTTPSConnection(target, timeout, tls or ssl.create_default_context())
    return _PinnedHTTPConnection(target, timeout)


# A reused connection that fails like this got no answer: the receiver had closed it.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


def post(
    target: Target,
    body: bytes,
    headers: dict[str, str],
    timeout: float,
    tls: ssl.SSLContext | None = None,
    pool: ConnectionPool | None = POOL,
) -> HttpResult:
    """POST ``body``; never raises for network trouble (it becomes ``error``)."""
    key: _Key = (target.scheme, target.address, target.port, target.host.lower(), id(tls) if tls else 0)
    all_headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Content-Length": str(len(body)),
        **headers,
    }
    started = time.perf_counter()
    reused = pool.take(key) if pool is not None else None
    while True:
        connection = reused or _new_connection(target, timeout, tls)
        try:
            if reused is not None and connection.sock is not None:
                connection.sock.settimeout(timeout)
            connection.request("POST", target.path, body=body, headers=all_headers)
            response = connection.getresponse()
            excerpt = response.read(EXCERPT_BYTES).decode("utf-8", "replace")
            latency = (time.perf_counter() - started) * 1000
            result = HttpResult(
                response.status, latency, excerpt, None, _retry_after(response.getheader("Retry-After"))
            )
            # Reusable only when the whole answer was read and the receiver keeps the connection.
            if pool is not None and response.isclosed() and not response.will_close:
                pool.give(key, connection)
            else:
                connection.close()
            return result
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            if reused is not None and isinstance(exc, _STALE):
                reused = None  # once more, on a new connection
                continue
            latency = (time.perf_counter() - started) * 1000
            return HttpResult(None, latency, "", f"{type(exc).__name__}: {exc}"[:500])
