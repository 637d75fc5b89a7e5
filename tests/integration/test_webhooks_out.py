"""Outgoing webhooks end to end: engine → outbox → deliveries → real HTTP → a real receiver.

The engine writes public events into the outbox in the transaction of their change; the
worker's two sweeps (:func:`webhooks.outbound.dispatch` and :func:`webhooks.outbound.deliver`)
fan them out to subscriptions and POST them, signed, to ``tests/receiver.py`` on loopback,
which checks every signature with the ``standardwebhooks`` reference library. Run on SQLite
and (with ``AGGLO_TEST_POSTGRES_URL``) PostgreSQL.

The clock is virtual, so back-off delays are jumped over, not waited for; it starts at the
real time because the reference library refuses a ``webhook-timestamp`` more than five
minutes away from its own clock (no test moves it further than that).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from engine import events
from engine.clock import VirtualClock
from engine.directory import COORDINATOR_ORG, Role, User
from engine.engine import Engine
from engine.errors import BadInput, ConcurrencyConflict, FormInvalid, StaleVersion
from engine.ports import AuditQuery, Store
from engine.records import DeliveryRecord, DeliveryStatus, OutboxEvent, Subscription
from engine.settings import Settings
from engine.sweeps import SweepReport
from scheduler.worker import Worker
from storage.bootstrap import open_engine
from tests.bpmn import document, flows, sequential, user_task
from tests.conftest import ADMIN, COORDINATOR, KOPEYSK, TROITSK
from tests.receiver import Received, Receiver, received_in_order
from webhooks import http, outbound, ssrf

OWNER = "test-worker"
ALLOW_LOOPBACK = Settings(webhook_allow_hosts="127.0.0.1")
PUBLIC_ADDRESS = "93.184.215.14"

FORM = """<bpmn:extensionElements><camunda:formData>
  <camunda:formField id="amount" label="Сумма" type="long">
    <camunda:validation><camunda:constraint name="required"/><camunda:constraint name="min" config="1"/>
    </camunda:validation></camunda:formField>
</camunda:formData></bpmn:extensionElements>"""


# -- fixtures and helpers -------------------------------------------------------------------------------


@pytest.fixture
def clock() -> VirtualClock:
    """Virtual, but at the real time: the reference library checks webhook-timestamp against its clock."""
    return VirtualClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r
    http.POOL.clear()


@pytest.fixture
def seq(engine: Engine) -> str:
    """start → t1 → t2 → end for the coordinator: six public events per instance."""
    engine.deploy(sequential(2, "seq"), "seq.bpmn", ADMIN)
    return "seq"


def settings(**changes: Any) -> Settings:
    return ALLOW_LOOPBACK.with_(**changes)


def pump(engine: Engine, config: Settings = ALLOW_LOOPBACK, owner: str = OWNER, **options: Any) -> SweepReport:
    """The worker's webhook sweeps once: outbox → deliveries, then send what is due."""
    outbound.dispatch(engine.store, engine.clock, owner)
    return outbound.deliver(engine.store, engine.clock, config, owner, **options)


def subscribe(engine: Engine, receiver: Receiver, path: str = "/hook", **fields: Any) -> tuple[Subscription, str]:
    sub, secret = engine.create_subscription(ADMIN, receiver.url(path), **fields)
    receiver.secrets = [*receiver.secrets, secret]
    return sub, secret


def run_instance(engine: Engine, key: str = "seq", business_key: str | None = None) -> str:
    """Start an instance of a sequential process and complete its tasks one by one."""
    view = engine.start(key, COORDINATOR, business_key=business_key)
    tasks = view.tasks
    while tasks:
        tasks = engine.complete(tasks[0].task.id, COORDINATOR, {}).tasks
    return view.instance.id


def outbox(store: Store) -> list[OutboxEvent]:
    with store.transaction() as tx:
        return tx.list_outbox(0, 10_000)


def deliveries(store: Store, sub_id: str) -> list[DeliveryRecord]:
    with store.transaction() as tx:
        return tx.list_deliveries(channel="webhook", recipient=sub_id, limit=10_000)


def subscription(store: Store, sub_id: str) -> Subscription:
    with store.transaction() as tx:
        sub = tx.get_subscription(sub_id)
    assert sub is not None
    return sub


def order_by_instance(store: Store) -> dict[str | None, list[str]]:
    """The outbox's event ids per instance, in outbox (seq) order."""
    order: dict[str | None, list[str]] = {}
    for event in outbox(store):
        order.setdefault(event.instance_id, []).append(event.event_id)
    return order


def assert_each_request_waited_for_its_predecessor(
    requests: Sequence[Received], order: dict[str | None, list[str]]
) -> None:
    """Every request (answered 2xx or not) is for the earliest event of its instance not yet
    delivered: a later event is never sent before an earlier one has succeeded, none twice."""
    delivered: dict[str | None, int] = dict.fromkeys(order, 0)
    for request in requests:
        instance = (request.event.get("instance") or {}).get("id")
        position = order[instance].index(request.webhook_id)
        assert position == delivered[instance], (instance, request.event["type"], position, delivered[instance])
        if request.ok:
            delivered[instance] += 1


def close_to(actual: datetime | None, expected: datetime) -> bool:
    return actual is not None and abs((actual - expected).total_seconds()) < 0.001


# -- 1. the transactional outbox ------------------------------------------------------------------------


def test_events_are_written_in_the_transaction_of_their_change(engine: Engine, seq: str) -> None:
    before = outbox(engine.store)
    assert before == [], "deploying and importing the directory are not public events"
    view = engine.start(seq, COORDINATOR, business_key="bk-1")
    iid = view.instance.id
    t1 = view.tasks[0].task.id
    t2 = engine.complete(t1, COORDINATOR, {}).tasks[0].task.id
    engine.complete(t2, COORDINATOR, {})

    rows = outbox(engine.store)
    assert [(e.type, e.instance_id) for e in rows] == [
        ("instance.started", iid),
        ("task.created", iid),
        ("task.completed", iid),
        ("task.created", iid),
        ("task.completed", iid),
        ("instance.completed", iid),
    ]
    assert [e.entry.task_id for e in rows] == [None, t1, t1, t2, t2, None]
    assert [e.seq for e in rows] == sorted(e.seq for e in rows) and len({e.event_id for e in rows}) == 6
    assert all(e.dispatched_at is None for e in rows)
    # One outbox row per public audit line, from the same entry (the audit trail is the event log).
    audit = engine.audit(ADMIN, AuditQuery(instance_id=iid))
    public = [a for a in audit if events.event_type_of(a.action) is not None]
    assert [(a.action, a.task_id, a.at) for a in public] == [(e.entry.action, e.entry.task_id, e.at) for e in rows]
    assert len(audit) > len(public), "internal steps (element.completed) have no event"


def test_a_change_that_fails_leaves_no_event(engine: Engine, seq: str) -> None:
    body = (
        '<bpmn:startEvent id="start"/>'
        + user_task("check", "Check", 'camunda:candidateGroups="coordinator"', FORM)
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "check", "end")
    )
    engine.deploy(document(body, "form"), "form.bpmn", ADMIN)
    form_task = engine.start("form", COORDINATOR).tasks[0].task.id
    view = engine.start(seq, COORDINATOR)
    task = view.tasks[0].task.id
    baseline = outbox(engine.store)
    assert len(baseline) == 4

    with pytest.raises(FormInvalid):
        engine.complete(form_task, COORDINATOR, {"amount": 0})
    with pytest.raises(FormInvalid):
        engine.complete(form_task, COORDINATOR, {})
    with pytest.raises(StaleVersion):
        engine.complete(task, COORDINATOR, {}, expected_version=view.instance.version - 1)
    assert outbox(engine.store) == baseline

    engine.complete(task, COORDINATOR, {})
    after_complete = outbox(engine.store)
    assert len(after_complete) == 6
    with pytest.raises(ConcurrencyConflict):
        engine.complete(task, COORDINATOR, {})  # already completed
    assert outbox(engine.store) == after_complete

    # A crash after the events were written but before the commit takes the events with it.
    real = engine.store
    inside: list[list[str]] = []

    class CrashingTx:
        def __init__(self, tx: Any) -> None:
            self._tx = tx

        def append_audit(self, entries: Any) -> None:
            self._tx.append_audit(entries)
            inside.append([e.type for e in self._tx.list_outbox(after_complete[-1].seq, 100)])
            raise RuntimeError("the process dies before the commit")

        def __getattr__(self, name: str) -> Any:
            return getattr(self._tx, name)

    class CrashingStore:
        @contextmanager
        def transaction(self) -> Iterator[Any]:
            with real.transaction() as tx:
                yield CrashingTx(tx)

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    engine.store = CrashingStore()
    try:
        with pytest.raises(RuntimeError, match="dies"):
            engine.complete(form_task, COORDINATOR, {"amount": 5})
    finally:
        engine.store = real
    assert inside == [["task.completed", "instance.completed"]], "the events were in the transaction"
    assert outbox(engine.store) == after_complete
    assert engine.task(form_task, COORDINATOR).task.status.value == "open"
    assert engine.audit(ADMIN, AuditQuery(task_id=form_task, action="task.completed")) == []


# -- 2. delivery to a real receiver ---------------------------------------------------------------------


def test_every_event_reaches_the_receiver_once_signed_and_as_catalogued(
    engine: Engine, seq: str, receiver: Receiver, clock: VirtualClock
) -> None:
    sub, secret = subscribe(engine, receiver)
    iids = [run_instance(engine, seq, f"bk-{i}") for i in range(3)]
    engine.settings = ALLOW_LOOPBACK
    worker = Worker(engine, clock, OWNER, webhook_options={"threads": 4})
    for _ in range(10):
        worker.tick()
        if len(receiver.ok) >= 18:
            break
    rows = outbox(engine.store)
    assert len(rows) == 18 and all(e.instance_id in iids for e in rows)

    got = receiver.snapshot()
    assert [r.status for r in got] == [200] * 18
    assert receiver.duplicates() == {} and {r.webhook_id for r in got} == {e.event_id for e in rows}
    assert received_in_order(got) == order_by_instance(engine.store)
    validator = Draft202012Validator(events.envelope_schema(), format_checker=Draft202012Validator.FORMAT_CHECKER)
    by_id = {e.event_id: e for e in rows}
    now = clock.now()
    for request in got:
        assert request.verified == (0,), request.error  # the reference library accepted our signature
        assert request.method == "POST" and request.path == "/hook"
        headers = request.headers
        assert headers["content-type"] == "application/json" and headers["user-agent"] == http.USER_AGENT
        assert headers["webhook-timestamp"] == str(int(now.timestamp()))
        assert len(request.signatures) == 1 and request.signatures[0].startswith("v1,")
        event = by_id[request.webhook_id]
        number = iids.index(str(event.instance_id))
        facts = {"id": event.instance_id, "process_key": seq, "business_key": f"bk-{number}", "organisation": "rcoko"}
        assert request.event == events.envelope(event.event_id, event.entry, facts)
        assert not list(validator.iter_errors(request.event)), request.event
        assert request.event["id"] == request.webhook_id and request.event["type"] == event.type

    assert all(e.dispatched_at is not None for e in outbox(engine.store))
    sent = deliveries(engine.store, sub.id)
    assert [d.status for d in sent] == [DeliveryStatus.SENT] * 18
    assert all(d.attempts == 1 and d.sent_at == now and d.reply == '200 {"status": 200}' for d in sent)
    for d in sent[:3]:
        [attempt] = engine.delivery_attempts(ADMIN, d.id)
        assert (attempt.outcome, attempt.status, attempt.error) == ("sent", 200, None)
        assert attempt.latency_ms is not None and attempt.latency_ms > 0
    assert secret not in str(sent)
    # Nothing more to do: another tick sends nothing again.
    worker.tick()
    assert len(receiver.snapshot()) == 18


# -- 3. a receiver that is down for a while -------------------------------------------------------------


def test_a_receiver_down_for_a_while_gets_everything_later_once_and_in_order(
    engine: Engine, seq: str, receiver: Receiver, clock: VirtualClock
) -> None:
    sub, _ = subscribe(engine, receiver)
    for i in range(3):
        run_instance(engine, seq, f"bk-{i}")
    order = order_by_instance(engine.store)
    firsts = {ids[0] for ids in order.values()}
    receiver.down()

    delays: dict[str, list[float]] = {}
    for failure in range(1, 5):
        report = pump(engine)
        now = clock.now()
        assert (report.claimed, report.done, report.failed) == (3, 0, 3), "only each instance's first event"
        rows = deliveries(engine.store, sub.id)
        retrying = [d for d in rows if d.status == DeliveryStatus.RETRY]
        assert {d.event_id for d in retrying} == firsts
        assert all(d.status == DeliveryStatus.QUEUED and d.attempts == 0 for d in rows if d not in retrying)
        bound = 5.0 * 2 ** (failure - 1)
        for d in retrying:
            assert d.attempts == failure and d.last_error and d.last_error.startswith("ConnectionRefusedError")
            assert d.next_attempt_at is not None
            delay = (d.next_attempt_at - now).total_seconds()
            assert bound / 2 - 0.001 <= delay <= bound + 0.001, (failure, delay)  # jitter within its bounds
            delays.setdefault(d.id, []).append(delay)
        # Not due yet: nothing is tried before the back-off has passed.
        earliest = min(d.next_attempt_at for d in retrying if d.next_attempt_at is not None)
        clock.set(earliest - timedelta(milliseconds=1))
        assert pump(engine).claimed == 0
        clock.set(max(d.next_attempt_at for d in retrying if d.next_attempt_at is not None))

    for series in delays.values():
        assert series == sorted(series) and series[-1] >= 4 * series[0], series  # the back-off grows
    first = deliveries(engine.store, sub.id)[0]
    attempts = engine.delivery_attempts(ADMIN, first.id)
    assert [a.outcome for a in attempts] == ["retry"] * 4
    assert all(a.status is None and a.error and a.error.startswith("ConnectionRefusedError") for a in attempts)
    assert subscription(engine.store, sub.id).consecutive_failures == 12
    assert receiver.snapshot() == []

    receiver.up()
    for _ in range(20):
        pump(engine, threads=4)
        if all(d.status == DeliveryStatus.SENT for d in deliveries(engine.store, sub.id)):
            break
    got = receiver.snapshot()
    assert len(got) == 18 and receiver.duplicates() == {}
    assert all(r.ok and r.verified == (0,) for r in got)
    assert received_in_order(got) == order
    assert_each_request_waited_for_its_predecessor(got, order)
    rows = deliveries(engine.store, sub.id)
    assert sorted(d.attempts for d in rows) == [1] * 15 + [5] * 3
    assert subscription(engine.store, sub.id).consecutive_failures == 0 and subscription(engine.store, sub.id).active


def test_intermittent_failures_never_let_a_later_event_overtake_an_earlier_one(
    engine: Engine, seq: str, receiver: Receiver, clock: VirtualClock
) -> None:
    subscribe(engine, receiver)
    for i in range(4):
        run_instance(engine, seq, f"bk-{i}")
    order = order_by_instance(engine.store)
    receiver.rule = lambda n: 500 if n % 3 == 0 else None  # every third request fails
    for _ in range(40):
        pump(engine, threads=4)
        if len(receiver.ok) == 24:
            break
        clock.advance(timedelta(seconds=10))
    got = receiver.snapshot()
    assert any(not r.ok for r in got), "some requests failed"
    assert len(receiver.ok) == 24 and receiver.duplicates() == {}
    assert received_in_order(got) == order
    assert_each_request_waited_for_its_predecessor(got, order)


# -- 4. what the receiver's answer means ----------------------------------------------------------------


def test_410_gone_disables_the_subscription_and_keeps_the_rest_for_later(
    engine: Engine, seq: str, receiver: Receiver, clock: VirtualClock
) -> None:
    sub, _ = subscribe(engine, receiver)
    iid = run_instance(engine, seq)
    receiver.status = 410
    report = pump(engine)
    assert (report.claimed, report.failed) == (1, 1)
    now = clock.now()
    gone = subscription(engine.store, sub.id)
    assert not gone.active and gone.disabled_at == now and gone.disabled_reason == "410 Gone"
    rows = deliveries(engine.store, sub.id)
    assert rows[0].status == DeliveryStatus.FAILED and rows[0].next_attempt_at is None
    assert rows[0].last_error == "410 Gone: the receiver asked to stop"
    assert [a.outcome for a in engine.delivery_attempts(ADMIN, rows[0].id)] == ["disabled"]
    assert {d.status for d in rows[1:]} == {DeliveryStatus.QUEUED}
    [audit] = engine.audit(ADMIN, AuditQuery(action="webhook.disabled"))
    assert audit.details == {"subscription": sub.id, "url": sub.url, "reason": "410 Gone"}

    # Nothing more is sent; new events still queue for it.
    clock.advance(timedelta(minutes=1))
    run_instance(engine, seq)
    assert pump(engine).claimed == 0
    assert len(receiver.snapshot()) == 1 and len(deliveries(engine.store, sub.id)) == 12

    # Enabled again by an administrator, it gets the backlog (the 410 event itself stays failed).
    receiver.status = 200
    engine.update_subscription(ADMIN, sub.id, active=True)
    for _ in range(5):
        pump(engine, threads=4)
    assert len(receiver.ok) == 11 and receiver.duplicates() == {}
    assert rows[0].event_id not in receiver.delivered_ids()
    assert received_in_order(receiver.snapshot())[iid] == order_by_instance(engine.store)[iid][1:]


def test_5xx_is_retried_and_retry_after_is_honoured(
    engine: Engine, seq: str, receiver: Receiver, clock: VirtualClock
) -> None:
    sub, _ = subscribe(engine, receiver, event_types=["instance.started"])
    engine.start(seq, COORDINATOR)
    receiver.rule = {1: 500, 2: 503}.get
    receiver.retry_after = 120

    pump(engine)
    [d] = deliveries(engine.store, sub.id)
    assert d.status == DeliveryStatus.RETRY and d.last_error == "HTTP 500" and d.reply == '500 {"status": 500}'
    assert d.next_attempt_at is not None
    assert timedelta(seconds=2.5) <= d.next_attempt_at - clock.now() <= timedelta(seconds=5)
    clock.set(d.next_attempt_at)

    pump(engine)
    [d] = deliveries(engine.store, sub.id)
    assert d.status == DeliveryStatus.RETRY and d.last_error == "HTTP 503" and d.attempts == 2
    assert close_to(d.next_attempt_at, clock.now() + timedelta(seconds=120)), "Retry-After beats the back-off"
    clock.advance(timedelta(seconds=119))
    assert pump(engine).claimed == 0
    clock.advance(timedelta(seconds=1))
    assert pump(engine).done == 1

    [d] = deliveries(engine.store, sub.id)
    assert d.status == DeliveryStatus.SENT and d.attempts == 3
    assert [a.outcome for a in engine.delivery_attempts(ADMIN, d.id)] == ["sent", "retry", "retry"]
    assert [r.status for r in receiver.snapshot()] == [500, 503, 200]
    assert len({r.webhook_id for r in receiver.snapshot()}) == 1
    assert subscription(engine.store, sub.id).active


def test_a_redirect_is_not_followed(engine: Engine, seq: str, receiver: Receiver) -> None:
    with Receiver() as elsewhere:
        sub, _ = subscribe(engine, receiver, event_types=["instance.started"])
        receiver.status = 302
        receiver.redirect_to = elsewhere.url("/stolen")
        engine.start(seq, COORDINATOR)
        report = pump(engine)
        assert (report.done, report.failed) == (0, 1)
        [d] = deliveries(engine.store, sub.id)
        assert d.status == DeliveryStatus.RETRY and d.last_error == "HTTP 302"
        [attempt] = engine.delivery_attempts(ADMIN, d.id)
        assert (attempt.outcome, attempt.status) == ("retry", 302)
        assert [r.status for r in receiver.snapshot()] == [302]
        assert elsewhere.snapshot() == [], "the Location target was never contacted"
        assert subscription(engine.store, sub.id).consecutive_failures == 1


# -- 5. a run of failures -------------------------------------------------------------------------------


def test_a_run_of_failures_disables_the_subscription_and_tells_the_administrators(
    engine: Engine, seq: str, receiver: Receiver, clock: VirtualClock
) -> None:
    people = [
        User("admin2", "Second admin", COORDINATOR_ORG, frozenset({Role.ADMIN}), email="admin2@example.org"),
        User("admin3", "Former admin", COORDINATOR_ORG, frozenset({Role.ADMIN}), active=False, email="a3@example.org"),
        User("clerk", "Clerk", COORDINATOR_ORG, frozenset({Role.COORDINATOR}), email="clerk@example.org"),
    ]
    engine.import_directory(ADMIN, [], people, [])
    config = settings(webhook_disable_after_failures=3)
    sub, _ = subscribe(engine, receiver)
    iid = run_instance(engine, seq)
    receiver.rule = lambda n: 200 if n == 3 else 500

    streaks = []
    for _ in range(5):
        pump(engine, config)
        current = subscription(engine.store, sub.id)
        streaks.append((current.consecutive_failures, current.active))
        retrying = [d for d in deliveries(engine.store, sub.id) if d.next_attempt_at is not None]
        if current.active:
            clock.set(max(d.next_attempt_at for d in retrying if d.next_attempt_at is not None))
        else:
            break
    # 500, 500, then a success resets the run (and the next event fails in the same sweep), 500, 500.
    assert streaks == [(1, True), (2, True), (1, True), (2, True), (3, False)]
    assert [r.status for r in receiver.snapshot()] == [500, 500, 200, 500, 500, 500]
    now = clock.now()
    disabled = subscription(engine.store, sub.id)
    assert disabled.disabled_at == now and disabled.disabled_reason == "3 failed deliveries in a row"
    [audit] = engine.audit(ADMIN, AuditQuery(action="webhook.disabled"))
    assert audit.actor == "system" and audit.details["reason"] == "3 failed deliveries in a row"

    with engine.store.transaction() as tx:
        notified = {
            login: [n for n in tx.list_notifications(login) if n.kind == "webhook_disabled"]
            for login in ("admin", "admin2", "admin3", "clerk")
        }
        mails = [d for d in tx.list_deliveries(channel="email") if d.payload.get("kind") == "webhook_disabled"]
    assert {login for login, notes in notified.items() if notes} == {"admin", "admin2"}
    for login in ("admin", "admin2"):
        [note] = notified[login]
        assert note.kind == "webhook_disabled" and note.created_at == now
        assert sub.url in note.title and "3 failed deliveries in a row" in note.body
    [mail] = mails
    assert (mail.recipient, mail.address, mail.status) == ("admin2", "admin2@example.org", DeliveryStatus.QUEUED)
    assert mail.payload["kind"] == "webhook_disabled" and sub.url in str(mail.payload["subject"])

    # Disabled, it is left alone: no request, however much time passes.
    clock.advance(timedelta(minutes=2))
    assert pump(engine, config).claimed == 0
    assert len(receiver.snapshot()) == 6
    # An administrator enables it again: the failure count starts over and the rest is delivered in order.
    receiver.rule = None
    enabled = engine.update_subscription(ADMIN, sub.id, active=True)
    assert enabled.consecutive_failures == 0 and enabled.disabled_at is None
    for _ in range(5):
        pump(engine, config)
    assert len(receiver.ok) == 6 and receiver.duplicates() == {}
    assert received_in_order(receiver.snapshot())[iid] == order_by_instance(engine.store)[iid]


# -- 6. manual redelivery -------------------------------------------------------------------------------


def test_a_failed_delivery_is_sent_again_by_hand_with_the_same_webhook_id(
    engine: Engine, seq: str, receiver: Receiver
) -> None:
    config = settings(webhook_retry_horizon_seconds=0)  # the first failure is final
    sub, _ = subscribe(engine, receiver)
    engine.start(seq, COORDINATOR)
    receiver.status = 500
    pump(engine, config)
    failed, waiting = deliveries(engine.store, sub.id)
    assert failed.status == DeliveryStatus.FAILED and failed.next_attempt_at is None
    assert [a.outcome for a in engine.delivery_attempts(ADMIN, failed.id)] == ["failed"]

    receiver.status = 200
    queued = engine.redeliver(ADMIN, failed.id)
    assert queued.status == DeliveryStatus.QUEUED and queued.event_id == failed.event_id
    pump(engine, config)
    first, again, after = receiver.snapshot()
    assert (first.status, again.status, after.status) == (500, 200, 200)
    assert first.webhook_id == again.webhook_id == failed.event_id and first.body == again.body
    assert after.webhook_id == waiting.event_id, "the instance's next event followed"
    assert again.verified == (0,) and first.verified == (0,)
    sent = {d.id: d for d in deliveries(engine.store, sub.id)}
    assert sent[failed.id].status == DeliveryStatus.SENT and sent[failed.id].attempts == 2
    assert [a.outcome for a in engine.delivery_attempts(ADMIN, failed.id)] == ["sent", "failed"]
    [audit] = engine.audit(ADMIN, AuditQuery(action="webhook.redelivery"))
    assert audit.details == {"delivery": failed.id, "subscription": sub.id, "event": failed.event_id}


# -- 7. filters -----------------------------------------------------------------------------------------


def test_event_type_and_organisation_filters_restrict_what_is_delivered(engine: Engine, receiver: Receiver) -> None:
    body = (
        '<bpmn:startEvent id="start"/>'
        + user_task("report", "Report", 'camunda:candidateGroups="mouo"')
        + '<bpmn:endEvent id="end"/>'
        + flows("start", "report", "end")
    )
    engine.deploy(document(body, "mouo", attrs='camunda:candidateStarterGroups="mouo"'), "mouo.bpmn", ADMIN)
    by_type, _ = subscribe(engine, receiver, "/types", event_types=["task.completed", "instance.completed"])
    by_org, _ = subscribe(engine, receiver, "/troitsk", organisation="troitsk-go")
    both, _ = subscribe(engine, receiver, "/both", event_types=["instance.started"], organisation="kopeysk-go")
    off, _ = subscribe(engine, receiver, "/off")
    engine.update_subscription(ADMIN, off.id, active=False)

    for actor in (TROITSK, KOPEYSK):
        view = engine.start("mouo", actor)
        engine.complete(view.tasks[0].task.id, actor, {})
    for _ in range(5):
        pump(engine, threads=4)

    got = receiver.snapshot()
    assert all(r.ok for r in got)
    # One event going to two subscriptions keeps its webhook-id (the event's id) for both.
    assert len({(r.path, r.webhook_id) for r in got}) == len(got)
    # The organisation filter goes by the instance's organisation, so instance.completed (a system
    # event with no organisation of its own) reaches the organisation's subscription too.
    seen = {(r.path, r.event["type"], r.event["instance"]["organisation"]) for r in got}
    assert sorted(seen) == sorted(
        [
            ("/types", "task.completed", "troitsk-go"),
            ("/types", "instance.completed", "troitsk-go"),
            ("/types", "task.completed", "kopeysk-go"),
            ("/types", "instance.completed", "kopeysk-go"),
            ("/troitsk", "instance.started", "troitsk-go"),
            ("/troitsk", "task.created", "troitsk-go"),
            ("/troitsk", "task.completed", "troitsk-go"),
            ("/troitsk", "instance.completed", "troitsk-go"),
            ("/both", "instance.started", "kopeysk-go"),
        ]
    )
    assert len(got) == len(seen)
    index = {"/types": 0, "/troitsk": 1, "/both": 2}
    assert all(r.verified == (index[r.path],) for r in got), "each signed with its own subscription's secret"
    assert len(deliveries(engine.store, by_type.id)) == 4 and len(deliveries(engine.store, by_org.id)) == 4
    assert len(deliveries(engine.store, both.id)) == 1
    assert deliveries(engine.store, off.id) == [], "switched off by an administrator: nothing is queued"


# -- 8. secret rotation ---------------------------------------------------------------------------------


def test_during_a_rotation_either_secret_verifies(
    engine: Engine, seq: str, receiver: Receiver, clock: VirtualClock
) -> None:
    sub, old = subscribe(engine, receiver, event_types=["instance.started"])
    _, new = engine.rotate_subscription_secret(ADMIN, sub.id, timedelta(seconds=60))
    receiver.secrets = [old, new]
    engine.start(seq, COORDINATOR)
    pump(engine)
    [during] = receiver.snapshot()
    assert len(during.signatures) == 2
    assert during.verified == (0, 1), "a receiver holding only the old or only the new secret accepts it"

    clock.advance(timedelta(seconds=61))
    engine.start(seq, COORDINATOR)
    pump(engine)
    after = receiver.snapshot()[-1]
    assert len(after.signatures) == 1 and after.verified == (1,), "after the overlap only the new secret signs"
    assert during.webhook_id != after.webhook_id and during.ok and after.ok


# -- 9. SSRF ----------------------------------------------------------------------------------------------


def test_private_addresses_are_refused_when_saved_and_when_sent(
    engine: Engine, seq: str, receiver: Receiver, db_url: str, clock: VirtualClock
) -> None:
    # Saving: the engine the application builds checks the URL (no allow-list: loopback refused).
    guarded = open_engine(Settings(database_url=db_url), clock)
    try:
        for url in (receiver.url(), "http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/hook"):
            with pytest.raises(BadInput, match="refused"):
                guarded.create_subscription(ADMIN, url)
        assert guarded.subscriptions(ADMIN) == []
        allowed = open_engine(Settings(database_url=db_url, webhook_allow_hosts="127.0.0.1"), clock)
        try:
            loopback, secret = allowed.create_subscription(ADMIN, receiver.url(), event_types=["instance.started"])
        finally:
            allowed.store.engine.dispose()  # type: ignore[attr-defined]
    finally:
        guarded.store.engine.dispose()  # type: ignore[attr-defined]
    receiver.secrets = [secret]

    # Sending: checked again, on what the name resolves to now (a name that rebinds to loopback),
    # without the allow-list; a refused delivery is a failed attempt and no connection is made.
    public = {"hooks.example.org": [PUBLIC_ADDRESS]}
    engine.url_guard = lambda url: ssrf.check(url, [], lambda host, port: public[host])
    rebinding, _ = engine.create_subscription(ADMIN, "http://hooks.example.org/agglo", ["instance.started"])
    engine.url_guard = None
    metadata, _ = engine.create_subscription(ADMIN, "http://169.254.169.254/latest/", ["instance.started"])
    engine.start(seq, COORDINATOR)
    connections: list[ssrf.Target] = []

    def sender(target: ssrf.Target, body: bytes, headers: dict[str, str], timeout: float) -> http.HttpResult:
        connections.append(target)
        return http.post(target, body, headers, timeout)

    def rebound(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    report = pump(engine, Settings(), sender=sender, resolver=rebound)
    assert (report.claimed, report.failed) == (3, 3)
    assert connections == [] and receiver.snapshot() == []
    reasons = {
        loopback.id: "127.0.0.1 resolves to 127.0.0.1, a loopback address",
        rebinding.id: "hooks.example.org resolves to 127.0.0.1, a loopback address",
        metadata.id: "169.254.169.254 resolves to 169.254.169.254, a link-local address",
    }
    for sub_id, reason in reasons.items():
        [d] = deliveries(engine.store, sub_id)
        assert d.status == DeliveryStatus.RETRY and d.last_error and d.last_error.startswith(f"refused: {reason}")
        [attempt] = engine.delivery_attempts(ADMIN, d.id)
        assert attempt.outcome == "retry" and attempt.status is None and attempt.error == d.last_error
        assert attempt.latency_ms == 0.0

    # Allowed by name, the same loopback delivery goes through.
    clock.advance(timedelta(seconds=10))
    pump(engine, ALLOW_LOOPBACK, sender=sender, resolver=rebound)
    assert [t.address for t in connections] == ["127.0.0.1"]
    assert [r.verified for r in receiver.snapshot()] == [(0,)]
    assert [d.status for d in deliveries(engine.store, loopback.id)] == [DeliveryStatus.SENT]


# -- 10. two workers ------------------------------------------------------------------------------------


def test_two_workers_share_a_backlog_and_send_each_delivery_once(engine: Engine, seq: str, receiver: Receiver) -> None:
    sub, _ = subscribe(engine, receiver)
    for i in range(12):
        run_instance(engine, seq, f"bk-{i}")
    outbound.dispatch(engine.store, engine.clock, "dispatcher")
    total = len(deliveries(engine.store, sub.id))
    assert total == 72
    receiver.delay = 0.005  # requests overlap
    reports: dict[str, list[SweepReport]] = {"w1": [], "w2": []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def pending() -> int:
        return sum(d.status != DeliveryStatus.SENT for d in deliveries(engine.store, sub.id))

    def work(owner: str) -> None:
        try:
            barrier.wait()
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and pending():
                report = outbound.deliver(engine.store, engine.clock, ALLOW_LOOPBACK, owner, 6, threads=3)
                reports[owner].append(report)
                if not report.claimed:
                    time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(owner,)) for owner in reports]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and not any(t.is_alive() for t in threads)

    done = {owner: sum(r.done for r in rs) for owner, rs in reports.items()}
    assert sum(done.values()) == total and sum(r.failed for rs in reports.values() for r in rs) == 0
    assert min(done.values()) > 0, f"both workers took part: {done}"
    got = receiver.snapshot()
    assert len(got) == total and receiver.duplicates() == {} and all(r.ok for r in got)
    rows = deliveries(engine.store, sub.id)
    assert all(d.status == DeliveryStatus.SENT and d.attempts == 1 for d in rows)
    with engine.store.transaction() as tx:
        assert len(tx.list_attempts(recipient=sub.id, limit=1000)) == total
    order = order_by_instance(engine.store)
    assert received_in_order(got) == order
    assert_each_request_waited_for_its_predecessor(got, order)
