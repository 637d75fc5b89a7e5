"""Webhook URLs that would reach the server's own network are refused, unless allowed by name."""

from __future__ import annotations

import pytest

from webhooks.ssrf import UrlRefused, allowed, check


def fake(mapping: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int) -> list[str]:
        if host not in mapping:
            raise OSError(f"unknown host {host}")
        return mapping[host]

    return resolve


PUBLIC = fake({"receiver.example": ["93.184.216.34"], "rebind.example": ["93.184.216.34", "127.0.0.1"]})


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://172.16.0.1/hook",
        "http://192.168.1.10/hook",
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://100.64.0.1/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[fe80::1]/hook",
        "http://224.0.0.1/hook",
        "http://rebind.example/hook",  # one of its addresses is loopback
    ],
)
def test_internal_addresses_are_refused(url: str) -> None:
    resolver = fake({"localhost": ["127.0.0.1", "::1"], "rebind.example": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(UrlRefused) as refused:
        check(url, resolver=resolver)
    assert "address" in refused.value.reason


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://receiver.example/x", "only http and https"),
        ("file:///etc/passwd", "only http and https"),
        ("gopher://receiver.example/", "only http and https"),
        ("http://user:pw@receiver.example/", "credentials"),
        ("http:///nohost", "no host"),
        ("http://unknown.example/", "does not resolve"),
        ("http://receiver.example:99999/", "port"),
        ("http://receiver.example/" + "a" * 2100, "longer than"),
    ],
)
def test_malformed_or_unsupported_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check(url, resolver=PUBLIC)
    assert reason in refused.value.reason


def test_a_public_receiver_is_accepted_and_pinned_to_the_checked_address() -> None:
    target = check("https://receiver.example/hooks/agglo?x=1", resolver=PUBLIC)
    assert (target.scheme, target.host, target.port, target.path, target.address) == (
        "https",
        "receiver.example",
        443,
        "/hooks/agglo?x=1",
        "93.184.216.34",
    )


def test_an_allowed_on_premise_host_may_be_private() -> None:
    resolver = fake({"sed.minobr.local": ["10.0.0.5"]})
    target = check("http://sed.minobr.local:8080/in", ["sed.minobr.local:8080"], resolver)
    assert target.address == "10.0.0.5"
    with pytest.raises(UrlRefused):
        check("http://sed.minobr.local:9090/in", ["sed.minobr.local:8080"], resolver)
    assert allowed(["127.0.0.1"], "127.0.0.1", 5000)
    assert not allowed(["127.0.0.1:80"], "127.0.0.1", 5000)
