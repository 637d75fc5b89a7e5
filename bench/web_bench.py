"""Web benchmark: the inbox and a task completion over a large history.

The database holds the demo directory and processes and, by default, 50,000 instances with
250,000 tasks (see :mod:`bench.web_seed`: ~15 % of the tasks open, deadlines on some, six years
of history). Every request goes through the real Flask app in-process (the test client: no
network, no server), after a warm-up:

* ``GET /api/v1/tasks`` (open tasks, page 1, 50 per page, with the total) with a bearer token
  of the coordinator and of a МОУО (kopeysk-go);
* ``GET /`` (the inbox page, with its tab counters) logged in as ``coordinator`` and as
  ``kopeysk-go``;
* ``POST /api/v1/tasks/<id>/complete``: the coordinator accepts the application of a contract
  started through the engine by troitsk-go (the review step: one SpiffWorkflow step, a new
  task); and the same completion called on the engine directly (no HTTP, no JSON).

Printed: p50 / p95 / p99 (and max) wall time in ms, SQL statements per request (counted with a
SQLAlchemy event), and the p50 / p95 CPU time of the benchmark's thread: on SQLite that is all
the work, on PostgreSQL the server's share is not in it. Wall time above CPU time on SQLite means
the machine was busy with something else. Targets: API inbox p95 < 50 ms on SQLite and
PostgreSQL; completion through the API p50 < 5 ms on SQLite.

Recorded on 2026-11-22 (2 shared vCPU, other test suites running; PostgreSQL 15 on the same
machine), default sizes, p50 / p95 ms:

                                   SQLite before  SQLite after  PostgreSQL before  PostgreSQL after
  GET /api/v1/tasks (coordinator)     140 / 156      14 / 18         60 / 86           19 / 28
  GET /api/v1/tasks (kopeysk-go)      103 / 152      14 / 20         72 / 96           20 / 24
  GET / (coordinator)                 223 / 320      49 / 67        168 / 274          55 / 71
  GET / (kopeysk-go)                  223 / 347      39 / 45        163 / 216          40 / 50
  POST .../complete (API)               4.7 / 7.1    3.0 / 5.6      6.9 / 8.9          6.7 / 10
  Engine.complete                       1.4 / 3.1    1.8 / 3.4      4.1 / 4.7          6.6 / 8.5

"After" is migration 0004 (the partial inbox index) with the store's inbox queries reworked.
The completion figures moved by up to 2x from run to run on that busy machine (PostgreSQL after:
p50 5.0 to 9.5 ms over three runs); the inbox figures by about 20 %.

Usage: .venv/bin/python bench/web_bench.py --backend sqlite|postgres [--instances 50000]
       [--tasks 250000] [--requests 200] [--completions 300] [--json out.json] [--postgres URL]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient  # noqa: E402
from sqlalchemy import Engine as DbEngine  # noqa: E402
from sqlalchemy import event  # noqa: E402

from bench.web_seed import DEMO_PASSWORD, seed  # noqa: E402
from engine.directory import COORDINATOR_ORG, SYSTEM_ACTOR, Actor, Role  # noqa: E402
from engine.engine import Engine  # noqa: E402
from storage.db import normalise_url  # noqa: E402

MOUO = "kopeysk-go"
STARTER = Actor("troitsk-go", "troitsk-go", frozenset({Role.MOUO}))
APPLICATION = {
    "directions": ["msoko", "model_documents"],
    "aspects": "Разработка муниципальной модели оценки качества дошкольного образования",
    "contact": {
        "name": "Иванова Анна Петровна",
        "position": "начальник отдела",
        "email": "ivanova@troitsk.example",
        "phone": "+7 (35163) 2-00-00",
    },
    "term_until": "2027-12-31",
}
ACCEPT = {"review_decision": "accept"}
CSRF = re.compile(r'name="csrf-token" content="([^"]+)"')
TARGETS = {"api_inbox_p95_ms": 50.0, "completion_api_p50_ms_sqlite": 5.0}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class Statements:
    """Counts the SQL statements sent to the database while ``on``."""

    def __init__(self, database: DbEngine) -> None:
        self.on = False
        self.count = 0
        event.listen(database, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        if self.on:
            self.count += 1


def measure(
    name: str, call: Callable[[int], Any], n: int, warmup: int, statements: Statements
) -> dict[str, float | int | str]:
    """Time ``call(i)`` n times after ``warmup`` calls; ms percentiles and statements per call."""
    for i in range(warmup):
        call(i)
    times: list[float] = []
    cpu: list[float] = []
    statements.count = 0
    for i in range(warmup, warmup + n):
        statements.on = True
        c0 = time.thread_time()
        t0 = time.perf_counter()
        call(i)
        times.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
        statements.on = False
    return {
        "name": name,
        "n": n,
        "p50_ms": round(statistics.median(times), 2),
        "p95_ms": round(percentile(times, 0.95), 2),
        "p99_ms": round(percentile(times, 0.99), 2),
        "max_ms": round(max(times), 2),
        "cpu_p50_ms": round(statistics.median(cpu), 2),
        "cpu_p95_ms": round(percentile(cpu, 0.95), 2),
        "statements": round(statements.count / n, 2),
    }


def make_app(engine: Engine) -> Flask:
    from web.app import create_app

    app = create_app(engine.settings, engine, TESTING=False)
    app.logger.disabled = True
    return app


def bearer(engine: Engine, roles: list[str], organisation: str) -> tuple[str, Actor]:
    from engine.credentials import token_actor

    token, secret = engine.create_token(SYSTEM_ACTOR, f"bench-{uuid.uuid4().hex[:8]}", roles, organisation)
    return secret, token_actor(token)


def logged_in(app: Flask, login: str) -> FlaskClient:
    http = app.test_client()
    found = CSRF.search(http.get("/login").get_data(as_text=True))
    assert found, "no CSRF token on the login page"
    response = http.post("/login", data={"login": login, "password": DEMO_PASSWORD, "csrf_token": found.group(1)})
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    return http


def _get(http: FlaskClient, url: str, headers: dict[str, str] | None = None) -> Callable[[int], Any]:
    def call(_: int) -> Any:
        response = http.get(url, headers=headers)
        assert response.status_code == 200, (url, response.status_code, response.get_data(as_text=True)[:300])
        return response

    return call


def review_tasks(engine: Engine, n: int) -> list[str]:
    """Start ``n`` contracts as troitsk-go; the ids of their first task (the coordinator's review)."""
    ids = []
    for _ in range(n):
        view = engine.start("contract", STARTER, APPLICATION)
        (task,) = [v.task for v in view.tasks if v.task.element_id == "Task_ReviewApplication"]
        ids.append(task.id)
    return ids


def measure_web(engine: Engine, requests: int, warmup: int, completions: int) -> dict[str, Any]:
    """Every measurement on an already seeded database."""
    database: DbEngine = engine.store.engine  # type: ignore[attr-defined]
    statements = Statements(database)
    app = make_app(engine)
    coord_secret, coord_actor = bearer(engine, [Role.COORDINATOR.value], COORDINATOR_ORG)
    mouo_secret, _ = bearer(engine, [Role.MOUO.value], MOUO)
    api = app.test_client()
    results: dict[str, Any] = {}
    checks: dict[str, Any] = {}

    for who, secret in (("coordinator", coord_secret), (MOUO, mouo_secret)):
        headers = {"Authorization": f"Bearer {secret}"}
        url = "/api/v1/tasks?page=1&per_page=50"
        body = api.get(url, headers=headers).get_json()
        checks[f"api_total_{who}"] = body["total"]
        checks[f"api_items_{who}"] = len(body["items"])
        results[f"api_inbox_{who}"] = measure(
            f"GET /api/v1/tasks ({who})", _get(api, url, headers), requests, warmup, statements
        )
    for login in ("coordinator", MOUO):
        http = logged_in(app, login)
        results[f"page_inbox_{login}"] = measure(f"GET / ({login})", _get(http, "/"), requests, warmup, statements)

    # Completion: the coordinator accepts contract applications (one step, one new task).
    ids = review_tasks(engine, warmup + completions)
    headers = {"Authorization": f"Bearer {coord_secret}"}

    def complete_api(i: int) -> None:
        response = api.post(f"/api/v1/tasks/{ids[i]}/complete", json={"data": ACCEPT}, headers=headers)
        assert response.status_code == 200, response.get_data(as_text=True)[:300]

    results["complete_api"] = measure("POST /api/v1/tasks/<id>/complete", complete_api, completions, warmup, statements)
    ids2 = review_tasks(engine, warmup + completions)

    def complete_engine(i: int) -> None:
        engine.complete(ids2[i], coord_actor, ACCEPT)

    results["complete_engine"] = measure("Engine.complete (no HTTP)", complete_engine, completions, warmup, statements)
    results["checks"] = checks
    return results


def run(
    url: str, instances: int, tasks: int, requests: int = 200, warmup: int = 20, completions: int = 300
) -> dict[str, Any]:
    """Seed ``url`` (an empty database) and measure."""
    began = time.perf_counter()
    engine, report = seed(url, instances, tasks)
    seeded = time.perf_counter() - began
    try:
        results = measure_web(engine, requests, warmup, completions)
    finally:
        engine.store.engine.dispose()  # type: ignore[attr-defined]
    results["seed"] = {**report.to_dict(), "seconds": round(seeded, 1)}
    return results


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'web-bench.db'}"


@contextmanager
def postgres_url(base: str) -> Iterator[str]:
    """A temporary database on the server of ``base``, dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(normalise_url(base))
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"agglo_wbench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def targets(backend: str, results: dict[str, Any]) -> dict[str, bool]:
    met = {
        f"api_inbox_{who}_p95<50ms": results[f"api_inbox_{who}"]["p95_ms"] < TARGETS["api_inbox_p95_ms"]
        for who in ("coordinator", MOUO)
    }
    if backend == "sqlite":
        met["complete_api_p50<5ms"] = results["complete_api"]["p50_ms"] < TARGETS["completion_api_p50_ms_sqlite"]
    return met


def report(backend: str, results: dict[str, Any]) -> str:
    s = results["seed"]
    lines = [
        f"{backend}: {s['instances']:,} instances, {s['tasks']:,} tasks ({s['open_tasks']:,} open, "
        f"{s['deadlines']:,} deadlines), seeded in {s['seconds']} s "
        f"(directory {s['directory_seconds']:.1f} s, rows {s['bulk_seconds']:.1f} s, "
        f"analyze {s['analyze_seconds']:.1f} s)",
        f"  {'measurement':40} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} {'stmts':>6} "
        f"{'cpu p50':>8} {'cpu p95':>8}",
    ]
    for row in results.values():
        if not isinstance(row, dict) or "p50_ms" not in row:
            continue
        lines.append(
            f"  {row['name']:40} {row['n']:5} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {row['p99_ms']:8.2f} "
            f"{row['max_ms']:8.2f} {row['statements']:6.1f} {row['cpu_p50_ms']:8.2f} {row['cpu_p95_ms']:8.2f}"
        )
    checks = results.get("checks", {})
    lines.append(
        "  visible open tasks: "
        + ", ".join(f"{k.removeprefix('api_total_')} {v:,}" for k, v in checks.items() if k.startswith("api_total_"))
    )
    for name, ok in results.get("targets", {}).items():
        lines.append(f"  target {name}: {'met' if ok else 'NOT MET'}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--instances", type=int, default=50_000)
    parser.add_argument("--tasks", type=int, default=250_000)
    parser.add_argument("--requests", type=int, default=200, help="measured requests per measurement")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--completions", type=int, default=300)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("AGGLO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="server on which a temporary database is created (and dropped)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args()

    cm = sqlite_url() if args.backend == "sqlite" else postgres_url(args.postgres)
    with cm as url:
        results = run(url, args.instances, args.tasks, args.requests, args.warmup, args.completions)
    backend = "sqlite" if args.backend == "sqlite" else "postgresql"
    results["backend"] = backend
    results["targets"] = targets(args.backend, results)
    print(report(backend, results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
