"""Read models for people: the execution-discipline report, a diagram's state, a month of deadlines.

All of them are computed from our own tables (tasks, deadlines, the audit trail), filtered by
what the actor may see, with no I/O of their own: the web layer renders them as HTML, JSON,
CSV or XLSX.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from . import access
from .clock import REGION_TZ
from .directory import Actor
from .errors import BadInput, NotFound
from .ports import AuditQuery, DeadlineQuery
from .records import DeadlineRecord, DeadlineStatus, TaskQuery, TaskStatus

if TYPE_CHECKING:
    from .engine import Engine

REPORT_LIMIT = 100_000


@dataclass(frozen=True)
class OverdueItem:
    """One overdue task of the execution-discipline report."""

    organisation: str | None
    organisation_name: str
    process_key: str
    process_name: str | None
    task_id: str
    task_name: str | None
    instance_id: str
    business_key: str | None
    assignee: str | None
    due_date: date
    original_date: date
    days_late: int
    working_days_late: int
    clause: str | None
    explanation: str
    escalated: bool
    extensions: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "organisation": self.organisation,
            "organisation_name": self.organisation_name,
            "process_key": self.process_key,
            "process_name": self.process_name,
            "task_id": self.task_id,
            "task_name": self.task_name,
            "instance_id": self.instance_id,
            "business_key": self.business_key,
            "assignee": self.assignee,
            "due_date": self.due_date.isoformat(),
            "original_date": self.original_date.isoformat(),
            "days_late": self.days_late,
            "working_days_late": self.working_days_late,
            "clause": self.clause,
            "explanation": self.explanation,
            "escalated": self.escalated,
            "extensions": self.extensions,
        }


@dataclass(frozen=True)
class OverdueGroup:
    organisation: str | None
    organisation_name: str
    items: list[OverdueItem] = field(default_factory=list)

    @property
    def max_days_late(self) -> int:
        return max((i.days_late for i in self.items), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "organisation": self.organisation,
            "organisation_name": self.organisation_name,
            "count": len(self.items),
            "max_days_late": self.max_days_late,
            "items": [i.to_dict() for i in self.items],
        }


ROLE_WIDE = "(по роли)"


def overdue(engine: Engine, actor: Actor, organisation: str | None = None) -> list[OverdueGroup]:
    """Open tasks past their deadline, grouped by organisation, the worst first."""
    now = engine.clock.now()
    today = now.astimezone(REGION_TZ).date()
    query = DeadlineQuery(status=DeadlineStatus.OPEN, due_before=now, limit=REPORT_LIMIT)
    if not access.sees_all_instances(actor):
        if organisation not in (None, actor.organisation):
            return []  # a filter narrows what one sees; it never widens it
        query = DeadlineQuery(
            status=DeadlineStatus.OPEN, due_before=now, organisation=actor.organisation, limit=REPORT_LIMIT
        )
    elif organisation:
        query = DeadlineQuery(status=DeadlineStatus.OPEN, due_before=now, organisation=organisation, limit=REPORT_LIMIT)
    with engine.store.transaction() as tx:
        deadlines = tx.list_deadlines(query)
        names = {o.code: o.short_name or o.name for o in tx.list_organisations()}
        calendar = engine.calendar_for(tx)
        groups: dict[str | None, OverdueGroup] = {}
        for d in deadlines:
            task = tx.get_task(d.task_id)
            if task is None or task.status != TaskStatus.OPEN:
                continue
            compiled = engine._compiled_for(tx, task.definition_id)
            org = d.organisation or task.organisation
            label = names.get(org, org) if org else ROLE_WIDE
            item = OverdueItem(
                organisation=org,
                organisation_name=label or ROLE_WIDE,
                process_key=d.process_key,
                process_name=compiled.model.name,
                task_id=task.id,
                task_name=task.name,
                instance_id=task.instance_id,
                business_key=task.business_key,
                assignee=task.assignee,
                due_date=d.final_date,
                original_date=d.original_date,
                days_late=max((today - d.final_date).days, 0),
                working_days_late=max(calendar.working_days_between(d.final_date, today), 0),
                clause=d.clause,
                explanation=d.explanation,
                escalated=d.escalated_at is not None,
                extensions=d.extensions,
            )
            groups.setdefault(org, OverdueGroup(org, item.organisation_name)).items.append(item)
    for group in groups.values():
        group.items.sort(key=lambda i: (-i.days_late, i.task_name or "", i.task_id))
    return sorted(groups.values(), key=lambda g: (-len(g.items), -g.max_days_late, g.organisation_name))


@dataclass(frozen=True)
class DiagramState:
    """Which BPMN elements of an instance are done, active and overdue (for bpmn-js markers)."""

    instance_id: str
    definition_id: str
    completed: list[str]
    active: list[str]
    overdue: list[str]
    counts: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "instance_id": self.instance_id,
            "definition_id": self.definition_id,
            "completed": self.completed,
            "active": self.active,
            "overdue": self.overdue,
            "counts": self.counts,
        }


def diagram_state(engine: Engine, instance_id: str, actor: Actor) -> DiagramState:
    now = engine.clock.now()
    with engine.store.transaction() as tx:
        instance = tx.get_instance(instance_id)
        if instance is None:
            raise NotFound("instance", instance_id)
        access.check_instance_visible(actor, instance, tx.task_organisations(instance_id))
        history = tx.list_audit(AuditQuery(instance_id=instance_id, limit=REPORT_LIMIT))
        open_tasks = tx.list_tasks(
            TaskQuery(status=TaskStatus.OPEN, instance_id=instance_id, all_tasks=True, limit=REPORT_LIMIT)
        )
    counts: dict[str, int] = defaultdict(int)
    for entry in history:
        if entry.element_id and entry.action in ("element.completed", "task.completed"):
            counts[entry.element_id] += 1
    active = sorted({t.element_id for t in open_tasks})
    overdue_ids = sorted({t.element_id for t in open_tasks if t.due_at is not None and t.due_at < now})
    return DiagramState(
        instance_id, instance.definition_id, sorted(counts), active, overdue_ids, dict(sorted(counts.items()))
    )


@dataclass(frozen=True)
class CalendarEntry:
    deadline: DeadlineRecord
    task_name: str | None
    process_name: str | None
    overdue: bool


def month(engine: Engine, actor: Actor, year: int, month_no: int) -> dict[date, list[CalendarEntry]]:
    """Every deadline the actor sees whose current date falls in the month, by day."""
    try:
        first = date(year, month_no, 1)
        after = date(year + (month_no == 12), month_no % 12 + 1, 1)
    except ValueError as exc:
        raise BadInput(f"there is no month {month_no} of year {year}: {exc}", field="month") from exc
    now = engine.clock.now()
    # due_at is a moment on the final date (region time); a day's margin either side finds them all.
    query = DeadlineQuery(
        status=None,
        organisation=None if access.sees_all_instances(actor) else actor.organisation,
        due_after=datetime.combine(first - timedelta(days=1), time(), REGION_TZ).astimezone(UTC),
        due_before=datetime.combine(after + timedelta(days=1), time(), REGION_TZ).astimezone(UTC),
        limit=REPORT_LIMIT,
    )
    days: dict[date, list[CalendarEntry]] = defaultdict(list)
    with engine.store.transaction() as tx:
        for d in tx.list_deadlines(query):
            if not first <= d.final_date < after or d.status == DeadlineStatus.CANCELLED:
                continue
            task = tx.get_task(d.task_id)
            if task is None:
                continue
            compiled = engine._compiled_for(tx, task.definition_id)
            late = d.status == DeadlineStatus.OPEN and d.due_at < now
            days[d.final_date].append(CalendarEntry(d, task.name, compiled.model.name, late))
    return dict(days)
