"""Faults 3 and 4, and the secrets check: one full run, then what it must show.

The run: a worker, two ``broker-jobs scheduler`` instances with the lease in a
private Redis, and ``broker-jobs serve``, all on private services.  A job fires
every second (``misfire: run_all``).  The leader is SIGKILLed; later Redis is
stopped for 30 s and started again.  Every slot must then have run exactly
once, the health endpoint must have said ``degraded`` during the outage, and
no log line of any process may contain a secret.

tests/framework/scheduling/test_integration.py already proves, at the publish level, that
a killed leader's standby publishes every slot with at most one duplicate
*message*; this run adds the workers and shows each slot *executed* once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import (
    EFFECTS_DDL,
    TEST_POSTGRES_URL,
    PrivateRabbit,
    PrivateRedis,
    Process,
    ServiceUnavailable,
    Workers,
    database,
    dead_keys,
    effects,
    free_port,
    port_open,
    private_vhost,
    queue_depth,
    tally,
    unavailable,
    wait_for,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

REDIS_OUTAGE_SECONDS = 30

#: Recognizable dummy secrets: none may appear in any log of the run.
SECRETS = {
    "API_JWT_SECRET": "jwt-secret-7f3a9c1e-do-not-log",
    "GITHUB_TOKEN": "ghp_faulttestTOKEN0123456789abcdef",
    "SPOTIFY_CLIENT_ID": "spotify-client-id-5d1c-do-not-log",
    "SPOTIFY_CLIENT_SECRET": "spotify-client-secret-9b2e-do-not-log",
    "SPOTIFY_REFRESH_TOKEN": "spotify-refresh-token-4a8f-do-not-log",
    "QDRANT_API_KEY": "qdrant-api-key-1c7d-do-not-log",
}

JOBS_YAML = """\
modules: [tests.framework.faults.jobs]
jobs:
  - {id: beat, actor: record_fire, queue: faults, interval: 1, misfire: run_all, overlap: allow}
"""


@dataclass
class Run:
    """What the full run left behind."""

    effects: dict[str, int]
    dead: list[str]
    health_during_outage: list[str]
    health_after: str
    logs: dict[str, str]
    killed_leader: str
    notes: dict[str, Any] = field(default_factory=dict)


def health(port: int) -> str:
    try:
        return str(httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["status"])
    except (httpx.HTTPError, ValueError, KeyError):
        return "unreachable"


def fired(schedulers: dict[str, Process], name: str | None, after_lead: int = 1) -> int:
    """How many slots scheduler ``name`` logged as published since its ``after_lead``-th leadership line."""
    if name is None:
        return 0
    text = schedulers[name].text()
    leads = [m.end() for m in re.finditer(r"leads \(fencing token", text)]
    if len(leads) < after_lead:
        return 0
    return len(re.findall(r"job beat (?:fired|caught up) slot", text[leads[after_lead - 1]:]))


def published_slots(schedulers: dict[str, Process]) -> set[int]:
    """The slots (epoch seconds) every scheduler logged as published."""
    return {slot_seconds("beat@" + slot) for process in schedulers.values()
            for slot in re.findall(r"job beat (?:fired|caught up) slot (\S+)", process.text())}


def leader_of(schedulers: dict[str, Process]) -> str | None:
    """The instance whose last leadership line is the most recent."""
    def last_lead(name: str) -> int:
        text = schedulers[name].text()
        return max((m.start() for m in re.finditer(r"leads \(fencing token", text)), default=-1)

    leading = [n for n, p in schedulers.items() if p.alive() and last_lead(n) >= 0
               and last_lead(n) > schedulers[n].text().rfind("step")]
    return leading[0] if len(leading) == 1 else None


@pytest.fixture(scope="module")
def run(private_rabbit: PrivateRabbit, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    if not port_open(TEST_POSTGRES_URL, 5432):
        unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}")
    redis = PrivateRedis()
    try:
        redis.start()
    except ServiceUnavailable as exc:
        unavailable(f"a private Redis server ({exc})")
    tmp = tmp_path_factory.mktemp("scheduler-faults")
    processes: dict[str, Process] = {}
    try:
        with private_vhost(private_rabbit) as amqp_url, database(TEST_POSTGRES_URL, "bj_fault", EFFECTS_DDL) as db:
            (tmp / "jobs.yaml").write_text(JOBS_YAML)
            api_port = free_port()
            env = {"RABBITMQ_URL": amqp_url, "DATABASE_URL": db, "FAULT_EFFECTS_URL": db,
                   "REDIS_URL": redis.url, "JOBS_CONFIG": str(tmp / "jobs.yaml"), "LOG_LEVEL": "INFO",
                   "PYTHONUNBUFFERED": "1", "RETRY_MIN_BACKOFF": "0.5", "RETRY_MAX_BACKOFF": "5", **SECRETS}

            def own(name: str) -> dict[str, str]:
                return {**env, "METRICS_PORT": str(free_port()), "METRICS_DIR": str(tmp / f"metrics-{name}")}

            processes["worker"] = Workers(own("worker"), tmp / "worker.log", 1, 2).start(wait=False)
            for name in ("a", "b"):
                processes[name] = Process(["-m", "broker_jobs", "scheduler"], own(name),
                                          tmp / f"scheduler-{name}.log").start()
            processes["api"] = Process(["-m", "broker_jobs", "serve", "--port", str(api_port)], own("api"),
                                       tmp / "api.log").start()
            schedulers = {n: processes[n] for n in ("a", "b")}
            processes["worker"].ready()  # type: ignore[attr-defined]
            wait_for(lambda: leader_of(schedulers), "a scheduler to lead")
            wait_for(lambda: health(api_port) == "healthy", "the API to report healthy")
            wait_for(lambda: fired(schedulers, leader_of(schedulers)) >= 3, "the leader to publish three slots")

            killed = leader_of(schedulers)
            assert killed is not None
            schedulers[killed].kill()  # SIGKILL: no lease release, maybe a slot published but not recorded
            standby = next(n for n in schedulers if n != killed)
            schedulers[standby].wait_for_log(r"leads \(fencing token", timeout=30)
            wait_for(lambda: fired(schedulers, standby) >= 2, "the new leader to publish two slots")

            redis.stop()
            outage_ends = time.monotonic() + REDIS_OUTAGE_SECONDS
            seen: list[str] = []
            while time.monotonic() < outage_ends:
                seen.append(health(api_port))
                time.sleep(1)  # not a wait: /health sampled once a second for as long as the outage lasts
            redis.start()
            wait_for(lambda: health(api_port) == "healthy", "the API to report healthy again", timeout=60)
            schedulers[standby].wait_for_log(r"leads \(fencing token", count=2, timeout=60)
            before_outage = fired(schedulers, standby, after_lead=2)
            wait_for(lambda: fired(schedulers, standby, after_lead=2) >= 2 + before_outage,
                     "the new leader to publish two slots after the outage")
            after = health(api_port)  # while a scheduler is alive: without one, /health is not healthy
            schedulers[standby].stop()
            wait_for(lambda: queue_depth(amqp_url, "faults") == 0 and queue_depth(amqp_url, "faults.DQ") == 0,
                     "the workers to drain the queue", timeout=120)
            # messages delivered but not yet acknowledged are not in the depth: wait for their effects
            wait_for(lambda: published_slots(schedulers) <= {slot_seconds(k) for k in effects(db) if "@" in k},
                     "every published slot to have run", timeout=120)
            for process in processes.values():
                process.stop()
            yield Run(effects=effects(db), dead=dead_keys(amqp_url), health_during_outage=seen,
                      health_after=after, logs={n: p.text() for n, p in processes.items()},
                      killed_leader=killed)
    finally:
        for process in processes.values():
            process.kill()
        redis.close()


def slot_seconds(fire_id: str) -> int:
    return int(datetime.fromisoformat(fire_id.split("@", 1)[1].replace("Z", "+00:00")).timestamp())


def test_every_slot_runs_exactly_once_across_a_killed_leader_and_a_redis_outage(run: Run):
    slots = {slot_seconds(f): runs for f, runs in run.effects.items() if f.startswith("beat@")}
    first, last = min(slots), max(slots)
    expected = [f"s{t}" for t in range(first, last + 1)]
    result = tally("scheduler: leader SIGKILL + Redis down 30 s", expected, {f"s{t}": n for t, n in slots.items()},
                   run.dead, missed=len(expected) - len(slots), doubled=sum(1 for n in slots.values() if n > 1))
    assert result.extra["missed"] == 0 and result.lost == 0
    assert result.extra["doubled"] == 0 and result.executions == result.sent
    assert result.dead_lettered == 0 and run.dead == []


def test_scheduling_pauses_while_redis_is_down_and_resumes_by_itself(run: Run):
    standby = "b" if run.killed_leader == "a" else "a"
    log = run.logs[standby]
    assert "lease unavailable" in log
    # The leader gives the lease up when it cannot renew it: nobody fires twice meanwhile.
    assert "lease expired while its store was unreachable" in log
    assert len(re.findall(r"leads \(fencing token", log)) >= 2


def test_health_says_degraded_while_redis_is_down_and_healthy_after(run: Run):
    assert "degraded" in run.health_during_outage
    assert set(run.health_during_outage) <= {"healthy", "degraded"}  # never unhealthy, never down
    assert run.health_after == "healthy"


def test_no_log_line_of_the_full_run_contains_a_secret(run: Run):
    leaks = [(name, variable) for name, text in run.logs.items() for variable, value in SECRETS.items()
             if value in text]
    assert leaks == []
    assert all(run.logs.values())  # every process did log something


def test_the_api_binds_to_loopback_unless_told_otherwise(run: Run):
    assert re.search(r"serving on http://127\.0\.0\.1:\d+/", run.logs["api"])
    from broker_jobs.settings import Settings

    assert Settings.model_fields["api_host"].default == "127.0.0.1"
    assert Settings.model_fields["metrics_host"].default == "127.0.0.1"


def test_the_shipped_rabbitmq_definitions_have_no_guest_user():
    import json

    definitions = json.loads((Path(__file__).parents[3] / "rabbitmq" / "definitions.json").read_text())
    assert "guest" not in {user["name"] for user in definitions.get("users", [])}
    assert definitions.get("users"), "the definitions should declare the application's own user"


def test_the_docker_image_runs_as_a_non_root_user():
    dockerfile = (Path(__file__).parents[3] / "Dockerfile").read_text()
    users = re.findall(r"^\s*USER\s+(\S+)", dockerfile, re.M)
    assert users, "the Dockerfile never switches away from root"
    assert users[-1] not in ("root", "0", "0:0")
