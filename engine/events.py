"""The catalogue of public events: what outside systems can subscribe to, versioned, with schemas.

Every public event is an audit action (the audit trail is the record of what happened): the
store gives a catalogued action's audit line its event id and type when it writes it, in the
transaction of the state change, so the audit trail is the outbox: no change without its event
and no event without its change. The worker turns those lines into webhook deliveries, enriched
with the instance's process, business key and organisation.

An event on the wire (version 1)::

    {"id": "evt_…", "type": "task.created", "version": 1, "occurred_at": "2026-…Z",
     "actor": {"login": "…", "organisation": "…"},
     "instance": {"id": "…", "process_key": "contract", "business_key": "…", "organisation": "…"},
     "task_id": "…", "element_id": "…", "data": {…}}
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .records import AuditEntry

VERSION = 1

S = {"type": "string"}
NS = {"type": ["string", "null"]}
DATE = {"type": "string", "format": "date"}
REMINDER = {
    "type": "object",
    "required": ["deadline_id", "due", "kind"],
    "properties": {
        "reminder": S,
        "kind": {"type": "string", "enum": ["before", "due_today", "overdue", "escalation"]},
        "days": {"type": "integer"},
        "deadline_id": S,
        "due": DATE,
        "explanation": S,
        "recipients": {"type": "array", "items": S},
    },
}


@dataclass(frozen=True)
class EventType:
    name: str
    action: str  # the audit action it comes from
    summary: str
    data: Mapping[str, Any]  # JSON Schema of the event's ``data``


CATALOGUE: tuple[EventType, ...] = (
    EventType(
        "instance.started",
        "instance.started",
        "A process instance started (by a person, a message or its timer).",
        {
            "type": "object",
            "required": ["process_key", "version"],
            "properties": {
                "process_key": S,
                "version": {"type": "integer"},
                "business_key": NS,
                "message": NS,
                "timer": NS,
            },
        },
    ),
    EventType("instance.completed", "instance.completed", "A process instance reached its end.", {"type": "object"}),
    EventType(
        "instance.cancelled",
        "instance.cancelled",
        "A process instance was cancelled.",
        {"type": "object", "properties": {"reason": S}},
    ),
    EventType(
        "instance.incident",
        "instance.incident",
        "An automatic step failed in the background; the instance waits for a person.",
        {"type": "object", "required": ["reason"], "properties": {"error": S, "reason": S}},
    ),
    EventType(
        "task.created",
        "task.created",
        "A human task became ready: who may do it and by when.",
        {
            "type": "object",
            "properties": {
                "name": NS,
                "candidate_roles": {"type": "array", "items": S},
                "organisation": NS,
                "assignee": NS,
                "due_at": {"type": ["string", "null"], "format": "date-time"},
            },
        },
    ),
    EventType(
        "task.assigned",
        "task.claimed",
        "Someone took a task (claimed it).",
        {"type": "object", "required": ["assignee"], "properties": {"assignee": S}},
    ),
    EventType(
        "task.unassigned",
        "task.unclaimed",
        "A claimed task went back to its candidates.",
        {"type": "object"},
    ),
    EventType(
        "task.completed",
        "task.completed",
        "A human task was completed; `fields` names the form fields submitted (values stay inside).",
        {"type": "object", "properties": {"fields": {"type": "array", "items": S}}},
    ),
    EventType("task.cancelled", "task.cancelled", "A task was withdrawn (its instance moved on or ended).", {}),
    EventType("deadline.reminder", "deadline.reminder", "A reminder before a deadline, or on its day.", REMINDER),
    EventType("deadline.overdue", "deadline.overdue", "A deadline has passed and the task is still open.", REMINDER),
    EventType(
        "deadline.escalated", "deadline.escalated", "An overdue task was escalated to the supervising role.", REMINDER
    ),
    EventType(
        "deadline.changed",
        "deadline.changed",
        "A deadline moved: its anchor changed, an extension was granted, or the calendar changed.",
        {
            "type": "object",
            "required": ["deadline_id", "from", "to"],
            "properties": {
                "deadline_id": S,
                "from": DATE,
                "to": DATE,
                "original": DATE,
                "explanation": S,
                "previous_explanation": S,
                "reason": S,
            },
        },
    ),
    EventType(
        "extension.requested",
        "extension.requested",
        "The performer asked for a later deadline.",
        {
            "type": "object",
            "required": ["request_id", "deadline_id", "proposed"],
            "properties": {
                "request_id": S,
                "deadline_id": S,
                "reason": S,
                "current": DATE,
                "proposed": DATE,
                "approver_role": S,
            },
        },
    ),
    EventType(
        "extension.decided",
        "extension.decided",
        "The controlling role approved or refused an extension request.",
        {
            "type": "object",
            "required": ["request_id", "approved"],
            "properties": {
                "request_id": S,
                "approved": {"type": "boolean"},
                "comment": NS,
                "new_date": {"type": ["string", "null"], "format": "date"},
            },
        },
    ),
    EventType(
        "membership.granted",
        "membership.granted",
        "A registered project contract made a МОУО a member of the agglomeration (REG 5.6).",
        {
            "type": "object",
            "required": ["organisation", "since_year"],
            "properties": {
                "organisation": S,
                "since_year": {"type": "integer"},
                "until_year": {"type": ["integer", "null"]},
                "contract_number": NS,
                "contract_date": {"type": ["string", "null"], "format": "date"},
            },
        },
    ),
)

BY_NAME: dict[str, EventType] = {e.name: e for e in CATALOGUE}
BY_ACTION: dict[str, EventType] = {e.action: e for e in CATALOGUE}
NAMES: tuple[str, ...] = tuple(e.name for e in CATALOGUE)


def event_type_of(action: str) -> str | None:
    """The public event type of an audit action, or None when the action is internal."""
    found = BY_ACTION.get(action)
    return found.name if found else None


def data_of(entry: AuditEntry) -> dict[str, Any]:
    """The event's ``data`` from its audit line (only the properties the schema names)."""
    kind = BY_ACTION[entry.action]
    details = dict(entry.details or {})
    if kind.name == "task.assigned":
        return {"assignee": entry.actor}
    allowed = (kind.data.get("properties") or {}).keys()
    return {k: v for k, v in details.items() if k in allowed}


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def envelope(
    event_id: str,
    entry: AuditEntry,
    instance: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The event as delivered: ``instance`` carries id, process_key, business_key, organisation."""
    kind = BY_ACTION[entry.action]
    return {
        "id": event_id,
        "type": kind.name,
        "version": VERSION,
        "occurred_at": _iso(entry.at),
        "actor": {"login": entry.actor, "organisation": entry.organisation},
        "instance": dict(instance) if instance is not None else None,
        "task_id": entry.task_id,
        "element_id": entry.element_id,
        "data": data_of(entry),
    }


def envelope_schema() -> dict[str, Any]:
    """JSON Schema of the envelope, with ``data`` chosen by ``type`` (for receivers and tests)."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": ["id", "type", "version", "occurred_at", "actor", "instance", "data"],
        "properties": {
            "id": S,
            "type": {"type": "string", "enum": list(NAMES)},
            "version": {"const": VERSION},
            "occurred_at": {"type": "string", "format": "date-time"},
            "actor": {
                "type": "object",
                "required": ["login"],
                "properties": {"login": S, "organisation": NS},
            },
            "instance": {
                "type": ["object", "null"],
                "properties": {"id": S, "process_key": NS, "business_key": NS, "organisation": NS},
            },
            "task_id": NS,
            "element_id": NS,
            "data": {"type": "object"},
        },
        "allOf": [
            {"if": {"properties": {"type": {"const": e.name}}}, "then": {"properties": {"data": dict(e.data)}}}
            for e in CATALOGUE
        ],
    }


def catalogue() -> list[dict[str, Any]]:
    return [{"type": e.name, "version": VERSION, "summary": e.summary, "data": dict(e.data)} for e in CATALOGUE]
