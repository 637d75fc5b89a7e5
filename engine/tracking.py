"""A task's deadline over its life: created from the rule in the BPMN, rescheduled when its anchor
moves or an extension is granted, reminded on the production calendar.

Pure functions: they take records, the calendar and ``now`` and return new records; the
engine writes them in the command's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Any

from .calendar import ProductionCalendar
from .clock import REGION_TZ
from .deadlines import TASK_CREATED, ComputedDeadline, DeadlineRule, compute, end_of_term, parse_rule
from .errors import BadInput
from .model import ElementInfo, ProcessModel
from .records import DeadlineRecord, TaskRecord
from .reminders import ReminderPolicy, end_of_day, next_point

DEADLINE_PROPERTY = "deadline"
VARIABLE_PROPERTY = "deadline.variable"


def anchor_date(value: Any, name: str) -> date:
    """A date from an anchor variable: a date, a date-time (its day in the region), an ISO string,
    or a roadmap term ("май 2019", "20.09.2019", "февраль - август 2019": its last day)."""
    if isinstance(value, datetime):
        return value.astimezone(REGION_TZ).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            if len(text) >= 10 and text[4] == "-":
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
                return parsed.astimezone(REGION_TZ).date() if parsed.tzinfo else parsed.date()
        except ValueError:
            pass
        try:
            return end_of_term(text)
        except BadInput as exc:
            raise BadInput(f"variable {name!r} = {value!r} is neither a date nor a term", field=name) from exc
    raise BadInput(f"variable {name!r} is missing or not a date (it anchors a deadline)", field=name)


def policy_for(process: ProcessModel, element: ElementInfo) -> ReminderPolicy:
    return ReminderPolicy.from_properties(process.properties, element.properties)


def rule_of(element: ElementInfo) -> DeadlineRule | None:
    text = element.properties.get(DEADLINE_PROPERTY)
    return parse_rule(text) if text and text.strip() else None


def compute_for(
    rule: DeadlineRule, data: Mapping[str, Any], created: datetime, calendar: ProductionCalendar
) -> tuple[date | None, ComputedDeadline]:
    """The anchor's value and the computed deadline for a rule, given the task's data."""
    if rule.kind == "fixed":
        return None, compute(rule, None, calendar)
    if rule.anchor == TASK_CREATED:
        anchor = created.astimezone(REGION_TZ).date()
    else:
        anchor = anchor_date(data.get(rule.anchor), rule.anchor)
    return anchor, compute(rule, anchor, calendar)


def plan(
    deadline: DeadlineRecord, calendar: ProductionCalendar, *, after: datetime | None, created: datetime
) -> DeadlineRecord:
    """The deadline with its next reminder set (or none left)."""
    point = next_point(
        ReminderPolicy.from_dict(deadline.policy), deadline.final_date, calendar, after=after, created=created
    )
    return replace(
        deadline, next_reminder_at=point.at if point else None, next_reminder_key=point.key if point else None
    )


def new_deadline(
    task: TaskRecord,
    process: ProcessModel,
    element: ElementInfo,
    data: Mapping[str, Any],
    now: datetime,
    calendar: ProductionCalendar,
    new_id: Callable[[], str],
) -> DeadlineRecord | None:
    """The deadline of a freshly created task: from its rule, or from ``camunda:dueDate``."""
    policy = policy_for(process, element)
    rule = rule_of(element)
    if rule is not None:
        anchor_value, computed = compute_for(rule, data, now, calendar)
        rule_text, anchor, clause = rule.text, rule.anchor or None, rule.clause or element.clause
        raw, final, explanation = computed.raw, computed.final, computed.explanation
    elif task.due_at is not None:
        final = task.due_at.astimezone(REGION_TZ).date()
        rule_text, anchor, anchor_value, clause, raw = "camunda:dueDate", None, None, element.clause, final
        explanation = f"срок задан в модели процесса: {task.due_at.astimezone(REGION_TZ):%d.%m.%Y %H:%M}"
    else:
        return None
    due_at = end_of_day(final) if rule is not None else task.due_at
    assert due_at is not None
    deadline = DeadlineRecord(
        id=new_id(),
        instance_id=task.instance_id,
        task_id=task.id,
        element_id=task.element_id,
        process_key=task.process_key,
        organisation=task.organisation,
        rule=rule_text,
        anchor=anchor,
        anchor_value=anchor_value,
        clause=clause,
        raw_date=raw,
        final_date=final,
        due_at=due_at,
        explanation=explanation,
        original_date=final,
        original_explanation=explanation,
        policy=policy.to_dict(),
        created_at=now,
        variable=element.properties.get(VARIABLE_PROPERTY) or None,
        updated_at=now,
    )
    return plan(deadline, calendar, after=None, created=now)


def reschedule(
    deadline: DeadlineRecord,
    *,
    final: date,
    raw: date,
    explanation: str,
    now: datetime,
    calendar: ProductionCalendar,
    anchor_value: date | None = None,
    extension: bool = False,
) -> DeadlineRecord:
    """Move a deadline (anchor change, extension, calendar import) and re-plan its reminders.

    The plan version increases, so reminders of the new plan are new reminders; advance
    reminders already in the past are skipped, and a deadline moved into the past escalates.
    """
    moved = replace(
        deadline,
        final_date=final,
        raw_date=raw,
        due_at=end_of_day(final),
        explanation=explanation,
        anchor_value=anchor_value if anchor_value is not None else deadline.anchor_value,
        plan_version=deadline.plan_version + 1,
        escalated_at=None,
        extensions=deadline.extensions + (1 if extension else 0),
        updated_at=now,
        version=deadline.version + 1,
    )
    return plan(moved, calendar, after=None, created=now)


def recompute(
    deadline: DeadlineRecord, data: Mapping[str, Any], now: datetime, calendar: ProductionCalendar
) -> tuple[DeadlineRecord, ComputedDeadline] | None:
    """The deadline recomputed from its rule with current data, if its date changed."""
    if deadline.rule == "camunda:dueDate" or deadline.status != "open":
        return None
    rule = parse_rule(deadline.rule)
    anchor_value, computed = compute_for(rule, data, deadline.created_at, calendar)
    if computed.final == deadline.final_date and computed.explanation == deadline.explanation:
        return None
    moved = reschedule(
        deadline,
        final=computed.final,
        raw=computed.raw,
        explanation=computed.explanation,
        now=now,
        calendar=calendar,
        anchor_value=anchor_value,
    )
    return moved, computed


MOVED_FIELDS = (
    "final_date",
    "raw_date",
    "due_at",
    "explanation",
    "anchor_value",
    "plan_version",
    "escalated_at",
    "extensions",
    "updated_at",
    "version",
    "next_reminder_at",
    "next_reminder_key",
)


def moved_fields(deadline: DeadlineRecord) -> dict[str, Any]:
    """The columns a reschedule changes (for a guarded update)."""
    return {name: getattr(deadline, name) for name in MOVED_FIELDS}


def recompute_from_anchor(
    deadline: DeadlineRecord, now: datetime, calendar: ProductionCalendar
) -> DeadlineRecord | None:
    """The deadline recomputed on a changed calendar from its stored anchor (None if unchanged,
    not rule-based, or extended by hand: an approved extension is a decision, not a rule)."""
    if deadline.rule == "camunda:dueDate" or deadline.status != "open" or deadline.extensions:
        return None
    rule = parse_rule(deadline.rule)
    computed = compute(rule, deadline.anchor_value, calendar)
    if computed.final == deadline.final_date and computed.explanation == deadline.explanation:
        return None
    return reschedule(
        deadline, final=computed.final, raw=computed.raw, explanation=computed.explanation, now=now, calendar=calendar
    )
