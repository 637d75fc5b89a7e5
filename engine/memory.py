"""An in-memory store: the engine's ports over dicts, for unit tests and simulations.

Transactions are serialised by one lock and applied atomically: a transaction works on a
copy of the tables and publishes it on commit, so an exception leaves nothing behind. The
guarded updates behave as in SQL (``UPDATE ... WHERE version = :expected``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from datetime import datetime
from typing import Any

from . import events
from .directory import Membership, Organisation, Role, User
from .errors import ConcurrencyConflict
from .ports import AuditQuery, DeadlineQuery, ExtensionQuery, InstanceQuery
from .records import (
    ApiToken,
    AttachmentRecord,
    AuditEntry,
    CommentRecord,
    DeadlineRecord,
    DeadlineStatus,
    DefinitionRecord,
    DeliveryAttempt,
    DeliveryRecord,
    DeliveryStatus,
    DeploymentRecord,
    ExtensionRequest,
    ExtensionStatus,
    InboundMessage,
    InboundSource,
    InstanceRecord,
    InstanceStatus,
    MessageStatus,
    NotificationRecord,
    OutboxEvent,
    ReminderRecord,
    StartTimerRecord,
    Subscription,
    TaskQuery,
    TaskRecord,
    TaskStatus,
)


@dataclass
class _Tables:
    users: dict[str, User] = field(default_factory=dict)
    organisations: dict[str, Organisation] = field(default_factory=dict)
    memberships: dict[tuple[str, int], Membership] = field(default_factory=dict)
    deployments: dict[str, DeploymentRecord] = field(default_factory=dict)
    definitions: dict[str, DefinitionRecord] = field(default_factory=dict)
    instances: dict[str, InstanceRecord] = field(default_factory=dict)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    audit: list[AuditEntry] = field(default_factory=list)
    leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    deadlines: dict[str, DeadlineRecord] = field(default_factory=dict)
    reminders: dict[str, ReminderRecord] = field(default_factory=dict)
    extensions: dict[str, ExtensionRequest] = field(default_factory=dict)
    deliveries: dict[str, DeliveryRecord] = field(default_factory=dict)
    delivery_leases: dict[str, tuple[str, datetime]] = field(default_factory=dict)
    notifications: dict[str, NotificationRecord] = field(default_factory=dict)
    start_timers: dict[str, StartTimerRecord] = field(default_factory=dict)
    calendar: dict[int, bytes] = field(default_factory=dict)
    comments: list[CommentRecord] = field(default_factory=list)
    attachments: dict[str, tuple[AttachmentRecord, bytes]] = field(default_factory=dict)
    tokens: dict[str, ApiToken] = field(default_factory=dict)
    logins: list[tuple[str, str, datetime, bool]] = field(default_factory=list)
    calendar_tokens: dict[str, str] = field(default_factory=dict)
    outbox: list[OutboxEvent] = field(default_factory=list)
    outbox_leases: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    attempts: list[DeliveryAttempt] = field(default_factory=list)
    sources: dict[str, InboundSource] = field(default_factory=dict)
    messages: dict[str, InboundMessage] = field(default_factory=dict)

    def copy(self) -> _Tables:
        # Records are immutable: a shallow copy of every table is a snapshot.
        return _Tables(**{f.name: type(getattr(self, f.name))(getattr(self, f.name)) for f in fields(self)})


def task_matches_visibility(task: TaskRecord, query: TaskQuery) -> bool:
    """The store-side visibility filter (mirrors storage.store's SQL and engine.access)."""
    if query.all_tasks:
        return True
    user = query.candidate_user
    if user is not None and (task.assignee == user or user in task.candidate_users):
        return True
    if not task.candidate_roles and not task.candidate_users:
        return query.include_unrestricted
    for role in query.candidate_roles:
        if role not in task.candidate_roles:
            continue
        if role != Role.MOUO or task.organisation is None or task.organisation == query.organisation:
            return True
    return False


class MemoryTx:
    """One transaction over the in-memory tables."""

    def __init__(self, tables: _Tables, audit_seq: list[int]) -> None:
        self.t = tables
        self._audit_seq = audit_seq

    # -- directory ---------------------------------------------------------------------------
    def get_user(self, login: str) -> User | None:
        return self.t.users.get(login)

    def list_users(self) -> list[User]:
        return sorted(self.t.users.values(), key=lambda u: u.login)

    def save_user(self, user: User) -> None:
        self.t.users[user.login] = user

    def get_organisation(self, code: str) -> Organisation | None:
        return self.t.organisations.get(code)

    def list_organisations(self) -> list[Organisation]:
        return sorted(self.t.organisations.values(), key=lambda o: o.name)

    def save_organisation(self, organisation: Organisation) -> None:
        self.t.organisations[organisation.code] = organisation

    def add_membership(self, membership: Membership) -> bool:
        key = (membership.organisation, membership.since_year)
        if key in self.t.memberships:
            return False
        self.t.memberships[key] = membership
        return True

    def memberships(self, year: int) -> list[Membership]:
        return [m for m in self.t.memberships.values() if m.covers(year)]

    def memberships_of(self, organisation: str) -> list[Membership]:
        return sorted(
            (m for m in self.t.memberships.values() if m.organisation == organisation), key=lambda m: m.since_year
        )

    # -- definitions ---------------------------------------------------------------------------
    def find_deployment(self, content_hash: str) -> DeploymentRecord | None:
        return next((d for d in self.t.deployments.values() if d.content_hash == content_hash), None)

    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        return self.t.deployments.get(deployment_id)

    def add_deployment(self, deployment: DeploymentRecord, definitions: Sequence[DefinitionRecord]) -> None:
        if self.find_deployment(deployment.content_hash) is not None:
            raise ConcurrencyConflict(f"deployment {deployment.filename}", "the same content was deployed meanwhile")
        for d in definitions:
            if any(o.key == d.key and o.version == d.version for o in self.t.definitions.values()):
                raise ConcurrencyConflict(f"definition {d.key}", f"version {d.version} was deployed meanwhile")
        self.t.deployments[deployment.id] = deployment
        for d in definitions:
            self.t.definitions[d.id] = d

    def get_definition(self, definition_id: str) -> DefinitionRecord | None:
        return self.t.definitions.get(definition_id)

    def latest_definition(self, key: str) -> DefinitionRecord | None:
        candidates = [d for d in self.t.definitions.values() if d.key == key]
        return max(candidates, key=lambda d: d.version) if candidates else None

    def max_definition_version(self, key: str) -> int:
        return max((d.version for d in self.t.definitions.values() if d.key == key), default=0)

    def definitions_of(self, deployment_id: str) -> list[DefinitionRecord]:
        return sorted((d for d in self.t.definitions.values() if d.deployment_id == deployment_id), key=lambda d: d.key)

    def list_definitions(self, latest_only: bool = True) -> list[DefinitionRecord]:
        items = sorted(self.t.definitions.values(), key=lambda d: (d.key, d.version))
        if latest_only:
            latest: dict[str, DefinitionRecord] = {}
            for d in items:
                latest[d.key] = d
            items = list(latest.values())
        return items

    # -- instances -------------------------------------------------------------------------------
    def insert_instance(self, instance: InstanceRecord) -> None:
        if instance.id in self.t.instances:
            raise ConcurrencyConflict(f"instance {instance.id}", "already exists")
        self.t.instances[instance.id] = instance

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        return self.t.instances.get(instance_id)

    def update_instance(self, instance_id: str, expected_version: int, **changes: Any) -> None:
        current = self.t.instances.get(instance_id)
        if current is None or current.version != expected_version:
            raise ConcurrencyConflict(f"instance {instance_id}")
        self.t.instances[instance_id] = replace(current, **changes)

    def _instances(self, query: InstanceQuery) -> list[InstanceRecord]:
        result = []
        for i in self.t.instances.values():
            if query.process_key and i.process_key != query.process_key:
                continue
            if query.status and i.status != query.status:
                continue
            if query.organisation and i.organisation != query.organisation:
                continue
            if query.business_key and i.business_key != query.business_key:
                continue
            if (
                query.visible_to_organisation
                and i.organisation != query.visible_to_organisation
                and query.visible_to_organisation not in self.task_organisations(i.id)
            ):
                continue
            result.append(i)
        return sorted(result, key=lambda i: (i.started_at, i.id), reverse=True)

    def list_instances(self, query: InstanceQuery) -> list[InstanceRecord]:
        return self._instances(query)[query.offset : query.offset + query.limit]

    def due_instances(self, now: datetime, limit: int) -> list[str]:
        due = [
            i
            for i in self.t.instances.values()
            if i.next_due_at is not None
            and i.next_due_at <= now
            and not i.status.is_final
            and i.status != InstanceStatus.INCIDENT
        ]
        return [i.id for i in sorted(due, key=lambda i: (i.next_due_at, i.id))][:limit]

    def count_instances(self, query: InstanceQuery) -> int:
        return len(self._instances(query))

    # -- tasks -------------------------------------------------------------------------------------
    def insert_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        for task in tasks:
            if task.id in self.t.tasks:
                raise ConcurrencyConflict(f"task {task.id}", "already exists")
            self.t.tasks[task.id] = task

    def get_task(self, task_id: str) -> TaskRecord | None:
        return self.t.tasks.get(task_id)

    def get_task_with_instance(self, task_id: str) -> tuple[TaskRecord, InstanceRecord] | None:
        task = self.t.tasks.get(task_id)
        if task is None:
            return None
        instance = self.t.instances.get(task.instance_id)
        return (task, instance) if instance is not None else None

    def update_task(
        self,
        task_id: str,
        expected_status: TaskStatus,
        *,
        check_assignee: bool = False,
        expected_assignee: str | None = None,
        **changes: Any,
    ) -> None:
        current = self.t.tasks.get(task_id)
        if (
            current is None
            or current.status != expected_status
            or (check_assignee and current.assignee != expected_assignee)
        ):
            raise ConcurrencyConflict(f"task {task_id}")
        self.t.tasks[task_id] = replace(current, **changes)

    def close_tasks(self, task_ids: Iterable[str], status: TaskStatus, at: datetime) -> None:
        for task_id in task_ids:
            current = self.t.tasks.get(task_id)
            if current is not None and current.status == TaskStatus.OPEN:
                self.t.tasks[task_id] = replace(current, status=status, completed_at=at)

    def _tasks(self, query: TaskQuery) -> list[TaskRecord]:
        result = []
        for task in self.t.tasks.values():
            if query.status is not None and task.status != query.status:
                continue
            if query.instance_id and task.instance_id != query.instance_id:
                continue
            if query.assignee and task.assignee != query.assignee:
                continue
            if query.process_key and task.process_key != query.process_key:
                continue
            if query.role and query.role not in task.candidate_roles:
                continue
            if query.only_organisation and task.organisation != query.only_organisation:
                continue
            if query.due_before and (task.due_at is None or task.due_at >= query.due_before):
                continue
            if query.due_after and (task.due_at is None or task.due_at < query.due_after):
                continue
            if query.without_due and task.due_at is not None:
                continue
            if not task_matches_visibility(task, query):
                continue
            result.append(task)
        keys: dict[str, Callable[[TaskRecord], Any]] = {
            "created": lambda t: (t.created_at, t.id),
            "priority": lambda t: (-t.priority, t.due_at is None, t.due_at or t.created_at, t.created_at, t.id),
            "name": lambda t: (t.name or "", t.id),
        }
        by_due: Callable[[TaskRecord], Any] = lambda t: (t.due_at is None, t.due_at or t.created_at, t.created_at, t.id)  # noqa: E731
        result.sort(key=keys.get(query.sort, by_due))
        return result

    def list_tasks(self, query: TaskQuery) -> list[TaskRecord]:
        return self._tasks(query)[query.offset : query.offset + query.limit]

    def count_tasks(self, query: TaskQuery) -> int:
        return len(self._tasks(query))

    def task_organisations(self, instance_id: str) -> set[str | None]:
        return {t.organisation for t in self.t.tasks.values() if t.instance_id == instance_id}

    # -- audit -------------------------------------------------------------------------------------
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        for entry in entries:
            self._audit_seq[0] += 1
            self.t.audit.append(replace(entry, id=self._audit_seq[0]))
            kind = events.event_type_of(entry.action)
            if kind is not None:
                self.t.outbox.append(
                    OutboxEvent(len(self.t.outbox) + 1, events.new_event_id(), kind, entry.at, entry.instance_id, entry)
                )

    def _audit(self, query: AuditQuery) -> list[AuditEntry]:
        result = [
            e
            for e in self.t.audit
            if (query.instance_id is None or e.instance_id == query.instance_id)
            and (query.actor is None or e.actor == query.actor)
            and (query.action is None or e.action == query.action)
            and (query.since is None or e.at >= query.since)
            and (query.until is None or e.at < query.until)
            and (query.task_id is None or e.task_id == query.task_id)
            and (query.organisation is None or e.organisation == query.organisation)
        ]
        return result[::-1] if query.newest_first else result

    def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        return self._audit(query)[query.offset : query.offset + query.limit]

    def count_audit(self, query: AuditQuery) -> int:
        return len(self._audit(query))

    # -- the worker's claims ---------------------------------------------------------------------
    def _free(self, leases: Mapping[Any, tuple[str, datetime]], key: Any, now: datetime) -> bool:
        held = leases.get(key)
        return held is None or held[1] < now

    def claim_due_instances(self, now: datetime, limit: int, owner: str, lease_until: datetime) -> list[str]:
        due = [i for i in self.due_instances(now, limit * 4) if self._free(self.t.leases, i, now)][:limit]
        for instance_id in due:
            self.t.leases[instance_id] = (owner, lease_until)
        return due

    def release_instance(self, instance_id: str, owner: str) -> None:
        held = self.t.leases.get(instance_id)
        if held is not None and held[0] == owner:
            del self.t.leases[instance_id]

    # -- deadlines ----------------------------------------------------------------------------------
    def insert_deadlines(self, deadlines: Sequence[DeadlineRecord]) -> None:
        for d in deadlines:
            if d.id in self.t.deadlines:
                raise ConcurrencyConflict(f"deadline {d.id}", "already exists")
            self.t.deadlines[d.id] = d

    def get_deadline(self, deadline_id: str) -> DeadlineRecord | None:
        return self.t.deadlines.get(deadline_id)

    def deadline_of_task(self, task_id: str) -> DeadlineRecord | None:
        return next((d for d in self.t.deadlines.values() if d.task_id == task_id), None)

    def deadlines_of_tasks(self, task_ids: Sequence[str]) -> dict[str, DeadlineRecord]:
        wanted = set(task_ids)
        return {d.task_id: d for d in self.t.deadlines.values() if d.task_id in wanted}

    def update_deadline(self, deadline_id: str, expected_version: int, **changes: Any) -> None:
        current = self.t.deadlines.get(deadline_id)
        if current is None or current.version != expected_version:
            raise ConcurrencyConflict(f"deadline {deadline_id}")
        self.t.deadlines[deadline_id] = replace(current, **changes)

    def update_deadlines(self, updates: Sequence[tuple[str, int, Mapping[str, Any]]]) -> None:
        for deadline_id, version, changes in updates:
            self.update_deadline(deadline_id, version, **changes)

    def finish_deadlines(self, task_ids: Iterable[str], status: DeadlineStatus, at: datetime) -> None:
        wanted = set(task_ids)
        for d in list(self.t.deadlines.values()):
            if d.task_id in wanted and d.status == DeadlineStatus.OPEN:
                self.t.deadlines[d.id] = replace(
                    d,
                    status=status,
                    completed_at=at,
                    late=d.due_at < at,
                    next_reminder_at=None,
                    next_reminder_key=None,
                    version=d.version + 1,
                    updated_at=at,
                )

    def list_deadlines(self, query: DeadlineQuery) -> list[DeadlineRecord]:
        return self._deadlines(query)[query.offset : query.offset + query.limit]

    def count_deadlines(self, query: DeadlineQuery) -> int:
        return len(self._deadlines(query))

    def _deadlines(self, query: DeadlineQuery) -> list[DeadlineRecord]:
        result = [
            d
            for d in self.t.deadlines.values()
            if (query.instance_id is None or d.instance_id == query.instance_id)
            and (query.organisation is None or d.organisation == query.organisation)
            and (query.status is None or d.status == query.status)
            and (query.task_id is None or d.task_id == query.task_id)
            and (query.due_before is None or d.due_at < query.due_before)
            and (query.due_after is None or d.due_at >= query.due_after)
        ]
        result.sort(key=lambda d: (d.due_at, d.id))
        return result

    def claim_due_deadlines(self, now: datetime, limit: int, owner: str) -> list[tuple[DeadlineRecord, TaskRecord]]:
        due = sorted(
            (
                d
                for d in self.t.deadlines.values()
                if d.status == DeadlineStatus.OPEN and d.next_reminder_at is not None and d.next_reminder_at <= now
            ),
            key=lambda d: (d.next_reminder_at or now, d.id),
        )[:limit]
        return [(d, self.t.tasks[d.task_id]) for d in due if d.task_id in self.t.tasks]

    def insert_reminders(self, reminders: Sequence[ReminderRecord]) -> None:
        for r in reminders:
            if r.key in self.t.reminders:
                raise ConcurrencyConflict(f"reminder {r.key}", "already fired")
            self.t.reminders[r.key] = r

    def list_reminders(self, deadline_id: str | None = None, instance_id: str | None = None) -> list[ReminderRecord]:
        return sorted(
            (
                r
                for r in self.t.reminders.values()
                if (deadline_id is None or r.deadline_id == deadline_id)
                and (instance_id is None or r.instance_id == instance_id)
            ),
            key=lambda r: (r.fired_at, r.planned_at, r.key),
        )

    # -- extensions -----------------------------------------------------------------------------------
    def insert_extension(self, request: ExtensionRequest) -> None:
        self.t.extensions[request.id] = request

    def get_extension(self, request_id: str) -> ExtensionRequest | None:
        return self.t.extensions.get(request_id)

    def update_extension(self, request_id: str, expected_status: ExtensionStatus, **changes: Any) -> None:
        current = self.t.extensions.get(request_id)
        if current is None or current.status != expected_status:
            raise ConcurrencyConflict(f"extension request {request_id}")
        self.t.extensions[request_id] = replace(current, **changes)

    def list_extensions(self, query: ExtensionQuery) -> list[ExtensionRequest]:
        return self._extensions(query)[query.offset : query.offset + query.limit]

    def count_extensions(self, query: ExtensionQuery) -> int:
        return len(self._extensions(query))

    def _extensions(self, query: ExtensionQuery) -> list[ExtensionRequest]:
        result = [
            e
            for e in self.t.extensions.values()
            if (query.status is None or e.status == query.status)
            and (query.approver_role is None or e.approver_role == query.approver_role)
            and (query.deadline_id is None or e.deadline_id == query.deadline_id)
            and (query.instance_id is None or e.instance_id == query.instance_id)
            and (
                query.viewer_login is None
                or e.approver_role in query.viewer_roles
                or e.requested_by == query.viewer_login
                or (e.organisation is not None and e.organisation == query.viewer_organisation)
            )
        ]
        return sorted(result, key=lambda e: (e.requested_at, e.id))

    # -- outbox ---------------------------------------------------------------------------------------
    def insert_deliveries(self, deliveries: Sequence[DeliveryRecord]) -> None:
        for d in deliveries:
            if d.id in self.t.deliveries:
                raise ConcurrencyConflict(f"delivery {d.id}", "already exists")
            self.t.deliveries[d.id] = d

    def insert_notifications(self, notifications: Sequence[NotificationRecord]) -> None:
        for n in notifications:
            self.t.notifications[n.id] = n

    def list_notifications(
        self, user: str, unread_only: bool = False, limit: int = 100, offset: int = 0
    ) -> list[NotificationRecord]:
        items = self._notifications(user, unread_only)
        return sorted(items, key=lambda n: (n.created_at, n.id), reverse=True)[offset : offset + limit]

    def count_notifications(self, user: str, unread_only: bool = False) -> int:
        return len(self._notifications(user, unread_only))

    def _notifications(self, user: str, unread_only: bool) -> list[NotificationRecord]:
        return [n for n in self.t.notifications.values() if n.user == user and (not unread_only or n.read_at is None)]

    def mark_notifications_read(self, user: str, ids: Sequence[str] | None, at: datetime) -> int:
        count = 0
        for n in list(self.t.notifications.values()):
            if n.user == user and n.read_at is None and (ids is None or n.id in ids):
                self.t.notifications[n.id] = replace(n, read_at=at)
                count += 1
        return count

    def claim_deliveries(
        self, channel: str, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[DeliveryRecord]:
        due = sorted(
            (
                d
                for d in self.t.deliveries.values()
                if d.channel == channel
                and d.status in (DeliveryStatus.QUEUED, DeliveryStatus.RETRY, DeliveryStatus.SENDING)
                and (d.next_attempt_at is None or d.next_attempt_at <= now)
                and self._free(self.t.delivery_leases, d.id, now)
            ),
            key=lambda d: (d.next_attempt_at or d.created_at, d.id),
        )[:limit]
        for d in due:
            self.t.delivery_leases[d.id] = (owner, lease_until)
        return due

    def update_delivery(self, delivery_id: str, owner: str | None, **changes: Any) -> bool:
        current = self.t.deliveries.get(delivery_id)
        held = self.t.delivery_leases.get(delivery_id)
        if current is None or (owner is not None and (held is None or held[0] != owner)):
            return False
        self.t.deliveries[delivery_id] = replace(current, **changes)
        if changes.get("status") not in (None, DeliveryStatus.SENDING):
            self.t.delivery_leases.pop(delivery_id, None)
        return True

    def list_deliveries(
        self,
        event_id: str | None = None,
        channel: str | None = None,
        limit: int = 1000,
        *,
        recipient: str | None = None,
        status: DeliveryStatus | None = None,
    ) -> list[DeliveryRecord]:
        items = [
            d
            for d in self.t.deliveries.values()
            if (event_id is None or d.event_id == event_id)
            and (channel is None or d.channel == channel)
            and (recipient is None or d.recipient == recipient)
            and (status is None or d.status == status)
        ]
        return sorted(items, key=lambda d: (d.created_at, d.seq or 0, d.id))[:limit]

    # -- start timers and calendar ----------------------------------------------------------------------
    def replace_start_timers(self, process_key: str, timers: Sequence[StartTimerRecord]) -> None:
        for key in [k for k, v in self.t.start_timers.items() if v.process_key == process_key]:
            del self.t.start_timers[key]
        for timer in timers:
            self.t.start_timers[timer.id] = timer

    def claim_due_start_timers(
        self, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[StartTimerRecord]:
        due = sorted(
            (
                s
                for s in self.t.start_timers.values()
                if s.active
                and s.next_due_at is not None
                and s.next_due_at <= now
                and self._free(self.t.leases, "start:" + s.id, now)
            ),
            key=lambda s: (s.next_due_at or now, s.id),
        )[:limit]
        for timer in due:
            self.t.leases["start:" + timer.id] = (owner, lease_until)
        return due

    def update_start_timer(self, timer_id: str, **changes: Any) -> None:
        current = self.t.start_timers.get(timer_id)
        if current is not None:
            self.t.start_timers[timer_id] = replace(current, **changes)
        self.t.leases.pop("start:" + timer_id, None)

    def list_start_timers(self) -> list[StartTimerRecord]:
        return sorted(self.t.start_timers.values(), key=lambda s: s.id)

    def save_calendar_override(self, year: int, source: bytes, at: datetime, by: str) -> None:
        self.t.calendar[year] = source

    def calendar_overrides(self) -> list[tuple[int, bytes]]:
        return sorted(self.t.calendar.items())

    # -- comments and attachments -------------------------------------------------------------------
    def insert_comment(self, comment: CommentRecord) -> None:
        self.t.comments.append(comment)

    def list_comments(self, task_id: str | None = None, instance_id: str | None = None) -> list[CommentRecord]:
        found = (
            c
            for c in self.t.comments
            if (task_id is None or c.task_id == task_id) and (instance_id is None or c.instance_id == instance_id)
        )
        return sorted(found, key=lambda c: (c.at, c.id))

    def insert_attachment(self, attachment: AttachmentRecord, content: bytes) -> None:
        self.t.attachments[attachment.id] = (attachment, bytes(content))

    def list_attachments(self, task_id: str | None = None, instance_id: str | None = None) -> list[AttachmentRecord]:
        found = (
            a
            for a, _ in self.t.attachments.values()
            if (task_id is None or a.task_id == task_id) and (instance_id is None or a.instance_id == instance_id)
        )
        return sorted(found, key=lambda a: (a.at, a.id))

    def get_attachment(self, attachment_id: str) -> tuple[AttachmentRecord, bytes] | None:
        return self.t.attachments.get(attachment_id)

    # -- credentials ------------------------------------------------------------------------------------
    def insert_token(self, token: ApiToken) -> None:
        self.t.tokens[token.id] = token

    def find_token(self, token_hash: str) -> ApiToken | None:
        return next((t for t in self.t.tokens.values() if t.token_hash == token_hash), None)

    def list_tokens(self) -> list[ApiToken]:
        return sorted(self.t.tokens.values(), key=lambda t: (t.created_at, t.id))

    def update_token(self, token_id: str, **changes: Any) -> None:
        current = self.t.tokens.get(token_id)
        if current is not None:
            self.t.tokens[token_id] = replace(current, **changes)

    def record_login(self, login: str, ip: str, at: datetime, success: bool) -> None:
        self.t.logins.append((login, ip, at, success))

    def login_failures(self, login: str, ip: str, since: datetime) -> int:
        recent = [(lg, addr) for lg, addr, at, ok in self.t.logins if not ok and at >= since]
        return max(sum(1 for lg, _ in recent if lg == login), sum(1 for _, addr in recent if addr == ip))

    def set_calendar_token(self, login: str, token_hash: str | None) -> None:
        for key in [k for k, v in self.t.calendar_tokens.items() if v == login]:
            del self.t.calendar_tokens[key]
        if token_hash is not None:
            self.t.calendar_tokens[token_hash] = login

    def user_by_calendar_token(self, token_hash: str) -> User | None:
        login = self.t.calendar_tokens.get(token_hash)
        return self.t.users.get(login) if login else None

    # -- the outbox and webhooks -----------------------------------------------------------------------
    def claim_outbox(self, limit: int, owner: str, now: datetime, lease_until: datetime) -> list[OutboxEvent]:
        due = [e for e in self.t.outbox if e.dispatched_at is None and self._free(self.t.outbox_leases, e.seq, now)][
            :limit
        ]
        for e in due:
            self.t.outbox_leases[e.seq] = (owner, lease_until)
        return due

    def mark_dispatched(self, seqs: Sequence[int], owner: str, at: datetime) -> None:
        wanted = set(seqs)
        self.t.outbox = [
            replace(e, dispatched_at=at)
            if e.seq in wanted and self.t.outbox_leases.get(e.seq, (owner,))[0] == owner
            else e
            for e in self.t.outbox
        ]
        for seq in wanted:
            self.t.outbox_leases.pop(seq, None)

    def list_outbox(self, after_seq: int = 0, limit: int = 100) -> list[OutboxEvent]:
        return [e for e in self.t.outbox if e.seq > after_seq][:limit]

    def insert_subscription(self, subscription: Subscription) -> None:
        self.t.subscriptions[subscription.id] = subscription

    def update_subscription(self, subscription_id: str, **changes: Any) -> None:
        current = self.t.subscriptions.get(subscription_id)
        if current is not None:
            if "event_types" in changes:
                changes["event_types"] = tuple(changes["event_types"])
            self.t.subscriptions[subscription_id] = replace(current, **changes)

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        return self.t.subscriptions.get(subscription_id)

    def list_subscriptions(self) -> list[Subscription]:
        return sorted(self.t.subscriptions.values(), key=lambda s: (s.created_at, s.id))

    def claim_webhook_deliveries(
        self, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[DeliveryRecord]:
        pending = (DeliveryStatus.QUEUED, DeliveryStatus.RETRY, DeliveryStatus.SENDING)
        webhook = [d for d in self.t.deliveries.values() if d.channel == "webhook" and d.status in pending]
        active = {s.id for s in self.t.subscriptions.values() if s.active}

        def blocked(d: DeliveryRecord) -> bool:
            return d.instance_id is not None and any(
                e.recipient == d.recipient and e.instance_id == d.instance_id and (e.seq or 0) < (d.seq or 0)
                for e in webhook
            )

        due = sorted(
            (
                d
                for d in webhook
                if d.recipient in active
                and (d.next_attempt_at is None or d.next_attempt_at <= now)
                and self._free(self.t.delivery_leases, d.id, now)
                and not blocked(d)
            ),
            key=lambda d: (d.seq or 0, d.id),
        )[:limit]
        claimed = []
        for d in due:
            self.t.delivery_leases[d.id] = (owner, lease_until)
            self.t.deliveries[d.id] = replace(d, status=DeliveryStatus.SENDING)
            claimed.append(self.t.deliveries[d.id])
        return claimed

    def update_deliveries(self, updates: Sequence[tuple[str, Mapping[str, Any]]], owner: str | None) -> None:
        for delivery_id, changes in updates:
            self.update_delivery(delivery_id, owner, **changes)

    def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        return self.t.deliveries.get(delivery_id)

    def insert_attempt(self, attempt: DeliveryAttempt) -> None:
        self.t.attempts.append(replace(attempt, id=len(self.t.attempts) + 1))

    def insert_attempts(self, attempts: Sequence[DeliveryAttempt]) -> None:
        for attempt in attempts:
            self.insert_attempt(attempt)

    def list_attempts(
        self, delivery_id: str | None = None, recipient: str | None = None, limit: int = 200
    ) -> list[DeliveryAttempt]:
        found = [
            a
            for a in self.t.attempts
            if (delivery_id is None or a.delivery_id == delivery_id) and (recipient is None or a.recipient == recipient)
        ]
        return sorted(found, key=lambda a: (a.at, a.id or 0), reverse=True)[:limit]

    # -- inbound messages ----------------------------------------------------------------------------------
    def save_source(self, source: InboundSource) -> None:
        self.t.sources[source.name] = source

    def get_source(self, name: str) -> InboundSource | None:
        return self.t.sources.get(name)

    def list_sources(self) -> list[InboundSource]:
        return sorted(self.t.sources.values(), key=lambda s: s.name)

    def insert_message(self, message: InboundMessage) -> None:
        if any(m.key == message.key for m in self.t.messages.values()):
            raise ConcurrencyConflict("message", f"a message with key {message.key!r} was received already")
        self.t.messages[message.id] = message

    def get_message_by_key(self, key: str) -> InboundMessage | None:
        return next((m for m in self.t.messages.values() if m.key == key), None)

    def get_message(self, message_id: str) -> InboundMessage | None:
        return self.t.messages.get(message_id)

    def update_message(self, message_id: str, **changes: Any) -> None:
        current = self.t.messages.get(message_id)
        if current is not None:
            self.t.messages[message_id] = replace(current, **changes)

    def buffered_messages(self, limit: int) -> list[InboundMessage]:
        found = [m for m in self.t.messages.values() if m.status == MessageStatus.BUFFERED]
        return sorted(found, key=lambda m: (m.received_at, m.id))[:limit]

    def list_messages(self, status: MessageStatus | None = None, limit: int = 200) -> list[InboundMessage]:
        found = [m for m in self.t.messages.values() if status is None or m.status == status]
        return sorted(found, key=lambda m: (m.received_at, m.id), reverse=True)[:limit]

    def instances_waiting_for(self, message: str, limit: int) -> list[InstanceRecord]:
        found = [
            i
            for i in self.t.instances.values()
            if i.status in (InstanceStatus.RUNNING, InstanceStatus.WAITING) and message in i.waiting_messages
        ]
        return sorted(found, key=lambda i: (i.started_at, i.id))[:limit]


class MemoryStore:
    """The in-memory adapter of :class:`engine.ports.Store`."""

    def __init__(self) -> None:
        self._tables = _Tables()
        self._lock = threading.RLock()
        self._audit_seq = [0]
        self.commits = 0

    @contextmanager
    def transaction(self) -> Iterator[MemoryTx]:
        with self._lock:
            working = self._tables.copy()
            seq = [self._audit_seq[0]]
            yield MemoryTx(working, seq)
            self._tables = working
            self._audit_seq[0] = seq[0]
            self.commits += 1
