"""Who hears about a task, and the rows that tell them: in-app notifications and queued e-mails.

A message is rendered once (Russian templates in :mod:`engine.notifications`) and fanned out:
one in-app notification per user (it is the in-app channel's delivery: who, when, read or not)
and one e-mail delivery per user with an address, which the worker sends later (never inline
in a request) and which records its attempts and result.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime

from .directory import Role, User
from .notifications import Message
from .records import DeliveryRecord, DeliveryStatus, NotificationRecord, TaskRecord


def performers(task: TaskRecord, users: Iterable[User]) -> list[User]:
    """The people a task is for: its assignee, or its candidate users and role holders
    (a МОУО role only within the task's organisation)."""
    active = [u for u in users if u.active]
    if task.assignee:
        return [u for u in active if u.login == task.assignee]
    chosen: dict[str, User] = {}
    for user in active:
        if user.login in task.candidate_users:
            chosen[user.login] = user
            continue
        for role in set(task.candidate_roles) & user.roles:
            if role == Role.MOUO and task.organisation is not None and user.organisation != task.organisation:
                continue
            chosen[user.login] = user
    return sorted(chosen.values(), key=lambda u: u.login)


def role_holders(role: str, users: Iterable[User], organisation: str | None = None) -> list[User]:
    """Active users with ``role`` (within ``organisation`` for a МОУО role)."""
    return sorted(
        (
            u
            for u in users
            if u.active
            and role in u.roles
            and (role != Role.MOUO or organisation is None or u.organisation == organisation)
        ),
        key=lambda u: u.login,
    )


def fan_out(
    message: Message,
    kind: str,
    recipients: Sequence[User],
    *,
    event_id: str,
    now: datetime,
    instance_id: str | None = None,
    task_id: str | None = None,
    deadline_id: str | None = None,
    fields: Mapping[str, object] | None = None,
) -> tuple[list[NotificationRecord], list[DeliveryRecord]]:
    """In-app notifications and e-mail deliveries of one message; ids derive from ``event_id``
    so that queuing the same event twice is refused by the store.

    With ``fields`` (the template's inputs), an e-mail delivery keeps those and is rendered
    when it is sent: a small row to queue, the same letter to read.
    """
    email_payload: dict[str, object] = (
        {"kind": kind, "subject": message.subject, "fields": dict(fields)}
        if fields is not None
        else {"kind": kind, "subject": message.subject, "text": message.text, "html": message.html}
    )
    notes: list[NotificationRecord] = []
    deliveries: list[DeliveryRecord] = []
    for user in recipients:
        notes.append(
            NotificationRecord(
                id=_short(event_id, user.login),
                user=user.login,
                kind=kind,
                title=message.subject,
                body=message.text,
                created_at=now,
                instance_id=instance_id,
                task_id=task_id,
                deadline_id=deadline_id,
                event_id=event_id,
            )
        )
        if user.email:
            deliveries.append(
                DeliveryRecord(
                    id=f"{event_id}:email:{user.login}",
                    event_id=event_id,
                    channel="email",
                    recipient=user.login,
                    address=user.email,
                    status=DeliveryStatus.QUEUED,
                    created_at=now,
                    next_attempt_at=now,
                    instance_id=instance_id,
                    payload=email_payload,
                )
            )
    return notes, deliveries


def _short(event_id: str, login: str) -> str:
    """A deterministic 32-character id for (event, user): the same event never notifies twice."""
    return hashlib.sha256(f"{event_id}:{login}".encode()).hexdigest()[:32]
