"""An iCalendar (RFC 5545) feed of deadlines, for Outlook, Thunderbird and Yandex Calendar.

Each open deadline is an all-day VEVENT on its current date with a reminder the day before
(a deadline met leaves the feed); its UID is stable (the deadline's id) and SEQUENCE follows
the deadline's version, so a moved deadline updates the subscriber's event instead of adding
a second one. Text is escaped
(RFC 5545 3.3.11) and lines are folded at 75 octets without splitting a UTF-8 character
(3.1); line ends are CRLF.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

PRODID = "-//agglo//Educational agglomeration deadlines//RU"


@dataclass(frozen=True)
class FeedEvent:
    uid: str
    sequence: int
    day: date
    summary: str
    description: str
    url: str | None
    categories: tuple[str, ...] = ()


def escape(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\r\n", "\\n")
        .replace("\n", "\\n")
        .replace("\r", "\\n")
    )


def fold(line: str) -> str:
    """Fold a content line into chunks of at most 75 octets (continuations start with a space)."""
    encoded = line.encode()
    if len(encoded) <= 75:
        return line
    parts: list[str] = []
    current = ""
    size = 0
    limit = 75
    for ch in line:
        width = len(ch.encode())
        if size + width > limit:
            parts.append(current)
            current, size, limit = "", 0, 74  # the leading space of a continuation counts
        current += ch
        size += width
    parts.append(current)
    return "\r\n ".join(parts)


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def render(events: Iterable[FeedEvent], now: datetime, name: str) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"X-WR-CALNAME:{escape(name)}",
        "X-WR-TIMEZONE:Asia/Yekaterinburg",
        "REFRESH-INTERVAL;VALUE=DURATION:PT1H",
        "X-PUBLISHED-TTL:PT1H",
    ]
    for e in events:
        lines += [
            "BEGIN:VEVENT",
            f"UID:{escape(e.uid)}",
            f"SEQUENCE:{e.sequence}",
            f"DTSTAMP:{_stamp(now)}",
            f"DTSTART;VALUE=DATE:{e.day:%Y%m%d}",
            f"DTEND;VALUE=DATE:{e.day + timedelta(days=1):%Y%m%d}",
            f"SUMMARY:{escape(e.summary)}",
            f"DESCRIPTION:{escape(e.description)}",
            "TRANSP:TRANSPARENT",
            "STATUS:CONFIRMED",
        ]
        if e.url:
            lines.append(f"URL:{e.url}")
        if e.categories:
            lines.append(f"CATEGORIES:{','.join(escape(c) for c in e.categories)}")
        lines += ["BEGIN:VALARM", "ACTION:DISPLAY", f"DESCRIPTION:{escape(e.summary)}", "TRIGGER:-P1D", "END:VALARM"]
        lines.append("END:VEVENT")
    lines.append("END:VCALENDAR")
    return "".join(fold(line) + "\r\n" for line in lines)
