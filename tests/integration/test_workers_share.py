"""Several workers on one database share 10,000 due reminders: each fired once, by one of them.

On PostgreSQL the batches are claimed with FOR UPDATE SKIP LOCKED, so workers fire different
reminders at the same time; on SQLite they take turns (one writer at a time) with the same result.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.deadline_seed import ensure_reference, seed
from storage.db import connect
from tests.workers import count, query, start_worker, stop, wait_for

N = 10_000

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_share_due_reminders_without_duplicates(db_url: str, tmp_path: Path, workers: int) -> None:
    database = connect(db_url)
    ensure_reference(database, recipients=1)
    database.dispose()

    logs = [tmp_path / f"w{i}.log" for i in range(workers)]
    procs = [start_worker(db_url, f"w{i}", logs[i], {"AGGLO_WORKER_BATCH_SIZE": "200"}) for i in range(workers)]
    try:
        # The reminders fall due once every worker is ticking: a share each is then the
        # workers' doing, not who started first.
        wait_for(lambda: all("ticking every" in log.read_text(errors="replace") for log in logs), 60, "the workers")
        database = connect(db_url)
        now = datetime.now(UTC)
        seed(database, [now - timedelta(seconds=i % 600) for i in range(N)], N, now - timedelta(days=1))
        database.dispose()
        wait_for(
            lambda: count(db_url, "SELECT count(*) FROM deadlines WHERE next_reminder_at IS NOT NULL") == 0,
            240,
            "every reminder",
        )
    finally:
        for proc in procs:
            stop(proc)

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
