"""Several workers on one database share 10,000 due reminders: each fired once, by one of them.

On PostgreSQL the batches are claimed with FOR UPDATE SKIP LOCKED, so workers fire different
reminders at the same time; on SQLite they take turns (one writer at a time) with the same result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bench.deadline_seed import ensure_reference, seed
from storage.db import connect

AGGLO = str(Path(sys.executable).parent / "agglo")
N = 10_000

pytestmark = pytest.mark.slow


def query(db_url: str, sql: str) -> list[tuple[object, ...]]:
    database = connect(db_url)
    try:
        with database.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        database.dispose()


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_share_due_reminders_without_duplicates(db_url: str, tmp_path: Path, workers: int) -> None:
    database = connect(db_url)
    ensure_reference(database, recipients=1)
    database.dispose()

    env = {
        **os.environ,
        "AGGLO_DATABASE_URL": db_url,
        "AGGLO_WORKER_BATCH_SIZE": "200",
        "AGGLO_WORKER_TICK_SECONDS": "0.2",
        "AGGLO_QUIET_HOURS_START": "0",
        "AGGLO_QUIET_HOURS_END": "0",
    }
    procs = [
        subprocess.Popen(
            [AGGLO, "worker", "--owner", f"w{i}"],
            env=env,
            stdout=(tmp_path / f"w{i}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for i in range(workers)
    ]
    try:
        # The reminders fall due once every worker is ticking: a share each is then the
        # workers' doing, not who started first.
        logs = [tmp_path / f"w{i}.log" for i in range(workers)]
        started = time.monotonic() + 60
        while not all("ticking every" in log.read_text(errors="replace") for log in logs):
            assert time.monotonic() < started, "the workers did not start"
            time.sleep(0.1)
        database = connect(db_url)
        now = datetime.now(UTC)
        seed(database, [now - timedelta(seconds=i % 600) for i in range(N)], N, now - timedelta(days=1))
        database.dispose()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            if query(db_url, "SELECT count(*) FROM deadlines WHERE next_reminder_at IS NOT NULL")[0][0] == 0:
                break
            time.sleep(0.2)
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()

    assert query(db_url, "SELECT count(*) FROM reminders")[0][0] == N
    assert query(db_url, "SELECT count(DISTINCT deadline_id) FROM reminders")[0][0] == N
    assert query(db_url, "SELECT count(*) FROM notifications")[0][0] == N  # one per reminder, once
    shares = dict(query(db_url, "SELECT lease_owner, count(*) FROM deadlines GROUP BY lease_owner"))
    assert set(shares) <= {f"w{i}" for i in range(workers)} and sum(shares.values()) == N, shares
    if not db_url.startswith("sqlite"):
        # SKIP LOCKED lets the workers claim side by side. SQLite has one writer and hands its lock
        # to whoever asks first, so there one worker may well do it all: no duplicates is the point.
        assert set(shares) == {f"w{i}" for i in range(workers)}, f"every worker took a share: {shares}"
    for i in range(workers):
        assert "Traceback" not in (tmp_path / f"w{i}.log").read_text(errors="replace")
