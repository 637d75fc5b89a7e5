"""The SQL adapter of the engine's store port (SQLite and PostgreSQL, same code).

One :meth:`SqlStore.transaction` is one database transaction and one commit. The hot path
uses Core statements on a Connection (no ORM unit of work): completing a task is a SELECT
of the task joined with its instance, two guarded UPDATEs (``WHERE status = :expected`` /
``WHERE version = :expected``) and two batch INSERTs.

Driver errors are translated here: a lost race on a unique key or a guarded update becomes
:class:`~engine.errors.ConcurrencyConflict`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from engine import events
from engine.directory import Membership, Organisation, OrgKind, Role, User
from engine.errors import ConcurrencyConflict
from engine.ports import AuditQuery, DeadlineQuery, ExtensionQuery, InstanceQuery
from engine.records import (
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
    canonical_json,
)

from . import tables as t


def _pack(values: Iterable[str]) -> str:
    items = [v for v in values if v]
    return "," + ",".join(items) + "," if items else ""


def _unpack(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(v for v in value.split(",") if v)


def _contains(column: Any, item: str) -> ColumnElement[bool]:
    """``column`` (a packed ``,a,b,`` list) holds ``item``: a LIKE with ``%`` and ``_`` escaped, so a
    login such as ``a_b`` never matches ``axb``."""
    escaped = item.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    result: ColumnElement[bool] = column.like(f"%,{escaped},%", escape="\\")
    return result


def _lease(
    conn: Connection, table: Table, key: Any, due: Select[Any], owner: str, lease_until: datetime, **extra: Any
) -> list[Any]:
    """Lease the rows ``due`` selects to ``owner`` until ``lease_until`` in one ``UPDATE … RETURNING``;
    on PostgreSQL the selection locks with ``SKIP LOCKED``, so concurrent workers take disjoint rows
    (SQLite's single writer serialises the UPDATEs). Returns the leased rows' ``key`` values."""
    chosen = due.with_for_update(skip_locked=True).scalar_subquery()
    stmt = update(table).where(key.in_(chosen)).values(lease_owner=owner, lease_until=lease_until, **extra)
    return [r[0] for r in conn.execute(stmt.returning(key))]


def _enum(value: Any) -> Any:
    return value.value if hasattr(value, "value") else value


def _instance(row: Any) -> InstanceRecord:
    return InstanceRecord(
        id=row.id,
        definition_id=row.definition_id,
        process_key=row.process_key,
        business_key=row.business_key,
        status=InstanceStatus(row.status),
        organisation=row.organisation,
        started_by=row.started_by,
        started_at=row.started_at,
        updated_at=row.updated_at,
        state=row.state,
        version=row.version,
        ended_at=row.ended_at,
        next_due_at=row.next_due_at,
        incident=row.incident,
        waiting_messages=_unpack(row.waiting_messages),
    )


def _task(row: Any) -> TaskRecord:
    return TaskRecord(
        id=row.id,
        instance_id=row.instance_id,
        definition_id=row.definition_id,
        process_key=row.process_key,
        element_id=row.element_id,
        name=row.name,
        lane=row.lane,
        candidate_roles=_unpack(row.candidate_roles),
        candidate_users=_unpack(row.candidate_users),
        organisation=row.organisation,
        assignee=row.assignee,
        status=TaskStatus(row.status),
        created_at=row.created_at,
        due_at=row.due_at,
        follow_up_at=row.follow_up_at,
        priority=row.priority,
        form_key=row.form_key,
        business_key=row.business_key,
        claimed_at=row.claimed_at,
        completed_at=row.completed_at,
        completed_by=row.completed_by,
    )


def _task_values(task: TaskRecord) -> dict[str, Any]:
    return {
        "id": task.id,
        "instance_id": task.instance_id,
        "definition_id": task.definition_id,
        "process_key": task.process_key,
        "element_id": task.element_id,
        "name": task.name,
        "lane": task.lane,
        "candidate_roles": _pack(task.candidate_roles),
        "candidate_users": _pack(task.candidate_users),
        "organisation": task.organisation,
        "assignee": task.assignee,
        "status": task.status.value,
        "created_at": task.created_at,
        "due_at": task.due_at,
        "follow_up_at": task.follow_up_at,
        "priority": task.priority,
        "form_key": task.form_key,
        "business_key": task.business_key,
        "claimed_at": task.claimed_at,
        "completed_at": task.completed_at,
        "completed_by": task.completed_by,
    }


def _definition(row: Any) -> DefinitionRecord:
    return DefinitionRecord(
        id=row.id,
        deployment_id=row.deployment_id,
        key=row.key,
        version=row.version,
        name=row.name,
        content_hash=row.content_hash,
        deployed_at=row.deployed_at,
        calls=json.loads(row.calls or "{}"),
    )


def _membership(row: Any) -> Membership:
    return Membership(
        organisation=row.organisation,
        since_year=row.since_year,
        until_year=row.until_year,
        source=row.source,
        contract_number=row.contract_number,
        contract_date=row.contract_date,
        instance_id=row.instance_id,
        granted_at=row.granted_at,
    )


def _audit(row: Any) -> AuditEntry:
    return AuditEntry(
        at=row.at,
        actor=row.actor,
        organisation=row.organisation,
        action=row.action,
        instance_id=row.instance_id,
        task_id=row.task_id,
        element_id=row.element_id,
        definition_id=row.definition_id,
        details=json.loads(row.details or "{}"),
        data_digest=row.data_digest,
        id=row.id,
    )


def _deadline(row: Any) -> DeadlineRecord:
    return DeadlineRecord(
        id=row.id,
        instance_id=row.instance_id,
        task_id=row.task_id,
        element_id=row.element_id,
        process_key=row.process_key,
        organisation=row.organisation,
        rule=row.rule,
        anchor=row.anchor,
        anchor_value=row.anchor_value,
        clause=row.clause,
        raw_date=row.raw_date,
        final_date=row.final_date,
        due_at=row.due_at,
        explanation=row.explanation,
        original_date=row.original_date,
        original_explanation=row.original_explanation,
        policy=json.loads(row.policy or "{}"),
        created_at=row.created_at,
        status=DeadlineStatus(row.status),
        plan_version=row.plan_version,
        next_reminder_at=row.next_reminder_at,
        next_reminder_key=row.next_reminder_key,
        last_reminder_at=row.last_reminder_at,
        escalated_at=row.escalated_at,
        extensions=row.extensions,
        completed_at=row.completed_at,
        late=bool(row.late),
        variable=row.variable,
        updated_at=row.updated_at,
        version=row.version,
        lease_owner=row.lease_owner,
    )


def _deadline_param(key: str, value: Any) -> Any:
    if key == "policy":
        return canonical_json(value)
    return _enum(value)


def _deadline_values(d: DeadlineRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "instance_id": d.instance_id,
        "task_id": d.task_id,
        "element_id": d.element_id,
        "process_key": d.process_key,
        "organisation": d.organisation,
        "rule": d.rule,
        "anchor": d.anchor,
        "anchor_value": d.anchor_value,
        "clause": d.clause,
        "raw_date": d.raw_date,
        "final_date": d.final_date,
        "due_at": d.due_at,
        "explanation": d.explanation,
        "original_date": d.original_date,
        "original_explanation": d.original_explanation,
        "policy": canonical_json(d.policy),
        "created_at": d.created_at,
        "status": d.status.value,
        "plan_version": d.plan_version,
        "next_reminder_at": d.next_reminder_at,
        "next_reminder_key": d.next_reminder_key,
        "last_reminder_at": d.last_reminder_at,
        "escalated_at": d.escalated_at,
        "extensions": d.extensions,
        "completed_at": d.completed_at,
        "late": d.late,
        "variable": d.variable,
        "updated_at": d.updated_at,
        "version": d.version,
        "lease_owner": d.lease_owner,
    }


def _extension(row: Any) -> ExtensionRequest:
    return ExtensionRequest(
        id=row.id,
        deadline_id=row.deadline_id,
        task_id=row.task_id,
        instance_id=row.instance_id,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        reason=row.reason,
        proposed_date=row.proposed_date,
        approver_role=row.approver_role,
        organisation=row.organisation,
        status=ExtensionStatus(row.status),
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        comment=row.comment,
        new_date=row.new_date,
    )


def _extension_values(e: ExtensionRequest) -> dict[str, Any]:
    return {
        "id": e.id,
        "deadline_id": e.deadline_id,
        "task_id": e.task_id,
        "instance_id": e.instance_id,
        "requested_by": e.requested_by,
        "requested_at": e.requested_at,
        "reason": e.reason,
        "proposed_date": e.proposed_date,
        "approver_role": e.approver_role,
        "organisation": e.organisation,
        "status": e.status.value,
        "decided_by": e.decided_by,
        "decided_at": e.decided_at,
        "comment": e.comment,
        "new_date": e.new_date,
    }


def _delivery(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        id=row.id,
        event_id=row.event_id,
        channel=row.channel,
        recipient=row.recipient,
        address=row.address,
        status=DeliveryStatus(row.status),
        created_at=row.created_at,
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        sent_at=row.sent_at,
        last_error=row.last_error,
        reply=row.reply,
        instance_id=row.instance_id,
        payload=json.loads(row.payload or "{}"),
        seq=row.seq,
    )


def _delivery_values(d: DeliveryRecord) -> dict[str, Any]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "channel": d.channel,
        "recipient": d.recipient,
        "address": d.address,
        "status": d.status.value,
        "created_at": d.created_at,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "sent_at": d.sent_at,
        "last_error": d.last_error,
        "reply": d.reply,
        "instance_id": d.instance_id,
        "payload": canonical_json(d.payload),
        "lease_owner": None,
        "lease_until": None,
        "seq": d.seq,
    }


def _start_timer(row: Any) -> StartTimerRecord:
    return StartTimerRecord(
        id=row.id,
        process_key=row.process_key,
        definition_id=row.definition_id,
        element_id=row.element_id,
        kind=row.kind,
        expression=row.expression,
        next_due_at=row.next_due_at,
        cycles_left=row.cycles_left,
        active=bool(row.active),
    )


_TASK_COLS = list(t.tasks.c)
_INSTANCE_LABELS = [c.label(f"i_{c.name}") for c in t.instances.c]

# Hot-path statements are built once: constructing and cache-keying a statement costs more
# than executing it on SQLite.
_SELECT_TASK_WITH_INSTANCE = (
    select(*_TASK_COLS, *_INSTANCE_LABELS)
    .join_from(t.tasks, t.instances, t.tasks.c.instance_id == t.instances.c.id)
    .where(t.tasks.c.id == bindparam("task_id"))
)
_SELECT_TASK = select(t.tasks).where(t.tasks.c.id == bindparam("task_id"))
_SELECT_INSTANCE = select(t.instances).where(t.instances.c.id == bindparam("instance_id"))
_INSERT_TASKS = insert(t.tasks)
_INSERT_AUDIT = insert(t.audit_log)
_INSERT_INSTANCE = insert(t.instances)
_SELECT_LATEST_DEFINITION = (
    select(t.definitions)
    .where(t.definitions.c.key == bindparam("key"))
    .order_by(t.definitions.c.version.desc())
    .limit(1)
)
_INSERT_DEADLINES = insert(t.deadlines)
_INSERT_REMINDERS = insert(t.reminders)
_INSERT_DELIVERIES = insert(t.deliveries)
_INSERT_NOTIFICATIONS = insert(t.notifications)
_INSERT_ATTEMPTS = insert(t.delivery_attempts)
_UPDATE_CACHE: dict[tuple[str, tuple[str, ...]], Any] = {}
_DELIVERY_UPDATES: dict[tuple[tuple[str, ...], bool, bool], Any] = {}


def _delivery_update(keys: tuple[str, ...], release: bool, guarded: bool) -> Any:
    """``UPDATE deliveries SET <keys> [, lease released] WHERE id = :_id [AND lease_owner = :_owner]``."""
    cache_key = (keys, release, guarded)
    stmt = _DELIVERY_UPDATES.get(cache_key)
    if stmt is None:
        d = t.deliveries.c
        values: dict[str, Any] = {k: bindparam(k, type_=d[k].type) for k in keys}
        if release:
            values.update(lease_owner=None, lease_until=None)
        stmt = update(t.deliveries).where(d.id == bindparam("_id")).values(values)
        if guarded:
            stmt = stmt.where(d.lease_owner == bindparam("_owner"))
        _DELIVERY_UPDATES[cache_key] = stmt
    return stmt


def _guarded_update(kind: str, keys: tuple[str, ...]) -> Any:
    """``UPDATE ... SET <keys> WHERE id = :_id AND <guard>``, built once per column set."""
    cache_key = (kind, keys)
    stmt = _UPDATE_CACHE.get(cache_key)
    if stmt is None:
        if kind == "instance":
            table, guard = t.instances, t.instances.c.version == bindparam("_expected")
        elif kind == "deadline":
            table, guard = t.deadlines, t.deadlines.c.version == bindparam("_expected")
        elif kind == "task":
            table, guard = t.tasks, t.tasks.c.status == bindparam("_expected")
        elif kind == "task_unassigned":
            table, guard = t.tasks, and_(t.tasks.c.status == bindparam("_expected"), t.tasks.c.assignee.is_(None))
        else:
            table, guard = (
                t.tasks,
                and_(t.tasks.c.status == bindparam("_expected"), t.tasks.c.assignee == bindparam("_assignee")),
            )
        stmt = (
            update(table)
            .where(table.c.id == bindparam("_id"), guard)
            .values({k: bindparam(k, type_=table.c[k].type) for k in keys})
        )
        _UPDATE_CACHE[cache_key] = stmt
    return stmt


class _Prefixed:
    """Row view over the prefixed columns of a joined table (``i_`` for instances ...)."""

    def __init__(self, row: Any, prefix: str = "i_") -> None:
        self._m = row._mapping
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        return self._m[f"{self._prefix}{name}"]


class SqlTx:
    """One transaction on a SQLAlchemy Connection."""

    def __init__(self, conn: Connection) -> None:
        self.c = conn

    # -- directory ---------------------------------------------------------------------------
    def get_user(self, login: str) -> User | None:
        row = self.c.execute(select(t.users).where(t.users.c.login == login)).first()
        return (
            None
            if row is None
            else User(
                row.login,
                row.name,
                row.organisation,
                frozenset(_unpack(row.roles)),
                row.password_hash,
                bool(row.active),
                row.email,
            )
        )

    def list_users(self) -> list[User]:
        rows = self.c.execute(select(t.users).order_by(t.users.c.login))
        return [
            User(r.login, r.name, r.organisation, frozenset(_unpack(r.roles)), r.password_hash, bool(r.active), r.email)
            for r in rows
        ]

    def save_user(self, user: User) -> None:
        values = {
            "name": user.name,
            "organisation": user.organisation,
            "roles": _pack(sorted(user.roles)),
            "password_hash": user.password_hash,
            "active": user.active,
            "email": user.email,
        }
        done = self.c.execute(update(t.users).where(t.users.c.login == user.login).values(**values)).rowcount
        if not done:
            self.c.execute(insert(t.users).values(login=user.login, **values))

    def get_organisation(self, code: str) -> Organisation | None:
        row = self.c.execute(select(t.organisations).where(t.organisations.c.code == code)).first()
        return (
            None
            if row is None
            else Organisation(row.code, row.name, OrgKind(row.kind), row.short_name, row.municipality_kind)
        )

    def list_organisations(self) -> list[Organisation]:
        rows = self.c.execute(select(t.organisations).order_by(t.organisations.c.name))
        return [Organisation(r.code, r.name, OrgKind(r.kind), r.short_name, r.municipality_kind) for r in rows]

    def save_organisation(self, organisation: Organisation) -> None:
        values = {
            "name": organisation.name,
            "kind": organisation.kind.value,
            "short_name": organisation.short_name,
            "municipality_kind": organisation.municipality_kind,
        }
        done = self.c.execute(
            update(t.organisations).where(t.organisations.c.code == organisation.code).values(**values)
        ).rowcount
        if not done:
            self.c.execute(insert(t.organisations).values(code=organisation.code, **values))

    def add_membership(self, membership: Membership) -> bool:
        m = t.memberships.c
        found = self.c.execute(
            select(m.id).where(m.organisation == membership.organisation, m.since_year == membership.since_year)
        ).first()
        if found is not None:
            return False
        self.c.execute(
            insert(t.memberships).values(
                organisation=membership.organisation,
                since_year=membership.since_year,
                until_year=membership.until_year,
                source=membership.source,
                contract_number=membership.contract_number,
                contract_date=membership.contract_date,
                instance_id=membership.instance_id,
                granted_at=membership.granted_at,
            )
        )
        return True

    def memberships(self, year: int) -> list[Membership]:
        m = t.memberships.c
        rows = self.c.execute(
            select(t.memberships).where(m.since_year <= year, or_(m.until_year.is_(None), m.until_year >= year))
        )
        return [_membership(r) for r in rows]

    def memberships_of(self, organisation: str) -> list[Membership]:
        m = t.memberships.c
        rows = self.c.execute(select(t.memberships).where(m.organisation == organisation).order_by(m.since_year))
        return [_membership(r) for r in rows]

    # -- definitions ---------------------------------------------------------------------------
    def _deployment(self, row: Any) -> DeploymentRecord:
        r = t.deployment_resources.c
        resources = {
            res.name: bytes(res.content)
            for res in self.c.execute(select(r.name, r.content).where(r.deployment_id == row.id))
        }
        return DeploymentRecord(
            id=row.id,
            filename=row.filename,
            content_hash=row.content_hash,
            source=bytes(row.source),
            resources=resources,
            deployed_at=row.deployed_at,
            deployed_by=row.deployed_by,
        )

    def find_deployment(self, content_hash: str) -> DeploymentRecord | None:
        row = self.c.execute(select(t.deployments).where(t.deployments.c.content_hash == content_hash)).first()
        return None if row is None else self._deployment(row)

    def get_deployment(self, deployment_id: str) -> DeploymentRecord | None:
        row = self.c.execute(select(t.deployments).where(t.deployments.c.id == deployment_id)).first()
        return None if row is None else self._deployment(row)

    def add_deployment(self, deployment: DeploymentRecord, definitions: Sequence[DefinitionRecord]) -> None:
        try:
            self.c.execute(
                insert(t.deployments).values(
                    id=deployment.id,
                    filename=deployment.filename,
                    content_hash=deployment.content_hash,
                    source=deployment.source,
                    deployed_at=deployment.deployed_at,
                    deployed_by=deployment.deployed_by,
                )
            )
            if deployment.resources:
                self.c.execute(
                    insert(t.deployment_resources),
                    [
                        {"deployment_id": deployment.id, "name": name, "content": content}
                        for name, content in sorted(deployment.resources.items())
                    ],
                )
            if definitions:
                self.c.execute(
                    insert(t.definitions),
                    [
                        {
                            "id": d.id,
                            "deployment_id": d.deployment_id,
                            "key": d.key,
                            "version": d.version,
                            "name": d.name,
                            "content_hash": d.content_hash,
                            "deployed_at": d.deployed_at,
                            "calls": json.dumps(d.calls),
                        }
                        for d in definitions
                    ],
                )
        except IntegrityError as exc:
            raise ConcurrencyConflict(
                f"deployment {deployment.filename}", "the same content or version was deployed meanwhile"
            ) from exc

    def get_definition(self, definition_id: str) -> DefinitionRecord | None:
        row = self.c.execute(select(t.definitions).where(t.definitions.c.id == definition_id)).first()
        return None if row is None else _definition(row)

    def latest_definition(self, key: str) -> DefinitionRecord | None:
        row = self.c.execute(_SELECT_LATEST_DEFINITION, {"key": key}).first()
        return None if row is None else _definition(row)

    def max_definition_version(self, key: str) -> int:
        d = t.definitions.c
        return int(self.c.execute(select(func.coalesce(func.max(d.version), 0)).where(d.key == key)).scalar_one())

    def definitions_of(self, deployment_id: str) -> list[DefinitionRecord]:
        d = t.definitions.c
        return [
            _definition(r)
            for r in self.c.execute(select(t.definitions).where(d.deployment_id == deployment_id).order_by(d.key))
        ]

    def list_definitions(self, latest_only: bool = True) -> list[DefinitionRecord]:
        d = t.definitions.c
        stmt = select(t.definitions)
        if latest_only:
            latest = select(d.key, func.max(d.version).label("v")).group_by(d.key).subquery()
            stmt = stmt.join(latest, and_(d.key == latest.c.key, d.version == latest.c.v))
        return [_definition(r) for r in self.c.execute(stmt.order_by(d.key, d.version))]

    # -- instances -------------------------------------------------------------------------------
    def insert_instance(self, instance: InstanceRecord) -> None:
        self.c.execute(
            _INSERT_INSTANCE,
            dict(
                id=instance.id,
                definition_id=instance.definition_id,
                process_key=instance.process_key,
                business_key=instance.business_key,
                status=instance.status.value,
                organisation=instance.organisation,
                started_by=instance.started_by,
                started_at=instance.started_at,
                updated_at=instance.updated_at,
                ended_at=instance.ended_at,
                state=instance.state,
                version=instance.version,
                next_due_at=instance.next_due_at,
                incident=instance.incident,
                waiting_messages=_pack(instance.waiting_messages),
            ),
        )

    def get_instance(self, instance_id: str) -> InstanceRecord | None:
        row = self.c.execute(_SELECT_INSTANCE, {"instance_id": instance_id}).first()
        return None if row is None else _instance(row)

    def update_instance(self, instance_id: str, expected_version: int, **changes: Any) -> None:
        params = {k: _enum(v) for k, v in changes.items()}
        if "waiting_messages" in params:
            params["waiting_messages"] = _pack(params["waiting_messages"])
        stmt = _guarded_update("instance", tuple(sorted(params)))
        params.update(_id=instance_id, _expected=expected_version)
        if self.c.execute(stmt, params).rowcount != 1:
            raise ConcurrencyConflict(f"instance {instance_id}")

    def _instance_filter(self, query: InstanceQuery) -> list[ColumnElement[bool]]:
        i = t.instances.c
        conds: list[ColumnElement[bool]] = []
        if query.process_key:
            conds.append(i.process_key == query.process_key)
        if query.status:
            conds.append(i.status == query.status.value)
        if query.organisation:
            conds.append(i.organisation == query.organisation)
        if query.business_key:
            conds.append(i.business_key == query.business_key)
        if query.visible_to_organisation:
            org = query.visible_to_organisation
            conds.append(
                or_(i.organisation == org, exists().where(t.tasks.c.instance_id == i.id, t.tasks.c.organisation == org))
            )
        return conds

    def list_instances(self, query: InstanceQuery) -> list[InstanceRecord]:
        i = t.instances.c
        stmt = (
            select(t.instances)
            .where(*self._instance_filter(query))
            .order_by(i.started_at.desc(), i.id.desc())
            .limit(query.limit)
            .offset(query.offset)
        )
        return [_instance(r) for r in self.c.execute(stmt)]

    def due_instances(self, now: datetime, limit: int) -> list[str]:
        i = t.instances.c
        stmt = (
            select(i.id)
            .where(
                i.next_due_at.is_not(None),
                i.next_due_at <= now,
                i.status.in_([InstanceStatus.RUNNING.value, InstanceStatus.WAITING.value]),
            )
            .order_by(i.next_due_at, i.id)
            .limit(limit)
        )
        return [r[0] for r in self.c.execute(stmt)]

    def count_instances(self, query: InstanceQuery) -> int:
        stmt = select(func.count()).select_from(t.instances).where(*self._instance_filter(query))
        return int(self.c.execute(stmt).scalar_one())

    # -- tasks -------------------------------------------------------------------------------------
    def insert_tasks(self, tasks: Sequence[TaskRecord]) -> None:
        if tasks:
            try:
                self.c.execute(_INSERT_TASKS, [_task_values(task) for task in tasks])
            except IntegrityError as exc:
                raise ConcurrencyConflict("tasks", "a task was created twice") from exc

    def get_task(self, task_id: str) -> TaskRecord | None:
        row = self.c.execute(_SELECT_TASK, {"task_id": task_id}).first()
        return None if row is None else _task(row)

    def get_task_with_instance(self, task_id: str) -> tuple[TaskRecord, InstanceRecord] | None:
        row = self.c.execute(_SELECT_TASK_WITH_INSTANCE, {"task_id": task_id}).first()
        if row is None:
            return None
        return _task(row), _instance(_Prefixed(row))

    def update_task(
        self,
        task_id: str,
        expected_status: TaskStatus,
        *,
        check_assignee: bool = False,
        expected_assignee: str | None = None,
        **changes: Any,
    ) -> None:
        params = {k: _enum(v) for k, v in changes.items()}
        kind = "task" if not check_assignee else "task_unassigned" if expected_assignee is None else "task_assigned"
        stmt = _guarded_update(kind, tuple(sorted(params)))
        params.update(_id=task_id, _expected=expected_status.value, _assignee=expected_assignee)
        if self.c.execute(stmt, params).rowcount != 1:
            raise ConcurrencyConflict(f"task {task_id}")

    def close_tasks(self, task_ids: Iterable[str], status: TaskStatus, at: datetime) -> None:
        ids = list(task_ids)
        if ids:
            c = t.tasks.c
            self.c.execute(
                update(t.tasks)
                .where(c.id.in_(ids), c.status == TaskStatus.OPEN.value)
                .values(status=status.value, completed_at=at)
            )

    def _visibility(self, query: TaskQuery) -> ColumnElement[bool] | None:
        """SQL twin of engine.memory.task_matches_visibility and engine.access.is_candidate."""
        if query.all_tasks:
            return None
        c = t.tasks.c
        # The order matters for speed, not for the result: counting an inbox evaluates this on
        # every open task, and the databases stop at the first true term and skip the LIKE of a
        # false AND. So the role terms come first (most of a role's inbox matches one), the
        # organisation test before a МОУО's LIKE, and the candidate-users LIKE only on tasks
        # that name candidate users at all. Each of a МОУО's terms (its organisation's tasks,
        # the tasks bound to none, assigned to it, naming it) has an index, so PostgreSQL counts
        # its inbox as a union of index lookups (BitmapOr) instead of a walk of every open task.
        options: list[ColumnElement[bool]] = []
        for role in sorted(query.candidate_roles, key=lambda r: r == Role.MOUO):
            has_role = _contains(c.candidate_roles, role)
            if role == Role.MOUO:
                if query.organisation is not None:
                    options.append(and_(c.organisation == query.organisation, has_role))
                options.append(and_(c.organisation.is_(None), has_role))
            else:
                options.append(has_role)
        if query.candidate_user:
            options.append(c.assignee == query.candidate_user)
            # ``> ''`` (not ``<> ''``): a range, so the partial index of tasks naming users serves it.
            named = c.candidate_users > literal_column("''")
            options.append(and_(named, _contains(c.candidate_users, query.candidate_user)))
        if query.include_unrestricted:
            options.append(and_(c.candidate_roles == "", c.candidate_users == ""))
        return or_(*options) if options else c.id.is_(None)

    def _status_is(self, status: TaskStatus) -> ColumnElement[bool]:
        """``status = :status``. SQLite, which has no statistics (we never ANALYZE), would take this
        test for a selective one and, for "the open tasks of this instance", walk every open task
        in the inbox index rather than look the instance up; ``likelihood()`` tells it that a
        status matches many rows, and changes nothing else (not the result, not the partial
        index's use)."""
        test: ColumnElement[bool] = t.tasks.c.status == status.value
        if self.c.dialect.name == "sqlite":
            # Untyped: as a Boolean, SQLAlchemy would add ``= 1`` and hide the test from the planner.
            test = cast(ColumnElement[bool], func.likelihood(test, literal_column("0.25")))
        return test

    def _task_filter(self, query: TaskQuery) -> list[ColumnElement[bool]]:
        c = t.tasks.c
        where: list[ColumnElement[bool]] = []
        if query.status is not None:
            where.append(self._status_is(query.status))
        if query.instance_id:
            where.append(c.instance_id == query.instance_id)
        if query.assignee:
            where.append(c.assignee == query.assignee)
        if query.process_key:
            where.append(c.process_key == query.process_key)
        if query.role:
            where.append(_contains(c.candidate_roles, query.role))
        if query.only_organisation:
            where.append(c.organisation == query.only_organisation)
        if query.due_before:
            where.append(c.due_at < query.due_before)
        if query.due_after:
            where.append(c.due_at >= query.due_after)
        if query.without_due:
            where.append(c.due_at.is_(None))
        visibility = self._visibility(query)
        if visibility is not None:
            where.append(visibility)
        return where

    def list_tasks(self, query: TaskQuery) -> list[TaskRecord]:
        c = t.tasks.c
        order: dict[str, tuple[Any, ...]] = {
            "created": (c.created_at, c.id),
            "priority": (c.priority.desc(), c.due_at.is_(None), c.due_at, c.created_at, c.id),
            "name": (c.name, c.id),
        }
        ordering = order.get(query.sort, (c.due_at.is_(None), c.due_at, c.created_at, c.id))
        # The page's ids first, then their rows: the inner query reads only what the inbox index
        # holds (an index-only walk that skips the tasks the actor may not see without reading
        # them), and only the page's rows are fetched from the table.
        page = (
            select(c.id)
            .where(*self._task_filter(query))
            .order_by(*ordering)
            .limit(query.limit)
            .offset(query.offset)
            .subquery("page")
        )
        stmt = select(t.tasks).join(page, c.id == page.c.id).order_by(*ordering)
        return [_task(r) for r in self.c.execute(stmt)]

    def count_tasks(self, query: TaskQuery) -> int:
        stmt = select(func.count()).select_from(t.tasks).where(*self._task_filter(query))
        return int(self.c.execute(stmt).scalar_one())

    def task_organisations(self, instance_id: str) -> set[str | None]:
        c = t.tasks.c
        return {r[0] for r in self.c.execute(select(c.organisation).where(c.instance_id == instance_id).distinct())}

    # -- audit -------------------------------------------------------------------------------------
    def append_audit(self, entries: Sequence[AuditEntry]) -> None:
        """One statement for every line; a public event's line is also its outbox row (event id and
        type set here, in the transaction of the change), which the worker dispatches."""
        if entries:
            rows = []
            for e in entries:
                kind = events.event_type_of(e.action)
                rows.append(
                    {
                        "at": e.at,
                        "actor": e.actor,
                        "organisation": e.organisation,
                        "action": e.action,
                        "instance_id": e.instance_id,
                        "task_id": e.task_id,
                        "element_id": e.element_id,
                        "definition_id": e.definition_id,
                        "details": canonical_json(e.details),
                        "data_digest": e.data_digest,
                        "event_id": events.new_event_id() if kind is not None else None,
                        "event_type": kind,
                    }
                )
            self.c.execute(_INSERT_AUDIT, rows)

    def _audit_filter(self, query: AuditQuery) -> list[ColumnElement[bool]]:
        a = t.audit_log.c
        where: list[ColumnElement[bool]] = []
        if query.instance_id:
            where.append(a.instance_id == query.instance_id)
        if query.actor:
            where.append(a.actor == query.actor)
        if query.action:
            where.append(a.action == query.action)
        if query.since:
            where.append(a.at >= query.since)
        if query.until:
            where.append(a.at < query.until)
        if query.task_id:
            where.append(a.task_id == query.task_id)
        if query.organisation:
            where.append(a.organisation == query.organisation)
        return where

    def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        a = t.audit_log.c
        stmt = (
            select(t.audit_log)
            .where(*self._audit_filter(query))
            .order_by(a.id.desc() if query.newest_first else a.id)
            .limit(query.limit)
            .offset(query.offset)
        )
        return [_audit(r) for r in self.c.execute(stmt)]

    def count_audit(self, query: AuditQuery) -> int:
        stmt = select(func.count()).select_from(t.audit_log).where(*self._audit_filter(query))
        return int(self.c.execute(stmt).scalar_one())

    # -- the worker's claims -----------------------------------------------------------------------
    def claim_due_instances(self, now: datetime, limit: int, owner: str, lease_until: datetime) -> list[str]:
        i = t.instances.c
        due = (
            select(i.id)
            .where(
                i.next_due_at.is_not(None),
                i.next_due_at <= now,
                i.status.in_([InstanceStatus.RUNNING.value, InstanceStatus.WAITING.value]),
                or_(i.lease_until.is_(None), i.lease_until < now),
            )
            .order_by(i.next_due_at, i.id)
            .limit(limit)
        )
        return _lease(self.c, t.instances, i.id, due, owner, lease_until)

    def release_instance(self, instance_id: str, owner: str) -> None:
        i = t.instances.c
        self.c.execute(
            update(t.instances)
            .where(i.id == instance_id, i.lease_owner == owner)
            .values(lease_owner=None, lease_until=None)
        )

    # -- deadlines ---------------------------------------------------------------------------------
    def insert_deadlines(self, deadlines: Sequence[DeadlineRecord]) -> None:
        if deadlines:
            self.c.execute(_INSERT_DEADLINES, [_deadline_values(d) for d in deadlines])

    def get_deadline(self, deadline_id: str) -> DeadlineRecord | None:
        row = self.c.execute(select(t.deadlines).where(t.deadlines.c.id == deadline_id)).first()
        return None if row is None else _deadline(row)

    def deadline_of_task(self, task_id: str) -> DeadlineRecord | None:
        row = self.c.execute(select(t.deadlines).where(t.deadlines.c.task_id == task_id)).first()
        return None if row is None else _deadline(row)

    def deadlines_of_tasks(self, task_ids: Sequence[str]) -> dict[str, DeadlineRecord]:
        if not task_ids:
            return {}
        rows = self.c.execute(select(t.deadlines).where(t.deadlines.c.task_id.in_(list(task_ids))))
        return {r.task_id: _deadline(r) for r in rows}

    def update_deadline(self, deadline_id: str, expected_version: int, **changes: Any) -> None:
        params = {k: _deadline_param(k, v) for k, v in changes.items()}
        stmt = _guarded_update("deadline", tuple(sorted(params)))
        params.update(_id=deadline_id, _expected=expected_version)
        if self.c.execute(stmt, params).rowcount != 1:
            raise ConcurrencyConflict(f"deadline {deadline_id}")

    def update_deadlines(self, updates: Sequence[tuple[str, int, Mapping[str, Any]]]) -> None:
        if not updates:
            return
        keys = tuple(sorted(updates[0][2]))
        params = []
        for deadline_id, version, changes in updates:
            if tuple(sorted(changes)) != keys:
                raise ValueError("update_deadlines needs the same columns in every update")
            row = {k: _deadline_param(k, v) for k, v in changes.items()}
            row.update(_id=deadline_id, _expected=version)
            params.append(row)
        result = self.c.execute(_guarded_update("deadline", keys), params)
        if result.rowcount not in (-1, len(params)):
            raise ConcurrencyConflict("deadlines", "a deadline changed during the sweep")

    def finish_deadlines(self, task_ids: Iterable[str], status: DeadlineStatus, at: datetime) -> None:
        ids = list(task_ids)
        if not ids:
            return
        d = t.deadlines.c
        self.c.execute(
            update(t.deadlines)
            .where(d.task_id.in_(ids), d.status == DeadlineStatus.OPEN.value)
            .values(
                status=status.value,
                completed_at=at,
                late=case((d.due_at < at, True), else_=False),
                next_reminder_at=None,
                next_reminder_key=None,
                version=d.version + 1,
                updated_at=at,
            )
        )

    def _deadline_filter(self, query: DeadlineQuery) -> list[ColumnElement[bool]]:
        d = t.deadlines.c
        where: list[ColumnElement[bool]] = []
        if query.instance_id:
            where.append(d.instance_id == query.instance_id)
        if query.organisation:
            where.append(d.organisation == query.organisation)
        if query.status is not None:
            where.append(d.status == query.status.value)
        if query.task_id:
            where.append(d.task_id == query.task_id)
        if query.due_before:
            where.append(d.due_at < query.due_before)
        if query.due_after:
            where.append(d.due_at >= query.due_after)
        return where

    def list_deadlines(self, query: DeadlineQuery) -> list[DeadlineRecord]:
        d = t.deadlines.c
        stmt = (
            select(t.deadlines)
            .where(*self._deadline_filter(query))
            .order_by(d.due_at, d.id)
            .limit(query.limit)
            .offset(query.offset)
        )
        return [_deadline(r) for r in self.c.execute(stmt)]

    def count_deadlines(self, query: DeadlineQuery) -> int:
        stmt = select(func.count()).select_from(t.deadlines).where(*self._deadline_filter(query))
        return int(self.c.execute(stmt).scalar_one())

    def claim_due_deadlines(self, now: datetime, limit: int, owner: str) -> list[tuple[DeadlineRecord, TaskRecord]]:
        d = t.deadlines.c
        due = (d.status == DeadlineStatus.OPEN.value, d.next_reminder_at <= now)
        labels = [c.label(f"t_{c.name}") for c in t.tasks.c]
        joined = select(t.deadlines, *labels).join_from(t.deadlines, t.tasks, t.tasks.c.id == d.task_id)
        if self.c.dialect.name == "postgresql":
            # One statement: the due rows, locked for this transaction; rows other workers hold are skipped.
            stmt = (
                joined.where(*due)
                .order_by(d.next_reminder_at, d.id)
                .limit(limit)
                .with_for_update(of=t.deadlines, skip_locked=True)
            )
            return [(_deadline(r), _task(_Prefixed(r, "t_"))) for r in self.c.execute(stmt)]
        # SQLite: an UPDATE first takes the single-writer lock, so no other worker reads these rows as due.
        chosen = select(d.id).where(*due).order_by(d.next_reminder_at, d.id).limit(limit)
        ids = [
            r[0]
            for r in self.c.execute(
                update(t.deadlines).where(d.id.in_(chosen.scalar_subquery())).values(lease_owner=owner).returning(d.id)
            )
        ]
        if not ids:
            return []
        rows = self.c.execute(joined.where(d.id.in_(ids)).order_by(d.next_reminder_at, d.id))
        return [(_deadline(r), _task(_Prefixed(r, "t_"))) for r in rows]

    def insert_reminders(self, reminders: Sequence[ReminderRecord]) -> None:
        if not reminders:
            return
        try:
            self.c.execute(
                _INSERT_REMINDERS,
                [
                    {
                        "key": r.key,
                        "deadline_id": r.deadline_id,
                        "instance_id": r.instance_id,
                        "task_id": r.task_id,
                        "kind": r.kind,
                        "days": r.days,
                        "planned_at": r.planned_at,
                        "fired_at": r.fired_at,
                        "recipients": _pack(r.recipients),
                        "event_id": r.event_id,
                    }
                    for r in reminders
                ],
            )
        except IntegrityError as exc:
            raise ConcurrencyConflict("reminders", "a reminder was already fired") from exc

    def list_reminders(self, deadline_id: str | None = None, instance_id: str | None = None) -> list[ReminderRecord]:
        r = t.reminders.c
        stmt = select(t.reminders)
        if deadline_id:
            stmt = stmt.where(r.deadline_id == deadline_id)
        if instance_id:
            stmt = stmt.where(r.instance_id == instance_id)
        return [
            ReminderRecord(
                key=x.key,
                deadline_id=x.deadline_id,
                instance_id=x.instance_id,
                task_id=x.task_id,
                kind=x.kind,
                days=x.days,
                planned_at=x.planned_at,
                fired_at=x.fired_at,
                recipients=_unpack(x.recipients),
                event_id=x.event_id,
            )
            for x in self.c.execute(stmt.order_by(r.fired_at, r.planned_at, r.key))
        ]

    # -- extensions ----------------------------------------------------------------------------------
    def insert_extension(self, request: ExtensionRequest) -> None:
        self.c.execute(insert(t.extension_requests).values(**_extension_values(request)))

    def get_extension(self, request_id: str) -> ExtensionRequest | None:
        row = self.c.execute(select(t.extension_requests).where(t.extension_requests.c.id == request_id)).first()
        return None if row is None else _extension(row)

    def update_extension(self, request_id: str, expected_status: ExtensionStatus, **changes: Any) -> None:
        e = t.extension_requests.c
        values = {k: _enum(v) for k, v in changes.items()}
        result = self.c.execute(
            update(t.extension_requests).where(e.id == request_id, e.status == expected_status.value).values(**values)
        )
        if result.rowcount != 1:
            raise ConcurrencyConflict(f"extension request {request_id}")

    @staticmethod
    def _extension_filter(query: ExtensionQuery) -> list[ColumnElement[bool]]:
        e = t.extension_requests.c
        where: list[ColumnElement[bool]] = []
        if query.status is not None:
            where.append(e.status == query.status.value)
        if query.approver_role:
            where.append(e.approver_role == query.approver_role)
        if query.deadline_id:
            where.append(e.deadline_id == query.deadline_id)
        if query.instance_id:
            where.append(e.instance_id == query.instance_id)
        if query.viewer_login is not None:
            seen: list[ColumnElement[bool]] = [e.requested_by == query.viewer_login]
            if query.viewer_roles:
                seen.append(e.approver_role.in_(sorted(query.viewer_roles)))
            if query.viewer_organisation is not None:
                seen.append(e.organisation == query.viewer_organisation)
            where.append(or_(*seen))
        return where

    def list_extensions(self, query: ExtensionQuery) -> list[ExtensionRequest]:
        e = t.extension_requests.c
        stmt = (
            select(t.extension_requests)
            .where(*self._extension_filter(query))
            .order_by(e.requested_at, e.id)
            .limit(query.limit)
            .offset(query.offset)
        )
        return [_extension(r) for r in self.c.execute(stmt)]

    def count_extensions(self, query: ExtensionQuery) -> int:
        stmt = select(func.count()).select_from(t.extension_requests).where(*self._extension_filter(query))
        return int(self.c.execute(stmt).scalar_one())

    # -- outbox --------------------------------------------------------------------------------------
    def insert_deliveries(self, deliveries: Sequence[DeliveryRecord]) -> None:
        if deliveries:
            try:
                self.c.execute(_INSERT_DELIVERIES, [_delivery_values(d) for d in deliveries])
            except IntegrityError as exc:
                raise ConcurrencyConflict("deliveries", "a delivery was queued twice") from exc

    def insert_notifications(self, notifications: Sequence[NotificationRecord]) -> None:
        if notifications:
            self.c.execute(
                _INSERT_NOTIFICATIONS,
                [
                    {
                        "id": n.id,
                        "user_login": n.user,
                        "kind": n.kind,
                        "title": n.title,
                        "body": n.body,
                        "created_at": n.created_at,
                        "read_at": n.read_at,
                        "instance_id": n.instance_id,
                        "task_id": n.task_id,
                        "deadline_id": n.deadline_id,
                        "event_id": n.event_id,
                    }
                    for n in notifications
                ],
            )

    @staticmethod
    def _notification_filter(user: str, unread_only: bool) -> list[ColumnElement[bool]]:
        n = t.notifications.c
        where: list[ColumnElement[bool]] = [n.user_login == user]
        if unread_only:
            where.append(n.read_at.is_(None))
        return where

    def list_notifications(
        self, user: str, unread_only: bool = False, limit: int = 100, offset: int = 0
    ) -> list[NotificationRecord]:
        n = t.notifications.c
        stmt = select(t.notifications).where(*self._notification_filter(user, unread_only))
        rows = self.c.execute(stmt.order_by(n.created_at.desc(), n.id.desc()).limit(limit).offset(offset))
        return [
            NotificationRecord(
                id=r.id,
                user=r.user_login,
                kind=r.kind,
                title=r.title,
                body=r.body,
                created_at=r.created_at,
                instance_id=r.instance_id,
                task_id=r.task_id,
                deadline_id=r.deadline_id,
                event_id=r.event_id,
                read_at=r.read_at,
            )
            for r in rows
        ]

    def count_notifications(self, user: str, unread_only: bool = False) -> int:
        stmt = select(func.count()).select_from(t.notifications).where(*self._notification_filter(user, unread_only))
        return int(self.c.execute(stmt).scalar_one())

    def mark_notifications_read(self, user: str, ids: Sequence[str] | None, at: datetime) -> int:
        n = t.notifications.c
        stmt = update(t.notifications).where(n.user_login == user, n.read_at.is_(None))
        if ids is not None:
            stmt = stmt.where(n.id.in_(list(ids)))
        return int(self.c.execute(stmt.values(read_at=at)).rowcount)

    def claim_deliveries(
        self, channel: str, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[DeliveryRecord]:
        d = t.deliveries.c
        due = (
            select(d.id)
            .where(
                d.channel == channel,
                d.status.in_([DeliveryStatus.QUEUED.value, DeliveryStatus.RETRY.value, DeliveryStatus.SENDING.value]),
                or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now),
                or_(d.lease_until.is_(None), d.lease_until < now),
            )
            .order_by(d.next_attempt_at, d.created_at, d.id)
            .limit(limit)
        )
        ids = _lease(self.c, t.deliveries, d.id, due, owner, lease_until)
        if not ids:
            return []
        rows = self.c.execute(select(t.deliveries).where(d.id.in_(ids)).order_by(d.created_at, d.id))
        return [_delivery(r) for r in rows]

    def update_delivery(self, delivery_id: str, owner: str | None, **changes: Any) -> bool:
        d = t.deliveries.c
        values = {k: _enum(v) for k, v in changes.items()}
        if changes.get("status") not in (None, DeliveryStatus.SENDING):
            values.update(lease_owner=None, lease_until=None)
        stmt = update(t.deliveries).where(d.id == delivery_id)
        if owner is not None:
            stmt = stmt.where(d.lease_owner == owner)
        return bool(self.c.execute(stmt.values(**values)).rowcount == 1)

    def list_deliveries(
        self,
        event_id: str | None = None,
        channel: str | None = None,
        limit: int = 1000,
        *,
        recipient: str | None = None,
        status: DeliveryStatus | None = None,
    ) -> list[DeliveryRecord]:
        d = t.deliveries.c
        stmt = select(t.deliveries)
        if event_id:
            stmt = stmt.where(d.event_id == event_id)
        if channel:
            stmt = stmt.where(d.channel == channel)
        if recipient:
            stmt = stmt.where(d.recipient == recipient)
        if status is not None:
            stmt = stmt.where(d.status == status.value)
        return [_delivery(r) for r in self.c.execute(stmt.order_by(d.created_at, d.seq, d.id).limit(limit))]

    # -- start timers and calendar -------------------------------------------------------------------
    def replace_start_timers(self, process_key: str, timers: Sequence[StartTimerRecord]) -> None:
        s = t.start_timers.c
        self.c.execute(delete(t.start_timers).where(s.process_key == process_key))
        if timers:
            self.c.execute(
                insert(t.start_timers),
                [
                    {
                        "id": x.id,
                        "process_key": x.process_key,
                        "definition_id": x.definition_id,
                        "element_id": x.element_id,
                        "kind": x.kind,
                        "expression": x.expression,
                        "next_due_at": x.next_due_at,
                        "cycles_left": x.cycles_left,
                        "active": x.active,
                    }
                    for x in timers
                ],
            )

    def claim_due_start_timers(
        self, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[StartTimerRecord]:
        s = t.start_timers.c
        due = (
            select(s.id)
            .where(s.active.is_(True), s.next_due_at <= now, or_(s.lease_until.is_(None), s.lease_until < now))
            .order_by(s.next_due_at, s.id)
            .limit(limit)
        )
        ids = _lease(self.c, t.start_timers, s.id, due, owner, lease_until)
        if not ids:
            return []
        return [
            _start_timer(r)
            for r in self.c.execute(select(t.start_timers).where(s.id.in_(ids)).order_by(s.next_due_at, s.id))
        ]

    def update_start_timer(self, timer_id: str, **changes: Any) -> None:
        s = t.start_timers.c
        self.c.execute(
            update(t.start_timers).where(s.id == timer_id).values(lease_owner=None, lease_until=None, **changes)
        )

    def list_start_timers(self) -> list[StartTimerRecord]:
        return [_start_timer(r) for r in self.c.execute(select(t.start_timers).order_by(t.start_timers.c.id))]

    def save_calendar_override(self, year: int, source: bytes, at: datetime, by: str) -> None:
        c = t.calendar_overrides.c
        self.c.execute(delete(t.calendar_overrides).where(c.year == year))
        self.c.execute(insert(t.calendar_overrides).values(year=year, source=source, imported_at=at, imported_by=by))

    def calendar_overrides(self) -> list[tuple[int, bytes]]:
        c = t.calendar_overrides.c
        return [(r.year, bytes(r.source)) for r in self.c.execute(select(c.year, c.source).order_by(c.year))]

    # -- comments and attachments ------------------------------------------------------------------
    def insert_comment(self, comment: CommentRecord) -> None:
        self.c.execute(insert(t.comments).values(**asdict(comment)))

    def list_comments(self, task_id: str | None = None, instance_id: str | None = None) -> list[CommentRecord]:
        c = t.comments.c
        stmt = select(t.comments).order_by(c.at, c.id)
        if task_id is not None:
            stmt = stmt.where(c.task_id == task_id)
        if instance_id is not None:
            stmt = stmt.where(c.instance_id == instance_id)
        rows = self.c.execute(stmt)
        return [CommentRecord(**r._asdict()) for r in rows]

    def insert_attachment(self, attachment: AttachmentRecord, content: bytes) -> None:
        self.c.execute(insert(t.attachments).values(content=content, **asdict(attachment)))

    def list_attachments(self, task_id: str | None = None, instance_id: str | None = None) -> list[AttachmentRecord]:
        a = t.attachments.c
        stmt = select(*[col for col in a if col.name != "content"]).order_by(a.at, a.id)
        if task_id is not None:
            stmt = stmt.where(a.task_id == task_id)
        if instance_id is not None:
            stmt = stmt.where(a.instance_id == instance_id)
        rows = self.c.execute(stmt)
        return [AttachmentRecord(**r._asdict()) for r in rows]

    def get_attachment(self, attachment_id: str) -> tuple[AttachmentRecord, bytes] | None:
        row = self.c.execute(select(t.attachments).where(t.attachments.c.id == attachment_id)).first()
        if row is None:
            return None
        values = row._asdict()
        content = bytes(values.pop("content"))
        return AttachmentRecord(**values), content

    # -- credentials -------------------------------------------------------------------------------
    @staticmethod
    def _token(row: Any) -> ApiToken:
        values = row._asdict()
        values["roles"] = _unpack(values["roles"])
        return ApiToken(**values)

    def insert_token(self, token: ApiToken) -> None:
        values = asdict(token)
        values["roles"] = _pack(token.roles)
        self.c.execute(insert(t.api_tokens).values(**values))

    def find_token(self, token_hash: str) -> ApiToken | None:
        row = self.c.execute(select(t.api_tokens).where(t.api_tokens.c.token_hash == token_hash)).first()
        return None if row is None else self._token(row)

    def list_tokens(self) -> list[ApiToken]:
        k = t.api_tokens.c
        return [self._token(r) for r in self.c.execute(select(t.api_tokens).order_by(k.created_at, k.id))]

    def update_token(self, token_id: str, **changes: Any) -> None:
        if "roles" in changes:
            changes["roles"] = _pack(changes["roles"])
        self.c.execute(update(t.api_tokens).where(t.api_tokens.c.id == token_id).values(**changes))

    def record_login(self, login: str, ip: str, at: datetime, success: bool) -> None:
        self.c.execute(insert(t.login_attempts).values(login=login[:64], ip=ip[:64], at=at, success=success))

    def login_failures(self, login: str, ip: str, since: datetime) -> int:
        a = t.login_attempts.c
        counts = []
        for condition in (a.login == login[:64], a.ip == ip[:64]):
            stmt = (
                select(func.count()).select_from(t.login_attempts).where(a.at >= since, a.success.is_(False), condition)
            )
            counts.append(int(self.c.execute(stmt).scalar_one()))
        return max(counts)

    def set_calendar_token(self, login: str, token_hash: str | None) -> None:
        self.c.execute(update(t.users).where(t.users.c.login == login).values(calendar_token=token_hash))

    def user_by_calendar_token(self, token_hash: str) -> User | None:
        row = self.c.execute(select(t.users.c.login).where(t.users.c.calendar_token == token_hash)).first()
        return None if row is None else self.get_user(row.login)

    # -- the outbox and webhooks ---------------------------------------------------------------------
    @staticmethod
    def _outbox(row: Any) -> OutboxEvent:
        return OutboxEvent(
            seq=row.id,
            event_id=row.event_id,
            type=row.event_type,
            at=row.at,
            instance_id=row.instance_id,
            entry=_audit(row),
            dispatched_at=row.dispatched_at,
        )

    def claim_outbox(self, limit: int, owner: str, now: datetime, lease_until: datetime) -> list[OutboxEvent]:
        a = t.audit_log.c
        due = (
            select(a.id)
            .where(
                a.event_id.is_not(None),
                a.dispatched_at.is_(None),
                or_(a.lease_until.is_(None), a.lease_until < now),
            )
            .order_by(a.id)
            .limit(limit)
        )
        seqs = _lease(self.c, t.audit_log, a.id, due, owner, lease_until)
        if not seqs:
            return []
        return [self._outbox(r) for r in self.c.execute(select(t.audit_log).where(a.id.in_(seqs)).order_by(a.id))]

    def mark_dispatched(self, seqs: Sequence[int], owner: str, at: datetime) -> None:
        if seqs:
            a = t.audit_log.c
            self.c.execute(
                update(t.audit_log)
                .where(a.id.in_(list(seqs)), a.lease_owner == owner)
                .values(dispatched_at=at, lease_owner=None, lease_until=None)
            )

    def list_outbox(self, after_seq: int = 0, limit: int = 100) -> list[OutboxEvent]:
        a = t.audit_log.c
        stmt = select(t.audit_log).where(a.event_id.is_not(None), a.id > after_seq).order_by(a.id).limit(limit)
        return [self._outbox(r) for r in self.c.execute(stmt)]

    @staticmethod
    def _subscription(row: Any) -> Subscription:
        return Subscription(
            id=row.id,
            url=row.url,
            secret=row.secret,
            event_types=_unpack(row.event_types),
            organisation=row.organisation,
            active=bool(row.active),
            description=row.description,
            created_by=row.created_by,
            created_at=row.created_at,
            updated_at=row.updated_at,
            previous_secret=row.previous_secret,
            previous_until=row.previous_until,
            consecutive_failures=row.consecutive_failures or 0,
            disabled_at=row.disabled_at,
            disabled_reason=row.disabled_reason,
        )

    def insert_subscription(self, subscription: Subscription) -> None:
        values = asdict(subscription)
        values["event_types"] = _pack(subscription.event_types)
        self.c.execute(insert(t.webhook_subscriptions).values(**values))

    def update_subscription(self, subscription_id: str, **changes: Any) -> None:
        if "event_types" in changes:
            changes["event_types"] = _pack(changes["event_types"])
        w = t.webhook_subscriptions.c
        self.c.execute(update(t.webhook_subscriptions).where(w.id == subscription_id).values(**changes))

    def get_subscription(self, subscription_id: str) -> Subscription | None:
        w = t.webhook_subscriptions.c
        row = self.c.execute(select(t.webhook_subscriptions).where(w.id == subscription_id)).first()
        return None if row is None else self._subscription(row)

    def list_subscriptions(self) -> list[Subscription]:
        w = t.webhook_subscriptions.c
        rows = self.c.execute(select(t.webhook_subscriptions).order_by(w.created_at, w.id))
        return [self._subscription(r) for r in rows]

    def claim_webhook_deliveries(
        self, now: datetime, limit: int, owner: str, lease_until: datetime
    ) -> list[DeliveryRecord]:
        """Due webhook deliveries of active subscriptions, only the earliest pending one per
        (subscription, instance): a later event never overtakes an earlier one."""
        d = t.deliveries.c
        w = t.webhook_subscriptions.c
        pending = [DeliveryStatus.QUEUED.value, DeliveryStatus.RETRY.value, DeliveryStatus.SENDING.value]
        earlier = t.deliveries.alias("earlier")
        e = earlier.c
        blocked = exists().where(
            e.channel == "webhook",
            e.recipient == d.recipient,
            e.instance_id == d.instance_id,
            e.seq < d.seq,
            e.status.in_(pending),
        )
        due = (
            select(d.id)
            .where(
                d.channel == "webhook",
                d.status.in_(pending),
                or_(d.next_attempt_at.is_(None), d.next_attempt_at <= now),
                or_(d.lease_until.is_(None), d.lease_until < now),
                d.recipient.in_(select(w.id).where(w.active.is_(True)).scalar_subquery()),
                or_(d.instance_id.is_(None), ~blocked),
            )
            .order_by(d.seq, d.id)
            .limit(limit)
        )
        ids = _lease(self.c, t.deliveries, d.id, due, owner, lease_until, status=DeliveryStatus.SENDING.value)
        if not ids:
            return []
        rows = self.c.execute(select(t.deliveries).where(d.id.in_(ids)).order_by(d.seq, d.id))
        return [_delivery(r) for r in rows]

    def update_deliveries(self, updates: Sequence[tuple[str, Mapping[str, Any]]], owner: str | None) -> None:
        """One executemany for a round of outcomes (same columns in each); a new status other
        than ``sending`` releases the lease, as in :meth:`update_delivery`."""
        if not updates:
            return
        keys = tuple(sorted(updates[0][1]))
        release = "status" in keys
        params = []
        for delivery_id, changes in updates:
            if tuple(sorted(changes)) != keys:
                raise ValueError("update_deliveries needs the same columns in every update")
            if release and changes["status"] in (None, DeliveryStatus.SENDING):
                raise ValueError("update_deliveries records outcomes: use update_delivery to keep a lease")
            row = {k: _enum(v) for k, v in changes.items()}
            row["_id"] = delivery_id
            if owner is not None:
                row["_owner"] = owner
            params.append(row)
        self.c.execute(_delivery_update(keys, release, owner is not None), params)

    def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        row = self.c.execute(select(t.deliveries).where(t.deliveries.c.id == delivery_id)).first()
        return None if row is None else _delivery(row)

    def insert_attempt(self, attempt: DeliveryAttempt) -> None:
        self.insert_attempts([attempt])

    def insert_attempts(self, attempts: Sequence[DeliveryAttempt]) -> None:
        if attempts:
            self.c.execute(
                _INSERT_ATTEMPTS,
                [
                    {
                        "delivery_id": a.delivery_id,
                        "channel": a.channel,
                        "recipient": a.recipient,
                        "at": a.at,
                        "outcome": a.outcome,
                        "status": a.status,
                        "latency_ms": a.latency_ms,
                        "excerpt": a.excerpt,
                        "error": a.error,
                    }
                    for a in attempts
                ],
            )

    def list_attempts(
        self, delivery_id: str | None = None, recipient: str | None = None, limit: int = 200
    ) -> list[DeliveryAttempt]:
        a = t.delivery_attempts.c
        stmt = select(t.delivery_attempts).order_by(a.at.desc(), a.id.desc()).limit(limit)
        if delivery_id is not None:
            stmt = stmt.where(a.delivery_id == delivery_id)
        if recipient is not None:
            stmt = stmt.where(a.recipient == recipient)
        return [DeliveryAttempt(**r._asdict()) for r in self.c.execute(stmt)]

    # -- inbound messages ----------------------------------------------------------------------------
    def save_source(self, source: InboundSource) -> None:
        values = asdict(source)
        s = t.inbound_sources.c
        if self.c.execute(update(t.inbound_sources).where(s.name == source.name).values(**values)).rowcount == 0:
            self.c.execute(insert(t.inbound_sources).values(**values))

    def get_source(self, name: str) -> InboundSource | None:
        row = self.c.execute(select(t.inbound_sources).where(t.inbound_sources.c.name == name)).first()
        return None if row is None else InboundSource(**{**row._asdict(), "active": bool(row.active)})

    def list_sources(self) -> list[InboundSource]:
        rows = self.c.execute(select(t.inbound_sources).order_by(t.inbound_sources.c.name))
        return [InboundSource(**{**r._asdict(), "active": bool(r.active)}) for r in rows]

    @staticmethod
    def _message(row: Any) -> InboundMessage:
        values = row._asdict()
        values["correlation"] = json.loads(values["correlation"] or "{}")
        values["variables"] = json.loads(values["variables"] or "{}")
        values["status"] = MessageStatus(values["status"])
        return InboundMessage(**values)

    def insert_message(self, message: InboundMessage) -> None:
        values = asdict(message)
        values["correlation"] = canonical_json(message.correlation)
        values["variables"] = canonical_json(message.variables)
        values["status"] = message.status.value
        try:
            self.c.execute(insert(t.inbound_messages).values(**values))
        except IntegrityError as exc:
            raise ConcurrencyConflict("message", f"a message with key {message.key!r} was received already") from exc

    def get_message_by_key(self, key: str) -> InboundMessage | None:
        row = self.c.execute(select(t.inbound_messages).where(t.inbound_messages.c.key == key)).first()
        return None if row is None else self._message(row)

    def get_message(self, message_id: str) -> InboundMessage | None:
        row = self.c.execute(select(t.inbound_messages).where(t.inbound_messages.c.id == message_id)).first()
        return None if row is None else self._message(row)

    def update_message(self, message_id: str, **changes: Any) -> None:
        values = {k: _enum(v) for k, v in changes.items()}
        m = t.inbound_messages.c
        self.c.execute(update(t.inbound_messages).where(m.id == message_id).values(**values))

    def buffered_messages(self, limit: int) -> list[InboundMessage]:
        m = t.inbound_messages.c
        stmt = (
            select(t.inbound_messages)
            .where(m.status == MessageStatus.BUFFERED.value)
            .order_by(m.received_at, m.id)
            .limit(limit)
        )
        return [self._message(r) for r in self.c.execute(stmt)]

    def list_messages(self, status: MessageStatus | None = None, limit: int = 200) -> list[InboundMessage]:
        m = t.inbound_messages.c
        stmt = select(t.inbound_messages).order_by(m.received_at.desc(), m.id).limit(limit)
        if status is not None:
            stmt = stmt.where(m.status == status.value)
        return [self._message(r) for r in self.c.execute(stmt)]

    def instances_waiting_for(self, message: str, limit: int) -> list[InstanceRecord]:
        i = t.instances.c
        stmt = (
            select(t.instances)
            .where(
                i.status.in_([InstanceStatus.RUNNING.value, InstanceStatus.WAITING.value]),
                _contains(i.waiting_messages, message),
            )
            .order_by(i.started_at, i.id)
            .limit(limit)
        )
        return [_instance(r) for r in self.c.execute(stmt)]


class SqlStore:
    """The engine's store on a SQLAlchemy engine: one transaction, one commit per command."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self) -> Iterator[SqlTx]:
        try:
            with self.engine.begin() as conn:
                yield SqlTx(conn)
        except OperationalError as exc:
            if "locked" in str(exc).lower() or "deadlock" in str(exc).lower():
                raise ConcurrencyConflict("database", "another command holds the lock; retry") from exc
            raise
        except IntegrityError as exc:
            raise ConcurrencyConflict("database", f"a concurrent change conflicted: {exc.orig}") from exc
