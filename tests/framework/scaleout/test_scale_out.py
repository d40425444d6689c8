"""Scale-out proof: three worker processes and two schedulers on one RabbitMQ act as one system."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import redis

from tests.support import ROOT, start, stop, wait_for
from tests.support.foreign import message_ids_in

pytestmark = [pytest.mark.rabbitmq, pytest.mark.redis, pytest.mark.slow]

MESSAGES = int(os.environ.get("SCALEOUT_MESSAGES", "10000"))


@pytest.fixture
def system(rabbitmq_url: str, redis_url: str, tmp_path: Path):
    run = uuid.uuid4().hex[:8]
    config = tmp_path / "jobs.yaml"
    config.write_text(
        "modules: [tests.framework.scaleout.jobs]\n"
        "jobs:\n"
        "  - id: tick\n    actor: scale_noop\n    args: [-1]\n    interval: {seconds: 1}\n    overlap: allow\n"
    )
    env = {
        "RABBITMQ_URL": rabbitmq_url, "REDIS_URL": redis_url, "SCALEOUT_REDIS_URL": redis_url,
        "SCALEOUT_RUN": run, "DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3",
        "JOBS_CONFIG": str(config), "METRICS_DIR": str(tmp_path / "metrics"), "PYTHONUNBUFFERED": "1",
    }
    procs = []
    for i in range(3):  # three worker "hosts", each one process
        procs.append(start(["-m", "dramatiq", "broker_jobs.actors", "tests.framework.scaleout.jobs", "--processes", "1",
                            "--threads", "4", "--queues", "scaleout"],
                           {**env, "METRICS_PORT": str(20100 + i)}, tmp_path / f"worker{i}.log"))
    for i in range(2):  # two schedulers, one leader
        procs.append(start(["-m", "broker_jobs", "scheduler"], {**env, "METRICS_PORT": str(20200 + i)},
                           tmp_path / f"scheduler{i}.log"))
    yield env, redis.Redis.from_url(redis_url), run, procs[:3]
    for proc in procs:
        stop(proc)
    for log in tmp_path.glob("*.log"):
        text = log.read_text(errors="replace")
        assert "PRECONDITION_FAILED" not in text, log.name


def explain(r: redis.Redis, run: str, ids: list[str], env: dict[str, str]) -> str:
    """Each execution of ``ids`` (worker, time, redelivered flag, retries) and their worker log lines."""
    wanted = set(ids)
    runs = [line for line in map(bytes.decode, r.lrange(f"{run}:noop:runs", 0, -1)) if line.split()[0] in wanted]
    logs = Path(env["DATABASE_URL"].removeprefix("sqlite:///")).parent.glob("*.log")
    lines = [f"{log.name}: {line}" for log in logs for line in log.read_text(errors="replace").splitlines()
             if any(i in line for i in wanted) or "error" in line.lower() or "WARNING" in line]
    return "executions:\n" + "\n".join(runs) + "\nlog lines:\n" + "\n".join(lines[-60:])


def test_every_message_runs_exactly_once_spread_over_the_workers_and_the_rate_limit_is_global(system):
    env, r, run, workers = system
    sender = (
        "import sys\n"
        "from broker_jobs.actors import broker\n"
        "from tests.framework.scaleout.jobs import scale_noop, scale_limited\n"
        f"ids = [scale_noop.send(i).message_id for i in range({MESSAGES})]\n"
        "ids += [scale_limited.send(i).message_id for i in range(12)]\n"
        "sys.stdout.write('\\n'.join(ids))\n"
    )
    sent = subprocess.run([sys.executable, "-c", sender], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert sent.returncode == 0, sent.stderr[-2000:]
    ids = sent.stdout.split()
    assert len(set(ids)) == MESSAGES + 12

    def done() -> bool:
        noop = r.hlen(f"{run}:noop:ids")
        return noop >= MESSAGES and r.hlen(f"{run}:limited:ids") >= 12

    wait_for(done, "every message executed", timeout=300)
    for worker in workers:  # SIGTERM: jobs in flight finish, prefetched messages go back to the queue
        stop(worker, timeout=60)
    # Every message a worker held is now counted or back in a queue: a sent one there would run twice.
    waiting = {m for q in ("scaleout", "scaleout.DQ") for m in message_ids_in(env["RABBITMQ_URL"], q)}
    assert not waiting & set(ids), f"sent, executed, and queued again: {len(waiting & set(ids))}"

    counts = {k.decode(): int(v) for k, v in r.hgetall(f"{run}:noop:ids").items()}
    sent_noop = set(ids[:MESSAGES])
    executed = {k for k in counts if k in sent_noop}
    assert executed == sent_noop, f"lost: {len(sent_noop - executed)}"
    doubled = [k for k in executed if counts[k] != 1]
    assert doubled == [], explain(r, run, doubled, env)

    # Load spreads: three worker processes, each did a real share.
    per_pid = [int(v) for v in r.hgetall(f"{run}:noop:pids").values()]
    assert len(per_pid) == 3 and min(per_pid) >= 0.1 * sum(per_pid), per_pid

    # The schedule ticks every second; each slot ran once, whichever scheduler led.
    ticks = [k for k in counts if k not in sent_noop]
    assert ticks and all(counts[k] == 1 for k in ticks)

    # The rate limit (4 per 2 s) holds across the three processes.  Dramatiq's window limiter counts whole
    # seconds of the moment it admits a run: the 5th run after any run is admitted at least 2 buckets later,
    # i.e. more than 1 s after it.  The job body records its start a little after admission (under 0.5 s, even
    # on a loaded machine), so between any run and the 4th after it more than 0.5 s pass.  A limit kept per
    # process (three times 4 at once) starts the 12 runs within a fraction of a second and fails this.
    times = sorted(float(t) for t in r.lrange(f"{run}:limited:times", 0, -1))
    assert len(times) == 12
    gaps = [later - first for first, later in zip(times, times[4:], strict=False)]
    assert min(gaps) > 0.5, [round(t - times[0], 3) for t in times]
    limited_pids = r.hgetall(f"{run}:limited:pids")
    assert len(limited_pids) >= 2
