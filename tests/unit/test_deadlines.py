"""Deadline rules: parsing, computing on the production calendar, Russian explanations."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from engine.calendar import ProductionCalendar, parse_xmlcalendar
from engine.deadlines import ComputedDeadline, DeadlineRule, Roll, compute, end_of_term, parse_rule
from engine.errors import BadInput

FIXTURES = Path(__file__).parent / "fixtures"
CAL = ProductionCalendar()
DAY_2019 = date(2019, 9, 20)


def d(text: str) -> date:
    return date.fromisoformat(text)


def due(rule: str, anchor: date, calendar: ProductionCalendar = CAL) -> ComputedDeadline:
    return compute(parse_rule(rule), anchor, calendar)


@pytest.fixture(scope="module")
def synthetic() -> ProductionCalendar:
    path = FIXTURES / "xmlcalendar_synthetic_2019.xml"
    return CAL.with_override(parse_xmlcalendar(path.read_bytes(), path.name))


# --- the regulations' own case: the Day on 20.09.2019 ----------------------------------


def test_programme_due_30_days_before_the_day() -> None:
    result = due("30 calendar days before day_date; clause=DAY 2.8", DAY_2019)
    assert result.raw == result.final == d("2019-08-21")
    assert result.explanation == "20.09.2019 − 30 дней = 21.08.2019 (среда), рабочий день; основание: DAY 2.8"


def test_report_due_30_days_after_the_day_rolls_off_a_sunday() -> None:
    result = due("30 days after day_date; clause=DAY 3.5", DAY_2019)
    assert result.raw == d("2019-10-20")
    assert result.final == d("2019-10-21")
    assert result.rolled
    assert result.explanation == (
        "20.09.2019 + 30 дней = 20.10.2019 (воскресенье), выходной день → перенос на следующий "
        "рабочий день 21.10.2019 (понедельник), ст. 193 ГК РФ; основание: DAY 3.5"
    )


def test_russian_rules_mean_the_same() -> None:
    english = parse_rule("30 calendar days before day_date; roll=previous; clause=DAY 2.8")
    russian = parse_rule("30 календарных дней до day_date; перенос=предыдущий; основание=DAY 2.8")
    fields = ("kind", "amount", "unit", "direction", "anchor", "roll", "clause")
    assert [getattr(english, f) for f in fields] == [getattr(russian, f) for f in fields]
    assert compute(russian, DAY_2019, CAL).final == d("2019-08-21")
    assert due("30 дней после day_date", DAY_2019).final == d("2019-10-21")


# --- holidays, moved days off, New Year -------------------------------------------------


def test_after_rolls_over_the_new_year_holidays() -> None:
    result = due("30 days after day_date", d("2019-12-05"))
    assert result.raw == d("2020-01-04")
    assert result.final == d("2020-01-09")
    assert result.explanation == (
        "05.12.2019 + 30 дней = 04.01.2020 (суббота), нерабочий праздничный день (Новогодние каникулы) "
        "→ перенос на следующий рабочий день 09.01.2020 (четверг), ст. 193 ГК РФ"
    )


def test_a_holiday_is_named() -> None:
    result = due("1 day after d", d("2019-04-30"))
    assert result.explanation == (
        "30.04.2019 + 1 день = 01.05.2019 (среда), нерабочий праздничный день (Праздник Весны и Труда) "
        "→ перенос на следующий рабочий день 06.05.2019 (понедельник), ст. 193 ГК РФ"
    )


def test_before_rolls_back_across_a_moved_day_off_and_a_holiday() -> None:
    # 09.06.2019 − 30 = 10.05.2019, a day off moved from 23.02; 09.05 is Victory Day.
    result = due("30 days before day_date", d("2019-06-09"))
    assert result.raw == d("2019-05-10")
    assert result.final == d("2019-05-08")
    assert result.explanation == (
        "09.06.2019 − 30 дней = 10.05.2019 (пятница), нерабочий день (перенос выходного дня) "
        "→ перенос на предыдущий рабочий день 08.05.2019 (среда), так как срок «не позднее» "
        "нельзя переносить на более позднюю дату"
    )


def test_before_rolls_back_across_the_new_year() -> None:
    result = due("30 days before day_date", d("2020-02-07"))
    assert result.raw == d("2020-01-08")
    assert result.final == d("2019-12-31")


def test_moved_days_off_and_working_saturdays() -> None:
    for day in ("2019-05-02", "2019-05-03", "2019-05-10"):
        result = due("1 day after d", d(day) - timedelta(days=1))
        assert "нерабочий день (перенос выходного дня)" in result.explanation
        assert result.rolled
    saturday = due("1 day after d", d("2018-04-27"))
    assert saturday.final == saturday.raw == d("2018-04-28")
    assert "28.04.2018 (суббота), рабочий день (рабочая суббота" in saturday.explanation


def test_working_day_offsets() -> None:
    result = due("10 working days after task.created", DAY_2019)
    assert result.final == d("2019-10-04")
    assert result.explanation == "20.09.2019 + 10 рабочих дней = 04.10.2019 (пятница)"
    assert due("10 рабочих дней после task.created", DAY_2019).final == d("2019-10-04")
    assert due("10 рабочих дней до task.created", DAY_2019).final == d("2019-09-06")
    new_year = due("1 working day after task.created", d("2019-12-31"))
    assert new_year.final == d("2020-01-09")
    assert new_year.explanation == "31.12.2019 + 1 рабочий день = 09.01.2020 (четверг)"
    assert due("2 рабочих дня после x", d("2019-12-30")).explanation.endswith("+ 2 рабочих дня = 09.01.2020 (четверг)")


def test_zero_working_days_from_a_day_off_still_lands_on_a_working_day() -> None:
    result = due("0 working days after x", d("2020-01-04"))
    assert result.final == d("2020-01-09")


def test_end_of_month() -> None:
    result = due("end of month roadmap_term", d("2019-05-15"))
    assert result.final == d("2019-05-31")
    assert result.explanation == "конец месяца 05.2019 = 31.05.2019 (пятница), рабочий день"
    rolled = due("конец месяца roadmap_term", d("2020-05-01"))
    assert (rolled.raw, rolled.final) == (d("2020-05-31"), d("2020-06-01"))
    assert rolled.explanation.endswith("ст. 193 ГК РФ")
    assert due("End Of The Month x", d("2019-02-01")).final == d("2019-02-28")


def test_fixed_rules() -> None:
    rule = parse_rule("fixed 20.10.2019; clause=ДК 1.1")
    assert (rule.kind, rule.anchor, rule.fixed_date) == ("fixed", "", d("2019-10-20"))
    result = compute(rule, None, CAL)
    assert result.final == d("2019-10-21")
    assert result.explanation.startswith("срок 20.10.2019 (воскресенье), выходной день → перенос")
    assert compute(parse_rule("срок май 2019"), None, CAL).final == d("2019-05-31")


# --- roll options -----------------------------------------------------------------------


def test_default_rolls() -> None:
    assert parse_rule("30 days before x").roll is Roll.PREVIOUS
    assert parse_rule("30 days after x").roll is Roll.NEXT
    assert parse_rule("end of month x").roll is Roll.NEXT
    assert parse_rule("fixed 2019-05-01").roll is Roll.NEXT


def test_explicit_rolls() -> None:
    kept = due("30 days after day_date; roll=none", DAY_2019)
    assert kept.final == kept.raw == d("2019-10-20")
    assert kept.explanation.endswith("выходной день, срок не переносится (roll=none)")
    back = due("30 days after day_date; перенос=назад", DAY_2019)
    assert back.final == d("2019-10-18")
    assert "по правилу срока (roll=previous)" in back.explanation
    forward = due("30 days before x; roll=NEXT", d("2019-06-09"))
    assert forward.final == d("2019-05-13")
    assert "по правилу срока (roll=next)" in forward.explanation


# --- the xmlcalendar override changes results -------------------------------------------


def test_override_changes_the_result(synthetic: ProductionCalendar) -> None:
    report = due("30 days after day_date", DAY_2019, synthetic)
    assert report.final == d("2019-10-22")
    assert "21.10.2019" not in report.explanation.split("→")[0]
    assert report.calendar_source == "xmlcalendar"
    programme = due("30 days before day_date", DAY_2019, synthetic)
    assert programme.final == d("2019-08-20")
    assert "21.08.2019 (среда), нерабочий день (перенос выходного дня)" in programme.explanation
    holiday = due("1 day after x", d("2019-10-20"), synthetic)
    assert "нерабочий праздничный день (Синтетический праздник)" in holiday.explanation
    assert due("30 days after day_date", DAY_2019).calendar_source.startswith("holidays ")


# --- explanations ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "1 день"), (2, "2 дня"), (4, "4 дня"), (5, "5 дней"), (11, "11 дней"), (12, "12 дней"),
     (14, "14 дней"), (21, "21 день"), (22, "22 дня"), (25, "25 дней"), (101, "101 день"), (111, "111 дней")],
)  # fmt: skip
def test_russian_plurals(n: int, words: str) -> None:
    assert f"+ {words} = " in due(f"{n} days after x", DAY_2019).explanation


@pytest.mark.parametrize(
    ("n", "words"),
    [(1, "1 рабочий день"), (2, "2 рабочих дня"), (5, "5 рабочих дней"), (21, "21 рабочий день")],
)
def test_russian_plurals_of_working_days(n: int, words: str) -> None:
    assert f"− {words} = " in due(f"{n} working days before x", DAY_2019).explanation


def test_shortened_days_are_said_so() -> None:
    assert due("1 day after x", d("2019-04-29")).explanation.endswith(
        "30.04.2019 (вторник), рабочий день (предпраздничный, сокращённый)"
    )


def test_a_provisional_year_is_flagged() -> None:
    result = due("30 days after x", d("2099-12-05"))
    assert "производственный календарь на 2100 год ещё не утверждён" in result.explanation
    assert "ещё не утверждён" not in due("30 days after x", DAY_2019).explanation


def test_datetime_anchors_use_the_regions_day() -> None:
    # 19.09.2019 20:00 UTC is already 20.09.2019 in Chelyabinsk (UTC+5).
    created = datetime(2019, 9, 19, 20, 0, tzinfo=UTC)
    result = due("10 working days after task.created", created)
    assert result.anchor_value == DAY_2019
    assert result.final == d("2019-10-04")
    naive = datetime(2019, 9, 20, 1, 0)
    assert due("10 working days after task.created", naive).anchor_value == DAY_2019
    moscow = datetime(2019, 9, 19, 23, 30, tzinfo=timezone(timedelta(hours=3)))
    assert due("1 day after x", moscow).anchor_value == DAY_2019


def test_a_missing_anchor_value_is_refused() -> None:
    with pytest.raises(BadInput, match="needs a value for 'day_date'"):
        compute(parse_rule("30 days after day_date"), None, CAL)


# --- storage --------------------------------------------------------------------------


def test_round_trip_through_json() -> None:
    result = due("30 дней после day_date; основание=DAY 3.5", DAY_2019)
    stored = json.loads(json.dumps(result.to_dict(), ensure_ascii=False))
    assert stored["version"] == 1
    assert stored["final"] == "2019-10-21"
    assert ComputedDeadline.from_dict(stored) == result
    fixed = compute(parse_rule("fixed май 2019"), None, CAL)
    assert ComputedDeadline.from_dict(json.loads(json.dumps(fixed.to_dict()))) == fixed


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(version=99), "version"),
        (lambda s: s.update(final="21.10.2019"), "'final' is not an ISO date"),
        (lambda s: s["rule"].update(roll="sideways"), "unknown roll"),
        (lambda s: s["rule"].update(unit="weeks"), "unknown deadline unit"),
        (lambda s: s["rule"].update(amount="30"), "'amount' must be an integer"),
        (lambda s: s.pop("rule"), "'rule' must be an object"),
    ],
)
def test_bad_stored_deadlines_are_refused(mutate: object, message: str) -> None:
    stored = due("30 days after day_date", DAY_2019).to_dict()
    stored["rule"] = dict(stored["rule"])  # type: ignore[call-overload]
    mutate(stored)  # type: ignore[operator]
    with pytest.raises(BadInput, match=message):
        ComputedDeadline.from_dict(stored)


# --- parsing ---------------------------------------------------------------------------


def test_parsing_is_forgiving_about_spaces_and_case() -> None:
    rule = parse_rule("  30   Calendar\tDAYS  Before   day_date ;ROLL = Previous ;  clause =  DAY   2.8 ; ")
    assert (rule.kind, rule.amount, rule.unit, rule.direction, rule.anchor) == (
        "offset", 30, "calendar", "before", "day_date",
    )  # fmt: skip
    assert rule.roll is Roll.PREVIOUS
    assert rule.clause == "DAY 2.8"
    assert rule.text == "30 Calendar DAYS Before day_date; ROLL=Previous; clause=DAY 2.8"
    assert parse_rule("30days after x").amount == 30
    assert parse_rule("30 дн. после x").unit == "calendar"
    assert parse_rule("5 business days after x").unit == "working"


def test_rule_equality_and_str() -> None:
    rule = parse_rule("10 рабочих дней после task.created")
    assert isinstance(rule, DeadlineRule)
    assert str(rule) == "10 рабочих дней после task.created"
    assert DeadlineRule.from_dict(rule.to_dict()) == rule


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("30 weeks before day_date", "position 4: unknown unit 'weeks'"),
        ("30 недель до day_date", "position 4: unknown unit 'недель'"),
        (
            "30 working before day_date",
            "position 12: expected 'days' / 'дней' after 'working', found 'before'",
        ),
        ("30 days before", "position 15: missing anchor"),
        ("30 дней до", "missing anchor (a process variable name or task.created) after 'до'"),
        ("end of month", "missing anchor"),
        ("30 days after day_date; foo=bar", "position 25: unknown option 'foo'; expected roll or clause"),
        ("30 days after day_date; roll=sideways", "unknown roll 'sideways'"),
        ("30 days after day_date; roll", "option 'roll' must be written as name=value"),
        ("30 days after day_date; roll=next; roll=none", "option 'roll' is given twice"),
        ("30 days after day_date; clause=", "option 'clause' has no value"),
        ("30 days beside day_date", "position 9: unknown direction 'beside'"),
        ("30 days", "missing the direction"),
        ("30", "missing the unit"),
        ("30 days before 1st_date", "anchor '1st_date' is not a process variable name"),
        ("30 days before day_date now", "position 25: unexpected 'now' after the anchor"),
        ("-30 days before day_date", "must not be negative"),
        ("99999 days after x", "more than the limit"),
        ("soon", "position 1: expected a number of days"),
        ("end of week x", "expected 'end of month'"),
        ("fixed", "missing the date or month after 'fixed'"),
        ("fixed когда-нибудь", "cannot read 'когда'"),
        ("; roll=next", "the rule is missing"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_parse_errors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(BadInput) as info:
        parse_rule(text)
    assert message in str(info.value)


# --- roadmap terms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "end"),
    [
        ("2019-05", "2019-05-31"),
        ("05.2019", "2019-05-31"),
        ("май 2019", "2019-05-31"),
        ("Май 2019 г.", "2019-05-31"),
        ("в мае 2019 года", "2019-05-31"),
        ("до конца мая 2019", "2019-05-31"),
        ("ЯНВАРЕ 2020", "2020-01-31"),
        ("января 2020", "2020-01-31"),
        ("февраль 2020", "2020-02-29"),
        ("март 2019", "2019-03-31"),
        ("в марте 2019", "2019-03-31"),
        ("августа 2019", "2019-08-31"),
        ("сентябрь 2019", "2019-09-30"),
        ("декабрь 2019", "2019-12-31"),
        ("20.09.2019", "2019-09-20"),
        ("2019-09-20", "2019-09-20"),
        ("20 сентября 2019 г.", "2019-09-20"),
        ("до 20.09.2019", "2019-09-20"),
        ("февраль - август 2019", "2019-08-31"),
        ("Февраль – Август 2019", "2019-08-31"),
        ("февраль—август 2019", "2019-08-31"),
        ("с февраля по август 2019", "2019-08-31"),
        ("сентябрь, октябрь 2019", "2019-10-31"),
        ("сентябрь и октябрь 2019", "2019-10-31"),
        ("декабрь 2019 - февраль 2020", "2020-02-29"),
        ("ноябрь 2019 - январь", "2020-01-31"),
        ("с 01.09.2019 по 20.09.2019", "2019-09-20"),
        ("IV квартал 2019", "2019-12-31"),
        ("1 квартал 2020", "2020-03-31"),
        ("I полугодие 2019", "2019-06-30"),
        ("2019 год", "2019-12-31"),
        ("в течение 2019 года", "2019-12-31"),
        ("May 2019", "2019-05-31"),
    ],
)
def test_end_of_term(term: str, end: str) -> None:
    assert end_of_term(term) == d(end)


def test_end_of_term_with_a_separate_year() -> None:
    assert end_of_term("Май", year=2019) == d("2019-05-31")
    assert end_of_term("февраль - август", year=2019) == d("2019-08-31")
    assert end_of_term("май 2020", year=2019) == d("2020-05-31")  # the term's own year wins


@pytest.mark.parametrize(
    ("term", "message"),
    [
        ("Май", "has no year"),
        ("ежемесячно", "cannot read 'ежемесячно'"),
        ("в течение года", "names no date"),
        ("31.02.2019", "not a valid date"),
        ("13.2019", "not a valid date"),
        ("", "empty"),
        ("маяк 2019", "cannot read 'маяк'"),
    ],
)
def test_bad_terms_are_refused(term: str, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        end_of_term(term)
