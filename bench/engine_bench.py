"""Engine benchmark: instances of a 5-user-task sequential process, end to end.

Runs, in one go:
* agglo on SQLite and on PostgreSQL: start + 5 completions per instance through the engine
  and the SQL store; statements and commits per completion counted with SQLAlchemy events;
* bare SpiffWorkflow in memory, without and with a serialize/deserialize per step (the ceiling:
  what any engine on SpiffWorkflow must pay at least). This part imports SpiffWorkflow
  directly on purpose, to measure it without our code.

Usage: .venv/bin/python bench/engine_bench.py [--instances 1000] [--postgres URL] [--no-postgres]
Targets (2 cores): SQLite >= 120 instances/s, completion p50 <= 3 ms, <= 5 statements and exactly
1 commit per completion.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import event  # noqa: E402

from engine.clock import SystemClock  # noqa: E402
from engine.directory import COORDINATOR_ORG, SYSTEM_ACTOR, Actor, Organisation, OrgKind, Role, User  # noqa: E402
from engine.engine import Engine  # noqa: E402
from engine.sandbox import Sandbox  # noqa: E402
from storage.bootstrap import upgrade  # noqa: E402
from storage.db import connect, normalise_url  # noqa: E402
from storage.store import SqlStore  # noqa: E402
from tests.bpmn import sequential  # noqa: E402

COORDINATOR = Actor("coordinator", COORDINATOR_ORG, frozenset({Role.COORDINATOR}))
SOURCE = sequential(5)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run_agglo(url: str, instances: int) -> dict[str, Any]:
    database = connect(url)
    engine = Engine(SqlStore(database), SystemClock(), sandbox=Sandbox())
    engine.import_directory(
        SYSTEM_ACTOR,
        [Organisation(COORDINATOR_ORG, "РЦОКИО", OrgKind.COORDINATOR)],
        [User("coordinator", "Координатор", COORDINATOR_ORG, frozenset({Role.COORDINATOR}))],
        [],
    )
    engine.deploy(SOURCE, "seq5.bpmn", SYSTEM_ACTOR)

    counting = {"on": False, "statements": 0, "commits": 0}

    def on_execute(*_: Any) -> None:
        if counting["on"]:
            counting["statements"] += 1

    def on_commit(*_: Any) -> None:
        if counting["on"]:
            counting["commits"] += 1

    event.listen(database, "before_cursor_execute", on_execute)
    event.listen(database, "commit", on_commit)

    # Warm up (imports, caches, connection pool) outside the measurement.
    for _ in range(20):
        view = engine.start("seq", COORDINATOR)
        while view.tasks:
            view = engine.complete(view.tasks[0].task.id, COORDINATOR, {"x": 1})

    completion_ms: list[float] = []
    start_ms: list[float] = []
    began = time.perf_counter()
    for i in range(instances):
        t0 = time.perf_counter()
        view = engine.start("seq", COORDINATOR, {"n": i})
        start_ms.append((time.perf_counter() - t0) * 1000)
        while view.tasks:
            task_id = view.tasks[0].task.id
            counting["on"] = True
            t0 = time.perf_counter()
            view = engine.complete(task_id, COORDINATOR, {"step": len(completion_ms) % 5})
            completion_ms.append((time.perf_counter() - t0) * 1000)
            counting["on"] = False
        assert view.instance.status.value == "completed", view.instance.status
    elapsed = time.perf_counter() - began
    database.dispose()
    return {
        "instances_per_s": instances / elapsed,
        "completion_p50_ms": statistics.median(completion_ms),
        "completion_p95_ms": percentile(completion_ms, 0.95),
        "start_p50_ms": statistics.median(start_ms),
        "statements_per_completion": counting["statements"] / len(completion_ms),
        "commits_per_completion": counting["commits"] / len(completion_ms),
        "completions": len(completion_ms),
    }


def run_bare(instances: int, serialize: bool) -> dict[str, Any]:
    from lxml import etree
    from SpiffWorkflow.bpmn import BpmnWorkflow
    from SpiffWorkflow.bpmn.parser import BpmnParser
    from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
    from SpiffWorkflow.util.task import TaskState

    parser = BpmnParser()
    parser.add_bpmn_xml(etree.fromstring(SOURCE), "seq5.bpmn")
    spec = parser.get_spec("seq")
    serializer = BpmnWorkflowSerializer()
    step_ms: list[float] = []

    def one(i: int) -> None:
        workflow = BpmnWorkflow(spec)
        workflow.do_engine_steps()
        state = serializer.serialize_json(workflow) if serialize else None
        while not workflow.is_completed():
            t0 = time.perf_counter()
            if serialize:
                workflow = serializer.deserialize_json(state)
            task = workflow.get_next_task(state=TaskState.READY, manual=True)
            task.data["step"] = i
            task.run()
            workflow.do_engine_steps()
            if serialize:
                state = serializer.serialize_json(workflow)
            step_ms.append((time.perf_counter() - t0) * 1000)

    for i in range(20):
        one(i)
    step_ms.clear()
    began = time.perf_counter()
    for i in range(instances):
        one(i)
    elapsed = time.perf_counter() - began
    return {
        "instances_per_s": instances / elapsed,
        "completion_p50_ms": statistics.median(step_ms),
        "completion_p95_ms": percentile(step_ms, 0.95),
    }


def with_postgres(base: str, body: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    import psycopg
    from sqlalchemy.engine import make_url

    admin = make_url(normalise_url(base))
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"agglo_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        url = admin.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        return body(url)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("AGGLO_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(url)
        results["agglo_sqlite"] = run_agglo(url, args.instances)
    if not args.no_postgres:
        try:
            results["agglo_postgresql"] = with_postgres(args.postgres, lambda u: run_agglo(u, args.instances))
        except Exception as exc:
            results["agglo_postgresql"] = {"error": f"{type(exc).__name__}: {exc}"}
    results["spiff_bare_memory"] = run_bare(args.instances, serialize=False)
    results["spiff_bare_serialize_every_step"] = run_bare(args.instances, serialize=True)
    ceiling = results["spiff_bare_serialize_every_step"]["instances_per_s"]
    for key in ("agglo_sqlite", "agglo_postgresql"):
        if "instances_per_s" in results.get(key, {}):
            results[key]["ratio_to_serialize_ceiling"] = results[key]["instances_per_s"] / ceiling
    sqlite = results["agglo_sqlite"]
    results["targets"] = {
        "sqlite_instances_per_s>=120": sqlite["instances_per_s"] >= 120,
        "sqlite_completion_p50<=3ms": sqlite["completion_p50_ms"] <= 3,
        "statements_per_completion<=5": sqlite["statements_per_completion"] <= 5,
        "commits_per_completion==1": sqlite["commits_per_completion"] == 1,
    }
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"{args.instances} instances x (start + 5 completions)")
    print(f"{'run':34} {'inst/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'stmt/c':>7} {'commit/c':>8} {'vs ceiling':>10}")
    for key, row in results.items():
        if key == "targets":
            continue
        if "error" in row:
            print(f"{key:34} {row['error']}")
            continue
        print(
            f"{key:34} {row['instances_per_s']:8.1f} {row['completion_p50_ms']:8.2f} {row['completion_p95_ms']:8.2f} "
            f"{row.get('statements_per_completion', float('nan')):7.2f} "
            f"{row.get('commits_per_completion', float('nan')):8.2f} "
            f"{row.get('ratio_to_serialize_ceiling', float('nan')):10.2f}"
        )
    for target, met in results["targets"].items():
        print(f"target {target}: {'met' if met else 'NOT MET'}")


if __name__ == "__main__":
    main()
