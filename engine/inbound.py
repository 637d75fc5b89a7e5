"""Sources of incoming webhooks: systems that may post events to ``/webhooks/in/<name>``.

Each source has its own Standard Webhooks secret (``whsec_…``, generated here and shown once);
rotating keeps the previous one valid for an overlap. The web layer verifies signatures with
them; what a verified event does is :mod:`engine.messages`' business.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING

from .directory import Actor
from .errors import BadInput, NotFound, NotPermitted
from .records import AuditEntry, InboundSource
from .subscriptions import MAX_OVERLAP, new_secret

if TYPE_CHECKING:
    from .engine import Engine

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def _admin(actor: Actor) -> None:
    if not actor.is_admin:
        raise NotPermitted(actor.login, "manage", "webhook sources", "administrators manage webhook sources")


def save_source(engine: Engine, actor: Actor, name: str, description: str = "") -> tuple[InboundSource, str]:
    """Create a source (or replace its secret and description); returns it with its new secret."""
    _admin(actor)
    name = (name or "").strip().lower()
    if not NAME.match(name):
        raise BadInput("a source name is 1-64 lower-case letters, digits, '_' or '-'", field="name")
    now = engine.clock.now()
    secret = new_secret()
    source = InboundSource(name, secret, True, (description or "").strip()[:500], now)
    with engine.store.transaction() as tx:
        existing = tx.get_source(name)
        if existing is not None:
            source = replace(source, created_at=existing.created_at)
        tx.save_source(source)
        tx.append_audit(
            [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "webhook_source.saved",
                    details={"source": name, "created": existing is None},
                )
            ]
        )
    return source, secret


def rotate(engine: Engine, actor: Actor, name: str, overlap: timedelta) -> tuple[InboundSource, str]:
    _admin(actor)
    if overlap < timedelta(0) or overlap > MAX_OVERLAP:
        raise BadInput(f"the overlap must be between 0 and {MAX_OVERLAP.days} days", field="overlap_seconds")
    now = engine.clock.now()
    secret = new_secret()
    with engine.store.transaction() as tx:
        source = tx.get_source(name)
        if source is None:
            raise NotFound("source", name)
        rotated = replace(
            source,
            secret=secret,
            previous_secret=source.secret if overlap > timedelta(0) else None,
            previous_until=now + overlap if overlap > timedelta(0) else None,
        )
        tx.save_source(rotated)
        tx.append_audit(
            [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "webhook_source.secret_rotated",
                    details={"source": name, "overlap_seconds": int(overlap.total_seconds())},
                )
            ]
        )
    return rotated, secret


def set_active(engine: Engine, actor: Actor, name: str, active: bool) -> InboundSource:
    _admin(actor)
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        source = tx.get_source(name)
        if source is None:
            raise NotFound("source", name)
        changed = replace(source, active=active)
        tx.save_source(changed)
        tx.append_audit(
            [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "webhook_source.changed",
                    details={"source": name, "active": active},
                )
            ]
        )
    return changed


def list_sources(engine: Engine, actor: Actor) -> list[InboundSource]:
    _admin(actor)
    with engine.store.transaction() as tx:
        return tx.list_sources()
