"""Graceful worker shutdown: SIGTERM to a ``dramatiq`` worker finishes what runs, up to a deadline.

What Dramatiq 2.2 does on SIGTERM to the master (as systemd ``KillMode=mixed``,
Docker and Kubernetes send it): the master forwards SIGTERM to its worker
processes; each notices within a second and calls ``Worker.stop(timeout=
--worker-shutdown-timeout)``.  Worker threads take no new message and the stop
joins the running ones, one after the other, within the deadline (the consumers
keep receiving up to the prefetch limit meanwhile; those messages wait in memory,
out of other workers' reach, until the stop ends).  Then the
consumers close their connections: messages prefetched but not started, and
jobs still running, were never acked, so RabbitMQ puts them back; the process
exits and the still-running job threads (daemon threads) die with it.

Two departures from "finish in-flight jobs up to the deadline":

* ``dramatiq.common.join_all`` subtracts the *total* time elapsed from the
  *remaining* timeout after each thread it joins, so the deadline shrinks as
  soon as one job ends during the stop: a job that needs less than the deadline
  can be killed (and runs again).  ``broker_jobs.compat`` replaces it with a
  fixed deadline; the last test below pins that.
* A second SIGTERM makes a Dramatiq worker process exit at once.  SIGTERM sent
  to the whole process group (honcho, Heroku, ``kill -- -PGID``, systemd's
  default ``KillMode=control-group``) reaches each worker process twice,
  directly and forwarded by the master; ``broker_jobs.compat.OneStop`` counts
  the two as one stop.  ``test_group_stop.py`` stops workers that way.

The tests time what they name from the signal (events the jobs record, messages
back in RabbitMQ), never through the worker's exit, and assert no upper bound on
how fast a loaded machine gets there.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest

from tests.support import (
    count_events,
    events,
    free_port,
    publish,
    purge,
    queue_depth,
    start,
    stop,
    wait_for,
    wait_for_log,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

QUEUE = "scaleout_shutdown"


def worker(env: dict[str, str], log: Path, threads: int, deadline_ms: int):  # type: ignore[no-untyped-def]
    """``dramatiq`` with one worker process, as deployed, with a shutdown deadline."""
    return start(["-m", "dramatiq", "broker_jobs.actors", "tests.framework.scaleout.jobs", "--processes", "1",
                  "--threads", str(threads), "--queues", QUEUE, "--worker-shutdown-timeout", str(deadline_ms)],
                 {**env, "METRICS_PORT": str(free_port())}, log)


def worker_env(url: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "events").mkdir()
    return {"RABBITMQ_URL": url, "DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3",
            "METRICS_DIR": str(tmp_path / "metrics"), "SCALEOUT_EVENTS": str(tmp_path / "events"),
            "PYTHONUNBUFFERED": "1"}


THREADS = 4  # so Dramatiq prefetches 2 × 4 = 8 messages
DEADLINE_MS = 5000
SHORT_S = 3.0  # in flight at SIGTERM, ends well within the deadline
LONG_S = 120.0  # in flight at SIGTERM, killed (0.2 s when it runs again)
QUEUED = 12  # sent while the four threads are busy: 4 wait in the worker's memory, 8 in RabbitMQ


def test_sigterm_finishes_running_jobs_kills_the_overdue_one_and_leaves_the_rest_for_the_next_worker(
    rabbitmq_url: str, tmp_path: Path
):
    url, run = rabbitmq_url, uuid.uuid4().hex[:8]
    env = worker_env(url, tmp_path)

    def seen():  # type: ignore[no-untyped-def]
        return [e for e in events(tmp_path / "events") if e.key.startswith(run)]

    log_a = tmp_path / "worker-a.log"
    first, second = worker(env, log_a, THREADS, DEADLINE_MS), None
    try:
        wait_for_log(log_a, "Worker process is ready for action", first)
        # Four jobs occupy A's four threads: three short ones and one longer than the deadline.
        running = publish(url, QUEUE, "shutdown_job", [[f"{run}-short{i}", SHORT_S] for i in range(3)]
                          + [[f"{run}-long", LONG_S, 0.2]])
        short, long_ = running[:3], running[3]
        wait_for(lambda: len(count_events(seen(), "start")) == 4, "four jobs running", 30)
        pid_a = seen()[0].pid
        # Twelve more: A prefetches four of them (in memory, not started), eight stay in RabbitMQ.
        queued = publish(url, QUEUE, "shutdown_job", [[f"{run}-queued{i}", 0.2] for i in range(QUEUED)])
        wait_for(lambda: queue_depth(url, QUEUE) == QUEUED - (2 * THREADS - 4), "A prefetching four queued", 30)

        signalled_at = time.time()
        os.kill(first.pid, signal.SIGTERM)  # the master only, as systemd (KillMode=mixed), Docker, k8s do
        # Nothing acked that did not finish: the killed job and the twelve queued are all back.
        wait_for(lambda: queue_depth(url, QUEUE) == QUEUED + 1, "the killed job and the queued ones back",
                 DEADLINE_MS / 1000 + 60)
        back = time.time() - signalled_at
        assert first.wait(timeout=60) == 0, log_a.read_text()[-3000:]

        assert {e.pid for e in seen()} == {pid_a}
        assert count_events(seen(), "done") == {m: 1 for m in short}, "short jobs finish within the deadline"
        assert count_events(seen(), "start")[long_] == 1, "long job started"
        assert long_ not in count_events(seen(), "done"), "long job killed"
        assert not set(queued) & set(count_events(seen(), "start")), "no new job started after SIGTERM"
        assert max(e.at for e in seen() if e.kind == "done") > signalled_at, "short jobs ran on after SIGTERM"
        assert queue_depth(url, QUEUE) == QUEUED + 1 and queue_depth(url, QUEUE + ".XQ") == 0

        log_b = tmp_path / "worker-b.log"
        second = worker(env, log_b, THREADS, DEADLINE_MS)
        wait_for(lambda: {*queued, long_} <= set(count_events(seen(), "done")), "B finishing the rest", 120)
        # Once B has stopped, whatever it did not ack would be back in the queue: a duplicate to come
        # would show there.
        assert stop(second, timeout=60) == 0

        pid_b = next(e.pid for e in seen() if e.pid != pid_a)
        done = count_events(seen(), "done")
        assert set(done) == {*running, *queued}, "nothing lost"
        assert all(n == 1 for n in done.values()), "nothing finished twice"
        assert count_events(seen(), "done", pid_b) == {m: 1 for m in [*queued, long_]}
        assert count_events(seen(), "start")[long_] == 2, "the killed job ran again"
        assert all(n == 1 for m, n in count_events(seen(), "start").items() if m != long_), "nothing else did"
        assert queue_depth(url, QUEUE) == 0 and queue_depth(url, QUEUE + ".XQ") == 0
        print(f"SIGTERM to the killed job back in RabbitMQ: {back:.2f} s (deadline {DEADLINE_MS / 1000:g} s)")
    finally:
        stop(first)
        if second is not None:
            stop(second)
        purge(url, QUEUE)


class KilledBeforeDeadline(AssertionError):
    """A job that needed less than the shutdown deadline was killed."""


def test_every_job_that_ends_within_the_shutdown_deadline_is_allowed_to_finish(rabbitmq_url: str, tmp_path: Path):
    url, run = rabbitmq_url, uuid.uuid4().hex[:8]
    env = worker_env(url, tmp_path)
    deadline_s = 10.0
    # Once the stop begins, the job on the worker's first thread needs 4 s more, on the second 5 s,
    # on the third 7 s: all within the 10 s deadline, with 3 s to spare on a loaded machine.  Dramatiq's
    # own join_all would give the third thread 10 - 4 - 5 = 1 s (it ends 6 s into the stop).
    needs = [4.0, 5.0, 7.0]

    def seen():  # type: ignore[no-untyped-def]
        return [e for e in events(tmp_path / "events") if e.key.startswith(run)]

    log = tmp_path / "worker.log"
    proc = worker(env, log, len(needs), int(deadline_s * 1000))
    try:
        wait_for_log(log, "Worker process is ready for action", proc)
        sent = publish(url, QUEUE, "shutdown_after_stop", [[f"{run}-{i}", needs] for i in range(len(needs))])
        wait_for(lambda: len(count_events(seen(), "start")) == len(needs), "every thread busy", 30)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=deadline_s + 60) == 0
        exited_at = time.time()
        stopping = {e.message_id: int(e.kind.split(":")[1]) for e in seen() if e.kind.startswith("stopping:")}
        assert sorted(stopping.values()) == list(range(len(needs)))
        # Whatever did not finish was not acked: RabbitMQ has it back.
        done = count_events(seen(), "done")
        wait_for(lambda: queue_depth(url, QUEUE) == len(sent) - len(done), "unfinished jobs back in the queue", 30)

        began = min(e.at for e in seen() if e.kind.startswith("stopping:"))
        killed = sorted(stopping[m] for m in sent if m not in done)
        if killed:
            raise KilledBeforeDeadline(
                f"jobs on threads {killed} needed {[needs[r] for r in killed]} s of the {deadline_s:g} s deadline "
                f"after the stop began, yet the worker process exited {exited_at - began:.1f} s after it began"
            )
    finally:
        stop(proc)
        purge(url, QUEUE)
