"""Workers killed with SIGKILL lose nothing and send nothing twice.

1,000 reminders fall due. Worker 1 is killed in the middle of firing them; worker 2 fires the
rest and is killed while sending the e-mails, at the worst moment: the SMTP server has
accepted a message and the worker has not heard back yet. Worker 3 finishes. At the SMTP
server, every reminder has arrived exactly once.
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bench.deadline_seed import ensure_reference, seed
from storage.db import connect
from tests.smtp import SmtpServer
from tests.workers import count, start_worker, stop, wait_for

N = 1000

pytestmark = pytest.mark.slow


def start(db_url: str, smtp_port: int, name: str, log: Path) -> subprocess.Popen[bytes]:
    smtp = {"AGGLO_SMTP_HOST": "127.0.0.1", "AGGLO_SMTP_PORT": str(smtp_port), "AGGLO_MAIL_FROM": "agglo@example.org"}
    return start_worker(db_url, name, log, {**smtp, "AGGLO_WORKER_BATCH_SIZE": "25"})


def test_killed_workers_lose_nothing_and_send_nothing_twice(db_url: str, tmp_path: Path) -> None:
    database = connect(db_url)
    ensure_reference(database, recipients=1, email_domain="example.org")
    now = datetime.now(UTC)
    seed(database, [now - timedelta(minutes=5, seconds=i % 60) for i in range(N)], N, now - timedelta(days=1))
    database.dispose()

    with SmtpServer() as smtp:
        first = start(db_url, smtp.port, "worker-1", tmp_path / "w1.log")
        try:
            wait_for(lambda: count(db_url, "SELECT count(*) FROM reminders") >= 300, 60, "worker 1 to fire reminders")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        finally:
            first.kill()
        fired_before = count(db_url, "SELECT count(*) FROM reminders")
        assert 300 <= fired_before < N, "worker 1 was to be killed in the middle of the sweep"

        smtp.handler.hold_on = smtp.handler.count + 200
        second = start(db_url, smtp.port, "worker-2", tmp_path / "w2.log")
        try:
            assert smtp.handler.held.wait(120), "worker 2 never reached the 200th e-mail"
            second.send_signal(signal.SIGKILL)
            second.wait(10)
        finally:
            second.kill()
            smtp.handler.release()

        third = start(db_url, smtp.port, "worker-3", tmp_path / "w3.log")
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
            stop(third)

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
