"""The project contract (REG 3.7.4, 5.6) end to end on a virtual clock.

Every wait state is saved and restored: the stored state must load, re-save to the same
document and offer the same tasks. A golden state from format 1 must keep loading.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from cli.demo import load_process
from engine.clock import VirtualClock
from engine.engine import Engine
from engine.errors import FormInvalid, NotFound, NotPermitted
from engine.records import InstanceRecord, InstanceStatus, TaskQuery
from engine.spiff.runtime import Runtime
from tests.conftest import ADMIN, COORDINATOR, KOPEYSK, MINISTRY, TROITSK

CONTRACT = Path(__file__).resolve().parents[2] / "processes" / "contract" / "contract.bpmn"
GOLDEN = Path(__file__).parent / "fixtures" / "contract_state_signing_format1.json"

APPLICATION = {
    "directions": ["msoko", "model_documents"],
    "aspects": "Разработка муниципальной модели оценки качества дошкольного образования",
    "contact": {
        "name": "Иванова Анна Петровна",
        "position": "начальник отдела",
        "email": "ivanova@troitsk.example",
        "phone": "+7 (35163) 2-00-00",
    },
    "term_until": "2026-12-31",
}


@pytest.fixture
def contract(engine: Engine) -> Engine:
    source, resources = load_process(CONTRACT)
    engine.deploy(source, "contract/contract.bpmn", ADMIN, resources)
    return engine


def only_task(engine: Engine, actor: Any, element_id: str) -> Any:
    tasks = [v.task for v in engine.tasks(actor) if v.task.element_id == element_id]
    assert len(tasks) == 1, (element_id, [v.task.element_id for v in engine.tasks(actor)])
    return tasks[0]


def roundtrip(engine: Engine, instance_id: str) -> None:
    """Save/restore at a wait state: the stored state reloads to an identical document."""
    with engine.store.transaction() as tx:
        record = tx.get_instance(instance_id)
        assert record is not None
        compiled = engine._compiled_for(tx, record.definition_id)
        restored = Runtime.restore(compiled.specs, engine._script_engine(tx, compiled, record, ADMIN), record.state)
        assert json.loads(restored.dumps()) == json.loads(record.state)
        stored_tasks = {t.id for t in tx.list_tasks(TaskQuery(instance_id=instance_id, all_tasks=True))}
        assert {t.task_id for t in restored.human_tasks()} == stored_tasks


def test_contract_with_a_return_for_revision(contract: Engine, clock: VirtualClock) -> None:
    engine = contract
    with pytest.raises(NotPermitted):
        engine.start("contract", COORDINATOR, APPLICATION)
    with pytest.raises(FormInvalid) as bad:
        engine.start("contract", TROITSK, {**APPLICATION, "contact": {"name": "И"}})
    assert {e.field for e in bad.value.errors} == {"contact.name", "contact.email"}

    started = engine.start("contract", TROITSK, APPLICATION, business_key="contract-troitsk-2026")
    iid = started.instance.id
    assert started.instance.organisation == "troitsk-go"
    roundtrip(engine, iid)

    review = only_task(engine, COORDINATOR, "Task_ReviewApplication")
    view = engine.task(review.id, COORDINATOR)
    assert view.clause == "REG 5.6" and "REG 5.6" in (view.documentation or "")
    assert view.form and view.form["properties"]["review_decision"]["enum"] == ["accept", "return"]
    assert not engine.tasks(KOPEYSK) and not engine.tasks(MINISTRY)
    with pytest.raises(NotFound):
        engine.complete(review.id, TROITSK, {"review_decision": "accept"})

    clock.advance(timedelta(days=2))
    engine.claim(review.id, COORDINATOR)
    with pytest.raises(FormInvalid):
        engine.complete(review.id, COORDINATOR, {"review_decision": "return"})  # comments are required
    engine.complete(review.id, COORDINATOR, {"review_decision": "return", "review_comment": "Уточните срок договора"})
    roundtrip(engine, iid)

    revise = only_task(engine, TROITSK, "Task_ReviseApplication")
    assert revise.organisation == "troitsk-go"
    assert not [v for v in engine.tasks(KOPEYSK) if v.task.instance_id == iid]
    with pytest.raises(NotFound):
        engine.complete(revise.id, KOPEYSK, {**APPLICATION, "revision_note": "чужая правка"})
    clock.advance(timedelta(days=1))
    engine.complete(revise.id, TROITSK, {**APPLICATION, "term_until": "2027-12-31", "revision_note": "Срок продлён"})
    roundtrip(engine, iid)

    review2 = only_task(engine, COORDINATOR, "Task_ReviewApplication")
    assert review2.id != review.id
    engine.complete(review2.id, COORDINATOR, {"review_decision": "accept"})
    roundtrip(engine, iid)
    engine.complete(
        only_task(engine, COORDINATOR, "Task_PrepareContract").id,
        COORDINATOR,
        {"contract_subject": "Взаимодействие по развитию МСОКО Троицкого городского округа"},
    )
    roundtrip(engine, iid)

    sign_mouo = only_task(engine, TROITSK, "Task_SignMouo")
    sign_rcoko = only_task(engine, COORDINATOR, "Task_SignCoordinator")
    engine.complete(
        sign_mouo.id, TROITSK, {"mouo_signatory": "Петров П.П., начальник УО", "mouo_signed_on": "2026-03-06"}
    )
    roundtrip(engine, iid)
    assert engine.instance(iid, TROITSK).instance.status == InstanceStatus.RUNNING
    engine.complete(
        sign_rcoko.id, COORDINATOR, {"coordinator_signatory": "Директор РЦОКИО", "coordinator_signed_on": "2026-03-10"}
    )
    roundtrip(engine, iid)

    register = only_task(engine, COORDINATOR, "Task_RegisterContract")
    done = engine.complete(register.id, COORDINATOR, {"contract_number": "ПД-17/2026", "contract_date": "2026-03-11"})
    assert done.instance.status == InstanceStatus.COMPLETED

    members_2026 = {m.organisation.code: m for m in engine.members(2026)}
    assert members_2026["troitsk-go"].membership.contract_number == "ПД-17/2026"
    assert members_2026["troitsk-go"].membership.contract_date == date(2026, 3, 11)
    assert "troitsk-go" in {m.organisation.code for m in engine.members(2027)}
    assert "troitsk-go" not in {m.organisation.code for m in engine.members(2028)}

    history = engine.instance(iid, TROITSK).history
    actions = [(h.action, h.element_id) for h in history]
    assert ("element.completed", "Task_GrantMembership") in actions
    assert actions[-1] == ("instance.completed", None)
    granted = [h for h in history if h.action == "membership.granted"]
    assert [(g.details["organisation"], g.details["since_year"], g.details["until_year"]) for g in granted] == [
        ("troitsk-go", 2026, 2027)
    ]
    completions = [h for h in history if h.action == "task.completed"]
    assert [h.actor for h in completions] == [
        "coordinator",
        "troitsk-go",
        "coordinator",
        "coordinator",
        "troitsk-go",
        "coordinator",
        "coordinator",
    ]


def test_another_municipality_cannot_touch_the_contract(contract: Engine) -> None:
    started = contract.start("contract", TROITSK, APPLICATION)
    review = only_task(contract, COORDINATOR, "Task_ReviewApplication")
    contract.complete(review.id, COORDINATOR, {"review_decision": "accept"})
    contract.complete(
        only_task(contract, COORDINATOR, "Task_PrepareContract").id,
        COORDINATOR,
        {"contract_subject": "Взаимодействие по развитию МСОКО"},
    )
    sign = only_task(contract, TROITSK, "Task_SignMouo")
    for action in (
        lambda: contract.claim(sign.id, KOPEYSK),
        lambda: contract.complete(sign.id, KOPEYSK, {"mouo_signatory": "x x x", "mouo_signed_on": "2026-03-06"}),
        lambda: contract.task(sign.id, KOPEYSK),
        lambda: contract.instance(started.instance.id, KOPEYSK),
    ):
        with pytest.raises(NotFound):
            action()
    kopeysk_start = contract.start("contract", KOPEYSK, APPLICATION)
    assert kopeysk_start.instance.organisation == "kopeysk-go"
    assert {v.task.instance_id for v in contract.tasks(KOPEYSK)} <= {kopeysk_start.instance.id}


def test_golden_state_from_format_1_still_loads_and_finishes(contract: Engine) -> None:
    """A state saved by an earlier build (at the two signatures) continues with this build."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    with contract.store.transaction() as tx:
        definition = tx.latest_definition("contract")
        assert definition is not None
        compiled = contract._compiled_for(tx, definition.id)
        record = InstanceRecord(
            id="golden",
            definition_id=definition.id,
            process_key="contract",
            business_key=None,
            status=InstanceStatus.RUNNING,
            organisation="troitsk-go",
            started_by="troitsk-go",
            started_at=contract.clock.now(),
            updated_at=contract.clock.now(),
            state=json.dumps(golden["state"]),
        )
        runtime = Runtime.restore(compiled.specs, contract._script_engine(tx, compiled, record, ADMIN), record.state)
    ready = sorted(t.element_id for t in runtime.human_tasks())
    assert ready == ["Task_SignCoordinator", "Task_SignMouo"]
    for task in runtime.human_tasks():
        data = (
            {"mouo_signatory": "Петров П.П.", "mouo_signed_on": "2026-03-06"}
            if task.element_id == "Task_SignMouo"
            else {"coordinator_signatory": "Директор", "coordinator_signed_on": "2026-03-06"}
        )
        runtime.complete(task.task_id, data)
    [register] = runtime.human_tasks()
    assert register.element_id == "Task_RegisterContract"
    assert runtime.variables()["aspects"] == golden["expect"]["aspects"]


def _to_registration(engine: Engine, business_key: str) -> str:
    started = engine.start("contract", TROITSK, APPLICATION, business_key=business_key)
    iid = started.instance.id
    engine.complete(
        only_task(engine, COORDINATOR, "Task_ReviewApplication").id, COORDINATOR, {"review_decision": "accept"}
    )
    engine.complete(
        only_task(engine, COORDINATOR, "Task_PrepareContract").id,
        COORDINATOR,
        {"contract_subject": "Взаимодействие по развитию МСОКО Троицкого городского округа"},
    )
    engine.complete(
        only_task(engine, TROITSK, "Task_SignMouo").id,
        TROITSK,
        {"mouo_signatory": "Петров П.П.", "mouo_signed_on": "2026-03-06"},
    )
    engine.complete(
        only_task(engine, COORDINATOR, "Task_SignCoordinator").id,
        COORDINATOR,
        {"coordinator_signatory": "Директор РЦОКИО", "coordinator_signed_on": "2026-03-10"},
    )
    return iid


def test_the_document_system_registers_the_contract_by_message(contract: Engine) -> None:
    # REG 5.6 registration done in the Ministry's document system: its contract.registered
    # message (the number and the date) ends the registration task and makes the МОУО a member.
    engine = contract
    iid = _to_registration(engine, "ПД-ТРО-2026")
    assert engine.instance(iid, ADMIN).instance.waiting_messages == ("contract.registered",)
    data = {"contract_number": "ПД-17/2026", "contract_date": "2026-03-11"}
    wrong = engine.receive_message(
        ADMIN, name="contract.registered", correlation={"business_key": "ПД-КОП-2026"}, variables=data, key="sed:1"
    )
    assert wrong.status == "buffered"  # no instance with that business key waits
    assert engine.instance(iid, ADMIN).instance.status == InstanceStatus.RUNNING

    done = engine.receive_message(
        ADMIN, name="contract.registered", correlation={"business_key": "ПД-ТРО-2026"}, variables=data, key="sed:2"
    )
    assert (done.status, done.instance_id) == ("correlated", iid)
    view = engine.instance(iid, ADMIN)
    assert view.instance.status == InstanceStatus.COMPLETED
    assert view.variables["contract_number"] == "ПД-17/2026"
    assert "troitsk-go" in {m.organisation.code for m in engine.members(2026)}
    actions = [h.action for h in view.history]
    assert "message.correlated" in actions and "membership.granted" in actions
    cancelled = [h for h in view.history if h.action == "task.cancelled"]
    assert len(cancelled) == 1  # the registration task, interrupted by the message
    # The same message again (a retry of the sender) moves nothing and says what happened first.
    again = engine.receive_message(
        ADMIN, name="contract.registered", correlation={"business_key": "ПД-ТРО-2026"}, variables=data, key="sed:2"
    )
    assert (again.status, again.instance_id) == ("duplicate", iid)
    assert len(engine.instance(iid, ADMIN).history) == len(view.history)


def test_a_message_that_arrives_early_waits_in_the_buffer(contract: Engine, clock: VirtualClock) -> None:
    engine = contract
    data = {"contract_number": "ПД-18/2026", "contract_date": "2026-03-12"}
    early = engine.receive_message(
        ADMIN, name="contract.registered", correlation={"business_key": "ПД-ТРО-2027"}, variables=data, key="sed:e"
    )
    assert early.status == "buffered"
    iid = _to_registration(engine, "ПД-ТРО-2027")
    report = engine.sweep_messages()
    assert report.done == 1
    assert engine.instance(iid, ADMIN).instance.status == InstanceStatus.COMPLETED
    # A buffered message nobody takes expires.
    late = engine.receive_message(
        ADMIN,
        name="contract.registered",
        correlation={"business_key": "никто"},
        variables=data,
        key="sed:x",
        ttl=timedelta(hours=1),
    )
    assert late.status == "buffered"
    clock.advance(timedelta(hours=2))
    assert engine.sweep_messages().deferred == 1
    assert [m.status.value for m in engine.messages(ADMIN) if m.key == "sed:x"] == ["expired"]
