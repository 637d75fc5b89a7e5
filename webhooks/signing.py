"""Standard Webhooks signatures (https://www.standardwebhooks.com/), both ways.

A secret is ``whsec_`` + base64 of 24-64 random bytes; the key is those bytes. A message is
signed as ``HMAC-SHA256(key, f"{webhook_id}.{timestamp}.{body}")``, sent base64-encoded as
``v1,<signature>`` in the ``webhook-signature`` header, with ``webhook-id`` and
``webhook-timestamp`` (Unix seconds). Several signatures are separated by spaces: during a
secret rotation we sign with both the new and the old secret, so a receiver holding either
one accepts the message. Receivers verify with any Standard Webhooks library.

Verification checks the timestamp against a tolerance (5 minutes either way by default), then
compares in constant time against every ``v1`` signature offered.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

PREFIX = "whsec_"
TOLERANCE_SECONDS = 5 * 60
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


class SignatureError(ValueError):
    """Why a message's signature was not accepted (the inbound endpoint answers 401 with it)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def new_secret(size: int = 32) -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(size)).decode("ascii")


def key_of(secret: str) -> bytes:
    """The HMAC key of a ``whsec_`` secret (the prefix is optional, as the libraries allow)."""
    raw = secret[len(PREFIX) :] if secret.startswith(PREFIX) else secret
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("bad_secret", "the secret is not base64 after its whsec_ prefix") from exc
    if not key:
        raise SignatureError("bad_secret", "the secret is empty")
    return key


def check_secret(secret: str) -> None:
    """Refuse secrets too short or too long to be safe (24-64 bytes, as the specification advises)."""
    size = len(key_of(secret))
    if not MIN_KEY_BYTES <= size <= MAX_KEY_BYTES:
        raise SignatureError("bad_secret", f"the secret must hold {MIN_KEY_BYTES}-{MAX_KEY_BYTES} bytes, not {size}")


def _signature(key: bytes, webhook_id: str, timestamp: int, body: bytes) -> str:
    content = webhook_id.encode("utf-8") + b"." + str(timestamp).encode("ascii") + b"." + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode("ascii")


def sign(secrets_: Iterable[str], webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,`` entry per secret, space-separated."""
    entries = [f"v1,{_signature(key_of(s), webhook_id, timestamp, body)}" for s in secrets_]
    if not entries:
        raise SignatureError("bad_secret", "no secret to sign with")
    return " ".join(entries)


@dataclass(frozen=True)
class SignedHeaders:
    webhook_id: str
    timestamp: int
    signature: str

    def as_dict(self) -> dict[str, str]:
        return {
            "webhook-id": self.webhook_id,
            "webhook-timestamp": str(self.timestamp),
            "webhook-signature": self.signature,
        }


def headers(secrets_: Iterable[str], webhook_id: str, at: datetime, body: bytes) -> SignedHeaders:
    timestamp = int(at.timestamp())
    return SignedHeaders(webhook_id, timestamp, sign(secrets_, webhook_id, timestamp, body))


def _header(values: Mapping[str, str], name: str) -> str:
    for key, value in values.items():
        if key.lower() == name:
            return value
    raise SignatureError("missing_header", f"the {name} header is missing")


def verify(
    secrets_: Iterable[str],
    request_headers: Mapping[str, str],
    body: bytes,
    now: datetime,
    tolerance: int = TOLERANCE_SECONDS,
) -> SignedHeaders:
    """Check a received message; return its id and timestamp, or raise :class:`SignatureError`."""
    webhook_id = _header(request_headers, "webhook-id").strip()
    raw_timestamp = _header(request_headers, "webhook-timestamp").strip()
    offered = _header(request_headers, "webhook-signature")
    if not webhook_id or len(webhook_id) > 200:
        raise SignatureError("bad_id", "webhook-id must be 1-200 characters")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureError("bad_timestamp", "webhook-timestamp is not an integer") from None
    age = int(now.timestamp()) - timestamp
    if age > tolerance:
        raise SignatureError("stale_timestamp", f"the message is {age} s old; the tolerance is {tolerance} s")
    if -age > tolerance:
        raise SignatureError("future_timestamp", f"the message is dated {-age} s in the future")
    keys = [key_of(s) for s in secrets_]
    candidates = [part.split(",", 1)[1] for part in offered.split() if part.startswith("v1,")]
    for key in keys:
        expected = _signature(key, webhook_id, timestamp, body)
        for candidate in candidates:
            if hmac.compare_digest(expected.encode("ascii"), candidate.encode("ascii", "replace")):
                return SignedHeaders(webhook_id, timestamp, offered)
    raise SignatureError("bad_signature", "no v1 signature matches the secret")
