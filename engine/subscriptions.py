"""Webhook subscriptions: who hears which events, at which URL, signed with which secret.

Administrators manage them (API, UI and CLI). A URL is checked when it is saved by the
``url_guard`` the application gives the engine (the SSRF check of :mod:`webhooks.ssrf`: no
loopback, link-local or private addresses unless allowed by name) and again at every delivery.
The secret is generated here (``whsec_…``, shown once on creation and on rotation); rotating
keeps the previous secret signing alongside the new one for an overlap, so receivers can
switch without losing a message. A subscription the worker disabled (too many failures in a
row, or 410 Gone) is enabled again by an administrator, which also resets its failure count.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .directory import Actor
from .errors import BadInput, InvalidState, NotFound, NotPermitted
from .events import NAMES
from .records import AuditEntry, DeliveryAttempt, DeliveryRecord, DeliveryStatus, Subscription

if TYPE_CHECKING:
    from .engine import Engine

DEFAULT_OVERLAP = timedelta(hours=24)
MAX_OVERLAP = timedelta(days=14)
URL = re.compile(r"^https?://[^\s/?#]+(?:[/?#]\S*)?$")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _admin(actor: Actor, action: str) -> None:
    if not actor.is_admin:
        raise NotPermitted(actor.login, action, "webhook subscriptions", "administrators manage webhooks")


def _check_url(engine: Engine, url: str) -> str:
    url = (url or "").strip()
    if not URL.match(url) or len(url) > 2000:
        raise BadInput("the URL must be an absolute http(s) URL of at most 2000 characters", field="url")
    if engine.url_guard is not None:
        try:
            engine.url_guard(url)
        except ValueError as exc:
            raise BadInput(f"the URL is refused: {exc}", field="url") from None
    return url


def _check_types(event_types: Sequence[str]) -> tuple[str, ...]:
    unknown = sorted(set(event_types) - set(NAMES))
    if unknown:
        raise BadInput(f"unknown event type(s): {', '.join(unknown)}", field="event_types")
    return tuple(sorted(set(event_types)))


def create(
    engine: Engine,
    actor: Actor,
    url: str,
    event_types: Sequence[str] = (),
    organisation: str | None = None,
    description: str = "",
) -> tuple[Subscription, str]:
    _admin(actor, "create")
    checked = _check_url(engine, url)
    types = _check_types(event_types)
    now = engine.clock.now()
    secret = new_secret()
    sub = Subscription(
        id=engine._new_id(),
        url=checked,
        secret=secret,
        event_types=types,
        organisation=organisation or None,
        active=True,
        description=(description or "").strip()[:500],
        created_by=actor.login,
        created_at=now,
        updated_at=now,
    )
    with engine.store.transaction() as tx:
        if organisation and tx.get_organisation(organisation) is None:
            raise BadInput(f"organisation {organisation!r} does not exist", field="organisation")
        tx.insert_subscription(sub)
        tx.append_audit([_audit(actor, now, "webhook.created", sub)])
    return sub, secret


def _audit(actor: Actor, at: Any, action: str, sub: Subscription, **extra: Any) -> AuditEntry:
    details = {
        "subscription": sub.id,
        "url": sub.url,
        "event_types": list(sub.event_types),
        "organisation": sub.organisation,
        **extra,
    }
    return AuditEntry(at, actor.login, actor.organisation, action, details=details)


def get(engine: Engine, actor: Actor, subscription_id: str) -> Subscription:
    _admin(actor, "read")
    with engine.store.transaction() as tx:
        sub = tx.get_subscription(subscription_id)
    if sub is None:
        raise NotFound("subscription", subscription_id)
    return sub


def list_all(engine: Engine, actor: Actor) -> list[Subscription]:
    _admin(actor, "list")
    with engine.store.transaction() as tx:
        return tx.list_subscriptions()


def update(engine: Engine, actor: Actor, subscription_id: str, **changes: Any) -> Subscription:
    """Change url, event_types, organisation, description or active (enabling resets failures)."""
    _admin(actor, "change")
    allowed = {"url", "event_types", "organisation", "description", "active"}
    unknown = set(changes) - allowed
    if unknown:
        raise BadInput(f"cannot change {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    values: dict[str, Any] = {}
    if "url" in changes:
        values["url"] = _check_url(engine, changes["url"])
    if "event_types" in changes:
        values["event_types"] = _check_types(changes["event_types"] or ())
    if "description" in changes:
        values["description"] = (changes["description"] or "").strip()[:500]
    if "organisation" in changes:
        values["organisation"] = changes["organisation"] or None
    if "active" in changes:
        values["active"] = bool(changes["active"])
        if values["active"]:
            values.update(consecutive_failures=0, disabled_at=None, disabled_reason=None)
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        sub = tx.get_subscription(subscription_id)
        if sub is None:
            raise NotFound("subscription", subscription_id)
        org = values.get("organisation")
        if org and tx.get_organisation(org) is None:
            raise BadInput(f"organisation {org!r} does not exist", field="organisation")
        tx.update_subscription(subscription_id, updated_at=now, **values)
        updated = replace(sub, updated_at=now, **values)
        tx.append_audit([_audit(actor, now, "webhook.changed", updated, fields=sorted(values))])
    return updated


def rotate_secret(
    engine: Engine, actor: Actor, subscription_id: str, overlap: timedelta = DEFAULT_OVERLAP
) -> tuple[Subscription, str]:
    """A new secret; the old one keeps signing too until ``overlap`` has passed."""
    _admin(actor, "rotate the secret of")
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise BadInput(f"the overlap must be between 0 and {MAX_OVERLAP.days} days", field="overlap_seconds")
    now = engine.clock.now()
    secret = new_secret()
    with engine.store.transaction() as tx:
        sub = tx.get_subscription(subscription_id)
        if sub is None:
            raise NotFound("subscription", subscription_id)
        changes: dict[str, Any] = {
            "secret": secret,
            "previous_secret": sub.secret if overlap > timedelta(0) else None,
            "previous_until": now + overlap if overlap > timedelta(0) else None,
            "updated_at": now,
        }
        tx.update_subscription(subscription_id, **changes)
        rotated = replace(sub, **changes)
        tx.append_audit(
            [_audit(actor, now, "webhook.secret_rotated", rotated, overlap_seconds=int(overlap.total_seconds()))]
        )
    return rotated, secret


def deliveries(
    engine: Engine, actor: Actor, subscription_id: str, status: DeliveryStatus | None = None, limit: int = 100
) -> list[DeliveryRecord]:
    get(engine, actor, subscription_id)
    with engine.store.transaction() as tx:
        return tx.list_deliveries(channel="webhook", recipient=subscription_id, status=status, limit=limit)


def attempts(engine: Engine, actor: Actor, delivery_id: str) -> list[DeliveryAttempt]:
    _admin(actor, "read")
    with engine.store.transaction() as tx:
        if tx.get_delivery(delivery_id) is None:
            raise NotFound("delivery", delivery_id)
        return tx.list_attempts(delivery_id=delivery_id)


def redeliver(engine: Engine, actor: Actor, delivery_id: str) -> DeliveryRecord:
    """Send a delivery again now (whatever its outcome was); its webhook-id stays the same."""
    _admin(actor, "redeliver")
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        delivery = tx.get_delivery(delivery_id)
        if delivery is None or delivery.channel != "webhook":
            raise NotFound("delivery", delivery_id)
        if delivery.status == DeliveryStatus.SENDING:
            raise InvalidState(f"delivery {delivery_id} is being sent right now")
        tx.update_delivery(delivery_id, None, status=DeliveryStatus.QUEUED, next_attempt_at=now, last_error=None)
        tx.append_audit(
            [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "webhook.redelivery",
                    instance_id=delivery.instance_id,
                    details={"delivery": delivery_id, "subscription": delivery.recipient, "event": delivery.event_id},
                )
            ]
        )
        return replace(delivery, status=DeliveryStatus.QUEUED, next_attempt_at=now, last_error=None)
