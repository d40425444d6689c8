"""``make bench`` runs end to end: ``benchmarks/run.py --quick`` on a tiny N, all four worker peers.

No figure is asserted (the machine is shared, speed goes to the benchmark
itself); what is checked is that every peer ran and the results page, JSON
and chart were written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import RABBITMQ_URL, ROOT, TEST_REDIS_URL, port_open, unavailable

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow]

QuickRun = tuple[subprocess.CompletedProcess[str], Path]
WORKER_PEERS = {"pika", "dramatiq", "dramatiq_prio", "broker_jobs", "celery", "celery_late"}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> QuickRun:
    if not port_open(RABBITMQ_URL, 5672) or not port_open("http://127.0.0.1:15672", 15672):
        unavailable("RabbitMQ with its management API")
    if not port_open(TEST_REDIS_URL, 6379):
        unavailable(f"Redis at {TEST_REDIS_URL}")
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "JOBS_CONFIG", "BENCH_N")}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    return done, out


def test_quick_bench_exits_cleanly_and_prints_the_table(quick_run: QuickRun) -> None:
    done, _ = quick_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert "## Targets" in done.stdout
    assert "| broker_jobs |" in done.stdout


def test_every_worker_peer_ran_its_burst_and_latency_phase(quick_run: QuickRun) -> None:
    _, out = quick_run
    results = json.loads((out / "results.json").read_text())
    rows = {row["peer"]: row for row in results["throughput"]}
    assert set(rows) == WORKER_PEERS
    for peer, row in rows.items():
        assert row["error"] is None, f"{peer}: {row['error']}"
        assert row["producer_rate"] > 0 and row["consumer_rate"] > 0, peer
        assert row["latency_samples"] > 0, peer
    assert rows["broker_jobs"]["history_rows"] >= rows["broker_jobs"]["n"]


def test_scheduler_harnesses_published_or_started(quick_run: QuickRun) -> None:
    _, out = quick_run
    results = json.loads((out / "results.json").read_text())
    bursts = {row["scheduler"]: row for row in results["bursts"]}
    assert bursts["pika_tx"]["last_ms"] is not None
    assert bursts["apscheduler"]["error"] is None, bursts["apscheduler"]["error"]
    if "broker_jobs" in bursts:
        assert bursts["broker_jobs"]["error"] is None, bursts["broker_jobs"]["error"]
    idle = {row["scheduler"]: row for row in results["idle"]}
    for name in ("periodiq", "celery_beat"):
        assert idle[name]["error"] is None, f"{name}: {idle[name]['error']}"
        assert idle[name]["rss_mib"] > 0


def test_results_page_names_the_machine_and_the_chart_is_a_png(quick_run: QuickRun) -> None:
    _, out = quick_run
    page = (out / "RESULTS.md").read_text()
    assert "## Machine" in page and "cores" in page and "rabbitmq" in page
    assert (out / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
