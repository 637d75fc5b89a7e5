"""The public events: every catalogued audit action is written to the outbox in the transaction of
its change (and only those), and every event we would send matches the published schema.

The store-level tests take the ``store`` fixture and the engine-level ones the ``engine`` fixture,
so ``tests/integration/test_webhooks_out.py`` re-collects them on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError

from cli.demo import load_process
from cli.simulate import Simulation, members_of
from engine import events
from engine.clock import VirtualClock
from engine.engine import Engine
from engine.ports import AuditQuery, Store
from engine.records import AuditEntry, OutboxEvent
from tests.conftest import ADMIN, COORDINATOR, START, TROITSK
from tests.processes.test_contract import APPLICATION, CONTRACT, _to_registration, only_task
from tests.unit.test_reports import SCRIPTED, into_incident
from webhooks.outbound import _instance_facts

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")
INTERNAL = ("task.commented", "definition.deployed", "directory.imported", "element.completed", "webhook.created")


def format_checker() -> FormatChecker:
    """Draft 2020-12 format checking, with ``date-time`` checked strictly (RFC 3339) even where
    jsonschema's optional checker for it is not installed."""
    checker = FormatChecker()

    @checker.checks("date-time", raises=ValueError)
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True
        if not RFC3339.match(value):
            raise ValueError(f"{value!r} is not an RFC 3339 date-time")
        datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        return True

    return checker


def validator() -> Draft202012Validator:
    schema = events.envelope_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=format_checker())


def entry(action: str, at: datetime = START, instance_id: str | None = "inst-1", **details: Any) -> AuditEntry:
    return AuditEntry(
        at,
        COORDINATOR.login,
        COORDINATOR.organisation,
        action,
        instance_id=instance_id,
        task_id="task-1",
        element_id="Task_1",
        details=details,
    )


def outbox(store: Store) -> list[OutboxEvent]:
    with store.transaction() as tx:
        return tx.list_outbox(0, 100_000)


def audit(store: Store) -> list[AuditEntry]:
    with store.transaction() as tx:
        return tx.list_audit(AuditQuery(limit=100_000))


def same_line(a: AuditEntry, b: AuditEntry) -> bool:
    keys = ("actor", "organisation", "action", "instance_id", "task_id", "element_id", "definition_id")
    return (
        all(getattr(a, k) == getattr(b, k) for k in keys)
        and a.at == b.at
        and dict(a.details or {}) == dict(b.details or {})
    )


def check_outbox_mirrors_audit(store: Store) -> list[OutboxEvent]:
    """The outbox holds exactly one event per catalogued audit line, in the same order, made
    from that line; no event without its line, no catalogued line without its event."""
    lines = [a for a in audit(store) if events.event_type_of(a.action) is not None]
    rows = outbox(store)
    assert len(rows) == len(lines), (len(rows), len(lines))
    for row, line in zip(rows, lines, strict=True):
        assert row.type == events.event_type_of(line.action)
        assert row.instance_id == line.instance_id and row.at == line.at
        assert same_line(row.entry, line), (row.entry, line)
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert len({r.event_id for r in rows}) == len(rows)
    return rows


# -- the store: the outbox row is written by append_audit, in its transaction ---------------------------


def test_every_catalogued_action_writes_one_outbox_row_internal_ones_none(store: Store) -> None:
    entries = [entry(e.action, START + timedelta(seconds=i)) for i, e in enumerate(events.CATALOGUE)]
    entries += [entry(action) for action in INTERNAL]
    with store.transaction() as tx:
        tx.append_audit(entries)
    rows = check_outbox_mirrors_audit(store)
    assert [r.type for r in rows] == list(events.NAMES)
    assert all(r.event_id.startswith("evt_") and r.dispatched_at is None for r in rows)


def test_a_rolled_back_transaction_leaves_neither_the_audit_line_nor_the_event(store: Store) -> None:
    with store.transaction() as tx:
        tx.append_audit([entry("instance.started", process_key="p", version=1)])
    before_audit, before_outbox = audit(store), outbox(store)

    class Boom(Exception):
        pass

    with pytest.raises(Boom), store.transaction() as tx:
        tx.append_audit([entry("task.created"), entry("instance.completed"), entry("task.commented")])
        assert len(tx.list_outbox(0, 100)) == len(before_outbox) + 2  # visible inside the transaction
        raise Boom
    assert audit(store) == before_audit
    assert outbox(store) == before_outbox
    check_outbox_mirrors_audit(store)


def test_event_types_of_actions() -> None:
    assert events.event_type_of("task.claimed") == "task.assigned"
    assert events.event_type_of("task.unclaimed") == "task.unassigned"
    for action in INTERNAL:
        assert events.event_type_of(action) is None
    assert len(events.NAMES) == len(set(events.NAMES)) == len(events.CATALOGUE)
    assert {e["type"] for e in events.catalogue()} == set(events.NAMES)


# -- real events through the engine ----------------------------------------------------------------------


def drive_the_contract(engine: Engine, clock: VirtualClock) -> None:
    """The contract to its end (claims, a return for revision, registration by message), a second
    one cancelled, a claim given back, and an instance whose background step fails (an incident)."""
    source, resources = load_process(CONTRACT)
    engine.deploy(source, "contract/contract.bpmn", ADMIN, resources)
    iid = engine.start("contract", TROITSK, APPLICATION, business_key="ПД-ТРО-2026").instance.id
    review = only_task(engine, COORDINATOR, "Task_ReviewApplication")
    engine.claim(review.id, COORDINATOR)
    engine.unclaim(review.id, COORDINATOR)
    engine.claim(review.id, COORDINATOR)
    engine.add_comment(review.id, COORDINATOR, "Смотрю")  # internal: no event
    engine.complete(review.id, COORDINATOR, {"review_decision": "return", "review_comment": "Уточните срок"})
    revise = only_task(engine, TROITSK, "Task_ReviseApplication")
    engine.complete(revise.id, TROITSK, {**APPLICATION, "revision_note": "Срок уточнён"})
    clock.advance(timedelta(hours=2))
    engine.cancel(iid, ADMIN, "заявка отозвана")

    registered = _to_registration(engine, "ПД-ТРО-2027")
    data = {"contract_number": "ПД-17/2026", "contract_date": "2026-03-11"}
    engine.receive_message(
        ADMIN, name="contract.registered", correlation={"business_key": "ПД-ТРО-2027"}, variables=data, key="sed:1"
    )
    assert engine.instance(registered, ADMIN).instance.status.value == "completed"

    engine.deploy(SCRIPTED, "scripted.bpmn", ADMIN)
    into_incident(engine, clock, "scripted", COORDINATOR, {"divisor": 0})


def envelopes(engine: Engine) -> list[dict[str, Any]]:
    result = []
    with engine.store.transaction() as tx:
        for row in tx.list_outbox(0, 100_000):
            instance = tx.get_instance(row.instance_id) if row.instance_id else None
            result.append(events.envelope(row.event_id, row.entry, _instance_facts(instance)))
    return result


def check_envelopes(found: list[dict[str, Any]]) -> None:
    checker = validator()
    for envelope in found:
        errors = sorted(checker.iter_errors(envelope), key=lambda e: list(e.path))
        assert not errors, (envelope, [e.message for e in errors])
        kind = events.BY_NAME[envelope["type"]]
        assert set(envelope["data"]) <= set((kind.data.get("properties") or {}).keys())


def test_the_contract_writes_its_events_with_its_changes_and_they_match_the_schema(
    engine: Engine, clock: VirtualClock
) -> None:
    drive_the_contract(engine, clock)
    rows = check_outbox_mirrors_audit(engine.store)
    found = envelopes(engine)
    check_envelopes(found)
    seen = {e["type"] for e in found}
    expected = set(events.NAMES) - {
        "deadline.reminder",
        "deadline.overdue",
        "deadline.escalated",
        "deadline.changed",
        "extension.requested",
        "extension.decided",
    }  # the contract has no deadlines: the Day's simulation produces those (below)
    assert expected <= seen, expected - seen
    # Internal actions happened and produced nothing.
    actions = {a.action for a in audit(engine.store)}
    assert {"task.commented", "definition.deployed", "element.completed"} <= actions
    assert not any(r.type in INTERNAL or r.entry.action in INTERNAL for r in rows)
    # Form values stay inside: a completion names the fields, never their values.
    completed = [e for e in found if e["type"] == "task.completed"]
    assert completed and all(set(e["data"]) <= {"fields"} for e in completed)
    assert all("Уточните" not in str(e) and "Петров" not in str(e) for e in completed)
    assigned = [e for e in found if e["type"] == "task.assigned"]
    assert assigned and all(e["data"] == {"assignee": COORDINATOR.login} for e in assigned)
    started = next(e for e in found if e["type"] == "instance.started")
    assert started["instance"]["process_key"] == "contract" and started["instance"]["organisation"] == "troitsk-go"


def test_the_day_of_the_agglomeration_produces_deadline_events_that_match_the_schema() -> None:
    from datetime import date

    sim = Simulation(2019, date(2019, 9, 20), members_of(2019, 5))
    sim.run()
    check_outbox_mirrors_audit(sim.engine.store)
    found = envelopes(sim.engine)
    check_envelopes(found)
    seen = {e["type"] for e in found}
    assert {
        "deadline.reminder",
        "deadline.overdue",
        "deadline.escalated",
        "deadline.changed",
        "extension.requested",
        "extension.decided",
    } <= seen
    reminder = next(e for e in found if e["type"] == "deadline.reminder")
    assert reminder["instance"]["process_key"] in ("day", "annual-results") and reminder["data"]["due"]


def test_internal_actions_through_the_engine_produce_no_event(engine: Engine) -> None:
    from tests.bpmn import sequential

    before = len(outbox(engine.store))
    engine.deploy(sequential(1), "seq1.bpmn", ADMIN)
    assert len(outbox(engine.store)) == before  # definition.deployed is internal
    started = engine.start("seq", COORDINATOR)
    after_start = outbox(engine.store)
    assert [r.type for r in after_start[before:]] == ["instance.started", "task.created"]
    engine.add_comment(started.tasks[0].task.id, COORDINATOR, "внутренний комментарий")
    assert len(outbox(engine.store)) == len(after_start)


def test_the_schema_refuses_what_is_not_an_event() -> None:
    checker = validator()
    good = events.envelope("evt_1", entry("task.claimed"), None)
    checker.validate(good)
    for bad in (
        {**good, "type": "task.exploded"},
        {**good, "version": 2},
        {**good, "occurred_at": "02.03.2026 11:00"},
        {**good, "occurred_at": "2026-02-30T10:00:00Z"},
        {**good, "data": {}},  # task.assigned requires the assignee
        {k: v for k, v in good.items() if k != "actor"},
        {**good, "type": "deadline.changed", "data": {"deadline_id": "d", "from": "2026-03-01", "to": "вчера"}},
    ):
        with pytest.raises(ValidationError):
            checker.validate(bad)
