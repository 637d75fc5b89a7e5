"""Russian texts of deadline e-mails: plurals, dates, every kind, escaping, bad fields."""

from __future__ import annotations

from datetime import UTC, date, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from engine.errors import BadInput
from engine.notifications import (
    TEMPLATES,
    Message,
    NoticeFields,
    days_phrase,
    deadline_changed,
    escalation,
    extension_decided,
    extension_requested,
    format_day,
    plural,
    reminder_before,
    reminder_due_today,
    reminder_overdue,
    render,
)

EXPLANATION = "20.09.2019 − 30 дней = 21.08.2019 (среда), рабочий день; основание: DAY 2.8"


def fields(**changes: Any) -> dict[str, Any]:
    base: NoticeFields = {
        "task": "Представить план мероприятий",
        "process": "Дни Агломерации",
        "organisation": "Троицкий городской округ",
        "due": date(2019, 8, 21),
        "url": "https://agglo.example/tasks/42",
        "explanation": EXPLANATION,
        "clause": "DAY 2.8",
    }
    return {**base, **changes}


class _Text(HTMLParser):
    """The text a mail client would show, and the links."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self.links.extend(value or "" for name, value in attrs if name == "href")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown(message: Message) -> _Text:
    assert message.html is not None
    parser = _Text()
    parser.feed(message.html)
    parser.close()
    return parser


# -- plurals and dates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, "1 рабочий день"),
        (2, "2 рабочих дня"),
        (4, "4 рабочих дня"),
        (5, "5 рабочих дней"),
        (11, "11 рабочих дней"),
        (12, "12 рабочих дней"),
        (14, "14 рабочих дней"),
        (21, "21 рабочий день"),
        (22, "22 рабочих дня"),
        (25, "25 рабочих дней"),
        (101, "101 рабочий день"),
        (111, "111 рабочих дней"),
        (0, "0 рабочих дней"),
    ],
)
def test_working_days_plural(n: int, expected: str) -> None:
    assert days_phrase(n) == expected


@pytest.mark.parametrize(
    ("n", "expected"), [(1, "1 день"), (3, "3 дня"), (5, "5 дней"), (13, "13 дней"), (31, "31 день")]
)
def test_calendar_days_plural(n: int, expected: str) -> None:
    assert days_phrase(n, "calendar") == expected


def test_plural_forms() -> None:
    assert [plural(n, "задача", "задачи", "задач") for n in (1, 3, 7, 11, 21, 1004)] == [
        "задача",
        "задачи",
        "задач",
        "задач",
        "задача",
        "задачи",
    ]


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2019, 8, 21), "21.08.2019 (среда)"),
        (date(2026, 3, 2), "02.03.2026 (понедельник)"),
        (date(2026, 3, 8), "08.03.2026 (воскресенье)"),
    ],
)
def test_format_day(day: date, expected: str) -> None:
    assert format_day(day) == expected


# -- every kind -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "subject", "phrase"),
    [
        (1, "До срока остался 1 рабочий день: Представить план мероприятий", "остался 1 рабочий день"),
        (2, "До срока осталось 2 рабочих дня: Представить план мероприятий", "осталось 2 рабочих дня"),
        (5, "До срока осталось 5 рабочих дней: Представить план мероприятий", "осталось 5 рабочих дней"),
    ],
)
def test_reminder_before(days: int, subject: str, phrase: str) -> None:
    message = reminder_before(fields(days=days))
    assert message.subject == subject
    assert f"До срока исполнения задачи «Представить план мероприятий» {phrase}." in message.text
    assert "Срок: 21.08.2019 (среда)" in message.text
    assert f"Расчёт срока: {EXPLANATION}" in message.text
    assert "Процесс: Дни Агломерации" in message.text
    assert "Организация: Троицкий городской округ" in message.text
    assert "https://agglo.example/tasks/42" in message.text
    # The clause is in the explanation already: not repeated as its own line.
    assert "Основание:" not in message.text


def test_clause_is_shown_when_the_explanation_does_not_name_it() -> None:
    message = reminder_before(fields(days=3, explanation="", clause="п. 3.5 Положения"))
    assert "Основание: п. 3.5 Положения" in message.text
    assert "Расчёт срока" not in message.text


def test_reminder_due_today() -> None:
    message = reminder_due_today(fields())
    assert message.subject == "Срок сегодня: Представить план мероприятий"
    assert "Сегодня, 21.08.2019 (среда), — последний день срока" in message.text


@pytest.mark.parametrize(
    ("days", "unit", "phrase"),
    [
        (1, "working", "1 рабочий день"),
        (3, "working", "3 рабочих дня"),
        (5, "working", "5 рабочих дней"),
        (1, "calendar", "1 день"),
        (3, "calendar", "3 дня"),
        (5, "calendar", "5 дней"),
    ],
)
def test_reminder_overdue(days: int, unit: str, phrase: str) -> None:
    message = reminder_overdue(fields(days=days, days_unit=unit))
    assert message.subject == f"Просрочено на {phrase}: Представить план мероприятий"
    assert f"просрочена на {phrase}." in message.text
    assert "истёк 21.08.2019 (среда)" in message.text


def test_escalation_names_the_organisation() -> None:
    message = escalation(fields(days=3))
    assert message.subject == "Просрочка: Троицкий городской округ — Представить план мероприятий (на 3 рабочих дня)"
    assert (
        "Задача «Представить план мероприятий» организации «Троицкий городской округ» просрочена на 3 рабочих дня"
        in message.text
    )
    assert "контролируете" in message.text


def test_extension_requested() -> None:
    message = extension_requested(fields(new_due=date(2019, 8, 30), reason="Болезнь ответственного"))
    assert message.subject == "Запрос на продление срока: Представить план мероприятий (Троицкий городской округ)"
    assert "с 21.08.2019 (среда) до 30.08.2019 (пятница)" in message.text
    assert "Обоснование: Болезнь ответственного" in message.text


def test_extension_approved() -> None:
    message = extension_decided(fields(approved=True, new_due="2019-08-30"))
    assert message.subject == "Срок продлён до 30.08.2019 (пятница): Представить план мероприятий"
    assert "Новый срок: 30.08.2019 (пятница)" in message.text
    assert "Прежний срок: 21.08.2019 (среда)" in message.text
    assert "Комментарий" not in message.text


def test_extension_refused_with_a_multiline_comment() -> None:
    message = extension_decided(fields(approved=False, comment="Оснований нет.\nСрок установлен приказом."))
    assert message.subject == "В продлении срока отказано: Представить план мероприятий"
    assert "Срок остаётся прежним — 21.08.2019 (среда)." in message.text
    assert "Комментарий: Оснований нет.\n    Срок установлен приказом." in message.text
    assert "Оснований нет.<br>\nСрок установлен приказом." in (message.html or "")


def test_extension_refused_needs_a_comment() -> None:
    with pytest.raises(BadInput, match="'comment' is required"):
        extension_decided(fields(approved=False))


def test_deadline_changed() -> None:
    new = "20.10.2019 − 30 дней = 20.09.2019 (пятница), рабочий день; основание: DAY 2.8"
    message = deadline_changed(
        fields(new_due=date(2019, 9, 20), explanation=new, reason="Перенесена дата проведения Дня")
    )
    assert message.subject == "Срок изменён: Представить план мероприятий — 21.08.2019 → 20.09.2019"
    assert "был 21.08.2019 (среда), стал 20.09.2019 (пятница)" in message.text
    assert f"Расчёт срока: {new}" in message.text
    assert "Причина: Перенесена дата проведения Дня" in message.text


def test_render_by_kind() -> None:
    assert set(TEMPLATES) == {
        "reminder_before",
        "reminder_due_today",
        "reminder_overdue",
        "escalation",
        "extension_requested",
        "extension_decided",
        "deadline_changed",
    }
    assert render("reminder_overdue", fields(days=2)) == reminder_overdue(fields(days=2))
    with pytest.raises(BadInput, match="unknown notification kind 'reminder_after'"):
        render("reminder_after", fields())


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_every_kind_has_a_one_line_subject_and_both_parts(kind: str) -> None:
    data = fields(days=2, new_due=date(2019, 8, 30), approved=True, comment="ок", reason="причина")
    message = render(kind, data)
    assert message.subject and "\n" not in message.subject
    assert message.text.startswith("Здравствуйте!\n\n")
    assert message.text.endswith("\n-- \nПисьмо отправлено автоматически, отвечать на него не нужно.\n")
    page = shown(message)
    assert page.links == ["https://agglo.example/tasks/42"]
    assert "Представить план мероприятий" in "".join(page.text)


# -- escaping and bad input -------------------------------------------------------------------


def test_html_escapes_every_value() -> None:
    hostile = '<script>alert("x")</script> & «ООО "Ромашка"»'
    message = reminder_before(
        fields(
            days=1,
            task=hostile,
            process="<b>процесс</b>",
            organisation="<img src=x onerror=alert(1)>",
            explanation="1 < 2 & 3 > 2",
            url='https://agglo.example/tasks/42?a=1&b="><script>',
        )
    )
    assert message.html is not None
    assert "<script" not in message.html and "<img" not in message.html and "<b>" not in message.html
    page = shown(message)
    assert set(page.tags) <= {"html", "head", "meta", "title", "body", "p", "table", "tr", "th", "td", "a", "br"}
    assert hostile in "".join(page.text)
    assert "1 < 2 & 3 > 2" in "".join(page.text)
    assert page.links == ['https://agglo.example/tasks/42?a=1&b="><script>']
    # The plain text part is not HTML: it shows the values as they are.
    assert hostile in message.text


def test_only_web_links_become_links() -> None:
    page = shown(reminder_due_today(fields(url="javascript:alert(1)")))
    assert page.links == []
    assert "javascript:alert(1)" in "".join(page.text)


def test_subject_is_one_line_whatever_the_task_name() -> None:
    message = reminder_due_today(fields(task="План\r\nBcc: spy@evil.example"))
    assert message.subject == "Срок сегодня: План Bcc: spy@evil.example"


def test_dates_may_be_iso_strings_or_aware_datetimes() -> None:
    as_string = reminder_due_today(fields(due="2019-08-21"))
    # 20:00 UTC on the 20th is already the 21st in the region (UTC+5).
    as_instant = reminder_due_today(fields(due=datetime(2019, 8, 20, 20, 0, tzinfo=UTC)))
    assert as_string == as_instant == reminder_due_today(fields())


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"task": None}, "'task' is required"),
        ({"url": ""}, "'url' is required"),
        ({"due": "21.08.2019"}, "'due' must be a date"),
        ({"due": 20190821}, "'due' must be a date"),
        ({"task": 42}, "'task' must be a string"),
        ({"days": 0}, "'days' must be at least 1"),
        ({"days": True}, "'days' must be an integer"),
        ({"days": "3"}, "'days' must be an integer"),
        ({"days": 3, "days_unit": "weeks"}, "'days_unit' must be"),
    ],
)
def test_bad_fields_are_refused(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(BadInput, match=match) as caught:
        reminder_before(fields(**{"days": 3, **changes}))
    assert caught.value.field is not None


def test_missing_days_and_decision() -> None:
    with pytest.raises(BadInput, match="'days' is required"):
        reminder_overdue(fields())
    with pytest.raises(BadInput, match="'approved' must be true or false"):
        extension_decided(fields(new_due=date(2019, 8, 30)))
    with pytest.raises(BadInput, match="'new_due' is required"):
        deadline_changed(fields())
