"""Standard Webhooks signatures: the specification's published vector, rotation, and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from webhooks import signing
from webhooks.signing import SignatureError

# The test vector published with the Standard Webhooks specification (and Svix's docs).
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
EXPECTED = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
AT = datetime.fromtimestamp(TIMESTAMP, UTC)


def vector_headers(signature: str = EXPECTED, timestamp: int = TIMESTAMP) -> dict[str, str]:
    return {"webhook-id": MSG_ID, "webhook-timestamp": str(timestamp), "webhook-signature": signature}


def test_signing_reproduces_the_specification_vector() -> None:
    assert signing.sign([SECRET], MSG_ID, TIMESTAMP, BODY) == EXPECTED
    assert signing.sign(["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], MSG_ID, TIMESTAMP, BODY) == EXPECTED


def test_the_vector_verifies_within_the_tolerance_and_not_outside() -> None:
    assert signing.verify([SECRET], vector_headers(), BODY, AT + timedelta(seconds=299)).webhook_id == MSG_ID
    with pytest.raises(SignatureError) as stale:
        signing.verify([SECRET], vector_headers(), BODY, AT + timedelta(seconds=301))
    assert stale.value.code == "stale_timestamp"
    with pytest.raises(SignatureError) as future:
        signing.verify([SECRET], vector_headers(), BODY, AT - timedelta(seconds=301))
    assert future.value.code == "future_timestamp"


@pytest.mark.parametrize(
    ("headers", "body", "code"),
    [
        (vector_headers(), b'{"test": 2432232315}', "bad_signature"),
        ({**vector_headers(), "webhook-id": "msg_other"}, BODY, "bad_signature"),
        (vector_headers(timestamp=TIMESTAMP + 1), BODY, "bad_signature"),
        (vector_headers(signature="v2," + EXPECTED[3:]), BODY, "bad_signature"),
        (vector_headers(signature="v1,AAAA"), BODY, "bad_signature"),
        ({"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP)}, BODY, "missing_header"),
        ({**vector_headers(), "webhook-timestamp": "yesterday"}, BODY, "bad_timestamp"),
        ({**vector_headers(), "webhook-id": ""}, BODY, "bad_id"),
    ],
)
def test_tampering_is_refused_with_a_named_reason(headers: dict[str, str], body: bytes, code: str) -> None:
    with pytest.raises(SignatureError) as refused:
        signing.verify([SECRET], headers, body, AT)
    assert refused.value.code == code


def test_a_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError):
        signing.verify([signing.new_secret()], vector_headers(), BODY, AT)


def test_rotation_signs_with_both_secrets_and_either_one_verifies() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    now = datetime.now(UTC)
    signed = signing.headers([new, old], "msg_1", now, BODY)
    assert len(signed.signature.split(" ")) == 2
    for secret in (old, new):
        assert signing.verify([secret], signed.as_dict(), BODY, now).webhook_id == "msg_1"
        # ... and so does the specification's reference library, as any receiver would.
        assert Webhook(secret).verify(BODY, signed.as_dict()) == {"test": 2432232314}
    with pytest.raises(SignatureError):
        signing.verify([signing.new_secret()], signed.as_dict(), BODY, now)


def test_the_reference_library_accepts_our_signatures() -> None:
    secret = signing.new_secret()
    now = datetime.now(UTC)
    signed = signing.headers([secret], "msg_ref", now, b'{"type":"task.created"}')
    assert Webhook(secret).verify(b'{"type":"task.created"}', signed.as_dict()) == {"type": "task.created"}


def test_new_secrets_are_random_and_well_formed() -> None:
    a, b = signing.new_secret(), signing.new_secret()
    assert a != b and a.startswith("whsec_")
    signing.check_secret(a)
    with pytest.raises(SignatureError):
        signing.check_secret("whsec_c2hvcnQ=")  # 5 bytes
    with pytest.raises(SignatureError):
        signing.key_of("whsec_not base64!")
