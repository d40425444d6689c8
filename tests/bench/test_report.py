"""The benchmark report judges targets from one run's figures and merges re-measured rows."""

from __future__ import annotations

from benchmarks import report
from benchmarks.run import merge
from benchmarks.throughput import percentile


def worker(peer: str, rate: float, processes: int = 2) -> dict[str, object]:
    return {"peer": peer, "processes": processes, "consumer_rate": rate}


def burst(name: str, n: int, ms: float | None, error: str | None = None) -> dict[str, object]:
    return {"scheduler": name, "n": n, "last_ms": ms, "error": error}


def verdicts(results: dict[str, object]) -> list[str]:
    return [verdict for _, _, verdict in report.targets(results)]


def test_targets_are_judged_as_ratios_of_the_same_run() -> None:
    results = {
        "throughput": [worker("broker_jobs", 950), worker("dramatiq", 1000), worker("celery", 500)],
        "bursts": [burst("broker_jobs", 1000, 240), burst("pika_tx", 1000, 200)],
        "idle": [{"scheduler": "broker_jobs", "n": 10_000, "cpu_percent": 0.2, "rss_mib": 120}],
    }
    assert verdicts(results) == ["met", "MISSED", "met", "met", "met"]


def test_a_slow_burst_misses_both_the_deadline_and_the_floor_ratio() -> None:
    results = {"bursts": [burst("broker_jobs", 1000, 400), burst("pika_tx", 1000, 200)]}
    assert verdicts(results)[2:4] == ["MISSED", "MISSED"]


def test_missing_or_failed_rows_leave_their_targets_pending() -> None:
    results = {"throughput": [worker("broker_jobs", 900)],
               "bursts": [burst("broker_jobs", 1000, None, "timed out"), burst("pika_tx", 1000, 150)]}
    assert verdicts(results) == ["pending"] * 5


def test_merge_replaces_only_the_rows_measured_again() -> None:
    old = {"meta": {"started": "then"}, "notes": [],
           "throughput": [worker("dramatiq", 1000), worker("celery", 500)],
           "bursts": [burst("broker_jobs", 10_000, None, "failed"), burst("apscheduler", 10_000, 6000)]}
    new = {"meta": {"started": "now", "command": "run.py --merge"}, "notes": [],
           "bursts": [burst("broker_jobs", 10_000, 2500)]}
    merged = merge(old, new)
    assert merged["throughput"] == old["throughput"]
    rows = {(r["scheduler"], r["n"]): r for r in merged["bursts"]}
    assert rows[("broker_jobs", 10_000)]["last_ms"] == 2500
    assert rows[("apscheduler", 10_000)]["last_ms"] == 6000
    assert "now" in merged["notes"][-1]


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 51.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0
