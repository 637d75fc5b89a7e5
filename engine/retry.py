"""Retry policies are values: how long to wait before the next attempt, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential back-off with full jitter, bounded by a number of attempts and a horizon.

    ``delay(attempt)`` is the wait after the ``attempt``-th failure (1-based): a random value in
    ``[0, min(max_delay, initial * multiplier ** (attempt - 1))]`` when ``jitter``, else the
    bound itself. Give up after ``max_attempts`` or once ``horizon`` has passed since the first
    attempt, whichever comes first.
    """

    initial: timedelta = timedelta(seconds=30)
    multiplier: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    max_attempts: int = 20
    horizon: timedelta = timedelta(days=3)
    jitter: bool = True

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        bound = min(
            self.max_delay.total_seconds(), self.initial.total_seconds() * self.multiplier ** max(attempt - 1, 0)
        )
        if not self.jitter:
            return timedelta(seconds=bound)
        return timedelta(seconds=(rng or random).uniform(bound / 2, bound))

    def next_attempt(
        self, attempt: int, first_attempt: datetime, now: datetime, rng: random.Random | None = None
    ) -> datetime | None:
        """When to try again after the ``attempt``-th failure, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        at = now + self.delay(attempt, rng)
        if at - first_attempt > self.horizon:
            return None
        return at


MAIL_RETRY = RetryPolicy(
    initial=timedelta(minutes=1), max_delay=timedelta(hours=2), max_attempts=15, horizon=timedelta(days=2)
)
