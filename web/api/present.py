"""How the API shows each object: a serialiser and its JSON Schema side by side.

The schemas are registered as OpenAPI components; schemathesis checks every response
against them, so a serialiser that drifts from its schema fails the suite.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from engine.directory import Member, Organisation, User
from engine.engine import TaskView, audit_to_dict
from engine.records import (
    ApiToken,
    AttachmentRecord,
    AuditEntry,
    CommentRecord,
    DeadlineRecord,
    DefinitionRecord,
    DeliveryAttempt,
    DeliveryRecord,
    ExtensionRequest,
    InboundMessage,
    InboundSource,
    InstanceRecord,
    NotificationRecord,
    ReminderRecord,
    Subscription,
)
from engine.reports import DiagramState, OverdueGroup

from .spec import Api, ref


def iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


S = {"type": "string"}
NS = {"type": ["string", "null"]}
DT = {"type": "string", "format": "date-time"}
NDT = {"type": ["string", "null"], "format": "date-time"}
D = {"type": "string", "format": "date"}
ND = {"type": ["string", "null"], "format": "date"}
I = {"type": "integer"}  # noqa: E741
B = {"type": "boolean"}
OBJ = {"type": "object"}
STRS = {"type": "array", "items": S}


def obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


def register(api: Api) -> None:
    """Register every component schema on ``api``."""
    api.schema(
        "Problem",
        {
            "type": "object",
            "description": "An RFC 9457 problem document; `errors` lists every bad field.",
            "required": ["type", "title", "status", "detail", "code"],
            "properties": {
                "type": S,
                "title": S,
                "status": I,
                "detail": S,
                "instance": S,
                "code": S,
                "errors": {
                    "type": "array",
                    "items": {"type": "object", "properties": {"field": NS, "code": S, "message": S}},
                },
            },
        },
    )
    api.schema(
        "Definition",
        obj(
            ["id", "key", "version", "deployment_id", "content_hash", "deployed_at"],
            id=S,
            key=S,
            version=I,
            name=NS,
            deployment_id=S,
            content_hash=S,
            deployed_at=DT,
            calls={"type": "object", "additionalProperties": S},
        ),
    )
    api.schema(
        "DefinitionDetail",
        {
            "allOf": [ref("Definition")],
            "type": "object",
            "properties": {
                "startable": B,
                "start_form": {"type": ["object", "null"]},
                "elements": {
                    "type": "array",
                    "items": obj(
                        ["id", "kind"],
                        id=S,
                        kind=S,
                        name=NS,
                        clause=NS,
                        documentation=NS,
                        lane=NS,
                    ),
                },
            },
        },
    )
    api.schema(
        "Deployment",
        obj(
            ["deployment_id", "created", "definitions"],
            deployment_id=S,
            filename=S,
            created=B,
            deployed_at=DT,
            deployed_by=S,
            definitions={"type": "array", "items": ref("Definition")},
        ),
    )
    api.schema(
        "Instance",
        obj(
            ["id", "process_key", "status", "version", "started_at"],
            id=S,
            definition_id=S,
            process_key=S,
            business_key=NS,
            status={"type": "string", "enum": ["running", "waiting", "completed", "cancelled", "incident"]},
            organisation=NS,
            started_by=S,
            started_at=DT,
            updated_at=DT,
            ended_at=NDT,
            next_due_at=NDT,
            incident=NS,
            version=I,
        ),
    )
    deadline_brief = {
        "type": ["object", "null"],
        "properties": {
            "id": S,
            "date": D,
            "original_date": D,
            "explanation": S,
            "clause": NS,
            "rule": S,
            "extensions": I,
            "due_at": DT,
            "last_reminder_at": NDT,
            "escalated_at": NDT,
        },
    }
    api.schema(
        "Task",
        obj(
            ["id", "instance_id", "element_id", "process_key", "status", "created_at", "overdue"],
            id=S,
            name=NS,
            element_id=S,
            instance_id=S,
            process_key=S,
            process_name=NS,
            business_key=NS,
            lane=NS,
            candidate_roles=STRS,
            candidate_users=STRS,
            organisation=NS,
            assignee=NS,
            status={"type": "string", "enum": ["open", "completed", "cancelled"]},
            created_at=DT,
            due_at=NDT,
            follow_up_at=NDT,
            priority=I,
            form_key=NS,
            form={"type": ["object", "null"]},
            documentation=NS,
            clause=NS,
            completed_at=NDT,
            completed_by=NS,
            overdue=B,
            deadline=deadline_brief,
        ),
    )
    api.schema(
        "AuditEntry",
        obj(
            ["id", "at", "actor", "action"],
            id={"type": ["integer", "null"]},
            at=DT,
            actor=S,
            organisation=NS,
            action=S,
            instance_id=NS,
            task_id=NS,
            element_id=NS,
            definition_id=NS,
            details=OBJ,
            data_digest=NS,
        ),
    )
    api.schema(
        "InstanceDetail",
        {
            "type": "object",
            "required": ["id", "process_key", "status", "version", "variables", "tasks", "history"],
            "properties": {
                "id": S,
                "process_key": S,
                "process_name": NS,
                "definition_id": S,
                "definition_version": I,
                "business_key": NS,
                "status": S,
                "organisation": NS,
                "started_by": S,
                "started_at": DT,
                "ended_at": NDT,
                "next_due_at": NDT,
                "incident": NS,
                "version": I,
                "variables": OBJ,
                "tasks": {"type": "array", "items": ref("Task")},
                "history": {"type": "array", "items": ref("AuditEntry")},
            },
        },
    )
    api.schema(
        "Deadline",
        obj(
            ["id", "task_id", "instance_id", "date", "original_date", "due_at", "explanation", "status"],
            id=S,
            task_id=S,
            instance_id=S,
            element_id=S,
            process_key=S,
            organisation=NS,
            rule=S,
            anchor=NS,
            anchor_value=ND,
            clause=NS,
            raw_date=D,
            date=D,
            due_at=DT,
            explanation=S,
            original_date=D,
            original_explanation=S,
            status={"type": "string", "enum": ["open", "met", "cancelled"]},
            overdue=B,
            late=B,
            extensions=I,
            next_reminder_at=NDT,
            last_reminder_at=NDT,
            escalated_at=NDT,
            completed_at=NDT,
            version=I,
        ),
    )
    api.schema(
        "Reminder",
        obj(
            ["key", "kind", "fired_at"],
            key=S,
            kind=S,
            days=I,
            planned_at=DT,
            fired_at=DT,
            recipients=STRS,
        ),
    )
    api.schema(
        "DeadlineDetail",
        {
            "allOf": [ref("Deadline")],
            "type": "object",
            "properties": {
                "reminders": {"type": "array", "items": ref("Reminder")},
                "extension_requests": {"type": "array", "items": ref("ExtensionRequest")},
            },
        },
    )
    api.schema(
        "ExtensionRequest",
        obj(
            ["id", "task_id", "deadline_id", "status", "proposed_date", "reason", "requested_by"],
            id=S,
            deadline_id=S,
            task_id=S,
            instance_id=S,
            requested_by=S,
            requested_at=DT,
            reason=S,
            proposed_date=D,
            approver_role=S,
            organisation=NS,
            status={"type": "string", "enum": ["pending", "approved", "refused"]},
            decided_by=NS,
            decided_at=NDT,
            comment=NS,
            new_date=ND,
        ),
    )
    api.schema(
        "Organisation",
        obj(["code", "name", "kind"], code=S, name=S, kind=S, short_name=NS, municipality_kind=NS),
    )
    api.schema(
        "Member",
        obj(
            ["organisation", "name", "since_year", "source"],
            organisation=S,
            name=S,
            short_name=NS,
            since_year=I,
            until_year={"type": ["integer", "null"]},
            source=S,
            contract_number=NS,
            contract_date=ND,
            instance_id=NS,
        ),
    )
    api.schema(
        "User",
        obj(
            ["login", "name", "organisation", "roles", "active"],
            login=S,
            name=S,
            organisation=S,
            roles=STRS,
            active=B,
            email=NS,
            has_password=B,
        ),
    )
    api.schema(
        "Token",
        obj(
            ["id", "name", "prefix", "roles", "organisation", "created_at", "active"],
            id=S,
            name=S,
            prefix=S,
            roles=STRS,
            organisation=S,
            created_by=S,
            created_at=DT,
            revoked_at=NDT,
            last_used_at=NDT,
            active=B,
        ),
    )
    api.schema(
        "Notification",
        obj(
            ["id", "kind", "title", "created_at"],
            id=S,
            kind=S,
            title=S,
            body=S,
            created_at=DT,
            read_at=NDT,
            instance_id=NS,
            task_id=NS,
            deadline_id=NS,
        ),
    )
    api.schema(
        "Comment",
        obj(
            ["id", "task_id", "author", "at", "text"],
            id=S,
            task_id=S,
            instance_id=S,
            author=S,
            organisation=NS,
            at=DT,
            text=S,
        ),
    )
    api.schema(
        "Attachment",
        obj(
            ["id", "task_id", "filename", "content_type", "size", "sha256", "at"],
            id=S,
            task_id=S,
            instance_id=S,
            filename=S,
            content_type=S,
            size=I,
            sha256={"type": "string", "pattern": "^[0-9a-f]{64}$"},
            uploaded_by=S,
            organisation=NS,
            at=DT,
            url=S,
        ),
    )
    api.schema(
        "DiagramState",
        obj(
            ["instance_id", "definition_id", "completed", "active", "overdue"],
            instance_id=S,
            definition_id=S,
            completed=STRS,
            active=STRS,
            overdue=STRS,
            counts={"type": "object", "additionalProperties": I},
        ),
    )
    api.schema(
        "OverdueGroup",
        obj(
            ["organisation", "organisation_name", "count", "items"],
            organisation=NS,
            organisation_name=S,
            count=I,
            max_days_late=I,
            items={
                "type": "array",
                "items": obj(
                    ["task_id", "instance_id", "due_date", "days_late"],
                    organisation=NS,
                    organisation_name=S,
                    process_key=S,
                    process_name=NS,
                    task_id=S,
                    task_name=NS,
                    instance_id=S,
                    business_key=NS,
                    assignee=NS,
                    due_date=D,
                    original_date=D,
                    days_late=I,
                    working_days_late=I,
                    clause=NS,
                    explanation=S,
                    escalated=B,
                    extensions=I,
                ),
            },
        ),
    )


# -- serialisers ------------------------------------------------------------------------------------


def definition(d: DefinitionRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "key": d.key,
        "version": d.version,
        "name": d.name,
        "deployment_id": d.deployment_id,
        "content_hash": d.content_hash,
        "deployed_at": iso(d.deployed_at),
        "calls": dict(d.calls),
    }


def instance(i: InstanceRecord) -> dict[str, Any]:
    return {
        "id": i.id,
        "definition_id": i.definition_id,
        "process_key": i.process_key,
        "business_key": i.business_key,
        "status": i.status.value,
        "organisation": i.organisation,
        "started_by": i.started_by,
        "started_at": iso(i.started_at),
        "updated_at": iso(i.updated_at),
        "ended_at": iso(i.ended_at),
        "next_due_at": iso(i.next_due_at),
        "incident": i.incident,
        "version": i.version,
    }


def task(v: TaskView) -> dict[str, Any]:
    return v.to_dict()


def audit(e: AuditEntry) -> dict[str, Any]:
    return audit_to_dict(e)


def deadline(d: DeadlineRecord, now: datetime) -> dict[str, Any]:
    return {
        "id": d.id,
        "task_id": d.task_id,
        "instance_id": d.instance_id,
        "element_id": d.element_id,
        "process_key": d.process_key,
        "organisation": d.organisation,
        "rule": d.rule,
        "anchor": d.anchor,
        "anchor_value": iso(d.anchor_value),
        "clause": d.clause,
        "raw_date": iso(d.raw_date),
        "date": iso(d.final_date),
        "due_at": iso(d.due_at),
        "explanation": d.explanation,
        "original_date": iso(d.original_date),
        "original_explanation": d.original_explanation,
        "status": d.status.value,
        "overdue": d.status.value == "open" and d.due_at < now,
        "late": d.late,
        "extensions": d.extensions,
        "next_reminder_at": iso(d.next_reminder_at),
        "last_reminder_at": iso(d.last_reminder_at),
        "escalated_at": iso(d.escalated_at),
        "completed_at": iso(d.completed_at),
        "version": d.version,
    }


def reminder(r: ReminderRecord) -> dict[str, Any]:
    return {
        "key": r.key,
        "kind": r.kind,
        "days": r.days,
        "planned_at": iso(r.planned_at),
        "fired_at": iso(r.fired_at),
        "recipients": list(r.recipients),
    }


def extension(e: ExtensionRequest) -> dict[str, Any]:
    return {
        "id": e.id,
        "deadline_id": e.deadline_id,
        "task_id": e.task_id,
        "instance_id": e.instance_id,
        "requested_by": e.requested_by,
        "requested_at": iso(e.requested_at),
        "reason": e.reason,
        "proposed_date": iso(e.proposed_date),
        "approver_role": e.approver_role,
        "organisation": e.organisation,
        "status": e.status.value,
        "decided_by": e.decided_by,
        "decided_at": iso(e.decided_at),
        "comment": e.comment,
        "new_date": iso(e.new_date),
    }


def organisation(o: Organisation) -> dict[str, Any]:
    return {
        "code": o.code,
        "name": o.name,
        "kind": o.kind.value,
        "short_name": o.short_name,
        "municipality_kind": o.municipality_kind,
    }


def member(m: Member) -> dict[str, Any]:
    ms = m.membership
    return {
        "organisation": m.organisation.code,
        "name": m.organisation.name,
        "short_name": m.organisation.short_name,
        "since_year": ms.since_year,
        "until_year": ms.until_year,
        "source": ms.source,
        "contract_number": ms.contract_number,
        "contract_date": iso(ms.contract_date),
        "instance_id": ms.instance_id,
    }


def user(u: User) -> dict[str, Any]:
    return {
        "login": u.login,
        "name": u.name,
        "organisation": u.organisation,
        "roles": sorted(u.roles),
        "active": u.active,
        "email": u.email,
        "has_password": bool(u.password_hash),
    }


def token(t: ApiToken) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "roles": list(t.roles),
        "organisation": t.organisation,
        "created_by": t.created_by,
        "created_at": iso(t.created_at),
        "revoked_at": iso(t.revoked_at),
        "last_used_at": iso(t.last_used_at),
        "active": t.active,
    }


def notification(n: NotificationRecord) -> dict[str, Any]:
    return {
        "id": n.id,
        "kind": n.kind,
        "title": n.title,
        "body": n.body,
        "created_at": iso(n.created_at),
        "read_at": iso(n.read_at),
        "instance_id": n.instance_id,
        "task_id": n.task_id,
        "deadline_id": n.deadline_id,
    }


def comment(c: CommentRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "task_id": c.task_id,
        "instance_id": c.instance_id,
        "author": c.author,
        "organisation": c.organisation,
        "at": iso(c.at),
        "text": c.text,
    }


def attachment(a: AttachmentRecord, url: str) -> dict[str, Any]:
    return {
        "id": a.id,
        "task_id": a.task_id,
        "instance_id": a.instance_id,
        "filename": a.filename,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "uploaded_by": a.uploaded_by,
        "organisation": a.organisation,
        "at": iso(a.at),
        "url": url,
    }


def diagram(state: DiagramState) -> dict[str, Any]:
    return state.to_dict()


def overdue_group(group: OverdueGroup) -> dict[str, Any]:
    return group.to_dict()


def subscription(s: Subscription) -> dict[str, Any]:
    """A webhook subscription (never its secrets)."""
    return {
        "id": s.id,
        "url": s.url,
        "event_types": list(s.event_types),
        "organisation": s.organisation,
        "active": s.active,
        "description": s.description,
        "created_by": s.created_by,
        "created_at": iso(s.created_at),
        "updated_at": iso(s.updated_at),
        "rotating_until": iso(s.previous_until) if s.previous_secret else None,
        "consecutive_failures": s.consecutive_failures,
        "disabled_at": iso(s.disabled_at),
        "disabled_reason": s.disabled_reason,
    }


def delivery(d: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "event_type": d.payload.get("type"),
        "subscription_id": d.recipient,
        "instance_id": d.instance_id,
        "status": d.status.value,
        "attempts": d.attempts,
        "created_at": iso(d.created_at),
        "next_attempt_at": iso(d.next_attempt_at),
        "sent_at": iso(d.sent_at),
        "last_error": d.last_error,
        "reply": d.reply,
    }


def attempt(a: DeliveryAttempt) -> dict[str, Any]:
    return {
        "at": iso(a.at),
        "outcome": a.outcome,
        "status": a.status,
        "latency_ms": a.latency_ms,
        "excerpt": a.excerpt,
        "error": a.error,
    }


def source(s: InboundSource, url: str) -> dict[str, Any]:
    """An inbound source; ``url`` is where it posts (the caller knows the app's address)."""
    return {
        "name": s.name,
        "active": s.active,
        "description": s.description,
        "created_at": iso(s.created_at),
        "rotating_until": iso(s.previous_until) if s.previous_secret else None,
        "url": url,
    }


def message(m: InboundMessage) -> dict[str, Any]:
    return {
        "id": m.id,
        "key": m.key,
        "source": m.source,
        "name": m.name,
        "correlation": m.correlation,
        "status": m.status.value,
        "instance_id": m.instance_id,
        "received_at": iso(m.received_at),
        "expires_at": iso(m.expires_at),
        "correlated_at": iso(m.correlated_at),
    }
