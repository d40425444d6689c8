"""Seed 000's limit as shipped (10 ETL jobs a minute, shared by every worker), on two real worker processes.

The workers run the shipped ``rate_limits:`` of ``config/jobs.yaml`` against real RabbitMQ and Redis; a tap on
each worker's limiter backend (:mod:`tests.framework.scaleout.fleet_jobs`) counts every grant with its
one-second bucket.  Takes about 1.5 minutes: the jobs over the limit wait for the next minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import yaml

from tests.support import ROOT, start, stop, wait_for
from tests.support.environment import TEST_REDIS_URL
from tests.support.foreign import message_ids_in

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow]

SENT = 14


@pytest.fixture
def fleet(rabbitmq_url: str, redis_url: str, tmp_path: Path):
    # A Redis database of its own (the one below the tests' own, which are odd): a test flushing the shared one
    # must not reset the limiter mid-run.
    parts = urlsplit(TEST_REDIS_URL)
    url = urlunsplit(parts._replace(path=f"/{max(0, int(parts.path.strip('/') or 1) - 1)}"))
    r = redis.Redis.from_url(url)
    r.flushdb()
    shipped = yaml.safe_load((ROOT / "config" / "jobs.yaml").read_text())["rate_limits"]
    config = tmp_path / "jobs.yaml"
    config.write_text(yaml.safe_dump({"modules": ["tests.framework.scaleout.fleet_jobs"], "jobs": [],
                                      "rate_limits": shipped}))
    run = uuid.uuid4().hex[:8]
    env = {"RABBITMQ_URL": rabbitmq_url, "REDIS_URL": url, "SCALEOUT_REDIS_URL": url, "SCALEOUT_RUN": run,
           "DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3", "JOBS_CONFIG": str(config),
           "METRICS_DIR": str(tmp_path / "metrics"), "PYTHONUNBUFFERED": "1"}
    workers = [start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "4",
                      "--queues", "etl"], {**env, "METRICS_PORT": str(20300 + i + os.getpid() % 50 * 2)},
                     tmp_path / f"worker{i}.log")
               for i in range(2)]
    yield env, r, run
    for worker in workers:
        stop(worker)


def test_two_workers_grant_ten_etl_jobs_a_minute_between_them_and_delay_the_rest(fleet):
    env, r, run = fleet
    sender = (
        "import sys\n"
        "from broker_jobs.actors import broker\n"
        "from tests.framework.scaleout.fleet_jobs import fleet_etl\n"
        f"sys.stdout.write(' '.join(fleet_etl.send(i).message_id for i in range({SENT})))\n"
    )
    sent = subprocess.run([sys.executable, "-c", sender], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert sent.returncode == 0, sent.stderr[-2000:]
    ids = set(sent.stdout.split())
    assert len(ids) == SENT

    def grants() -> list[tuple[int, str]]:
        return [(int(b), pid) for b, pid in (g.decode().split() for g in r.lrange(f"{run}:grants", 0, -1))]

    wait_for(lambda: len(grants()) >= 10, "the first ten grants", timeout=90)
    first = min(bucket for bucket, _ in grants())
    wait_for(lambda: r.llen(f"{run}:runs") >= SENT, "every job run", timeout=200)
    granted = grants()
    runs = [line.decode().split() for line in r.lrange(f"{run}:runs", 0, -1)]

    # Every run was granted once, by one of the two worker processes, and ran once.
    assert len(granted) == SENT
    assert sorted(m for m, *_ in runs) == sorted(ids)
    assert len({pid for _, pid in granted}) == 2, granted
    # Ten in the first minute, the rest only once that minute had passed: in any 60 consecutive one-second
    # buckets the two processes together were granted at most ten (each alone would have been allowed ten).
    assert sum(1 for bucket, _ in granted if bucket < first + 60) == 10, sorted(granted)
    worst = max(sum(1 for b, _ in granted if start - 59 <= b <= start) for start, _ in granted)
    assert worst == 10
    # Delayed, not failed: the late ones were deferred (re-enqueued with a delay), and nothing was dead-lettered.
    assert sum(1 for *_, deferrals, _ in runs if int(deferrals) > 0) >= SENT - 10
    assert message_ids_in(env["RABBITMQ_URL"], "etl.XQ") == []
