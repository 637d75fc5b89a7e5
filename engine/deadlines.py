"""Deadline rules: written in the BPMN, computed on the production calendar, explained in Russian.

An analyst writes a rule in a Camunda Modeler property field; :func:`parse_rule` reads it
into a :class:`DeadlineRule`, :func:`compute` applies it to the anchor's value on a
:class:`~engine.calendar.ProductionCalendar` and returns a :class:`ComputedDeadline` whose
``explanation`` a civil servant can check by hand::

    30 calendar days before day_date; clause=DAY 2.8
    30 дней после day_date; основание=DAY 3.5
    10 рабочих дней после task.created
    конец месяца roadmap_term
    fixed 20.09.2019                     (or: срок май 2019)

Rolling. When the computed day is not a working day:

* ``before`` rules roll to the PREVIOUS working day: "no later than N days before" must not
  slip past its limit;
* ``after``, ``end of month`` and fixed rules roll to the NEXT working day, as art. 193 of
  the Civil Code says of a term whose last day is a non-working day;
* working-day offsets land on working days by construction;
* ``; roll=next|previous|none`` overrides the default.

:func:`end_of_term` reads the terms of a roadmap ("май 2019", "февраль - август 2019",
"20.09.2019", "IV квартал 2019"): a term that is a month ends on its last day.
Everything here is pure: the calendar and the anchor's value are inputs.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from typing import Literal, TypeVar, cast

from .calendar import DayKind, ProductionCalendar
from .clock import REGION_TZ
from .errors import BadInput

__all__ = [
    "ComputedDeadline",
    "DeadlineRule",
    "Roll",
    "compute",
    "default_roll",
    "end_of_term",
    "parse_rule",
]

RuleKind = Literal["offset", "end_of_month", "fixed"]
Unit = Literal["calendar", "working"]
Direction = Literal["before", "after"]

#: The version of :meth:`ComputedDeadline.to_dict`'s format.
FORMAT_VERSION = 1
#: The largest N a rule may name (about a century of days).
MAX_AMOUNT = 36_600
TASK_CREATED = "task.created"
_T = TypeVar("_T")


class Roll(Enum):
    """What to do when the computed day is not a working day."""

    NEXT = "next"
    """Move to the next working day (art. 193 of the Civil Code)."""
    PREVIOUS = "previous"
    """Move to the previous working day ("no later than" limits)."""
    NONE = "none"
    """Keep the day as computed."""


def default_roll(kind: RuleKind, direction: Direction) -> Roll:
    """The roll a rule gets when it names none: PREVIOUS for ``before``, else NEXT."""
    if kind == "offset" and direction == "before":
        return Roll.PREVIOUS
    return Roll.NEXT


@dataclass(frozen=True)
class DeadlineRule:
    """A parsed deadline rule.

    ``anchor`` is a process variable name, ``"task.created"`` or ``""`` for a fixed rule,
    whose day is ``fixed_date``. ``text`` is the rule as written, with its whitespace
    normalised.
    """

    kind: RuleKind
    amount: int
    unit: Unit
    direction: Direction
    anchor: str
    roll: Roll
    clause: str | None
    text: str
    fixed_date: date | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("offset", "end_of_month", "fixed"):
            raise BadInput(f"unknown deadline rule kind {self.kind!r}", field="kind")
        if self.unit not in ("calendar", "working"):
            raise BadInput(f"unknown deadline unit {self.unit!r}", field="unit")
        if self.direction not in ("before", "after"):
            raise BadInput(f"unknown deadline direction {self.direction!r}", field="direction")
        if not 0 <= self.amount <= MAX_AMOUNT:
            raise BadInput(f"deadline amount {self.amount} is outside 0..{MAX_AMOUNT}", field="amount")
        if self.kind == "fixed":
            if self.fixed_date is None or self.anchor:
                raise BadInput("a fixed deadline rule needs a fixed_date and no anchor", field="fixed_date")
        elif not _is_anchor(self.anchor):
            raise BadInput(f"deadline anchor {self.anchor!r} is not a variable name", field="anchor")

    def __str__(self) -> str:
        return self.text

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form of the rule."""
        return {
            "kind": self.kind,
            "amount": self.amount,
            "unit": self.unit,
            "direction": self.direction,
            "anchor": self.anchor,
            "roll": self.roll.value,
            "clause": self.clause,
            "text": self.text,
            "fixed_date": self.fixed_date.isoformat() if self.fixed_date else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> DeadlineRule:
        """Rebuild a rule from :meth:`to_dict`'s output; :class:`BadInput` if malformed."""
        if not isinstance(data, dict):
            raise BadInput("a stored deadline rule must be an object", field="rule")
        try:
            roll = Roll(_get(data, "roll", str))
        except ValueError:
            raise BadInput(f"unknown roll {data.get('roll')!r}", field="roll") from None
        clause = data.get("clause")
        if clause is not None and not isinstance(clause, str):
            raise BadInput("stored rule field 'clause' must be a string or null", field="clause")
        fixed = data.get("fixed_date")
        amount = data.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise BadInput("stored rule field 'amount' must be an integer", field="amount")
        return cls(
            kind=cast(RuleKind, _get(data, "kind", str)),
            amount=amount,
            unit=cast(Unit, _get(data, "unit", str)),
            direction=cast(Direction, _get(data, "direction", str)),
            anchor=_get(data, "anchor", str),
            roll=roll,
            clause=clause,
            text=_get(data, "text", str),
            fixed_date=None if fixed is None else _iso_date(fixed, "fixed_date"),
        )


@dataclass(frozen=True)
class ComputedDeadline:
    """A deadline computed from a rule: the raw day, the final (rolled) day and why.

    ``calendar_source`` records whose production calendar decided (``"holidays 0.109"``,
    ``"xmlcalendar"``).
    """

    rule: DeadlineRule
    anchor_value: date
    raw: date
    final: date
    explanation: str
    calendar_source: str = ""

    @property
    def rolled(self) -> bool:
        """True when the raw day was not a working day and the deadline moved."""
        return self.final != self.raw

    def to_dict(self) -> dict[str, object]:
        """A JSON-able form, for storage (versioned by ``"version"``)."""
        return {
            "version": FORMAT_VERSION,
            "rule": self.rule.to_dict(),
            "anchor_value": self.anchor_value.isoformat(),
            "raw": self.raw.isoformat(),
            "final": self.final.isoformat(),
            "explanation": self.explanation,
            "calendar_source": self.calendar_source,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ComputedDeadline:
        """Rebuild a computed deadline from :meth:`to_dict`'s output; :class:`BadInput` if malformed."""
        if not isinstance(data, dict):
            raise BadInput("a stored deadline must be an object", field="deadline")
        version = data.get("version")
        if version != FORMAT_VERSION:
            raise BadInput(f"unsupported stored deadline version {version!r}", field="version")
        rule = data.get("rule")
        if not isinstance(rule, dict):
            raise BadInput("stored deadline field 'rule' must be an object", field="rule")
        source = data.get("calendar_source", "")
        if not isinstance(source, str):
            message = "stored deadline field 'calendar_source' must be a string"
            raise BadInput(message, field="calendar_source")
        return cls(
            rule=DeadlineRule.from_dict(rule),
            anchor_value=_iso_date(data.get("anchor_value"), "anchor_value"),
            raw=_iso_date(data.get("raw"), "raw"),
            final=_iso_date(data.get("final"), "final"),
            explanation=_get(data, "explanation", str),
            calendar_source=source,
        )


def _get(data: dict[str, object], key: str, kind: type[_T]) -> _T:
    value = data.get(key)
    if not isinstance(value, kind):
        raise BadInput(f"stored field {key!r} must be a {kind.__name__}", field=key)
    return value


def _iso_date(value: object, key: str) -> date:
    if not isinstance(value, str):
        raise BadInput(f"stored field {key!r} must be an ISO date string", field=key)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadInput(f"stored field {key!r} is not an ISO date: {value!r}", field=key) from None


# --- parsing rules ---------------------------------------------------------------------

_CALENDAR_WORDS = frozenset({"calendar", "календарных", "календарный", "календарные", "календарного", "календарному"})
_WORKING_WORDS = frozenset({"working", "work", "business", "рабочих", "рабочий", "рабочие", "рабочего", "рабочему"})
_DAY_WORDS = frozenset({"day", "days", "день", "дня", "дней", "дн", "дн."})
_BEFORE_WORDS = frozenset({"before", "до", "prior"})
_AFTER_WORDS = frozenset({"after", "после", "через"})
_END_OF_MONTH_FORMS: tuple[tuple[str, ...], ...] = (
    ("end", "of", "the", "month"),
    ("end", "of", "month"),
    ("конец", "месяца"),
    ("end_of_month",),
    ("end-of-month",),
)
_FIXED_WORDS = frozenset({"fixed", "on", "date", "срок", "дата"})
_ROLL_KEYS = frozenset({"roll", "перенос", "сдвиг"})
_CLAUSE_KEYS = frozenset({"clause", "основание", "пункт", "норма"})
_ROLL_VALUES: dict[str, Roll] = {
    **dict.fromkeys(("next", "forward", "следующий", "вперед", "вперёд", "на следующий"), Roll.NEXT),
    **dict.fromkeys(("previous", "prev", "back", "backward", "предыдущий", "назад", "на предыдущий"), Roll.PREVIOUS),
    **dict.fromkeys(("none", "no", "off", "нет", "без", "без переноса", "не переносить"), Roll.NONE),
}
_UNIT_HINT = "days, calendar days or working days (дней, календарных дней, рабочих дней)"
_ANCHOR_HINT = "a process variable name or task.created"


def _is_anchor(value: str) -> bool:
    return bool(value) and all(part.isidentifier() for part in value.split("."))


def _fail(text: str, problem: str, position: int) -> BadInput:
    """An error naming the rule, the problem and its 1-based character position."""
    return BadInput(f"deadline rule {text!r}, position {position + 1}: {problem}", field="deadline")


def parse_rule(text: str) -> DeadlineRule:
    """Read a deadline rule; raise :class:`BadInput` naming what is wrong and where.

    Grammar (case and spacing are free; English and Russian words mix)::

        rule    := body (";" option)*
        body    := N [calendar|working] days (before|after) ANCHOR
                 | end of month ANCHOR            | конец месяца ANCHOR
                 | fixed TERM                     | срок TERM
        option  := roll=(next|previous|none)      | clause=TEXT
        ANCHOR  := a process variable name, or task.created

    Russian forms: ``календарных``/``рабочих``, ``день``/``дня``/``дней``, ``до``/``после``,
    ``перенос=следующий|предыдущий|нет``, ``основание=...``.
    """
    if not isinstance(text, str):
        raise BadInput("a deadline rule must be text", field="deadline")
    if not text.strip():
        raise BadInput("deadline rule is empty", field="deadline")

    segments: list[tuple[int, str]] = []
    start = 0
    for piece in text.split(";"):
        segments.append((start, piece))
        start += len(piece) + 1
    body_start, body = segments[0]
    tokens = [(body_start + m.start(), m.group()) for m in re.finditer(r"\S+", body)]
    if not tokens:
        raise _fail(text, "the rule is missing before ';'", body_start)

    first_pos, first = tokens[0]
    glued = re.fullmatch(r"(\d+)(\D.*)", first)
    if glued:  # "30days": forgive the missing space
        tokens[0:1] = [(first_pos, glued.group(1)), (first_pos + len(glued.group(1)), glued.group(2))]
        first = glued.group(1)
    lowered = first.lower()

    fixed_date: date | None = None
    amount = 0
    unit: Unit = "calendar"
    direction: Direction = "after"
    anchor = ""
    kind: RuleKind
    if first.isdigit():
        kind = "offset"
        amount, unit, direction, anchor = _parse_offset(text, tokens)
    elif re.fullmatch(r"[-−]\d+", first):
        raise _fail(text, f"the number of days must not be negative ({first!r}); write 'before'", first_pos)
    elif any(tuple(t.lower() for _, t in tokens[: len(form)]) == form for form in _END_OF_MONTH_FORMS):
        kind = "end_of_month"
        form = next(f for f in _END_OF_MONTH_FORMS if tuple(t.lower() for _, t in tokens[: len(f)]) == f)
        anchor = _parse_anchor(text, tokens, len(form))
    elif lowered in ("end", "конец"):
        raise _fail(text, "expected 'end of month' or 'конец месяца'", first_pos)
    elif lowered in _FIXED_WORDS:
        kind = "fixed"
        rest_start = first_pos + len(first)
        term = text[rest_start : body_start + len(body)].strip()
        if not term:
            raise _fail(text, f"missing the date or month after {first!r}", rest_start)
        try:
            fixed_date = end_of_term(term)
        except BadInput as exc:
            raise _fail(text, exc.message, tokens[1][0]) from None
        anchor = ""
    else:
        raise _fail(
            text,
            f"expected a number of days, 'end of month' / 'конец месяца' or 'fixed <date>', found {first!r}",
            first_pos,
        )

    roll: Roll | None = None
    clause: str | None = None
    options: list[str] = []
    for seg_start, segment in segments[1:]:
        if not segment.strip():
            continue
        pos = seg_start + (len(segment) - len(segment.lstrip()))
        match = re.fullmatch(r"\s*([^=:]*?)\s*[=:]\s*(.*?)\s*", segment, flags=re.DOTALL)
        if match is None or not match.group(1):
            raise _fail(text, f"option {segment.strip()!r} must be written as name=value", pos)
        key, value = match.group(1), " ".join(match.group(2).split())
        key_lower = key.lower()
        if not value:
            raise _fail(text, f"option {key!r} has no value", pos)
        if key_lower in _ROLL_KEYS:
            if roll is not None:
                raise _fail(text, "option 'roll' is given twice", pos)
            found = _ROLL_VALUES.get(value.lower())
            if found is None:
                raise _fail(text, f"unknown roll {value!r}; expected next, previous or none", pos)
            roll = found
        elif key_lower in _CLAUSE_KEYS:
            if clause is not None:
                raise _fail(text, "option 'clause' is given twice", pos)
            clause = value
        else:
            raise _fail(text, f"unknown option {key!r}; expected roll or clause", pos)
        options.append(f"{key}={value}")

    normalised = "; ".join([" ".join(token for _, token in tokens), *options])
    return DeadlineRule(
        kind=kind,
        amount=amount,
        unit=unit,
        direction=direction,
        anchor=anchor,
        roll=roll if roll is not None else default_roll(kind, direction),
        clause=clause,
        text=normalised,
        fixed_date=fixed_date,
    )


def _parse_offset(text: str, tokens: list[tuple[int, str]]) -> tuple[int, Unit, Direction, str]:
    amount = int(tokens[0][1])
    if amount > MAX_AMOUNT:
        raise _fail(text, f"{amount} days is more than the limit of {MAX_AMOUNT}", tokens[0][0])
    end = len(text.split(";")[0])
    index = 1
    unit: Unit = "calendar"
    unit_word: str | None = None
    if index >= len(tokens):
        raise _fail(text, f"missing the unit after {amount}: expected {_UNIT_HINT}", end)
    pos, word = tokens[index]
    if word.lower() in _CALENDAR_WORDS | _WORKING_WORDS:
        unit = "working" if word.lower() in _WORKING_WORDS else "calendar"
        unit_word = word
        index += 1
        if index >= len(tokens):
            raise _fail(text, f"expected 'days' / 'дней' after {unit_word!r}", end)
        pos, word = tokens[index]
    if word.lower() not in _DAY_WORDS:
        if unit_word is not None:
            raise _fail(text, f"expected 'days' / 'дней' after {unit_word!r}, found {word!r}", pos)
        raise _fail(text, f"unknown unit {word!r}: expected {_UNIT_HINT}", pos)
    index += 1
    if index >= len(tokens):
        raise _fail(text, "missing the direction: expected 'before' / 'до' or 'after' / 'после'", end)
    pos, word = tokens[index]
    direction: Direction
    if word.lower() in _BEFORE_WORDS:
        direction = "before"
    elif word.lower() in _AFTER_WORDS:
        direction = "after"
    else:
        raise _fail(text, f"unknown direction {word!r}: expected 'before' / 'до' or 'after' / 'после'", pos)
    return amount, unit, direction, _parse_anchor(text, tokens, index + 1)


def _parse_anchor(text: str, tokens: list[tuple[int, str]], index: int) -> str:
    if index >= len(tokens):
        after = tokens[index - 1][1]
        raise _fail(text, f"missing anchor ({_ANCHOR_HINT}) after {after!r}", len(text.split(";")[0]))
    pos, anchor = tokens[index]
    if not _is_anchor(anchor):
        raise _fail(text, f"anchor {anchor!r} is not {_ANCHOR_HINT}", pos)
    if index + 1 < len(tokens):
        extra_pos, extra = tokens[index + 1]
        problem = f"unexpected {extra!r} after the anchor {anchor!r} (options go after ';')"
        raise _fail(text, problem, extra_pos)
    return anchor


# --- computing -------------------------------------------------------------------------

_WEEKDAYS = ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье")
_ART_193 = "ст. 193 ГК РФ"
_NOT_LATER = "так как срок «не позднее» нельзя переносить на более позднюю дату"


def _plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian plural form for ``n``: 1 день, 2 дня, 5 дней, 11 дней, 21 день."""
    tail = abs(n) % 100
    if 11 <= tail <= 14:
        return many
    if tail % 10 == 1:
        return one
    if 2 <= tail % 10 <= 4:
        return few
    return many


def _fmt(day: date) -> str:
    return day.strftime("%d.%m.%Y")


def _day_with_weekday(day: date) -> str:
    return f"{_fmt(day)} ({_WEEKDAYS[day.weekday()]})"


def _describe(day: date, calendar: ProductionCalendar) -> str:
    """What kind of day ``day`` is, in the words of the production calendar."""
    kind = calendar.day_kind(day)
    if kind.is_working:
        notes = []
        if kind is DayKind.WORKING_WEEKEND:
            notes.append("рабочая суббота" if day.weekday() == 5 else "рабочее воскресенье")
        if calendar.is_shortened(day):
            notes.append("предпраздничный, сокращённый")
        return "рабочий день" + (f" ({', '.join(notes)})" if notes else "")
    if kind is DayKind.HOLIDAY:
        name = calendar.holiday_name(day)
        if name is None:
            return "нерабочий праздничный день"
        if name.lower().startswith("нерабоч"):  # a decree's non-working day, not a feast
            return f"нерабочий день ({name})"
        return f"нерабочий праздничный день ({name})"
    if kind is DayKind.TRANSFERRED_DAY_OFF:
        return "нерабочий день (перенос выходного дня)"
    return "выходной день"


def _anchor_day(value: date) -> date:
    """A date, or the region's calendar day of a datetime (aware ones are converted)."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(REGION_TZ)
        return value.date()
    return value


def compute(rule: DeadlineRule, anchor_value: date | None, calendar: ProductionCalendar) -> ComputedDeadline:
    """Apply ``rule`` to the anchor's value on ``calendar``.

    ``anchor_value`` is the value of the rule's anchor (a datetime is taken as its day in
    the region's time zone); it is ignored, and may be None, for a fixed rule.
    """
    if rule.kind == "fixed":
        assert rule.fixed_date is not None  # guaranteed by DeadlineRule
        anchor = rule.fixed_date
    elif anchor_value is None:
        raise BadInput(f"deadline rule {rule.text!r} needs a value for {rule.anchor!r}", field=rule.anchor)
    elif not isinstance(anchor_value, date):
        raise BadInput(
            f"deadline rule {rule.text!r}: {rule.anchor!r} is {type(anchor_value).__name__}, not a date",
            field=rule.anchor,
        )
    else:
        anchor = _anchor_day(anchor_value)

    sign = -1 if rule.direction == "before" else 1
    if rule.kind == "offset" and rule.unit == "working":
        raw = calendar.add_working_days(anchor, sign * rule.amount)
        words = _plural(rule.amount, "рабочий день", "рабочих дня", "рабочих дней")
        head = f"{_fmt(anchor)} {'−' if sign < 0 else '+'} {rule.amount} {words} = {_day_with_weekday(raw)}"
        show_status = not calendar.is_working_day(raw)  # only an N=0 rule from a day off
    elif rule.kind == "offset":
        raw = anchor + timedelta(days=sign * rule.amount)
        words = _plural(rule.amount, "день", "дня", "дней")
        head = f"{_fmt(anchor)} {'−' if sign < 0 else '+'} {rule.amount} {words} = {_day_with_weekday(raw)}"
        show_status = True
    elif rule.kind == "end_of_month":
        last = _stdlib_calendar.monthrange(anchor.year, anchor.month)[1]
        raw = anchor.replace(day=last)
        head = f"конец месяца {raw.strftime('%m.%Y')} = {_day_with_weekday(raw)}"
        show_status = True
    else:
        raw = anchor
        head = f"срок {_day_with_weekday(raw)}"
        show_status = True

    parts = [head]
    if show_status:
        parts.append(", " + _describe(raw, calendar))
    final = raw
    if not calendar.is_working_day(raw):
        is_default = rule.roll is default_roll(rule.kind, rule.direction)
        if rule.roll is Roll.NEXT:
            final = calendar.next_working_day(raw)
            reason = _ART_193 if is_default else "по правилу срока (roll=next)"
            parts.append(f" → перенос на следующий рабочий день {_day_with_weekday(final)}, {reason}")
        elif rule.roll is Roll.PREVIOUS:
            final = calendar.previous_working_day(raw)
            reason = _NOT_LATER if is_default else "по правилу срока (roll=previous)"
            parts.append(f" → перенос на предыдущий рабочий день {_day_with_weekday(final)}, {reason}")
        else:
            parts.append(", срок не переносится (roll=none)")
    for year in sorted({raw.year, final.year}):
        if calendar.is_provisional(year):
            parts.append(f"; производственный календарь на {year} год ещё не утверждён, дата предварительная")
    if rule.clause:
        parts.append(f"; основание: {rule.clause}")
    sources = sorted({calendar.source(raw.year), calendar.source(final.year)})
    return ComputedDeadline(
        rule=rule,
        anchor_value=anchor,
        raw=raw,
        final=final,
        explanation="".join(parts),
        calendar_source=", ".join(sources),
    )


# --- roadmap terms ---------------------------------------------------------------------

_SOFT_ENDINGS = "(?:ь|я|е|ю|ем)"
_MONTH_PATTERNS: tuple[tuple[int, str], ...] = (
    (1, f"январ{_SOFT_ENDINGS}|янв|january|jan"),
    (2, f"феврал{_SOFT_ENDINGS}|февр?|february|feb"),
    (3, "март(?:а|е|у|ом)?|мар|march|mar"),
    (4, f"апрел{_SOFT_ENDINGS}|апр|april|apr"),
    (5, "ма(?:й|я|е|ю|ем)|may"),
    (6, f"июн{_SOFT_ENDINGS}|june|jun"),
    (7, f"июл{_SOFT_ENDINGS}|july|jul"),
    (8, "август(?:а|е|у|ом)?|авг|august|aug"),
    (9, f"сентябр{_SOFT_ENDINGS}|сент?|september|sept?"),
    (10, f"октябр{_SOFT_ENDINGS}|окт|october|oct"),
    (11, f"ноябр{_SOFT_ENDINGS}|нояб?|november|nov"),
    (12, f"декабр{_SOFT_ENDINGS}|дек|december|dec"),
)
_MONTH = "(?:" + "|".join(p for _, p in _MONTH_PATTERNS) + ")"
_QUARTER_NUMBERS = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "1": 1, "2": 2, "3": 3, "4": 4}
_TERM_TOKEN = re.compile(
    r"(?<![\w.])(?:"
    r"(?P<iso>(?P<iso_y>\d{4})-(?P<iso_m>\d{1,2})-(?P<iso_d>\d{1,2}))"
    r"|(?P<dot>(?P<dot_d>\d{1,2})[./](?P<dot_m>\d{1,2})[./](?P<dot_y>\d{4}))"
    r"|(?P<isom>(?P<isom_y>\d{4})-(?P<isom_m>\d{1,2}))"
    r"|(?P<dotm>(?P<dotm_m>\d{1,2})[./](?P<dotm_y>\d{4}))"
    rf"|(?P<dmn>(?P<dmn_d>\d{{1,2}})\s+(?P<dmn_m>{_MONTH})\.?(?:\s+(?P<dmn_y>\d{{4}}))?)"
    r"|(?P<q>(?P<q_n>iv|i{1,3}|[1-4])(?:-?(?:й|ый|ой))?\s+(?:квартал\w*|кв\.?|quarter)(?:\s+(?P<q_y>\d{4}))?)"
    r"|(?P<h>(?P<h_n>ii|i|[12])(?:-?(?:е|ое|го|м))?\s+(?:полугоди\w*|half)(?:\s+(?P<h_y>\d{4}))?)"
    rf"|(?P<mn>(?P<mn_m>{_MONTH})\.?(?:\s+(?P<mn_y>\d{{4}}))?)"
    r"|(?P<y>\d{4})"
    r")(?![\w])"
)
_TERM_FILLER = frozenset(
    {
        "в", "во", "до", "по", "с", "со", "к", "не", "позднее", "позже", "конец", "конца", "концу",
        "течение", "г", "гг", "год", "года", "году", "и", "срок", "срока", "until", "by", "end", "of",
        "in", "to", "from", "the", "and", "through", "no", "later", "than",
    }
)  # fmt: skip


@dataclass(frozen=True)
class _TermPart:
    end_month: int | None  # the month the part ends in, for year inference; None for a year
    year: int | None
    day: int | None  # a day of the month, when the part names a date
    position: int


def _month_number(word: str) -> int:
    for number, pattern in _MONTH_PATTERNS:
        if re.fullmatch(pattern, word):
            return number
    raise AssertionError(f"unmatched month word {word!r}")  # pragma: no cover - regex guarantees it


def _term_part(match: re.Match[str]) -> _TermPart:
    g = match.groupdict()
    pos = match.start()

    def year(key: str) -> int | None:
        value = g.get(key)
        return int(value) if value else None

    if g["iso"]:
        return _TermPart(int(g["iso_m"]), year("iso_y"), int(g["iso_d"]), pos)
    if g["dot"]:
        return _TermPart(int(g["dot_m"]), year("dot_y"), int(g["dot_d"]), pos)
    if g["isom"]:
        return _TermPart(int(g["isom_m"]), year("isom_y"), None, pos)
    if g["dotm"]:
        return _TermPart(int(g["dotm_m"]), year("dotm_y"), None, pos)
    if g["dmn"]:
        return _TermPart(_month_number(g["dmn_m"]), year("dmn_y"), int(g["dmn_d"]), pos)
    if g["q"]:
        return _TermPart(3 * _QUARTER_NUMBERS[g["q_n"]], year("q_y"), None, pos)
    if g["h"]:
        return _TermPart(6 * _QUARTER_NUMBERS[g["h_n"]], year("h_y"), None, pos)
    if g["mn"]:
        return _TermPart(_month_number(g["mn_m"]), year("mn_y"), None, pos)
    return _TermPart(None, int(g["y"]), None, pos)


def end_of_term(term: str, *, year: int | None = None) -> date:
    """The last day of a roadmap term.

    ``'2019-05'``, ``'05.2019'``, ``'май 2019'``, ``'в мае 2019 г.'`` -> 31.05.2019;
    ``'20.09.2019'``, ``'2019-09-20'``, ``'20 сентября 2019'`` -> that day;
    ``'февраль - август 2019'`` (a range) -> its end; ``'сентябрь, октябрь 2019'`` (a list) ->
    its last; ``'IV квартал 2019'``, ``'II полугодие 2019'``, ``'2019 год'`` -> their ends.
    Month names may be in any case and grammatical case (январь, января, январе). A term
    without a year (``'Май'``) takes ``year``; :class:`BadInput` when it cannot be read.
    """
    if not isinstance(term, str) or not term.strip():
        raise BadInput("the term is empty", field="term")
    text = " ".join(term.lower().replace("ё", "е").split())
    text = re.sub(r"\s*[–—−‒]\s*", " - ", text)  # any dash is a range separator

    parts: list[_TermPart] = []
    leftovers: list[str] = []
    cursor = 0
    for match in _TERM_TOKEN.finditer(text):
        leftovers.append(text[cursor : match.start()])
        parts.append(_term_part(match))
        cursor = match.end()
    leftovers.append(text[cursor:])
    for chunk in leftovers:
        for word in re.split(r"[\s,;()\-]+", chunk):
            word = word.strip(".")
            if word and word not in _TERM_FILLER:
                raise BadInput(f"term {term!r}: cannot read {word!r}", field="term")
    if not parts:
        raise BadInput(f"term {term!r} names no date, month, quarter or year", field="term")

    last = parts[-1]
    end_year = last.year
    if end_year is None:
        earlier = [p for p in parts[:-1] if p.year is not None]
        if earlier:  # "декабрь 2019 - февраль": the year of the range's start, rolled over
            ref = earlier[-1]
            assert ref.year is not None
            rolled = ref.end_month is not None and last.end_month is not None and last.end_month < ref.end_month
            end_year = ref.year + 1 if rolled else ref.year
        elif year is not None:
            end_year = year
        else:
            raise BadInput(f"term {term!r} has no year; give one (e.g. 'май 2019')", field="term")
    month = last.end_month if last.end_month is not None else 12
    try:
        if last.day is not None:
            return date(end_year, month, last.day)
        if not 1 <= month <= 12:
            raise ValueError(month)
        return date(end_year, month, _stdlib_calendar.monthrange(end_year, month)[1])
    except ValueError:
        raise BadInput(f"term {term!r} is not a valid date", field="term") from None
