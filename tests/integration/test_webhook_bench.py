"""The webhook benchmark runs end to end at a small size (SQLite, and PostgreSQL when configured):
both phases deliver every event once, signed, in per-instance order, and the report carries the
figures the closing notes quote (deliveries/s, latency p50/p99)."""

from __future__ import annotations

import math
import os

import pytest

from bench import webhook_bench
from tests.conftest import PG_ENV

EVENTS = 400


def _check(backend: str, result: dict[str, object]) -> None:
    throughput, latency = result["throughput"], result["latency"]
    assert isinstance(throughput, dict) and isinstance(latency, dict)
    assert throughput["events"] == EVENTS and latency["events"] == EVENTS
    for phase in (throughput, latency):
        for problem in ("missing", "duplicates", "unverified", "out_of_order"):
            assert phase[problem] == 0, (problem, phase)
    assert throughput["deliveries_per_s"] > 0 and math.isfinite(throughput["deliveries_per_s"])
    assert 0 < latency["latency_p50_s"] <= latency["latency_p99_s"] <= latency["latency_max_s"]
    assert result["subscription_active"] is True
    result["targets"] = webhook_bench.targets(result)
    assert result["targets"]["correct"] is True  # type: ignore[index]
    text = webhook_bench.report(backend, result)
    assert "deliveries/s" in text and "p99" in text


def _run(url: str) -> dict[str, object]:
    # The receiver in this process and producers as threads: the same code paths, a quicker start.
    return webhook_bench.run(url, EVENTS, rate=400.0, tick=0.2, separate_processes=False, timeout=60.0)


def test_webhook_bench_on_sqlite() -> None:
    with webhook_bench.database("sqlite", "") as url:
        _check("sqlite", _run(url))


@pytest.mark.skipif(
    not os.environ.get(PG_ENV), reason=f"the PostgreSQL half runs when {PG_ENV} is set (.ci/run sets it)"
)
def test_webhook_bench_on_postgres() -> None:
    with webhook_bench.database("postgres", os.environ[PG_ENV]) as url:
        _check("postgres", _run(url))
