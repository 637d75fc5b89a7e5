"""The worker process: APScheduler 3 only ticks; each tick runs idempotent sweeps over our tables.

Sweeps: timer start events, due timers, reminders and escalations, queued e-mails, buffered
incoming messages, then outgoing webhooks (outbox events fanned out to subscriptions, then
deliveries sent). Due-ness lives in our tables (indexed ``next_due_at`` / ``next_reminder_at`` /
``next_attempt_at``), so a tick costs one indexed query per sweep when nothing is due. Sweeps
claim work in batches (``FOR UPDATE SKIP LOCKED`` and leases on PostgreSQL; SQLite serialises
writers), so several workers share the work and a killed worker loses nothing. One failing
item is recorded and the sweep goes on; one failing sweep is logged and the tick goes on.
The worker never runs inside the web app.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.interval import IntervalTrigger

from engine.clock import Clock
from engine.engine import Engine
from engine.sweeps import SweepReport
from webhooks import outbound
from webhooks.email import SmtpMailer, SmtpSettings
from webhooks.mail_sweep import sweep as mail_sweep

log = logging.getLogger("agglo.worker")

CALENDAR_RELOAD_SECONDS = 60.0


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Worker:
    """One worker: the sweeps, run in order on every tick."""

    engine: Engine
    clock: Clock
    owner: str = field(default_factory=default_owner)
    mailer: SmtpMailer | None = None
    tick_budget: float = 5.0
    extra_sweeps: list[Callable[[], SweepReport]] = field(default_factory=list)
    webhook_batch: int = 200
    # Test seams for webhook deliveries (sender, resolver, threads): the defaults send for real.
    webhook_options: dict[str, Any] = field(default_factory=dict)
    _calendar_loaded: float = field(default=0.0, init=False)

    @classmethod
    def from_engine(cls, engine: Engine, clock: Clock, owner: str | None = None) -> Worker:
        settings = engine.settings
        mailer = SmtpMailer(SmtpSettings.from_settings(settings), clock=clock) if settings.smtp_host else None
        if mailer is None:
            log.warning("no SMTP server configured (AGGLO_SMTP_HOST): e-mails stay queued, in-app notices go out")
        return cls(engine, clock, owner or default_owner(), mailer)

    def tick(self) -> list[SweepReport]:
        """Run every sweep once (the reminder and e-mail sweeps drain full batches within the budget)."""
        started = time.monotonic()
        if started - self._calendar_loaded > CALENDAR_RELOAD_SECONDS:
            self.engine.reload_calendar()  # another process may have imported an official calendar
            self._calendar_loaded = started
        batch = self.engine.settings.worker_batch_size
        reports: list[SweepReport] = []
        steps: list[tuple[str, Callable[[], SweepReport], int]] = [
            ("start_timers", lambda: self.engine.sweep_start_timers(self.owner), 0),
            ("timers", lambda: self.engine.sweep_timers(self.owner, batch), batch),
            ("reminders", lambda: self.engine.sweep_reminders(self.owner, batch), batch),
        ]
        if self.mailer is not None:
            mailer = self.mailer
            steps.append(("email", lambda: mail_sweep(self.engine.store, mailer, self.clock, self.owner, batch), batch))
        store, settings = self.engine.store, self.engine.settings
        steps += [
            ("messages", lambda: self.engine.sweep_messages(), 0),
            (
                "webhook_dispatch",
                lambda: outbound.dispatch(store, self.clock, self.owner, batch, settings.worker_lease_seconds),
                batch,
            ),
            (
                "webhooks",
                lambda: outbound.deliver(
                    store, self.clock, settings, self.owner, self.webhook_batch, **self.webhook_options
                ),
                self.webhook_batch,
            ),
        ]
        steps += [(f"extra{i}", s, 0) for i, s in enumerate(self.extra_sweeps)]
        for name, run, full in steps:
            while True:
                try:
                    report = run()
                except Exception:
                    log.exception("sweep %s failed", name)
                    break
                reports.append(report)
                if report.failed:
                    log.warning("sweep %s: %s", name, "; ".join(report.errors[:5]))
                if not full or report.claimed < full or time.monotonic() - started > self.tick_budget:
                    break
        return reports

    def close(self) -> None:
        if self.mailer is not None:
            self.mailer.close()

    def run(self, tick_seconds: float) -> None:
        """Tick forever (until SIGTERM or SIGINT)."""
        scheduler = BlockingScheduler(timezone=UTC)
        scheduler.add_job(
            self.tick,
            IntervalTrigger(seconds=tick_seconds),
            id="tick",
            max_instances=1,
            coalesce=True,
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
        )

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("worker %s stopping on signal %s", self.owner, signum)
            scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("worker %s ticking every %ss", self.owner, tick_seconds)
        try:
            scheduler.start()
        finally:
            self.close()


def summary(reports: list[SweepReport]) -> dict[str, Any]:
    total: dict[str, dict[str, int]] = {}
    for report in reports:
        entry = total.setdefault(report.name, {"claimed": 0, "done": 0, "deferred": 0, "failed": 0})
        for key in entry:
            entry[key] += getattr(report, key)
    return total
