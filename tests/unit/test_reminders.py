"""Reminder policies and schedules on the production calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from engine.calendar import ProductionCalendar
from engine.clock import REGION_TZ
from engine.errors import BadInput
from engine.reminders import (
    ReminderPolicy,
    end_of_day,
    in_quiet_hours,
    next_point,
    points,
    quiet_hours_end,
    supervising_role,
)

CAL = ProductionCalendar()


def local(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=REGION_TZ).astimezone(UTC)


def first_points(policy: ReminderPolicy, due: date, n: int) -> list[tuple[str, date]]:
    result = []
    for point in points(policy, due, CAL):
        result.append((point.key, point.day))
        if len(result) == n:
            break
    return result


def test_default_schedule_for_the_2019_programme_deadline() -> None:
    # 21.08.2019 (Wednesday): 7, 3 and 1 working days before, the day itself, then overdue.
    assert first_points(ReminderPolicy(), date(2019, 8, 21), 8) == [
        ("before:7", date(2019, 8, 12)),
        ("before:3", date(2019, 8, 16)),
        ("before:1", date(2019, 8, 20)),
        ("due", date(2019, 8, 21)),
        ("overdue:1", date(2019, 8, 22)),
        ("overdue:2", date(2019, 8, 23)),
        ("overdue:3", date(2019, 8, 26)),  # the weekend is skipped
        ("escalation", date(2019, 8, 26)),
    ]


def test_reminders_skip_new_year_holidays() -> None:
    # 01-08.01.2020 are days off: one working day before 10.01 is 09.01, three are 30.12.2019.
    keys = dict(first_points(ReminderPolicy(), date(2020, 1, 10), 4))
    assert keys == {
        "before:7": date(2019, 12, 24),
        "before:3": date(2019, 12, 30),
        "before:1": date(2020, 1, 9),
        "due": date(2020, 1, 10),
    }
    assert all(CAL.is_working_day(day) for _, day in first_points(ReminderPolicy(), date(2020, 1, 10), 40))


def test_reminders_go_out_at_the_start_of_the_working_day_in_chelyabinsk() -> None:
    point = next(iter(points(ReminderPolicy(), date(2019, 8, 21), CAL)))
    assert point.at == datetime(2019, 8, 12, 4, 0, tzinfo=UTC)  # 09:00 UTC+5
    assert end_of_day(date(2019, 8, 21)) == datetime(2019, 8, 21, 18, 59, 59, tzinfo=UTC)


def test_custom_policy_from_process_and_task_properties() -> None:
    policy = ReminderPolicy.from_properties(
        {"reminders.before": "5,2", "escalation.after": "2", "escalation.to": "ministry"},
        {"reminders.before": "1", "reminders.overdue_every": "2", "reminders.on_due_day": "false"},
    )
    assert policy == ReminderPolicy(
        before=(1,), on_due_day=False, overdue_every=2, escalation_after=2, escalation_to="ministry"
    )
    keys = [k for k, _ in first_points(policy, date(2019, 8, 21), 4)]
    assert keys == ["before:1", "overdue:2", "escalation", "overdue:4"]


def test_policy_can_turn_everything_off() -> None:
    policy = ReminderPolicy.from_properties(
        {
            "reminders.before": "none",
            "reminders.on_due_day": "нет",
            "reminders.overdue_every": "0",
            "escalation.after": "0",
        }
    )
    assert list(points(policy, date(2019, 8, 21), CAL)) == []


@pytest.mark.parametrize(
    ("props", "field"),
    [
        ({"reminders.before": "seven"}, "reminders.before"),
        ({"reminders.before": "0"}, "reminders.before"),
        ({"reminders.on_due_day": "maybe"}, "reminders.on_due_day"),
        ({"escalation.after": "-1"}, "escalation.after"),
        ({"reminders.every": "1"}, "reminders.every"),
    ],
)
def test_bad_policies_name_the_property(props: dict[str, str], field: str) -> None:
    with pytest.raises(BadInput) as caught:
        ReminderPolicy.from_properties(props)
    assert caught.value.field == field


def test_next_point_skips_advance_reminders_from_before_the_deadline_existed() -> None:
    created = local(date(2019, 8, 19), 12)  # two working days before 21.08, at noon
    point = next_point(ReminderPolicy(), date(2019, 8, 21), CAL, after=None, created=created)
    assert point is not None and point.key == "before:1" and point.day == date(2019, 8, 20)
    after = next_point(ReminderPolicy(), date(2019, 8, 21), CAL, after=point.at, created=created)
    assert after is not None and after.key == "due"


def test_a_deadline_created_already_late_escalates_at_once_then_reminds_daily() -> None:
    created = local(date(2019, 9, 2), 12)  # 21.08 passed long ago
    point = next_point(ReminderPolicy(), date(2019, 8, 21), CAL, after=None, created=created)
    assert point is not None and point.key == "escalation" and point.at == created
    following = next_point(ReminderPolicy(), date(2019, 8, 21), CAL, after=point.at, created=created)
    assert following is not None and following.kind == "overdue" and following.day == date(2019, 9, 3)


def test_quiet_hours() -> None:
    evening = datetime(2019, 8, 20, 21, 30, tzinfo=REGION_TZ)
    assert in_quiet_hours(evening, 20, 8)
    assert not in_quiet_hours(datetime(2019, 8, 20, 12, 0, tzinfo=REGION_TZ), 20, 8)
    assert quiet_hours_end(evening, 8) == datetime(2019, 8, 21, 8, 0, tzinfo=REGION_TZ)
    early = datetime(2019, 8, 21, 6, 0, tzinfo=REGION_TZ)
    assert quiet_hours_end(early, 8) == early + timedelta(hours=2)
    assert not in_quiet_hours(evening, 8, 8)


def test_supervising_roles() -> None:
    assert supervising_role(("mouo",)) == "coordinator"
    assert supervising_role(("coordinator",)) == "ministry"
    assert supervising_role(("expert", "coordinator")) == "coordinator"
