"""Helpers for the tests that run `agglo worker` as real processes (kill, share): start one with
settings, stop it, and look at the database from outside while they work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import text

from storage.db import connect

AGGLO = str(Path(sys.executable).parent / "agglo")

# Quick ticks and leases, and no quiet hours, so that a test sees the worker's cycle in seconds.
FAST = {
    "AGGLO_WORKER_LEASE_SECONDS": "2",
    "AGGLO_WORKER_TICK_SECONDS": "0.2",
    "AGGLO_QUIET_HOURS_START": "0",
    "AGGLO_QUIET_HOURS_END": "0",
}


def start_worker(db_url: str, name: str, log: Path, settings: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """``agglo worker --owner name`` on ``db_url`` with ``FAST`` plus ``settings`` (AGGLO_*);
    its output goes to ``log``. An AGGLO_SMTP_HOST of the test's own environment is not inherited."""
    env = {k: v for k, v in os.environ.items() if k != "AGGLO_SMTP_HOST"}
    env.update({"AGGLO_DATABASE_URL": db_url, **FAST, **settings})
    return subprocess.Popen(
        [AGGLO, "worker", "--owner", name], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def stop(worker: subprocess.Popen[bytes]) -> None:
    """SIGTERM, and SIGKILL if it does not stop within 15 s."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:
        worker.kill()


def kill(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)


def query(db_url: str, sql: str) -> list[tuple[Any, ...]]:
    database = connect(db_url)
    try:
        with database.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql))]
    finally:
        database.dispose()


def count(db_url: str, sql: str) -> int:
    return int(query(db_url, sql)[0][0])


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
