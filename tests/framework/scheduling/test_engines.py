"""The three producers side by side on real RabbitMQ with a real worker: ``broker-jobs scheduler`` (our engine),
``broker-jobs scheduler --engine apscheduler`` and an application's own APScheduler calling ``enqueue``.

They publish the same jobs; every slot runs once (the worker's fire-id dedup drops the copies), and each of them
publishes slots the others published too (so the dedup is what is proved, not a lucky split).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support import Process, free_port, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

JOBS = """\
modules: [tests.framework.scheduling.aps_jobs]
jobs:
  - {id: beat, actor: aps_beat, interval: 1, misfire: run_all, overlap: allow, kwargs: {tag: interval}}
  - {id: even, actor: aps_beat, cron: "*/2 * * * * *", overlap: allow, kwargs: {tag: cron}}
"""

# An application with its own APScheduler: `enqueue` handed to add_job, on the same slots (epoch-anchored).
FOREIGN = """\
import signal, threading, logging
from datetime import datetime, timezone
from apscheduler.schedulers.background import BackgroundScheduler
import broker_jobs.app.main  # the built-in jobs' loader, as the console script registers it
from broker_jobs.scheduling.enqueue import enqueue
logging.basicConfig(level=logging.INFO)
sched = BackgroundScheduler(timezone="UTC")
sched.add_job(enqueue, "interval", seconds=1, args=["beat"], start_date=datetime(1970, 1, 1, tzinfo=timezone.utc))
sched.add_job(enqueue, "cron", second="*/2", args=["even"])
sched.start()
print("foreign scheduler started", flush=True)
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
stop.wait()
sched.shutdown()
"""


def published(process: Process, job_id: str) -> list[str]:
    """The fire ids ``process`` logged as published for ``job_id``."""
    ours = re.findall(rf"job {job_id} (?:fired|caught up) slot (\S+)", process.text())
    foreign = re.findall(rf"job {job_id} published {job_id}@(\S+)", process.text())
    return [f"{job_id}@{slot}" for slot in ours + foreign]


def test_three_producers_side_by_side_run_each_slot_once(rabbitmq_url, tmp_path: Path):
    (tmp_path / "jobs.yaml").write_text(JOBS)
    database = f"sqlite:///{tmp_path}/shared.sqlite3"
    env = {"RABBITMQ_URL": rabbitmq_url, "JOBS_CONFIG": str(tmp_path / "jobs.yaml"), "DATABASE_URL": database,
           "LOG_LEVEL": "INFO", "REDIS_URL": "", "METRICS_DIR": str(tmp_path / "metrics"),
           "METRICS_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}
    worker = Process(["-m", "dramatiq", "broker_jobs.actors", "tests.framework.scheduling.aps_jobs",
                      "--processes", "1", "--threads", "4", "--queues", "aps_it"], env, tmp_path / "worker.log")
    native = Process(["-m", "broker_jobs", "scheduler"], env, tmp_path / "native.log")
    aps = Process(["-m", "broker_jobs", "scheduler", "--engine", "apscheduler"], env, tmp_path / "aps.log")
    foreign = Process(["-c", FOREIGN], env, tmp_path / "foreign.log")
    producers = [native, aps, foreign]
    try:
        worker.start()
        native.start().wait_for_log(r"\[scheduler\] instance \S+ started", timeout=60)
        aps.start().wait_for_log(r"\[apscheduler\] instance \S+ started", timeout=60)
        foreign.start().wait_for_log("foreign scheduler started", timeout=60)

        def overlapping() -> bool:
            sets = [set(published(p, "beat")) | set(published(p, "even")) for p in producers]
            return len(sets[0] & sets[1] & sets[2]) >= 4

        wait_for(overlapping, "four slots published by all three producers", 60)
        for producer in producers:
            assert producer.stop(timeout=30) == 0, producer.text()[-2000:]
        messages = Counter(f for p in producers for job_id in ("beat", "even") for f in published(p, job_id))
        engine = create_engine(database)

        def runs() -> list[tuple[str, str]]:
            with engine.connect() as conn:
                return [(r.fire_id, r.status) for r in conn.execute(text(
                    "SELECT fire_id, status FROM job_runs WHERE actor = 'aps_beat'"))]

        wait_for(lambda: len([r for r in runs() if r[1] in ("succeeded", "skipped")]) == sum(messages.values()),
                 "the worker to handle every published message", 60)
    finally:
        for process in [*producers, worker]:
            process.stop(timeout=30)
    done = runs()
    succeeded = Counter(f for f, status in done if status == "succeeded")
    skipped = Counter(f for f, status in done if status == "skipped")
    assert set(succeeded) == set(messages)  # every slot published ran...
    assert max(succeeded.values()) == 1  # ...once
    assert sum(skipped.values()) == sum(messages.values()) - len(messages) > len(messages)  # the copies dropped
    tags = {f.split("@")[0] for f in succeeded}
    assert tags == {"beat", "even"}
    assert "PRECONDITION_FAILED" not in worker.text()


def test_periodiq_beside_our_engine_runs_a_minute_slot_once(rabbitmq_url, tmp_path: Path):
    (tmp_path / "jobs.yaml").write_text("modules: [tests.framework.scheduling.aps_jobs]\njobs:\n"
                                        "  - {id: minute, actor: aps_beat, cron: '* * * * *', overlap: allow,"
                                        " kwargs: {tag: periodiq}}\n")
    database = f"sqlite:///{tmp_path}/shared.sqlite3"
    env = {"RABBITMQ_URL": rabbitmq_url, "JOBS_CONFIG": str(tmp_path / "jobs.yaml"), "DATABASE_URL": database,
           "LOG_LEVEL": "INFO", "REDIS_URL": "", "METRICS_DIR": str(tmp_path / "metrics"), "TZ": "UTC",
           "METRICS_PORT": str(free_port()), "PYTHONUNBUFFERED": "1", "BROKER_JOBS_PERIODIQ": "1"}
    worker_env = {k: v for k, v in env.items() if k != "BROKER_JOBS_PERIODIQ"}
    worker = Process(["-m", "dramatiq", "broker_jobs.actors", "tests.framework.scheduling.aps_jobs",
                      "--processes", "1", "--threads", "2", "--queues", "aps_it"], worker_env, tmp_path / "worker.log")
    native = Process(["-m", "broker_jobs", "scheduler"], worker_env, tmp_path / "native.log")
    periodiq = Process([str(Path(sys.executable).parent / "periodiq"), "broker_jobs.actors"], env,
                       tmp_path / "periodiq.log")
    engine = create_engine(database)

    def runs() -> list[tuple[str, str]]:
        with engine.connect() as conn:
            return [(r.fire_id, r.status) for r in conn.execute(text(
                "SELECT fire_id, status FROM job_runs WHERE actor = 'aps_beat'"))]

    try:
        worker.start()
        native.start().wait_for_log(r"\[scheduler\] instance \S+ started", timeout=60)
        periodiq.start().wait_for_log(r"periodic__minute", timeout=60)

        def both() -> set[str]:  # periodiq also fires the minute it starts in, before our engine ran
            return (set(re.findall(r"\[periodiq\] job minute fired slot (\S+)", periodiq.text()))
                    & set(re.findall(r"\[scheduler\] job minute fired slot (\S+)", native.text())))

        [slot] = sorted(wait_for(both, "a minute slot published by both", 130))[:1]
        fire_id = f"minute@{slot}"
        wait_for(lambda: sorted(s for f, s in runs() if f == fire_id) == ["skipped", "succeeded"],
                 "one run and one dropped copy of the minute slot", 60)
    finally:
        for process in (periodiq, native, worker):
            process.stop(timeout=30)
