"""``POST /webhooks/in/<source>``: signed events from outside systems that move processes.

The Ministry's document system (source ``sed``) registers a contract: its ``contract.registered``
event, signed per Standard Webhooks with the source's secret, completes the registration task of
the contract it names by business key. Every refusal — too big, unknown or disabled source, bad
or stale or future signature, missing headers, malformed JSON or shape — is a clear 4xx problem
document and moves nothing: :func:`db_state` fingerprints every table before and after (the
instance, the messages, the audit trail). A replayed ``webhook-id`` is a duplicate that moves
nothing. The endpoint needs no session and no API token (the signature is the credential), and
so no CSRF token either. On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import io
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from engine.clock import VirtualClock
from engine.engine import Engine
from engine.records import InstanceStatus, MessageStatus, TaskQuery
from tests.acceptance.conftest import Client
from tests.acceptance.test_api import REGISTERED, changed_tables, db_state, fields_of, problem, to_registration
from tests.conftest import ADMIN, COORDINATOR
from webhooks import signing

BUSINESS_KEY = "ПД-ТРО-2026"
EVENT = {"type": "contract.registered", "correlation": {"business_key": BUSINESS_KEY}, "data": REGISTERED}
MAX_BODY = 256 * 1024


class Sender:
    """The document system: signs what it posts with its secret, as a Standard Webhooks library does."""

    def __init__(self, app: Flask, secret: str, source: str = "sed") -> None:
        self.app = app
        self.secret = secret
        self.source = source
        self.clock: VirtualClock = app.extensions["agglo.engine"].clock

    def headers(
        self, body: bytes, webhook_id: str | None = None, at: datetime | None = None, secret: str | None = None
    ) -> dict[str, str]:
        signed = signing.headers(
            [secret or self.secret], webhook_id or f"msg_{uuid.uuid4().hex}", at or self.clock.now(), body
        )
        return signed.as_dict()

    def post(
        self,
        event: Any = EVENT,
        *,
        body: bytes | None = None,
        webhook_id: str | None = None,
        at: datetime | None = None,
        secret: str | None = None,
        headers: dict[str, str] | None = None,
        source: str | None = None,
        http: Any = None,
        chunked: bool = False,
    ) -> TestResponse:
        """Post ``event`` (or raw ``body``) signed now; ``headers`` replace the signed ones. A
        ``chunked`` body comes without Content-Length."""
        content = body if body is not None else json.dumps(event, ensure_ascii=False).encode()
        sent = headers if headers is not None else self.headers(content, webhook_id, at, secret)
        client = http or self.app.test_client()
        url = f"/webhooks/in/{source or self.source}"
        if chunked:
            return client.post(
                url,
                input_stream=io.BytesIO(content),
                headers={**sent, "Transfer-Encoding": "chunked"},
                content_type="application/json",
                environ_overrides={"wsgi.input_terminated": True},
            )
        return client.post(url, data=content, headers=sent, content_type="application/json")


@pytest.fixture
def secret(web_engine: Engine) -> str:
    _, created = web_engine.save_source(ADMIN, "sed", "СЭД Министерства")
    return created


@pytest.fixture
def sed(app: Flask, secret: str) -> Sender:
    return Sender(app, secret)


@pytest.fixture
def contract(web_engine: Engine) -> str:
    return to_registration(web_engine, BUSINESS_KEY)


def status_of(engine: Engine, instance_id: str) -> InstanceStatus:
    return engine.instance(instance_id, ADMIN).instance.status


def test_a_signed_registration_completes_the_contract_once(web_engine: Engine, sed: Sender, contract: str) -> None:
    [registration] = [v.task for v in web_engine.tasks(COORDINATOR, TaskQuery(instance_id=contract))]
    assert registration.element_id == "Task_RegisterContract"
    webhook_id = "msg_2026_03_11_0017"
    response = sed.post(webhook_id=webhook_id)
    assert response.status_code == 200, response.json
    outcome = response.json
    assert outcome["status"] == "correlated" and outcome["instance_id"] == contract
    assert outcome["name"] == "contract.registered" and outcome["buffered_until"] is None

    view = web_engine.instance(contract, ADMIN)
    assert view.instance.status == InstanceStatus.COMPLETED
    assert view.variables["contract_number"] == "ПД-17/2026" and view.variables["contract_date"] == "2026-03-11"
    assert "troitsk-go" in {m.organisation.code for m in web_engine.members(2026)}
    [correlated] = [h for h in view.history if h.action == "message.correlated"]
    assert correlated.actor == "source:sed" and correlated.details["key"] == f"sed:{webhook_id}"
    assert [h.task_id for h in view.history if h.action == "task.cancelled"] == [registration.id]
    [message] = web_engine.messages(ADMIN)
    assert (message.id, message.key, message.source) == (outcome["message_id"], f"sed:{webhook_id}", "sed")
    assert message.status == MessageStatus.CORRELATED and message.instance_id == contract

    # The sender's retry (re-signed later) and a replay of the very same request: duplicates, nothing moves.
    before = db_state(web_engine)
    sed.clock.advance(timedelta(minutes=2))
    retry = sed.post(webhook_id=webhook_id)
    assert retry.status_code == 200 and retry.json == {**outcome, "status": "duplicate"}
    body = json.dumps(EVENT, ensure_ascii=False).encode()
    captured = sed.headers(body, webhook_id)
    for _ in range(2):
        replay = sed.post(body=body, headers=captured)
        assert replay.status_code == 200 and replay.json["status"] == "duplicate"
        assert replay.json["message_id"] == outcome["message_id"]
    assert changed_tables(before, db_state(web_engine)) == []
    assert len(web_engine.instance(contract, ADMIN).history) == len(view.history)

    # Another webhook-id with the same content is another message: nothing waits for it any more.
    again = sed.post(webhook_id="msg_2026_03_11_0018")
    assert again.status_code == 202, again.json
    assert again.json["status"] == "buffered" and again.json["message_id"] != outcome["message_id"]
    assert again.json["instance_id"] is None and again.json["buffered_until"]
    after = changed_tables(before, db_state(web_engine))
    assert after == ["audit_log", "inbound_messages"], "only the new message and its audit line"
    assert status_of(web_engine, contract) == InstanceStatus.COMPLETED
    assert len(web_engine.instance(contract, ADMIN).history) == len(view.history)


def test_every_refusal_is_a_clear_4xx_and_moves_nothing(
    app: Flask, web_engine: Engine, sed: Sender, contract: str
) -> None:
    webhook_id = "msg_refused_then_taken"
    body = json.dumps(EVENT, ensure_ascii=False).encode()
    now = sed.clock.now()
    before = db_state(web_engine)

    def refused(response: TestResponse, status: int, code: str, reason: str | None = None) -> dict[str, Any]:
        found = problem(response, status, code)
        assert found["instance"] == response.request.path
        if reason is not None:
            assert found["reason"] == reason, found
        return found

    # Size comes first: a huge body is refused before anything else is looked at.
    huge = json.dumps({**EVENT, "data": {**REGISTERED, "note": "x" * MAX_BODY}}).encode()
    too_large = refused(sed.post(body=huge, webhook_id=webhook_id), 413, "too_large")
    assert too_large["limit"] == MAX_BODY and too_large["size"] == len(huge)
    refused(sed.post(body=huge, source="no-such-source"), 413, "too_large")
    chunked = sed.post(body=huge, webhook_id=webhook_id, chunked=True)
    assert refused(chunked, 413, "too_large")["size"] == MAX_BODY + 1, "read no further than the limit"
    just_over = body + b" " * (MAX_BODY + 1 - len(body))
    refused(sed.post(body=just_over, webhook_id=webhook_id), 413, "too_large")

    # Who sends: an unknown source is 404 whatever it signs.
    refused(sed.post(source="no-such-source", webhook_id=webhook_id), 404, "not_found")
    refused(sed.post(source="SED", webhook_id=webhook_id), 404, "not_found")

    # The signature and its timestamp: 401, with the reason.
    other = signing.new_secret()
    refused(sed.post(webhook_id=webhook_id, secret=other), 401, "signature_refused", "bad_signature")
    tampered = sed.headers(body, webhook_id)
    forged = body.replace("ПД-17/2026".encode(), "ПД-99/2026".encode())
    refused(sed.post(body=forged, headers=tampered), 401, "signature_refused", "bad_signature")
    other_id = {**tampered, "webhook-id": "msg_other"}
    refused(sed.post(body=body, headers=other_id), 401, "signature_refused", "bad_signature")
    for at, reason in (
        (now - timedelta(seconds=301), "stale_timestamp"),
        (now - timedelta(hours=6), "stale_timestamp"),
        (now + timedelta(seconds=301), "future_timestamp"),
    ):
        refused(sed.post(webhook_id=webhook_id, at=at), 401, "signature_refused", reason)
    signed = sed.headers(body, webhook_id)
    for header in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        missing = {k: v for k, v in signed.items() if k != header}
        found = refused(sed.post(body=body, headers=missing), 401, "signature_refused", "missing_header")
        assert header in found["detail"]
    refused(sed.post(body=body, headers={}), 401, "signature_refused", "missing_header")
    refused(sed.post(body=body, headers={**signed, "webhook-timestamp": "вчера"}), 401, "signature_refused")
    refused(sed.post(body=body, headers={**signed, "webhook-id": ""}), 401, "signature_refused")
    unversioned = {**signed, "webhook-signature": signed["webhook-signature"].replace("v1,", "v2,")}
    refused(sed.post(body=body, headers=unversioned), 401, "signature_refused", "bad_signature")
    refused(sed.post(body=body, headers={**signed, "webhook-signature": ""}), 401, "signature_refused")
    # A session or an API token is no signature.
    admin = Client(app.test_client())
    admin.login("admin")
    unsigned = admin.http.post("/webhooks/in/sed", data=body, content_type="application/json")
    refused(unsigned, 401, "signature_refused", "missing_header")
    token = web_engine.create_token(ADMIN, "sed-sync", ["admin"], "rcoko")[1]
    with_token = app.test_client().post(
        "/webhooks/in/sed", data=body, headers={"Authorization": f"Bearer {token}"}, content_type="application/json"
    )
    refused(with_token, 401, "signature_refused", "missing_header")
    before = db_state(web_engine)  # the token and the login are written; what follows must not be

    # The JSON and its shape: 400, naming the fields.
    for raw in (b"", b"{", b'{"type": "contract.registered",}', b"\xff\xfe", b"NaN-is-not-json"):
        found = refused(sed.post(body=raw, webhook_id=webhook_id), 400, "bad_input")
        assert found["detail"].startswith("the body is not valid JSON"), raw
    shapes: list[tuple[Any, set[str]]] = [
        (["contract.registered"], {""}),
        ("contract.registered", {""}),
        (None, {""}),
        ({"correlation": {"business_key": BUSINESS_KEY}, "data": REGISTERED}, {"type"}),
        ({**EVENT, "type": ""}, {"type"}),
        ({**EVENT, "type": 17}, {"type"}),
        ({**EVENT, "type": "x" * 201}, {"type"}),
        ({**EVENT, "correlation": BUSINESS_KEY}, {"correlation"}),
        ({**EVENT, "correlation": {"business_key": [BUSINESS_KEY]}}, {"correlation.business_key"}),
        ({**EVENT, "correlation": {"business_key": None}}, {"correlation.business_key"}),
        ({**EVENT, "data": ["ПД-17/2026"]}, {"data"}),
        ({**EVENT, "ttl_seconds": 0}, {"ttl_seconds"}),
        ({**EVENT, "ttl_seconds": "1d"}, {"ttl_seconds"}),
        ({**EVENT, "ttl_seconds": 91 * 24 * 3600}, {"ttl_seconds"}),
    ]
    for event, fields in shapes:
        found = refused(sed.post(event, webhook_id=webhook_id), 400, "invalid_request")
        assert fields_of(found) == fields, (event, found)
    # What the engine refuses is named as the sender wrote it.
    names: list[tuple[Any, str]] = [
        ({**EVENT, "type": "   "}, "type"),
        ({**EVENT, "correlation": {"business key": BUSINESS_KEY}}, "correlation"),
        ({**EVENT, "data": {**REGISTERED, "_state": "done"}}, "data._state"),
    ]
    for event, field in names:
        found = refused(sed.post(event, webhook_id=webhook_id), 400, "bad_input")
        assert fields_of(found) == {field}, (event, found)

    assert changed_tables(before, db_state(web_engine)) == []
    assert status_of(web_engine, contract) == InstanceStatus.RUNNING
    assert web_engine.instance(contract, ADMIN).instance.waiting_messages == ("contract.registered",)
    assert web_engine.messages(ADMIN) == []

    # None of that was remembered: the same webhook-id, rightly signed, is taken now.
    taken = sed.post(webhook_id=webhook_id)
    assert taken.status_code == 200 and taken.json["status"] == "correlated", taken.json
    assert status_of(web_engine, contract) == InstanceStatus.COMPLETED


def test_a_disabled_source_is_refused_like_an_unknown_one(web_engine: Engine, sed: Sender, contract: str) -> None:
    web_engine.set_source_active(ADMIN, "sed", False)
    before = db_state(web_engine)
    disabled = problem(sed.post(), 404, "not_found")
    unknown = problem(sed.post(source="no-such-source"), 404, "not_found")
    assert disabled.keys() == unknown.keys() and disabled["title"] == unknown["title"]
    assert changed_tables(before, db_state(web_engine)) == []
    assert status_of(web_engine, contract) == InstanceStatus.RUNNING

    web_engine.set_source_active(ADMIN, "sed", True)
    assert sed.post(chunked=True).status_code == 200, "a body without Content-Length is read too"
    assert status_of(web_engine, contract) == InstanceStatus.COMPLETED


def test_during_a_rotation_both_secrets_are_accepted_and_after_it_only_the_new(
    web_engine: Engine, sed: Sender, contract: str, clock: VirtualClock
) -> None:
    old = sed.secret
    _, new = web_engine.rotate_source_secret(ADMIN, "sed", timedelta(minutes=10))
    elsewhere = {**EVENT, "correlation": {"business_key": "ПД-КОП-2026"}}  # buffers: nothing waits for it
    assert sed.post(elsewhere, secret=old).status_code == 202, "the old secret, during the overlap"
    assert sed.post(elsewhere, secret=new).status_code == 202
    body = json.dumps(elsewhere, ensure_ascii=False).encode()
    webhook_id = f"msg_{uuid.uuid4().hex}"
    timestamp = int(clock.now().timestamp())
    both = signing.sign([new, old], webhook_id, timestamp, body)
    both_headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": both}
    assert sed.post(body=body, headers=both_headers).status_code == 202

    clock.advance(timedelta(minutes=10, seconds=1))
    before = db_state(web_engine)
    found = problem(sed.post(secret=old), 401, "signature_refused")
    assert found["reason"] == "bad_signature"
    assert changed_tables(before, db_state(web_engine)) == []
    assert status_of(web_engine, contract) == InstanceStatus.RUNNING
    taken = sed.post(secret=new)
    assert taken.status_code == 200 and taken.json["instance_id"] == contract
    assert status_of(web_engine, contract) == InstanceStatus.COMPLETED
    assert len([m for m in web_engine.messages(ADMIN) if m.status == MessageStatus.BUFFERED]) == 3


def test_no_session_token_or_csrf_token_is_needed(app: Flask, web_engine: Engine, sed: Sender, contract: str) -> None:
    # A browser with a session cookie posts without the CSRF token: the signature decides, not the cookie.
    browser = Client(app.test_client())
    assert browser.login("coordinator").status_code == 302
    taken = sed.post(http=browser.http)
    assert taken.status_code == 200 and taken.json["status"] == "correlated", taken.json
    [correlated] = [h for h in web_engine.instance(contract, ADMIN).history if h.action == "message.correlated"]
    assert correlated.actor == "source:sed", "the source acts, not the logged-in user"
    # Anything but POST is not there.
    for method in ("GET", "PUT", "DELETE"):
        response = app.test_client().open("/webhooks/in/sed", method=method)
        problem(response, 405, "method_not_allowed")
    assert "POST" in app.test_client().get("/webhooks/in/sed").headers["Allow"]
