"""The database schema: SQLAlchemy 2 typed tables. Alembic migrations are derived from these.

Times are stored in UTC (``timestamptz`` on PostgreSQL, ISO text on SQLite) and always come
back timezone-aware. Candidate roles and users are stored as ``,a,b,`` so that a role test
is a ``LIKE '%,role,%'`` on one column.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any, ClassVar, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        if value.tzinfo is not UTC:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        parsed: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), date: Date(), bytes: LargeBinary()}


class OrganisationRow(Base):
    __tablename__ = "organisations"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(20))
    short_name: Mapped[str | None] = mapped_column(String(120))
    municipality_kind: Mapped[str | None] = mapped_column(String(60))


class UserRow(Base):
    __tablename__ = "users"
    login: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    organisation: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    roles: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    active: Mapped[bool] = mapped_column(Boolean, server_default=text("true"))
    email: Mapped[str | None] = mapped_column(String(300))
    calendar_token: Mapped[str | None] = mapped_column(String(64), unique=True)


class MembershipRow(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("organisation", "since_year"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation: Mapped[str] = mapped_column(ForeignKey("organisations.code"))
    since_year: Mapped[int] = mapped_column(Integer)
    until_year: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))
    contract_number: Mapped[str | None] = mapped_column(String(100))
    contract_date: Mapped[date | None]
    instance_id: Mapped[str | None] = mapped_column(String(36))
    granted_at: Mapped[datetime | None]


class DeploymentRow(Base):
    __tablename__ = "deployments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    filename: Mapped[str] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[bytes]
    deployed_at: Mapped[datetime]
    deployed_by: Mapped[str] = mapped_column(String(64))


class DeploymentResourceRow(Base):
    __tablename__ = "deployment_resources"
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), primary_key=True)
    content: Mapped[bytes]


class DefinitionRow(Base):
    __tablename__ = "definitions"
    __table_args__ = (UniqueConstraint("key", "version"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    key: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(String(500))
    content_hash: Mapped[str] = mapped_column(String(64))
    deployed_at: Mapped[datetime]
    calls: Mapped[str] = mapped_column(Text, server_default=text("'{}'"))


class InstanceRow(Base):
    __tablename__ = "instances"
    __table_args__ = (
        Index("ix_instances_status_process_key", "status", "process_key"),
        Index("ix_instances_next_due_at", "next_due_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    definition_id: Mapped[str] = mapped_column(ForeignKey("definitions.id"), index=True)
    process_key: Mapped[str] = mapped_column(String(255))
    business_key: Mapped[str | None] = mapped_column(String(200), index=True)
    status: Mapped[str] = mapped_column(String(20))
    organisation: Mapped[str | None] = mapped_column(String(64), index=True)
    started_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    next_due_at: Mapped[datetime | None]
    incident: Mapped[str | None] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    # The BPMN messages it waits for now, packed ",a,b," (message correlation looks here first).
    waiting_messages: Mapped[str] = mapped_column(String(1000), server_default=text("''"))


class TaskRow(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_status_organisation", "status", "organisation"),
        Index("ix_tasks_status_due_at", "status", "due_at"),
        Index("ix_tasks_assignee_status", "assignee", "status"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    definition_id: Mapped[str] = mapped_column(String(36))
    process_key: Mapped[str] = mapped_column(String(255))
    element_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(500))
    lane: Mapped[str | None] = mapped_column(String(255))
    candidate_roles: Mapped[str] = mapped_column(String(500))
    candidate_users: Mapped[str] = mapped_column(String(1000))
    organisation: Mapped[str | None] = mapped_column(String(64))
    assignee: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    follow_up_at: Mapped[datetime | None]
    priority: Mapped[int] = mapped_column(Integer)
    form_key: Mapped[str | None] = mapped_column(String(500))
    business_key: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    completed_by: Mapped[str | None] = mapped_column(String(64))


_task = TaskRow.__table__.c
# The inbox: open tasks in their default order (due first, the undated last), with the columns
# the visibility test and the usual filters read, so that a page is a walk of this index that
# stops after ``limit`` rows and the total is counted from the index alone. Partial: finished
# tasks leave it.
Index(
    "ix_tasks_open_inbox",
    _task.status,
    _task.due_at.is_(None),
    _task.due_at,
    _task.created_at,
    _task.id,
    _task.assignee,
    _task.candidate_roles,
    _task.candidate_users,
    _task.organisation,
    _task.process_key,
    sqlite_where=_task.status == "open",
    postgresql_where=_task.status == "open",
)
# The few tasks that name candidate users, so that "names me" is an index lookup (with the
# organisation and assignee indexes, a МОУО's inbox is then a union of lookups, not a scan).
_named = _task.candidate_users > literal_column("''")
Index(
    "ix_tasks_status_candidate_users", _task.status, _task.candidate_users, sqlite_where=_named, postgresql_where=_named
)


class AuditRow(Base):
    """Append-only: database triggers refuse DELETE and any UPDATE of what was recorded.

    The audit trail is also the transactional outbox: a line whose action is a public event
    (engine.events) carries its ``event_id`` and ``event_type`` from the moment it is written, in
    the transaction of the change, so there is no event without its change and no change without
    its event. The dispatch columns (``dispatched_at``, the lease) are the only ones that change
    afterwards; the triggers refuse an UPDATE of any other column.
    """

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64), index=True)
    organisation: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64), index=True)
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    task_id: Mapped[str | None] = mapped_column(String(36))
    element_id: Mapped[str | None] = mapped_column(String(255))
    definition_id: Mapped[str | None] = mapped_column(String(36))
    details: Mapped[str] = mapped_column(Text)
    data_digest: Mapped[str | None] = mapped_column(String(80))
    event_id: Mapped[str | None] = mapped_column(String(40))
    event_type: Mapped[str | None] = mapped_column(String(64))
    dispatched_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


# The outbox's queue: the public events not yet dispatched, in order (partial: dispatched ones leave it).
_audit = AuditRow.__table__.c
_undispatched = and_(_audit.event_id.is_not(None), _audit.dispatched_at.is_(None))
Index("ix_audit_log_undispatched", _audit.id, sqlite_where=_undispatched, postgresql_where=_undispatched)
Index("ix_audit_log_event_id", _audit.event_id, unique=True)


class DeadlineRow(Base):
    __tablename__ = "deadlines"
    __table_args__ = (
        Index("ix_deadlines_status_next_reminder_at", "status", "next_reminder_at"),
        Index("ix_deadlines_status_due_at", "status", "due_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instances.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36), unique=True)
    element_id: Mapped[str] = mapped_column(String(255))
    process_key: Mapped[str] = mapped_column(String(255))
    organisation: Mapped[str | None] = mapped_column(String(64), index=True)
    rule: Mapped[str] = mapped_column(String(500))
    anchor: Mapped[str | None] = mapped_column(String(255))
    anchor_value: Mapped[date | None]
    clause: Mapped[str | None] = mapped_column(String(100))
    raw_date: Mapped[date]
    final_date: Mapped[date]
    due_at: Mapped[datetime]
    explanation: Mapped[str] = mapped_column(Text)
    original_date: Mapped[date]
    original_explanation: Mapped[str] = mapped_column(Text)
    policy: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20))
    plan_version: Mapped[int] = mapped_column(Integer)
    next_reminder_at: Mapped[datetime | None]
    next_reminder_key: Mapped[str | None] = mapped_column(String(60))
    last_reminder_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    extensions: Mapped[int] = mapped_column(Integer)
    completed_at: Mapped[datetime | None]
    late: Mapped[bool] = mapped_column(Boolean)
    variable: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(64))


class ReminderRow(Base):
    __tablename__ = "reminders"
    key: Mapped[str] = mapped_column(String(120), primary_key=True)
    deadline_id: Mapped[str] = mapped_column(String(36), index=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(20))
    days: Mapped[int] = mapped_column(Integer)
    planned_at: Mapped[datetime]
    fired_at: Mapped[datetime]
    recipients: Mapped[str] = mapped_column(String(2000))
    event_id: Mapped[str] = mapped_column(String(200))


class ExtensionRow(Base):
    __tablename__ = "extension_requests"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    deadline_id: Mapped[str] = mapped_column(ForeignKey("deadlines.id"), index=True)
    task_id: Mapped[str] = mapped_column(String(36))
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime]
    reason: Mapped[str] = mapped_column(Text)
    proposed_date: Mapped[date]
    approver_role: Mapped[str] = mapped_column(String(20))
    organisation: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), index=True)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None]
    comment: Mapped[str | None] = mapped_column(Text)
    new_date: Mapped[date | None]


class DeliveryRow(Base):
    """One delivery of an event to one recipient over one channel, and its current outcome."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_channel_status_next_attempt_at", "channel", "status", "next_attempt_at"),
        Index("ix_deliveries_channel_recipient_instance_id_seq", "channel", "recipient", "instance_id", "seq"),
    )
    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(200), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    reply: Mapped[str | None] = mapped_column(Text)
    instance_id: Mapped[str | None] = mapped_column(String(36))
    payload: Mapped[str] = mapped_column(Text)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]
    # The outbox sequence of the event (webhooks): deliveries to one receiver about one
    # instance go out in this order.
    seq: Mapped[int | None] = mapped_column(BigInteger)


class NotificationRow(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_login_read_at", "user_login", "read_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_login: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(500))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    read_at: Mapped[datetime | None]
    instance_id: Mapped[str | None] = mapped_column(String(36))
    task_id: Mapped[str | None] = mapped_column(String(36))
    deadline_id: Mapped[str | None] = mapped_column(String(36))
    event_id: Mapped[str | None] = mapped_column(String(200))


class StartTimerRow(Base):
    __tablename__ = "start_timers"
    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    process_key: Mapped[str] = mapped_column(String(255), index=True)
    definition_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(20))
    expression: Mapped[str] = mapped_column(String(500))
    next_due_at: Mapped[datetime | None] = mapped_column(index=True)
    cycles_left: Mapped[int | None] = mapped_column(Integer)
    active: Mapped[bool] = mapped_column(Boolean)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[datetime | None]


class CalendarOverrideRow(Base):
    """An official production calendar (xmlcalendar format) that replaces the built-in one for a year."""

    __tablename__ = "calendar_overrides"
    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    source: Mapped[bytes]
    imported_at: Mapped[datetime]
    imported_by: Mapped[str] = mapped_column(String(64))


class CommentRow(Base):
    __tablename__ = "comments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    author: Mapped[str] = mapped_column(String(64))
    organisation: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
    text: Mapped[str] = mapped_column(Text)


class AttachmentRow(Base):
    """A file attached to a task. The content lives in the row; its SHA-256 is checked on every read."""

    __tablename__ = "attachments"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("tasks.id"), index=True)
    instance_id: Mapped[str] = mapped_column(String(36), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    uploaded_by: Mapped[str] = mapped_column(String(64))
    organisation: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]
    content: Mapped[bytes]


class ApiTokenRow(Base):
    """A machine client's credential; only the SHA-256 of the secret is kept."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(ForeignKey("organisations.code"))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class LoginAttemptRow(Base):
    """Every login attempt, for rate limiting and for the security log."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_login_at", "login", "at"),
        Index("ix_login_attempts_ip_at", "ip", "at"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    login: Mapped[str] = mapped_column(String(64))
    ip: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    success: Mapped[bool] = mapped_column(Boolean)


class SubscriptionRow(Base):
    __tablename__ = "webhook_subscriptions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    secret: Mapped[str] = mapped_column(String(200))
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_until: Mapped[datetime | None]
    event_types: Mapped[str] = mapped_column(String(2000))
    organisation: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str] = mapped_column(String(500))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    consecutive_failures: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(500))


class DeliveryAttemptRow(Base):
    """The delivery log: one row per try of one delivery."""

    __tablename__ = "delivery_attempts"
    __table_args__ = (Index("ix_delivery_attempts_recipient_at", "recipient", "at"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(300), index=True)
    channel: Mapped[str] = mapped_column(String(20))
    recipient: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))
    status: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[float | None]
    excerpt: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class InboundSourceRow(Base):
    __tablename__ = "inbound_sources"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    secret: Mapped[str] = mapped_column(String(200))
    previous_secret: Mapped[str | None] = mapped_column(String(200))
    previous_until: Mapped[datetime | None]
    active: Mapped[bool] = mapped_column(Boolean)
    description: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime]


class InboundMessageRow(Base):
    """A message received from outside; ``key`` makes delivering it twice harmless."""

    __tablename__ = "inbound_messages"
    __table_args__ = (Index("ix_inbound_messages_status_expires_at", "status", "expires_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    source: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), index=True)
    correlation: Mapped[str] = mapped_column(Text)
    variables: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20))
    instance_id: Mapped[str | None] = mapped_column(String(36))
    correlated_at: Mapped[datetime | None]


metadata = Base.metadata
organisations = cast(Table, OrganisationRow.__table__)
users = cast(Table, UserRow.__table__)
memberships = cast(Table, MembershipRow.__table__)
deployments = cast(Table, DeploymentRow.__table__)
deployment_resources = cast(Table, DeploymentResourceRow.__table__)
definitions = cast(Table, DefinitionRow.__table__)
instances = cast(Table, InstanceRow.__table__)
tasks = cast(Table, TaskRow.__table__)
audit_log = cast(Table, AuditRow.__table__)
deadlines = cast(Table, DeadlineRow.__table__)
reminders = cast(Table, ReminderRow.__table__)
extension_requests = cast(Table, ExtensionRow.__table__)
deliveries = cast(Table, DeliveryRow.__table__)
notifications = cast(Table, NotificationRow.__table__)
start_timers = cast(Table, StartTimerRow.__table__)
calendar_overrides = cast(Table, CalendarOverrideRow.__table__)
comments = cast(Table, CommentRow.__table__)
attachments = cast(Table, AttachmentRow.__table__)
api_tokens = cast(Table, ApiTokenRow.__table__)
login_attempts = cast(Table, LoginAttemptRow.__table__)
webhook_subscriptions = cast(Table, SubscriptionRow.__table__)
delivery_attempts = cast(Table, DeliveryAttemptRow.__table__)
inbound_sources = cast(Table, InboundSourceRow.__table__)
inbound_messages = cast(Table, InboundMessageRow.__table__)
