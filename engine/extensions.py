"""Deadline extension requests: the performer asks, the controlling role decides.

The performer of a task with an open deadline asks for a later date with a reason; the
controlling role (the task's ``extension.approver`` property, else the supervising role: the
coordinator for a МОУО, the Ministry for the coordinator) approves or refuses with a
comment. Approval moves the deadline (its original date is kept), re-plans its reminders,
moves the task's due date and any variable that mirrors the date (so timers that read it move
too). Everything is audited and the people concerned are notified.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING

from . import access, notifications, notify, tracking
from .directory import Actor
from .errors import BadInput, InvalidState, NotFound, NotPermitted
from .notifications import format_day
from .ports import ExtensionQuery
from .records import AuditEntry, DeadlineStatus, ExtensionRequest, ExtensionStatus, TaskStatus
from .reminders import supervising_role

if TYPE_CHECKING:
    from .engine import Engine

APPROVER_PROPERTY = "extension.approver"


def request(engine: Engine, task_id: str, actor: Actor, reason: str, proposed: date) -> ExtensionRequest:
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise BadInput("give the reason for the extension", field="reason")
    with engine.store.transaction() as tx:
        task = tx.get_task(task_id)
        if task is None:
            raise NotFound("task", task_id)
        access.check_task_actionable(actor, task, "ask for an extension of")
        if task.status != TaskStatus.OPEN:
            raise InvalidState(f"task {task_id} is {task.status.value}")
        deadline = tx.deadline_of_task(task_id)
        if deadline is None or deadline.status != DeadlineStatus.OPEN:
            raise InvalidState(f"task {task_id} has no open deadline")
        if proposed <= deadline.final_date:
            raise BadInput(
                f"the proposed date must be later than the current deadline {deadline.final_date:%d.%m.%Y}",
                field="proposed_date",
            )
        if tx.list_extensions(ExtensionQuery(status=ExtensionStatus.PENDING, deadline_id=deadline.id)):
            raise InvalidState("an extension request for this deadline is already waiting for a decision")
        compiled = engine._compiled_for(tx, task.definition_id)
        info = compiled.model.elements.get(task.element_id)
        approver = (info.properties.get(APPROVER_PROPERTY) if info else None) or supervising_role(task.candidate_roles)
        now = engine.clock.now()
        req = ExtensionRequest(
            id=engine._new_id(),
            deadline_id=deadline.id,
            task_id=task.id,
            instance_id=task.instance_id,
            requested_by=actor.login,
            requested_at=now,
            reason=reason,
            proposed_date=proposed,
            approver_role=approver,
            organisation=task.organisation,
        )
        tx.insert_extension(req)
        fields = engine._notice_fields(tx, compiled, task, deadline.final_date, deadline)
        fields.update(new_due=proposed, reason=reason)
        message = notifications.render("extension_requested", fields)
        notes, deliveries = notify.fan_out(
            message,
            "extension_requested",
            notify.role_holders(approver, tx.list_users()),
            event_id=f"extension-requested:{req.id}",
            now=now,
            instance_id=task.instance_id,
            task_id=task.id,
            deadline_id=deadline.id,
            fields=fields,
        )
        tx.insert_notifications(notes)
        tx.insert_deliveries(deliveries)
        tx.append_audit(
            [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "extension.requested",
                    instance_id=task.instance_id,
                    task_id=task.id,
                    element_id=task.element_id,
                    details={
                        "request_id": req.id,
                        "deadline_id": deadline.id,
                        "reason": reason,
                        "current": deadline.final_date.isoformat(),
                        "proposed": proposed.isoformat(),
                        "approver_role": approver,
                    },
                )
            ]
        )
        return req


def decide(
    engine: Engine,
    request_id: str,
    actor: Actor,
    approve: bool,
    comment: str | None = None,
    new_date: date | None = None,
) -> ExtensionRequest:
    comment = (comment or "").strip() or None
    with engine.store.transaction() as tx:
        req = tx.get_extension(request_id)
        if req is None:
            raise NotFound("extension request", request_id)
        if not (actor.is_admin or req.approver_role in actor.roles):
            # Whoever may not even see the request (another municipality's) learns nothing of it.
            if not (
                access.sees_all_instances(actor)
                or req.requested_by == actor.login
                or (req.organisation is not None and req.organisation == actor.organisation)
            ):
                raise NotFound("extension request", request_id)
            raise NotPermitted(
                actor.login, "decide", f"extension request {request_id}", f"the {req.approver_role} decides on it"
            )
        if req.status != ExtensionStatus.PENDING:
            raise InvalidState(f"extension request {request_id} is already {req.status.value}")
        if not approve and not comment:
            raise BadInput("a refusal needs a comment", field="comment")
        deadline = tx.get_deadline(req.deadline_id)
        task = tx.get_task(req.task_id)
        if deadline is None or task is None:
            raise NotFound("deadline", req.deadline_id)
        compiled = engine._compiled_for(tx, task.definition_id)
        now = engine.clock.now()
        audit: list[AuditEntry] = []
        granted: date | None = None
        if approve:
            if deadline.status != DeadlineStatus.OPEN:
                raise InvalidState("the task's deadline is no longer open")
            granted = new_date or req.proposed_date
            if granted <= deadline.final_date:
                raise BadInput(f"the new date must be later than {deadline.final_date:%d.%m.%Y}", field="new_date")
            calendar = engine.calendar_for(tx)
            if calendar.is_working_day(granted):
                final, day = granted, f"{format_day(granted)}, рабочий день"
            else:
                # A term ending on a non-working day ends on the next working day (Civil Code art. 193).
                final = calendar.next_working_day(granted)
                holiday = calendar.holiday_name(granted)
                kind = f"нерабочий праздничный день ({holiday})" if holiday else "нерабочий день"
                day = (
                    f"{format_day(granted)}, {kind} → перенос на следующий рабочий день {format_day(final)}, "
                    "ст. 193 ГК РФ"
                )
            explanation = (
                f"продлён до {day}, по запросу {req.requested_by} («{req.reason}»); решение {actor.login} "
                f"от {now:%d.%m.%Y}; первоначальный срок {deadline.original_date:%d.%m.%Y}"
            )
            decided, granted = granted, final
            moved = tracking.reschedule(
                deadline,
                final=final,
                raw=decided,
                explanation=explanation,
                now=now,
                calendar=calendar,
                extension=True,
            )
            audit += engine._move_deadline(tx, compiled, deadline, moved, actor, now, reason="продление срока")
            if moved.variable:
                engine._mirror_variable(tx, compiled, task.instance_id, moved.variable, granted.isoformat(), actor, now)
        status = ExtensionStatus.APPROVED if approve else ExtensionStatus.REFUSED
        tx.update_extension(
            request_id,
            ExtensionStatus.PENDING,
            status=status,
            decided_by=actor.login,
            decided_at=now,
            comment=comment,
            new_date=granted,
        )
        fields = engine._notice_fields(tx, compiled, task, deadline.final_date, deadline)
        fields.update(approved=approve, comment=comment or "", new_due=granted or deadline.final_date)
        message = notifications.render("extension_decided", fields)
        requester = [u for u in tx.list_users() if u.login == req.requested_by and u.active]
        notes, deliveries = notify.fan_out(
            message,
            "extension_decided",
            requester,
            event_id=f"extension-decided:{req.id}",
            now=now,
            instance_id=task.instance_id,
            task_id=task.id,
            deadline_id=deadline.id,
            fields=fields,
        )
        tx.insert_notifications(notes)
        tx.insert_deliveries(deliveries)
        audit.append(
            AuditEntry(
                now,
                actor.login,
                actor.organisation,
                "extension.decided",
                instance_id=task.instance_id,
                task_id=task.id,
                element_id=task.element_id,
                details={
                    "request_id": req.id,
                    "approved": approve,
                    "comment": comment,
                    "new_date": granted.isoformat() if granted else None,
                },
            )
        )
        tx.append_audit(audit)
        updated = tx.get_extension(request_id)
        assert updated is not None
        return updated
