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


def cluster_section(classic: float | None, quorum: float | None) -> dict[str, object]:
    return {"boot_s": 15.0, "throughput": [{"queue_type": "classic", "producer_rate": 900.0, "consumer_rate": classic},
                                           {"queue_type": "quorum", "producer_rate": 700.0, "consumer_rate": quorum}],
            "recovery": {"n": 10_000, "recovery_s": 3.1, "ran": 10_020, "error": None}}


def test_the_cluster_section_compares_quorum_with_classic_and_states_the_recovery() -> None:
    from benchmarks.cluster import markdown

    text = "\n".join(markdown(cluster_section(2000.0, 1000.0)))
    assert "| classic | 900 | 2,000 |" in text and "| quorum | 700 | 1,000 |" in text
    assert "Quorum ÷ classic consumer rate: 0.50 ×" in text
    assert "jobs running again after 3.1 s" in text
    failed = "\n".join(markdown({**cluster_section(2000.0, None), "error": "RuntimeError: no node"}))
    assert "Quorum ÷ classic" not in failed and "RuntimeError: no node" in failed


def test_merge_keeps_the_old_rows_and_takes_a_new_cluster_section() -> None:
    old = {"meta": {"started": "then"}, "notes": [], "throughput": [worker("dramatiq", 1000)]}
    new = {"meta": {"started": "now", "command": "run.py --only cluster --merge"}, "notes": [],
           "cluster": cluster_section(2000.0, 1000.0)}
    merged = merge(old, new)
    assert merged["throughput"] == old["throughput"] and merged["cluster"] == new["cluster"]
