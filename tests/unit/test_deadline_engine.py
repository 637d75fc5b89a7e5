"""Deadlines inside the engine: rules from the BPMN, reminders, escalation, anchor changes,
extensions, timers and timer starts, all on a virtual clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from engine.clock import REGION_TZ, VirtualClock
from engine.directory import COORDINATOR_ORG, MINISTRY_ORG, Organisation, OrgKind, User
from engine.engine import Engine
from engine.errors import BadInput, InvalidState, NotPermitted
from engine.ports import AuditQuery, DeadlineQuery, ExtensionQuery, Store
from engine.records import DeadlineStatus, DeliveryStatus, ExtensionStatus, InstanceStatus
from engine.sandbox import Sandbox
from engine.settings import Settings
from tests.bpmn import document, flows, user_task
from tests.conftest import ADMIN, COORDINATOR, MINISTRY, TROITSK

PROPS = """<bpmn:extensionElements><camunda:properties>{}</camunda:properties></bpmn:extensionElements>"""


def props(values: dict[str, str]) -> str:
    return PROPS.format("".join(f'<camunda:property name="{k}" value="{v}"/>' for k, v in values.items()))


DAY = document(
    '<bpmn:startEvent id="start"/>'
    + user_task(
        "draft",
        "Подготовить программу",
        'camunda:candidateGroups="coordinator"',
        props({"deadline": "30 days before day_date; clause=DAY 2.8"}),
    )
    + user_task("approve", "Утвердить программу", 'camunda:candidateGroups="ministry"')
    + user_task(
        "report",
        "Направить аналитическую информацию",
        'camunda:candidateGroups="coordinator"',
        props({"deadline": "30 days after day_date; clause=DAY 3.5", "deadline.variable": "report_due"}),
    )
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "draft", "approve", "report", "end"),
    "day",
    attrs='camunda:candidateStarterGroups="ministry"',
)


def at(day: date, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=REGION_TZ).astimezone(UTC)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(at(date(2019, 7, 1), 10))


@pytest.fixture
def engine(clock: VirtualClock, store: Store) -> Engine:
    engine = Engine(store, clock, sandbox=Sandbox(time_limit=0.5), settings=Settings(base_url="https://agglo.example"))
    engine.import_directory(
        ADMIN,
        [
            Organisation(MINISTRY_ORG, "Министерство", OrgKind.MINISTRY),
            Organisation(COORDINATOR_ORG, "РЦОКИО", OrgKind.COORDINATOR),
        ],
        [
            User("ministry", "Министерство", MINISTRY_ORG, frozenset({"ministry"}), email="m@example.org"),
            User("coordinator", "Координатор", COORDINATOR_ORG, frozenset({"coordinator"}), email="c@example.org"),
        ],
        [],
    )
    engine.deploy(DAY, "day.bpmn", ADMIN)
    return engine


def task_of(engine: Engine, actor, element_id: str):
    [view] = [v for v in engine.tasks(actor) if v.task.element_id == element_id]
    return view.task


def test_the_2019_programme_and_report_deadlines(engine: Engine) -> None:
    iid = engine.start("day", MINISTRY, {"day_date": "2019-09-20"}).instance.id
    draft = task_of(engine, COORDINATOR, "draft")
    deadline = engine.deadlines(ADMIN, DeadlineQuery(task_id=draft.id))[0]
    assert deadline.final_date == date(2019, 8, 21)
    assert deadline.explanation == "20.09.2019 − 30 дней = 21.08.2019 (среда), рабочий день; основание: DAY 2.8"
    assert deadline.clause == "DAY 2.8" and deadline.anchor == "day_date" and deadline.anchor_value == date(2019, 9, 20)
    assert draft.due_at == at(date(2019, 8, 21), 23, 59) + timedelta(seconds=59)
    engine.complete(draft.id, COORDINATOR, {})
    engine.complete(task_of(engine, MINISTRY, "approve").id, MINISTRY, {})
    report = engine.deadlines(ADMIN, DeadlineQuery(task_id=task_of(engine, COORDINATOR, "report").id))[0]
    assert report.raw_date == date(2019, 10, 20) and report.final_date == date(2019, 10, 21)
    assert "20.10.2019 (воскресенье), выходной день" in report.explanation and "ст. 193 ГК РФ" in report.explanation
    assert engine.instance(iid, ADMIN).variables["report_due"] == "2019-10-21"


def test_reminders_escalation_and_never_twice(engine: Engine, clock: VirtualClock) -> None:
    engine.start("day", MINISTRY, {"day_date": "2019-09-20"})
    for day in (
        date(2019, 8, 12),
        date(2019, 8, 16),
        date(2019, 8, 20),
        date(2019, 8, 21),
        date(2019, 8, 22),
        date(2019, 8, 23),
        date(2019, 8, 26),
    ):
        clock.set(at(day, 9, 1))
        while (report := engine.sweep_reminders("w1")).done:  # one reminder per deadline per sweep
            assert report.failed == 0
        assert engine.sweep_reminders("w2").claimed == 0, "a due reminder fires once"
    kinds = [r.kind for r in engine.reminders_of(engine.instances(ADMIN)[0].id, ADMIN)]
    assert kinds == ["before", "before", "before", "due_today", "overdue", "overdue", "overdue", "escalation"]
    escalation = next(r for r in engine.reminders_of(engine.instances(ADMIN)[0].id, ADMIN) if r.kind == "escalation")
    assert escalation.recipients == ("ministry",) and escalation.fired_at == at(date(2019, 8, 26), 9, 1)
    coordinator_notes = engine.notifications(COORDINATOR)
    assert len(coordinator_notes) == 7
    assert any("просроч" in n.title.lower() for n in coordinator_notes)
    ministry_notes = engine.notifications(MINISTRY)
    assert len(ministry_notes) == 1 and ministry_notes[0].kind == "escalation"
    with engine.store.transaction() as tx:
        emails = tx.list_deliveries(channel="email")
    assert len(emails) == 8 and all(d.status == DeliveryStatus.QUEUED for d in emails)
    assert {d.address for d in emails} == {"c@example.org", "m@example.org"}
    actions = [e.action for e in engine.audit(ADMIN, AuditQuery(limit=1000))]
    assert actions.count("deadline.reminder") == 4 and actions.count("deadline.overdue") == 3
    assert actions.count("deadline.escalated") == 1


def test_a_failing_reminder_neither_blocks_its_batch_nor_is_lost(
    engine: Engine, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One deadline whose reminder raises (an unexpected error, not an AggloError) is recorded and
    retried an hour later; the other deadlines of the same batch are reminded on time."""
    from engine import sweeps

    ids = [engine.start("day", MINISTRY, {"day_date": "2019-09-20"}).instance.id for _ in range(3)]
    poisoned = engine.deadlines(ADMIN, DeadlineQuery(instance_id=ids[1]))[0]
    real_fire = sweeps._fire

    def fire(engine_: Engine, tx, deadline, *args, **kwargs):  # type: ignore[no-untyped-def]
        if deadline.id == poisoned.id:
            raise ValueError("template store unreachable")
        return real_fire(engine_, tx, deadline, *args, **kwargs)

    monkeypatch.setattr(sweeps, "_fire", fire)
    clock.set(at(date(2019, 8, 12), 9, 1))
    report = engine.sweep_reminders("w1")
    assert (report.claimed, report.done, report.failed) == (3, 2, 1)
    assert "ValueError: template store unreachable" in report.errors[0]
    fired = {i: [r.kind for r in engine.reminders_of(i, ADMIN)] for i in ids}
    assert fired == {ids[0]: ["before"], ids[1]: [], ids[2]: ["before"]}
    [failure] = [e for e in engine.audit(ADMIN, AuditQuery(limit=1000)) if e.action == "deadline.reminder_failed"]
    assert failure.instance_id == ids[1] and "template store unreachable" in failure.details["error"]
    assert engine.sweep_reminders("w1").claimed == 0, "not retried on every tick"
    monkeypatch.setattr(sweeps, "_fire", real_fire)
    clock.advance(sweeps.RETRY_AFTER)
    assert engine.sweep_reminders("w1").done == 1
    assert [r.kind for r in engine.reminders_of(ids[1], ADMIN)] == ["before"], "retried, not lost"


def test_quiet_hours_delay_reminders(engine: Engine, clock: VirtualClock) -> None:
    engine.start("day", MINISTRY, {"day_date": "2019-09-20"})
    clock.set(at(date(2019, 8, 12), 22, 30))  # the worker was down all day: catches up at night
    report = engine.sweep_reminders("w1")
    assert report.deferred == 1 and report.done == 0
    [deadline] = engine.deadlines(ADMIN)
    assert deadline.next_reminder_at == at(date(2019, 8, 13), 8)
    clock.set(at(date(2019, 8, 13), 8, 0))
    assert engine.sweep_reminders("w1").done == 1


def test_moving_the_day_moves_the_deadlines_and_keeps_the_original(engine: Engine, clock: VirtualClock) -> None:
    iid = engine.start("day", MINISTRY, {"day_date": "2019-09-20"}).instance.id
    clock.set(at(date(2019, 8, 12), 9, 5))
    engine.sweep_reminders("w")  # the 7-day reminder went out for 21.08
    engine.set_variables(iid, MINISTRY, {"day_date": "2019-09-27"})
    [deadline] = engine.deadlines(ADMIN)
    assert deadline.final_date == date(2019, 8, 28) and deadline.original_date == date(2019, 8, 21)
    assert deadline.plan_version == 2
    assert task_of(engine, COORDINATOR, "draft").due_at == at(date(2019, 8, 28), 23, 59) + timedelta(seconds=59)
    assert deadline.next_reminder_key == "before:7" and deadline.next_reminder_at == at(date(2019, 8, 19), 9)
    [change] = engine.audit(ADMIN, AuditQuery(action="deadline.changed"))
    assert change.details["from"] == "2019-08-21" and change.details["to"] == "2019-08-28"
    assert "27.09.2019 − 30 дней = 28.08.2019" in change.details["explanation"]
    assert any(n.kind == "deadline_changed" for n in engine.notifications(COORDINATOR))


def test_completion_closes_the_deadline_and_marks_lateness(engine: Engine, clock: VirtualClock) -> None:
    engine.start("day", MINISTRY, {"day_date": "2019-09-20"})
    clock.set(at(date(2019, 8, 23), 12))
    engine.complete(task_of(engine, COORDINATOR, "draft").id, COORDINATOR, {})
    [closed] = engine.deadlines(ADMIN, DeadlineQuery(status=DeadlineStatus.MET))
    assert closed.late is True and closed.next_reminder_at is None
    assert engine.sweep_reminders("w").claimed == 0


def test_extension_requested_approved_and_rescheduled(engine: Engine, clock: VirtualClock) -> None:
    engine.start("day", MINISTRY, {"day_date": "2019-09-20"})
    draft = task_of(engine, COORDINATOR, "draft")
    with pytest.raises(BadInput):
        engine.request_extension(draft.id, COORDINATOR, "", date(2019, 8, 30))
    with pytest.raises(BadInput):
        engine.request_extension(draft.id, COORDINATOR, "участники не прислали предложения", date(2019, 8, 20))
    request = engine.request_extension(draft.id, COORDINATOR, "участники не прислали предложения", date(2019, 8, 30))
    assert request.approver_role == "ministry" and request.status == ExtensionStatus.PENDING
    with pytest.raises(InvalidState):
        engine.request_extension(draft.id, COORDINATOR, "ещё раз", date(2019, 9, 2))
    assert any(n.kind == "extension_requested" for n in engine.notifications(MINISTRY))
    notes, unread = engine.notifications_page(MINISTRY, unread_only=True, limit=1)
    assert len(notes) == 1 and unread == engine.count_notifications(MINISTRY, unread_only=True) >= 1
    assert engine.notifications_page(MINISTRY, limit=1, offset=unread)[0] == [], "newest first, then past the end"
    for actor in (MINISTRY, COORDINATOR, ADMIN):  # the approver's role, the requester, an administrator
        seen, total = engine.extension_requests_page(actor)
        assert [e.id for e in seen] == [request.id] and total == 1, actor
    assert engine.extension_requests_page(TROITSK) == ([], 0), "another organisation's request stays hidden"
    assert engine.extension_requests_page(MINISTRY, ExtensionQuery(limit=1, offset=1)) == ([], 1)
    with pytest.raises(NotPermitted):
        engine.decide_extension(request.id, COORDINATOR, True)
    with pytest.raises(BadInput):
        engine.decide_extension(request.id, MINISTRY, False)
    decided = engine.decide_extension(request.id, MINISTRY, True, "согласовано")
    assert decided.status == ExtensionStatus.APPROVED and decided.new_date == date(2019, 8, 30)
    [deadline] = engine.deadlines(ADMIN)
    assert deadline.final_date == date(2019, 8, 30) and deadline.original_date == date(2019, 8, 21)
    assert deadline.extensions == 1 and "продлён до 30.08.2019" in deadline.explanation
    assert task_of(engine, COORDINATOR, "draft").due_at == at(date(2019, 8, 30), 23, 59) + timedelta(seconds=59)
    assert any(n.kind == "extension_decided" for n in engine.notifications(COORDINATOR))
    actions = [e.action for e in engine.audit(ADMIN, AuditQuery(limit=1000))]
    assert {"extension.requested", "extension.decided", "deadline.changed"} <= set(actions)
    clock.set(at(date(2019, 8, 22), 9, 1))
    engine.sweep_reminders("w")
    assert [r.kind for r in engine.reminders_of(engine.instances(ADMIN)[0].id, ADMIN)][-1] == "before"


def test_timer_sweep_fires_due_timers_and_records_incidents(clock: VirtualClock, store: Store) -> None:
    engine = Engine(store, clock, sandbox=Sandbox(time_limit=0.5))
    ok = document(
        '<bpmn:startEvent id="s"/><bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
        + user_task("t", "T", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:endEvent id="e"/>'
        + flows("s", "wait", "t", "e"),
        "ok",
    )
    bad = document(
        '<bpmn:startEvent id="s"/><bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
        '<bpmn:scriptTask id="boom" scriptFormat="python"><bpmn:script>x = 1 / zero</bpmn:script>'
        '</bpmn:scriptTask><bpmn:endEvent id="e"/>' + flows("s", "wait", "boom", "e"),
        "bad",
    )
    engine.deploy(ok, "ok.bpmn", ADMIN)
    engine.deploy(bad, "bad.bpmn", ADMIN)
    good_id = engine.start("ok", COORDINATOR).instance.id
    bad_id = engine.start("bad", COORDINATOR, {"zero": 0}).instance.id
    assert engine.sweep_timers("w").claimed == 0
    clock.advance(timedelta(hours=1, seconds=1))
    report = engine.sweep_timers("w")
    assert report.claimed == 2 and report.done == 2 and report.failed == 1
    assert engine.instance(good_id, ADMIN).instance.status == InstanceStatus.RUNNING
    broken = engine.instance(bad_id, ADMIN).instance
    assert broken.status == InstanceStatus.INCIDENT and "boom" in (broken.incident or "")
    assert engine.sweep_timers("w").claimed == 0  # an incident waits for a person, not for the next tick


def test_timer_start_event_starts_instances_on_schedule(clock: VirtualClock, store: Store) -> None:
    engine = Engine(store, clock, sandbox=Sandbox(time_limit=0.5))
    yearly = document(
        '<bpmn:startEvent id="every"><bpmn:timerEventDefinition><bpmn:timeCycle>'
        "R2/2019-07-02T09:00:00+05:00/P1D</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:startEvent>"
        + user_task("t", "T", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:endEvent id="e"/>'
        + flows("every", "t", "e"),
        "cycle",
    )
    engine.deploy(yearly, "cycle.bpmn", ADMIN)
    with pytest.raises(InvalidState, match="starts by its timer"):
        engine.start("cycle", COORDINATOR)
    assert engine.sweep_start_timers("w").claimed == 0
    clock.set(at(date(2019, 7, 2), 9, 0))
    assert engine.sweep_start_timers("w").done == 1
    assert len(engine.tasks(COORDINATOR)) == 1
    clock.set(at(date(2019, 7, 3), 9, 0))
    assert engine.sweep_start_timers("w").done == 1
    clock.set(at(date(2019, 7, 4), 9, 0))
    assert engine.sweep_start_timers("w").claimed == 0  # R2: two occurrences only
    assert len(engine.tasks(COORDINATOR)) == 2
    started = [e for e in engine.audit(ADMIN, AuditQuery(action="instance.started"))]
    assert [e.details["timer"] for e in started] == ["every", "every"]


@pytest.mark.parametrize(
    ("start_event", "expected"),
    [
        # The yearly cycle, unbounded: one instance a year, on the date, for as long as it runs.
        (
            "<bpmn:timeCycle>R/2019-12-02T09:00:00+05:00/P1Y</bpmn:timeCycle>",
            [date(2019, 12, 2), date(2020, 12, 2), date(2021, 12, 2)],
        ),
        # A date: once.
        ("<bpmn:timeDate>2019-12-02T09:00:00+05:00</bpmn:timeDate>", [date(2019, 12, 2)]),
    ],
)
def test_a_yearly_timer_start_runs_the_cycle_every_year(
    clock: VirtualClock, store: Store, start_event: str, expected: list[date]
) -> None:
    engine = Engine(store, clock, sandbox=Sandbox(time_limit=0.5))
    source = document(
        f'<bpmn:startEvent id="yearly"><bpmn:timerEventDefinition>{start_event}</bpmn:timerEventDefinition>'
        "</bpmn:startEvent>"
        + user_task("results", "Подвести итоги года", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:endEvent id="e"/>'
        + flows("yearly", "results", "e"),
        "annual",
    )
    engine.deploy(source, "annual.bpmn", ADMIN)
    started: list[date] = []
    day = date(2019, 11, 1)
    while day < date(2022, 3, 1):  # three years and a bit, a sweep every week
        clock.set(at(day, 10))
        for _ in range(engine.sweep_start_timers("w").done):
            started.append(day)
        day += timedelta(days=7)
    instances = engine.instances(ADMIN)
    assert len(instances) == len(expected)
    assert sorted(i.started_at.astimezone(REGION_TZ).year for i in instances) == [d.year for d in expected]
    # Each one started in the week its date fell in (the sweep ran weekly here; the worker ticks every second).
    assert all(0 <= (s - e).days < 7 for s, e in zip(started, expected, strict=True)), started


XML_2019_WITH_21_08_OFF = b"""<?xml version="1.0" encoding="UTF-8"?>
<calendar year="2019" lang="ru" date="2019.01.01" country="ru">
  <holidays><holiday id="1" title="Test holiday"/></holidays>
  <days><day d="01.01" t="1" h="1"/><day d="08.21" t="1" h="1"/></days>
</calendar>"""


def test_importing_a_calendar_moves_open_deadlines(engine: Engine) -> None:
    engine.start("day", MINISTRY, {"day_date": "2019-09-20"})
    with pytest.raises(NotPermitted):
        engine.import_calendar(XML_2019_WITH_21_08_OFF, COORDINATOR)
    result = engine.import_calendar(XML_2019_WITH_21_08_OFF, ADMIN, "2019.xml")
    assert result == {"year": 2019, "deadlines_moved": 1}
    [deadline] = engine.deadlines(ADMIN)
    assert deadline.final_date == date(2019, 8, 20)  # "no later than" rolls back to the previous working day
    assert "предыдущий рабочий день" in deadline.explanation


def test_task_views_show_the_deadline_with_its_explanation(engine: Engine, clock: VirtualClock) -> None:
    engine.start("day", MINISTRY, {"day_date": "2019-09-20"})
    [view] = engine.tasks(COORDINATOR)
    shown = view.to_dict()["deadline"]
    assert shown["date"] == "2019-08-21" and shown["clause"] == "DAY 2.8"
    assert shown["explanation"].startswith("20.09.2019 − 30 дней = 21.08.2019")
    assert view.overdue is False
    clock.set(at(date(2019, 8, 22), 10))
    again = engine.task(view.task.id, COORDINATOR)
    assert again.overdue is True and again.deadline is not None
