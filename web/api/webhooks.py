"""Events and webhooks: the event catalogue, subscriptions and their delivery log, inbound
sources, and messages sent to processes through the API."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from flask import Response, request, url_for

from engine import events
from engine.engine import SECRET_OVERLAP
from engine.errors import FieldError, InvalidRequest
from engine.records import DeliveryStatus, InboundSource, MessageStatus

from . import present
from .common import actor, created, engine
from .spec import PROBLEM, Api, Param, Reply, json_response, ref

EVENT_TYPES = {"type": "array", "uniqueItems": True, "items": {"type": "string", "enum": list(events.NAMES)}}
URL = {"type": "string", "minLength": 8, "maxLength": 2000, "pattern": "^https?://"}
OVERLAP = {"type": "integer", "minimum": 0, "maximum": 14 * 24 * 3600, "default": int(SECRET_OVERLAP.total_seconds())}


def source(s: InboundSource) -> dict[str, Any]:
    return present.source(s, url_for("inbound.receive", source=s.name, _external=True))


def register_schemas(api: Api) -> None:
    s, ns = {"type": "string"}, {"type": ["string", "null"]}
    dt, ndt = {"type": "string", "format": "date-time"}, {"type": ["string", "null"], "format": "date-time"}
    api.schema(
        "Subscription",
        {
            "type": "object",
            "required": ["id", "url", "event_types", "active"],
            "properties": {
                "id": s,
                "url": s,
                "event_types": {"type": "array", "items": s},
                "organisation": ns,
                "active": {"type": "boolean"},
                "description": s,
                "created_by": s,
                "created_at": dt,
                "updated_at": dt,
                "rotating_until": ndt,
                "consecutive_failures": {"type": "integer"},
                "disabled_at": ndt,
                "disabled_reason": ns,
            },
        },
    )
    api.schema(
        "Delivery",
        {
            "type": "object",
            "required": ["id", "event_id", "status", "attempts"],
            "properties": {
                "id": s,
                "event_id": s,
                "event_type": ns,
                "subscription_id": s,
                "instance_id": ns,
                "status": {"type": "string", "enum": [x.value for x in DeliveryStatus]},
                "attempts": {"type": "integer"},
                "created_at": dt,
                "next_attempt_at": ndt,
                "sent_at": ndt,
                "last_error": ns,
                "reply": ns,
            },
        },
    )
    api.schema(
        "DeliveryAttempt",
        {
            "type": "object",
            "required": ["at", "outcome"],
            "properties": {
                "at": dt,
                "outcome": {"type": "string", "enum": ["sent", "retry", "failed", "disabled"]},
                "status": {"type": ["integer", "null"]},
                "latency_ms": {"type": ["number", "null"]},
                "excerpt": ns,
                "error": ns,
            },
        },
    )
    api.schema(
        "InboundSource",
        {
            "type": "object",
            "required": ["name", "active", "url"],
            "properties": {
                "name": s,
                "active": {"type": "boolean"},
                "description": s,
                "created_at": dt,
                "rotating_until": ndt,
                "url": s,
            },
        },
    )
    api.schema(
        "Message",
        {
            "type": "object",
            "required": ["id", "name", "status"],
            "properties": {
                "id": s,
                "key": s,
                "source": s,
                "name": s,
                "correlation": {"type": "object"},
                "status": {"type": "string", "enum": [x.value for x in MessageStatus]},
                "instance_id": ns,
                "received_at": dt,
                "expires_at": dt,
                "correlated_at": ndt,
            },
        },
    )
    api.schema(
        "MessageOutcome",
        {
            "type": "object",
            "required": ["status", "message_id", "name"],
            "properties": {
                "status": {"type": "string", "enum": ["correlated", "started", "buffered", "duplicate"]},
                "message_id": s,
                "name": s,
                "instance_id": ns,
                "buffered_until": ndt,
            },
        },
    )


def with_secret(schema_name: str) -> dict[str, Any]:
    return {
        "allOf": [ref(schema_name)],
        "type": "object",
        "required": ["secret"],
        "properties": {"secret": {"type": "string", "description": "whsec_…: shown only now."}},
    }


MESSAGE_STATUS = {"correlated": 200, "duplicate": 200, "started": 201, "buffered": 202}
IDEMPOTENCY_KEY_MAX = 200


def install(api: Api) -> None:
    register_schemas(api)

    @api.op(
        "GET",
        "/events/catalogue",
        summary="The event types a webhook can subscribe to, with the JSON Schema of each event",
        tag="Webhooks",
        replies=[
            Reply(
                200,
                "The catalogue (version 1) and the envelope's schema.",
                {
                    "type": "object",
                    "required": ["version", "types", "envelope"],
                    "properties": {
                        "version": {"type": "integer"},
                        "types": {"type": "array", "items": {"type": "object"}},
                        "envelope": {"type": "object"},
                    },
                },
            )
        ],
    )
    def event_catalogue() -> Response:
        actor()
        return json_response(
            {"version": events.VERSION, "types": events.catalogue(), "envelope": events.envelope_schema()}
        )

    # -- subscriptions ---------------------------------------------------------------------------------
    @api.op(
        "GET",
        "/webhooks",
        summary="Webhook subscriptions (administrators)",
        tag="Webhooks",
        replies=[Reply(200, "Subscriptions.", {"type": "array", "items": ref("Subscription")})],
    )
    def list_webhooks() -> Response:
        return json_response([present.subscription(s) for s in engine().subscriptions(actor())])

    @api.op(
        "POST",
        "/webhooks",
        summary="Subscribe a URL to events (administrators); the signing secret is shown once",
        description=(
            "Deliveries are signed per Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature). "
            "URLs that resolve to loopback, link-local or private addresses are refused unless their host is "
            "in AGGLO_WEBHOOK_ALLOW_HOSTS. `event_types` empty means every type."
        ),
        tag="Webhooks",
        body={
            "type": "object",
            "required": ["url"],
            "additionalProperties": False,
            "properties": {
                "url": URL,
                "event_types": EVENT_TYPES,
                "organisation": {"type": "string", "minLength": 1, "maxLength": 64},
                "description": {"type": "string", "maxLength": 500},
            },
        },
        replies=[Reply(201, "The subscription and its secret.", with_secret("Subscription"))],
    )
    def create_webhook(body: dict[str, Any]) -> Response:
        sub, secret = engine().create_subscription(
            actor(), body["url"], body.get("event_types") or [], body.get("organisation"), body.get("description", "")
        )
        location = url_for("api.get_webhook", subscription_id=sub.id)
        return created({**present.subscription(sub), "secret": secret}, location)

    @api.op(
        "GET",
        "/webhooks/<subscription_id>",
        summary="One subscription",
        tag="Webhooks",
        replies=[Reply(200, "The subscription.", ref("Subscription"))],
    )
    def get_webhook(subscription_id: str) -> Response:
        return json_response(present.subscription(engine().subscription(actor(), subscription_id)))

    @api.op(
        "PATCH",
        "/webhooks/<subscription_id>",
        summary="Change a subscription; `active: true` re-enables a disabled one and resets its failures",
        tag="Webhooks",
        body={
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": {
                "url": URL,
                "event_types": EVENT_TYPES,
                "organisation": {"type": ["string", "null"], "maxLength": 64},
                "description": {"type": "string", "maxLength": 500},
                "active": {"type": "boolean"},
            },
        },
        replies=[Reply(200, "The subscription.", ref("Subscription"))],
    )
    def update_webhook(subscription_id: str, body: dict[str, Any]) -> Response:
        return json_response(present.subscription(engine().update_subscription(actor(), subscription_id, **body)))

    @api.op(
        "POST",
        "/webhooks/<subscription_id>/rotate-secret",
        summary="A new signing secret; the old one keeps signing too for the overlap",
        tag="Webhooks",
        body={"type": "object", "additionalProperties": False, "properties": {"overlap_seconds": OVERLAP}},
        replies=[Reply(200, "The subscription and its new secret.", with_secret("Subscription"))],
    )
    def rotate_webhook_secret(subscription_id: str, body: dict[str, Any]) -> Response:
        overlap = timedelta(seconds=body.get("overlap_seconds", int(SECRET_OVERLAP.total_seconds())))
        sub, secret = engine().rotate_subscription_secret(actor(), subscription_id, overlap)
        return json_response({**present.subscription(sub), "secret": secret})

    @api.op(
        "GET",
        "/webhooks/<subscription_id>/deliveries",
        summary="The subscription's deliveries, newest last",
        tag="Webhooks",
        query=[
            Param("status", {"type": "string", "enum": [x.value for x in DeliveryStatus]}),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}),
        ],
        replies=[Reply(200, "Deliveries.", {"type": "array", "items": ref("Delivery")})],
    )
    def list_webhook_deliveries(subscription_id: str, status: str | None, limit: int) -> Response:
        items = engine().webhook_deliveries(
            actor(), subscription_id, DeliveryStatus(status) if status else None, limit or 100
        )
        return json_response([present.delivery(d) for d in items])

    @api.op(
        "GET",
        "/deliveries/<delivery_id>/attempts",
        summary="Every attempt of a delivery: status, latency, the reply's start, the error",
        tag="Webhooks",
        replies=[Reply(200, "Attempts, newest first.", {"type": "array", "items": ref("DeliveryAttempt")})],
    )
    def list_delivery_attempts(delivery_id: str) -> Response:
        return json_response([present.attempt(a) for a in engine().delivery_attempts(actor(), delivery_id)])

    @api.op(
        "POST",
        "/deliveries/<delivery_id>/redeliver",
        summary="Send a delivery again now (same webhook-id)",
        tag="Webhooks",
        replies=[
            Reply(200, "The delivery, queued.", ref("Delivery")),
            Reply(409, "It is being sent right now.", ref("Problem"), PROBLEM),
        ],
    )
    def redeliver(delivery_id: str) -> Response:
        return json_response(present.delivery(engine().redeliver(actor(), delivery_id)))

    # -- inbound sources ------------------------------------------------------------------------------
    @api.op(
        "GET",
        "/webhook-sources",
        summary="Systems allowed to post events to /webhooks/in/<name> (administrators)",
        tag="Webhooks",
        replies=[Reply(200, "Sources.", {"type": "array", "items": ref("InboundSource")})],
    )
    def list_webhook_sources() -> Response:
        return json_response([source(s) for s in engine().sources(actor())])

    @api.op(
        "POST",
        "/webhook-sources",
        summary="Register a source (or give an existing one a new secret); the secret is shown once",
        tag="Webhooks",
        body={
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
                "description": {"type": "string", "maxLength": 500},
            },
        },
        replies=[Reply(201, "The source and its secret.", with_secret("InboundSource"))],
    )
    def create_webhook_source(body: dict[str, Any]) -> Response:
        src, secret = engine().save_source(actor(), body["name"], body.get("description", ""))
        return created({**source(src), "secret": secret}, url_for("api.list_webhook_sources"))

    @api.op(
        "POST",
        "/webhook-sources/<name>/rotate-secret",
        summary="A new secret for a source; the old one stays valid for the overlap",
        tag="Webhooks",
        body={"type": "object", "additionalProperties": False, "properties": {"overlap_seconds": OVERLAP}},
        replies=[Reply(200, "The source and its new secret.", with_secret("InboundSource"))],
    )
    def rotate_source_secret(name: str, body: dict[str, Any]) -> Response:
        overlap = timedelta(seconds=body.get("overlap_seconds", int(SECRET_OVERLAP.total_seconds())))
        src, secret = engine().rotate_source_secret(actor(), name, overlap)
        return json_response({**source(src), "secret": secret})

    @api.op(
        "PATCH",
        "/webhook-sources/<name>",
        summary="Enable or disable a source",
        tag="Webhooks",
        body={
            "type": "object",
            "required": ["active"],
            "additionalProperties": False,
            "properties": {"active": {"type": "boolean"}},
        },
        replies=[Reply(200, "The source.", ref("InboundSource"))],
    )
    def update_webhook_source(name: str, body: dict[str, Any]) -> Response:
        return json_response(source(engine().set_source_active(actor(), name, body["active"])))

    # -- messages -----------------------------------------------------------------------------------------
    @api.op(
        "POST",
        "/messages",
        summary="Send a BPMN message to the process that waits for it (or buffer it until one does)",
        description=(
            "Correlation keys choose the instance: business_key, instance_id, process_key, or any process "
            "variable. Exactly one waiting instance must match (409 otherwise). With no waiting instance the "
            "message is buffered until `ttl_seconds` (default 7 days) and delivered when one starts waiting; "
            "a process that starts on the message is started instead. The same `Idempotency-Key` (header) or "
            "`idempotency_key` twice returns the first outcome and moves nothing. 200: correlated, 201: started, "
            "202: buffered."
        ),
        tag="Messages",
        body={
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "correlation": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
                "variables": {"type": "object"},
                "idempotency_key": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX},
                "ttl_seconds": {"type": "integer", "minimum": 1, "maximum": 90 * 24 * 3600},
            },
        },
        replies=[
            Reply(200, "Correlated (or a duplicate of a message already taken).", ref("MessageOutcome")),
            Reply(201, "A process was started by the message.", ref("MessageOutcome")),
            Reply(202, "No instance waits yet: buffered.", ref("MessageOutcome")),
            Reply(409, "Several instances match the correlation keys.", ref("Problem"), PROBLEM),
        ],
    )
    def send_message(body: dict[str, Any]) -> Response:
        who = actor()
        header = request.headers.get("Idempotency-Key")
        if header is not None and not 1 <= len(header.strip()) <= IDEMPOTENCY_KEY_MAX:
            # Never cut a key short: two keys with a common beginning would become one message.
            message = f"the Idempotency-Key header must be 1-{IDEMPOTENCY_KEY_MAX} characters"
            raise InvalidRequest([FieldError("Idempotency-Key", "length", message)])
        key = (header or "").strip() or body.get("idempotency_key") or uuid.uuid4().hex
        outcome = engine().receive_message(
            who,
            name=body["name"],
            correlation=body.get("correlation") or {},
            variables=body.get("variables") or {},
            key=f"api:{who.login}:{key}",
            source="api",
            ttl=timedelta(seconds=body["ttl_seconds"]) if "ttl_seconds" in body else None,
        )
        return json_response(outcome.to_dict(), MESSAGE_STATUS[outcome.status])

    @api.op(
        "GET",
        "/messages",
        summary="Messages received (the coordinator and administrators)",
        tag="Messages",
        query=[
            Param("status", {"type": "string", "enum": [x.value for x in MessageStatus]}),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 200}),
        ],
        replies=[Reply(200, "Messages, newest first.", {"type": "array", "items": ref("Message")})],
    )
    def list_messages(status: str | None, limit: int) -> Response:
        items = engine().messages(actor(), MessageStatus(status) if status else None, limit or 200)
        return json_response([present.message(m) for m in items])
