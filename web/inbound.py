"""``POST /webhooks/in/<source>``: signed events from outside systems that move processes.

The body is a Standard Webhooks message signed with the source's secret::

    {"type": "contract.registered",                       # the BPMN message's name
     "correlation": {"business_key": "ПД-ТРО-2026"},      # which instance
     "data": {"contract_number": "17/2026", "contract_date": "2026-03-11"}}   # its variables

In order, with nothing moved on any refusal: the body's size (413), the source (404 when
unknown or disabled), the signature and its timestamp (401, five minutes' tolerance), the JSON
and its shape (400). The ``webhook-id`` is remembered per source: a replay, or the sender's
retry of a message we already took, answers 200 with the first outcome and moves nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, Response, request

from engine.directory import COORDINATOR_ORG, Actor, Role
from engine.errors import BadInput, FieldError, InvalidRequest, NotAuthenticated, NotFound, TooLarge
from engine.forms import field_errors
from webhooks import signing

from .api.spec import json_response
from .auth import engine

MAX_BODY = 256 * 1024
PAYLOAD = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {"type": "string", "minLength": 1, "maxLength": 200},
        "correlation": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
        "data": {"type": "object"},
        "ttl_seconds": {"type": "integer", "minimum": 1, "maximum": 90 * 24 * 3600},
    },
}
STATUS = {"correlated": 200, "duplicate": 200, "started": 200, "buffered": 202}


class SignatureRefused(NotAuthenticated):
    code = "signature_refused"

    def __init__(self, reason: str, why: str) -> None:
        super().__init__(f"the webhook signature is refused: {why}")
        self.reason = reason

    def details(self) -> dict[str, Any]:
        return {"reason": self.reason}


FIELDS = {"name": "type", "variables": "data"}  # the engine's names of the payload's fields


def payload_field(field: str) -> str:
    head, dot, rest = field.partition(".")
    return FIELDS.get(head, head) + dot + rest


def source_actor(name: str) -> Actor:
    return Actor(f"source:{name}", COORDINATOR_ORG, frozenset({Role.COORDINATOR}), f"Источник {name}")


def create_inbound(app: Flask) -> Blueprint:
    bp = Blueprint("inbound", __name__)

    @bp.post("/webhooks/in/<source>")
    def receive(source: str) -> Response:
        length = request.content_length
        if length is not None and length > MAX_BODY:
            raise TooLarge("the webhook body", length, MAX_BODY)
        body = request.stream.read(MAX_BODY + 1) if length is None else request.get_data(cache=False)
        if len(body) > MAX_BODY:
            raise TooLarge("the webhook body", len(body), MAX_BODY)
        eng = engine()
        found = eng.source(source)
        if found is None or not found.active:
            raise NotFound("webhook source", source)
        now = eng.clock.now()
        try:
            signed = signing.verify(found.secrets(now), dict(request.headers), body, now)
        except signing.SignatureError as exc:
            raise SignatureRefused(exc.code, exc.message) from None
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise BadInput(f"the body is not valid JSON: {exc}") from None
        problems = field_errors(PAYLOAD, payload)
        if problems:
            raise InvalidRequest(problems)
        if not isinstance(payload, dict):  # pragma: no cover - the schema says object
            raise InvalidRequest([FieldError("", "type", "the body must be a JSON object")])
        ttl = payload.get("ttl_seconds")
        try:
            outcome = eng.receive_message(
                source_actor(source),
                name=payload["type"],
                correlation=payload.get("correlation") or {},
                variables=payload.get("data") or {},
                key=f"{source}:{signed.webhook_id}",
                source=source,
                ttl=timedelta(seconds=ttl) if ttl else None,
            )
        except BadInput as exc:
            # Name the field as the sender wrote it ("type", "data.x"), not as the engine calls it.
            if type(exc) is BadInput and exc.field:
                raise BadInput(exc.message, field=payload_field(exc.field)) from None
            raise
        return json_response(outcome.to_dict(), STATUS[outcome.status])

    app.config.setdefault("CSRF_EXEMPT", set()).add("inbound.receive")
    return bp
