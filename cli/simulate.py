"""``agglo simulate``: the yearly cycle on a virtual clock, in seconds.

The Ministry starts the Day of the agglomeration; scripted people act on their tasks, some
late on purpose; the worker's sweeps (timers, reminders, escalations) run whenever something
falls due; in November the coordinator runs the annual results. Everything goes through the
engine on an in-memory store; the timeline is read back from the audit log.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from engine.clock import REGION_TZ, VirtualClock
from engine.directory import SYSTEM_ACTOR, Actor, Membership, Role
from engine.engine import Engine
from engine.memory import MemoryStore
from engine.passwords import Passwords
from engine.ports import AuditQuery, DeadlineQuery, ExtensionQuery, InstanceQuery
from engine.records import AuditEntry, ExtensionStatus, InstanceStatus, TaskQuery, TaskRecord
from engine.settings import Settings

from .demo import REGIONAL_ORGANISATIONS, demo_users, load_process, municipalities, process_files

MINISTRY = Actor("ministry", "minobr", frozenset({Role.MINISTRY}))
COORDINATOR = Actor("coordinator", "rcoko", frozenset({Role.COORDINATOR}))
ADMIN = Actor("admin", "rcoko", frozenset({Role.ADMIN}))
ACT_HOUR = 11


def local(day: date, hour: int = ACT_HOUR) -> datetime:
    return datetime.combine(day, time(hour), REGION_TZ).astimezone(UTC)


def sample(schema: Mapping[str, Any] | None, today: date, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Valid data for a form: every property filled from its type, format and constraints."""
    if not schema:
        return dict(overrides or {})
    data = {
        name: _value(prop, today, name)
        for name, prop in (schema.get("properties") or {}).items()
        if isinstance(prop, dict) and not prop.get("readOnly")
    }
    data.update(overrides or {})
    return data


def _value(prop: Mapping[str, Any], today: date, name: str) -> Any:
    if "enum" in prop:
        return prop["enum"][0]
    if "const" in prop:
        return prop["const"]
    kind = prop.get("type")
    if kind == "integer":
        return int(prop.get("minimum", 1))
    if kind == "number":
        return float(prop.get("minimum", 1))
    if kind == "boolean":
        return True
    if kind == "array":
        items = prop.get("items") or {}
        return [_value(items, today, name) for _ in range(max(int(prop.get("minItems", 1)), 1))]
    if kind == "object":
        return {k: _value(v, today, k) for k, v in (prop.get("properties") or {}).items() if isinstance(v, dict)}
    if prop.get("format") == "date":
        return today.isoformat()
    if prop.get("format") == "email":
        return "specialist@example.org"
    if prop.get("format") in ("uri", "url"):
        return "https://rcoko74.example/agglomeration"
    text = f"{prop.get('title') or name}: сведения"
    pattern = prop.get("pattern")
    if pattern and not re.search(str(pattern), text):
        candidates = ["https://rcoko74.example/agglomeration", f"01/{today.year}-1", "1", "Текст", "a"]
        text = next((c for c in candidates if re.search(str(pattern), c)), text)
    limit = prop.get("maxLength")
    return text[: int(limit)] if limit else text


@dataclass
class Plan:
    """When each person acts: working days relative to the task's deadline (negative: early)."""

    offsets: dict[str, int] = field(
        default_factory=lambda: {
            "Task_SubmitProposal": -5,
            "Task_DraftProgramme": 4,
            "Task_HoldDay": 0,
            "Task_RecordResolution": -2,
            "Task_SubmitProposals": -3,
            "Task_PrepareAnalytics": -1,
        }
    )
    late_member_offset: int = 2
    extension_for: tuple[str, ...] = ("Task_PrepareAnalytics",)
    extension_days: int = 7


@dataclass
class Simulation:
    year: int
    day_date: date
    members: list[str]
    move_day_to: date | None = None
    move_on: date | None = None
    plan: Plan = field(default_factory=Plan)

    def __post_init__(self) -> None:
        self.clock = VirtualClock(local(date(self.year, 6, 3), 9))
        self.engine = Engine(MemoryStore(), self.clock, settings=Settings(base_url="https://agglo.example"))
        self.acted: set[str] = set()
        self.requested: set[str] = set()
        self.day_instance: str | None = None
        self.results_started = False
        self.moved = False

    # -- set-up ------------------------------------------------------------------------------
    def setup(self) -> None:
        munis = municipalities()
        passwords = Passwords(time_cost=1, memory_kib=8192)
        users = [
            u.__class__(u.login, u.name, u.organisation, u.roles, None, True, f"{u.login}@example.org")
            for u in demo_users(munis, passwords.hash("simulation"))
        ]
        memberships = [
            Membership(m.organisation.code, m.member_since, None, "registry")
            for m in munis
            if m.member_since is not None
        ]
        self.engine.import_directory(
            SYSTEM_ACTOR, REGIONAL_ORGANISATIONS + [m.organisation for m in munis], users, memberships
        )
        for path in process_files():
            source, resources = load_process(path)
            self.engine.deploy(source, f"{path.parent.name}/{path.name}", SYSTEM_ACTOR, resources)

    def today(self) -> date:
        return self.clock.now().astimezone(REGION_TZ).date()

    def working_day(self, day: date, offset: int) -> date:
        calendar = self.engine.calendar
        return (
            calendar.add_working_days(calendar.next_working_day(day), offset)
            if offset
            else calendar.next_working_day(day)
        )

    # -- people ------------------------------------------------------------------------------
    def actor_for(self, task: TaskRecord) -> Actor:
        if Role.MOUO in task.candidate_roles and task.organisation:
            return Actor(task.organisation, task.organisation, frozenset({Role.MOUO}))
        if Role.MINISTRY in task.candidate_roles:
            return MINISTRY
        return COORDINATOR

    def act_at(self, task: TaskRecord) -> datetime:
        deadline = self.engine.deadlines(ADMIN, DeadlineQuery(task_id=task.id))
        offset = self.plan.offsets.get(task.element_id)
        if deadline and offset is not None:
            if task.organisation == self.members[-1] and task.element_id.startswith("Task_Submit"):
                offset = self.plan.late_member_offset  # this municipality is late on purpose
            if task.element_id in self.plan.extension_for and task.id in self.requested:
                offset = -1
            return local(self.working_day(deadline[0].final_date, offset))
        # Tasks without a rule (approvals, publication ...) are done the next working day.
        return local(self.working_day(task.created_at.astimezone(REGION_TZ).date() + timedelta(days=1), 0))

    def pending(self) -> list[tuple[datetime, str, Any]]:
        actions: list[tuple[datetime, str, Any]] = []
        with self.engine.store.transaction() as tx:
            tasks = tx.list_tasks(TaskQuery(all_tasks=True, limit=10_000))
            extensions = tx.list_extensions(ExtensionQuery(status=ExtensionStatus.PENDING))
        for task in tasks:
            if task.element_id in self.plan.extension_for and task.id not in self.requested:
                deadline = self.engine.deadlines(ADMIN, DeadlineQuery(task_id=task.id))
                if deadline:
                    actions.append((local(self.working_day(deadline[0].final_date, -3)), "extend", task))
                    continue
            actions.append((max(self.act_at(task), self.clock.now()), "complete", task))
        for request in extensions:
            actions.append(
                (
                    max(
                        local(
                            self.working_day(request.requested_at.astimezone(REGION_TZ).date() + timedelta(days=1), 0)
                        ),
                        self.clock.now(),
                    ),
                    "decide",
                    request,
                )
            )
        if self.move_day_to and self.move_on and not self.moved and self.day_instance:
            actions.append((local(self.move_on, 10), "move", None))
        if not self.results_started and self.day_instance and self.finished(self.day_instance):
            actions.append((max(local(date(self.year, 11, 5), 10), self.clock.now()), "results", None))
        return actions

    def finished(self, instance_id: str) -> bool:
        with self.engine.store.transaction() as tx:
            instance = tx.get_instance(instance_id)
        return instance is not None and instance.status == InstanceStatus.COMPLETED

    def perform(self, kind: str, item: Any) -> None:
        engine = self.engine
        if kind == "complete":
            task: TaskRecord = item
            view = engine.task(task.id, ADMIN)
            overrides = (
                {"awards_planned": True} if "awards_planned" in ((view.form or {}).get("properties") or {}) else {}
            )
            engine.complete(task.id, self.actor_for(task), sample(view.form, self.today(), overrides))
        elif kind == "extend":
            task = item
            deadline = engine.deadlines(ADMIN, DeadlineQuery(task_id=task.id))[0]
            engine.request_extension(
                task.id,
                self.actor_for(task),
                "участники ещё не прислали материалы",
                deadline.final_date + timedelta(days=self.plan.extension_days),
            )
            self.requested.add(task.id)
        elif kind == "decide":
            engine.decide_extension(
                item.id, MINISTRY if item.approver_role == Role.MINISTRY else COORDINATOR, True, "согласовано"
            )
        elif kind == "move":
            assert self.day_instance and self.move_day_to
            engine.set_variables(self.day_instance, MINISTRY, {"day_date": self.move_day_to.isoformat()})
            self.moved = True
        elif kind == "results":
            engine.start(
                "annual-results",
                COORDINATOR,
                {"year": self.year, "members": self.members, "proposals_due": date(self.year, 11, 29).isoformat()},
            )
            self.results_started = True

    def sweep(self) -> None:
        while True:
            done = (
                self.engine.sweep_start_timers("sim").done
                + self.engine.sweep_timers("sim").done
                + self.engine.sweep_reminders("sim").done
            )
            if not done:
                return

    def next_time(self, actions: list[tuple[datetime, str, Any]]) -> datetime | None:
        candidates = [at for at, _, _ in actions]
        with self.engine.store.transaction() as tx:
            candidates += [
                d.next_reminder_at
                for d in tx.list_deadlines(DeadlineQuery(limit=100_000))
                if d.next_reminder_at is not None
            ]
            candidates += [
                i.next_due_at
                for i in tx.list_instances(InstanceQuery(limit=10_000))
                if i.next_due_at is not None and not i.status.is_final
            ]
        future = [c for c in candidates if c is not None]
        return min(future) if future else None

    # -- the run -------------------------------------------------------------------------------
    def run(self, limit: int = 5000) -> list[AuditEntry]:
        self.setup()
        start = {
            "day_date": self.day_date.isoformat(),
            "day_place": "г. Челябинск, ГБУ ДПО РЦОКИО",
            "day_form": "in_person",
            "day_order_number": f"01/{self.year}-1",
            "day_order_date": self.today().isoformat(),
            "members": self.members,
        }
        self.day_instance = self.engine.start("day", MINISTRY, start, business_key=f"day-{self.year}").instance.id
        end = local(date(self.year, 12, 31), 18)
        for _ in range(limit):
            actions = self.pending()
            when = self.next_time(actions)
            if when is None or when > end:
                break
            if when > self.clock.now():
                self.clock.set(when)
            self.sweep()
            for at, kind, item in sorted(self.pending(), key=lambda a: (a[0], a[1])):
                if at <= self.clock.now():
                    self.perform(kind, item)
            self.sweep()
        return self.engine.audit(ADMIN, AuditQuery(limit=100_000))


ACTIONS_RU = {
    "instance.started": "процесс запущен",
    "instance.completed": "процесс завершён",
    "task.created": "задача",
    "task.completed": "выполнено",
    "deadline.reminder": "напоминание",
    "deadline.overdue": "просрочка",
    "deadline.escalated": "эскалация",
    "extension.requested": "запрос продления",
    "extension.decided": "решение",
    "deadline.changed": "срок изменён",
    "instance.variables_changed": "изменены данные",
}


def timeline(sim: Simulation, entries: list[AuditEntry]) -> list[dict[str, Any]]:
    """The audit log as a readable timeline of the simulated year."""
    with sim.engine.store.transaction() as tx:
        tasks = {t.id: t for t in tx.list_tasks(TaskQuery(status=None, all_tasks=True, limit=100_000))}
        deadlines = {d.task_id: d for d in tx.list_deadlines(DeadlineQuery(status=None, limit=100_000))}
    rows = []
    for entry in entries:
        if entry.action not in ACTIONS_RU:
            continue
        task = tasks.get(entry.task_id or "")
        deadline = deadlines.get(entry.task_id or "")
        detail = ""
        if entry.action == "task.created" and deadline is not None:
            detail = f"срок {deadline.original_date:%d.%m.%Y}: {deadline.original_explanation}"
        elif entry.action in ("deadline.reminder", "deadline.overdue", "deadline.escalated"):
            kind = {
                "before": "до срока",
                "due_today": "срок сегодня",
                "overdue": "просрочено",
                "escalation": "эскалация",
            }[entry.details["kind"]]
            days = entry.details.get("days")
            detail = (
                f"{kind}{f', {days} раб. дн.' if days and entry.details['kind'] != 'due_today' else ''} "
                f"(срок {date.fromisoformat(entry.details['due']):%d.%m.%Y}) → {', '.join(entry.details['recipients'])}"
            )
        elif entry.action == "deadline.changed":
            detail = f"{entry.details['from']} → {entry.details['to']}: {entry.details['reason']}"
        elif entry.action == "extension.requested":
            detail = f"до {entry.details['proposed']}: {entry.details['reason']}"
        elif entry.action == "extension.decided":
            detail = f"{'одобрено' if entry.details['approved'] else 'отказано'} {entry.details.get('new_date') or ''}"
        elif entry.action == "instance.started":
            detail = str(entry.details.get("process_key"))
        elif entry.action == "instance.variables_changed":
            detail = ", ".join(f"{k}: {v['from']} → {v['to']}" for k, v in entry.details["changes"].items())
        rows.append(
            {
                "at": entry.at.astimezone(REGION_TZ).isoformat(timespec="minutes"),
                "event": entry.action,
                "what": ACTIONS_RU[entry.action],
                "task": task.name if task else None,
                "element_id": entry.element_id,
                "organisation": (task.organisation if task else None) or entry.organisation,
                "actor": entry.actor,
                "late": bool(entry.action == "task.completed" and task and task.due_at and entry.at > task.due_at),
                "detail": detail,
            }
        )
    return rows


def members_of(year: int, count: int) -> list[str]:
    eligible = [m.organisation.code for m in municipalities() if m.member_since is not None and m.member_since < year]
    return eligible[:count]
