"""Seed many open deadlines directly into the database (benchmarks and worker tests).

Rows are written as the engine would write them (one instance, one open task and one deadline
per item), through the same tables, but in bulk: executemany on SQLite, COPY on PostgreSQL.
The reminder policy gives each deadline exactly one reminder (on its due day), so the number
of reminders fired is the number of due deadlines, and duplicates show.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, insert, text

from engine.directory import COORDINATOR_ORG, Organisation, OrgKind, Role, User
from engine.reminders import ReminderPolicy
from storage import tables as t

SEED_BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="seed-defs" targetNamespace="http://agglo.test/seed">
  <bpmn:process id="seed" name="Seeded deadlines" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="task" name="Seeded task" camunda:candidateGroups="coordinator"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="task"/>
    <bpmn:sequenceFlow id="f2" sourceRef="task" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
ONE_REMINDER = ReminderPolicy(before=(), on_due_day=True, overdue_every=0, escalation_after=0).to_dict()
DEFINITION_ID = "seed-definition"


def ensure_reference(database: Engine, recipients: int = 1, email_domain: str | None = None) -> None:
    """The coordinator organisation, ``recipients`` coordinator users and a stub definition."""
    with database.begin() as conn:
        if conn.execute(text("SELECT 1 FROM organisations WHERE code = :c"), {"c": COORDINATOR_ORG}).first() is None:
            org = Organisation(COORDINATOR_ORG, "РЦОКИО", OrgKind.COORDINATOR)
            conn.execute(insert(t.organisations).values(code=org.code, name=org.name, kind=org.kind.value))
        for i in range(recipients):
            login = "coordinator" if i == 0 else f"coordinator{i}"
            if conn.execute(text("SELECT 1 FROM users WHERE login = :l"), {"l": login}).first() is None:
                user = User(
                    login,
                    login,
                    COORDINATOR_ORG,
                    frozenset({Role.COORDINATOR}),
                    email=f"{login}@{email_domain}" if email_domain else None,
                )
                conn.execute(
                    insert(t.users).values(
                        login=user.login,
                        name=user.name,
                        organisation=user.organisation,
                        roles=",coordinator,",
                        active=True,
                        email=user.email,
                    )
                )


def _rows(
    n: int, due_at: list[datetime], open_deadlines_offset: int, created: datetime, definition_id: str
) -> tuple[list[dict[str, object]], list[dict[str, object]], list[dict[str, object]]]:
    instances, tasks, deadlines = [], [], []
    for i in range(n):
        iid = uuid.uuid4().hex
        tid = str(uuid.uuid4())
        # The rest are due in a year, their on-the-day reminder planned then (as the engine plans it).
        reminder_at = due_at[i] if i < len(due_at) else created + timedelta(days=365 + open_deadlines_offset)
        final = reminder_at.date()
        instances.append(
            {
                "id": iid,
                "definition_id": definition_id,
                "process_key": "seed",
                "business_key": None,
                "status": "running",
                "organisation": COORDINATOR_ORG,
                "started_by": "coordinator",
                "started_at": created,
                "updated_at": created,
                "ended_at": None,
                "state": "{}",
                "version": 1,
                "next_due_at": None,
                "incident": None,
            }
        )
        tasks.append(
            {
                "id": tid,
                "instance_id": iid,
                "definition_id": definition_id,
                "process_key": "seed",
                "element_id": "task",
                "name": "Задача",
                "lane": None,
                "candidate_roles": ",coordinator,",
                "candidate_users": "",
                "organisation": COORDINATOR_ORG,
                "assignee": None,
                "status": "open",
                "created_at": created,
                "due_at": None,
                "follow_up_at": None,
                "priority": 50,
                "form_key": None,
                "business_key": None,
                "claimed_at": None,
                "completed_at": None,
                "completed_by": None,
            }
        )
        deadlines.append(
            {
                "id": uuid.uuid4().hex,
                "instance_id": iid,
                "task_id": tid,
                "element_id": "task",
                "process_key": "seed",
                "organisation": COORDINATOR_ORG,
                "rule": "30 days after start_date",
                "anchor": "start_date",
                "anchor_value": final - timedelta(days=30),
                "clause": "DAY 3.5",
                "raw_date": final,
                "final_date": final,
                "due_at": datetime.combine(final, datetime.max.time(), created.tzinfo),
                "explanation": "seeded",
                "original_date": final,
                "original_explanation": "seeded",
                "policy": json.dumps(ONE_REMINDER),
                "created_at": created,
                "status": "open",
                "plan_version": 1,
                "next_reminder_at": reminder_at,
                "next_reminder_key": "due",
                "last_reminder_at": None,
                "escalated_at": None,
                "extensions": 0,
                "completed_at": None,
                "late": False,
                "variable": None,
                "updated_at": created,
                "version": 1,
                "lease_owner": None,
            }
        )
    return instances, tasks, deadlines


def seed(database: Engine, due_at: list[datetime], total: int, created: datetime, chunk: int = 20_000) -> None:
    """``total`` open deadlines; the first ``len(due_at)`` have their reminder due at those times,
    the rest are due in a year (open, not due). Needs :func:`ensure_reference` first."""
    with database.begin() as conn:
        if conn.execute(text("SELECT 1 FROM definitions WHERE id = :d"), {"d": DEFINITION_ID}).first() is None:
            conn.execute(
                insert(t.deployments).values(
                    id=DEFINITION_ID,
                    filename="seed.bpmn",
                    content_hash="seed" * 16,
                    source=SEED_BPMN,
                    deployed_at=created,
                    deployed_by="seed",
                )
            )
            conn.execute(
                insert(t.definitions).values(
                    id=DEFINITION_ID,
                    deployment_id=DEFINITION_ID,
                    key="seed",
                    version=1,
                    name="seed",
                    content_hash="seed" * 16,
                    deployed_at=created,
                    calls="{}",
                )
            )
    done = 0
    while done < total:
        n = min(chunk, total - done)
        instances, tasks, deadlines = _rows(n, due_at[done : done + n], done, created, DEFINITION_ID)
        if database.dialect.name == "postgresql":
            _copy(database, instances, tasks, deadlines)
        else:
            with database.begin() as conn:
                conn.execute(insert(t.instances), instances)
                conn.execute(insert(t.tasks), tasks)
                conn.execute(insert(t.deadlines), deadlines)
        done += n


def _copy(database: Engine, *groups: list[dict[str, object]]) -> None:
    """COPY the rows into PostgreSQL (tens of thousands of rows a second)."""
    raw = database.raw_connection()
    try:
        cursor = raw.cursor()
        for table, rows in zip(("instances", "tasks", "deadlines"), groups, strict=True):
            if not rows:
                continue
            columns = list(rows[0])
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row([_pg(row[c]) for c in columns])
        raw.commit()
    finally:
        raw.close()


def _pg(value: object) -> object:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value
