"""The e-mail channel's sweep: send queued e-mail deliveries, once.

Deliveries are leased in batches (expired leases of a dead worker are taken over). For each,
the mailer's commit point is a separate small transaction that marks the delivery ``sent``
while the message is still unterminated on the wire (see :mod:`webhooks.email`), so a killed
worker never causes a duplicate. Failures are retried on the retry policy; a permanent
refusal, or giving up, marks the delivery ``failed``; a reply lost after the commit leaves it
``unconfirmed`` for a person to check (resending could duplicate it).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Protocol

from engine import notifications
from engine.clock import Clock
from engine.ports import Store
from engine.records import DeliveryAttempt, DeliveryRecord, DeliveryStatus
from engine.retry import MAIL_RETRY, RetryPolicy
from engine.sweeps import SweepReport

from .email import Email, MailError

log = logging.getLogger("agglo.mail")


class Mailer(Protocol):
    def send(self, email: Email, commit_sent: Callable[[], None]) -> str: ...


def message_id(delivery: DeliveryRecord) -> str:
    """The Message-ID of a delivery: stable, so a receiver could dedupe on it."""
    digest = hashlib.sha256(delivery.id.encode("utf-8")).hexdigest()[:32]
    return f"<{digest}@agglo>"


def email_of(delivery: DeliveryRecord) -> Email:
    """The e-mail of a delivery: rendered now from the template's fields, or as queued."""
    payload = delivery.payload
    fields = payload.get("fields")
    if isinstance(fields, dict):
        message = notifications.render(str(payload.get("kind")), fields)
        subject, text, html = message.subject, message.text, message.html
    else:
        subject, text = str(payload.get("subject", "")), str(payload.get("text", ""))
        html = payload.get("html") if isinstance(payload.get("html"), str) else None
    return Email(
        to=delivery.address or "",
        subject=subject,
        text=text,
        html=html,
        message_id=message_id(delivery),
        headers={"X-Agglo-Event": delivery.event_id[:200]},
    )


def sweep(
    store: Store,
    mailer: Mailer,
    clock: Clock,
    owner: str,
    batch: int = 100,
    lease_seconds: float = 120.0,
    policy: RetryPolicy = MAIL_RETRY,
) -> SweepReport:
    report = SweepReport("email")
    now = clock.now()
    with store.transaction() as tx:
        claimed = tx.claim_deliveries("email", now, batch, owner, now + timedelta(seconds=lease_seconds))
    report.claimed = len(claimed)
    for delivery in claimed:
        committed = {"done": False}

        def commit_sent(delivery: DeliveryRecord = delivery, committed: dict[str, bool] = committed) -> None:
            with store.transaction() as tx:
                if not tx.update_delivery(
                    delivery.id,
                    owner,
                    status=DeliveryStatus.SENT,
                    sent_at=clock.now(),
                    attempts=delivery.attempts + 1,
                    last_error=None,
                ):
                    raise RuntimeError(f"lease on delivery {delivery.id} was lost; not sending")
                # Logged with the commit point, so a worker killed before the reply leaves no gap.
                tx.insert_attempt(_attempt(delivery, clock, "sent", None, None, None))
            committed["done"] = True

        try:
            reply = mailer.send(email_of(delivery), commit_sent)
        except MailError as exc:
            report.failed += 1
            report.errors.append(f"{delivery.id}: {exc.message}")
            _after_failure(store, clock, owner, delivery, exc, policy, report)
            continue
        except Exception as exc:
            report.failed += 1
            report.errors.append(f"{delivery.id}: {type(exc).__name__}: {exc}")
            log.exception("e-mail delivery %s failed", delivery.id)
            if not committed["done"]:
                _after_failure(store, clock, owner, delivery, MailError(str(exc)), policy, report)
            continue
        with store.transaction() as tx:
            tx.update_delivery(delivery.id, None, reply=reply[:500])
        report.done += 1
    return report


def _attempt(
    delivery: DeliveryRecord, clock: Clock, outcome: str, excerpt: str | None, error: str | None, code: int | None
) -> DeliveryAttempt:
    """The delivery log row of one e-mail attempt (``status`` is the SMTP reply code)."""
    return DeliveryAttempt(
        delivery_id=delivery.id,
        channel="email",
        recipient=delivery.recipient,
        at=clock.now(),
        outcome=outcome,
        status=code,
        excerpt=excerpt,
        error=error,
    )


def _after_failure(
    store: Store,
    clock: Clock,
    owner: str,
    delivery: DeliveryRecord,
    exc: MailError,
    policy: RetryPolicy,
    report: SweepReport,
) -> None:
    now = clock.now()
    attempts = delivery.attempts + 1
    # After the commit the row says "sent" and the lease is released: reopen it without one.
    lease = None if exc.committed else owner
    if exc.committed and exc.smtp_code is None:
        with store.transaction() as tx:
            tx.update_delivery(delivery.id, lease, status=DeliveryStatus.UNCONFIRMED, last_error=exc.message[:2000])
            tx.insert_attempt(_attempt(delivery, clock, "unconfirmed", None, exc.message[:2000], None))
        return
    retry_at = None if exc.permanent else policy.next_attempt(attempts, delivery.created_at, now)
    with store.transaction() as tx:
        outcome = "failed" if retry_at is None else "retry"
        tx.insert_attempt(_attempt(delivery, clock, outcome, None, exc.message[:2000], exc.smtp_code))
        if retry_at is None:
            tx.update_delivery(
                delivery.id, lease, status=DeliveryStatus.FAILED, attempts=attempts, last_error=exc.message[:2000]
            )
        else:
            tx.update_delivery(
                delivery.id,
                lease,
                status=DeliveryStatus.RETRY,
                attempts=attempts,
                next_attempt_at=retry_at,
                last_error=exc.message[:2000],
            )
            report.deferred += 1
