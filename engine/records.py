"""The rows the engine reads and writes through its store port.

Plain frozen dataclasses: the storage adapters map them to tables, the memory adapter keeps
them in dicts. Status enums are strings so that they read well in SQL and JSON.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any


class InstanceStatus(StrEnum):
    RUNNING = "running"  # someone has a task to do
    WAITING = "waiting"  # no open tasks: waiting for a timer, a message or a signal
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    INCIDENT = "incident"  # an automatic step failed in the background; needs attention

    @property
    def is_final(self) -> bool:
        return self in (InstanceStatus.COMPLETED, InstanceStatus.CANCELLED)


class TaskStatus(StrEnum):
    OPEN = "open"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class DeploymentRecord:
    id: str
    filename: str
    content_hash: str
    source: bytes
    resources: dict[str, bytes]
    deployed_at: datetime
    deployed_by: str


@dataclass(frozen=True)
class DefinitionRecord:
    """One executable process of a deployment, versioned per key."""

    id: str
    deployment_id: str
    key: str
    version: int
    name: str | None
    content_hash: str
    deployed_at: datetime
    # Process keys this one calls, pinned to the definition ids found at deploy time.
    calls: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceRecord:
    id: str
    definition_id: str
    process_key: str
    business_key: str | None
    status: InstanceStatus
    organisation: str | None
    started_by: str
    started_at: datetime
    updated_at: datetime
    state: str
    version: int = 1
    ended_at: datetime | None = None
    next_due_at: datetime | None = None
    incident: str | None = None
    waiting_messages: tuple[str, ...] = ()  # the BPMN messages it waits for now


@dataclass(frozen=True)
class TaskRecord:
    """A human task projected from SpiffWorkflow into our own row."""

    id: str
    instance_id: str
    definition_id: str
    process_key: str
    element_id: str
    name: str | None
    lane: str | None
    candidate_roles: tuple[str, ...]
    candidate_users: tuple[str, ...]
    organisation: str | None
    assignee: str | None
    status: TaskStatus
    created_at: datetime
    due_at: datetime | None = None
    follow_up_at: datetime | None = None
    priority: int = 50
    form_key: str | None = None
    business_key: str | None = None
    claimed_at: datetime | None = None
    completed_at: datetime | None = None
    completed_by: str | None = None


@dataclass(frozen=True)
class TaskQuery:
    """Filters for listing tasks; the store applies them, access rules are applied on top."""

    status: TaskStatus | None = TaskStatus.OPEN
    instance_id: str | None = None
    organisation: str | None = None
    candidate_roles: tuple[str, ...] = ()
    candidate_user: str | None = None
    assignee: str | None = None
    include_unrestricted: bool = False
    all_tasks: bool = False
    process_key: str | None = None
    role: str | None = None  # only tasks for this candidate role
    only_organisation: str | None = None  # only tasks of this organisation
    due_before: datetime | None = None
    due_after: datetime | None = None
    without_due: bool = False
    sort: str = "due"  # due | created | priority | name
    limit: int = 1000
    offset: int = 0


@dataclass(frozen=True)
class AuditEntry:
    """One line of the append-only audit trail (and of an instance's history)."""

    at: datetime
    actor: str
    organisation: str | None
    action: str
    instance_id: str | None = None
    task_id: str | None = None
    element_id: str | None = None
    definition_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    data_digest: str | None = None
    id: int | None = None


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    return str(value)


def canonical_json(data: Any) -> str:
    """A stable JSON rendering (sorted keys, no spaces) for digests and storage."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def digest(data: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of ``data``: what the audit trail keeps of the data."""
    return "sha256:" + hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


class DeadlineStatus(StrEnum):
    OPEN = "open"
    MET = "met"  # the task was completed (on time or late: see ``late``)
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class DeadlineRecord:
    """A task's deadline: the rule, its anchor, the computed dates and their explanation.

    ``original_*`` keep what was first computed; ``final_date``/``due_at``/``explanation``
    are current (after anchor changes and extensions). Reminders follow ``next_reminder_at``.
    """

    id: str
    instance_id: str
    task_id: str
    element_id: str
    process_key: str
    organisation: str | None
    rule: str  # the rule as written, or "camunda:dueDate"
    anchor: str | None  # variable name, "task.created", or None for a plain due date
    anchor_value: date | None
    clause: str | None
    raw_date: date
    final_date: date
    due_at: datetime
    explanation: str
    original_date: date
    original_explanation: str
    policy: dict[str, Any]
    created_at: datetime
    status: DeadlineStatus = DeadlineStatus.OPEN
    plan_version: int = 1
    next_reminder_at: datetime | None = None
    next_reminder_key: str | None = None
    last_reminder_at: datetime | None = None
    escalated_at: datetime | None = None
    extensions: int = 0
    completed_at: datetime | None = None
    late: bool = False
    variable: str | None = None  # process variable that mirrors the final date, if the model asks
    updated_at: datetime | None = None
    version: int = 1
    lease_owner: str | None = None  # the worker that last fired its reminders


@dataclass(frozen=True)
class ReminderRecord:
    """A fired reminder; ``key`` (deadline, plan version, point) makes it happen once."""

    key: str
    deadline_id: str
    instance_id: str
    task_id: str
    kind: str
    days: int
    planned_at: datetime
    fired_at: datetime
    recipients: tuple[str, ...]
    event_id: str


class ExtensionStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"


@dataclass(frozen=True)
class ExtensionRequest:
    id: str
    deadline_id: str
    task_id: str
    instance_id: str
    requested_by: str
    requested_at: datetime
    reason: str
    proposed_date: date
    approver_role: str
    organisation: str | None
    status: ExtensionStatus = ExtensionStatus.PENDING
    decided_by: str | None = None
    decided_at: datetime | None = None
    comment: str | None = None
    new_date: date | None = None


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"
    UNCONFIRMED = "unconfirmed"  # marked sent, but the server's final answer was not recorded


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery of one event to one recipient over one channel: the delivery log row.

    ``event_id`` names the event (``reminder:<key>``, ``audit:<id>``); ``payload`` is what is
    delivered (an e-mail's subject and text, a webhook's JSON), fixed when it was queued.
    """

    id: str
    event_id: str
    channel: str  # "inapp", "email", "webhook"
    recipient: str  # a user login, or a subscription id
    address: str | None
    status: DeliveryStatus
    created_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None
    last_error: str | None = None
    reply: str | None = None
    instance_id: str | None = None
    seq: int | None = None  # the outbox event's sequence (webhooks keep per-instance order by it)


@dataclass(frozen=True)
class NotificationRecord:
    """An in-app notification for a user."""

    id: str
    user: str
    kind: str
    title: str
    body: str
    created_at: datetime
    instance_id: str | None = None
    task_id: str | None = None
    deadline_id: str | None = None
    event_id: str | None = None
    read_at: datetime | None = None


@dataclass(frozen=True)
class StartTimerRecord:
    """A timer start event of a deployed process: when the next instance starts by itself."""

    id: str
    process_key: str
    definition_id: str
    element_id: str
    kind: str  # timeDate | timeDuration | timeCycle
    expression: str
    next_due_at: datetime | None
    cycles_left: int | None  # None: unbounded
    active: bool = True


@dataclass(frozen=True)
class CommentRecord:
    id: str
    task_id: str
    instance_id: str
    author: str
    organisation: str | None
    at: datetime
    text: str


@dataclass(frozen=True)
class AttachmentRecord:
    """A file attached to a task; ``sha256`` of the content is kept and checked on download."""

    id: str
    task_id: str
    instance_id: str
    filename: str
    content_type: str
    size: int
    sha256: str
    uploaded_by: str
    organisation: str | None
    at: datetime


@dataclass(frozen=True)
class ApiToken:
    """A machine client's credential: shown once, stored as a SHA-256, scoped to roles and an organisation."""

    id: str
    name: str
    prefix: str  # the first characters, to recognise a token in lists
    token_hash: str
    roles: tuple[str, ...]
    organisation: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class OutboxEvent:
    """A public event waiting to be turned into deliveries (written with the change that caused it).

    ``seq`` orders events (the per-instance delivery order follows it); ``entry`` is the audit
    line the event was made from.
    """

    seq: int
    event_id: str
    type: str
    at: datetime
    instance_id: str | None
    entry: AuditEntry
    dispatched_at: datetime | None = None


@dataclass(frozen=True)
class Subscription:
    """An outside system that wants to hear some events, at a URL, signed with its secret.

    ``event_types`` empty means every type; ``organisation`` narrows to the events of one
    organisation's instances. During a secret rotation ``previous_secret`` signs too, until
    ``previous_until``.
    """

    id: str
    url: str
    secret: str
    event_types: tuple[str, ...]
    organisation: str | None
    active: bool
    description: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    previous_secret: str | None = None
    previous_until: datetime | None = None
    consecutive_failures: int = 0
    disabled_at: datetime | None = None
    disabled_reason: str | None = None

    def wants_type(self, event_type: str) -> bool:
        """The type filter alone (no filter: every type)."""
        return not self.event_types or event_type in self.event_types

    def wants(self, event_type: str, organisation: str | None) -> bool:
        if not self.active or not self.wants_type(event_type):
            return False
        return self.organisation is None or self.organisation == organisation

    def secrets(self, now: datetime) -> list[str]:
        """The secrets that sign a message now: the current one, and the previous during the overlap."""
        result = [self.secret]
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            result.append(self.previous_secret)
        return result


@dataclass(frozen=True)
class DeliveryAttempt:
    """One try of one delivery: the delivery log row."""

    delivery_id: str
    channel: str
    recipient: str
    at: datetime
    outcome: str  # sent | retry | failed | disabled
    status: int | None = None
    latency_ms: float | None = None
    excerpt: str | None = None
    error: str | None = None
    id: int | None = None


@dataclass(frozen=True)
class InboundSource:
    """A system allowed to send us events at ``/webhooks/in/<name>``, with its secret(s)."""

    name: str
    secret: str
    active: bool
    description: str
    created_at: datetime
    previous_secret: str | None = None
    previous_until: datetime | None = None

    def secrets(self, now: datetime) -> list[str]:
        result = [self.secret]
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            result.append(self.previous_secret)
        return result


class MessageStatus(StrEnum):
    BUFFERED = "buffered"  # no waiting instance yet: kept until it expires
    CORRELATED = "correlated"  # moved an instance
    EXPIRED = "expired"


@dataclass(frozen=True)
class InboundMessage:
    """A BPMN message received from outside (a signed webhook or the API), kept for idempotency.

    ``key`` is unique: the same message delivered twice is recognised and moves nothing again.
    """

    id: str
    key: str  # "<source>:<webhook-id>" or "api:<idempotency key>"
    source: str
    name: str
    correlation: dict[str, Any]
    variables: dict[str, Any]
    received_at: datetime
    expires_at: datetime
    status: MessageStatus = MessageStatus.BUFFERED
    instance_id: str | None = None
    correlated_at: datetime | None = None
