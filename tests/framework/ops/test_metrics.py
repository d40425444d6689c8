"""Prometheus metrics as a worker host exports them: Dramatiq's and ours, in one multiprocess directory."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker_jobs import metrics
from broker_jobs.metrics import env as metrics_env
from tests.support import ROOT, UNREACHABLE, wait_for

NEXT_FIRE = 1_900_000_000.0


def samples(port: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def python(code: str, env: dict[str, str]) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env={**os.environ, **env}, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.rabbitmq
def test_a_worker_host_exports_dramatiq_and_our_metrics_with_real_values(service_env, worker):
    env = service_env
    # Two good runs, one with invalid arguments, one scheduled run (fire id), and a scheduler
    # on the same host writing into the same directory.
    python("""
        from datetime import datetime, UTC
        from broker_jobs import metrics
        from broker_jobs.actors import diagnostics
        diagnostics.send()
        diagnostics.send()
        diagnostics.send(1)
        diagnostics.send_with_options(fire_id="nightly-diagnostics@2026-01-01T03:00:00Z")
        metrics.observe_fire("nightly-diagnostics", datetime(2026, 1, 1, 3, tzinfo=UTC), 0.012, "fired")
        metrics.set_next_fire("nightly-diagnostics", NEXT_FIRE)
    """.replace("NEXT_FIRE", repr(NEXT_FIRE)), env)
    port = env["METRICS_PORT"]
    found = wait_for(lambda: (s := samples(port)) and (value(
        s, "dramatiq_messages_total", queue_name="default", actor_name="diagnostics") or 0) >= 4 and s,
        "four processed messages in the worker's metrics", timeout=30, every=0.1, ignore=UNREACHABLE)
    default = {"queue": "default", "actor": "diagnostics"}
    assert value(found, "dramatiq_message_rejects_total", queue_name="default", actor_name="diagnostics") == 1
    assert value(found, "dramatiq_message_duration_milliseconds_count", queue_name="default",
                 actor_name="diagnostics") == 4
    assert value(found, "broker_jobs_job_runs_total", status="succeeded", **default) == 3
    assert value(found, "broker_jobs_dead_lettered_total", **default) == 1
    assert value(found, "broker_jobs_schedule_slots_total", job="nightly-diagnostics", outcome="fired") == 1
    assert value(found, "broker_jobs_schedule_fire_lag_seconds_count", job="nightly-diagnostics") == 1
    assert value(found, "broker_jobs_schedule_next_fire_timestamp", job="nightly-diagnostics") == NEXT_FIRE
    success = value(found, "broker_jobs_schedule_last_success_timestamp", job="nightly-diagnostics")
    assert success is not None and abs(success - time.time()) < 600


def test_stale_files_are_removed_and_live_ones_kept(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for pid in (gone.pid, alive.pid):
            (tmp_path / f"counter_{pid}.db").write_bytes(b"")
            (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
        assert metrics_env.remove_stale(tmp_path) == 2
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
            [f"counter_{alive.pid}.db", f"gauge_livesum_{alive.pid}.db"])
    finally:
        alive.kill()
        alive.wait()


def test_recording_functions_never_raise_even_on_nonsense():
    metrics.observe_fire("job-x", None, "slow", "exploded")  # type: ignore[arg-type]
    metrics.set_next_fire("job-x", "tomorrow")  # type: ignore[arg-type]
    metrics.set_leader("maybe")  # type: ignore[arg-type]
    metrics.job_succeeded(None, "now")  # type: ignore[arg-type]
    metrics.rate_limited(None, None)  # type: ignore[arg-type]


def test_scheduler_metrics_show_up_in_this_process_export():
    job_id = f"ops-{time.monotonic_ns()}"
    slot = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    metrics.observe_fire(job_id, slot, 0.25, "caught_up")
    metrics.observe_fire(job_id, slot, 0.0, "skipped_overlap")
    metrics.set_next_fire(job_id, datetime(2026, 1, 1, 10, 10, tzinfo=UTC))
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    found = {(x.name, frozenset(x.labels.items())): x.value
             for family in text_string_to_metric_families(body.decode()) for x in family.samples}
    assert value(found, "broker_jobs_schedule_slots_total", job=job_id, outcome="caught_up") == 1
    assert value(found, "broker_jobs_schedule_slots_total", job=job_id, outcome="skipped_overlap") == 1
    assert value(found, "broker_jobs_schedule_fire_lag_seconds_count", job=job_id) == 1  # skips have no lag
    assert value(found, "broker_jobs_schedule_last_fire_timestamp", job=job_id) == slot.timestamp() + 0.25
    assert value(found, "broker_jobs_schedule_next_fire_timestamp", job=job_id) == slot.timestamp() + 300


def test_a_paused_schedule_has_no_next_fire_time_rather_than_a_false_zero():
    job_id = f"paused-{time.monotonic_ns()}"
    metrics.set_next_fire(job_id, datetime(2026, 1, 1, 10, 10, tzinfo=UTC))
    metrics.set_next_fire(job_id, None)  # paused: there is no next slot
    body, _ = metrics.render()
    found = {(x.name, frozenset(x.labels.items())): x.value
             for family in text_string_to_metric_families(body.decode()) for x in family.samples}
    assert math.isnan(value(found, "broker_jobs_schedule_next_fire_timestamp", job=job_id))


@pytest.mark.parametrize("setting,inherited,expected", [
    ("/srv/metrics", "/tmp/other", "/srv/metrics"),   # METRICS_DIR wins
    (None, "/tmp/other", "/tmp/other"),               # else what a parent process set up
    (None, None, "broker-jobs-metrics-9393"),         # else one directory per exporter port
])
def test_the_multiprocess_directory_is_chosen_in_a_fixed_order(monkeypatch, setting, inherited, expected):
    from broker_jobs.settings import Settings

    if inherited:
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", inherited)
    else:
        monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    chosen = metrics_env.metrics_dir(Settings(metrics_dir=setting, metrics_port=9393))
    assert str(chosen).endswith(expected)


def test_importing_the_metrics_package_leaves_prometheus_client_to_load_in_multiprocess_mode(tmp_path):
    # prometheus_client picks its value store when first imported: no module of the package
    # (nor the worker middleware) may import it before env.configure() has set the directory.
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import os, sys
        import broker_jobs.metrics, broker_jobs.metrics.batch, broker_jobs.metrics.exporter
        import broker_jobs.metrics.labels, broker_jobs.middleware.metrics
        print("prometheus_client" in sys.modules)
        broker_jobs.metrics.set_leader(True)
        from prometheus_client import values
        print(values.ValueClass is not values.MutexValue)
        print(sorted(os.listdir(os.environ["METRICS_DIR"])))
    """)], env={**os.environ, "METRICS_DIR": str(tmp_path)}, cwd=ROOT, capture_output=True, text=True,
        timeout=120)
    assert out.returncode == 0, out.stderr
    loaded_early, multiprocess, files = out.stdout.splitlines()
    assert (loaded_early, multiprocess) == ("False", "True")
    assert files.startswith("['gauge_livemax_")


def test_every_outcome_that_publishes_moves_the_last_fire_time():
    from broker_jobs.scheduling.policies import PUBLISHING

    assert set(PUBLISHING) <= set(metrics.PUBLISHED) <= set(metrics.SLOT_OUTCOMES)
    slot = datetime(2026, 1, 1, 10, 5, tzinfo=UTC)
    jobs = {outcome: f"pub-{outcome}-{time.monotonic_ns()}" for outcome in metrics.SLOT_OUTCOMES}
    for outcome, job_id in jobs.items():
        metrics.observe_fire(job_id, slot, 0.5, outcome)
    body, _ = metrics.render()
    found = {(x.name, frozenset(x.labels.items())): x.value
             for family in text_string_to_metric_families(body.decode()) for x in family.samples}
    moved = {o for o, job_id in jobs.items()
             if value(found, "broker_jobs_schedule_last_fire_timestamp", job=job_id) == slot.timestamp() + 0.5}
    assert moved == set(PUBLISHING)
