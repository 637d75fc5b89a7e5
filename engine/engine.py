"""The engine: the small public API every entry point (CLI, web, worker) uses.

Each command is one transaction on the store: load, check access, run SpiffWorkflow, save,
write the audit trail, commit. A completion costs one read of the task with its instance,
two guarded updates and two batch inserts (new tasks, audit lines).

Foreground failures propagate: a script or condition that fails while a person completes a
task raises :class:`~engine.errors.StepFailed` and nothing is written.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from . import (
    access,
    credentials,
    documents,
    extensions,
    forms,
    ical,
    inbound,
    messages,
    notifications,
    notify,
    reports,
    start_timers,
    subscriptions,
    sweeps,
    tracking,
)
from . import membership as membership_module
from .calendar import ProductionCalendar, parse_xmlcalendar
from .clock import Clock, ensure_utc
from .definitions import CompiledDefinition, content_hash, load_compiled, prepare_deployment
from .directory import ROLE_HOME_ORG, SYSTEM_ACTOR, Actor, Member, Membership, Organisation, Role, User
from .errors import (
    AggloError,
    BadInput,
    ConcurrencyConflict,
    DefinitionInvalid,
    InvalidState,
    NotFound,
    NotPermitted,
    Problem,
    StaleVersion,
    StepFailed,
)
from .model import ElementInfo
from .ports import AuditQuery, DeadlineQuery, ExtensionQuery, InstanceQuery, Store, Tx
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
    InboundMessage,
    InboundSource,
    InstanceRecord,
    InstanceStatus,
    MessageStatus,
    NotificationRecord,
    ReminderRecord,
    StartTimerRecord,
    Subscription,
    TaskQuery,
    TaskRecord,
    TaskStatus,
    digest,
)
from .sandbox import Sandbox
from .services import ServiceContext, ServiceRegistry
from .settings import Settings
from .spiff.cache import RuntimeCache
from .spiff.runtime import ReadyHumanTask, Runtime
from .spiff.scripting import AggloScriptEngine
from .spiff.timers import ISO_DURATION, add_duration, parse_instant

DEFAULT_PRIORITY = 50
SECRET_OVERLAP = timedelta(hours=24)  # how long a rotated-out secret keeps signing / verifying


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class DeployResult:
    deployment: DeploymentRecord
    definitions: list[DefinitionRecord]
    created: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment.id,
            "filename": self.deployment.filename,
            "content_hash": self.deployment.content_hash,
            "created": self.created,
            "definitions": [{"id": d.id, "key": d.key, "version": d.version, "name": d.name} for d in self.definitions],
        }


@dataclass(frozen=True)
class TaskView:
    """A human task as people and programs see it: the row, its form and its documentation."""

    task: TaskRecord
    form: dict[str, Any] | None
    documentation: str | None
    clause: str | None
    process_name: str | None
    deadline: DeadlineRecord | None = None
    overdue: bool = False

    def to_dict(self) -> dict[str, Any]:
        t = self.task
        d = self.deadline
        return {
            "deadline": None
            if d is None
            else {
                "id": d.id,
                "date": d.final_date.isoformat(),
                "original_date": d.original_date.isoformat(),
                "explanation": d.explanation,
                "clause": d.clause,
                "rule": d.rule,
                "extensions": d.extensions,
                "due_at": _iso(d.due_at),
                "last_reminder_at": _iso(d.last_reminder_at),
                "escalated_at": _iso(d.escalated_at),
            },
            "overdue": self.overdue,
            "id": t.id,
            "name": t.name,
            "element_id": t.element_id,
            "instance_id": t.instance_id,
            "process_key": t.process_key,
            "process_name": self.process_name,
            "business_key": t.business_key,
            "lane": t.lane,
            "candidate_roles": list(t.candidate_roles),
            "candidate_users": list(t.candidate_users),
            "organisation": t.organisation,
            "assignee": t.assignee,
            "status": t.status.value,
            "created_at": _iso(t.created_at),
            "due_at": _iso(t.due_at),
            "follow_up_at": _iso(t.follow_up_at),
            "priority": t.priority,
            "form_key": t.form_key,
            "form": self.form,
            "documentation": self.documentation,
            "clause": self.clause,
            "completed_at": _iso(t.completed_at),
            "completed_by": t.completed_by,
        }


@dataclass(frozen=True)
class InstanceView:
    instance: InstanceRecord
    definition: DefinitionRecord
    variables: dict[str, Any]
    tasks: list[TaskView] = field(default_factory=list)
    history: list[AuditEntry] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        i = self.instance
        return {
            "id": i.id,
            "instance_id": i.id,
            "process_key": i.process_key,
            "process_name": self.definition.name,
            "definition_id": i.definition_id,
            "definition_version": self.definition.version,
            "business_key": i.business_key,
            "status": i.status.value,
            "organisation": i.organisation,
            "started_by": i.started_by,
            "started_at": _iso(i.started_at),
            "ended_at": _iso(i.ended_at),
            "next_due_at": _iso(i.next_due_at),
            "incident": i.incident,
            "version": i.version,
            "variables": _jsonable(self.variables),
            "tasks": [t.to_dict() for t in self.tasks],
            "history": [audit_to_dict(e) for e in self.history],
        }


def audit_to_dict(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": _iso(entry.at),
        "actor": entry.actor,
        "organisation": entry.organisation,
        "action": entry.action,
        "instance_id": entry.instance_id,
        "task_id": entry.task_id,
        "element_id": entry.element_id,
        "definition_id": entry.definition_id,
        "details": _jsonable(entry.details),
        "data_digest": entry.data_digest,
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _check_variables(variables: Mapping[str, Any] | None) -> dict[str, Any]:
    if variables is None:
        return {}
    if not isinstance(variables, Mapping):
        raise BadInput("variables must be a JSON object")
    for key in variables:
        if not isinstance(key, str) or not key.isidentifier() or key.startswith("_"):
            raise BadInput(
                f"variable name {key!r} is not allowed: use letters, digits and underscores, "
                "not starting with an underscore",
                field=str(key),
            )
    return dict(variables)


def _check_business_key(business_key: str | None) -> None:
    if business_key is not None and (
        not isinstance(business_key, str) or not business_key.strip() or len(business_key) > 200
    ):
        raise BadInput("business key must be a non-empty string of at most 200 characters", field="business_key")


def _check_version(instance: InstanceRecord, expected: int | None) -> None:
    if expected is not None and instance.version != expected:
        raise StaleVersion(f"instance {instance.id}", expected, instance.version)


def _split(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, list | tuple | set | frozenset):
        return tuple(str(v).strip() for v in value if str(v).strip())
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


class Engine:
    """Deploy processes, start and cancel instances, list, claim and complete human tasks."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        sandbox: Sandbox | None = None,
        services: ServiceRegistry | None = None,
        ids: Callable[[], str] = new_id,
        settings: Settings | None = None,
        calendar: ProductionCalendar | None = None,
        url_guard: Callable[[str], object] | None = None,
    ) -> None:
        self.store = store
        # Checks a webhook URL before it is saved (raises ValueError); the application passes
        # the SSRF check of webhooks.ssrf, the engine itself does no network I/O.
        self.url_guard = url_guard
        self.clock = clock
        self.settings = settings or Settings()
        self._calendar = calendar
        self.sandbox = sandbox or Sandbox()
        self.services = services or ServiceRegistry()
        membership_module.register(self.services)
        self._new_id = ids
        self._compiled: dict[str, CompiledDefinition] = {}
        self._compiled_lock = threading.Lock()
        self.runtimes = RuntimeCache(self.settings.runtime_cache_size)

    # -- the production calendar ---------------------------------------------------------------

    def calendar_for(self, tx: Tx) -> ProductionCalendar:
        """The production calendar with every imported official calendar applied (loaded once)."""
        if self._calendar is None:
            calendar = ProductionCalendar()
            for _year, source in tx.calendar_overrides():
                calendar = calendar.with_override(parse_xmlcalendar(source))
            self._calendar = calendar
        return self._calendar

    @property
    def calendar(self) -> ProductionCalendar:
        with self.store.transaction() as tx:
            return self.calendar_for(tx)

    def reload_calendar(self) -> None:
        """Forget the cached calendar (another process may have imported one)."""
        self._calendar = None

    # -- identities ------------------------------------------------------------------------

    def actor(self, login: str) -> Actor:
        """The actor for an active user, or NotFound."""
        with self.store.transaction() as tx:
            user = tx.get_user(login)
        if user is None or not user.active:
            raise NotFound("user", login)
        return Actor.of(user)

    # -- definitions -------------------------------------------------------------------------

    def deploy(
        self, source: bytes, filename: str, actor: Actor, resources: Mapping[str, bytes] | None = None
    ) -> DeployResult:
        """Deploy a BPMN file (and the form schemas it names). Identical content is a no-op."""
        access.check_can_deploy(actor)
        resources = dict(resources or {})
        chash = content_hash(source, resources)
        now = self.clock.now()
        with self.store.transaction() as tx:
            existing = tx.find_deployment(chash)
            if existing is not None:
                return DeployResult(existing, tx.definitions_of(existing.id), created=False)

            def lookup(key: str) -> tuple[DefinitionRecord, DeploymentRecord] | None:
                definition = tx.latest_definition(key)
                if definition is None:
                    return None
                deployment = tx.get_deployment(definition.deployment_id)
                return (definition, deployment) if deployment is not None else None

            prepared = prepare_deployment(
                source,
                filename,
                resources,
                now=now,
                deployed_by=actor.login,
                sandbox=self.sandbox,
                services=self.services,
                lookup=lookup,
                next_version=lambda key: tx.max_definition_version(key) + 1,
                new_id=self._new_id,
            )
            tx.add_deployment(prepared.deployment, prepared.definitions)
            for definition in prepared.definitions:
                # A new version replaces the previous one's start-timer schedule (or ends it).
                tx.replace_start_timers(
                    definition.key, self._start_timers(prepared.compiled[definition.id], filename, now)
                )
            tx.append_audit(
                [
                    AuditEntry(
                        now,
                        actor.login,
                        actor.organisation,
                        "definition.deployed",
                        definition_id=d.id,
                        details={"key": d.key, "version": d.version, "filename": filename, "content_hash": chash},
                    )
                    for d in prepared.definitions
                ]
            )
        with self._compiled_lock:
            self._compiled.update(prepared.compiled)
        return DeployResult(prepared.deployment, prepared.definitions, created=True)

    def definitions(self, latest_only: bool = True) -> list[DefinitionRecord]:
        with self.store.transaction() as tx:
            return tx.list_definitions(latest_only)

    def can_start(self, actor: Actor, compiled: CompiledDefinition) -> bool:
        """Whether ``actor`` may start this definition by hand (a none start event and a starter role)."""
        model = compiled.model
        return model.has_none_start and access.can_start(
            actor, model.candidate_starter_groups, model.candidate_starter_users
        )

    def startable(self, actor: Actor) -> list[CompiledDefinition]:
        """The latest definitions this actor may start, by name."""
        with self.store.transaction() as tx:
            latest = [self._compiled_for(tx, d.id) for d in tx.list_definitions(latest_only=True)]
        return sorted((c for c in latest if self.can_start(actor, c)), key=lambda c: c.model.label)

    def definition(self, definition_id: str) -> CompiledDefinition:
        with self.store.transaction() as tx:
            return self._compiled_for(tx, definition_id)

    def definition_source(self, definition_id: str) -> bytes:
        with self.store.transaction() as tx:
            record = tx.get_definition(definition_id)
            if record is None:
                raise NotFound("definition", definition_id)
            deployment = tx.get_deployment(record.deployment_id)
            if deployment is None:
                raise NotFound("deployment", record.deployment_id)
            return deployment.source

    def _compiled_for(self, tx: Tx, definition_id: str) -> CompiledDefinition:
        compiled = self._compiled.get(definition_id)
        if compiled is not None:
            return compiled
        record = tx.get_definition(definition_id)
        if record is None:
            raise NotFound("definition", definition_id)
        deployment = tx.get_deployment(record.deployment_id)
        if deployment is None:
            raise NotFound("deployment", record.deployment_id)
        called: dict[str, DeploymentRecord] = {}
        for key, called_id in record.calls.items():
            called_def = tx.get_definition(called_id)
            called_dep = tx.get_deployment(called_def.deployment_id) if called_def else None
            if called_dep is None:
                raise NotFound("definition", called_id)
            called[key] = called_dep
        compiled = load_compiled(record, deployment, called)
        with self._compiled_lock:
            self._compiled.setdefault(definition_id, compiled)
        return compiled

    # -- instances ----------------------------------------------------------------------------

    def start(
        self,
        process_key: str,
        actor: Actor,
        variables: Mapping[str, Any] | None = None,
        business_key: str | None = None,
    ) -> InstanceView:
        """Start the latest version of ``process_key`` at its none start event, as ``actor``."""
        data = _check_variables(variables)
        _check_business_key(business_key)
        with self.store.transaction() as tx:
            definition = tx.latest_definition(process_key)
            if definition is None:
                raise NotFound("process", process_key)
            compiled = self._compiled_for(tx, definition.id)
            if not compiled.model.has_none_start:
                ways = [f"message {m!r}" for m in compiled.model.start_messages]
                ways += [f"its timer ({expression})" for _, _, expression in compiled.model.start_timers]
                raise InvalidState(
                    f"process {process_key!r} has no none start event; it starts by {' or '.join(ways) or 'an event'}"
                )
            kept: list[tuple[str, int, Runtime]] = []
            view = self._start(tx, compiled, actor, data, business_key, None, keep=kept)
        for instance_id, version, runtime in kept:  # committed: the next command need not deserialize it
            self.runtimes.keep(instance_id, version, runtime)
        return view

    def start_by_message(
        self, message: str, actor: Actor, variables: Mapping[str, Any] | None = None, business_key: str | None = None
    ) -> list[InstanceView]:
        """Start every process (latest version) whose start event catches ``message``."""
        data = _check_variables(variables)
        _check_business_key(business_key)
        with self.store.transaction() as tx:
            started = []
            for definition in tx.list_definitions(latest_only=True):
                compiled = self._compiled_for(tx, definition.id)
                if message in compiled.model.start_messages:
                    started.append(self._start(tx, compiled, actor, dict(data), business_key, message))
            if not started:
                raise NotFound("process started by message", message)
            return started

    def _start(
        self,
        tx: Tx,
        compiled: CompiledDefinition,
        actor: Actor,
        data: dict[str, Any],
        business_key: str | None,
        message: str | None,
        timer_start: str | None = None,
        keep: list[tuple[str, int, Runtime]] | None = None,
    ) -> InstanceView:
        definition = compiled.record
        model = compiled.model
        # A timer start event is the process starting itself: no starter to check.
        if timer_start is None and not access.can_start(
            actor, model.candidate_starter_groups, model.candidate_starter_users
        ):
            raise NotPermitted(
                actor.login, "start", f"process {definition.key!r}", "your role may not start this process"
            )
        if message is None and compiled.start_schema is not None:
            data = forms.validate(compiled.start_schema, data)
        if model.initiator_variable:
            data[model.initiator_variable] = actor.login
        now = self.clock.now()
        instance = InstanceRecord(
            id=self._new_id(),
            definition_id=definition.id,
            process_key=definition.key,
            business_key=business_key,
            status=InstanceStatus.RUNNING,
            organisation=actor.organisation,
            started_by=actor.login,
            started_at=now,
            updated_at=now,
            state="",
            version=1,
        )
        script_engine = self._script_engine(tx, compiled, instance, actor)
        runtime = Runtime.start(compiled.specs, script_engine, data, message, timer_start)
        new_tasks, new_deadlines = self._new_tasks(tx, compiled, instance, runtime.human_tasks(), now)
        status, ended = self._status_after(runtime, bool(new_tasks), now)
        instance = replace(
            instance,
            status=status,
            ended_at=ended,
            state=runtime.dumps(),
            next_due_at=runtime.next_due(),
            waiting_messages=tuple(runtime.waiting_messages()),
        )
        tx.insert_instance(instance)
        if new_tasks:
            tx.insert_tasks(new_tasks)
        if new_deadlines:
            tx.insert_deadlines(new_deadlines)
        audit = [
            AuditEntry(
                now,
                actor.login,
                actor.organisation,
                "instance.started",
                instance_id=instance.id,
                definition_id=definition.id,
                details={
                    "process_key": definition.key,
                    "version": definition.version,
                    "business_key": business_key,
                    "message": message,
                    "timer": timer_start,
                },
                data_digest=digest(data),
            )
        ]
        audit += self._step_entries(runtime, instance, now)
        audit += self._created_entries(new_tasks, now)
        if status == InstanceStatus.COMPLETED:
            audit.append(AuditEntry(now, SYSTEM_ACTOR.login, None, "instance.completed", instance_id=instance.id))
        tx.append_audit(audit)
        views = [self._view(compiled, t) for t in new_tasks]
        if keep is not None:
            keep.append((instance.id, instance.version, runtime))
        return InstanceView(instance, definition, runtime.variables(), views, audit)

    def cancel(
        self, instance_id: str, actor: Actor, reason: str | None = None, *, expected_version: int | None = None
    ) -> InstanceView:
        with self.store.transaction() as tx:
            instance = tx.get_instance(instance_id)
            if instance is None:
                raise NotFound("instance", instance_id)
            access.check_can_cancel(actor, instance, instance.started_by)
            _check_version(instance, expected_version)
            if instance.status.is_final:
                raise InvalidState(f"instance {instance_id} is already {instance.status.value}")
            compiled = self._compiled_for(tx, instance.definition_id)
            runtime = Runtime.restore(
                compiled.specs, self._script_engine(tx, compiled, instance, actor), instance.state
            )
            variables = runtime.variables()
            runtime.cancel()
            now = self.clock.now()
            open_tasks = tx.list_tasks(TaskQuery(status=TaskStatus.OPEN, instance_id=instance_id, all_tasks=True))
            tx.close_tasks([t.id for t in open_tasks], TaskStatus.CANCELLED, now)
            tx.finish_deadlines([t.id for t in open_tasks], DeadlineStatus.CANCELLED, now)
            tx.update_instance(
                instance_id,
                instance.version,
                state=runtime.dumps(),
                status=InstanceStatus.CANCELLED,
                version=instance.version + 1,
                updated_at=now,
                ended_at=now,
                next_due_at=None,
            )
            tx.append_audit(
                [
                    AuditEntry(
                        now,
                        actor.login,
                        actor.organisation,
                        "instance.cancelled",
                        instance_id=instance_id,
                        details={"reason": reason} if reason else {},
                    )
                ]
                + [
                    AuditEntry(
                        now,
                        actor.login,
                        actor.organisation,
                        "task.cancelled",
                        instance_id=instance_id,
                        task_id=t.id,
                        element_id=t.element_id,
                    )
                    for t in open_tasks
                ]
            )
            definition = tx.get_definition(instance.definition_id)
            assert definition is not None
            final = replace(
                instance,
                status=InstanceStatus.CANCELLED,
                version=instance.version + 1,
                ended_at=now,
                updated_at=now,
                next_due_at=None,
            )
            return InstanceView(final, definition, variables, [], tx.list_audit(AuditQuery(instance_id=instance_id)))

    def instance(self, instance_id: str, actor: Actor) -> InstanceView:
        """An instance with its variables, open tasks and full history."""
        with self.store.transaction() as tx:
            instance = tx.get_instance(instance_id)
            if instance is None:
                raise NotFound("instance", instance_id)
            access.check_instance_visible(actor, instance, tx.task_organisations(instance_id))
            compiled = self._compiled_for(tx, instance.definition_id)
            runtime = Runtime.restore(
                compiled.specs, self._script_engine(tx, compiled, instance, actor), instance.state
            )
            open_tasks = tx.list_tasks(TaskQuery(status=TaskStatus.OPEN, instance_id=instance_id, all_tasks=True))
            history = tx.list_audit(AuditQuery(instance_id=instance_id, limit=100_000))
            return InstanceView(
                instance, compiled.record, runtime.variables(), [self._view(compiled, t) for t in open_tasks], history
            )

    def instances(self, actor: Actor, query: InstanceQuery | None = None) -> list[InstanceRecord]:
        return self.instances_page(actor, query, count=False)[0]

    def instances_page(
        self, actor: Actor, query: InstanceQuery | None = None, *, count: bool = True
    ) -> tuple[list[InstanceRecord], int]:
        query = query or InstanceQuery()
        if not access.sees_all_instances(actor):
            query = replace(query, visible_to_organisation=actor.organisation)
        with self.store.transaction() as tx:
            items = tx.list_instances(query)
            return items, tx.count_instances(query) if count else len(items)

    def set_variables(
        self, instance_id: str, actor: Actor, changes: Mapping[str, Any], *, expected_version: int | None = None
    ) -> InstanceView:
        """Change process variables of a running instance (e.g. the Ministry moves the Day)."""
        data = _check_variables(changes)
        if not data:
            raise BadInput("no variables to change")
        with self.store.transaction() as tx:
            instance = tx.get_instance(instance_id)
            if instance is None:
                raise NotFound("instance", instance_id)
            access.check_instance_visible(actor, instance, tx.task_organisations(instance_id))
            _check_version(instance, expected_version)
            if not access.sees_all_instances(actor):
                raise NotPermitted(
                    actor.login,
                    "change variables of",
                    f"instance {instance_id}",
                    "only the Ministry, the coordinator and administrators change variables",
                )
            if instance.status.is_final:
                raise InvalidState(f"instance {instance_id} is {instance.status.value}")
            compiled = self._compiled_for(tx, instance.definition_id)
            runtime = Runtime.restore(
                compiled.specs, self._script_engine(tx, compiled, instance, actor), instance.state
            )
            before = runtime.variables()
            before_tasks = {t.task_id for t in runtime.human_tasks()}
            runtime.set_variables(data)
            now = self.clock.now()
            changed = {k: {"from": _jsonable(before.get(k)), "to": _jsonable(v)} for k, v in data.items()}
            audit = [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "instance.variables_changed",
                    instance_id=instance_id,
                    details={"changes": changed},
                    data_digest=digest(data),
                )
            ]
            # Every open deadline anchored on a changed variable moves, with its reminders; a
            # date it mirrors into a variable moves too (and the timers that read it).
            mirrored: dict[str, Any] = {}
            readies = {r.task_id: r for r in runtime.human_tasks()}
            for deadline in tx.list_deadlines(DeadlineQuery(instance_id=instance_id)):
                if deadline.anchor not in data:
                    continue
                ready = readies.get(deadline.task_id)
                result = tracking.recompute(
                    deadline, ready.data if ready else runtime.variables(), now, self.calendar_for(tx)
                )
                if result is None:
                    continue
                moved, _computed = result
                audit += self._move_deadline(
                    tx, compiled, deadline, moved, actor, now, reason=f"изменена переменная {deadline.anchor}"
                )
                if moved.variable:
                    mirrored[moved.variable] = moved.final_date.isoformat()
            if mirrored:
                runtime.set_variables(mirrored)
            # Setting data lets the engine run: a timer now due fires, and what follows it runs.
            updated, new_tasks, progress = self._settle(tx, compiled, instance, runtime, before_tasks, now)
            tx.append_audit(audit + progress)
            return InstanceView(
                updated, compiled.record, runtime.variables(), [self._view(compiled, t) for t in new_tasks]
            )

    def fire_timers(
        self, instance_id: str, actor: Actor = SYSTEM_ACTOR, *, background: bool = True, lease_owner: str | None = None
    ) -> InstanceView:
        """Let the instance's due timers fire and run on to the next wait state.

        In the background (the worker), a failing step is recorded as an incident on the
        instance and the state stays at the last good point; in the foreground it raises.
        """
        with self.store.transaction() as tx:
            instance = tx.get_instance(instance_id)
            if instance is None:
                raise NotFound("instance", instance_id)
            if instance.status.is_final:
                raise InvalidState(f"instance {instance_id} is {instance.status.value}")
            compiled = self._compiled_for(tx, instance.definition_id)
            runtime = Runtime.restore(
                compiled.specs, self._script_engine(tx, compiled, instance, actor), instance.state
            )
            before = {t.task_id for t in runtime.human_tasks()}
            now = self.clock.now()
            try:
                runtime.fire_timers()
            except StepFailed as exc:
                if not background:
                    raise
                tx.update_instance(
                    instance_id,
                    instance.version,
                    status=InstanceStatus.INCIDENT,
                    version=instance.version + 1,
                    updated_at=now,
                    incident=str(exc),
                    next_due_at=None,
                )
                tx.append_audit(
                    [
                        AuditEntry(
                            now,
                            actor.login,
                            actor.organisation,
                            "instance.incident",
                            instance_id=instance_id,
                            element_id=exc.element_id,
                            details={"error": exc.code, "reason": exc.reason},
                        )
                    ]
                )
                failed = replace(
                    instance,
                    status=InstanceStatus.INCIDENT,
                    version=instance.version + 1,
                    incident=str(exc),
                    next_due_at=None,
                )
                if lease_owner:
                    tx.release_instance(instance_id, lease_owner)
                return InstanceView(failed, compiled.record, {})
            updated, new_tasks, audit = self._settle(tx, compiled, instance, runtime, before, now)
            tx.append_audit(audit)
            if lease_owner:
                tx.release_instance(instance_id, lease_owner)
            return InstanceView(
                updated, compiled.record, runtime.variables(), [self._view(compiled, t) for t in new_tasks]
            )

    @staticmethod
    def _replace_tasks(
        tx: Tx,
        vanished: Sequence[str],
        new_tasks: Sequence[TaskRecord],
        new_deadlines: Sequence[DeadlineRecord],
        now: datetime,
    ) -> None:
        """Close the tasks the engine withdrew (and their deadlines); store the new ones."""
        if vanished:
            tx.close_tasks(vanished, TaskStatus.CANCELLED, now)
            tx.finish_deadlines(vanished, DeadlineStatus.CANCELLED, now)
        if new_tasks:
            tx.insert_tasks(new_tasks)
        if new_deadlines:
            tx.insert_deadlines(new_deadlines)

    def _settle(
        self,
        tx: Tx,
        compiled: CompiledDefinition,
        instance: InstanceRecord,
        runtime: Runtime,
        before: set[str],
        now: datetime,
    ) -> tuple[InstanceRecord, list[TaskRecord], list[AuditEntry]]:
        """Save an instance after its engine ran in the background (timers fired, data changed):
        project new human tasks, close vanished ones, store the state. Returns the updated
        record, the new tasks and the audit lines (not yet written)."""
        after = runtime.human_tasks()
        after_ids = {t.task_id for t in after}
        new_tasks, new_deadlines = self._new_tasks(
            tx, compiled, instance, [r for r in after if r.task_id not in before], now
        )
        vanished = sorted(before - after_ids)
        status, ended = self._status_after(runtime, bool(after), now)
        next_due = runtime.next_due()
        waiting = tuple(runtime.waiting_messages())
        tx.update_instance(
            instance.id,
            instance.version,
            state=runtime.dumps(),
            status=status,
            version=instance.version + 1,
            updated_at=now,
            ended_at=ended,
            next_due_at=next_due,
            waiting_messages=waiting,
            incident=None,
        )
        self._replace_tasks(tx, vanished, new_tasks, new_deadlines, now)
        audit = self._step_entries(runtime, instance, now)
        audit += [
            AuditEntry(now, SYSTEM_ACTOR.login, None, "task.cancelled", instance_id=instance.id, task_id=t)
            for t in vanished
        ]
        if instance.status == InstanceStatus.INCIDENT:
            # The step that failed has now run: say so, next to the incident it ends.
            audit.append(
                AuditEntry(
                    now,
                    SYSTEM_ACTOR.login,
                    None,
                    "instance.incident_resolved",
                    instance_id=instance.id,
                    details={"incident": instance.incident},
                )
            )
        audit += self._created_entries(new_tasks, now)
        if status == InstanceStatus.COMPLETED:
            audit.append(AuditEntry(now, SYSTEM_ACTOR.login, None, "instance.completed", instance_id=instance.id))
        updated = replace(
            instance,
            status=status,
            version=instance.version + 1,
            updated_at=now,
            ended_at=ended,
            next_due_at=next_due,
            waiting_messages=waiting,
            incident=None,
        )
        return updated, new_tasks, audit

    def due_instances(self, now: datetime, limit: int = 100) -> list[str]:
        """Instances with a timer due at or before ``now`` (the worker's sweep uses a leased query)."""
        with self.store.transaction() as tx:
            return tx.due_instances(now, limit)

    def start_by_timer(self, timer: StartTimerRecord) -> InstanceView:
        """Start an instance because its timer start event has come (the start-timer sweep)."""
        with self.store.transaction() as tx:
            compiled = self._compiled_for(tx, timer.definition_id)
            return self._start(tx, compiled, SYSTEM_ACTOR, {}, None, None, timer_start=timer.element_id)

    def sandbox_evaluator(self, now: datetime) -> Callable[[str], Any]:
        """Evaluate an expression with no variables (timer start events), at ``now``."""
        return lambda expression: self.sandbox.evaluate(expression, {}, {"now": lambda: now})

    # -- the worker's sweeps (see engine.sweeps) ---------------------------------------------------

    def sweep_timers(self, owner: str, batch: int = 100) -> sweeps.SweepReport:
        return sweeps.timers(self, owner, batch, self.settings.worker_lease_seconds)

    def sweep_reminders(self, owner: str, batch: int = 500) -> sweeps.SweepReport:
        return sweeps.reminders(self, owner, batch)

    def sweep_start_timers(self, owner: str, batch: int = 20) -> sweeps.SweepReport:
        return sweeps.start_timers(self, owner, batch, self.settings.worker_lease_seconds)

    # -- deadlines, extensions, notifications -------------------------------------------------------

    def deadlines(self, actor: Actor, query: DeadlineQuery | None = None) -> list[DeadlineRecord]:
        """Deadlines the actor may see: overseers all, a МОУО its own organisation's."""
        return self.deadlines_page(actor, query, count=False)[0]

    def deadlines_page(
        self, actor: Actor, query: DeadlineQuery | None = None, *, count: bool = True
    ) -> tuple[list[DeadlineRecord], int]:
        query = query or DeadlineQuery()
        if not access.sees_all_instances(actor):
            if query.organisation not in (None, actor.organisation):
                return [], 0  # a filter narrows what one sees; it never widens it
            query = replace(query, organisation=actor.organisation)
        with self.store.transaction() as tx:
            items = tx.list_deadlines(query)
            return items, tx.count_deadlines(query) if count else len(items)

    def deadline(self, deadline_id: str, actor: Actor) -> DeadlineRecord:
        with self.store.transaction() as tx:
            deadline = tx.get_deadline(deadline_id)
            if deadline is None or not (
                access.sees_all_instances(actor) or deadline.organisation == actor.organisation
            ):
                raise NotFound("deadline", deadline_id)
            return deadline

    def request_extension(self, task_id: str, actor: Actor, reason: str, proposed: date) -> ExtensionRequest:
        return extensions.request(self, task_id, actor, reason, proposed)

    def decide_extension(
        self, request_id: str, actor: Actor, approve: bool, comment: str | None = None, new_date: date | None = None
    ) -> ExtensionRequest:
        return extensions.decide(self, request_id, actor, approve, comment, new_date)

    def extension_requests(self, actor: Actor, query: ExtensionQuery | None = None) -> list[ExtensionRequest]:
        """Requests the actor decides (by role) or made (by organisation)."""
        return self.extension_requests_page(actor, query, count=False)[0]

    def extension_requests_page(
        self, actor: Actor, query: ExtensionQuery | None = None, *, count: bool = True
    ) -> tuple[list[ExtensionRequest], int]:
        """A page of the requests the actor decides (by role) or made (themselves or by organisation)."""
        query = query or ExtensionQuery()
        if not actor.is_admin:
            query = replace(
                query,
                viewer_login=actor.login,
                viewer_roles=frozenset(actor.roles),
                viewer_organisation=actor.organisation,
            )
        with self.store.transaction() as tx:
            items = tx.list_extensions(query)
            return items, tx.count_extensions(query) if count else len(items)

    def notifications(self, actor: Actor, unread_only: bool = False, limit: int = 100) -> list[NotificationRecord]:
        return self.notifications_page(actor, unread_only, limit, count=False)[0]

    def notifications_page(
        self, actor: Actor, unread_only: bool = False, limit: int = 100, offset: int = 0, *, count: bool = True
    ) -> tuple[list[NotificationRecord], int]:
        """A page of the actor's own notifications, newest first, and how many there are."""
        with self.store.transaction() as tx:
            items = tx.list_notifications(actor.login, unread_only, limit, offset)
            return items, tx.count_notifications(actor.login, unread_only) if count else len(items)

    def count_notifications(self, actor: Actor, unread_only: bool = False) -> int:
        with self.store.transaction() as tx:
            return tx.count_notifications(actor.login, unread_only)

    def mark_notifications_read(self, actor: Actor, ids: Sequence[str] | None = None) -> int:
        with self.store.transaction() as tx:
            return tx.mark_notifications_read(actor.login, ids, self.clock.now())

    def reminders_of(self, instance_id: str, actor: Actor) -> list[ReminderRecord]:
        with self.store.transaction() as tx:
            instance = tx.get_instance(instance_id)
            if instance is None:
                raise NotFound("instance", instance_id)
            access.check_instance_visible(actor, instance, tx.task_organisations(instance_id))
            return tx.list_reminders(instance_id=instance_id)

    def import_calendar(self, source: bytes, actor: Actor, filename: str | None = None) -> dict[str, Any]:
        """Import an official production calendar (xmlcalendar format) for its year, replacing the
        built-in one, and move the open deadlines it changes (audited, performers notified)."""
        if not actor.is_admin:
            raise NotPermitted(actor.login, "import", "a production calendar", "administrators import calendars")
        year_calendar = parse_xmlcalendar(source, filename)
        now = self.clock.now()
        moved = 0
        with self.store.transaction() as tx:
            tx.save_calendar_override(year_calendar.year, source, now, actor.login)
            self._calendar = self.calendar_for(tx).with_override(year_calendar)
            audit = [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "calendar.imported",
                    details={"year": year_calendar.year, "filename": filename},
                )
            ]
            for deadline in tx.list_deadlines(DeadlineQuery(limit=1_000_000)):
                if year_calendar.year not in (deadline.raw_date.year, deadline.final_date.year):
                    continue
                result = tracking.recompute_from_anchor(deadline, now, self._calendar)
                if result is None:
                    continue
                task = tx.get_task(deadline.task_id)
                if task is None:
                    continue
                compiled = self._compiled_for(tx, task.definition_id)
                audit += self._move_deadline(
                    tx,
                    compiled,
                    deadline,
                    result,
                    actor,
                    now,
                    reason=f"загружен производственный календарь на {year_calendar.year} год",
                )
                moved += 1
            tx.append_audit(audit)
        return {"year": year_calendar.year, "deadlines_moved": moved}

    # -- tasks ---------------------------------------------------------------------------------

    def tasks(self, actor: Actor, query: TaskQuery | None = None) -> list[TaskView]:
        """The tasks this actor may see (open ones by default)."""
        return self.tasks_page(actor, query, count=False)[0]

    def tasks_page(
        self, actor: Actor, query: TaskQuery | None = None, *, count: bool = True
    ) -> tuple[list[TaskView], int]:
        """A page of the tasks this actor may see and, with ``count``, how many there are in all."""
        query = self._visible_tasks(actor, query or TaskQuery())
        with self.store.transaction() as tx:
            records = [t for t in tx.list_tasks(query) if access.can_see_task(actor, t)]
            total = tx.count_tasks(query) if count else len(records)
            deadlines = tx.deadlines_of_tasks([t.id for t in records if t.due_at is not None])
            views = [self._view(self._compiled_for(tx, t.definition_id), t, deadlines.get(t.id)) for t in records]
            return views, total

    def count_tasks(self, actor: Actor, query: TaskQuery | None = None) -> int:
        """How many tasks this actor may see that match ``query`` (no rows are read)."""
        query = self._visible_tasks(actor, query or TaskQuery())
        with self.store.transaction() as tx:
            return tx.count_tasks(query)

    @staticmethod
    def _visible_tasks(actor: Actor, query: TaskQuery) -> TaskQuery:
        if actor.is_admin:
            return replace(query, all_tasks=True)
        return replace(
            query,
            candidate_roles=tuple(sorted(actor.roles)),
            candidate_user=actor.login,
            organisation=actor.organisation,
            include_unrestricted=bool(access.OPERATOR_ROLES & actor.roles),
            all_tasks=False,
        )

    def task(self, task_id: str, actor: Actor) -> TaskView:
        with self.store.transaction() as tx:
            task = tx.get_task(task_id)
            if task is None:
                raise NotFound("task", task_id)
            access.check_task_visible(actor, task)
            deadline = tx.deadline_of_task(task_id) if task.due_at is not None else None
            return self._view(self._compiled_for(tx, task.definition_id), task, deadline)

    def claim(self, task_id: str, actor: Actor) -> TaskView:
        with self.store.transaction() as tx:
            task = tx.get_task(task_id)
            if task is None:
                raise NotFound("task", task_id)
            access.check_task_visible(actor, task)
            if task.status != TaskStatus.OPEN:
                raise ConcurrencyConflict(f"task {task_id}", f"the task is already {task.status.value}")
            if task.assignee == actor.login:
                return self._view(self._compiled_for(tx, task.definition_id), task)
            if task.assignee is not None:
                raise InvalidState(f"task {task_id} is already claimed by {task.assignee}")
            access.check_task_actionable(actor, task, "claim")
            now = self.clock.now()
            tx.update_task(
                task_id,
                TaskStatus.OPEN,
                check_assignee=True,
                expected_assignee=None,
                assignee=actor.login,
                claimed_at=now,
            )
            tx.append_audit(
                [
                    AuditEntry(
                        now,
                        actor.login,
                        actor.organisation,
                        "task.claimed",
                        instance_id=task.instance_id,
                        task_id=task_id,
                        element_id=task.element_id,
                    )
                ]
            )
            claimed = replace(task, assignee=actor.login, claimed_at=now)
            return self._view(self._compiled_for(tx, task.definition_id), claimed)

    def unclaim(self, task_id: str, actor: Actor) -> TaskView:
        with self.store.transaction() as tx:
            task = tx.get_task(task_id)
            if task is None:
                raise NotFound("task", task_id)
            access.check_task_visible(actor, task)
            if task.status != TaskStatus.OPEN:
                raise ConcurrencyConflict(f"task {task_id}", f"the task is already {task.status.value}")
            if task.assignee is None:
                return self._view(self._compiled_for(tx, task.definition_id), task)
            supervisor = actor.is_admin or (actor.has(Role.COORDINATOR) and access.is_candidate(actor, task))
            if task.assignee != actor.login and not supervisor:
                raise NotPermitted(actor.login, "unclaim", f"task {task_id}", f"it is claimed by {task.assignee}")
            now = self.clock.now()
            tx.update_task(
                task_id,
                TaskStatus.OPEN,
                check_assignee=True,
                expected_assignee=task.assignee,
                assignee=None,
                claimed_at=None,
            )
            tx.append_audit(
                [
                    AuditEntry(
                        now,
                        actor.login,
                        actor.organisation,
                        "task.unclaimed",
                        instance_id=task.instance_id,
                        task_id=task_id,
                        element_id=task.element_id,
                        details={"previous_assignee": task.assignee},
                    )
                ]
            )
            return self._view(self._compiled_for(tx, task.definition_id), replace(task, assignee=None, claimed_at=None))

    def complete(
        self,
        task_id: str,
        actor: Actor,
        data: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
    ) -> InstanceView:
        """Complete a task with form data; run the process on to its next wait state.

        With ``expected_version`` (the instance version the caller saw), a changed instance
        is refused with :class:`StaleVersion` and nothing is written."""
        if data is not None and not isinstance(data, Mapping):
            raise BadInput("task data must be a JSON object")
        submitted = dict(data or {})
        with self.store.transaction() as tx:
            pair = tx.get_task_with_instance(task_id)
            if pair is None:
                raise NotFound("task", task_id)
            task, instance = pair
            access.check_task_visible(actor, task)
            _check_version(instance, expected_version)
            if task.status != TaskStatus.OPEN:
                raise ConcurrencyConflict(f"task {task_id}", f"the task is already {task.status.value}")
            access.check_task_actionable(actor, task, "complete")
            compiled = self._compiled_for(tx, instance.definition_id)
            clean = forms.validate(compiled.form_schema(task.element_id), submitted)
            _check_variables(clean)
            script_engine = self._script_engine(tx, compiled, instance, actor)
            kept = self.runtimes.take(instance.id, instance.version, compiled.specs)
            if kept is not None:
                runtime = kept.rebind(script_engine)
            else:
                runtime = Runtime.restore(compiled.specs, script_engine, instance.state)
            before = {t.task_id for t in runtime.human_tasks()}
            # The workflow may outlive this call (the cache): it must hold no value the caller still holds.
            runtime.complete(task_id, copy.deepcopy(clean))
            now = self.clock.now()
            after = runtime.human_tasks()
            after_ids = {t.task_id for t in after}
            new_tasks, new_deadlines = self._new_tasks(
                tx, compiled, instance, [r for r in after if r.task_id not in before], now
            )
            vanished = sorted(before - after_ids - {task_id})
            status, ended = self._status_after(runtime, bool(after), now)

            tx.update_task(
                task_id,
                TaskStatus.OPEN,
                check_assignee=True,
                expected_assignee=task.assignee,
                status=TaskStatus.COMPLETED,
                completed_at=now,
                completed_by=actor.login,
                assignee=actor.login,
            )
            if task.due_at is not None:
                tx.finish_deadlines([task_id], DeadlineStatus.MET, now)
            tx.update_instance(
                instance.id,
                instance.version,
                state=runtime.dumps(),
                status=status,
                version=instance.version + 1,
                updated_at=now,
                ended_at=ended,
                next_due_at=runtime.next_due(),
                waiting_messages=tuple(runtime.waiting_messages()),
                incident=None,
            )
            self._replace_tasks(tx, vanished, new_tasks, new_deadlines, now)
            audit = [
                AuditEntry(
                    now,
                    actor.login,
                    actor.organisation,
                    "task.completed",
                    instance_id=instance.id,
                    task_id=task_id,
                    element_id=task.element_id,
                    data_digest=digest(clean),
                    details={"fields": sorted(clean)},
                )
            ]
            audit += self._step_entries(runtime, instance, now)
            audit += [
                AuditEntry(now, SYSTEM_ACTOR.login, None, "task.cancelled", instance_id=instance.id, task_id=t)
                for t in vanished
            ]
            audit += self._created_entries(new_tasks, now)
            if status == InstanceStatus.COMPLETED:
                audit.append(AuditEntry(now, SYSTEM_ACTOR.login, None, "instance.completed", instance_id=instance.id))
            tx.append_audit(audit)
            updated = replace(instance, status=status, version=instance.version + 1, updated_at=now, ended_at=ended)
            result = InstanceView(
                updated, compiled.record, runtime.variables(), [self._view(compiled, t) for t in new_tasks]
            )
        self.runtimes.keep(instance.id, updated.version, runtime)  # committed as this version
        return result

    # -- directory and registry ----------------------------------------------------------------

    def organisations(self) -> list[Organisation]:
        with self.store.transaction() as tx:
            return tx.list_organisations()

    def members(self, year: int) -> list[Member]:
        """The members of the agglomeration in ``year`` (REG 5.6), by organisation name."""
        with self.store.transaction() as tx:
            orgs = {o.code: o for o in tx.list_organisations()}
            best: dict[str, Membership] = {}
            for m in tx.memberships(year):
                if m.covers(year):
                    # Prefer the record that made it a member earliest; a contract over history.
                    current = best.get(m.organisation)
                    if current is None or (m.since_year, m.source != "contract") < (
                        current.since_year,
                        current.source != "contract",
                    ):
                        best[m.organisation] = m
            members = [Member(orgs[code], m) for code, m in best.items() if code in orgs]
            return sorted(members, key=lambda mb: mb.organisation.name)

    def membership_dynamics(self, first: int | None = None, last: int | None = None) -> list[tuple[int, int]]:
        """How many members the agglomeration had in each year, from its first year (or ``first``)
        to this year (or ``last``)."""
        last = last or self.clock.now().year
        if first is None:
            with self.store.transaction() as tx:
                years = [m.since_year for o in tx.list_organisations() for m in tx.memberships_of(o.code)]
            first = min(years, default=last)
        if last - first > 100:
            raise BadInput("ask for at most 100 years", field="from_year")
        return [(year, len(self.members(year))) for year in range(first, last + 1)]

    def import_directory(
        self,
        actor: Actor,
        organisations: Sequence[Organisation],
        users: Sequence[User],
        memberships: Sequence[Membership],
        *,
        keep_passwords: bool = True,
    ) -> dict[str, int]:
        """Create or update organisations and users and record historical memberships, in one
        transaction with one audit line. Existing users keep their password unless told otherwise."""
        if not actor.is_admin:
            raise NotPermitted(actor.login, "import", "the directory", "administrators manage the directory")
        now = self.clock.now()
        report = {"organisations": 0, "users_created": 0, "users_updated": 0, "memberships_added": 0}
        with self.store.transaction() as tx:
            for org in organisations:
                tx.save_organisation(org)
                report["organisations"] += 1
            for user in users:
                existing = tx.get_user(user.login)
                if existing is not None and keep_passwords:
                    user = replace(user, password_hash=existing.password_hash)
                tx.save_user(user)
                report["users_updated" if existing is not None else "users_created"] += 1
            for membership in memberships:
                if tx.add_membership(membership):
                    report["memberships_added"] += 1
            tx.append_audit([AuditEntry(now, actor.login, actor.organisation, "directory.imported", details=report)])
        return report

    def users(self) -> list[User]:
        with self.store.transaction() as tx:
            return tx.list_users()

    def audit(self, actor: Actor, query: AuditQuery | None = None) -> list[AuditEntry]:
        return self.audit_page(actor, query, count=False)[0]

    def audit_page(
        self, actor: Actor, query: AuditQuery | None = None, *, count: bool = True
    ) -> tuple[list[AuditEntry], int]:
        if not (actor.is_admin or actor.has(Role.MINISTRY) or actor.has(Role.COORDINATOR)):
            raise NotPermitted(
                actor.login,
                "read",
                "the audit log",
                "only the Ministry, the coordinator and administrators read the audit log",
            )
        query = query or AuditQuery()
        with self.store.transaction() as tx:
            items = tx.list_audit(query)
            return items, tx.count_audit(query) if count else len(items)

    # -- people and credentials (see engine.credentials) ----------------------------------------

    def authenticate(self, login: str, password: str, ip: str = "-") -> Actor:
        return credentials.authenticate(self, login, password, ip)

    def authenticate_token(self, secret: str) -> Actor:
        return credentials.authenticate_token(self, secret)

    def change_password(self, actor: Actor, old: str, new: str) -> None:
        credentials.change_password(self, actor, old, new)

    def save_user(self, actor: Actor, change: credentials.UserChange) -> User:
        return credentials.save_user(self, actor, change)

    def user(self, login: str, actor: Actor) -> User:
        if not (actor.is_admin or actor.login == login):
            raise NotFound("user", login)
        with self.store.transaction() as tx:
            user = tx.get_user(login)
        if user is None:
            raise NotFound("user", login)
        return user

    def create_token(self, actor: Actor, name: str, roles: Sequence[str], organisation: str) -> tuple[ApiToken, str]:
        return credentials.create_token(self, actor, name, tuple(roles), organisation)

    def revoke_token(self, actor: Actor, token_id: str) -> ApiToken:
        return credentials.revoke_token(self, actor, token_id)

    def tokens(self, actor: Actor) -> list[ApiToken]:
        return credentials.list_tokens(self, actor)

    def rotate_calendar_token(self, actor: Actor) -> str:
        return credentials.rotate_calendar_token(self, actor)

    def calendar_feed(self, secret: str, base_url: str = "") -> str:
        """The iCalendar feed behind a private calendar URL: the owner's open deadlines."""
        actor = credentials.calendar_actor(self, secret)
        views = self.tasks(actor, TaskQuery(status=TaskStatus.OPEN, limit=5000))
        events = [
            ical.FeedEvent(
                uid=f"{v.deadline.id}@agglo",
                sequence=v.deadline.version + v.deadline.extensions,
                day=v.deadline.final_date,
                summary=f"Срок: {v.task.name or v.task.element_id}",
                description="\n".join(
                    part
                    for part in (
                        v.process_name or v.task.process_key,
                        v.deadline.explanation,
                        f"Основание: {v.deadline.clause}" if v.deadline.clause else "",
                        f"{base_url}/tasks/{v.task.id}" if base_url else "",
                    )
                    if part
                ),
                url=f"{base_url}/tasks/{v.task.id}" if base_url else None,
                categories=(v.task.process_key,),
            )
            for v in views
            if v.deadline is not None
        ]
        return ical.render(events, self.clock.now(), f"Сроки: {actor.name or actor.login}")

    # -- comments and documents (see engine.documents) -------------------------------------------

    def add_comment(self, task_id: str, actor: Actor, text: str) -> CommentRecord:
        return documents.add_comment(self, task_id, actor, text)

    def comments(self, task_id: str, actor: Actor) -> list[CommentRecord]:
        return documents.comments(self, task_id, actor)

    def add_attachment(
        self, task_id: str, actor: Actor, filename: str, content_type: str, content: bytes
    ) -> AttachmentRecord:
        return documents.add_attachment(self, task_id, actor, filename, content_type, content)

    def attachments(self, task_id: str, actor: Actor) -> list[AttachmentRecord]:
        return documents.attachments(self, task_id, actor)

    def attachment(self, attachment_id: str, actor: Actor) -> tuple[AttachmentRecord, bytes]:
        return documents.download(self, attachment_id, actor)

    def instance_documents(self, instance_id: str, actor: Actor) -> tuple[list[AttachmentRecord], list[CommentRecord]]:
        return documents.instance_documents(self, instance_id, actor)

    # -- reports (see engine.reports) --------------------------------------------------------------

    def overdue_report(self, actor: Actor, organisation: str | None = None) -> list[reports.OverdueGroup]:
        return reports.overdue(self, actor, organisation)

    def diagram_state(self, instance_id: str, actor: Actor) -> reports.DiagramState:
        return reports.diagram_state(self, instance_id, actor)

    def deadline_month(self, actor: Actor, year: int, month: int) -> dict[date, list[reports.CalendarEntry]]:
        return reports.month(self, actor, year, month)

    # -- messages from outside (see engine.messages) -----------------------------------------------

    def receive_message(
        self,
        actor: Actor,
        *,
        name: str,
        correlation: Mapping[str, Any] | None = None,
        variables: Mapping[str, Any] | None = None,
        key: str,
        source: str = "api",
        ttl: timedelta | None = None,
    ) -> messages.Outcome:
        return messages.receive(
            self,
            actor,
            name=name,
            correlation=correlation or {},
            variables=variables or {},
            key=key,
            source=source,
            ttl=ttl,
        )

    def catch_message(self, instance_id: str, message: InboundMessage, actor: Actor) -> InstanceView | None:
        """Deliver a stored message to an instance that waits for it (None when it no longer does)."""
        with self.store.transaction() as tx:
            instance = tx.get_instance(instance_id)
            if instance is None or instance.status not in (InstanceStatus.RUNNING, InstanceStatus.WAITING):
                return None
            compiled = self._compiled_for(tx, instance.definition_id)
            runtime = Runtime.restore(
                compiled.specs, self._script_engine(tx, compiled, instance, actor), instance.state
            )
            before = {t.task_id for t in runtime.human_tasks()}
            data = _check_variables(message.variables)
            if not runtime.catch_message(message.name, data):
                return None
            now = self.clock.now()
            updated, new_tasks, progress = self._settle(tx, compiled, instance, runtime, before, now)
            tx.update_message(message.id, status=MessageStatus.CORRELATED, instance_id=instance_id, correlated_at=now)
            correlated = AuditEntry(
                now,
                actor.login,
                actor.organisation,
                "message.correlated",
                instance_id=instance_id,
                details={
                    "message": message.id,
                    "name": message.name,
                    "source": message.source,
                    "key": message.key,
                    "correlation": message.correlation,
                },
                data_digest=digest(data),
            )
            tx.append_audit([correlated, *progress])
            return InstanceView(
                updated, compiled.record, runtime.variables(), [self._view(compiled, t) for t in new_tasks]
            )

    def messages(self, actor: Actor, status: MessageStatus | None = None, limit: int = 200) -> list[InboundMessage]:
        if not (actor.is_admin or actor.has(Role.COORDINATOR)):
            raise NotPermitted(actor.login, "read", "received messages", "the coordinator and administrators do")
        with self.store.transaction() as tx:
            return tx.list_messages(status, limit)

    def sweep_messages(self, limit: int = 200) -> sweeps.SweepReport:
        report = sweeps.SweepReport("messages")
        correlated, expired = messages.retry_buffered(self, limit)
        report.done, report.deferred = correlated, expired
        return report

    # -- inbound sources and outgoing subscriptions (see engine.inbound, engine.subscriptions) ---------

    def save_source(self, actor: Actor, name: str, description: str = "") -> tuple[InboundSource, str]:
        return inbound.save_source(self, actor, name, description)

    def rotate_source_secret(
        self, actor: Actor, name: str, overlap: timedelta = SECRET_OVERLAP
    ) -> tuple[InboundSource, str]:
        return inbound.rotate(self, actor, name, overlap)

    def set_source_active(self, actor: Actor, name: str, active: bool) -> InboundSource:
        return inbound.set_active(self, actor, name, active)

    def sources(self, actor: Actor) -> list[InboundSource]:
        return inbound.list_sources(self, actor)

    def source(self, name: str) -> InboundSource | None:
        """The source for the inbound endpoint's signature check (no actor: the signature is the credential)."""
        with self.store.transaction() as tx:
            return tx.get_source(name)

    def create_subscription(
        self,
        actor: Actor,
        url: str,
        event_types: Sequence[str] = (),
        organisation: str | None = None,
        description: str = "",
    ) -> tuple[Subscription, str]:
        return subscriptions.create(self, actor, url, event_types, organisation, description)

    def subscriptions(self, actor: Actor) -> list[Subscription]:
        return subscriptions.list_all(self, actor)

    def subscription(self, actor: Actor, subscription_id: str) -> Subscription:
        return subscriptions.get(self, actor, subscription_id)

    def update_subscription(self, actor: Actor, subscription_id: str, **changes: Any) -> Subscription:
        return subscriptions.update(self, actor, subscription_id, **changes)

    def rotate_subscription_secret(
        self, actor: Actor, subscription_id: str, overlap: timedelta = SECRET_OVERLAP
    ) -> tuple[Subscription, str]:
        return subscriptions.rotate_secret(self, actor, subscription_id, overlap)

    def webhook_deliveries(
        self, actor: Actor, subscription_id: str, status: DeliveryStatus | None = None, limit: int = 100
    ) -> list[DeliveryRecord]:
        return subscriptions.deliveries(self, actor, subscription_id, status, limit)

    def delivery_attempts(self, actor: Actor, delivery_id: str) -> list[DeliveryAttempt]:
        return subscriptions.attempts(self, actor, delivery_id)

    def redeliver(self, actor: Actor, delivery_id: str) -> DeliveryRecord:
        return subscriptions.redeliver(self, actor, delivery_id)

    # -- incidents ---------------------------------------------------------------------------------

    def incidents(self, actor: Actor) -> list[InstanceRecord]:
        return self.instances(actor, InstanceQuery(status=InstanceStatus.INCIDENT, limit=1000))

    def incidents_page(self, actor: Actor, limit: int = 50, offset: int = 0) -> tuple[list[InstanceRecord], int]:
        """A page of the instances in incident the actor may see (as :meth:`instances_page`), and their count."""
        return self.instances_page(actor, InstanceQuery(status=InstanceStatus.INCIDENT, limit=limit, offset=offset))

    def retry_incident(self, instance_id: str, actor: Actor) -> InstanceView:
        """Run an instance in incident again from its last good state (the coordinator or an administrator).

        If the step fails again the incident stays, with the new reason; either way it is audited.
        """
        with self.store.transaction() as tx:
            instance = tx.get_instance(instance_id)
            if instance is None:
                raise NotFound("instance", instance_id)
            access.check_instance_visible(actor, instance, tx.task_organisations(instance_id))
            if not (actor.is_admin or actor.has(Role.COORDINATOR)):
                raise NotPermitted(
                    actor.login, "retry", f"instance {instance_id}", "the coordinator and administrators retry"
                )
            if instance.status != InstanceStatus.INCIDENT:
                raise InvalidState(f"instance {instance_id} is {instance.status.value}, not in an incident")
            tx.append_audit(
                [
                    AuditEntry(
                        self.clock.now(),
                        actor.login,
                        actor.organisation,
                        "instance.retried",
                        instance_id=instance_id,
                        details={"incident": instance.incident},
                    )
                ]
            )
        return self.fire_timers(instance_id, actor, background=True)

    # -- internals ------------------------------------------------------------------------------

    def _script_engine(
        self, tx: Tx, compiled: CompiledDefinition, instance: InstanceRecord, actor: Actor
    ) -> AggloScriptEngine:
        script_engine: AggloScriptEngine

        def call_service(task: Any) -> bool:
            element_id = task.task_spec.bpmn_id
            implementation = compiled.services.get(element_id)
            if implementation is None:
                raise StepFailed(element_id, "service task has no implementation")
            handler = self.services.resolve(implementation)
            if handler is None:
                if implementation.kind != "expression":
                    raise StepFailed(element_id, f"no handler is registered for {implementation.describe()}")
                value = script_engine.evaluate(task, implementation.value)
                if implementation.result_variable:
                    task.data[implementation.result_variable] = value
                return True
            context = ServiceContext(
                instance_id=instance.id,
                process_key=instance.process_key,
                business_key=instance.business_key,
                organisation=instance.organisation,
                element_id=element_id,
                implementation=implementation,
                variables=dict(task.data),
                now=self.clock.now(),
                actor=actor,
                tx=tx,
            )
            result = handler(context)
            if result:
                if implementation.result_variable:
                    task.data[implementation.result_variable] = dict(result)
                else:
                    task.data.update(dict(result))
            return True

        script_engine = AggloScriptEngine(
            self.sandbox,
            self.clock,
            instance_id=instance.id,
            business_key=instance.business_key,
            service_call=call_service,
        )
        return script_engine

    def _status_after(self, runtime: Runtime, has_tasks: bool, now: datetime) -> tuple[InstanceStatus, datetime | None]:
        if runtime.completed:
            return InstanceStatus.COMPLETED, now
        return (InstanceStatus.RUNNING if has_tasks else InstanceStatus.WAITING), None

    def _evaluate_attr(self, text: str | None, data: Mapping[str, Any], element_id: str, what: str) -> Any:
        if text is None or not text.strip():
            return None
        if "${" in text or "#{" in text:
            try:
                return self.sandbox.evaluate(text, data, {"now": self.clock.now})
            except AggloError as exc:
                raise StepFailed(element_id, f"{what}: {exc.message}") from exc
        return text.strip()

    def _instant(self, value: Any, now: datetime, element_id: str, what: str) -> datetime | None:
        if value is None or value == "":
            return None
        try:
            if isinstance(value, datetime):
                return ensure_utc(value)
            if isinstance(value, date):
                return ensure_utc(datetime.combine(value, datetime.max.time().replace(microsecond=0)))
            if isinstance(value, timedelta):
                return now + value
            if isinstance(value, str):
                text = value.strip()
                if ISO_DURATION.match(text):
                    return add_duration(now, text)
                if len(text) == 10:
                    return ensure_utc(
                        datetime.combine(date.fromisoformat(text), datetime.max.time().replace(microsecond=0))
                    )
                return parse_instant(text)
        except ValueError as exc:
            raise StepFailed(element_id, f"{what} {value!r} is not a date: {exc}") from exc
        raise StepFailed(element_id, f"{what} evaluated to {type(value).__name__}, not a date")

    def _project(
        self, compiled: CompiledDefinition, instance: InstanceRecord, ready: ReadyHumanTask, now: datetime
    ) -> TaskRecord:
        """Turn a ready SpiffWorkflow task into our task row: who, by when, with which form."""
        info = compiled.model.elements.get(ready.element_id) or ElementInfo(ready.element_id, ready.kind)
        data = ready.data
        eid = ready.element_id
        roles = _split(self._evaluate_attr(info.candidate_groups, data, eid, "camunda:candidateGroups"))
        users = _split(self._evaluate_attr(info.candidate_users, data, eid, "camunda:candidateUsers"))
        assignee_value = self._evaluate_attr(info.assignee, data, eid, "camunda:assignee")
        assignee = str(assignee_value).strip() if assignee_value not in (None, "") else None
        organisation: str | None
        org_rule = info.properties.get("organisation")
        if org_rule:
            value = self._evaluate_attr(org_rule, data, eid, "organisation")
            organisation = str(value).strip() if value else None
        elif Role.MOUO in roles:
            organisation = instance.organisation
        elif len(roles) == 1 and roles[0] in ROLE_HOME_ORG:
            organisation = ROLE_HOME_ORG[roles[0]]
        else:
            organisation = None
        priority_value = self._evaluate_attr(info.priority, data, eid, "camunda:priority")
        try:
            priority = int(priority_value) if priority_value not in (None, "") else DEFAULT_PRIORITY
        except (TypeError, ValueError) as exc:
            raise StepFailed(eid, f"camunda:priority {priority_value!r} is not a number") from exc
        due = self._instant(self._evaluate_attr(info.due_date, data, eid, "camunda:dueDate"), now, eid, "due date")
        follow_up = self._instant(
            self._evaluate_attr(info.follow_up_date, data, eid, "camunda:followUpDate"), now, eid, "follow-up date"
        )
        return TaskRecord(
            id=ready.task_id,
            instance_id=instance.id,
            definition_id=instance.definition_id,
            process_key=instance.process_key,
            element_id=eid,
            name=info.name,
            lane=info.lane,
            candidate_roles=roles,
            candidate_users=users,
            organisation=organisation,
            assignee=assignee,
            status=TaskStatus.OPEN,
            created_at=now,
            due_at=due,
            follow_up_at=follow_up,
            priority=priority,
            form_key=info.form.key if info.form else None,
            business_key=instance.business_key,
        )

    def _start_timers(self, compiled: CompiledDefinition, filename: str, now: datetime) -> list[StartTimerRecord]:
        records = []
        for element_id, kind, expression in compiled.model.start_timers:
            try:
                occurrence = start_timers.first(kind, expression, now, self.sandbox_evaluator(now))
            except (AggloError, ValueError) as exc:
                info = compiled.model.elements.get(element_id)
                reason = exc.message if isinstance(exc, AggloError) else str(exc)
                raise DefinitionInvalid(
                    [
                        Problem(
                            f"timer start {expression!r}: {reason}",
                            file=filename,
                            line=info.line if info else None,
                            element_id=element_id,
                        )
                    ]
                ) from exc
            records.append(
                StartTimerRecord(
                    id=f"{compiled.record.key}:{element_id}",
                    process_key=compiled.record.key,
                    definition_id=compiled.record.id,
                    element_id=element_id,
                    kind=kind,
                    expression=expression,
                    next_due_at=occurrence.due,
                    cycles_left=occurrence.cycles_left,
                    active=occurrence.due is not None,
                )
            )
        return records

    def _mirror_variable(
        self, tx: Tx, compiled: CompiledDefinition, instance_id: str, name: str, value: Any, actor: Actor, now: datetime
    ) -> None:
        """Write a deadline's date into the variable the model mirrors it to (timers re-read it)."""
        instance = tx.get_instance(instance_id)
        if instance is None or instance.status.is_final:
            return
        runtime = Runtime.restore(compiled.specs, self._script_engine(tx, compiled, instance, actor), instance.state)
        before = {t.task_id for t in runtime.human_tasks()}
        runtime.set_variables({name: value})
        _updated, _new, progress = self._settle(tx, compiled, instance, runtime, before, now)
        tx.append_audit(progress)

    def _move_deadline(
        self,
        tx: Tx,
        compiled: CompiledDefinition,
        before: DeadlineRecord,
        moved: DeadlineRecord,
        actor: Actor,
        now: datetime,
        *,
        reason: str,
    ) -> list[AuditEntry]:
        """Write a moved deadline and its task's due date; tell the performers; return the audit lines."""
        tx.update_deadline(before.id, before.version, **tracking.moved_fields(moved))
        tx.update_task(before.task_id, TaskStatus.OPEN, due_at=moved.due_at)
        task = tx.get_task(before.task_id)
        if task is not None:
            fields = self._notice_fields(tx, compiled, task, before.final_date, moved)
            fields.update(new_due=moved.final_date, reason=reason, explanation=moved.explanation)
            message = notifications.render("deadline_changed", fields)
            notes, deliveries = notify.fan_out(
                message,
                "deadline_changed",
                notify.performers(task, tx.list_users()),
                event_id=f"deadline-changed:{moved.id}:{moved.plan_version}",
                now=now,
                instance_id=task.instance_id,
                task_id=task.id,
                deadline_id=moved.id,
                fields=fields,
            )
            tx.insert_notifications(notes)
            tx.insert_deliveries(deliveries)
        return [
            AuditEntry(
                now,
                actor.login,
                actor.organisation,
                "deadline.changed",
                instance_id=before.instance_id,
                task_id=before.task_id,
                element_id=before.element_id,
                details={
                    "deadline_id": before.id,
                    "from": before.final_date.isoformat(),
                    "to": moved.final_date.isoformat(),
                    "explanation": moved.explanation,
                    "previous_explanation": before.explanation,
                    "reason": reason,
                    "original": before.original_date.isoformat(),
                },
            )
        ]

    def _notice_fields(
        self,
        tx: Tx,
        compiled: CompiledDefinition,
        task: TaskRecord,
        due: date,
        deadline: DeadlineRecord | None,
        org_names: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """The fields the Russian message templates need about a task (``org_names`` saves a
        query per task in a sweep)."""
        if org_names is not None:
            org_name = org_names.get(task.organisation or "")
        else:
            org = tx.get_organisation(task.organisation) if task.organisation else None
            org_name = org.name if org else None
        fields: dict[str, Any] = {
            "task": task.name or task.element_id,
            "process": compiled.model.label,
            "organisation": org_name or task.organisation or "—",
            "due": due,
            "url": f"{self.settings.base_url.rstrip('/')}/tasks/{task.id}",
        }
        if deadline is not None:
            fields["explanation"] = deadline.explanation
            if deadline.clause:
                fields["clause"] = deadline.clause
        return fields

    def _new_tasks(
        self,
        tx: Tx,
        compiled: CompiledDefinition,
        instance: InstanceRecord,
        readies: Sequence[ReadyHumanTask],
        now: datetime,
    ) -> tuple[list[TaskRecord], list[DeadlineRecord]]:
        """Rows for newly ready human tasks, with the deadlines their rules or due dates give."""
        tasks: list[TaskRecord] = []
        deadlines: list[DeadlineRecord] = []
        for ready in readies:
            task = self._project(compiled, instance, ready, now)
            info = compiled.model.elements.get(ready.element_id)
            if info is not None and (task.due_at is not None or tracking.DEADLINE_PROPERTY in info.properties):
                try:
                    deadline = tracking.new_deadline(
                        task, compiled.model, info, ready.data, now, self.calendar_for(tx), self._new_id
                    )
                except AggloError as exc:
                    raise StepFailed(ready.element_id, f"deadline: {exc.message}") from exc
                if deadline is not None:
                    task = replace(task, due_at=deadline.due_at)
                    deadlines.append(deadline)
                    if deadline.variable:
                        # The model mirrors the date into a variable (e.g. for a boundary timer).
                        ready.data[deadline.variable] = deadline.final_date.isoformat()
            tasks.append(task)
        return tasks, deadlines

    def _view(self, compiled: CompiledDefinition, task: TaskRecord, deadline: DeadlineRecord | None = None) -> TaskView:
        info = compiled.model.elements.get(task.element_id)
        overdue = task.status == TaskStatus.OPEN and task.due_at is not None and task.due_at < self.clock.now()
        return TaskView(
            task,
            compiled.form_schema(task.element_id),
            info.documentation if info else None,
            info.clause if info else None,
            compiled.model.name,
            deadline,
            overdue,
        )

    def _step_entries(self, runtime: Runtime, instance: InstanceRecord, now: datetime) -> list[AuditEntry]:
        return [
            AuditEntry(
                now,
                SYSTEM_ACTOR.login,
                None,
                "element.completed",
                instance_id=instance.id,
                element_id=step.element_id,
                details={"kind": step.kind, "name": step.name},
            )
            for step in runtime.steps
            if step.kind not in ("UserTask", "ManualTask")
        ]

    def _created_entries(self, tasks: Sequence[TaskRecord], now: datetime) -> list[AuditEntry]:
        return [
            AuditEntry(
                now,
                SYSTEM_ACTOR.login,
                t.organisation,
                "task.created",
                instance_id=t.instance_id,
                task_id=t.id,
                element_id=t.element_id,
                details={
                    "name": t.name,
                    "candidate_roles": list(t.candidate_roles),
                    "organisation": t.organisation,
                    "assignee": t.assignee,
                    "due_at": _iso(t.due_at),
                },
            )
            for t in tasks
        ]
