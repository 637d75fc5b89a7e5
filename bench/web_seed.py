"""Seed a realistic, large history for the web benchmark: the demo directory and processes, then
tens of thousands of instances with hundreds of thousands of tasks written in bulk.

What the rows look like (what the inbox queries have to wade through):

* the demo directory (43 municipalities, the Ministry, the coordinator) and the three processes
  deployed by :func:`cli.demo.seed`, exactly as ``agglo demo`` does;
* ``instances`` instances of contract / day / annual-results (70 / 15 / 15 %), started over the
  last six years; a contract belongs to a municipality, a day to the Ministry, annual results to
  the coordinator;
* ``tasks`` tasks spread over them (1 to 9 each), walking each process's user tasks in order, with
  the candidate roles, organisation, lane and form the engine would give them (a municipality's
  task for the day and annual results goes to a random member, as ``${member}`` does);
* about ``open_fraction`` of the tasks open: the last one to four tasks of the running instances
  (the recent ones); one open task in ten is claimed; everything else completed by a candidate;
* the tasks whose step has a deadline rule carry ``due_at`` and a ``deadlines`` row (open or
  met); about a third of those still open are overdue.

Rows are written as the engine would write them, but in bulk (executemany on SQLite, COPY on
PostgreSQL, the approach of :mod:`bench.deadline_seed`). Instance states are ``{}``: these
instances are never stepped; the completion benchmark starts real ones through the engine.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine as DbEngine
from sqlalchemy import insert, text

from bench.deadline_seed import _copy
from cli.demo import municipalities
from cli.demo import seed as demo_seed
from engine.clock import Clock, SystemClock
from engine.directory import COORDINATOR_ORG, MINISTRY_ORG, ROLE_HOME_ORG, Role
from engine.engine import Engine
from engine.passwords import Passwords
from engine.reminders import ReminderPolicy
from engine.settings import Settings
from storage import tables as t
from storage.bootstrap import open_engine, upgrade

DEMO_PASSWORD = "agglo-demo"
# Cheap password hashing: the benchmark logs in, it does not measure argon2.
SETTINGS = Settings(
    argon2_time_cost=1,
    argon2_memory_kib=8192,
    secret_key="web-bench-secret-" + "x" * 32,
    demo_password=DEMO_PASSWORD,
    login_rate_limit_per_minute=1000,
)
PROCESS_SHARE = {"contract": 0.70, "day": 0.15, "annual-results": 0.15}
STARTER = {"contract": None, "day": ("ministry", MINISTRY_ORG), "annual-results": ("coordinator", COORDINATOR_ORG)}
YEARS = 6
POLICY = json.dumps(ReminderPolicy(before=(7, 3, 1), on_due_day=True, overdue_every=1, escalation_after=3).to_dict())


@dataclass(frozen=True)
class Step:
    """One user task of a process, as the engine projects it into a task row."""

    element_id: str
    name: str | None
    lane: str | None
    roles: tuple[str, ...]
    member_org: bool  # organisation = ${member}: a municipality of the agglomeration
    deadline: str | None
    form_key: str | None


@dataclass(frozen=True)
class Process:
    key: str
    definition_id: str
    steps: tuple[Step, ...]


@dataclass
class SeedReport:
    instances: int = 0
    tasks: int = 0
    open_tasks: int = 0
    deadlines: int = 0
    running_instances: int = 0
    directory_seconds: float = 0.0
    bulk_seconds: float = 0.0
    analyze_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def prepare(url: str, clock: Clock | None = None) -> Engine:
    """Migrate ``url`` to head, load the demo directory and deploy the processes; an engine on it."""
    upgrade(url)
    engine = open_engine(SETTINGS.with_(database_url=url), clock or SystemClock())
    demo_seed(engine, Passwords(1, 8192, 1), DEMO_PASSWORD)
    return engine


def processes(engine: Engine) -> dict[str, Process]:
    """The deployed processes' user tasks, in document order."""
    with engine.store.transaction() as tx:
        latest = {d.key: d.id for d in tx.list_definitions(latest_only=True)}
    result = {}
    for key in PROCESS_SHARE:
        compiled = engine.definition(latest[key])
        steps = []
        for el in compiled.model.elements.values():
            if not el.is_human_task:
                continue
            roles = tuple(r.strip() for r in (el.candidate_groups or "").split(",") if r.strip())
            steps.append(
                Step(
                    el.id,
                    el.name,
                    el.lane,
                    roles,
                    bool(el.properties.get("organisation")),
                    el.properties.get("deadline"),
                    el.form.key if el.form else None,
                )
            )
        result[key] = Process(key, latest[key], tuple(steps))
    return result


def _pack(values: tuple[str, ...]) -> str:
    return "," + ",".join(values) + "," if values else ""


def _task_counts(rng: random.Random, instances: int, tasks: int) -> list[int]:
    """1..(2*avg-1) tasks per instance, adjusted to add up to ``tasks`` exactly."""
    if tasks < instances:
        raise ValueError("at least one task per instance")
    avg = tasks / instances
    top = max(1, round(2 * avg - 1))
    counts = [rng.randint(1, top) for _ in range(instances)]
    diff = tasks - sum(counts)
    while diff != 0:
        i = rng.randrange(instances)
        if diff > 0:
            counts[i] += 1
            diff -= 1
        elif counts[i] > 1:
            counts[i] -= 1
            diff += 1
    return counts


def _organisation(step: Step, instance_org: str, members: list[str], rng: random.Random) -> str | None:
    """As Engine._project: a ${member} rule, else the instance's for a МОУО, else the role's home."""
    if step.member_org:
        return rng.choice(members)
    if Role.MOUO in step.roles:
        return instance_org
    if len(step.roles) == 1 and step.roles[0] in ROLE_HOME_ORG:
        return ROLE_HOME_ORG[step.roles[0]]
    return None


def _performer(step: Step, organisation: str | None) -> str:
    if Role.MOUO in step.roles and organisation:
        return organisation  # the demo login of a municipality is its code
    return "ministry" if step.roles == ("ministry",) else "coordinator"


def generate(
    procs: dict[str, Process],
    instances: int,
    tasks: int,
    now: datetime,
    *,
    open_fraction: float = 0.15,
    seed: int = 20260302,
    chunk: int = 5_000,
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]]:
    """Rows (instances, tasks, deadlines) in chunks of about ``chunk`` instances."""
    rng = random.Random(seed)
    munis = [m.organisation.code for m in municipalities()]
    members = munis[: max(1, len(munis) * 3 // 4)]
    counts = _task_counts(rng, instances, tasks)
    keys = list(PROCESS_SHARE)
    weights = [PROCESS_SHARE[k] for k in keys]
    span = timedelta(days=365 * YEARS)
    # Running instances are the most recent ones; their trailing tasks are open.
    open_target = round(tasks * open_fraction)
    order = sorted(range(instances), key=lambda _: rng.random())
    open_of: dict[int, int] = {}
    remaining = open_target
    for i in order:
        if remaining <= 0:
            break
        k = min(counts[i], rng.randint(1, 4), remaining)
        open_of[i] = k
        remaining -= k

    batch_i: list[dict[str, Any]] = []
    batch_t: list[dict[str, Any]] = []
    batch_d: list[dict[str, Any]] = []
    for i in range(instances):
        key = rng.choices(keys, weights)[0]
        proc = procs[key]
        n_open = open_of.get(i, 0)
        running = n_open > 0
        if running:
            started = now - timedelta(seconds=rng.uniform(3600, 300 * 86400))
        else:
            started = now - span + timedelta(seconds=rng.uniform(0, span.total_seconds() - 30 * 86400))
        starter = STARTER[key]
        if starter is None:
            org = rng.choice(munis)
            started_by = org
        else:
            started_by, org = starter
        iid = uuid.uuid4().hex
        count = counts[i]
        at = started
        last = started
        for j in range(count):
            step = proc.steps[j % len(proc.steps)]
            is_open = j >= count - n_open
            at = at + timedelta(hours=rng.uniform(1, 24 * 5)) if not is_open else at
            created = min(at, now - timedelta(minutes=5))
            organisation = _organisation(step, org, members, rng)
            performer = _performer(step, organisation)
            due_at = None
            if step.deadline:
                due_at = created + timedelta(days=rng.randint(3, 45))
                if is_open and rng.random() < 0.35:
                    due_at = now - timedelta(days=rng.uniform(0.5, 40))
                due_at = due_at.replace(hour=18, minute=59, second=59, microsecond=0)
            claimed = (not is_open) or rng.random() < 0.1
            done_at = None if is_open else created + timedelta(hours=rng.uniform(0.5, 24 * 4))
            if done_at is not None:
                last = max(last, done_at)
                at = done_at
            tid = str(uuid.uuid4())
            batch_t.append(
                {
                    "id": tid,
                    "instance_id": iid,
                    "definition_id": proc.definition_id,
                    "process_key": key,
                    "element_id": step.element_id,
                    "name": step.name,
                    "lane": step.lane,
                    "candidate_roles": _pack(step.roles),
                    "candidate_users": "",
                    "organisation": organisation,
                    "assignee": performer if claimed else None,
                    "status": "open" if is_open else "completed",
                    "created_at": created,
                    "due_at": due_at,
                    "follow_up_at": None,
                    "priority": 50,
                    "form_key": step.form_key,
                    "business_key": None,
                    "claimed_at": created + timedelta(minutes=30) if claimed else None,
                    "completed_at": done_at,
                    "completed_by": None if is_open else performer,
                }
            )
            if due_at is not None:
                final = due_at.date()
                batch_d.append(
                    {
                        "id": uuid.uuid4().hex,
                        "instance_id": iid,
                        "task_id": tid,
                        "element_id": step.element_id,
                        "process_key": key,
                        "organisation": organisation,
                        "rule": step.deadline,
                        "anchor": None,
                        "anchor_value": None,
                        "clause": None,
                        "raw_date": final,
                        "final_date": final,
                        "due_at": due_at,
                        "explanation": "seeded for the web benchmark",
                        "original_date": final,
                        "original_explanation": "seeded for the web benchmark",
                        "policy": POLICY,
                        "created_at": created,
                        "status": "open" if is_open else "met",
                        "plan_version": 1,
                        "next_reminder_at": None,
                        "next_reminder_key": None,
                        "last_reminder_at": None,
                        "escalated_at": None,
                        "extensions": 0,
                        "completed_at": done_at,
                        "late": bool(done_at and done_at > due_at),
                        "variable": None,
                        "updated_at": done_at or created,
                        "version": 1,
                        "lease_owner": None,
                    }
                )
        batch_i.append(
            {
                "id": iid,
                "definition_id": proc.definition_id,
                "process_key": key,
                "business_key": None,
                "status": "running" if running else "completed",
                "organisation": org,
                "started_by": started_by,
                "started_at": started,
                "updated_at": last,
                "ended_at": None if running else last,
                "state": "{}",
                "version": count + 1,
                "next_due_at": None,
                "incident": None,
            }
        )
        if len(batch_i) >= chunk:
            yield batch_i, batch_t, batch_d
            batch_i, batch_t, batch_d = [], [], []
    if batch_i:
        yield batch_i, batch_t, batch_d


def bulk(
    database: DbEngine,
    procs: dict[str, Process],
    instances: int,
    tasks: int,
    now: datetime,
    *,
    open_fraction: float = 0.15,
    seed: int = 20260302,
    analyze: bool | None = None,
) -> SeedReport:
    """Write the rows; on PostgreSQL VACUUM ANALYZE afterwards (as autovacuum would soon do).
    SQLite gets no ANALYZE by default: the product never runs it, so its planner works without
    statistics, as it would in service."""
    report = SeedReport()
    began = time.perf_counter()
    for inst, tsk, dl in generate(procs, instances, tasks, now, open_fraction=open_fraction, seed=seed):
        if database.dialect.name == "postgresql":
            _copy(database, inst, tsk, dl)
        else:
            with database.begin() as conn:
                conn.execute(insert(t.instances), inst)
                conn.execute(insert(t.tasks), tsk)
                if dl:
                    conn.execute(insert(t.deadlines), dl)
        report.instances += len(inst)
        report.tasks += len(tsk)
        report.open_tasks += sum(1 for r in tsk if r["status"] == "open")
        report.deadlines += len(dl)
        report.running_instances += sum(1 for r in inst if r["status"] == "running")
    report.bulk_seconds = time.perf_counter() - began
    if analyze is None:
        analyze = database.dialect.name == "postgresql"
    if analyze:
        began = time.perf_counter()
        if database.dialect.name == "postgresql":
            # VACUUM too: it sets the visibility map, as autovacuum has on a database in service,
            # so that index-only scans are possible.
            with database.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        else:
            with database.begin() as conn:
                conn.execute(text("ANALYZE"))
        report.analyze_seconds = time.perf_counter() - began
    return report


def seed(
    url: str, instances: int, tasks: int, *, open_fraction: float = 0.15, clock: Clock | None = None
) -> tuple[Engine, SeedReport]:
    """Everything: migrate, demo directory and processes, then the bulk history."""
    began = time.perf_counter()
    engine = prepare(url, clock)
    directory = time.perf_counter() - began
    database: DbEngine = engine.store.engine  # type: ignore[attr-defined]
    report = bulk(database, processes(engine), instances, tasks, engine.clock.now(), open_fraction=open_fraction)
    report.directory_seconds = directory
    return engine, report
