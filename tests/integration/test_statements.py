"""The hot path's database cost: a task completion is at most 5 SQL statements and exactly 1 commit.

Read the task with its instance; update the task and the instance (guarded); insert the new
tasks and the audit lines. The public events among those lines are the outbox (their event id
and type are written with them), so an event that can never be lost costs no extra statement.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event

from engine.engine import Engine
from engine.records import TaskQuery
from tests.bpmn import sequential
from tests.conftest import ADMIN, COORDINATOR


@dataclass
class Counts:
    statements: int = 0
    commits: int = 0
    sql: list[str] | None = None


@contextmanager
def counting(engine: Engine) -> Iterator[Counts]:
    database = engine.store.engine  # type: ignore[attr-defined]
    counts = Counts(sql=[])

    def on_execute(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        counts.statements += 1
        assert counts.sql is not None
        counts.sql.append(statement.split()[0].upper())

    def on_commit(conn: Any) -> None:
        counts.commits += 1

    event.listen(database, "before_cursor_execute", on_execute)
    event.listen(database, "commit", on_commit)
    try:
        yield counts
    finally:
        event.remove(database, "before_cursor_execute", on_execute)
        event.remove(database, "commit", on_commit)


def test_completion_costs_at_most_five_statements_and_one_commit(engine: Engine) -> None:
    engine.deploy(sequential(5), "seq5.bpmn", ADMIN)
    instance = engine.start("seq", COORDINATOR).instance
    for step in range(5):
        with engine.store.transaction() as tx:
            [task] = tx.list_tasks(TaskQuery(instance_id=instance.id, all_tasks=True))
        with counting(engine) as counts:
            engine.complete(task.id, COORDINATOR, {"step": step})
        assert counts.statements <= 5, counts.sql
        assert sum(1 for kind in counts.sql if kind == "INSERT") <= 2, counts.sql
        assert counts.commits == 1
        assert counts.sql is not None and counts.sql[0] == "SELECT" and counts.sql.count("SELECT") == 1
