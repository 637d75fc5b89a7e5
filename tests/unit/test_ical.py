"""The iCalendar (RFC 5545) feed of deadlines: escaping, folding, line ends, one event per open
deadline, and the private feed URL end to end (parsed by hand: no iCalendar library)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise

import pytest

from engine.clock import VirtualClock
from engine.engine import Engine
from engine.ical import FeedEvent, escape, fold, render
from engine.ports import DeadlineQuery
from tests.bpmn import document, flows, user_task
from tests.conftest import ADMIN, COORDINATOR, KOPEYSK, MINISTRY, TROITSK

# -- a minimal RFC 5545 reader for the tests -------------------------------------------------------------


def unescape(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        ch = value[i]
        if ch == "\\" and i + 1 < len(value):
            nxt = value[i + 1]
            out.append("\n" if nxt in "nN" else nxt)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def physical_lines(feed: str) -> list[bytes]:
    raw = feed.encode("utf-8")
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b""), "every line ends with CRLF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "no bare CR"
    return raw[:-2].split(b"\r\n")


def content_lines(feed: str) -> list[str]:
    """Unfold (RFC 5545 3.1) into logical content lines."""
    return feed[:-2].replace("\r\n ", "").split("\r\n")


def parse_events(feed: str) -> list[dict[str, str]]:
    """The VEVENTs as {name-with-parameters: raw value}, the VALARM's lines prefixed ``ALARM.``."""
    events: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    in_alarm = False
    for line in content_lines(feed):
        if line == "BEGIN:VEVENT":
            current = {}
        elif line == "END:VEVENT":
            assert current is not None
            events.append(current)
            current = None
        elif line == "BEGIN:VALARM":
            in_alarm = True
        elif line == "END:VALARM":
            in_alarm = False
        elif current is not None:
            name, _, value = line.partition(":")
            key = ("ALARM." if in_alarm else "") + name
            assert key not in current, f"{key} twice in one event"
            current[key] = value
    return events


# -- escaping -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "escaped"),
    [
        ("plain", "plain"),
        ("a,b", "a\\,b"),
        ("a;b", "a\\;b"),
        ("a\\b", "a\\\\b"),
        ("line1\nline2", "line1\\nline2"),
        ("line1\r\nline2", "line1\\nline2"),  # CRLF is one line break, not two
        ("line1\rline2", "line1\\nline2"),
        ("\\n is not a newline", "\\\\n is not a newline"),
        ("\\,", "\\\\\\,"),
        ("Срок: 05.03.2026; основание: п. 3, 4", "Срок: 05.03.2026\\; основание: п. 3\\, 4"),
    ],
)
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped
    assert unescape(escape(text)) == text.replace("\r\n", "\n").replace("\r", "\n")


def test_escaped_text_has_no_bare_separators_or_line_breaks() -> None:
    escaped = escape("a,b;c\\d\ne\r\nf,,;;\\\\")
    assert "\n" not in escaped and "\r" not in escaped
    # Every ',' and ';' is preceded by an odd number of backslashes.
    for match in re.finditer(r"(\\*)[,;]", escaped):
        assert len(match.group(1)) % 2 == 1, escaped


# -- folding --------------------------------------------------------------------------------------------------


def test_short_lines_are_not_folded() -> None:
    assert fold("SUMMARY:short") == "SUMMARY:short"
    exactly = "X" * 75
    assert fold(exactly) == exactly
    cyrillic = "Я" * 37  # 74 octets
    assert fold(cyrillic) == cyrillic


def test_a_long_ascii_line_is_folded_at_75_octets() -> None:
    line = "DESCRIPTION:" + "x" * 200
    folded = fold(line)
    parts = folded.split("\r\n")
    assert len(parts) == 3
    assert len(parts[0].encode()) == 75
    assert all(p.startswith(" ") and len(p.encode()) <= 75 for p in parts[1:])
    assert len(parts[1].encode()) == 75  # the space counts
    assert folded.replace("\r\n ", "") == line


@pytest.mark.parametrize(
    "line",
    [
        "SUMMARY:" + "Я" * 100,  # two-octet characters, the boundary at an odd offset
        "SUMMARY:x" + "Я" * 100,  # ...and at an even one
        "DESCRIPTION:" + "№€" * 60,  # three-octet characters
        "DESCRIPTION:a" + "😀" * 40,  # four-octet characters
        "DESCRIPTION:" + "Срок, основание; пункт 5.3 — " * 10,
    ],
)
def test_folding_never_splits_a_utf8_character(line: str) -> None:
    folded = fold(line)
    raw_lines = folded.encode("utf-8").split(b"\r\n")
    assert len(raw_lines) > 1
    for n, raw in enumerate(raw_lines):
        assert len(raw) <= 75, (n, len(raw))
        raw.decode("utf-8")  # each physical line is valid UTF-8 on its own: no character was cut
        if n:
            assert raw.startswith(b" ")
    # Folding is as tight as possible: a line only breaks when the next character does not fit.
    for raw, nxt in pairwise(raw_lines):
        next_char = nxt[1:].decode("utf-8")[0]
        assert len(raw) + len(next_char.encode()) > 75
    assert folded.replace("\r\n ", "") == line


# -- rendering ------------------------------------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 6, 0, 5, tzinfo=UTC)


def test_render_makes_a_calendar_with_one_event_per_deadline() -> None:
    events = [
        FeedEvent("d1@agglo", 3, date(2026, 3, 5), "Срок: Подготовить, подписать; отправить", "Процесс\nREG 5.3", None),
        FeedEvent(
            "d2@agglo",
            1,
            date(2026, 12, 31),
            "Срок: Отчёт",
            "x",
            "https://agglo.example/tasks/t2",
            ("contract", "a,b"),
        ),
    ]
    feed = render(events, NOW, "Сроки: Троицк; МОУО")
    lines = content_lines(feed)
    assert lines[:5] == [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//agglo//Educational agglomeration deadlines//RU",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
    ]
    assert lines[-1] == "END:VCALENDAR"
    assert "X-WR-CALNAME:Сроки: Троицк\\; МОУО" in lines
    first, second = parse_events(feed)
    assert first["UID"] == "d1@agglo" and first["SEQUENCE"] == "3"
    assert first["DTSTAMP"] == "20260302T060005Z"
    assert first["DTSTART;VALUE=DATE"] == "20260305" and first["DTEND;VALUE=DATE"] == "20260306"
    assert first["SUMMARY"] == "Срок: Подготовить\\, подписать\\; отправить"
    assert unescape(first["DESCRIPTION"]) == "Процесс\nREG 5.3"
    assert "URL" not in first and "CATEGORIES" not in first
    assert first["ALARM.TRIGGER"] == "-P1D" and first["ALARM.ACTION"] == "DISPLAY"
    assert second["DTSTART;VALUE=DATE"] == "20261231" and second["DTEND;VALUE=DATE"] == "20270101"
    assert second["URL"] == "https://agglo.example/tasks/t2"
    assert second["CATEGORIES"] == "contract,a\\,b"
    assert feed.count("BEGIN:VEVENT") == feed.count("END:VEVENT") == 2
    assert feed.count("BEGIN:VALARM") == 2


def test_render_ends_every_line_with_crlf_and_folds_long_ones() -> None:
    long_summary = "Срок: " + "Направить аналитическую информацию о результатах, " * 4
    feed = render([FeedEvent("d@agglo", 1, date(2026, 3, 5), long_summary, "описание " * 30, None)], NOW, "Сроки")
    raw_lines = physical_lines(feed)
    assert all(len(raw) <= 75 for raw in raw_lines)
    for raw in raw_lines:
        raw.decode("utf-8")
    assert any(raw.startswith(b" ") for raw in raw_lines), "the long lines were folded"
    [event] = parse_events(feed)
    assert unescape(event["SUMMARY"]) == long_summary


def test_an_empty_calendar_is_still_a_calendar() -> None:
    feed = render([], NOW, "Сроки")
    assert feed.startswith("BEGIN:VCALENDAR\r\n") and feed.endswith("END:VCALENDAR\r\n")
    assert parse_events(feed) == []


# -- the private feed through the engine ------------------------------------------------------------------------


def props(values: dict[str, str]) -> str:
    inner = "".join(f'<camunda:property name="{k}" value="{v}"/>' for k, v in values.items())
    return f"<bpmn:extensionElements><camunda:properties>{inner}</camunda:properties></bpmn:extensionElements>"


FEED_PROCESS = document(
    '<bpmn:startEvent id="start"/>'
    + user_task(
        "prepare",
        "Подготовить документы, справки; акты",
        'camunda:candidateGroups="mouo"',
        props({"deadline": "3 days after target; clause=REG 5.3"}),
    )
    + user_task("note", "Без срока", 'camunda:candidateGroups="mouo"')
    + user_task(
        "check",
        "Проверить документы",
        'camunda:candidateGroups="coordinator"',
        props({"deadline": "2 days after target"}),
    )
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "prepare", "note", "check", "end"),
    "feed",
    name="Заявка на договор",
    attrs='camunda:candidateStarterGroups="mouo"',
)


def open_deadlines(engine: Engine, organisation: str) -> dict[str, date]:
    return {
        f"{d.id}@agglo": d.final_date
        for d in engine.deadlines(ADMIN, DeadlineQuery(limit=10_000))
        if d.organisation == organisation
    }


def feed_events(engine: Engine, secret: str, base_url: str = "") -> dict[str, dict[str, str]]:
    feed = engine.calendar_feed(secret, base_url)
    physical_lines(feed)  # CRLF everywhere
    return {e["UID"]: e for e in parse_events(feed)}


def test_the_feed_holds_the_users_open_deadlines_only(engine: Engine) -> None:
    engine.deploy(FEED_PROCESS, "feed.bpmn", ADMIN)
    engine.start("feed", TROITSK, {"target": "2026-03-10"})
    engine.start("feed", TROITSK, {"target": "2026-03-12"})
    engine.start("feed", KOPEYSK, {"target": "2026-03-11"})
    troitsk = engine.rotate_calendar_token(TROITSK)
    kopeysk = engine.rotate_calendar_token(KOPEYSK)
    coordinator = engine.rotate_calendar_token(COORDINATOR)

    events = feed_events(engine, troitsk)
    expected = open_deadlines(engine, "troitsk-go")
    assert len(expected) == 2
    assert {uid: e["DTSTART;VALUE=DATE"] for uid, e in events.items()} == {
        uid: f"{day:%Y%m%d}" for uid, day in expected.items()
    }
    assert sorted(e["DTSTART;VALUE=DATE"] for e in events.values()) == ["20260313", "20260316"]  # 15.03 is Sunday
    for uid in open_deadlines(engine, "kopeysk-go"):
        assert uid not in events, "another municipality's deadline leaked into the feed"
    assert set(feed_events(engine, kopeysk)) == set(open_deadlines(engine, "kopeysk-go"))
    assert feed_events(engine, coordinator) == {}, "no check task exists yet"
    assert "X-WR-CALNAME:Сроки: troitsk-go" in content_lines(engine.calendar_feed(troitsk))


def test_feed_events_describe_the_task(engine: Engine) -> None:
    engine.deploy(FEED_PROCESS, "feed.bpmn", ADMIN)
    engine.start("feed", TROITSK, {"target": "2026-03-10"})
    [view] = engine.tasks(TROITSK)
    secret = engine.rotate_calendar_token(TROITSK)
    [event] = feed_events(engine, secret, "https://agglo.example").values()
    assert event["SUMMARY"] == "Срок: Подготовить документы\\, справки\\; акты"
    description = unescape(event["DESCRIPTION"]).split("\n")
    assert description[0] == "Заявка на договор"
    assert view.deadline is not None and description[1] == view.deadline.explanation
    assert description[2:] == ["Основание: REG 5.3", f"https://agglo.example/tasks/{view.task.id}"]
    assert event["URL"] == f"https://agglo.example/tasks/{view.task.id}"
    assert event["CATEGORIES"] == "feed"
    assert event["DTEND;VALUE=DATE"] == "20260314"
    assert "URL" not in next(iter(feed_events(engine, secret).values())), "no URL without a base URL"


def test_feed_uids_are_stable_and_a_moved_deadline_updates_its_event(engine: Engine, clock: VirtualClock) -> None:
    engine.deploy(FEED_PROCESS, "feed.bpmn", ADMIN)
    iid = engine.start("feed", TROITSK, {"target": "2026-03-10"}).instance.id
    secret = engine.rotate_calendar_token(TROITSK)
    [(uid, before)] = feed_events(engine, secret).items()
    clock.advance(timedelta(hours=1))
    [(again_uid, again)] = feed_events(engine, secret).items()
    assert again_uid == uid and again["SEQUENCE"] == before["SEQUENCE"]
    assert again["DTSTAMP"] != before["DTSTAMP"]
    # The coordinator moves the anchor date: the same event moves, with a higher SEQUENCE.
    engine.set_variables(iid, COORDINATOR, {"target": "2026-03-17"})
    [(moved_uid, moved)] = feed_events(engine, secret).items()
    assert moved_uid == uid
    assert moved["DTSTART;VALUE=DATE"] == "20260320" and before["DTSTART;VALUE=DATE"] == "20260313"
    assert int(moved["SEQUENCE"]) > int(before["SEQUENCE"])


def test_a_met_deadline_leaves_the_feed_and_the_next_one_appears(engine: Engine) -> None:
    engine.deploy(FEED_PROCESS, "feed.bpmn", ADMIN)
    engine.start("feed", TROITSK, {"target": "2026-03-10"})
    troitsk = engine.rotate_calendar_token(TROITSK)
    coordinator = engine.rotate_calendar_token(COORDINATOR)
    ministry = engine.rotate_calendar_token(MINISTRY)
    [view] = engine.tasks(TROITSK)
    engine.complete(view.task.id, TROITSK, {})
    assert feed_events(engine, troitsk) == {}, "the next task has no deadline"
    [note] = engine.tasks(TROITSK)
    engine.complete(note.task.id, TROITSK, {})
    [event] = feed_events(engine, coordinator).values()
    assert event["SUMMARY"] == "Срок: Проверить документы" and event["DTSTART;VALUE=DATE"] == "20260312"
    assert feed_events(engine, troitsk) == {}
    assert feed_events(engine, ministry) == {}
