"""BPMN timers that read time from the engine's clock and accept what Camunda Modeler writes.

SpiffWorkflow's timer definitions call ``datetime.now()`` and evaluate every timer value as
Python, so ``PT5M`` (what Camunda Modeler writes) fails and a virtual clock is ignored. These
subclasses keep SpiffWorkflow's state layout (``event_value`` in the task's internal data)
but take ``now`` from the script engine's clock and resolve the value with
:func:`resolve_timer_value`: a plain ISO-8601 literal is used as written, anything else
(``${...}`` or a Python expression) goes through the restricted evaluator.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimeDateEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.bpmn.util import PendingBpmnEvent
from SpiffWorkflow.util.task import TaskState

from ..clock import ensure_utc

ISO_DURATION = re.compile(
    r"^P(?!$)(\d+(?:[.,]\d+)?Y)?(\d+(?:[.,]\d+)?M)?(\d+(?:[.,]\d+)?W)?(\d+(?:[.,]\d+)?D)?"
    r"(T(?=\d)(\d+(?:[.,]\d+)?H)?(\d+(?:[.,]\d+)?M)?(\d+(?:[.,]\d+)?S)?)?$",
    re.IGNORECASE,
)
ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$", re.IGNORECASE)
ISO_CYCLE = re.compile(r"^R\d*/", re.IGNORECASE)


def is_iso_literal(text: str) -> bool:
    """True for a timer value written as plain ISO-8601: a duration, a date(-time) or a cycle."""
    value = text.strip()
    return bool(ISO_DURATION.match(value) or ISO_DATETIME.match(value) or ISO_CYCLE.match(value))


def parse_duration(text: str) -> dict[str, float]:
    """ISO-8601 duration -> SpiffWorkflow's parsed form; ValueError when malformed."""
    if not ISO_DURATION.match(text.strip()):
        raise ValueError(f"{text!r} is not an ISO-8601 duration")
    return dict(TimerEventDefinition.parse_iso_duration(text.strip()))


def parse_instant(text: str) -> datetime:
    """ISO-8601 date or date-time -> aware UTC; naive values are the region's local time."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if len(value) == 10:
        return ensure_utc(datetime.combine(date.fromisoformat(value), datetime.min.time()))
    return ensure_utc(datetime.fromisoformat(value))


def add_duration(start: datetime, text: str) -> datetime:
    parsed = parse_duration(text)
    weeks = parsed.pop("weeks", 0)
    delta = TimerEventDefinition.get_timedelta_from_start(parsed, start)
    return start + delta + timedelta(weeks=weeks)


def subtract_duration(end: datetime, text: str) -> datetime:
    parsed = parse_duration(text)
    weeks = parsed.pop("weeks", 0)
    delta = TimerEventDefinition.get_timedelta_from_end(parsed, end)
    return end - delta - timedelta(weeks=weeks)


def parse_cycle(text: str, now: datetime) -> tuple[int, datetime, float]:
    """``R[n]/start/duration``, ``R[n]/duration/end`` or ``R[n]/duration`` -> (cycles, first fire, seconds).

    ``cycles`` is -1 for an unbounded repetition. A bare duration starts one period from now.
    """
    parts = text.strip().upper().split("/")
    if len(parts) not in (2, 3) or not parts[0].startswith("R"):
        raise ValueError(f"{text!r} is not an ISO-8601 repeating interval")
    cycles = int(parts[0][1:]) if parts[0][1:] else -1
    if len(parts) == 2:
        first = add_duration(now, parts[1])
        return cycles, first, (first - now).total_seconds()
    a, b = parts[1], parts[2]
    if a.startswith("P"):
        end = parse_instant(b)
        start = subtract_duration(end, a)
        return cycles, start, (end - start).total_seconds()
    start = parse_instant(a)
    if b.startswith("P"):
        return cycles, start, (add_duration(start, b) - start).total_seconds()
    raise ValueError(f"{text!r}: a repeating interval needs a duration")


def _clock_now(my_task: Any) -> datetime:
    engine = my_task.workflow.script_engine
    now = getattr(engine, "now", None)
    if now is None:  # a foreign script engine; never expected in our runtime
        raise RuntimeError("the script engine has no clock")
    value: datetime = now()
    return value


def resolve_timer_value(my_task: Any, expression: str) -> Any:
    """The timer's value: the ISO literal as written, else the evaluated expression."""
    if is_iso_literal(expression):
        return expression.strip()
    return my_task.workflow.script_engine.evaluate(my_task, expression)


def _as_instant(value: Any) -> datetime:
    if isinstance(value, datetime):
        return ensure_utc(value)
    if isinstance(value, date):
        return ensure_utc(datetime.combine(value, datetime.min.time()))
    if isinstance(value, str):
        return parse_instant(value)
    raise ValueError(f"a timer date must be a date, a date-time or an ISO-8601 string, not {type(value).__name__}")


class ClockTimeDate(TimeDateEventDefinition):
    """A timer that fires at a date-time."""

    def has_fired(self, my_task: Any) -> bool:
        event_value = my_task._get_internal_data("event_value")
        if event_value is None:
            event_value = _as_instant(resolve_timer_value(my_task, self.expression)).isoformat()
            my_task._set_internal_data(event_value=event_value)
        if datetime.fromisoformat(event_value) <= _clock_now(my_task):
            my_task._set_internal_data(event_fired=True)
        return bool(my_task._get_internal_data("event_fired", False))


class ClockDuration(DurationTimerEventDefinition):
    """A timer that fires a duration after the event is reached."""

    def has_fired(self, my_task: Any) -> bool:
        event_value = my_task._get_internal_data("event_value")
        now = _clock_now(my_task)
        if event_value is None:
            value = resolve_timer_value(my_task, self.expression)
            if isinstance(value, timedelta):
                due = now + value
            elif isinstance(value, str):
                due = add_duration(now, value)
            else:
                raise ValueError(f"a timer duration must be an ISO-8601 duration, not {type(value).__name__}")
            event_value = due.isoformat()
            my_task._set_internal_data(event_value=event_value)
        if datetime.fromisoformat(event_value) <= now:
            my_task._set_internal_data(event_fired=True)
        return bool(my_task._get_internal_data("event_fired", False))


class ClockCycle(CycleTimerEventDefinition):
    """A repeating timer (``R3/PT1H``): fires ``cycles`` times, one period apart."""

    def cycle_complete(self, my_task: Any) -> bool:
        now = _clock_now(my_task)
        event_value = my_task._get_internal_data("event_value")
        if event_value is None:
            value = resolve_timer_value(my_task, self.expression)
            if not isinstance(value, str):
                raise ValueError("a timer cycle must be an ISO-8601 repeating interval")
            cycles, start, seconds = parse_cycle(value, now)
            event_value = {"cycles": cycles, "next": start.isoformat(), "duration": seconds}
        ready = False
        if event_value["cycles"] != 0:
            next_event = datetime.fromisoformat(event_value["next"])
            if next_event <= now:
                event_value["next"] = (next_event + timedelta(seconds=event_value["duration"])).isoformat()
                event_value["cycles"] -= 1
                ready = True
        else:
            my_task.internal_data.pop("event_value", None)
            my_task.internal_data["event_fired"] = True
        my_task._set_internal_data(event_value=event_value)
        return ready

    def update_task(self, my_task: Any) -> None:
        if self.cycle_complete(my_task):
            for output in my_task.task_spec.outputs:
                child = my_task._add_child(output, TaskState.FUTURE)
                child.task_spec._predict(child, mask=TaskState.NOT_FINISHED_MASK)
                child.task_spec._update(child)

    def details(self, my_task: Any) -> PendingBpmnEvent:
        event_value = my_task._get_internal_data("event_value")
        if event_value is not None and event_value["cycles"] != 0:
            event_value = event_value["next"]
        return PendingBpmnEvent(self.name, self.__class__.__name__, event_value)


def due_of(value: Any) -> datetime | None:
    """The instant a waiting timer's stored value says it fires (None when not a date)."""
    if isinstance(value, str):
        try:
            return ensure_utc(datetime.fromisoformat(value))
        except ValueError:
            return None
    return None


__all__ = [
    "ClockCycle",
    "ClockDuration",
    "ClockTimeDate",
    "add_duration",
    "due_of",
    "is_iso_literal",
    "parse_cycle",
    "parse_duration",
    "parse_instant",
]
