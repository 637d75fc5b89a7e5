"""Workers killed with SIGKILL lose no webhook, and a duplicate is only ever a re-send.

1,000 ``task.created`` events of 50 instances are queued in the outbox; one subscription points
at the real loopback receiver (``tests/receiver.py``, which checks every signature with the
``standardwebhooks`` reference library). Worker 1 is killed in the middle of sending them.
Worker 2 is killed at the worst moment: the receiver has taken a round of deliveries and holds
its answers, so the worker never hears that they arrived. Worker 3 finishes.

At the receiver: every event arrived, every request verified, and an event that arrived twice
was one the killed worker had in flight, re-sent with the same ``webhook-id`` and the same
body — at most one round (one delivery per instance) per kill. Among first arrivals, each
instance's events came in outbox order. In the database every delivery is ``sent``.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from bench.webhook_bench import ADMIN, IN_FLIGHT, prepare, produce, settings_for
from engine.clock import SystemClock
from storage.bootstrap import open_engine
from tests.receiver import Received, Receiver
from tests.workers import count, kill, query, start_worker, stop, wait_for

N = 1000
DELAY = 0.005  # the receiver's time per request: a round of deliveries takes a while
HOLD = 1.0  # how long the receiver holds its answers at the worst moment
TIMEOUT = 0.25  # the worker's per-request timeout; it also sets the webhook lease (~6.5 s)

pytestmark = pytest.mark.slow


def start(db_url: str, name: str, log: Path) -> subprocess.Popen[bytes]:
    return start_worker(
        db_url,
        name,
        log,
        {
            "AGGLO_WEBHOOK_ALLOW_HOSTS": "127.0.0.1",
            "AGGLO_WEBHOOK_TIMEOUT_SECONDS": str(TIMEOUT),
            "AGGLO_WORKER_BATCH_SIZE": "100",
        },
    )


def in_flight(db_url: str) -> set[str]:
    """Event ids of the deliveries a (dead) worker had claimed and not recorded."""
    sql = "SELECT event_id FROM deliveries WHERE channel = 'webhook' AND status = 'sending'"
    return {str(r[0]) for r in query(db_url, sql)}


def test_killed_webhook_workers_lose_nothing_and_only_resend(db_url: str, tmp_path: Path) -> None:
    with Receiver(delay=DELAY) as receiver:
        engine = open_engine(settings_for(db_url), SystemClock())
        try:
            prepare(engine)
            _subscription, secret = engine.create_subscription(ADMIN, receiver.url())
            receiver.secrets = [secret]
            assert produce(engine, N, None, "audit") == N
        finally:
            engine.store.engine.dispose()  # type: ignore[attr-defined]
        outbox = query(db_url, "SELECT event_id, instance_id, id, event_type FROM audit_log WHERE event_id IS NOT NULL")
        expected = {str(r[0]) for r in outbox}
        assert sum(1 for r in outbox if r[3] == "task.created") == N
        position = {str(r[0]): (r[1], int(r[2])) for r in outbox}

        # 1. Killed in the middle of sending.
        first = start(db_url, "worker-1", tmp_path / "w1.log")
        try:
            receiver.wait_for(lambda r: len(r.received) >= 170, 60, "worker 1 to send 170 webhooks")
        finally:
            kill(first)
        time.sleep(0.1)  # requests the worker had written reach the receiver's log
        flight_1 = in_flight(db_url)
        arrived_1 = len(receiver.snapshot())
        assert 170 <= arrived_1 < N, "worker 1 was to be killed in the middle of the deliveries"

        # 2. Killed while the receiver has taken a round and not answered yet.
        held = threading.Event()
        target = arrived_1 + 200

        def hold(_number: int) -> None:
            # Called under the receiver's lock, before it reads ``delay``: hold this answer and the rest.
            if not held.is_set() and len(receiver.received) >= target:
                receiver.delay = HOLD
                held.set()

        receiver.rule = hold
        second = start(db_url, "worker-2", tmp_path / "w2.log")
        try:
            assert held.wait(60), "worker 2 never reached its 200th webhook"
            time.sleep(0.02)  # a few more requests of the round are taken and held
        finally:
            kill(second)
            receiver.rule = None
            receiver.delay = DELAY
        flight_2 = in_flight(db_url)
        assert flight_2, "worker 2 was to be killed with deliveries in flight"
        time.sleep(HOLD + 0.2)  # the held requests are logged (their answers go nowhere)

        # 3. A worker that finishes (after the dead workers' leases expire).
        third = start(db_url, "worker-3", tmp_path / "w3.log")
        try:
            wait_for(
                lambda: (
                    {r.webhook_id for r in receiver.snapshot()} >= expected
                    and count(db_url, "SELECT count(*) FROM deliveries WHERE channel = 'webhook' AND status <> 'sent'")
                    == 0
                ),
                60,
                "every webhook",
            )
            time.sleep(0.5)  # anything still in flight would arrive now
        finally:
            stop(third)
        received = receiver.snapshot()

    # Nothing lost, everything signed so that the reference library verifies it.
    # A worker killed between writing a request's headers and its body (http.client writes them
    # separately) leaves the receiver a truncated request, which it logs like any other; no
    # receiver takes that for a delivery. Only a request in flight at a kill can be one.
    truncated = [r for r in received if len(r.body) != int(r.headers["content-length"])]
    assert {r.webhook_id for r in truncated} <= flight_1 | flight_2, truncated
    received = [r for r in received if r not in truncated]
    assert all(r.ok and r.method == "POST" for r in received)
    assert all(r.verified == (0,) for r in received), [r.error for r in received if not r.verified][:3]
    ids = Counter(r.webhook_id for r in received)
    assert set(ids) == expected

    # A duplicate is a re-send of a delivery a killed worker had in flight: same id, same body.
    firsts: dict[str, Received] = {}
    for r in received:
        original = firsts.setdefault(r.webhook_id, r)
        assert r.body == original.body, r.webhook_id
        assert r.event["id"] == r.webhook_id
    duplicates = {k: n for k, n in ids.items() if n > 1}
    assert set(duplicates) <= flight_1 | flight_2, set(duplicates) - flight_1 - flight_2
    assert all(n <= 1 + (k in flight_1) + (k in flight_2) for k, n in duplicates.items()), duplicates
    assert len(flight_1) <= IN_FLIGHT and len(flight_2) <= IN_FLIGHT  # one round: one delivery per instance
    assert duplicates, "the receiver's held round was to be sent again"
    print(
        f"\n{len(received) - len(expected)} duplicate(s), {len(truncated)} truncated request(s); "
        f"in flight at the kills: {len(flight_1)}, {len(flight_2)}"
    )

    # First arrivals of each instance in outbox order.
    last: dict[str, int] = {}
    for webhook_id in firsts:
        instance, seq = position[webhook_id]
        if instance is None:
            continue
        assert seq > last.get(instance, -1), f"{webhook_id} overtook an earlier event of {instance}"
        last[instance] = seq
    assert len(last) == IN_FLIGHT

    # In the database: every delivery sent, and one 'sent' attempt logged for each (a killed
    # worker's round is recorded in one transaction or not at all).
    assert count(db_url, "SELECT count(*) FROM deliveries WHERE channel = 'webhook'") == len(expected)
    assert count(db_url, "SELECT count(*) FROM deliveries WHERE channel = 'webhook' AND status = 'sent'") == len(
        expected
    )
    assert count(db_url, "SELECT count(*) FROM audit_log WHERE event_id IS NOT NULL AND dispatched_at IS NULL") == 0
    sent = "FROM delivery_attempts WHERE channel = 'webhook' AND outcome = 'sent'"
    assert count(db_url, f"SELECT count(*) {sent}") == len(expected)
    assert count(db_url, f"SELECT count(DISTINCT delivery_id) {sent}") == len(expected)
