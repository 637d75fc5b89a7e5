"""Deadline benchmark: 1,000,000 open deadlines in the table, 10,000 of them due.

1. Throughput: the reminder sweep fires every due reminder, where firing means the reminder
   is recorded (its idempotency key), written to the audit/event log, and queued for its
   channels (an in-app notification and an e-mail delivery). Printed: reminders/s.
   Target on PostgreSQL: at least 2,000/s.
2. Lateness: 10,000 more reminders fall due over the next seconds while a worker ticks every
   second; lateness is fired_at - due time. Printed: p50 and p99. Target: p99 under 2 s.

Usage: .venv/bin/python bench/deadline_bench.py [--total 1000000] [--due 10000] [--postgres URL]
       [--sqlite] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.deadline_seed import ensure_reference, seed  # noqa: E402
from engine.clock import SystemClock  # noqa: E402
from engine.settings import Settings  # noqa: E402
from scheduler.worker import Worker  # noqa: E402
from storage.bootstrap import open_engine, upgrade  # noqa: E402
from storage.db import connect, normalise_url  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def settings_for(url: str, batch: int) -> Settings:
    return Settings(database_url=url, worker_batch_size=batch, quiet_hours_start=0, quiet_hours_end=0)


def throughput(url: str, due: int, batch: int, workers: int) -> dict[str, float]:
    clock = SystemClock()

    def drain(owner: str) -> None:
        engine = open_engine(settings_for(url, batch), clock)
        while engine.sweep_reminders(owner, batch).claimed:
            pass
        engine.store.engine.dispose()  # type: ignore[attr-defined]

    started = time.perf_counter()
    threads = [threading.Thread(target=drain, args=(f"bench-{i}",)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    database = connect(url)
    with database.connect() as conn:
        fired = int(conn.execute(text("SELECT count(*) FROM reminders")).scalar_one())
        queued = int(conn.execute(text("SELECT count(*) FROM deliveries WHERE channel = 'email'")).scalar_one())
    database.dispose()
    assert fired == due, f"fired {fired} of {due}"
    return {"fired": fired, "queued_emails": queued, "seconds": elapsed, "reminders_per_s": fired / elapsed}


def lateness(url: str, due: int, batch: int, spread_seconds: float, tick: float) -> dict[str, float]:
    database = connect(url)
    now = datetime.now(UTC)
    start = now + timedelta(seconds=2)
    times = [start + timedelta(seconds=spread_seconds * i / due) for i in range(due)]
    seed(database, times, due, now - timedelta(days=1))
    with database.connect() as conn:
        before = int(conn.execute(text("SELECT count(*) FROM reminders")).scalar_one())
    database.dispose()
    clock = SystemClock()
    worker = Worker(open_engine(settings_for(url, batch), clock), clock, f"tick-{uuid.uuid4().hex[:6]}")
    stop = time.monotonic() + spread_seconds + 8
    next_tick = time.monotonic()
    while time.monotonic() < stop:
        worker.tick()
        next_tick += tick
        time.sleep(max(0.0, next_tick - time.monotonic()))
    database = connect(url)
    with database.connect() as conn:
        rows = conn.execute(
            text("SELECT planned_at, fired_at FROM reminders ORDER BY fired_at OFFSET :n"), {"n": before}
        ).all()
    database.dispose()
    late = [(_aware(f) - _aware(p)).total_seconds() for p, f in rows]
    assert len(late) == due, f"fired {len(late)} of {due}"
    return {
        "fired": len(late),
        "lateness_p50_s": statistics.median(late),
        "lateness_p99_s": percentile(late, 0.99),
        "lateness_max_s": max(late),
    }


def _aware(value: datetime | str) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def run(url: str, total: int, due: int, batch: int, workers: int, spread: float, tick: float) -> dict[str, object]:
    upgrade(url)
    database = connect(url)
    ensure_reference(database, recipients=1, email_domain="example.org")
    now = datetime.now(UTC)
    t0 = time.perf_counter()
    seed(database, [now - timedelta(seconds=1 + i % 300) for i in range(due)], total, now - timedelta(days=1))
    seeded = time.perf_counter() - t0
    with database.connect() as conn:
        open_count = int(conn.execute(text("SELECT count(*) FROM deadlines WHERE status = 'open'")).scalar_one())
    database.dispose()
    result: dict[str, object] = {"open_deadlines": open_count, "seed_seconds": round(seeded, 1)}
    result["throughput"] = throughput(url, due, batch, workers)
    result["lateness"] = lateness(url, due, batch, spread, tick)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--spread", type=float, default=10.0, help="seconds over which the lateness reminders fall due")
    parser.add_argument("--tick", type=float, default=1.0)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("AGGLO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--sqlite", action="store_true", help="run on SQLite instead of PostgreSQL")
    args = parser.parse_args()

    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            result = run(url, args.total, args.due, args.batch, args.workers, args.spread, args.tick)
        backend = "sqlite"
    else:
        import psycopg
        from sqlalchemy.engine import make_url

        admin = make_url(normalise_url(args.postgres))
        dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        name = f"agglo_dbench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            url = admin.set(database=name).render_as_string(hide_password=False)
            result = run(url, args.total, args.due, args.batch, args.workers, args.spread, args.tick)
        finally:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        backend = "postgresql"
    tp = result["throughput"]
    lt = result["lateness"]
    assert isinstance(tp, dict) and isinstance(lt, dict)
    print(
        f"{backend}: {result['open_deadlines']:,} open deadlines (seeded in {result['seed_seconds']} s), "
        f"{args.due:,} due, batch {args.batch}, {args.workers} sweeping thread(s)"
    )
    print(
        f"  fired {tp['fired']:,} reminders in {tp['seconds']:.2f} s = {tp['reminders_per_s']:,.0f} reminders/s "
        f"({tp['queued_emails']:,} e-mails queued)  target >= 2,000/s: "
        f"{'met' if tp['reminders_per_s'] >= 2000 else 'NOT MET'}"
    )
    print(
        f"  lateness with a {args.tick:g} s tick over {lt['fired']:,} reminders: p50 {lt['lateness_p50_s']:.3f} s, "
        f"p99 {lt['lateness_p99_s']:.3f} s, max {lt['lateness_max_s']:.3f} s  target p99 < 2 s: "
        f"{'met' if lt['lateness_p99_s'] < 2 else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
