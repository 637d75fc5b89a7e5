"""Webhook benchmark: 10,000 events to a local receiver through the outbox.

Events are produced through the engine (``--produce engine``, the default): instances of a
three-task process are started and their tasks completed, 50 instances in flight at a time, so
every instance yields 8 public events (instance.started, task.created and task.completed three
times, instance.completed), each written to the outbox in the transaction of its change, and
the per-instance order is what the deliveries must keep. ``--produce audit`` bulk-writes
``task.created`` audit lines (with their outbox rows) in transactions of 100 instead.

One subscription receives every event at a loopback HTTP receiver (``tests/receiver.py``: it
verifies every signature with the ``standardwebhooks`` reference library) running in its own
process, as a receiver would. The worker's sweeps run in this process exactly as ``agglo
worker`` runs them: ``Worker.tick()`` every ``--tick`` seconds (timers, reminders, messages, then
webhook dispatch and delivery).

1. Throughput: N events are queued while the worker is stopped; then it ticks until every one
   is delivered. Printed: deliveries/s (N / time from the first tick to the last receipt).
   Target: at least 500/s.
2. Latency: N more events are produced at a steady ``--rate`` (default 500/s, shared by
   ``--producers`` processes, as web requests would be) while the worker ticks. Latency is
   receipt time minus the event's ``occurred_at``.
   Printed: p50 and p99. Target: p99 under 2 s.

Every delivery is checked: signature verified, each event received, none twice, and the
per-instance order kept (receipts of one instance in outbox order).

Usage: .venv/bin/python bench/webhook_bench.py [--backend sqlite|postgres] [--events 10000]
       [--rate 500] [--tick 1.0] [--produce engine|audit] [--postgres URL] [--json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from engine.clock import SystemClock  # noqa: E402
from engine.directory import COORDINATOR_ORG, Actor, Organisation, OrgKind, Role, User  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.records import AuditEntry  # noqa: E402
from engine.settings import Settings  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from storage.bootstrap import open_engine, upgrade  # noqa: E402
from storage.db import normalise_url  # noqa: E402
from tests.bpmn import sequential  # noqa: E402
from tests.receiver import Receiver  # noqa: E402

ADMIN = Actor("bench-admin", COORDINATOR_ORG, frozenset({Role.ADMIN}))
COORDINATOR = Actor("bench-coordinator", COORDINATOR_ORG, frozenset({Role.COORDINATOR}))
PROCESS = "bench_seq"
EVENTS_PER_INSTANCE = 8
IN_FLIGHT = 50
THROUGHPUT_TARGET = 500.0
P99_TARGET = 2.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def settings_for(url: str) -> Settings:
    return Settings(
        database_url=url,
        webhook_allow_hosts="127.0.0.1",
        quiet_hours_start=0,
        quiet_hours_end=0,
        worker_batch_size=500,
    )


# -- the receiver, in its own process (or in this one, for the tests) -----------------------------------

Receipt = tuple[str, float, bool, str, str | None]  # webhook-id, arrival, verified, occurred_at, instance


def _receipts(receiver: Receiver) -> list[Receipt]:
    out: list[Receipt] = []
    for r in receiver.ok:
        event = r.event
        instance = (event.get("instance") or {}).get("id")
        out.append((r.webhook_id, r.at, bool(r.verified), event["occurred_at"], instance))
    return out


def _serve(conn: Connection) -> None:
    with Receiver() as receiver:
        conn.send(receiver.port)
        while True:
            command, argument = conn.recv()
            if command == "secrets":
                receiver.secrets = list(argument)
                conn.send(True)
            elif command == "count":
                conn.send(len(receiver.ok))
            elif command == "receipts":
                conn.send(_receipts(receiver))
            elif command == "clear":
                receiver.clear()
                conn.send(True)
            else:
                conn.send(True)
                return


class LocalReceiver:
    """The receiver in this process (threads)."""

    def __init__(self) -> None:
        self.receiver = Receiver().start()
        self.port = self.receiver.port

    def set_secrets(self, secrets: list[str]) -> None:
        self.receiver.secrets = secrets

    def count(self) -> int:
        return len(self.receiver.ok)

    def receipts(self) -> list[Receipt]:
        return _receipts(self.receiver)

    def clear(self) -> None:
        self.receiver.clear()

    def close(self) -> None:
        self.receiver.stop()


class RemoteReceiver:
    """The receiver in a child process: the worker's sending threads do not share its interpreter."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child,), daemon=True)
        self._process.start()
        self.port = int(self._conn.recv())

    def _ask(self, command: str, argument: Any = None) -> Any:
        self._conn.send((command, argument))
        return self._conn.recv()

    def set_secrets(self, secrets: list[str]) -> None:
        self._ask("secrets", secrets)

    def count(self) -> int:
        return int(self._ask("count"))

    def receipts(self) -> list[Receipt]:
        return list(self._ask("receipts"))

    def clear(self) -> None:
        self._ask("clear")

    def close(self) -> None:
        try:
            self._ask("stop")
        finally:
            self._process.join(10)
            if self._process.is_alive():
                self._process.kill()


# -- producing events ----------------------------------------------------------------------------------


def prepare(engine: Engine) -> None:
    orgs = [Organisation(COORDINATOR_ORG, "ГБУ ДПО РЦОКИО", OrgKind.COORDINATOR)]
    users = [User(a.login, a.login, a.organisation, a.roles) for a in (ADMIN, COORDINATOR)]
    engine.import_directory(ADMIN, orgs, users, [])
    engine.deploy(sequential(3, PROCESS), "bench_seq.bpmn", ADMIN)


def produce(engine: Engine, events: int, rate: float | None, mode: str) -> int:
    """Produce ``events`` public events (optionally paced at ``rate`` per second); return how many."""
    started = time.monotonic()
    produced = 0

    def pace() -> None:
        if rate:
            wait = started + produced / rate - time.monotonic()
            if wait > 0:
                time.sleep(wait)

    if mode == "audit":
        tag = uuid.uuid4().hex[:8]
        while produced < events:
            pace()
            size = min(100, events - produced)
            now = engine.clock.now()
            entries = [
                AuditEntry(
                    now,
                    COORDINATOR.login,
                    COORDINATOR.organisation,
                    "task.created",
                    instance_id=f"{tag}-{(produced + i) % IN_FLIGHT}",
                    task_id=f"{tag}-{produced + i}",
                )
                for i in range(size)
            ]
            with engine.store.transaction() as tx:
                tx.append_audit(entries)
            produced += size
        return produced

    flight: list[str | None] = [None] * IN_FLIGHT  # the open task of each instance in flight
    slot = 0
    while produced < events:
        pace()
        task_id = flight[slot]
        if task_id is None:
            view = engine.start(PROCESS, COORDINATOR)
            flight[slot] = view.tasks[0].task.id
        else:
            done = engine.complete(task_id, COORDINATOR, {})
            flight[slot] = done.tasks[0].task.id if done.tasks else None
        produced += 2  # started+created, completed+created, or completed+instance completed
        slot = (slot + 1) % IN_FLIGHT
    return produced


def _produce_process(url: str, events: int, rate: float, mode: str) -> None:
    engine = open_engine(settings_for(url), SystemClock())
    try:
        produce(engine, events, rate, mode)
    finally:
        engine.store.engine.dispose()  # type: ignore[attr-defined]


# -- the worker ------------------------------------------------------------------------------------------


def sent(engine: Engine) -> int:
    with engine.store.engine.connect() as conn:  # type: ignore[attr-defined]
        sql = "SELECT count(*) FROM deliveries WHERE channel = 'webhook' AND status = 'sent'"
        return int(conn.execute(text(sql)).scalar_one())


def tick_until(worker: Worker, done: Callable[[], bool], tick: float, timeout: float) -> None:
    """Tick as the worker's scheduler does (a fixed interval; a late tick runs at once, coalesced)."""
    deadline = time.monotonic() + timeout
    next_tick = time.monotonic()
    while True:
        worker.tick()
        if done():
            return
        if time.monotonic() > deadline:
            raise RuntimeError("the deliveries did not finish in time")
        next_tick = max(next_tick + tick, time.monotonic() - tick)
        time.sleep(max(0.0, next_tick - time.monotonic()))


def _check(receipts: list[Receipt], order: dict[str, int], expected: set[str]) -> dict[str, int]:
    """Counts of what would be wrong: missing, unknown, duplicate, unverified, out of order."""
    first: dict[str, Receipt] = {}
    duplicates = 0
    for receipt in receipts:
        if receipt[0] in first:
            duplicates += 1
        else:
            first[receipt[0]] = receipt
    last: dict[str | None, int] = {}
    out_of_order = 0
    for webhook_id, _at, _ok, _occurred, instance in sorted(first.values(), key=lambda r: r[1]):
        seq = order.get(webhook_id, -1)
        if instance is not None:
            if seq < last.get(instance, -1):
                out_of_order += 1
            last[instance] = max(seq, last.get(instance, -1))
    got = set(first) & expected
    return {
        "missing": len(expected - got),
        "duplicates": duplicates,
        "unverified": sum(1 for r in first.values() if not r[2]),
        "out_of_order": out_of_order,
    }


def _outbox_order(engine: Engine) -> dict[str, int]:
    with engine.store.engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(text("SELECT event_id, id FROM audit_log WHERE event_id IS NOT NULL"))
        return {r[0]: int(r[1]) for r in rows}


def run(
    url: str,
    events: int = 10_000,
    rate: float = 500.0,
    tick: float = 1.0,
    mode: str = "engine",
    batch: int = 200,
    threads: int = 16,
    separate_processes: bool = True,
    producers: int = 2,
    timeout: float = 300.0,
) -> dict[str, Any]:
    upgrade(url)
    clock = SystemClock()
    engine = open_engine(settings_for(url), clock)
    receiver: LocalReceiver | RemoteReceiver = RemoteReceiver() if separate_processes else LocalReceiver()
    try:
        prepare(engine)
        subscription, secret = engine.create_subscription(ADMIN, f"http://127.0.0.1:{receiver.port}/hook")
        receiver.set_secrets([secret])
        worker = Worker(engine, clock, f"bench-{uuid.uuid4().hex[:6]}", webhook_batch=batch)
        worker.webhook_options = {"threads": threads}
        worker.tick()  # the first tick loads the calendar; nothing is queued yet

        # 1. Throughput: a backlog of N events, then the worker.
        t0 = time.perf_counter()
        queued = produce(engine, events, None, mode)
        produce_seconds = time.perf_counter() - t0
        start = time.time()
        tick_until(worker, lambda: sent(engine) >= queued, tick, timeout)
        receipts = receiver.receipts()
        order = _outbox_order(engine)
        backlog_ids = set(order)
        last = max(r[1] for r in receipts)
        throughput = {
            "events": queued,
            "produce_seconds": round(produce_seconds, 2),
            "seconds": round(last - start, 3),
            "deliveries_per_s": round(queued / (last - start), 1),
            **_check(receipts, order, backlog_ids),
        }
        receiver.clear()

        # 2. Latency: N events at a steady rate while the worker ticks.
        shares = [events // producers + (1 if i < events % producers else 0) for i in range(producers)]
        shares = [2 * ((n + 1) // 2) for n in shares if n]  # the engine produces events in pairs
        runners: list[Any] = []
        for share in shares:
            if separate_processes:
                context = multiprocessing.get_context("spawn")
                args = (url, share, rate * share / events, mode)
                runners.append(context.Process(target=_produce_process, args=args, daemon=True))
            else:
                args2 = (engine, share, rate * share / events, mode)
                runners.append(threading.Thread(target=produce, args=args2, daemon=True))
        target_sent = queued + sum(shares)
        for runner in runners:
            runner.start()
        tick_until(worker, lambda: sent(engine) >= target_sent, tick, timeout)
        for runner in runners:
            runner.join(30)
        receipts = receiver.receipts()
        order = _outbox_order(engine)
        first: dict[str, Receipt] = {}
        for receipt in receipts:
            first.setdefault(receipt[0], receipt)
        occurred = {k: datetime.fromisoformat(r[3].replace("Z", "+00:00")).timestamp() for k, r in first.items()}
        latencies = [r[1] - occurred[k] for k, r in first.items()]
        span = max(occurred.values()) - min(occurred.values())
        steady = {
            "events": sum(shares),
            "rate": rate,
            "produced_per_s": round(sum(shares) / span, 1) if span > 0 else float("nan"),
            "producers": len(shares),
            "tick": tick,
            "latency_p50_s": round(statistics.median(latencies), 3),
            "latency_p99_s": round(percentile(latencies, 0.99), 3),
            "latency_max_s": round(max(latencies), 3),
            **_check(receipts, order, set(order) - backlog_ids),
        }
        with engine.store.transaction() as tx:
            current = tx.get_subscription(subscription.id)
        return {
            "events_total": queued + events,
            "produce": mode,
            "batch": batch,
            "threads": threads,
            "subscription_active": bool(current and current.active),
            "throughput": throughput,
            "latency": steady,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
    finally:
        receiver.close()
        engine.store.engine.dispose()  # type: ignore[attr-defined]


@contextmanager
def database(backend: str, postgres: str) -> Iterator[str]:
    """A fresh database for one run: a temporary SQLite file, or a PostgreSQL database dropped after."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(normalise_url(postgres))
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"agglo_whbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def targets(result: dict[str, Any]) -> dict[str, bool]:
    tp, lt = result["throughput"], result["latency"]
    correct = all(tp[k] == 0 and lt[k] == 0 for k in ("missing", "duplicates", "unverified", "out_of_order"))
    return {
        "deliveries_per_s": tp["deliveries_per_s"] >= THROUGHPUT_TARGET,
        "latency_p99": lt["latency_p99_s"] < P99_TARGET,
        "correct": correct,
    }


def report(backend: str, result: dict[str, Any]) -> str:
    tp, lt = result["throughput"], result["latency"]
    met = targets(result)

    def flag(ok: bool) -> str:
        return "met" if ok else "NOT MET"

    def problems(row: dict[str, Any]) -> str:
        keys = ("missing", "duplicates", "unverified", "out_of_order")
        return ", ".join(f"{k} {row[k]}" for k in keys)

    return "\n".join(
        [
            f"{backend}: {result['events_total']:,} events produced through the {result['produce']} "
            f"(webhook batch {result['batch']}, {result['threads']} sending threads)",
            f"  throughput: {tp['events']:,} queued events (produced in {tp['produce_seconds']} s) delivered in "
            f"{tp['seconds']} s = {tp['deliveries_per_s']:,.0f} deliveries/s  target >= {THROUGHPUT_TARGET:.0f}/s: "
            f"{flag(met['deliveries_per_s'])}  [{problems(tp)}]",
            f"  latency at {lt['rate']:g} events/s with a {lt['tick']:g} s tick: p50 {lt['latency_p50_s']:.3f} s, "
            f"p99 {lt['latency_p99_s']:.3f} s, max {lt['latency_max_s']:.3f} s "
            f"({lt['events']:,} events, produced at {lt['produced_per_s']:,.0f}/s by {lt['producers']} processes)  "
            f"target p99 < {P99_TARGET:g} s: "
            f"{flag(met['latency_p99'])}  [{problems(lt)}]",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--events", type=int, default=10_000, help="events per phase")
    parser.add_argument("--rate", type=float, default=500.0, help="events/s produced in the latency phase")
    parser.add_argument("--tick", type=float, default=1.0, help="the worker's tick, seconds")
    parser.add_argument("--produce", choices=["engine", "audit"], default="engine")
    parser.add_argument("--batch", type=int, default=200, help="deliveries claimed per round")
    parser.add_argument("--threads", type=int, default=16, help="sending threads")
    parser.add_argument("--producers", type=int, default=2, help="processes producing the latency phase's events")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "AGGLO_BENCH_POSTGRES_URL",
            os.environ.get("AGGLO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with database(args.backend, args.postgres) as url:
        result = run(
            url, args.events, args.rate, args.tick, args.produce, args.batch, args.threads, producers=args.producers
        )
    result["backend"] = args.backend
    result["targets"] = targets(result)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(report(args.backend, result))


if __name__ == "__main__":
    main()
