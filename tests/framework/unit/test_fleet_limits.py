"""The jobs file's ``rate_limits:`` (per queue, per named group) and the per-host backend used without Redis."""

from __future__ import annotations

import multiprocessing
import textwrap
import time
import uuid
from pathlib import Path

import pytest
import yaml
from dramatiq.rate_limits import WindowRateLimiter

from broker_jobs import job
from broker_jobs.errors import ConfigError
from broker_jobs.fleet_limits import FleetLimit, parse_limits, read_limits
from broker_jobs.host_limits import HostBackend
from broker_jobs.middleware import RateLimit
from broker_jobs.scheduling.config import load_config
from tests.support import ROOT, run_cli
from tests.support.scheduling import fake_settings

SHIPPED = ROOT / "config" / "jobs.yaml"


def test_the_shipped_jobs_file_limits_the_etl_queue_to_ten_a_minute_as_seed_000_does():
    # Seed 000: "Rate Limiting: Prevents system overload (max 10 jobs per minute)", for the ETL queue.
    [limit] = read_limits(SHIPPED, "production")
    assert (limit.queue, limit.limit, limit.window, limit.key) == ("etl", 10, 60, "queue:etl")
    assert read_limits(SHIPPED, "development") == [limit]
    assert limit.covers("etl", "etl_sync") and not limit.covers("sync", "vault_sync")


def test_check_config_shows_the_limits_it_read():
    done = run_cli("check-config", str(SHIPPED))
    assert done.returncode == 0, done.stderr
    assert "rate limit: queue etl: 10/m (shared through this host)" in done.stdout


def test_a_group_limit_covers_its_jobs_whatever_their_queue_and_takes_per_environment_rates():
    raw = yaml.safe_load(textwrap.dedent("""
        - group: ingest
          actors: [github_ingest, spotify_ingest]
          rate: {production: 30/h, development: 60/h}
    """))
    [prod] = parse_limits(raw, "production")
    [dev] = parse_limits(raw, "development")
    assert (prod.key, prod.limit, prod.window) == ("group:ingest", 30, 3600)
    assert dev.limit == 60
    assert prod.covers("etl", "github_ingest") and prod.covers("sync", "spotify_ingest")
    assert not prod.covers("etl", "etl_sync")


@pytest.mark.parametrize(("entry", "where", "fragment"), [
    ("- {queue: etl}", "rate_limits[0].rate", "Field required"),
    ("- {queue: etl, rate: often}", "rate_limits[0].rate", "invalid rate limit 'often'"),
    ("- {queue: etl, rate: 0/m}", "rate_limits[0].rate", "invalid rate limit"),
    ("- {rate: 10/m}", "rate_limits[0]", "exactly one of queue or group"),
    ("- {queue: etl, group: g, rate: 10/m}", "rate_limits[0]", "exactly one of queue or group"),
    ("- {group: g, rate: 10/m}", "rate_limits[0].actors", "non-empty list"),
    ("- {queue: etl, rate: 10/m, burst: 3}", "rate_limits[0].burst", "unknown field"),
    ("- {queue: etl, rate: 10/m}\n- {queue: etl, rate: 5/m}", "rate_limits[1]", "duplicate queue etl"),
    ("- {queue: etl, rate: {production: 10/m}}", "rate_limits[0].rate", "no value for APP_ENV='development'"),
])
def test_a_wrong_limit_is_one_line_naming_the_file_line_and_field(tmp_path: Path, entry: str, where: str,
                                                                  fragment: str):
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs: []\nrate_limits:\n" + textwrap.indent(entry, "  ") + "\n")
    with pytest.raises(ConfigError) as caught:
        read_limits(path, "development")
    message = str(caught.value)
    assert message.startswith(f"{path}:") and f": {where}: " in message and fragment in message, message
    assert "\n" not in message


def test_check_config_refuses_a_queue_no_job_uses_and_an_unknown_job(tmp_path: Path):
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs: []\nrate_limits:\n  - {queue: etll, rate: 10/m}\n")
    done = run_cli("check-config", str(path))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert f"{path}:3: rate_limits[0].queue: no job uses queue 'etll'" in done.stderr
    path.write_text("jobs: []\nrate_limits:\n  - {group: g, actors: [etl_sync, nope], rate: 10/m}\n")
    done = run_cli("check-config", str(path))
    assert done.returncode == 2 and "rate_limits[0].actors: unknown actor 'nope'" in done.stderr


def test_the_scheduler_config_keeps_the_limits(tmp_path: Path):
    path = tmp_path / "jobs.yaml"
    path.write_text("jobs: []\nrate_limits:\n  - {queue: default, rate: 3/s}\n")
    config = load_config(path, fake_settings(path), import_modules=False)
    assert config.rate_limits == [FleetLimit(key="queue:default", rate="3/s", queue="default")]


def test_a_queue_limit_on_the_stub_broker_delays_the_jobs_over_it_and_fails_none(stub_broker, stub_worker):
    queue = f"limited_{uuid.uuid4().hex[:6]}"
    [middleware] = [m for m in stub_broker.middleware if isinstance(m, RateLimit)]
    middleware.limits = (FleetLimit(key=f"queue:{queue}", rate="2/1s", queue=queue),)
    middleware._limiters.clear()
    runs: list[tuple[str, float]] = []

    @job(name=f"first_{queue}", queue=queue, broker=stub_broker)
    def first(i: int) -> None:
        runs.append(("first", time.time()))

    @job(name=f"second_{queue}", queue=queue, broker=stub_broker)
    def second(i: int) -> None:
        runs.append(("second", time.time()))

    for i in range(3):
        first.send(i)
        second.send(i)
    stub_broker.join(queue)
    stub_worker.join()
    assert sorted(name for name, _ in runs) == ["first"] * 3 + ["second"] * 3
    assert stub_broker.dead_letters == []
    assert middleware.deferred >= 1  # six runs of two jobs through one 2-a-second limit: some waited


def _acquire_many(path: str, key: str, tries: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    limiter = WindowRateLimiter(HostBackend(Path(path)), key, limit=5, window=60)
    granted = 0
    for _ in range(tries):
        with limiter.acquire(raise_on_failure=False) as ok:
            granted += bool(ok)
    out.put(granted)


def test_without_redis_the_host_backend_shares_a_limit_between_processes(tmp_path: Path):
    # Four processes each try 10 times against one 5-a-minute limit: 5 grants in all, not 5 each
    # (Dramatiq's StubBackend would grant 20).
    path, key = str(tmp_path / "limits" / "rate.sqlite3"), f"k-{uuid.uuid4().hex[:6]}"
    out: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()  # type: ignore[type-arg]
    procs = [multiprocessing.get_context("spawn").Process(target=_acquire_many, args=(path, key, 10, out))
             for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
    assert sum(out.get(timeout=5) for _ in procs) == 5


def test_host_backend_counts_expire_with_their_window(tmp_path: Path):
    backend = HostBackend(tmp_path / "rate.sqlite3")
    assert backend.add("a", 1, ttl=200) and not backend.add("a", 1, ttl=200)
    assert backend.incr("a", 1, maximum=2, ttl=200) and not backend.incr("a", 1, maximum=2, ttl=200)
    assert backend.decr("a", 2, minimum=0, ttl=200) and not backend.decr("a", 1, minimum=0, ttl=200)
    time.sleep(0.25)  # the TTL itself is what is tested
    assert backend.add("a", 1, ttl=200)
