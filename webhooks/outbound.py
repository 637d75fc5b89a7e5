"""Outgoing webhooks: the worker's two sweeps over the outbox.

1. :func:`dispatch` turns outbox events (written with the change that caused them) into one
   delivery per matching active subscription, enriched with the instance's process, business
   key and organisation, and marks the events dispatched — all in one transaction, so an event
   is fanned out exactly once.
2. :func:`deliver` sends due deliveries: claimed with ``SKIP LOCKED`` and a lease, only the
   earliest pending one per (subscription, instance) — so a later event for an instance is
   never delivered before an earlier one has succeeded or been given up — signed per Standard
   Webhooks, POSTed to the address the SSRF check approved, in parallel across instances, with
   a per-request timeout and no redirects. 2xx is success; 410 disables the subscription;
   anything else (and network errors) is retried on the retry policy up to its horizon. Every
   attempt is logged. A run of failures disables the subscription and tells the administrators.

A worker killed mid-send loses nothing: its leases expire and another worker sends again with
the same ``webhook-id`` (the event's id), which receivers use to drop the duplicate.
"""

from __future__ import annotations

import json
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from engine import events, notify
from engine.clock import Clock
from engine.directory import SYSTEM_ACTOR, Role
from engine.notifications import Message
from engine.ports import Store
from engine.records import (
    AuditEntry,
    DeliveryAttempt,
    DeliveryRecord,
    DeliveryStatus,
    InstanceRecord,
    Subscription,
)
from engine.retry import RetryPolicy
from engine.settings import Settings
from engine.sweeps import SweepReport

from . import signing, ssrf
from .http import HttpResult, post

log = logging.getLogger("agglo.webhooks")

Sender = Callable[[ssrf.Target, bytes, dict[str, str], float], HttpResult]


def webhook_policy(settings: Settings) -> RetryPolicy:
    """Exponential back-off with jitter from 5 s to 1 h between tries, up to the horizon (3 days)."""
    return RetryPolicy(
        initial=timedelta(seconds=5),
        multiplier=2.0,
        max_delay=timedelta(hours=1),
        max_attempts=1000,
        horizon=timedelta(seconds=settings.webhook_retry_horizon_seconds),
    )


def body_of(delivery: DeliveryRecord) -> bytes:
    """The exact bytes that are signed and sent (stable across retries)."""
    return json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


# -- dispatch: outbox events to deliveries ------------------------------------------------------------


def _instance_facts(instance: InstanceRecord | None) -> dict[str, Any] | None:
    if instance is None:
        return None
    return {
        "id": instance.id,
        "process_key": instance.process_key,
        "business_key": instance.business_key,
        "organisation": instance.organisation,
    }


def dispatch(store: Store, clock: Clock, owner: str, batch: int = 500, lease_seconds: float = 60.0) -> SweepReport:
    report = SweepReport("webhook_dispatch")
    now = clock.now()
    with store.transaction() as tx:
        claimed = tx.claim_outbox(batch, owner, now, now + timedelta(seconds=lease_seconds))
    report.claimed = len(claimed)
    if not claimed:
        return report
    with store.transaction() as tx:
        # A subscription the worker disabled (410, a run of failures) still gets its events queued:
        # they wait, undelivered, until an administrator enables it again. One switched off by an
        # administrator gets nothing.
        subscriptions = [s for s in tx.list_subscriptions() if s.active or s.disabled_at is not None]
        instances: dict[str, InstanceRecord | None] = {}
        deliveries: list[DeliveryRecord] = []
        for event in claimed:
            if not any(s.wants_type(event.type) for s in subscriptions):
                continue  # nobody listens for this type: no instance to read, nothing to queue
            instance = None
            if event.instance_id:
                if event.instance_id not in instances:
                    instances[event.instance_id] = tx.get_instance(event.instance_id)
                instance = instances[event.instance_id]
            organisation = instance.organisation if instance is not None else event.entry.organisation
            wanted = [s for s in subscriptions if replace(s, active=True).wants(event.type, organisation)]
            if not wanted:
                continue
            payload = events.envelope(event.event_id, event.entry, _instance_facts(instance))
            deliveries += [
                DeliveryRecord(
                    id=f"{event.event_id}:{s.id}",
                    event_id=event.event_id,
                    channel="webhook",
                    recipient=s.id,
                    address=s.url,
                    status=DeliveryStatus.QUEUED,
                    created_at=now,
                    payload=payload,
                    instance_id=event.instance_id,
                    seq=event.seq,
                )
                for s in wanted
            ]
        tx.insert_deliveries(deliveries)
        tx.mark_dispatched([e.seq for e in claimed], owner, now)
    report.done = len(claimed)
    report.deferred = len(deliveries)  # deliveries created
    return report


# -- deliver: send, log, retry, disable ------------------------------------------------------------------


@dataclass(frozen=True)
class _Sent:
    delivery: DeliveryRecord
    result: HttpResult
    at: datetime


def default_lease(settings: Settings, batch: int, threads: int) -> float:
    """Seconds a round's claim is held: long enough to send the whole batch even when every
    request runs into its timeout (so no other worker takes a delivery over while it is still
    being sent), and at least the worker's lease."""
    rounds = math.ceil(max(batch, 1) / max(threads, 1))
    return max(settings.worker_lease_seconds, 2 * settings.webhook_timeout_seconds * rounds)


def _targets(
    subscriptions: dict[str, Subscription], wanted: set[str], settings: Settings, resolver: ssrf.Resolver
) -> dict[str, ssrf.Target | str]:
    """Each subscription's URL checked (and resolved) once per round: a target, or why refused."""
    allow = [h for h in settings.webhook_allow_hosts.split(",") if h.strip()]
    targets: dict[str, ssrf.Target | str] = {}
    for sub_id in wanted:
        try:
            targets[sub_id] = ssrf.check(subscriptions[sub_id].url, allow, resolver)
        except ssrf.UrlRefused as exc:
            targets[sub_id] = f"refused: {exc.reason}"
    return targets


def _send(
    delivery: DeliveryRecord,
    subscription: Subscription,
    target: ssrf.Target | str,
    now: datetime,
    settings: Settings,
    sender: Sender,
) -> HttpResult:
    if isinstance(target, str):
        return HttpResult(None, 0.0, "", target)  # the SSRF check refused it: never connected to
    body = body_of(delivery)
    signed = signing.headers(subscription.secrets(now), delivery.event_id, now, body)
    return sender(target, body, signed.as_dict(), settings.webhook_timeout_seconds)


def deliver(
    store: Store,
    clock: Clock,
    settings: Settings,
    owner: str,
    batch: int = 200,
    *,
    sender: Sender = post,
    resolver: ssrf.Resolver = ssrf.system_resolver,
    threads: int = 16,
    lease_seconds: float | None = None,
    rng: random.Random | None = None,
    budget_seconds: float = 2.0,
) -> SweepReport:
    """Send due deliveries in rounds until none is due or the time budget is spent (a round
    that succeeds unblocks the next event of each instance, which the next round sends)."""
    report = SweepReport("webhooks")
    started = time.monotonic()
    lease = timedelta(seconds=lease_seconds if lease_seconds is not None else default_lease(settings, batch, threads))
    pool: ThreadPoolExecutor | None = None
    try:
        while True:
            now = clock.now()
            with store.transaction() as tx:
                claimed = tx.claim_webhook_deliveries(now, batch, owner, now + lease)
                subscriptions = {s.id: s for s in tx.list_subscriptions()} if claimed else {}
            report.claimed += len(claimed)
            if not claimed:
                return report
            targets = _targets(subscriptions, {d.recipient for d in claimed}, settings, resolver)

            def one(
                delivery: DeliveryRecord,
                subscriptions: dict[str, Subscription] = subscriptions,
                targets: dict[str, ssrf.Target | str] = targets,
            ) -> _Sent:
                at = clock.now()
                subscription = subscriptions[delivery.recipient]
                result = _send(delivery, subscription, targets[delivery.recipient], at, settings, sender)
                return _Sent(delivery, result, at)

            if len(claimed) == 1 or threads <= 1:
                results = [one(d) for d in claimed]
            else:
                if pool is None:
                    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="webhook")
                results = list(pool.map(one, claimed))
            _record(store, clock, settings, owner, results, subscriptions, report, rng)
            if not any(r.result.ok for r in results) or time.monotonic() - started > budget_seconds:
                return report
    finally:
        if pool is not None:
            pool.shutdown(wait=True)


def _record(
    store: Store,
    clock: Clock,
    settings: Settings,
    owner: str,
    results: Sequence[_Sent],
    subscriptions: dict[str, Subscription],
    report: SweepReport,
    rng: random.Random | None,
) -> None:
    """One transaction per round: every delivery's outcome and attempt written in one statement each."""
    policy = webhook_policy(settings)
    now = clock.now()
    failures: dict[str, int] = {}
    successes: set[str] = set()
    gone: dict[str, str] = {}
    updates: list[tuple[str, dict[str, Any]]] = []
    attempts: list[DeliveryAttempt] = []
    for sent in results:
        d, r = sent.delivery, sent.result
        excerpt = r.excerpt[:2000] if r.excerpt else None
        reply = f"{r.status} {excerpt or ''}"[:500] if r.status is not None else None
        # The same columns for every outcome, so that one statement updates the whole round.
        changes: dict[str, Any] = {
            "status": DeliveryStatus.SENT,
            "attempts": d.attempts + 1,
            "sent_at": d.sent_at,
            "next_attempt_at": None,
            "last_error": None,
            "reply": reply,
        }
        if r.ok:
            outcome = "sent"
            changes["sent_at"] = sent.at
            successes.add(d.recipient)
            report.done += 1
        elif r.status == 410:
            outcome = "disabled"
            changes.update(status=DeliveryStatus.FAILED, last_error="410 Gone: the receiver asked to stop")
            gone[d.recipient] = "410 Gone"
            report.failed += 1
        else:
            error = r.error or f"HTTP {r.status}"
            retry_at = policy.next_attempt(d.attempts + 1, d.created_at, now, rng)
            if retry_at is not None and r.retry_after:
                retry_at = max(retry_at, now + timedelta(seconds=min(r.retry_after, 3600)))
            outcome = "retry" if retry_at is not None else "failed"
            changes.update(
                status=DeliveryStatus.RETRY if retry_at is not None else DeliveryStatus.FAILED,
                next_attempt_at=retry_at,
                last_error=error[:2000],
            )
            failures[d.recipient] = failures.get(d.recipient, 0) + 1
            report.failed += 1
            report.errors.append(f"{d.id}: {error[:200]}")
        updates.append((d.id, changes))
        attempts.append(
            DeliveryAttempt(
                delivery_id=d.id,
                channel="webhook",
                recipient=d.recipient,
                at=sent.at,
                outcome=outcome,
                status=r.status,
                latency_ms=round(r.latency_ms, 2),
                excerpt=excerpt,
                error=r.error,
            )
        )
    with store.transaction() as tx:
        tx.update_deliveries(updates, owner)
        tx.insert_attempts(attempts)
        for sub_id in successes | set(failures) | set(gone):
            sub = subscriptions[sub_id]
            if sub_id in gone:
                _disable(tx, sub, now, gone[sub_id])
                continue
            current = tx.get_subscription(sub_id) or sub
            streak = 0 if sub_id in successes and sub_id not in failures else current.consecutive_failures
            streak += failures.get(sub_id, 0)
            if streak != current.consecutive_failures:
                tx.update_subscription(sub_id, consecutive_failures=streak)
            if current.active and streak >= settings.webhook_disable_after_failures:
                _disable(tx, current, now, f"{streak} failed deliveries in a row")


def _disable(tx: Any, sub: Subscription, now: datetime, reason: str) -> None:
    if not sub.active:
        return
    tx.update_subscription(sub.id, active=False, disabled_at=now, disabled_reason=reason, updated_at=now)
    tx.append_audit(
        [
            AuditEntry(
                now,
                SYSTEM_ACTOR.login,
                SYSTEM_ACTOR.organisation,
                "webhook.disabled",
                details={"subscription": sub.id, "url": sub.url, "reason": reason},
            )
        ]
    )
    admins = [u for u in tx.list_users() if Role.ADMIN in u.roles and u.active]
    text = (
        f"Подписка на события {sub.url} отключена: {reason}. Недоставленные события сохранены; "
        "после исправления включите подписку снова — они будут доставлены."
    )
    message = Message(subject=f"Отключена подписка на события: {sub.url}", text=text, html=None)
    notes, deliveries = notify.fan_out(
        message,
        "webhook_disabled",
        admins,
        event_id=f"webhook-disabled:{sub.id}:{now.isoformat()}",
        now=now,
        fields=None,
    )
    tx.insert_notifications(notes)
    tx.insert_deliveries(deliveries)
