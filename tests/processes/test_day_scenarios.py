"""The Day of the agglomeration and the annual results over a whole year on a virtual clock.

Scripted people (cli/simulate.py) act on their tasks, some late on purpose; the sweeps fire
timers, reminders and escalations as their times come. Checked against the regulations:
DAY 2.8 (programme no later than 30 days before the Day), DAY 3.5 (analytical information no
later than 30 days after), REG 5.13-5.16 (annual results).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from cli.simulate import ADMIN, Simulation, members_of, timeline
from engine.ports import DeadlineQuery
from engine.records import DeadlineRecord, DeadlineStatus, InstanceStatus


def deadlines_of(sim: Simulation, element_id: str) -> list[DeadlineRecord]:
    return [
        d
        for d in sim.engine.deadlines(ADMIN, DeadlineQuery(status=None, limit=10_000))
        if d.element_id == element_id and d.process_key == "day"
    ]


def events(rows: list[dict[str, Any]], event: str, task_prefix: str = "") -> list[dict[str, Any]]:
    return [r for r in rows if r["event"] == event and (r["task"] or "").startswith(task_prefix)]


@pytest.fixture(scope="module")
def year_2019() -> tuple[Simulation, list[dict[str, Any]]]:
    sim = Simulation(2019, date(2019, 9, 20), members_of(2019, 5))
    return sim, timeline(sim, sim.run())


def test_the_2019_deadlines(year_2019: tuple[Simulation, list[dict[str, Any]]]) -> None:
    sim, _rows = year_2019
    [programme] = deadlines_of(sim, "Task_DraftProgramme")
    assert programme.original_date == date(2019, 8, 21)
    assert programme.original_explanation.startswith("20.09.2019 − 30 дней = 21.08.2019 (среда), рабочий день")
    [report] = deadlines_of(sim, "Task_PrepareAnalytics")
    assert report.original_date == date(2019, 10, 21)
    assert report.original_explanation.startswith(
        "20.09.2019 + 30 дней = 20.10.2019 (воскресенье), выходной день → перенос на следующий рабочий день "
        "21.10.2019 (понедельник), ст. 193 ГК РФ"
    )


def test_the_overdue_programme_is_escalated_to_the_ministry(year_2019: tuple[Simulation, list[dict[str, Any]]]) -> None:
    _sim, rows = year_2019
    escalations = events(rows, "deadline.escalated", "Разработать проект программы")
    assert len(escalations) == 1
    assert escalations[0]["at"].startswith("2019-08-26T09:00")  # three working days after 21.08.2019
    assert "ministry" in escalations[0]["detail"]
    overdue = events(rows, "deadline.overdue", "Разработать проект программы")
    assert [r["at"][:10] for r in overdue] == ["2019-08-22", "2019-08-23", "2019-08-26", "2019-08-27"]
    done = events(rows, "task.completed", "Разработать проект программы")
    assert done and done[0]["late"] is True


def test_an_extension_is_granted_and_rescheduled(year_2019: tuple[Simulation, list[dict[str, Any]]]) -> None:
    sim, rows = year_2019
    [report] = deadlines_of(sim, "Task_PrepareAnalytics")
    assert report.extensions == 1 and report.final_date == date(2019, 10, 28)
    assert report.status == DeadlineStatus.MET and report.late is False
    assert "продлён до 28.10.2019" in report.explanation
    requested = events(rows, "extension.requested", "Направить организатору")
    decided = events(rows, "extension.decided", "Направить организатору")
    assert requested and decided and requested[0]["at"] < decided[0]["at"]
    after = [r for r in events(rows, "deadline.reminder", "Направить организатору") if r["at"] > decided[0]["at"]]
    assert after and all("28.10.2019" in r["detail"] for r in after)


def test_the_day_is_held_on_its_date_and_both_processes_complete(
    year_2019: tuple[Simulation, list[dict[str, Any]]],
) -> None:
    sim, rows = year_2019
    [held] = events(rows, "task.created", "Провести День")
    assert held["at"].startswith("2019-09-20T00:00")
    instances = sim.engine.instances(ADMIN)
    assert {i.process_key for i in instances} == {"day", "annual-results"}
    assert all(i.status == InstanceStatus.COMPLETED for i in instances)
    proposals = sim.engine.instance(next(i.id for i in instances if i.process_key == "annual-results"), ADMIN)
    assert set(proposals.variables["member_proposals"]) == set(sim.members)  # REG 5.13: every member recorded


def test_one_municipality_is_late_and_is_reminded(year_2019: tuple[Simulation, list[dict[str, Any]]]) -> None:
    sim, rows = year_2019
    late = sim.members[-1]
    overdue = [r for r in events(rows, "deadline.overdue", "Направить предложения") if r["organisation"] == late]
    assert overdue and all(late in r["detail"] for r in overdue)
    others = [r for r in events(rows, "deadline.overdue", "Направить предложения") if r["organisation"] != late]
    assert others == []


def test_moving_the_day_after_the_programme_deadline_was_computed() -> None:
    # The programme task is open (due 21.08) when the Ministry moves the Day from 20.09 to 27.09.
    sim = Simulation(
        2019, date(2019, 9, 20), members_of(2019, 3), move_day_to=date(2019, 9, 27), move_on=date(2019, 8, 15)
    )
    rows = timeline(sim, sim.run())
    [changed] = events(rows, "deadline.changed", "Разработать проект программы")
    assert "2019-08-21 → 2019-08-28" in changed["detail"] and changed["at"].startswith("2019-08-15T10:00")
    [programme] = deadlines_of(sim, "Task_DraftProgramme")
    assert programme.original_date == date(2019, 8, 21) and programme.final_date == date(2019, 8, 28)
    assert "27.09.2019 − 30 дней = 28.08.2019" in programme.explanation
    reminders = [
        r for r in events(rows, "deadline.reminder", "Разработать проект программы") if r["at"] > changed["at"]
    ]
    assert reminders and all("28.08.2019" in r["detail"] for r in reminders)
    overdue = events(rows, "deadline.overdue", "Разработать проект программы")
    assert overdue and overdue[0]["at"].startswith("2019-08-29"), "nothing is overdue before the new date"
    [held] = events(rows, "task.created", "Провести День")
    assert held["at"].startswith("2019-09-27T00:00"), "the Day's timer moved with the Day"
    [report] = deadlines_of(sim, "Task_PrepareAnalytics")
    assert report.original_date == date(2019, 10, 28)  # 27.09 + 30 = 27.10 (Sunday) -> 28.10


def test_a_granted_date_on_a_holiday_rolls_to_the_next_working_day() -> None:
    sim = Simulation(
        2019, date(2019, 9, 20), members_of(2019, 2), move_day_to=date(2019, 9, 27), move_on=date(2019, 7, 15)
    )
    sim.run()
    [report] = deadlines_of(sim, "Task_PrepareAnalytics")
    # 28.10 + 7 days = 04.11.2019, the Day of National Unity: the term ends on 05.11 (art. 193).
    assert report.raw_date == date(2019, 11, 4) and report.final_date == date(2019, 11, 5)
    assert "праздничный день" in report.explanation and "ст. 193 ГК РФ" in report.explanation
