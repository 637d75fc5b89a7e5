"""The Russian texts of deadline e-mails: reminders, escalations, extensions, moved deadlines.

The regional Ministry, its coordinator and the municipal authorities work in Russian, so every
template writes Russian with correct plurals (1 рабочий день, 2 рабочих дня, 5 рабочих дней) and
dates as ``21.08.2019 (среда)``. Each template is a plain function taking a mapping of fields
(documented by :class:`NoticeFields`) and returning a :class:`Message` with a subject, a plain
text part and an HTML part in which every value is escaped.

Pure: no I/O, no clock. The worker picks the template (see :data:`TEMPLATES` and :func:`render`),
the e-mail adapter (``webhooks.email``) sends the result.
"""

from __future__ import annotations

import contextvars
import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Literal, NotRequired, TypedDict

from .clock import REGION_TZ
from .errors import BadInput

__all__ = [
    "TEMPLATES",
    "Message",
    "NoticeFields",
    "days_phrase",
    "deadline_changed",
    "escalation",
    "extension_decided",
    "extension_requested",
    "format_day",
    "plural",
    "reminder_before",
    "reminder_due_today",
    "reminder_overdue",
    "render",
]

DaysUnit = Literal["working", "calendar"]


@dataclass(frozen=True)
class Message:
    """An e-mail's content: a one-line subject, the plain text and (optionally) the HTML alternative."""

    subject: str
    text: str
    html: str | None


class NoticeFields(TypedDict):
    """The fields a template reads. Templates accept any ``Mapping[str, object]`` with these keys.

    Dates may be :class:`~datetime.date` (a datetime is taken as its day in the region) or ISO
    strings, so that a JSON payload from the outbox can be passed as it is.
    """

    task: str  #: the task's name, as the user sees it
    process: str  #: the process (procedure) name
    organisation: str  #: the organisation that must do the task
    due: date  #: the current deadline (for extension_decided and deadline_changed: the old one)
    url: str  #: a link to the task in the web UI
    explanation: NotRequired[str]  #: the deadline's computation in Russian (ComputedDeadline.explanation)
    clause: NotRequired[str]  #: the regulation clause the deadline comes from, e.g. "DAY 2.8"
    days: NotRequired[int]  #: days left (reminder_before) or days overdue (reminder_overdue, escalation)
    days_unit: NotRequired[DaysUnit]  #: how ``days`` is counted; "working" unless told
    new_due: NotRequired[date]  #: the requested (extension_requested), granted or recomputed deadline
    approved: NotRequired[bool]  #: extension_decided: was the extension granted
    comment: NotRequired[str]  #: extension_decided: the decision's comment (required for a refusal)
    reason: NotRequired[str]  #: extension_requested: the justification; deadline_changed: what moved


# -- formatting ------------------------------------------------------------------------------

_WEEKDAYS = ("понедельник", "вторник", "среда", "четверг", "пятница", "суббота", "воскресенье")


def plural(n: int, one: str, few: str, many: str) -> str:
    """The Russian form of a noun for ``n``: (1, 21, 101) → one, (2-4, 22-24) → few, else many."""
    tail = abs(n) % 100
    if 11 <= tail <= 14:
        return many
    if tail % 10 == 1:
        return one
    if 2 <= tail % 10 <= 4:
        return few
    return many


def days_phrase(n: int, unit: DaysUnit = "working") -> str:
    """``n`` with the right word: "1 рабочий день", "3 рабочих дня", "5 дней"."""
    if unit == "working":
        return f"{n} {plural(n, 'рабочий день', 'рабочих дня', 'рабочих дней')}"
    return f"{n} {plural(n, 'день', 'дня', 'дней')}"


def format_day(day: date) -> str:
    """``DD.MM.YYYY (weekday)``, e.g. "21.08.2019 (среда)"."""
    return f"{day.strftime('%d.%m.%Y')} ({_WEEKDAYS[day.weekday()]})"


# -- reading the fields ----------------------------------------------------------------------


def _missing(key: str) -> BadInput:
    return BadInput(f"notification field {key!r} is required", field=key)


def _text(fields: Mapping[str, object], key: str, *, required: bool = True) -> str:
    value = fields.get(key)
    if value is None or value == "":
        if required:
            raise _missing(key)
        return ""
    if not isinstance(value, str):
        raise BadInput(f"notification field {key!r} must be a string, not {type(value).__name__}", field=key)
    return value.strip()


def _day(fields: Mapping[str, object], key: str) -> date:
    value = fields.get(key)
    if value is None or value == "":
        raise _missing(key)
    if isinstance(value, datetime):
        # An aware instant is shown as the region's calendar day, a naive one as it is.
        return (value.astimezone(REGION_TZ) if value.tzinfo is not None else value).date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise BadInput(f"notification field {key!r} must be a date (or YYYY-MM-DD), not {value!r}", field=key)


def _count(fields: Mapping[str, object], key: str = "days") -> int:
    value = fields.get(key)
    if value is None:
        raise _missing(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"notification field {key!r} must be an integer, not {value!r}", field=key)
    if value < 1:
        raise BadInput(f"notification field {key!r} must be at least 1, not {value}", field=key)
    return value


def _unit(fields: Mapping[str, object]) -> DaysUnit:
    value = fields.get("days_unit", "working")
    if value == "working":
        return "working"
    if value == "calendar":
        return "calendar"
    raise BadInput(f"notification field 'days_unit' must be 'working' or 'calendar', not {value!r}", field="days_unit")


def _flag(fields: Mapping[str, object], key: str) -> bool:
    value = fields.get(key)
    if not isinstance(value, bool):
        raise BadInput(f"notification field {key!r} must be true or false, not {value!r}", field=key)
    return value


@dataclass(frozen=True)
class _Common:
    task: str
    process: str
    organisation: str
    due: date
    url: str
    explanation: str
    clause: str

    @classmethod
    def read(cls, fields: Mapping[str, object]) -> _Common:
        return cls(
            task=_text(fields, "task"),
            process=_text(fields, "process"),
            organisation=_text(fields, "organisation"),
            due=_day(fields, "due"),
            url=_text(fields, "url"),
            explanation=_text(fields, "explanation", required=False),
            clause=_text(fields, "clause", required=False),
        )

    def head_rows(self) -> list[tuple[str, str]]:
        return [("Задача", self.task), ("Процесс", self.process), ("Организация", self.organisation)]

    def basis_rows(self) -> list[tuple[str, str]]:
        rows = []
        if self.explanation:
            rows.append(("Расчёт срока", self.explanation))
        # The explanation usually ends with "; основание: <clause>" already: do not say it twice.
        if self.clause and self.clause not in self.explanation:
            rows.append(("Основание", self.clause))
        return rows


# -- rendering -------------------------------------------------------------------------------

_GREETING = "Здравствуйте!"
_FOOTER = "Письмо отправлено автоматически, отвечать на него не нужно."
_LINK_LABEL = "Открыть задачу"
_WEB_LINK = re.compile(r"https?://[^\s]", re.IGNORECASE)  # no urllib here: the engine imports no network modules


_WITH_HTML: contextvars.ContextVar[bool] = contextvars.ContextVar("agglo_notifications_html", default=True)


def _one_line(value: str) -> str:
    """Collapse whitespace: a subject is one header line, whatever a task name contains."""
    return " ".join(value.split())


def _letter(subject: str, paragraphs: list[str], rows: list[tuple[str, str]], url: str) -> Message:
    subject = _one_line(subject)
    rows = [(label, value) for label, value in rows if value]

    text_rows = []
    for label, value in rows:
        first, *rest = value.splitlines() or [""]
        text_rows.append(f"{label}: {first}")
        text_rows.extend(f"    {line}" for line in rest)
    text = "\n\n".join([_GREETING, *paragraphs, "\n".join(text_rows), f"{_LINK_LABEL}: {url}", f"-- \n{_FOOTER}"])
    if not _WITH_HTML.get():
        return Message(subject=subject, text=text + "\n", html=None)

    def esc(value: str) -> str:
        return html.escape(value, quote=True).replace("\n", "<br>\n")

    body = [f"<p>{esc(_GREETING)}</p>"]
    body.extend(f"<p>{esc(paragraph)}</p>" for paragraph in paragraphs)
    body.append('<table cellpadding="4" cellspacing="0" style="border-collapse: collapse;">')
    body.extend(
        f'<tr><th align="left" valign="top" style="padding-right: 12px;">{esc(label)}</th><td>{esc(value)}</td></tr>'
        for label, value in rows
    )
    body.append("</table>")
    # Only web links become links: a javascript: or data: "URL" is shown as text.
    if _WEB_LINK.match(url):
        body.append(f'<p><a href="{esc(url)}">{esc(_LINK_LABEL)}</a></p>')
    else:
        body.append(f"<p>{esc(_LINK_LABEL)}: {esc(url)}</p>")
    body.append(f'<p style="color: #666666; font-size: 12px;">{esc(_FOOTER)}</p>')
    page = "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="ru">',
            f'<head><meta charset="utf-8"><title>{esc(subject)}</title></head>',
            '<body style="font-family: Arial, sans-serif; font-size: 14px; color: #222222;">',
            *body,
            "</body>",
            "</html>",
            "",
        ]
    )
    return Message(subject=subject, text=text + "\n", html=page)


# -- the templates ---------------------------------------------------------------------------


def reminder_before(fields: Mapping[str, object]) -> Message:
    """N (working) days before the deadline: ``days`` ≥ 1 is how many are left."""
    c = _Common.read(fields)
    n, unit = _count(fields), _unit(fields)
    left = plural(n, "остался", "осталось", "осталось")
    return _letter(
        f"До срока {left} {days_phrase(n, unit)}: {c.task}",
        [f"До срока исполнения задачи «{c.task}» {left} {days_phrase(n, unit)}. Срок — {format_day(c.due)}."],
        [*c.head_rows(), ("Срок", format_day(c.due)), *c.basis_rows()],
        c.url,
    )


def reminder_due_today(fields: Mapping[str, object]) -> Message:
    """The deadline is today."""
    c = _Common.read(fields)
    return _letter(
        f"Срок сегодня: {c.task}",
        [f"Сегодня, {format_day(c.due)}, — последний день срока исполнения задачи «{c.task}»."],
        [*c.head_rows(), ("Срок", format_day(c.due)), *c.basis_rows()],
        c.url,
    )


def reminder_overdue(fields: Mapping[str, object]) -> Message:
    """The deadline has passed: ``days`` ≥ 1 is by how much."""
    c = _Common.read(fields)
    n, unit = _count(fields), _unit(fields)
    return _letter(
        f"Просрочено на {days_phrase(n, unit)}: {c.task}",
        [
            f"Срок исполнения задачи «{c.task}» истёк {format_day(c.due)}. "
            f"Задача просрочена на {days_phrase(n, unit)}. Выполните её как можно скорее."
        ],
        [*c.head_rows(), ("Срок", format_day(c.due)), ("Просрочено на", days_phrase(n, unit)), *c.basis_rows()],
        c.url,
    )


def escalation(fields: Mapping[str, object]) -> Message:
    """To the supervising role: organisation X's task is overdue by ``days``."""
    c = _Common.read(fields)
    n, unit = _count(fields), _unit(fields)
    return _letter(
        f"Просрочка: {c.organisation} — {c.task} (на {days_phrase(n, unit)})",
        [
            f"Задача «{c.task}» организации «{c.organisation}» просрочена на {days_phrase(n, unit)}: "
            f"срок истёк {format_day(c.due)}.",
            "Вы получили это письмо, так как контролируете исполнение задачи.",
        ],
        [*c.head_rows(), ("Срок", format_day(c.due)), ("Просрочено на", days_phrase(n, unit)), *c.basis_rows()],
        c.url,
    )


def extension_requested(fields: Mapping[str, object]) -> Message:
    """An organisation asks to move its deadline to ``new_due``, because of ``reason``."""
    c = _Common.read(fields)
    requested = _day(fields, "new_due")
    reason = _text(fields, "reason", required=False)
    return _letter(
        f"Запрос на продление срока: {c.task} ({c.organisation})",
        [
            f"Организация «{c.organisation}» просит продлить срок исполнения задачи «{c.task}» "
            f"с {format_day(c.due)} до {format_day(requested)}.",
            "Рассмотрите запрос и примите решение по ссылке ниже.",
        ],
        [
            *c.head_rows(),
            ("Текущий срок", format_day(c.due)),
            ("Запрошенный срок", format_day(requested)),
            ("Обоснование", reason),
            *c.basis_rows(),
        ],
        c.url,
    )


def extension_decided(fields: Mapping[str, object]) -> Message:
    """The decision on an extension: ``approved`` with ``new_due``, or refused with ``comment``."""
    c = _Common.read(fields)
    if _flag(fields, "approved"):
        new_due = _day(fields, "new_due")
        comment = _text(fields, "comment", required=False)
        return _letter(
            f"Срок продлён до {format_day(new_due)}: {c.task}",
            [f"Запрос на продление срока исполнения задачи «{c.task}» одобрен. Новый срок — {format_day(new_due)}."],
            [
                *c.head_rows(),
                ("Прежний срок", format_day(c.due)),
                ("Новый срок", format_day(new_due)),
                ("Комментарий", comment),
                *c.basis_rows(),
            ],
            c.url,
        )
    comment = _text(fields, "comment")
    return _letter(
        f"В продлении срока отказано: {c.task}",
        [f"В продлении срока исполнения задачи «{c.task}» отказано. Срок остаётся прежним — {format_day(c.due)}."],
        [*c.head_rows(), ("Срок", format_day(c.due)), ("Комментарий", comment), *c.basis_rows()],
        c.url,
    )


def deadline_changed(fields: Mapping[str, object]) -> Message:
    """The anchor of a deadline moved: ``due`` (old) → ``new_due``; ``explanation`` is the new computation."""
    c = _Common.read(fields)
    new_due = _day(fields, "new_due")
    reason = _text(fields, "reason", required=False)
    paragraphs = [
        f"Срок исполнения задачи «{c.task}» изменился: был {format_day(c.due)}, стал {format_day(new_due)}.",
        "Срок пересчитан, потому что изменилась дата, от которой он отсчитывается.",
    ]
    return _letter(
        f"Срок изменён: {c.task} — {c.due.strftime('%d.%m.%Y')} → {new_due.strftime('%d.%m.%Y')}",
        paragraphs,
        [
            *c.head_rows(),
            ("Прежний срок", format_day(c.due)),
            ("Новый срок", format_day(new_due)),
            ("Причина", reason),
            *c.basis_rows(),
        ],
        c.url,
    )


Template = Callable[[Mapping[str, object]], Message]

#: Every template by the kind a notification is stored under.
TEMPLATES: Mapping[str, Template] = MappingProxyType(
    {
        "reminder_before": reminder_before,
        "reminder_due_today": reminder_due_today,
        "reminder_overdue": reminder_overdue,
        "escalation": escalation,
        "extension_requested": extension_requested,
        "extension_decided": extension_decided,
        "deadline_changed": deadline_changed,
    }
)


def render(kind: str, fields: Mapping[str, object], *, html: bool = True) -> Message:
    """The message of ``kind`` (a key of :data:`TEMPLATES`); :class:`BadInput` for an unknown kind or bad fields.

    ``html=False`` skips the HTML part (in-app notifications show the text).
    """
    try:
        template = TEMPLATES[kind]
    except KeyError:
        raise BadInput(f"unknown notification kind {kind!r}; known: {', '.join(TEMPLATES)}", field="kind") from None
    token = _WITH_HTML.set(html)
    try:
        return template(fields)
    finally:
        _WITH_HTML.reset(token)
