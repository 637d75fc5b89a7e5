"""The engine on the in-memory store: deploy, versions, start, tasks, forms, access, cancel, history."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from engine.clock import VirtualClock
from engine.directory import Actor
from engine.engine import Engine
from engine.errors import (
    BadInput,
    ConcurrencyConflict,
    DefinitionInvalid,
    FormInvalid,
    InvalidState,
    NotFound,
    NotPermitted,
    StepFailed,
)
from engine.ports import AuditQuery
from engine.records import InstanceStatus, TaskQuery, TaskStatus
from tests.bpmn import cond_flow, document, flows, sequential, user_task
from tests.conftest import ADMIN, COORDINATOR, KOPEYSK, MINISTRY, TROITSK

FORM = """<bpmn:extensionElements><camunda:formData>
  <camunda:formField id="amount" label="Сумма" type="long">
    <camunda:validation><camunda:constraint name="required"/><camunda:constraint name="min" config="1"/>
    </camunda:validation></camunda:formField>
  <camunda:formField id="approved" label="Одобрить" type="boolean"/>
</camunda:formData></bpmn:extensionElements>"""


def approval_doc(name: str = "Check") -> bytes:
    body = (
        '<bpmn:startEvent id="start"/>'
        + user_task("check", name, 'camunda:candidateGroups="coordinator"', FORM)
        + '<bpmn:exclusiveGateway id="gw"/>'
        + user_task("fix", "Fix", 'camunda:candidateGroups="mouo"')
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "check", "gw")
        + cond_flow("gw", "end", "${approved}", "yes")
        + cond_flow("gw", "fix", "${!approved}", "no")
        + flows("fix", "end", prefix="g")
    )
    return document(body, "approval", attrs='camunda:candidateStarterGroups="mouo,coordinator"')


def the_task(engine: Engine, actor, element_id: str):
    found = [v.task for v in engine.tasks(actor) if v.task.element_id == element_id]
    assert len(found) == 1, f"expected one {element_id} task for {actor}, got {found}"
    return found[0]


def test_deploy_is_versioned_by_content(engine: Engine) -> None:
    first = engine.deploy(approval_doc(), "approval.bpmn", ADMIN)
    again = engine.deploy(approval_doc(), "approval.bpmn", ADMIN)
    changed = engine.deploy(approval_doc("Check v2"), "approval.bpmn", ADMIN)
    assert first.created and not again.created and changed.created
    assert [d.version for d in first.definitions] == [1]
    assert again.definitions[0].id == first.definitions[0].id
    assert changed.definitions[0].version == 2
    assert [d.version for d in engine.definitions()] == [2]


def test_only_admins_deploy(engine: Engine) -> None:
    with pytest.raises(NotPermitted):
        engine.deploy(approval_doc(), "approval.bpmn", COORDINATOR)


def test_instances_stay_pinned_to_their_version(engine: Engine) -> None:
    engine.deploy(approval_doc("Old name"), "approval.bpmn", ADMIN)
    old = engine.start("approval", TROITSK)
    engine.deploy(approval_doc("New name"), "approval.bpmn", ADMIN)
    new = engine.start("approval", TROITSK)
    assert old.definition.version == 1 and new.definition.version == 2
    names = {v.task.instance_id: v.task.name for v in engine.tasks(COORDINATOR)}
    assert names == {old.instance.id: "Old name", new.instance.id: "New name"}
    old_task = next(v.task for v in engine.tasks(COORDINATOR) if v.task.instance_id == old.instance.id)
    engine.complete(old_task.id, COORDINATOR, {"amount": 3, "approved": True})
    assert engine.instance(old.instance.id, ADMIN).instance.status == InstanceStatus.COMPLETED


def test_happy_path_with_history_and_audit(engine: Engine, clock: VirtualClock) -> None:
    engine.deploy(approval_doc(), "approval.bpmn", ADMIN)
    started = engine.start("approval", TROITSK, {"note": "x"}, business_key="A-1")
    assert started.instance.status == InstanceStatus.RUNNING
    assert started.instance.organisation == "troitsk-go"
    task = the_task(engine, COORDINATOR, "check")
    assert task.candidate_roles == ("coordinator",) and task.organisation == "rcoko"
    clock.advance(timedelta(hours=1))
    done = engine.complete(task.id, COORDINATOR, {"amount": 5, "approved": True})
    assert done.instance.status == InstanceStatus.COMPLETED
    view = engine.instance(started.instance.id, TROITSK)
    assert view.variables["amount"] == 5 and view.variables["note"] == "x"
    actions = [h.action for h in view.history]
    assert actions[0] == "instance.started" and actions[-1] == "instance.completed"
    assert "task.created" in actions and "task.completed" in actions
    completed = next(h for h in view.history if h.action == "task.completed")
    assert completed.actor == "coordinator" and completed.organisation == "rcoko"
    assert completed.data_digest and completed.data_digest.startswith("sha256:")
    assert completed.at == clock.now()
    gateway = [h for h in view.history if h.action == "element.completed" and h.element_id == "gw"]
    assert gateway, "automatic steps appear in the history"


def test_return_loop_goes_to_the_applicants_organisation_only(engine: Engine) -> None:
    engine.deploy(approval_doc(), "approval.bpmn", ADMIN)
    started = engine.start("approval", TROITSK)
    engine.complete(the_task(engine, COORDINATOR, "check").id, COORDINATOR, {"amount": 1, "approved": False})
    fix = the_task(engine, TROITSK, "fix")
    assert fix.organisation == "troitsk-go"
    assert not [v for v in engine.tasks(KOPEYSK) if v.task.element_id == "fix"]
    with pytest.raises(NotFound):
        engine.complete(fix.id, KOPEYSK, {})
    with pytest.raises(NotFound):
        engine.instance(started.instance.id, KOPEYSK)
    engine.complete(fix.id, TROITSK, {})
    assert engine.instance(started.instance.id, TROITSK).instance.status == InstanceStatus.COMPLETED


def test_form_rejection_lists_every_field_and_writes_nothing(engine: Engine) -> None:
    engine.deploy(approval_doc(), "approval.bpmn", ADMIN)
    started = engine.start("approval", TROITSK)
    task = the_task(engine, COORDINATOR, "check")
    audit_before = len(engine.audit(ADMIN, AuditQuery(limit=10_000)))
    with pytest.raises(FormInvalid) as caught:
        engine.complete(task.id, COORDINATOR, {"amount": 0, "approved": "yes", "bogus": 1})
    assert {e.field for e in caught.value.errors} == {"amount", "approved", "bogus"}
    assert len(engine.audit(ADMIN, AuditQuery(limit=10_000))) == audit_before
    view = engine.instance(started.instance.id, ADMIN)
    assert view.instance.version == started.instance.version
    assert engine.task(task.id, COORDINATOR).task.status == TaskStatus.OPEN


def test_who_may_start(engine: Engine) -> None:
    engine.deploy(approval_doc(), "approval.bpmn", ADMIN)
    with pytest.raises(NotPermitted):
        engine.start("approval", MINISTRY)
    engine.deploy(sequential(1), "seq.bpmn", ADMIN)
    with pytest.raises(NotPermitted):
        engine.start("seq", TROITSK)
    engine.start("seq", COORDINATOR)
    with pytest.raises(NotFound):
        engine.start("nope", COORDINATOR)


def test_bad_variables_are_refused(engine: Engine) -> None:
    engine.deploy(sequential(1), "seq.bpmn", ADMIN)
    with pytest.raises(BadInput):
        engine.start("seq", COORDINATOR, {"__class__": 1})
    with pytest.raises(BadInput):
        engine.start("seq", COORDINATOR, {"a b": 1})


def test_claim_and_unclaim(engine: Engine) -> None:
    engine.deploy(sequential(1, attrs='camunda:candidateGroups="mouo"'), "seq.bpmn", ADMIN)
    engine.deploy(
        document(
            '<bpmn:startEvent id="s"/>'
            + user_task("t", "T", 'camunda:candidateGroups="mouo"')
            + '<bpmn:endEvent id="e"/>'
            + flows("s", "t", "e"),
            "m",
            attrs='camunda:candidateStarterGroups="mouo"',
        ),
        "m.bpmn",
        ADMIN,
    )
    engine.start("m", TROITSK)
    task = the_task(engine, TROITSK, "t")
    claimed = engine.claim(task.id, TROITSK).task
    assert claimed.assignee == "troitsk-go" and claimed.claimed_at is not None
    assert engine.claim(task.id, TROITSK).task.assignee == "troitsk-go"  # idempotent
    with pytest.raises(NotFound):
        engine.claim(task.id, KOPEYSK)
    released = engine.unclaim(task.id, TROITSK).task
    assert released.assignee is None
    actions = [e.action for e in engine.audit(ADMIN, AuditQuery(instance_id=task.instance_id))]
    assert actions.count("task.claimed") == 1 and actions.count("task.unclaimed") == 1


def test_claimed_task_cannot_be_completed_by_a_colleague(engine: Engine) -> None:
    engine.deploy(sequential(1), "seq.bpmn", ADMIN)
    engine.start("seq", COORDINATOR)
    other = COORDINATOR.__class__("coordinator-2", "rcoko", COORDINATOR.roles)
    task = the_task(engine, COORDINATOR, "t1")
    engine.claim(task.id, other)
    with pytest.raises(InvalidState):
        engine.claim(task.id, COORDINATOR)
    with pytest.raises(NotPermitted):
        engine.complete(task.id, COORDINATOR, {})
    engine.complete(task.id, other, {})


def test_completing_twice_is_a_conflict(engine: Engine) -> None:
    engine.deploy(sequential(2), "seq.bpmn", ADMIN)
    engine.start("seq", COORDINATOR)
    task = the_task(engine, COORDINATOR, "t1")
    engine.complete(task.id, COORDINATOR, {})
    with pytest.raises(ConcurrencyConflict):
        engine.complete(task.id, COORDINATOR, {})


def test_cancel(engine: Engine) -> None:
    engine.deploy(approval_doc(), "approval.bpmn", ADMIN)
    started = engine.start("approval", TROITSK)
    with pytest.raises(NotPermitted):
        engine.cancel(started.instance.id, MINISTRY)
    view = engine.cancel(started.instance.id, TROITSK, "передумали")
    assert view.instance.status == InstanceStatus.CANCELLED
    assert not engine.tasks(COORDINATOR)
    assert [h.action for h in view.history][-2:] == ["instance.cancelled", "task.cancelled"]
    with pytest.raises(InvalidState):
        engine.cancel(started.instance.id, ADMIN)


def test_foreground_step_failure_raises_and_writes_nothing(engine: Engine) -> None:
    body = (
        '<bpmn:startEvent id="start"/>'
        + user_task("t", "T", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:exclusiveGateway id="gw" default="other"/><bpmn:endEvent id="a"/><bpmn:endEvent id="b"/>'
        + flows("start", "t", "gw")
        + cond_flow("gw", "a", "${missing > 3}", "needs")
        + '<bpmn:sequenceFlow id="other" sourceRef="gw" targetRef="b"/>'
    )
    engine.deploy(document(body, "fails"), "fails.bpmn", ADMIN)
    started = engine.start("fails", COORDINATOR)
    task = the_task(engine, COORDINATOR, "t")
    with pytest.raises(StepFailed) as caught:
        engine.complete(task.id, COORDINATOR, {})
    assert caught.value.element_id == "gw"
    assert "missing" in caught.value.reason
    assert engine.task(task.id, COORDINATOR).task.status == TaskStatus.OPEN
    assert engine.instance(started.instance.id, ADMIN).instance.version == started.instance.version
    engine.complete(task.id, COORDINATOR, {"missing": 5})


def test_camunda_task_attributes(engine: Engine, clock: VirtualClock) -> None:
    attrs = (
        'camunda:assignee="${initiator}" camunda:candidateUsers="kopeysk-go, troitsk-go" '
        'camunda:dueDate="P3D" camunda:followUpDate="${follow}" camunda:priority="${prio}"'
    )
    body = (
        '<bpmn:startEvent id="start" camunda:initiator="initiator"/>'
        + user_task("t", "T", attrs)
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "t", "end")
    )
    engine.deploy(document(body, "attrs"), "attrs.bpmn", ADMIN)
    engine.start("attrs", COORDINATOR, {"follow": "2026-03-10T09:00:00+05:00", "prio": 80})
    task = the_task(engine, COORDINATOR, "t")
    assert task.assignee == "coordinator"
    assert task.candidate_users == ("kopeysk-go", "troitsk-go")
    assert task.due_at == clock.now() + timedelta(days=3)
    assert task.follow_up_at is not None and task.follow_up_at.isoformat() == "2026-03-10T04:00:00+00:00"
    assert task.priority == 80
    assert not engine.tasks(KOPEYSK) or all(v.task.assignee == "coordinator" for v in engine.tasks(KOPEYSK))
    with pytest.raises(NotPermitted):
        engine.complete(task.id, KOPEYSK, {})


def test_script_task_runs_in_the_sandbox(engine: Engine) -> None:
    body = (
        '<bpmn:startEvent id="start"/><bpmn:scriptTask id="calc" scriptFormat="python"><bpmn:script>'
        "total = sum(items)\nlabel = 'n=' + str(len(items))</bpmn:script></bpmn:scriptTask>"
        + user_task("t", "T", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "calc", "t", "end")
    )
    engine.deploy(document(body, "script"), "script.bpmn", ADMIN)
    view = engine.start("script", COORDINATOR, {"items": [1, 2, 3]})
    assert view.variables["total"] == 6 and view.variables["label"] == "n=3"


@pytest.mark.parametrize(
    "script",
    [
        "x = ().__class__.__base__.__subclasses__()",
        "import os",
        "x = open('/etc/passwd').read()",
    ],
)
def test_escaping_scripts_are_refused_at_deploy(engine: Engine, script: str) -> None:
    body = (
        f'<bpmn:startEvent id="start"/><bpmn:scriptTask id="evil" scriptFormat="python"><bpmn:script>{script}'
        '</bpmn:script></bpmn:scriptTask><bpmn:endEvent id="end"/>' + flows("start", "evil", "end")
    )
    with pytest.raises(DefinitionInvalid) as caught:
        engine.deploy(document(body, "evil"), "evil.bpmn", ADMIN)
    assert caught.value.element_id == "evil"
    assert not engine.definitions()


def test_start_form_is_validated(engine: Engine) -> None:
    body = (
        '<bpmn:startEvent id="start">'
        + FORM
        + "</bpmn:startEvent>"
        + user_task("t", "T", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "t", "end")
    )
    engine.deploy(document(body, "sf"), "sf.bpmn", ADMIN)
    with pytest.raises(FormInvalid) as caught:
        engine.start("sf", COORDINATOR, {})
    assert [e.field for e in caught.value.errors] == ["amount"]
    engine.start("sf", COORDINATOR, {"amount": 2})


def test_timer_waits_on_the_virtual_clock(engine: Engine, clock: VirtualClock) -> None:
    body = (
        '<bpmn:startEvent id="start"/><bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT5M</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
        + user_task("t", "T", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "wait", "t", "end")
    )
    engine.deploy(document(body, "timer"), "timer.bpmn", ADMIN)
    view = engine.start("timer", COORDINATOR)
    assert view.instance.status == InstanceStatus.WAITING
    assert view.instance.next_due_at == clock.now() + timedelta(minutes=5)
    assert engine.due_instances(clock.now()) == []
    clock.advance(timedelta(minutes=4))
    engine.fire_timers(view.instance.id)
    assert not engine.tasks(COORDINATOR)
    clock.advance(timedelta(minutes=1))
    assert engine.due_instances(clock.now()) == [view.instance.id]
    fired = engine.fire_timers(view.instance.id)
    assert fired.instance.status == InstanceStatus.RUNNING and fired.instance.next_due_at is None
    assert the_task(engine, COORDINATOR, "t")


def test_changing_variables_when_a_timer_is_due_projects_the_tasks_that_follow(
    engine: Engine, clock: VirtualClock
) -> None:
    # Setting data lets the engine run: a due timer fires there, and the task after it must
    # become a row people can see, not a ready task hidden in the state.
    body = (
        '<bpmn:startEvent id="start"/><bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>'
        "<bpmn:timeDuration>PT5M</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"
        + user_task("t", "T", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "wait", "t", "end")
    )
    engine.deploy(document(body, "timer2"), "timer2.bpmn", ADMIN)
    view = engine.start("timer2", COORDINATOR)
    clock.advance(timedelta(minutes=6))
    changed = engine.set_variables(view.instance.id, COORDINATOR, {"note": "x"})
    assert changed.instance.status == InstanceStatus.RUNNING
    assert [t.task.element_id for t in changed.tasks] == ["t"]
    assert the_task(engine, COORDINATOR, "t")
    actions = [e.action for e in engine.instance(view.instance.id, ADMIN).history]
    assert "instance.variables_changed" in actions and "task.created" in actions


def test_interrupting_boundary_timer_cancels_the_task(engine: Engine, clock: VirtualClock) -> None:
    body = (
        '<bpmn:startEvent id="start"/>'
        + user_task("t", "T", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:boundaryEvent id="late" attachedToRef="t"><bpmn:timerEventDefinition><bpmn:timeDuration>P1D'
        "</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>"
        + user_task("escalate", "Escalate", 'camunda:candidateGroups="ministry"')
        + '<bpmn:endEvent id="end"/><bpmn:endEvent id="end2"/>'
        + flows("start", "t", "end")
        + flows("late", "escalate", "end2", prefix="g")
    )
    engine.deploy(document(body, "boundary"), "boundary.bpmn", ADMIN)
    view = engine.start("boundary", COORDINATOR)
    assert view.instance.next_due_at == clock.now() + timedelta(days=1)
    clock.advance(timedelta(days=1, seconds=1))
    engine.fire_timers(view.instance.id)
    assert not engine.tasks(COORDINATOR)
    assert the_task(engine, MINISTRY, "escalate")
    history = engine.instance(view.instance.id, ADMIN).history
    assert any(h.action == "task.cancelled" for h in history)


def test_set_variables_is_audited(engine: Engine) -> None:
    engine.deploy(sequential(1), "seq.bpmn", ADMIN)
    view = engine.start("seq", COORDINATOR, {"day_date": "2026-09-20"})
    with pytest.raises(NotFound):
        engine.set_variables(view.instance.id, TROITSK, {"day_date": "2026-09-27"})
    changed = engine.set_variables(view.instance.id, MINISTRY, {"day_date": "2026-09-27"})
    assert changed.variables["day_date"] == "2026-09-27"
    entry = engine.audit(ADMIN, AuditQuery(action="instance.variables_changed"))[0]
    assert entry.details["changes"]["day_date"] == {"from": "2026-09-20", "to": "2026-09-27"}
    json.dumps(engine.instance(view.instance.id, ADMIN).to_dict())


def test_non_interrupting_cycle_boundary_timer_repeats_while_the_task_stays(
    engine: Engine, clock: VirtualClock
) -> None:
    body = (
        '<bpmn:startEvent id="start"/>'
        + user_task("t", "T", 'camunda:candidateGroups="coordinator"')
        + '<bpmn:boundaryEvent id="nudge" attachedToRef="t" cancelActivity="false"><bpmn:timerEventDefinition>'
        "<bpmn:timeCycle>R2/PT1H</bpmn:timeCycle></bpmn:timerEventDefinition></bpmn:boundaryEvent>"
        + user_task("follow", "Follow up", 'camunda:candidateGroups="ministry"')
        + '<bpmn:endEvent id="end"/><bpmn:endEvent id="end2"/>'
        + flows("start", "t", "end")
        + flows("nudge", "follow", "end2", prefix="g")
    )
    engine.deploy(document(body, "nudges"), "nudges.bpmn", ADMIN)
    iid = engine.start("nudges", COORDINATOR).instance.id
    for _hour in (1, 2, 3):
        clock.advance(timedelta(hours=1, seconds=1))
        for due in engine.due_instances(clock.now()):
            engine.fire_timers(due, background=False)
    follow_ups = [v for v in engine.tasks(MINISTRY) if v.task.element_id == "follow"]
    assert len(follow_ups) == 2, "R2: two follow-ups, an hour apart"
    assert the_task(engine, COORDINATOR, "t"), "a non-interrupting timer leaves the task open"
    assert engine.instance(iid, ADMIN).instance.next_due_at is None


def test_like_wildcards_in_a_login_never_match_another_candidate(engine: Engine) -> None:
    # Candidate users are matched with LIKE on SQL: '_' in a login must not act as a wildcard.
    body = (
        '<bpmn:startEvent id="start"/>'
        + user_task("t", "T", 'camunda:candidateUsers="axb"')
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "t", "end")
    )
    engine.deploy(document(body, "cu"), "cu.bpmn", ADMIN)
    engine.start("cu", COORDINATOR)
    lookalike = Actor("a_b", "troitsk-go", frozenset({"expert"}))
    owner = Actor("axb", "troitsk-go", frozenset({"expert"}))
    assert engine.tasks(lookalike) == []
    assert [v.task.element_id for v in engine.tasks(owner)] == ["t"]
    wildcard_role = TaskQuery(role="%")
    assert engine.tasks(ADMIN, wildcard_role) == []
