"""The web benchmark runs end to end at a tiny size and produces its figures (SQLite, and
PostgreSQL when configured): the seeded history is what it says, every measured request
succeeds, and the report has p50/p95/p99 for each measurement."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from bench import web_bench
from storage.db import connect
from tests.conftest import PG_ENV

INSTANCES, TASKS = 300, 1500
MEASUREMENTS = (
    "api_inbox_coordinator",
    "api_inbox_kopeysk-go",
    "page_inbox_coordinator",
    "page_inbox_kopeysk-go",
    "complete_api",
    "complete_engine",
)


def _check(backend: str, results: dict[str, object]) -> None:
    seed = results["seed"]
    assert isinstance(seed, dict)
    assert seed["instances"] == INSTANCES and seed["tasks"] == TASKS
    assert 0.10 * TASKS <= seed["open_tasks"] <= 0.20 * TASKS
    assert 0 < seed["deadlines"] < TASKS
    for key in MEASUREMENTS:
        row = results[key]
        assert isinstance(row, dict), key
        assert row["n"] >= 5 and 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"], row
        assert row["statements"] >= 1, row
    checks = results["checks"]
    assert isinstance(checks, dict)
    # The coordinator sees the coordinator's share of the open tasks, a МОУО only its own few.
    assert 0 < checks["api_total_kopeysk-go"] < checks["api_total_coordinator"] < seed["open_tasks"]
    assert checks["api_items_coordinator"] == min(50, checks["api_total_coordinator"])
    results["targets"] = web_bench.targets(backend, results)
    text_report = web_bench.report(backend, results)
    assert "GET /api/v1/tasks (coordinator)" in text_report and "p95 ms" in text_report


def test_web_bench_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    results = web_bench.run(url, INSTANCES, TASKS, requests=10, warmup=2, completions=10)
    _check("sqlite", results)
    database = connect(url)
    with database.connect() as conn:
        open_rows = conn.execute(text("SELECT count(*) FROM tasks WHERE status = 'open'")).scalar_one()
        contracts = conn.execute(text("SELECT count(*) FROM instances WHERE process_key = 'contract'")).scalar_one()
    database.dispose()
    # The completions moved 2 x 12 started contracts on by one task each.
    assert open_rows == results["seed"]["open_tasks"] + 2 * 12  # type: ignore[index]
    assert contracts > INSTANCES // 2


@pytest.mark.skipif(
    not os.environ.get(PG_ENV), reason=f"the PostgreSQL half runs when {PG_ENV} is set (.ci/run sets it)"
)
def test_web_bench_on_postgres() -> None:
    with web_bench.postgres_url(os.environ[PG_ENV]) as url:
        results = web_bench.run(url, INSTANCES, TASKS, requests=10, warmup=2, completions=10)
    _check("postgres", results)
