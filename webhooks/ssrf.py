"""Where a webhook may be sent: no loopback, link-local, private or otherwise special addresses.

A subscription's URL is checked when it is saved and again at every delivery, on the addresses
the name resolves to *then*; the connection is made to the address that was checked (the
socket is pinned, so DNS rebinding between the check and the connection cannot redirect it).
On-premise receivers are allowed by naming their host in ``AGGLO_WEBHOOK_ALLOW_HOSTS``
(comma-separated host names or addresses, optionally ``host:port``). Redirects are never
followed by the sender.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

Resolver = Callable[[str, int], list[str]]
MAX_URL = 2000


class UrlRefused(ValueError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to ``address`` and send ``Host: host``."""

    scheme: str
    host: str
    port: int
    path: str  # path and query
    address: str


def system_resolver(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def _special(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return _special(address.ipv4_mapped)
    checks = [
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("shared address space (RFC 6598)", address in ipaddress.ip_network("100.64.0.0/10")),
    ]
    if not address.is_global:
        checks.append(("not globally routable", True))
    return next((name for name, hit in checks if hit), None)


def allowed(allow_hosts: Iterable[str], host: str, port: int) -> bool:
    for entry in allow_hosts:
        entry = entry.strip().lower()
        if not entry:
            continue
        name, _, allowed_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if name == host.lower() and (not allowed_port or allowed_port == str(port)):
            return True
    return False


def check(url: str, allow_hosts: Iterable[str] = (), resolver: Resolver = system_resolver) -> Target:
    """A :class:`Target` for ``url`` or :class:`UrlRefused` saying why it may not be used."""
    if len(url) > MAX_URL:
        raise UrlRefused(url[:80] + "…", f"the URL is longer than {MAX_URL} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UrlRefused(url, "only http and https URLs are allowed")
    if parts.username or parts.password:
        raise UrlRefused(url, "credentials in the URL are not allowed; use the signature instead")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UrlRefused(url, "the URL has no host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise UrlRefused(url, "the port is not a number between 0 and 65535") from None
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    allow = list(allow_hosts)
    try:
        addresses = [ipaddress.ip_address(host)]
    except ValueError:
        try:
            addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in resolver(host, port)]
        except (OSError, UnicodeError) as exc:
            raise UrlRefused(url, f"the host does not resolve: {exc}") from None
    if not addresses:
        raise UrlRefused(url, "the host resolves to no address")
    if not allowed(allow, host, port):
        for address in addresses:
            reason = _special(address)
            if reason is not None:
                raise UrlRefused(
                    url,
                    f"{host} resolves to {address}, a {reason} address; "
                    "allow it in AGGLO_WEBHOOK_ALLOW_HOSTS for an on-premise receiver",
                )
    return Target(parts.scheme, host, port, path, str(addresses[0]))
