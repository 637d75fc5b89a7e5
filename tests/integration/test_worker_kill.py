"""Workers killed with SIGKILL lose nothing and send nothing twice.

1,000 reminders fall due. Worker 1 is killed in the middle of firing them; worker 2 fires the
rest and is killed while sending the e-mails, at the worst moment: the SMTP server has
accepted a message and the worker has not heard back yet. Worker 3 finishes. At the SMTP
server, every reminder has arrived exactly once.
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
from tests.smtp import SmtpServer

AGGLO = str(Path(sys.executable).parent / "agglo")
N = 1000

pytestmark = pytest.mark.slow


def start_worker(db_url: str, smtp_port: int, name: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AGGLO_DATABASE_URL": db_url,
        "AGGLO_SMTP_HOST": "127.0.0.1",
        "AGGLO_SMTP_PORT": str(smtp_port),
        "AGGLO_WORKER_BATCH_SIZE": "25",
        "AGGLO_WORKER_LEASE_SECONDS": "2",
        "AGGLO_WORKER_TICK_SECONDS": "0.2",
        "AGGLO_QUIET_HOURS_START": "0",
        "AGGLO_QUIET_HOURS_END": "0",
        "AGGLO_MAIL_FROM": "agglo@example.org",
    }
    return subprocess.Popen(
        [AGGLO, "worker", "--owner", name], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def count(db_url: str, sql: str) -> int:
    database = connect(db_url)
    try:
        with database.connect() as conn:
            return int(conn.execute(text(sql)).scalar_one())
    finally:
        database.dispose()


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_workers_lose_nothing_and_send_nothing_twice(db_url: str, tmp_path: Path) -> None:
    database = connect(db_url)
    ensure_reference(database, recipients=1, email_domain="example.org")
    now = datetime.now(UTC)
    seed(database, [now - timedelta(minutes=5, seconds=i % 60) for i in range(N)], N, now - timedelta(days=1))
    database.dispose()

    with SmtpServer() as smtp:
        first = start_worker(db_url, smtp.port, "worker-1", tmp_path / "w1.log")
        try:
            wait_for(lambda: count(db_url, "SELECT count(*) FROM reminders") >= 300, 60, "worker 1 to fire reminders")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            first.kill()
        fired_before = count(db_url, "SELECT count(*) FROM reminders")
        assert 300 <= fired_before < N, "worker 1 was to be killed in the middle of the sweep"

        smtp.handler.hold_on = smtp.handler.count + 200
        second = start_worker(db_url, smtp.port, "worker-2", tmp_path / "w2.log")
        try:
            assert smtp.handler.held.wait(120), "worker 2 never reached the 200th e-mail"
            second.send_signal(signal.SIGKILL)
            second.wait(10)
        finally:
            second.kill()
            smtp.handler.release()

        third = start_worker(db_url, smtp.port, "worker-3", tmp_path / "w3.log")
        try:
            wait_for(
                lambda: (
                    smtp.handler.count >= N
                    and count(db_url, "SELECT count(*) FROM deliveries WHERE channel = 'email' AND status <> 'sent'")
                    == 0
                ),
                120,
                "all e-mails",
            )
            time.sleep(1.0)  # anything still in flight would arrive now
        finally:
            third.send_signal(signal.SIGTERM)
            try:
                third.wait(15)
            except subprocess.TimeoutExpired:
                third.kill()

        assert smtp.handler.duplicates() == {}, "a reminder e-mail arrived twice"
        assert all(s.startswith("Срок сегодня") for s in smtp.handler.subjects), smtp.handler.subjects[:3]
        assert all("«Задача»" in b and "Здравствуйте" in b for b in smtp.handler.bodies), smtp.handler.bodies[:2]
        assert smtp.handler.count == N
        assert len(set(smtp.handler.message_ids)) == N
    assert count(db_url, "SELECT count(*) FROM reminders") == N
    assert count(db_url, "SELECT count(DISTINCT deadline_id) FROM reminders") == N
    assert count(db_url, "SELECT count(*) FROM deliveries WHERE channel = 'email' AND status = 'sent'") == N
    # The delivery log: exactly one 'sent' attempt per e-mail, written with the commit point.
    assert count(db_url, "SELECT count(*) FROM delivery_attempts WHERE channel = 'email' AND outcome = 'sent'") == N
    assert count(db_url, "SELECT count(DISTINCT delivery_id) FROM delivery_attempts WHERE channel = 'email'") == N
    assert count(db_url, "SELECT count(*) FROM deadlines WHERE next_reminder_at IS NOT NULL") == 0
