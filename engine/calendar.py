"""Russia's production calendar: which days are working days.

A :class:`ProductionCalendar` answers, for any date, whether it is a working day and why
(:class:`DayKind`), names the holiday where known, and walks forward and backward over
working days. It is pure: its data comes from the ``holidays`` package (computed once per
year and cached) and from :class:`YearCalendar` overrides the caller passes in, usually
parsed from an xmlcalendar.ru file with :func:`parse_xmlcalendar`. An override replaces
the package's data for its year entirely.

What the ``holidays`` package (0.109, ``holidays.countries.russia``) covers for RU
------------------------------------------------------------------------------------
* The non-working public holidays of art. 112 of the Labour Code (Трудовой кодекс РФ):
  1-6 and 8 January (Новогодние каникулы), 7 January (Рождество Христово), 23 February,
  8 March, 1 May, 9 May, 12 June, 4 November, with their Russian names
  (``language="ru"``), for 1991-2100.
* Days off moved by the Government's yearly decree (переносы выходных дней), from
  ``RussiaStaticHolidays.special_public_holidays``, for 1991-2027 (the last decree the
  package knows; years after it are *provisional*, see
  :meth:`ProductionCalendar.is_provisional`). Each moved day off is named
  ``"Выходной (перенесено с DD.MM.YYYY)"``, which gives the day it came from: for 2019,
  2 and 3 May come from 5 and 6 January, 10 May from 23 February (a Saturday).
* The weekend days made working by those decrees (рабочие субботы), exposed as
  ``weekend_workdays``: e.g. 20.02.2016, 28.04.2018, 09.06.2018, 29.12.2018,
  20.02.2021, 05.03.2022, 27.04.2024, 02.11.2024, 28.12.2024, 01.11.2025.
* Holidays falling on a weekend and moved to the next working day by art. 112 part 2
  (e.g. 05.11.2018, 24.02.2020, 09.03.2026), named ``"<holiday> (выходной)"``.

What it does not cover
----------------------
* Pre-holiday shortened working days (сокращённые предпраздничные дни, art. 95 of the
  Labour Code): the package has no ``half_day`` category for RU. This module derives
  them: a working day is shortened when the next calendar day is a non-working public
  holiday, or when it is a working weekend day whose work was moved to a weekday that
  itself precedes such a holiday (20.02.2016 stands in for 22.02.2016, the eve of
  23 February). Checked day by day against the xmlcalendar.ru data: identical for
  2015-2026 apart from the decree days below.
* Non-working days declared by Presidential decrees outside the Labour Code's
  mechanism: 30.03-30.04.2020, 06-08.05.2020, 24.06.2020 and 01.07.2020 (Указы
  № 206, 239, 294, 345, 354 of 2020), 04-07.05.2021 and 30.10-03.11.2021 (Указы № 242
  and 595 of 2021). The package treats them as working days. Whether such days count
  for art. 193 of the Civil Code is a legal question (the Supreme Court's COVID-19
  review № 1 of 21.04.2020 dealt with it for spring 2020); the package's answer is the
  default here, and an xmlcalendar override for the year follows the decrees instead.
* Regional holidays (the Chelyabinsk region has none that we know of) and decrees for years after the
  package's last known one.
* Older gaps outside the range we need: 10.03.2014 (8 March on a Saturday) is missing.

``tests/unit/test_calendar.py`` pins these facts for 2016-2026: every working Saturday
and moved day off, and each year's official number of working days and hours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import Enum
from functools import cache
from types import MappingProxyType
from typing import TypeVar

import holidays as _holidays
from lxml import etree

from .errors import BadInput
from .xml import parse_xml

__all__ = [
    "DayKind",
    "ProductionCalendar",
    "YearCalendar",
    "parse_xmlcalendar",
]

_ONE_DAY = timedelta(days=1)
#: How far the day walkers look before giving up on a calendar without working days.
_MAX_WALK_DAYS = 3660
_PACKAGE_VERSION: str = str(getattr(_holidays, "__version__", "unknown"))
_SUBSTITUTED = re.compile(r"Выходной \(перенесено с (\d{2})\.(\d{2})\.(\d{4})\)")
_OBSERVED_SUFFIX = " (выходной)"
_NAME_DELIMITER = "; "
_K = TypeVar("_K")
_V = TypeVar("_V")


class DayKind(Enum):
    """Why a day is, or is not, a working day."""

    WORKING = "working"
    """An ordinary working weekday."""
    WEEKEND = "weekend"
    """A Saturday or Sunday that stays a day off."""
    HOLIDAY = "holiday"
    """A non-working public holiday (нерабочий праздничный день), or a non-working day
    named by an override (e.g. a Presidential decree's day)."""
    TRANSFERRED_DAY_OFF = "transferred_day_off"
    """A weekday made a day off by moving a weekend or holiday day off onto it (перенос)."""
    WORKING_WEEKEND = "working_weekend"
    """A Saturday or Sunday made a working day by a decree (рабочая суббота). It may also
    be shortened: see :meth:`ProductionCalendar.is_shortened`."""
    SHORTENED = "shortened"
    """A weekday working day shortened by one hour before a holiday (предпраздничный)."""

    @property
    def is_working(self) -> bool:
        """True for the kinds that are working days."""
        return self in (DayKind.WORKING, DayKind.WORKING_WEEKEND, DayKind.SHORTENED)


_NON_WORKING_KINDS = frozenset({DayKind.WEEKEND, DayKind.HOLIDAY, DayKind.TRANSFERRED_DAY_OFF})


def _is_weekend(day: date) -> bool:
    return day.weekday() >= 5


def _frozen_mapping(value: Mapping[_K, _V]) -> Mapping[_K, _V]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class YearCalendar:
    """One year's exceptions to the weekday rule (Monday-Friday work, Saturday-Sunday off).

    ``days`` lists only the exceptional days; a day not listed follows the weekday rule.
    ``holiday_names`` names holidays (and, for moved days off, what they are);
    ``moved_from`` gives, for a moved day off, the day it was moved from where known;
    ``shortened`` holds every shortened working day, weekdays (kind ``SHORTENED``) and
    working weekend days (kind ``WORKING_WEEKEND``) alike. ``source`` says where the data
    came from (``"xmlcalendar"`` for parsed files).
    """

    year: int
    days: Mapping[date, DayKind] = field(default_factory=dict, hash=False)
    holiday_names: Mapping[date, str] = field(default_factory=dict, hash=False)
    moved_from: Mapping[date, date] = field(default_factory=dict, hash=False)
    shortened: frozenset[date] = frozenset()
    source: str = "override"

    def __post_init__(self) -> None:
        object.__setattr__(self, "days", _frozen_mapping(self.days))
        object.__setattr__(self, "holiday_names", _frozen_mapping(self.holiday_names))
        object.__setattr__(self, "moved_from", _frozen_mapping(self.moved_from))
        object.__setattr__(self, "shortened", frozenset(self.shortened))
        for day, kind in self.days.items():
            if day.year != self.year:
                raise BadInput(f"calendar for {self.year} lists {day.isoformat()}, a day of another year")
            if kind is DayKind.WORKING_WEEKEND and not _is_weekend(day):
                raise BadInput(f"{day.isoformat()} is a weekday and cannot be a working weekend day")
        for day in self.shortened:
            if day.year != self.year:
                raise BadInput(f"calendar for {self.year} shortens {day.isoformat()}, a day of another year")

    def kind(self, day: date) -> DayKind:
        """The kind of ``day`` (a day of this year) by this year's data."""
        listed = self.days.get(day)
        if listed is not None:
            return listed
        return DayKind.WEEKEND if _is_weekend(day) else DayKind.WORKING


# --- the holidays package's data -------------------------------------------------------


def _last_decree_year() -> int | None:
    """The last year whose moved days off the package knows, or None if it cannot tell."""
    try:
        from holidays.countries.russia import RussiaStaticHolidays
    except ImportError:  # pragma: no cover - a future package layout
        return None
    known = getattr(RussiaStaticHolidays, "special_public_holidays", None)
    if not isinstance(known, dict) or not known:  # pragma: no cover
        return None
    return max(int(year) for year in known)


_LAST_DECREE_YEAR = _last_decree_year()


@dataclass(frozen=True)
class _PackageDay:
    kind: DayKind
    name: str
    moved_from: date | None


def _classify_package_day(day: date, label: str, names: Mapping[date, str]) -> _PackageDay:
    """Tell a public holiday from a moved day off by the package's Russian labels."""
    parts = label.split(_NAME_DELIMITER)
    proper = [p for p in parts if not _SUBSTITUTED.fullmatch(p) and not p.endswith(_OBSERVED_SUFFIX)]
    if proper:
        return _PackageDay(DayKind.HOLIDAY, _NAME_DELIMITER.join(proper), None)
    first = parts[0]
    match = _SUBSTITUTED.fullmatch(first)
    if match:
        dd, mm, yyyy = (int(g) for g in match.groups())
        return _PackageDay(DayKind.TRANSFERRED_DAY_OFF, first, date(yyyy, mm, dd))
    # "<holiday> (выходной)": a holiday that fell on a weekend, moved by art. 112 part 2.
    holiday = first[: -len(_OBSERVED_SUFFIX)]
    origin = None
    for back in range(1, 8):
        earlier = day - timedelta(days=back)
        if names.get(earlier) == holiday:
            origin = earlier
            break
    return _PackageDay(DayKind.TRANSFERRED_DAY_OFF, first, origin)


@cache
def _package_year(year: int) -> YearCalendar:
    """The package's data for ``year`` (with its neighbours, for cross-year links), cached."""
    years = [y for y in (year - 1, year, year + 1) if 1 <= y <= 9998]
    data = _holidays.country_holidays("RU", years=years, language="ru")
    names: dict[date, str] = {d: str(n) for d, n in data.items()}
    classified = {d: _classify_package_day(d, n, names) for d, n in names.items()}
    weekend_workdays = {d for d in data.weekend_workdays if _is_weekend(d) and d not in names}

    def is_public_holiday(d: date) -> bool:
        entry = classified.get(d)
        return entry is not None and entry.kind is DayKind.HOLIDAY

    def is_working(d: date) -> bool:
        return d in weekend_workdays if _is_weekend(d) else d not in names

    shortened: set[date] = set()
    # art. 95: the working day right before a non-working public holiday is shortened.
    for d in names:
        if is_public_holiday(d) and is_working(d - _ONE_DAY):
            shortened.add(d - _ONE_DAY)
    # A working weekend day inherits the shortening of the weekday whose work it took.
    for d, entry in classified.items():
        origin = entry.moved_from
        if (
            entry.kind is DayKind.TRANSFERRED_DAY_OFF
            and origin is not None
            and origin in weekend_workdays
            and is_public_holiday(d + _ONE_DAY)
        ):
            shortened.add(origin)

    days: dict[date, DayKind] = {}
    holiday_names: dict[date, str] = {}
    moved_from: dict[date, date] = {}
    for d, entry in classified.items():
        if d.year != year:
            continue
        days[d] = entry.kind
        holiday_names[d] = entry.name
        if entry.moved_from is not None:
            moved_from[d] = entry.moved_from
    for d in weekend_workdays:
        if d.year == year:
            days[d] = DayKind.WORKING_WEEKEND
    mine = frozenset(d for d in shortened if d.year == year)
    for d in mine:
        if not _is_weekend(d):
            days[d] = DayKind.SHORTENED
    return YearCalendar(
        year=year,
        days=days,
        holiday_names=holiday_names,
        moved_from=moved_from,
        shortened=mine,
        source=f"holidays {_PACKAGE_VERSION}",
    )


# --- the calendar ----------------------------------------------------------------------


class ProductionCalendar:
    """Working days in Russia: the ``holidays`` package's data, with per-year overrides.

    Immutable: :meth:`with_override` returns a new calendar.
    """

    __slots__ = ("_overrides",)

    def __init__(self, overrides: Mapping[int, YearCalendar] | None = None) -> None:
        checked: dict[int, YearCalendar] = {}
        for year, year_calendar in (overrides or {}).items():
            if year != year_calendar.year:
                raise BadInput(f"override for {year} holds the calendar of {year_calendar.year}")
            checked[year] = year_calendar
        self._overrides: Mapping[int, YearCalendar] = MappingProxyType(checked)

    def __repr__(self) -> str:
        return f"ProductionCalendar(overrides={sorted(self._overrides)})"

    @property
    def overrides(self) -> Mapping[int, YearCalendar]:
        """The loaded overrides, by year (read-only)."""
        return self._overrides

    def year(self, year: int) -> YearCalendar:
        """The data used for ``year``: its override, else the package's."""
        override = self._overrides.get(year)
        return override if override is not None else _package_year(year)

    def with_override(self, year_calendar: YearCalendar) -> ProductionCalendar:
        """A new calendar with ``year_calendar`` replacing the data for its year."""
        return ProductionCalendar({**self._overrides, year_calendar.year: year_calendar})

    def source(self, year: int) -> str:
        """Where ``year``'s data comes from: the override's source (``"xmlcalendar"`` for a
        parsed file) or ``"holidays <version>"``."""
        override = self._overrides.get(year)
        return override.source if override is not None else f"holidays {_PACKAGE_VERSION}"

    def is_provisional(self, year: int) -> bool:
        """True when no override is loaded and ``year`` is after the last Government decree
        on moved days off the package knows: the holidays are right, the moves unknown."""
        if year in self._overrides or _LAST_DECREE_YEAR is None:
            return False
        return year > _LAST_DECREE_YEAR

    def day_kind(self, day: date) -> DayKind:
        """Why ``day`` is or is not a working day."""
        return self.year(day.year).kind(day)

    def is_working_day(self, day: date) -> bool:
        """True if ``day`` is a working day (shortened and working weekend days included)."""
        return self.day_kind(day).is_working

    def is_shortened(self, day: date) -> bool:
        """True if ``day`` is a working day shortened by one hour before a holiday."""
        return day in self.year(day.year).shortened

    def holiday_name(self, day: date) -> str | None:
        """The Russian name of the holiday on ``day`` (or what a moved day off is), if any."""
        return self.year(day.year).holiday_names.get(day)

    def moved_from(self, day: date) -> date | None:
        """For a moved day off, the day it was moved from, where known."""
        return self.year(day.year).moved_from.get(day)

    def next_working_day(self, day: date, *, include_self: bool = True) -> date:
        """The first working day on or after ``day`` (strictly after if not ``include_self``)."""
        return self._walk(day if include_self else day + _ONE_DAY, _ONE_DAY)

    def previous_working_day(self, day: date, *, include_self: bool = True) -> date:
        """The last working day on or before ``day`` (strictly before if not ``include_self``)."""
        return self._walk(day if include_self else day - _ONE_DAY, -_ONE_DAY)

    def add_working_days(self, day: date, n: int) -> date:
        """The ``n``-th working day after ``day`` (before it for negative ``n``).

        ``day`` itself is not counted, whatever its kind; ``n == 0`` returns ``day``.
        """
        step = _ONE_DAY if n >= 0 else -_ONE_DAY
        current = day
        for _ in range(abs(n)):
            current = self._walk(current + step, step)
        return current

    def working_days_between(self, start: date, end: date) -> int:
        """Working days after ``start`` up to and including ``end`` (half-open ``(start, end]``).

        Negative when ``end`` is before ``start`` (then the days ``[end, start)`` are
        counted), so that ``add_working_days(start, working_days_between(start, end)) == end``
        whenever ``end`` is a working day.
        """
        if end < start:
            return -self._count(end, start - _ONE_DAY)
        return self._count(start + _ONE_DAY, end)

    def working_days(self, start: date, end: date) -> Iterable[date]:
        """The working days from ``start`` to ``end``, both included, in order."""
        current = start
        while current <= end:
            if self.is_working_day(current):
                yield current
            current += _ONE_DAY

    def _count(self, first: date, last: date) -> int:
        return sum(1 for _ in self.working_days(first, last))

    def _walk(self, start: date, step: timedelta) -> date:
        current = start
        for _ in range(_MAX_WALK_DAYS):
            if self.is_working_day(current):
                return current
            current += step
        raise BadInput(f"no working day within {_MAX_WALK_DAYS} days of {start.isoformat()}: check the calendar data")


# --- xmlcalendar.ru --------------------------------------------------------------------

_YEAR = re.compile(r"\d{4}")
_MONTH_DAY = re.compile(r"(\d{2})\.(\d{2})")
_HOLIDAY_ID = re.compile(r"\d{1,6}")


def _line(element: etree._Element) -> int | None:
    line = element.sourceline
    return line if isinstance(line, int) else None


def _where(filename: str | None, line: int | None) -> str:
    where = filename or "<xmlcalendar>"
    return f"{where}:{line}" if line else where


def _month_day(value: str | None, year: int, what: str, where: str) -> date:
    match = _MONTH_DAY.fullmatch((value or "").strip())
    if match is None:
        raise BadInput(f"{where}: {what}={value!r} is not a day in MM.DD form", field=what)
    month, day = int(match.group(1)), int(match.group(2))
    try:
        return date(year, month, day)
    except ValueError:
        raise BadInput(f"{where}: {what}={value!r} is not a day of {year}", field=what) from None


def parse_xmlcalendar(data: bytes, filename: str | None = None) -> YearCalendar:
    """Parse an xmlcalendar.ru document (``<calendar year=...>``) into a :class:`YearCalendar`.

    ``<day d="MM.DD" t="1|2|3" h="holiday id" f="MM.DD">``: t=1 a non-working day (a holiday
    when ``h`` is given, else a moved day off on a weekday), t=2 a shortened working day
    (any day of the week), t=3 a working Saturday or Sunday; ``f`` the day a day off was
    moved from. Days not listed follow the weekday rule. Parsed only through
    :func:`engine.xml.parse_xml` (DTDs and entities raise :class:`~engine.errors.UnsafeXml`);
    anything else malformed raises :class:`~engine.errors.BadInput` naming the file, line
    and attribute.
    """
    root = parse_xml(data, filename=filename).getroot()
    if root.tag != "calendar":
        raise BadInput(
            f"{_where(filename, _line(root))}: root element is <{root.tag}>, expected <calendar>",
            field="calendar",
        )
    raw_year = (root.get("year") or "").strip()
    if not _YEAR.fullmatch(raw_year) or int(raw_year) < 1:
        where = _where(filename, _line(root))
        message = f"{where}: <calendar> needs a four-digit year attribute, got {raw_year!r}"
        raise BadInput(message, field="year")
    year = int(raw_year)

    titles: dict[str, str] = {}
    for section in root.findall("holidays"):
        for element in section:
            if not isinstance(element.tag, str):
                continue  # a comment
            where = _where(filename, _line(element))
            if element.tag != "holiday":
                raise BadInput(f"{where}: unexpected <{element.tag}> in <holidays>", field="holidays")
            ident = (element.get("id") or "").strip()
            if not _HOLIDAY_ID.fullmatch(ident):
                raise BadInput(f"{where}: <holiday> needs a numeric id, got {ident!r}", field="id")
            if ident in titles:
                raise BadInput(f"{where}: holiday id {ident} is declared twice", field="id")
            titles[ident] = " ".join((element.get("title") or "").split())

    sections = root.findall("days")
    if len(sections) != 1:
        where = _where(filename, _line(root))
        message = f"{where}: <calendar> needs exactly one <days> element, found {len(sections)}"
        raise BadInput(message, field="days")
    days: dict[date, DayKind] = {}
    names: dict[date, str] = {}
    moved_from: dict[date, date] = {}
    shortened: set[date] = set()
    for element in sections[0]:
        if not isinstance(element.tag, str):
            continue
        where = _where(filename, _line(element))
        if element.tag != "day":
            raise BadInput(f"{where}: unexpected <{element.tag}> in <days>", field="days")
        day = _month_day(element.get("d"), year, "d", where)
        if day in days or day in shortened:
            raise BadInput(f"{where}: day {element.get('d')} is listed twice", field="d")
        kind_code = (element.get("t") or "").strip()
        holiday_id = element.get("h")
        if holiday_id is not None and holiday_id.strip() not in titles:
            raise BadInput(f"{where}: h={holiday_id!r} refers to no <holiday id> of this file", field="h")
        origin = element.get("f")
        if origin is not None:
            moved_from[day] = _month_day(origin, year, "f", where)
        if kind_code == "1":
            if holiday_id is not None:
                days[day] = DayKind.HOLIDAY
                names[day] = titles[holiday_id.strip()] or "праздничный день"
            elif _is_weekend(day):
                days[day] = DayKind.WEEKEND
            else:
                days[day] = DayKind.TRANSFERRED_DAY_OFF
        elif kind_code == "2":
            shortened.add(day)
            days[day] = DayKind.WORKING_WEEKEND if _is_weekend(day) else DayKind.SHORTENED
        elif kind_code == "3":
            if not _is_weekend(day):
                raise BadInput(
                    f"{where}: t=3 (a working Saturday or Sunday) on {day.isoformat()}, a weekday", field="t"
                )
            days[day] = DayKind.WORKING_WEEKEND
        else:
            raise BadInput(f"{where}: t={kind_code!r} is not a day type (1, 2 or 3)", field="t")
    return YearCalendar(
        year=year,
        days=days,
        holiday_names=names,
        moved_from=moved_from,
        shortened=frozenset(shortened),
        source="xmlcalendar",
    )
