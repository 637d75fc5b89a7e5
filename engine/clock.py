"""Time is an input.

Core functions take ``now`` or a :class:`Clock`; entry points (CLI, web app, worker) build a
:class:`SystemClock`, tests and simulations a :class:`VirtualClock`. :class:`SystemClock` is
the only place in ``engine/`` that reads the real time.

All instants are timezone-aware UTC datetimes. The region lives in Asia/Yekaterinburg
(UTC+5); :data:`REGION_TZ` converts for display and for "end of the working day" rules.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta, timezone
from typing import Protocol

REGION_TZ = timezone(timedelta(hours=5), "Asia/Yekaterinburg")


class Clock(Protocol):
    """Where the current time comes from."""

    def now(self) -> datetime:
        """The current instant, timezone-aware, in UTC."""
        ...


class SystemClock:
    """The real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class VirtualClock:
    """A clock that moves only when told to: tests and simulations drive it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("VirtualClock needs a timezone-aware start")
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> datetime:
        if instant.tzinfo is None:
            raise ValueError("VirtualClock needs timezone-aware instants")
        instant = instant.astimezone(UTC)
        with self._lock:
            if instant < self._now:
                raise ValueError("a clock does not go backwards")
            self._now = instant
            return self._now


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive values are taken as the region's local time."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=REGION_TZ)
    return value.astimezone(UTC)
