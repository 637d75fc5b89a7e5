"""Timer start events: the schedule on which a process starts by itself (the yearly cycle).

Each occurrence is a new instance, so the schedule is ours, not SpiffWorkflow's: a deployed
definition with a timer start event gets a row with its next due time; the worker starts an
instance when it comes and moves the row to the next occurrence.

    <bpmn:timeDate>2026-09-01T09:00:00</bpmn:timeDate>            once
    <bpmn:timeDuration>P7D</bpmn:timeDuration>                    once, a week after deployment
    <bpmn:timeCycle>R/2026-01-15T09:00:00+05:00/P1Y</bpmn:timeCycle>  every year from 15.01.2026
    <bpmn:timeCycle>R3/PT1H</bpmn:timeCycle>                      three times, an hour apart
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .errors import BadInput
from .spiff.timers import add_duration, is_iso_literal, parse_instant


@dataclass(frozen=True)
class Occurrence:
    due: datetime | None  # None: no more occurrences
    cycles_left: int | None  # None: unbounded


def _cycle_parts(text: str) -> tuple[int | None, datetime | None, str]:
    parts = text.strip().upper().split("/")
    if len(parts) not in (2, 3) or not parts[0].startswith("R"):
        raise BadInput(f"{text!r} is not an ISO-8601 repeating interval")
    cycles = int(parts[0][1:]) if parts[0][1:] else None
    if len(parts) == 2:
        return cycles, None, parts[1]
    if parts[1].startswith("P"):
        raise BadInput(f"{text!r}: a start timer's cycle is R[n]/start/period or R[n]/period")
    return cycles, parse_instant(parts[1]), parts[2]


def first(kind: str, expression: str, now: datetime, evaluate: Callable[[str], Any]) -> Occurrence:
    """The first occurrence, computed at deployment."""
    value = expression if is_iso_literal(expression) else evaluate(expression)
    if isinstance(value, datetime):
        return Occurrence(value, 1)
    if not isinstance(value, str):
        raise BadInput(f"timer start {expression!r} evaluated to {type(value).__name__}, not ISO-8601")
    if kind == "timeDate":
        return Occurrence(parse_instant(value), 1)
    if kind == "timeDuration":
        return Occurrence(add_duration(now, value), 1)
    cycles, start, period = _cycle_parts(value)
    if cycles == 0:
        return Occurrence(None, 0)
    due = start if start is not None else add_duration(now, period)
    # A cycle that started in the past resumes at its next occurrence, not with a burst.
    while due < now:
        due = add_duration(due, period)
        if cycles is not None:
            cycles -= 1
            if cycles <= 0:
                return Occurrence(None, 0)
    return Occurrence(due, cycles)


def following(
    kind: str, expression: str, fired: datetime, cycles_left: int | None, evaluate: Callable[[str], Any]
) -> Occurrence:
    """The occurrence after the one due at ``fired``."""
    if kind != "timeCycle":
        return Occurrence(None, 0)
    value = expression if is_iso_literal(expression) else evaluate(expression)
    _cycles, _start, period = _cycle_parts(str(value))
    left = None if cycles_left is None else cycles_left - 1
    if left is not None and left <= 0:
        return Occurrence(None, 0)
    return Occurrence(add_duration(fired, period), left)
