"""The production calendar: the holidays package's RU data, our derivations, xmlcalendar overrides."""

from __future__ import annotations

from datetime import date, timedelta
from importlib.metadata import version
from pathlib import Path

import pytest

from engine.calendar import DayKind, ProductionCalendar, YearCalendar, parse_xmlcalendar
from engine.errors import BadInput, UnsafeXml

FIXTURES = Path(__file__).parent / "fixtures"
CAL = ProductionCalendar()


def d(text: str) -> date:
    return date.fromisoformat(text)


def days_of(year: int) -> list[date]:
    first = date(year, 1, 1)
    return [first + timedelta(days=i) for i in range((date(year + 1, 1, 1) - first).days)]


@pytest.fixture(scope="module")
def official_2019() -> YearCalendar:
    return parse_xmlcalendar((FIXTURES / "xmlcalendar_2019.xml").read_bytes(), "xmlcalendar_2019.xml")


@pytest.fixture(scope="module")
def synthetic_2019() -> YearCalendar:
    path = FIXTURES / "xmlcalendar_synthetic_2019.xml"
    return parse_xmlcalendar(path.read_bytes(), path.name)


# --- facts of 2016-2026, from the Government's decrees on moved days off ---------------

WORKING_WEEKENDS = [
    "2016-02-20", "2018-04-28", "2018-06-09", "2018-12-29", "2021-02-20",
    "2022-03-05", "2024-04-27", "2024-11-02", "2024-12-28", "2025-11-01",
]  # fmt: skip

# moved day off -> the day it was moved from
MOVED_DAYS_OFF = {
    "2016-02-22": "2016-02-20", "2016-03-07": "2016-01-02", "2016-05-03": "2016-01-03",
    "2017-02-24": "2017-01-01", "2017-05-08": "2017-01-07",
    "2018-03-09": "2018-01-06", "2018-04-30": "2018-04-28", "2018-05-02": "2018-01-07",
    "2018-06-11": "2018-06-09", "2018-12-31": "2018-12-29",
    "2019-05-02": "2019-01-05", "2019-05-03": "2019-01-06", "2019-05-10": "2019-02-23",
    "2020-05-04": "2020-01-04", "2020-05-05": "2020-01-05",
    "2021-02-22": "2021-02-20", "2021-11-05": "2021-01-02", "2021-12-31": "2021-01-03",
    "2022-03-07": "2022-03-05", "2022-05-03": "2022-01-01", "2022-05-10": "2022-01-02",
    "2023-02-24": "2023-01-01", "2023-05-08": "2023-01-08",
    "2024-04-29": "2024-04-27", "2024-04-30": "2024-11-02", "2024-05-10": "2024-01-06",
    "2024-12-30": "2024-12-28", "2024-12-31": "2024-01-07",
    "2025-05-02": "2025-01-04", "2025-05-08": "2025-02-23", "2025-06-13": "2025-03-08",
    "2025-11-03": "2025-11-01", "2025-12-31": "2025-01-05",
    "2026-01-09": "2026-01-03", "2026-12-31": "2026-01-04",
}  # fmt: skip

# a holiday on a weekend moves to the next working day (art. 112 part 2 of the Labour Code)
OBSERVED_DAYS_OFF = [
    "2016-05-02", "2016-06-13", "2017-11-06", "2018-11-05", "2020-02-24", "2020-03-09",
    "2020-05-11", "2021-05-03", "2021-05-10", "2021-06-14", "2022-05-02", "2022-06-13",
    "2023-11-06", "2026-03-09", "2026-05-11",
]  # fmt: skip

# working days and the 40-hour-week norm (8 h a day, 1 h less on each shortened day),
# as published in the official production calendars
YEAR_NORMS = {
    2016: (247, 1974), 2017: (247, 1973), 2018: (247, 1970), 2019: (247, 1970),
    2020: (248, 1979), 2021: (247, 1972), 2022: (247, 1973), 2023: (247, 1973),
    2024: (248, 1979), 2025: (247, 1972), 2026: (247, 1972),
}  # fmt: skip

SHORTENED_2019 = ["2019-02-22", "2019-03-07", "2019-04-30", "2019-05-08", "2019-06-11", "2019-12-31"]


@pytest.mark.parametrize("day", WORKING_WEEKENDS)
def test_working_saturdays_are_working_days(day: str) -> None:
    assert d(day).weekday() == 5
    assert CAL.is_working_day(d(day))
    assert CAL.day_kind(d(day)) is DayKind.WORKING_WEEKEND


@pytest.mark.parametrize(("day", "origin"), sorted(MOVED_DAYS_OFF.items()))
def test_moved_days_off_are_days_off_and_know_their_origin(day: str, origin: str) -> None:
    assert not CAL.is_working_day(d(day))
    assert CAL.day_kind(d(day)) is DayKind.TRANSFERRED_DAY_OFF
    assert CAL.moved_from(d(day)) == d(origin)


@pytest.mark.parametrize("day", OBSERVED_DAYS_OFF)
def test_holidays_on_weekends_move_to_the_next_weekday(day: str) -> None:
    assert d(day).weekday() == 0
    assert CAL.day_kind(d(day)) is DayKind.TRANSFERRED_DAY_OFF
    assert not CAL.is_working_day(d(day))


@pytest.mark.parametrize(("year", "norm"), sorted(YEAR_NORMS.items()))
def test_working_days_and_hours_per_year_match_the_official_norms(year: int, norm: tuple[int, int]) -> None:
    working = [day for day in days_of(year) if CAL.is_working_day(day)]
    shortened = [day for day in days_of(year) if CAL.is_shortened(day)]
    assert all(CAL.is_working_day(day) for day in shortened)
    assert (len(working), 8 * len(working) - len(shortened)) == norm


def test_the_2019_moves_and_holidays() -> None:
    assert [day for day in days_of(2019)[:10] if not CAL.is_working_day(day)] == [date(2019, 1, i) for i in range(1, 9)]
    for day in ("2019-05-02", "2019-05-03", "2019-05-10"):
        assert not CAL.is_working_day(d(day))
    assert CAL.day_kind(d("2019-02-23")) is DayKind.HOLIDAY  # a Saturday holiday, moved to 10 May
    assert CAL.day_kind(d("2019-05-04")) is DayKind.WEEKEND
    assert CAL.day_kind(d("2019-05-06")) is DayKind.WORKING
    assert CAL.is_working_day(d("2018-04-28"))  # a Saturday made working (for 30 April)


def test_shortened_days_2019() -> None:
    shortened = [day for day in days_of(2019) if CAL.is_shortened(day)]
    assert shortened == [d(s) for s in SHORTENED_2019]
    assert CAL.day_kind(d("2019-04-30")) is DayKind.SHORTENED
    assert CAL.is_working_day(d("2019-04-30"))


def test_shortened_working_saturdays() -> None:
    # A working Saturday standing in for the eve of a holiday is shortened, others are not.
    assert CAL.is_shortened(d("2018-04-28"))
    assert CAL.is_shortened(d("2021-02-20"))
    assert CAL.is_shortened(d("2024-11-02"))
    assert not CAL.is_shortened(d("2024-04-27"))
    assert not CAL.is_shortened(d("2024-12-28"))
    assert not CAL.is_shortened(d("2021-12-30"))  # 31.12.2021 is a moved day off, not a holiday
    assert CAL.day_kind(d("2018-04-28")) is DayKind.WORKING_WEEKEND


def test_holiday_names_are_russian() -> None:
    assert CAL.holiday_name(d("2019-05-01")) == "Праздник Весны и Труда"
    assert CAL.holiday_name(d("2019-01-07")) == "Рождество Христово"
    assert CAL.holiday_name(d("2019-01-03")) == "Новогодние каникулы"
    assert CAL.holiday_name(d("2019-06-12")) == "День России"
    assert CAL.holiday_name(d("2019-11-04")) == "День народного единства"
    assert CAL.holiday_name(d("2019-09-20")) is None
    assert CAL.holiday_name(d("2019-09-21")) is None


def test_presidential_non_working_days_are_not_in_the_package() -> None:
    # Known gap, documented in engine/calendar.py: the 2020 and 2021 decrees' days.
    assert CAL.is_working_day(d("2020-04-06"))
    assert CAL.is_working_day(d("2021-11-01"))


def test_next_and_previous_working_day() -> None:
    assert CAL.next_working_day(d("2019-12-31")) == d("2019-12-31")
    assert CAL.next_working_day(d("2019-12-31"), include_self=False) == d("2020-01-09")
    assert CAL.next_working_day(d("2020-01-01")) == d("2020-01-09")
    assert CAL.previous_working_day(d("2020-01-08")) == d("2019-12-31")
    assert CAL.previous_working_day(d("2019-05-10")) == d("2019-05-08")
    assert CAL.previous_working_day(d("2019-05-08"), include_self=False) == d("2019-05-07")
    assert CAL.next_working_day(d("2018-04-28")) == d("2018-04-28")


def test_add_working_days_across_new_year() -> None:
    assert CAL.add_working_days(d("2019-12-30"), 1) == d("2019-12-31")
    assert CAL.add_working_days(d("2019-12-31"), 1) == d("2020-01-09")
    assert CAL.add_working_days(d("2019-12-30"), 2) == d("2020-01-09")
    assert CAL.add_working_days(d("2020-01-09"), -1) == d("2019-12-31")
    assert CAL.add_working_days(d("2020-01-04"), 1) == d("2020-01-09")  # from a day off
    assert CAL.add_working_days(d("2020-01-04"), 0) == d("2020-01-04")
    assert CAL.add_working_days(d("2019-09-20"), 10) == d("2019-10-04")
    assert CAL.add_working_days(d("2019-09-20"), -10) == d("2019-09-06")


def test_working_days_between_is_half_open() -> None:
    assert CAL.working_days_between(d("2019-12-31"), d("2020-01-08")) == 0
    assert CAL.working_days_between(d("2019-12-30"), d("2020-01-08")) == 1
    assert CAL.working_days_between(d("2019-12-30"), d("2020-01-09")) == 2
    assert CAL.working_days_between(d("2020-01-09"), d("2019-12-30")) == -2
    assert CAL.working_days_between(d("2019-09-20"), d("2019-09-20")) == 0


def test_add_working_days_inverts_working_days_between() -> None:
    start = d("2019-12-20")
    for offset in range(-40, 40):
        end = start + timedelta(days=offset)
        if CAL.is_working_day(end):
            assert CAL.add_working_days(start, CAL.working_days_between(start, end)) == end


def test_source_and_provisional_years(synthetic_2019: YearCalendar) -> None:
    assert CAL.source(2019) == f"holidays {version('holidays')}"
    assert CAL.with_override(synthetic_2019).source(2019) == "xmlcalendar"
    assert CAL.with_override(synthetic_2019).source(2020) == f"holidays {version('holidays')}"
    assert not CAL.is_provisional(2026)
    assert CAL.is_provisional(2099)
    assert not CAL.with_override(YearCalendar(year=2099)).is_provisional(2099)


def test_package_data_is_cached_per_year() -> None:
    assert ProductionCalendar().year(2019) is ProductionCalendar().year(2019)


# --- xmlcalendar overrides -------------------------------------------------------------


def test_official_2019_file_agrees_with_the_package(official_2019: YearCalendar) -> None:
    xml = ProductionCalendar({2019: official_2019})
    assert official_2019.source == "xmlcalendar"
    for day in days_of(2019):
        assert xml.is_working_day(day) == CAL.is_working_day(day), day
        assert xml.is_shortened(day) == CAL.is_shortened(day), day
        assert xml.day_kind(day) == CAL.day_kind(day), day
    assert xml.holiday_name(d("2019-05-01")) == "Праздник Весны и Труда"
    assert xml.moved_from(d("2019-05-10")) == d("2019-02-23")


def test_an_override_replaces_the_year_entirely(synthetic_2019: YearCalendar) -> None:
    synthetic = CAL.with_override(synthetic_2019)
    assert synthetic.is_working_day(d("2019-01-02"))  # no New Year holidays in the fake file
    assert synthetic.is_working_day(d("2019-05-02"))
    assert not synthetic.is_working_day(d("2019-08-21"))
    assert synthetic.day_kind(d("2019-08-21")) is DayKind.TRANSFERRED_DAY_OFF
    assert synthetic.day_kind(d("2019-10-19")) is DayKind.WORKING_WEEKEND
    assert synthetic.day_kind(d("2019-10-21")) is DayKind.HOLIDAY
    assert synthetic.holiday_name(d("2019-10-21")) == "Синтетический праздник"
    # other years and the original calendar are untouched
    assert not synthetic.is_working_day(d("2020-01-02"))
    assert not CAL.is_working_day(d("2019-01-02"))
    assert CAL.overrides == {}
    assert set(synthetic.overrides) == {2019}


def test_override_year_must_match() -> None:
    with pytest.raises(BadInput, match="2020"):
        ProductionCalendar({2019: YearCalendar(year=2020)})
    with pytest.raises(BadInput, match="another year"):
        YearCalendar(year=2019, days={d("2020-01-01"): DayKind.HOLIDAY})
    with pytest.raises(BadInput, match="weekday"):
        YearCalendar(year=2019, days={d("2019-09-20"): DayKind.WORKING_WEEKEND})


def _xml(days: str, *, root: str = '<calendar year="2019" lang="ru" country="ru">', holidays_: str = "") -> bytes:
    body = f'<holidays><holiday id="1" title="Праздник"/>{holidays_}</holidays><days>{days}</days>'
    end = "</" + root[1:].split()[0].rstrip(">") + ">"
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{root}\n{body}\n{end}'.encode()


def test_minimal_document_parses() -> None:
    year = parse_xmlcalendar(_xml('<day d="09.20" t="1" h="1"/><day d="09.21" t="3"/><day d="09.19" t="2"/>'))
    assert year.year == 2019
    assert year.days[d("2019-09-20")] is DayKind.HOLIDAY
    assert year.days[d("2019-09-21")] is DayKind.WORKING_WEEKEND
    assert year.days[d("2019-09-19")] is DayKind.SHORTENED
    assert year.shortened == {d("2019-09-19")}


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (_xml("", root='<calendars year="2019">'), "root element is <calendars>, expected <calendar>"),
        (_xml("", root="<calendar>"), "four-digit year"),
        (_xml("", root='<calendar year="19">'), "four-digit year"),
        (_xml("", root='<calendar year="двадцать">'), "four-digit year"),
        (_xml('<day d="13.01" t="1"/>'), "d='13.01' is not a day of 2019"),
        (_xml('<day d="02.29" t="1"/>'), "d='02.29' is not a day of 2019"),
        (_xml('<day d="1.1" t="1"/>'), "d='1.1' is not a day in MM.DD form"),
        (_xml('<day t="1"/>'), "d=None is not a day in MM.DD form"),
        (_xml('<day d="01.01" t="4"/>'), "t='4' is not a day type"),
        (_xml('<day d="01.01"/>'), "t='' is not a day type"),
        (_xml('<day d="09.20" t="3"/>'), "t=3 (a working Saturday or Sunday) on 2019-09-20, a weekday"),
        (_xml('<day d="01.01" t="1" h="7"/>'), "h='7' refers to no <holiday id>"),
        (_xml('<day d="01.01" t="1" f="1.1"/>'), "f='1.1'"),
        (_xml('<day d="01.01" t="1"/><day d="01.01" t="1"/>'), "listed twice"),
        (_xml('<week d="01.01" t="1"/>'), "unexpected <week> in <days>"),
        (_xml("", holidays_='<holiday id="1" title="again"/>'), "declared twice"),
        (b'<calendar year="2019"><holidays/></calendar>', "exactly one <days>"),
    ],
)
def test_bad_documents_are_refused_with_a_reason(document: bytes, message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_xmlcalendar(document, "bad.xml")
    assert message in str(info.value)
    assert "bad.xml" in str(info.value)


def test_errors_name_the_line() -> None:
    document = b'<calendar year="2019">\n<days>\n<day d="01.01" t="1"/>\n<day d="99.01" t="1"/>\n</days>\n</calendar>'
    with pytest.raises(BadInput, match=r"cal\.xml:4: d='99\.01'"):
        parse_xmlcalendar(document, "cal.xml")


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0"?>\n<!DOCTYPE calendar [<!ENTITY x "01.01">]>\n'
        b'<calendar year="2019"><days><day d="&x;" t="1"/></days></calendar>',
        b'<?xml version="1.0"?>\n<!DOCTYPE calendar SYSTEM "http://example.org/calendar.dtd">\n'
        b'<calendar year="2019"><days/></calendar>',
        b'<calendar year="2019"><days><day d="01.01" t="1"/></days>',  # not well-formed
    ],
)
def test_unsafe_or_broken_xml_is_refused(document: bytes) -> None:
    with pytest.raises(UnsafeXml):
        parse_xmlcalendar(document, "evil.xml")


def test_comments_are_ignored() -> None:
    year = parse_xmlcalendar(
        b'<calendar year="2019"><!-- c --><days><!-- c --><day d="09.20" t="1"/></days></calendar>'
    )
    assert year.days == {d("2019-09-20"): DayKind.TRANSFERRED_DAY_OFF}
