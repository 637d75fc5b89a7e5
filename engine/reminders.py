"""Reminder policies and schedules: when a deadline's reminders and its escalation fire.

A policy is declared in the BPMN as camunda properties, on the process (defaults for every
task) and on a task (overrides)::

    reminders.before       = 7,3,1     working days before the deadline ("none" disables)
    reminders.on_due_day   = true      a reminder on the day itself
    reminders.overdue_every = 1        every N working days while overdue (0 = never)
    escalation.after       = 3         working days overdue before escalating (0 = never)
    escalation.to          = ministry  the role escalated to (default: the supervising role)

Reminders go out at the start of a working day in the region's time zone (``send_hour``);
every point of the schedule is a working day, so nothing falls on a weekend or holiday, and a
point that comes due during quiet hours is delayed to their end, never dropped.
Everything here is pure: the calendar, the due date and the times are inputs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from .calendar import ProductionCalendar
from .clock import REGION_TZ
from .directory import Role
from .errors import BadInput

Kind = Literal["before", "due_today", "overdue", "escalation"]

# Who supervises whom, for escalation and for approving extensions (REG 5.1-5.5: the Ministry
# organises, the coordinator runs the work with the МОУО).
SUPERVISOR: dict[str, str] = {
    Role.MOUO: Role.COORDINATOR,
    Role.COORDINATOR: Role.MINISTRY,
    Role.EXPERT: Role.COORDINATOR,
    Role.MINISTRY: Role.MINISTRY,
}

MAX_OVERDUE_REMINDERS = 500


def supervising_role(candidate_roles: tuple[str, ...]) -> str:
    """The role that supervises a task's performers (a МОУО is supervised by the coordinator ...)."""
    for role in (Role.MOUO, Role.EXPERT, Role.COORDINATOR, Role.MINISTRY):
        if role in candidate_roles:
            return SUPERVISOR[role]
    return Role.COORDINATOR


@dataclass(frozen=True)
class ReminderPolicy:
    before: tuple[int, ...] = (7, 3, 1)
    on_due_day: bool = True
    overdue_every: int = 1
    escalation_after: int = 3
    escalation_to: str | None = None
    send_hour: int = 9

    @classmethod
    def from_properties(cls, *layers: Mapping[str, str]) -> ReminderPolicy:
        """Read the policy from property maps, later layers overriding earlier ones
        (process properties, then the task's). Raise :class:`BadInput` naming a bad property."""
        merged: dict[str, str] = {}
        for layer in layers:
            merged.update({k: v for k, v in layer.items() if k.startswith(("reminders.", "escalation."))})
        known = {
            "reminders.before",
            "reminders.on_due_day",
            "reminders.overdue_every",
            "escalation.after",
            "escalation.to",
            "reminders.hour",
        }
        for key in merged:
            if key not in known:
                raise BadInput(f"unknown property {key!r}; known: {', '.join(sorted(known))}", field=key)
        policy = cls()
        values: dict[str, Any] = {}
        if "reminders.before" in merged:
            raw = merged["reminders.before"].strip().lower()
            if raw in ("", "none", "нет"):
                values["before"] = ()
            else:
                try:
                    days = tuple(
                        sorted({int(part) for part in raw.replace(";", ",").split(",") if part.strip()}, reverse=True)
                    )
                except ValueError as exc:
                    raise BadInput(
                        f"reminders.before must list working days, e.g. 7,3,1: {raw!r}", field="reminders.before"
                    ) from exc
                if any(d <= 0 or d > 365 for d in days):
                    raise BadInput("reminders.before days must be between 1 and 365", field="reminders.before")
                values["before"] = days
        if "reminders.on_due_day" in merged:
            values["on_due_day"] = _bool(merged["reminders.on_due_day"], "reminders.on_due_day")
        for key, attr in (
            ("reminders.overdue_every", "overdue_every"),
            ("escalation.after", "escalation_after"),
            ("reminders.hour", "send_hour"),
        ):
            if key in merged:
                values[attr] = _int(merged[key], key, 0, 365 if attr != "send_hour" else 23)
        if "escalation.to" in merged:
            role = merged["escalation.to"].strip()
            values["escalation_to"] = role or None
        return ReminderPolicy(**{**policy.__dict__, **values})

    def to_dict(self) -> dict[str, Any]:
        return {
            "before": list(self.before),
            "on_due_day": self.on_due_day,
            "overdue_every": self.overdue_every,
            "escalation_after": self.escalation_after,
            "escalation_to": self.escalation_to,
            "send_hour": self.send_hour,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReminderPolicy:
        return cls(
            before=tuple(data.get("before", (7, 3, 1))),
            on_due_day=bool(data.get("on_due_day", True)),
            overdue_every=int(data.get("overdue_every", 1)),
            escalation_after=int(data.get("escalation_after", 3)),
            escalation_to=data.get("escalation_to"),
            send_hour=int(data.get("send_hour", 9)),
        )


def _bool(value: str, key: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "yes", "1", "да"):
        return True
    if text in ("false", "no", "0", "нет"):
        return False
    raise BadInput(f"{key} must be true or false, not {value!r}", field=key)


def _int(value: str, key: str, low: int, high: int) -> int:
    try:
        number = int(value.strip())
    except ValueError as exc:
        raise BadInput(f"{key} must be a whole number, not {value!r}", field=key) from exc
    if not low <= number <= high:
        raise BadInput(f"{key} must be between {low} and {high}", field=key)
    return number


@dataclass(frozen=True)
class ReminderPoint:
    """One scheduled reminder: ``key`` identifies it within a deadline's plan."""

    key: str
    kind: Kind
    day: date
    days: int
    at: datetime


def local_instant(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), REGION_TZ).astimezone(UTC)


def end_of_day(day: date) -> datetime:
    """The last second of ``day`` in the region: a deadline "by 21.08" means by its end."""
    return datetime.combine(day, time(23, 59, 59), REGION_TZ).astimezone(UTC)


def points(policy: ReminderPolicy, due: date, calendar: ProductionCalendar) -> Iterator[ReminderPoint]:
    """Every point of the schedule, in time order (overdue points go on, bounded)."""
    planned: list[ReminderPoint] = []
    for n in sorted(set(policy.before), reverse=True):
        day = calendar.add_working_days(due, -n)
        planned.append(ReminderPoint(f"before:{n}", "before", day, n, local_instant(day, policy.send_hour)))
    if policy.on_due_day:
        day = due if calendar.is_working_day(due) else calendar.previous_working_day(due)
        planned.append(ReminderPoint("due", "due_today", day, 0, local_instant(day, policy.send_hour)))
    if policy.escalation_after > 0:
        day = calendar.add_working_days(due, policy.escalation_after)
        # Escalate just after the same day's overdue reminder, so both are ordered.
        planned.append(
            ReminderPoint(
                "escalation",
                "escalation",
                day,
                policy.escalation_after,
                local_instant(day, policy.send_hour) + timedelta(seconds=1),
            )
        )
    overdue: Iterator[ReminderPoint] = iter(())
    if policy.overdue_every > 0:
        overdue = (
            ReminderPoint(
                f"overdue:{k * policy.overdue_every}",
                "overdue",
                day := calendar.add_working_days(due, k * policy.overdue_every),
                k * policy.overdue_every,
                local_instant(day, policy.send_hour),
            )
            for k in range(1, MAX_OVERDUE_REMINDERS + 1)
        )
    planned.sort(key=lambda p: p.at)
    pending = list(planned)
    for point in overdue:
        while pending and pending[0].at <= point.at:
            yield pending.pop(0)
        yield point
    yield from pending


def next_point(
    policy: ReminderPolicy, due: date, calendar: ProductionCalendar, *, after: datetime | None, created: datetime
) -> ReminderPoint | None:
    """The first point after the last one fired (``after``).

    Points that were due before the deadline existed are skipped, except the escalation: a
    deadline created (or moved) already late escalates at once, then its overdue reminders
    continue on the next working days.
    """
    for point in points(policy, due, calendar):
        if point.at < created:
            if point.kind != "escalation":
                continue
            point = ReminderPoint(point.key, point.kind, point.day, point.days, created)
        if after is not None and point.at <= after:
            continue
        return point
    return None


def in_quiet_hours(instant: datetime, start_hour: int, end_hour: int) -> bool:
    hour = instant.astimezone(REGION_TZ).hour
    if start_hour == end_hour:
        return False
    if start_hour > end_hour:
        return hour >= start_hour or hour < end_hour
    return start_hour <= hour < end_hour


def quiet_hours_end(instant: datetime, end_hour: int) -> datetime:
    """The next end of quiet hours at or after ``instant``."""
    local = instant.astimezone(REGION_TZ)
    candidate = datetime.combine(local.date(), time(end_hour), REGION_TZ)
    if candidate < local:
        candidate += timedelta(days=1)
    return candidate.astimezone(UTC)
