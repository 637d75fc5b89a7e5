"""Read models: the overdue (execution-discipline) report, a diagram's state, a month of deadlines,
paged task/instance/deadline/audit lists with their filters, and incidents with their retry."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from engine.clock import REGION_TZ, VirtualClock
from engine.directory import Actor
from engine.engine import Engine
from engine.errors import BadInput, InvalidState, NotFound, NotPermitted
from engine.ports import AuditQuery, DeadlineQuery, InstanceQuery
from engine.records import InstanceStatus, TaskQuery, TaskRecord, TaskStatus
from engine.services import ServiceContext, ServiceRegistry
from tests.bpmn import cond_flow, document, flows, user_task
from tests.conftest import ADMIN, COORDINATOR, KOPEYSK, MINISTRY, START, TROITSK

STARTERS = 'camunda:candidateStarterGroups="mouo,coordinator"'


def props(values: dict[str, str]) -> str:
    inner = "".join(f'<camunda:property name="{k}" value="{v}"/>' for k, v in values.items())
    return f"<bpmn:extensionElements><camunda:properties>{inner}</camunda:properties></bpmn:extensionElements>"


def local(day: date, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=REGION_TZ).astimezone(UTC)


def task_of(engine: Engine, actor: Actor, instance_id: str, element_id: str) -> TaskRecord:
    [view] = [v for v in engine.tasks(actor) if v.task.instance_id == instance_id and v.task.element_id == element_id]
    return view.task


# -- the overdue report ---------------------------------------------------------------------------------

# A МОУО prepares (3 days), the coordinator checks (1 day).
TRACKED = document(
    '<bpmn:startEvent id="start"/>'
    + user_task(
        "prepare",
        "Подготовить документы",
        'camunda:candidateGroups="mouo"',
        props({"deadline": "3 days after task.created; clause=REG 5.3"}),
    )
    + user_task(
        "check",
        "Проверить документы",
        'camunda:candidateGroups="coordinator"',
        props({"deadline": "1 days after task.created"}),
    )
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "prepare", "check", "end"),
    "tracked",
    name="Отслеживаемый процесс",
    attrs=STARTERS,
)

MARCH_2 = date(2026, 3, 2)  # Monday; START is 11:00 that day in Chelyabinsk
MARCH_10 = date(2026, 3, 10)  # Tuesday; Monday 9 March 2026 is a public holiday (8 March moved)


@pytest.fixture
def overdue_world(engine: Engine, clock: VirtualClock) -> dict[str, str]:
    """On 10.03.2026: Troitsk has two overdue preparations, Kopeysk one, the coordinator one check."""
    engine.deploy(TRACKED, "tracked.bpmn", ADMIN)
    ids = {
        "a": engine.start("tracked", TROITSK, business_key="T-1").instance.id,
        "f": engine.start("tracked", TROITSK, business_key="T-2").instance.id,
        "c": engine.start("tracked", KOPEYSK, business_key="K-1").instance.id,
        "b": engine.start("tracked", TROITSK, business_key="T-3").instance.id,
        "d": engine.start("tracked", KOPEYSK, business_key="K-2").instance.id,
        "x": engine.start("tracked", KOPEYSK, business_key="K-3").instance.id,
    }
    engine.complete(task_of(engine, TROITSK, ids["b"], "prepare").id, TROITSK, {})  # check due 03.03
    engine.complete(task_of(engine, KOPEYSK, ids["d"], "prepare").id, KOPEYSK, {})
    engine.cancel(ids["x"], KOPEYSK)  # a cancelled instance is nobody's debt
    clock.set(local(MARCH_10))
    engine.complete(task_of(engine, COORDINATOR, ids["d"], "check").id, COORDINATOR, {})  # met, though late
    ids["e"] = engine.start("tracked", TROITSK, business_key="T-4").instance.id  # due 13.03: not yet late
    return ids


def test_overdue_report_groups_by_organisation_worst_first(engine: Engine, overdue_world: dict[str, str]) -> None:
    groups = engine.overdue_report(COORDINATOR)
    assert [(g.organisation, len(g.items), g.max_days_late) for g in groups] == [
        ("troitsk-go", 2, 5),
        ("rcoko", 1, 7),
        ("kopeysk-go", 1, 5),
    ]
    assert [g.organisation_name for g in groups] == [
        "Троицкий городской округ",
        "ГБУ ДПО РЦОКИО",
        "Копейский городской округ",
    ]
    troitsk, coordinator, kopeysk = groups
    assert {i.instance_id for i in troitsk.items} == {overdue_world["a"], overdue_world["f"]}
    assert [i.instance_id for i in kopeysk.items] == [overdue_world["c"]]
    [check] = coordinator.items
    assert check.instance_id == overdue_world["b"] and check.task_name == "Проверить документы"


def test_overdue_items_count_calendar_and_working_days(engine: Engine, overdue_world: dict[str, str]) -> None:
    items = {i.instance_id: i for g in engine.overdue_report(ADMIN) for i in g.items}
    a = items[overdue_world["a"]]
    assert a.due_date == a.original_date == date(2026, 3, 5)
    assert a.days_late == 5  # 05.03 -> 10.03
    assert a.working_days_late == 2  # Friday 06.03 and Tuesday 10.03 (07-09.03 are days off)
    assert (a.process_key, a.process_name, a.task_name) == ("tracked", "Отслеживаемый процесс", "Подготовить документы")
    assert (a.business_key, a.clause, a.assignee, a.escalated, a.extensions) == ("T-1", "REG 5.3", None, False, 0)
    assert "REG 5.3" in a.explanation
    check = items[overdue_world["b"]]
    assert check.due_date == date(2026, 3, 3) and check.days_late == 7 and check.working_days_late == 4
    assert check.organisation == "rcoko"
    # Met, cancelled and not-yet-due deadlines are not in the report.
    assert set(items) == {overdue_world[k] for k in ("a", "f", "c", "b")}
    as_dict = a.to_dict()
    assert as_dict["due_date"] == "2026-03-05" and as_dict["working_days_late"] == 2
    assert engine.overdue_report(ADMIN)[0].to_dict()["count"] == 2


def test_a_municipality_sees_only_its_own_overdue_tasks(engine: Engine, overdue_world: dict[str, str]) -> None:
    [troitsk] = engine.overdue_report(TROITSK)
    assert troitsk.organisation == "troitsk-go" and len(troitsk.items) == 2
    # Asking for another organisation does not widen what a МОУО sees.
    assert engine.overdue_report(TROITSK, "kopeysk-go") == []
    assert [g.organisation for g in engine.overdue_report(TROITSK, "troitsk-go")] == ["troitsk-go"]
    assert [g.organisation for g in engine.overdue_report(KOPEYSK)] == ["kopeysk-go"]
    # Overseers may narrow the report to one organisation.
    [kopeysk] = engine.overdue_report(MINISTRY, "kopeysk-go")
    assert [i.instance_id for i in kopeysk.items] == [overdue_world["c"]]
    assert len(engine.overdue_report(MINISTRY)) == 3


def test_nothing_is_overdue_before_the_deadline(engine: Engine, clock: VirtualClock) -> None:
    engine.deploy(TRACKED, "tracked.bpmn", ADMIN)
    engine.start("tracked", TROITSK)
    clock.set(local(date(2026, 3, 5), 23, 59))  # the last minute of the due day
    assert engine.overdue_report(ADMIN) == []
    clock.set(local(date(2026, 3, 6), 0, 1))
    [group] = engine.overdue_report(ADMIN)
    assert group.items[0].days_late == 1 and group.items[0].working_days_late == 1


def test_tasks_bound_to_no_organisation_are_grouped_by_role(engine: Engine, clock: VirtualClock) -> None:
    expert_review = document(
        '<bpmn:startEvent id="start"/>'
        + user_task(
            "review",
            "Экспертиза",
            'camunda:candidateGroups="expert"',
            props({"deadline": "1 days after task.created"}),
        )
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "review", "end"),
        "expertise",
        attrs='camunda:candidateStarterGroups="coordinator"',
    )
    engine.deploy(expert_review, "expertise.bpmn", ADMIN)
    engine.start("expertise", COORDINATOR)
    clock.set(local(date(2026, 3, 4)))
    [group] = engine.overdue_report(MINISTRY)
    assert (group.organisation, group.organisation_name, len(group.items)) == (None, "(по роли)", 1)
    assert group.items[0].days_late == 1 and group.items[0].due_date == date(2026, 3, 3)
    assert engine.overdue_report(TROITSK) == []


# -- the diagram's state ---------------------------------------------------------------------------------

LOOP = document(
    '<bpmn:startEvent id="start"/>'
    + user_task("draft", "Черновик", 'camunda:candidateGroups="coordinator"')
    + '<bpmn:exclusiveGateway id="gw" default="go_on"/>'
    + user_task("sign", "Подписать", 'camunda:candidateGroups="coordinator" camunda:dueDate="P1D"')
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "draft", "gw")
    + cond_flow("gw", "draft", "${again}", "again")
    + '<bpmn:sequenceFlow id="go_on" sourceRef="gw" targetRef="sign"/>'
    + flows("sign", "end", prefix="g"),
    "loop",
    attrs='camunda:candidateStarterGroups="coordinator"',
)


def test_diagram_state_follows_the_instance(engine: Engine, clock: VirtualClock) -> None:
    engine.deploy(LOOP, "loop.bpmn", ADMIN)
    iid = engine.start("loop", COORDINATOR).instance.id
    state = engine.diagram_state(iid, COORDINATOR)
    assert (state.completed, state.active, state.overdue) == (["start"], ["draft"], [])
    assert state.instance_id == iid

    engine.complete(task_of(engine, COORDINATOR, iid, "draft").id, COORDINATOR, {"again": True})
    engine.complete(task_of(engine, COORDINATOR, iid, "draft").id, COORDINATOR, {"again": False})
    state = engine.diagram_state(iid, COORDINATOR)
    assert state.completed == ["draft", "gw", "start"]
    assert state.active == ["sign"] and state.overdue == []
    assert state.counts == {"draft": 2, "gw": 2, "start": 1}

    clock.advance(timedelta(days=2))
    state = engine.diagram_state(iid, MINISTRY)
    assert state.active == ["sign"] and state.overdue == ["sign"]
    assert state.to_dict()["overdue"] == ["sign"]

    engine.complete(task_of(engine, COORDINATOR, iid, "sign").id, COORDINATOR, {})
    state = engine.diagram_state(iid, ADMIN)
    assert state.completed == ["draft", "end", "gw", "sign", "start"]
    assert (state.active, state.overdue) == ([], [])


def test_diagram_state_is_hidden_from_those_who_cannot_see_the_instance(engine: Engine) -> None:
    engine.deploy(LOOP, "loop.bpmn", ADMIN)
    iid = engine.start("loop", COORDINATOR).instance.id
    with pytest.raises(NotFound):
        engine.diagram_state(iid, TROITSK)
    with pytest.raises(NotFound):
        engine.diagram_state("no-such-instance", ADMIN)


# -- a month of deadlines ------------------------------------------------------------------------------------

ON_DATE = document(
    '<bpmn:startEvent id="start"/>'
    + user_task(
        "submit",
        "Представить отчёт",
        'camunda:candidateGroups="mouo"',
        props({"deadline": "1 days after target; roll=none"}),
    )
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "submit", "end"),
    "ondate",
    name="Отчёт к дате",
    attrs=STARTERS,
)


def start_on(engine: Engine, actor: Actor, target: str) -> str:
    return engine.start("ondate", actor, {"target": target}).instance.id


def test_deadline_month_returns_the_deadlines_of_the_month_by_day(engine: Engine, clock: VirtualClock) -> None:
    engine.deploy(ON_DATE, "ondate.bpmn", ADMIN)
    for actor, target in (
        (TROITSK, "2026-03-30"),  # 31.03: the month before
        (TROITSK, "2026-03-31"),  # 01.04: the first day
        (KOPEYSK, "2026-04-05"),  # 06.04
        (TROITSK, "2026-04-05"),  # 06.04 again
        (KOPEYSK, "2026-04-29"),  # 30.04: the last day
        (TROITSK, "2026-04-30"),  # 01.05: the month after
    ):
        start_on(engine, actor, target)
    april = engine.deadline_month(ADMIN, 2026, 4)
    assert sorted(april) == [date(2026, 4, 1), date(2026, 4, 6), date(2026, 4, 30)]
    assert [len(april[d]) for d in sorted(april)] == [1, 2, 1]
    entry = april[date(2026, 4, 1)][0]
    assert entry.task_name == "Представить отчёт" and entry.process_name == "Отчёт к дате"
    assert entry.deadline.final_date == date(2026, 4, 1) and not entry.overdue
    assert sorted(engine.deadline_month(ADMIN, 2026, 3)) == [date(2026, 3, 31)]
    assert sorted(engine.deadline_month(ADMIN, 2026, 5)) == [date(2026, 5, 1)]
    assert engine.deadline_month(ADMIN, 2026, 6) == {}

    # In the middle of April the passed ones are overdue; a met one stays, not overdue.
    clock.set(local(date(2026, 4, 10)))
    [met] = [e.deadline for e in april[date(2026, 4, 6)] if e.deadline.organisation == "kopeysk-go"]
    engine.complete(met.task_id, KOPEYSK, {})
    april = engine.deadline_month(ADMIN, 2026, 4)
    flags = {(d, e.deadline.organisation, e.overdue) for d, entries in april.items() for e in entries}
    assert flags == {
        (date(2026, 4, 1), "troitsk-go", True),
        (date(2026, 4, 6), "troitsk-go", True),
        (date(2026, 4, 6), "kopeysk-go", False),  # met (late): not overdue any more
        (date(2026, 4, 30), "kopeysk-go", False),
    }


def test_deadline_month_shows_a_municipality_only_its_own(engine: Engine) -> None:
    engine.deploy(ON_DATE, "ondate.bpmn", ADMIN)
    start_on(engine, TROITSK, "2026-04-05")
    start_on(engine, KOPEYSK, "2026-04-09")
    cancelled = start_on(engine, TROITSK, "2026-04-19")
    engine.cancel(cancelled, TROITSK)
    troitsk = engine.deadline_month(TROITSK, 2026, 4)
    assert list(troitsk) == [date(2026, 4, 6)]
    assert troitsk[date(2026, 4, 6)][0].deadline.organisation == "troitsk-go"
    assert list(engine.deadline_month(KOPEYSK, 2026, 4)) == [date(2026, 4, 10)]
    assert sorted(engine.deadline_month(MINISTRY, 2026, 4)) == [date(2026, 4, 6), date(2026, 4, 10)]


def test_deadline_month_across_the_new_year(engine: Engine) -> None:
    engine.deploy(ON_DATE, "ondate.bpmn", ADMIN)
    start_on(engine, TROITSK, "2026-12-30")
    start_on(engine, TROITSK, "2026-12-31")
    assert list(engine.deadline_month(ADMIN, 2026, 12)) == [date(2026, 12, 31)]
    assert list(engine.deadline_month(ADMIN, 2027, 1)) == [date(2027, 1, 1)]


@pytest.mark.parametrize(("year", "month"), [(2026, 0), (2026, 13), (0, 5), (9999, 12)])
def test_deadline_month_refuses_an_impossible_month(engine: Engine, year: int, month: int) -> None:
    with pytest.raises(BadInput):
        engine.deadline_month(ADMIN, year, month)


# -- paged lists with filters ---------------------------------------------------------------------------------


def _generic(pid: str, task_name: str, process_name: str) -> bytes:
    attrs = 'camunda:candidateGroups="${group}" camunda:priority="${prio}" camunda:dueDate="${due}"'
    return document(
        '<bpmn:startEvent id="start"/>'
        + user_task("t", task_name, attrs)
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "t", "end"),
        pid,
        name=process_name,
        attrs=STARTERS,
    )


@pytest.fixture
def five_tasks(engine: Engine, clock: VirtualClock) -> dict[int, TaskRecord]:
    """Five open tasks, created a minute apart, with different processes, roles, organisations,
    due dates and priorities."""
    engine.deploy(_generic("alpha", "Alpha task", "Альфа"), "alpha.bpmn", ADMIN)
    engine.deploy(_generic("beta", "Beta task", "Бета"), "beta.bpmn", ADMIN)
    plan: list[tuple[str, Actor, str, int, str]] = [
        ("alpha", COORDINATOR, "coordinator", 10, "P5D"),
        ("alpha", TROITSK, "mouo", 90, "P2D"),
        ("beta", KOPEYSK, "mouo", 50, ""),
        ("beta", COORDINATOR, "coordinator", 70, "P1D"),
        ("beta", TROITSK, "mouo", 30, ""),
    ]
    tasks = {}
    for n, (key, actor, group, prio, due) in enumerate(plan, start=1):
        iid = engine.start(key, actor, {"group": group, "prio": prio, "due": due}).instance.id
        [view] = [v for v in engine.tasks(ADMIN) if v.task.instance_id == iid]
        tasks[n] = view.task
        clock.advance(timedelta(minutes=1))
    return tasks


def numbers(tasks: dict[int, TaskRecord], views: list[Any]) -> list[int]:
    by_id = {t.id: n for n, t in tasks.items()}
    return [by_id[v.task.id] for v in views]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("due", [4, 2, 1, 3, 5]),  # by due date, tasks without one last (by creation)
        ("created", [1, 2, 3, 4, 5]),
        ("priority", [2, 4, 3, 5, 1]),  # the highest first
        ("unknown", [4, 2, 1, 3, 5]),  # falls back to the due date
    ],
)
def test_tasks_page_sorts(engine: Engine, five_tasks: dict[int, TaskRecord], sort: str, expected: list[int]) -> None:
    views, total = engine.tasks_page(ADMIN, TaskQuery(sort=sort))
    assert numbers(five_tasks, views) == expected and total == 5


def test_tasks_page_sorts_by_name(engine: Engine, five_tasks: dict[int, TaskRecord]) -> None:
    views, _ = engine.tasks_page(ADMIN, TaskQuery(sort="name"))
    assert [v.task.name for v in views] == ["Alpha task"] * 2 + ["Beta task"] * 3
    assert sorted(numbers(five_tasks, views)[:2]) == [1, 2]


def test_tasks_page_filters(engine: Engine, five_tasks: dict[int, TaskRecord]) -> None:
    cut = START + timedelta(days=3)
    cases: list[tuple[TaskQuery, list[int]]] = [
        (TaskQuery(process_key="beta"), [4, 3, 5]),
        (TaskQuery(role="mouo"), [2, 3, 5]),
        (TaskQuery(role="coordinator"), [4, 1]),
        (TaskQuery(only_organisation="troitsk-go"), [2, 5]),
        (TaskQuery(only_organisation="rcoko"), [4, 1]),
        (TaskQuery(due_before=cut), [4, 2]),
        (TaskQuery(due_after=cut), [1]),
        (TaskQuery(due_after=five_tasks[2].due_at, due_before=five_tasks[1].due_at), [2]),  # [after, before)
        (TaskQuery(without_due=True), [3, 5]),
        (TaskQuery(process_key="alpha", role="mouo"), [2]),
        (TaskQuery(process_key="beta", only_organisation="kopeysk-go", without_due=True), [3]),
        (TaskQuery(process_key="gamma"), []),
        (TaskQuery(role="ministry"), []),
    ]
    for query, expected in cases:
        views, total = engine.tasks_page(ADMIN, query)
        assert numbers(five_tasks, views) == expected, query
        assert total == len(expected), query


def test_tasks_page_counts_every_match_beyond_the_page(engine: Engine, five_tasks: dict[int, TaskRecord]) -> None:
    views, total = engine.tasks_page(ADMIN, TaskQuery(sort="created", limit=2, offset=1))
    assert numbers(five_tasks, views) == [2, 3] and total == 5
    views, total = engine.tasks_page(ADMIN, TaskQuery(sort="created", limit=2, offset=4))
    assert numbers(five_tasks, views) == [5] and total == 5
    views, total = engine.tasks_page(ADMIN, TaskQuery(sort="created", limit=2), count=False)
    assert numbers(five_tasks, views) == [1, 2] and total == 2
    views, total = engine.tasks_page(ADMIN, TaskQuery(role="mouo", sort="created", limit=1))
    assert numbers(five_tasks, views) == [2] and total == 3


def test_tasks_page_counts_only_what_the_actor_may_see(engine: Engine, five_tasks: dict[int, TaskRecord]) -> None:
    views, total = engine.tasks_page(TROITSK, TaskQuery(limit=1))
    assert numbers(five_tasks, views) == [2] and total == 2
    # A filter never widens visibility.
    assert engine.tasks_page(TROITSK, TaskQuery(only_organisation="kopeysk-go")) == ([], 0)
    assert engine.tasks_page(TROITSK, TaskQuery(role="coordinator")) == ([], 0)
    views, total = engine.tasks_page(KOPEYSK)
    assert numbers(five_tasks, views) == [3] and total == 1
    views, total = engine.tasks_page(COORDINATOR, TaskQuery(sort="priority"))
    assert numbers(five_tasks, views) == [4, 1] and total == 2
    assert engine.tasks_page(MINISTRY) == ([], 0)


def test_tasks_page_shows_deadlines_and_overdue(
    engine: Engine, five_tasks: dict[int, TaskRecord], clock: VirtualClock
) -> None:
    clock.advance(timedelta(days=1, hours=12))
    views, total = engine.tasks_page(ADMIN, TaskQuery(due_before=clock.now()))
    assert numbers(five_tasks, views) == [4] and total == 1
    assert views[0].overdue and views[0].deadline is not None and views[0].deadline.rule == "camunda:dueDate"
    # A completed task leaves the open list and is found among the completed ones.
    engine.complete(five_tasks[4].id, COORDINATOR, {})
    assert engine.tasks_page(ADMIN, TaskQuery(due_before=clock.now()))[1] == 0
    views, total = engine.tasks_page(ADMIN, TaskQuery(status=TaskStatus.COMPLETED))
    assert numbers(five_tasks, views) == [4] and total == 1
    views, total = engine.tasks_page(ADMIN, TaskQuery(status=None, process_key="beta", sort="created"))
    assert numbers(five_tasks, views) == [3, 4, 5] and total == 3


def test_instances_and_deadlines_pages(engine: Engine, five_tasks: dict[int, TaskRecord]) -> None:
    items, total = engine.instances_page(ADMIN, InstanceQuery(limit=2))
    assert len(items) == 2 and total == 5
    assert items[0].started_at >= items[1].started_at  # newest first
    items, total = engine.instances_page(TROITSK)
    assert total == 2 and {i.organisation for i in items} == {"troitsk-go"}
    items, total = engine.instances_page(ADMIN, InstanceQuery(process_key="alpha"))
    assert total == 2 and {i.process_key for i in items} == {"alpha"}
    deadlines, total = engine.deadlines_page(ADMIN, DeadlineQuery(limit=1))
    assert len(deadlines) == 1 and total == 3
    assert deadlines[0].task_id == five_tasks[4].id  # the earliest first
    deadlines, total = engine.deadlines_page(TROITSK)
    assert [d.task_id for d in deadlines] == [five_tasks[2].id] and total == 1
    assert engine.deadlines_page(KOPEYSK) == ([], 0)


def test_audit_page_filters_and_counts(engine: Engine, five_tasks: dict[int, TaskRecord]) -> None:
    everything, total = engine.audit_page(ADMIN, AuditQuery(limit=100_000))
    assert total == len(everything) > 10
    engine.claim(five_tasks[2].id, TROITSK)
    engine.complete(five_tasks[2].id, TROITSK, {})

    entries, total = engine.audit_page(ADMIN, AuditQuery(task_id=five_tasks[2].id))
    assert [e.action for e in entries] == ["task.created", "task.claimed", "task.completed"]
    assert total == 3 and {e.task_id for e in entries} == {five_tasks[2].id}

    entries, total = engine.audit_page(ADMIN, AuditQuery(task_id=five_tasks[2].id, newest_first=True))
    assert [e.action for e in entries] == ["task.completed", "task.claimed", "task.created"]

    entries, total = engine.audit_page(ADMIN, AuditQuery(organisation="troitsk-go", limit=100_000))
    everything = engine.audit(ADMIN, AuditQuery(limit=100_000))
    assert entries == [e for e in everything if e.organisation == "troitsk-go"]
    assert total == len(entries) and "instance.started" in {e.action for e in entries}

    entries, total = engine.audit_page(
        MINISTRY, AuditQuery(organisation="troitsk-go", action="task.claimed", actor="troitsk-go")
    )
    assert total == 1 and entries[0].task_id == five_tasks[2].id

    newest, total = engine.audit_page(COORDINATOR, AuditQuery(newest_first=True, limit=3))
    assert total == len(everything) and [e.id for e in newest] == [e.id for e in everything[::-1][:3]]
    oldest, _ = engine.audit_page(COORDINATOR, AuditQuery(limit=3, offset=1))
    assert [e.id for e in oldest] == [e.id for e in everything[1:4]]
    page, total = engine.audit_page(ADMIN, AuditQuery(limit=3), count=False)
    assert len(page) == 3 and total == 3


def test_only_overseers_read_the_audit_page(engine: Engine) -> None:
    with pytest.raises(NotPermitted):
        engine.audit_page(TROITSK)
    with pytest.raises(NotPermitted):
        engine.audit_page(Actor("expert", "rcoko", frozenset({"expert"})))


# -- incidents and their retry ---------------------------------------------------------------------------------

TIMER = (
    '<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:timeDuration>PT5M'
    "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
)

SCRIPTED = document(
    '<bpmn:startEvent id="start"/>'
    + TIMER
    + '<bpmn:scriptTask id="calc" scriptFormat="python"><bpmn:script>share = 100 / divisor</bpmn:script>'
    "</bpmn:scriptTask>"
    + user_task("use", "Использовать долю", 'camunda:candidateGroups="coordinator"')
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "wait", "calc", "use", "end"),
    "scripted",
    attrs=STARTERS,
)

SYNCED = document(
    '<bpmn:startEvent id="start"/>'
    + TIMER
    + '<bpmn:serviceTask id="sync" camunda:type="external" camunda:topic="registry"/>'
    + user_task("use", "Проверить выгрузку", 'camunda:candidateGroups="coordinator"')
    + '<bpmn:endEvent id="end"/>'
    + flows("start", "wait", "sync", "use", "end"),
    "synced",
    attrs=STARTERS,
)


def into_incident(engine: Engine, clock: VirtualClock, key: str, actor: Actor, variables: dict[str, Any]) -> str:
    iid = engine.start(key, actor, variables).instance.id
    clock.advance(timedelta(minutes=6))
    failed = engine.fire_timers(iid)  # in the background, as the worker does
    assert failed.instance.status == InstanceStatus.INCIDENT
    return iid


def actions(engine: Engine, iid: str) -> list[str]:
    return [e.action for e in engine.audit(ADMIN, AuditQuery(instance_id=iid, limit=10_000))]


def test_a_retry_that_fails_again_keeps_the_incident(engine: Engine, clock: VirtualClock) -> None:
    engine.deploy(SCRIPTED, "scripted.bpmn", ADMIN)
    iid = into_incident(engine, clock, "scripted", COORDINATOR, {"divisor": 0})
    before = engine.instance(iid, ADMIN).instance
    assert "ZeroDivisionError" in (before.incident or "")
    assert [i.id for i in engine.incidents(COORDINATOR)] == [iid]

    clock.advance(timedelta(minutes=1))
    view = engine.retry_incident(iid, COORDINATOR)
    assert view.instance.status == InstanceStatus.INCIDENT and "ZeroDivisionError" in (view.instance.incident or "")
    after = engine.instance(iid, ADMIN).instance
    assert after.status == InstanceStatus.INCIDENT and after.version > before.version
    assert after.state == before.state, "the instance stays at its last good point"
    assert actions(engine, iid).count("instance.incident") == 2
    retried = engine.audit(ADMIN, AuditQuery(instance_id=iid, action="instance.retried"))
    assert [(e.actor, e.details["incident"]) for e in retried] == [("coordinator", before.incident)]
    assert not engine.tasks(COORDINATOR)
    assert [i.id for i in engine.incidents(ADMIN)] == [iid]


def test_a_retry_after_the_cause_went_away_runs_on(
    engine: Engine, clock: VirtualClock, services: ServiceRegistry
) -> None:
    calls: list[str] = []

    def registry(context: ServiceContext) -> dict[str, Any]:
        calls.append(context.instance_id)
        if len(calls) < 3:
            raise ConnectionError(f"registry unavailable (attempt {len(calls)})")
        return {"exported": 42}

    services.register("external:registry", registry)
    engine.deploy(SYNCED, "synced.bpmn", ADMIN)
    iid = into_incident(engine, clock, "synced", TROITSK, {})
    assert "attempt 1" in (engine.instance(iid, ADMIN).instance.incident or "")

    failed = engine.retry_incident(iid, COORDINATOR)
    assert failed.instance.status == InstanceStatus.INCIDENT and "attempt 2" in (failed.instance.incident or "")

    done = engine.retry_incident(iid, ADMIN)
    assert done.instance.status == InstanceStatus.RUNNING and done.instance.incident is None
    assert done.variables["exported"] == 42
    assert [t.task.element_id for t in done.tasks] == ["use"]
    stored = engine.instance(iid, ADMIN)
    assert stored.instance.status == InstanceStatus.RUNNING and stored.instance.incident is None
    assert [t.task.element_id for t in stored.tasks] == ["use"]
    assert [v.task.instance_id for v in engine.tasks(COORDINATOR)] == [iid]
    assert engine.incidents(ADMIN) == []
    assert calls == [iid, iid, iid]
    history = actions(engine, iid)
    assert history.count("instance.retried") == 2 and history.count("instance.incident") == 2
    assert history[-1] == "task.created"
    assert {"wait", "sync", "start"} <= set(engine.diagram_state(iid, ADMIN).completed)

    with pytest.raises(InvalidState):
        engine.retry_incident(iid, ADMIN)


def test_only_the_coordinator_and_administrators_retry(engine: Engine, clock: VirtualClock) -> None:
    engine.deploy(SCRIPTED, "scripted.bpmn", ADMIN)
    iid = into_incident(engine, clock, "scripted", TROITSK, {"divisor": 0})
    # The МОУО that started it sees the incident but may not retry; another МОУО does not see it.
    assert [i.id for i in engine.incidents(TROITSK)] == [iid]
    assert engine.incidents(KOPEYSK) == []
    listed, total = engine.incidents_page(TROITSK, limit=1)
    assert [i.id for i in listed] == [iid] and total == 1
    assert engine.incidents_page(TROITSK, limit=1, offset=1) == ([], 1), "a page past the end still counts"
    assert engine.incidents_page(KOPEYSK) == ([], 0)
    with pytest.raises(NotFound):
        engine.retry_incident(iid, KOPEYSK)
    for actor in (TROITSK, MINISTRY):
        with pytest.raises(NotPermitted):
            engine.retry_incident(iid, actor)
    assert "instance.retried" not in actions(engine, iid)
    assert actions(engine, iid).count("instance.incident") == 1
    with pytest.raises(NotFound):
        engine.retry_incident("no-such-instance", ADMIN)


def test_an_instance_without_an_incident_is_not_retried(engine: Engine, clock: VirtualClock) -> None:
    engine.deploy(SCRIPTED, "scripted.bpmn", ADMIN)
    waiting = engine.start("scripted", COORDINATOR, {"divisor": 4}).instance.id
    with pytest.raises(InvalidState):
        engine.retry_incident(waiting, COORDINATOR)
    clock.advance(timedelta(minutes=6))
    engine.fire_timers(waiting)
    assert engine.instance(waiting, ADMIN).instance.status == InstanceStatus.RUNNING
    with pytest.raises(InvalidState):
        engine.retry_incident(waiting, ADMIN)
    assert "instance.retried" not in actions(engine, waiting)
    assert engine.incidents(ADMIN) == []
