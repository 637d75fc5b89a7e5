"""The worker's sweeps: idempotent commands over our own tables, run on every scheduler tick.

* :func:`timers` fires the instances whose next timer is due (claimed with a lease, each in
  its own transaction; a failing step becomes an incident and the sweep goes on);
* :func:`reminders` fires due deadline reminders and escalations in batches, each batch one
  transaction over rows locked with ``FOR UPDATE SKIP LOCKED`` (a worker killed mid-batch
  rolls back: nothing is lost, and the reminder key makes a reminder happen once);
* :func:`start_timers` starts instances of processes with a timer start event.

Time comes from the engine's clock; ``owner`` names the worker for leases and diagnostics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import notifications, notify
from . import start_timers as schedule
from .clock import REGION_TZ
from .directory import SYSTEM_ACTOR, Role
from .errors import AggloError, ConcurrencyConflict, InvalidState, NotFound
from .records import AuditEntry, DeadlineRecord, DeliveryRecord, NotificationRecord, ReminderRecord, TaskRecord
from .reminders import (
    ReminderPolicy,
    in_quiet_hours,
    next_point,
    quiet_hours_end,
    supervising_role,
)

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("agglo.sweeps")

RETRY_AFTER = timedelta(hours=1)

TEMPLATE = {
    "before": "reminder_before",
    "due_today": "reminder_due_today",
    "overdue": "reminder_overdue",
    "escalation": "escalation",
}
EVENT = {
    "before": "deadline.reminder",
    "due_today": "deadline.reminder",
    "overdue": "deadline.overdue",
    "escalation": "deadline.escalated",
}


@dataclass
class SweepReport:
    name: str
    claimed: int = 0
    done: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "claimed": self.claimed,
            "done": self.done,
            "deferred": self.deferred,
            "failed": self.failed,
            "errors": self.errors[:10],
        }


def timers(engine: Engine, owner: str, batch: int = 100, lease_seconds: float = 60.0) -> SweepReport:
    report = SweepReport("timers")
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        ids = tx.claim_due_instances(now, batch, owner, now + timedelta(seconds=lease_seconds))
    report.claimed = len(ids)
    for instance_id in ids:
        try:
            view = engine.fire_timers(instance_id, SYSTEM_ACTOR, background=True, lease_owner=owner)
            report.done += 1
            if view.instance.incident:
                report.failed += 1
                report.errors.append(f"{instance_id}: {view.instance.incident}")
        except (ConcurrencyConflict, InvalidState, NotFound) as exc:
            report.deferred += 1  # someone else moved it first, or it ended meanwhile
            log.info("timer sweep skipped %s: %s", instance_id, exc)
        except Exception as exc:
            report.failed += 1
            report.errors.append(f"{instance_id}: {type(exc).__name__}: {exc}")
            log.exception("timer sweep failed on %s", instance_id)
            with engine.store.transaction() as tx:
                tx.release_instance(instance_id, owner)
    return report


def _kind_of(key: str) -> tuple[str, int]:
    """``before:7`` -> ("before", 7); ``due`` -> ("due_today", 0); ``escalation`` ..."""
    name, _, number = key.partition(":")
    kind = {"due": "due_today"}.get(name, name)
    return kind, int(number) if number else 0


def reminders(engine: Engine, owner: str, batch: int = 500) -> SweepReport:
    """Fire the reminders and escalations that are due, one batch per transaction."""
    report = SweepReport("reminders")
    settings = engine.settings
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        claimed = tx.claim_due_deadlines(now, batch, owner)
        report.claimed = len(claimed)
        if not claimed:
            return report
        calendar = engine.calendar_for(tx)
        users = tx.list_users()
        org_names = {o.code: o.name for o in tx.list_organisations()}
        quiet = in_quiet_hours(now, settings.quiet_hours_start, settings.quiet_hours_end)
        fired: list[ReminderRecord] = []
        audit: list[AuditEntry] = []
        notes: list[NotificationRecord] = []
        deliveries: list[DeliveryRecord] = []
        updates: list[tuple[str, int, dict[str, Any]]] = []
        deferred: list[tuple[str, int, dict[str, Any]]] = []
        for deadline, task in claimed:
            if quiet:
                # Delayed to the end of quiet hours, never dropped.
                deferred.append(
                    (
                        deadline.id,
                        deadline.version,
                        {
                            "next_reminder_at": quiet_hours_end(now, settings.quiet_hours_end),
                            "version": deadline.version + 1,
                        },
                    )
                )
                report.deferred += 1
                continue
            try:
                policy = ReminderPolicy.from_dict(deadline.policy)
                reminder, entry, n, d = _fire(engine, tx, deadline, task, policy, users, org_names, now)
            except Exception as exc:  # any failure, expected or not, stays with its own deadline
                # Recorded, and retried later: a failing reminder must neither be lost nor be
                # retried on every tick, blocking the others of its batch.
                why = exc.message if isinstance(exc, AggloError) else f"{type(exc).__name__}: {exc}"
                report.failed += 1
                report.errors.append(f"deadline {deadline.id}: {why}")
                if isinstance(exc, AggloError):
                    log.warning("reminder for deadline %s failed: %s", deadline.id, why)
                else:
                    log.exception("reminder for deadline %s failed", deadline.id)
                audit.append(
                    AuditEntry(
                        now,
                        SYSTEM_ACTOR.login,
                        task.organisation,
                        "deadline.reminder_failed",
                        instance_id=deadline.instance_id,
                        task_id=task.id,
                        element_id=task.element_id,
                        details={
                            "deadline_id": deadline.id,
                            "reminder": deadline.next_reminder_key,
                            "error": why,
                        },
                    )
                )
                deferred.append(
                    (
                        deadline.id,
                        deadline.version,
                        {"next_reminder_at": now + RETRY_AFTER, "version": deadline.version + 1},
                    )
                )
                continue
            fired.append(reminder)
            audit.append(entry)
            notes += n
            deliveries += d
            point = next_point(
                policy, deadline.final_date, calendar, after=deadline.next_reminder_at, created=deadline.created_at
            )
            updates.append(
                (
                    deadline.id,
                    deadline.version,
                    {
                        "next_reminder_at": point.at if point else None,
                        "next_reminder_key": point.key if point else None,
                        "last_reminder_at": now,
                        "escalated_at": now if reminder.kind == "escalation" else deadline.escalated_at,
                        "lease_owner": owner,
                        "version": deadline.version + 1,
                    },
                )
            )
        tx.insert_reminders(fired)
        tx.append_audit(audit)
        tx.insert_notifications(notes)
        tx.insert_deliveries(deliveries)
        tx.update_deadlines(updates)
        tx.update_deadlines(deferred)
        report.done = len(fired)
    return report


def _fire(
    engine: Engine,
    tx: Any,
    deadline: DeadlineRecord,
    task: TaskRecord,
    policy: ReminderPolicy,
    users: list[Any],
    org_names: dict[str, str],
    now: datetime,
) -> tuple[ReminderRecord, AuditEntry, list[NotificationRecord], list[DeliveryRecord]]:
    kind, days = _kind_of(deadline.next_reminder_key or "due")
    key = f"{deadline.id}:{deadline.plan_version}:{deadline.next_reminder_key}"
    if kind == "escalation":
        # How late it really is (an escalation brought forward may be later than the policy's N).
        today = now.astimezone(REGION_TZ).date()
        days = max(1, engine.calendar_for(tx).working_days_between(deadline.final_date, today))
    if kind == "escalation":
        role = policy.escalation_to or supervising_role(task.candidate_roles)
        recipients = notify.role_holders(role, users, task.organisation if role == Role.MOUO else None)
    else:
        recipients = notify.performers(task, users)
    compiled = engine._compiled_for(tx, task.definition_id)
    fields = engine._notice_fields(tx, compiled, task, deadline.final_date, deadline, org_names)
    if kind != "due_today":
        fields["days"] = days
    message = notifications.render(TEMPLATE[kind], fields, html=False)
    event_id = f"reminder:{key}"
    notes, deliveries = notify.fan_out(
        message,
        TEMPLATE[kind],
        recipients,
        event_id=event_id,
        now=now,
        instance_id=task.instance_id,
        task_id=task.id,
        deadline_id=deadline.id,
        fields=fields,
    )
    logins = tuple(u.login for u in recipients)
    reminder = ReminderRecord(
        key=key,
        deadline_id=deadline.id,
        instance_id=deadline.instance_id,
        task_id=task.id,
        kind=kind,
        days=days,
        planned_at=deadline.next_reminder_at or now,
        fired_at=now,
        recipients=logins,
        event_id=event_id,
    )
    entry = AuditEntry(
        now,
        SYSTEM_ACTOR.login,
        task.organisation,
        EVENT[kind],
        instance_id=deadline.instance_id,
        task_id=task.id,
        element_id=task.element_id,
        details={
            "reminder": key,
            "kind": kind,
            "days": days,
            "deadline_id": deadline.id,
            "due": deadline.final_date.isoformat(),
            "explanation": deadline.explanation,
            "recipients": list(logins),
        },
    )
    return reminder, entry, notes, deliveries


def start_timers(engine: Engine, owner: str, batch: int = 20, lease_seconds: float = 60.0) -> SweepReport:
    """Start instances of processes whose timer start event has come."""
    report = SweepReport("start_timers")
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        due = tx.claim_due_start_timers(now, batch, owner, now + timedelta(seconds=lease_seconds))
    report.claimed = len(due)
    for timer in due:
        try:
            engine.start_by_timer(timer)
            report.done += 1
        except Exception as exc:
            report.failed += 1
            report.errors.append(f"{timer.id}: {type(exc).__name__}: {exc}")
            log.exception("start timer %s failed", timer.id)
        evaluate = engine.sandbox_evaluator(now)
        try:
            occurrence = schedule.following(
                timer.kind, timer.expression, timer.next_due_at or now, timer.cycles_left, evaluate
            )
        except AggloError as exc:
            report.errors.append(f"{timer.id}: {exc.message}")
            occurrence = schedule.Occurrence(None, 0)
        with engine.store.transaction() as tx:
            tx.update_start_timer(
                timer.id,
                next_due_at=occurrence.due,
                cycles_left=occurrence.cycles_left,
                active=occurrence.due is not None,
            )
    return report
