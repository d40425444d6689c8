"""Scheduler burst and idle cost: N jobs due in the same slot, and N schedules waiting.

Burst: each scheduler is started a little before a slot with N jobs due at it;
the time from the slot to the N-th message in its queue is measured from
outside, by polling the queue depth (``queue_declare(passive=True)``, every
5 ms), so every scheduler is measured the same way.  Nothing consumes.  The
floor is raw pika publishing N durable messages in one transaction at the slot.

Idle: with N schedules all due hours later, the scheduler's CPU over a window
and its resident size, once its start-up is over.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pika
import psutil

from .common import BIN, PYTHON, BenchError, Run, start, stop, tree_cpu_seconds, tree_rss

POLL = 0.005


@dataclass(frozen=True)
class Scheduler:
    """A scheduler under test.

    Parameters:
      name: Short id.
      label: What the table shows.
      minute: Minute granularity (the slot must be a minute boundary).
      command: Builds its command line from the run's scratch directory.
      queue: Where its messages land.
    """

    name: str
    label: str
    minute: bool
    command: Callable[[Path], list[str]]
    queue: str
    confirms: str
    ready: str = "[bench] ready"


def _bj_command(workdir: Path) -> list[str]:
    from .peers import bj_sched

    return bj_sched.command(workdir)


SCHEDULERS: dict[str, Scheduler] = {
    "broker_jobs": Scheduler("broker_jobs", "broker-jobs scheduler", False, _bj_command, "default",
                             "one transaction per batch", ready="leads (fencing token"),
    "apscheduler": Scheduler("apscheduler", "APScheduler 3 + .send()", False,
                             lambda _w: [PYTHON, "-m", "benchmarks.peers.aps_sched"], "bench_sched", "none"),
    "periodiq": Scheduler("periodiq", "periodiq", True,
                          lambda _w: [str(BIN / "periodiq"), "benchmarks.peers.periodiq_sched"],
                          "bench_sched", "none"),
    "celery_beat": Scheduler("celery_beat", "celery beat", True,
                             lambda w: [str(BIN / "celery"), "-A", "benchmarks.peers.beat_sched", "beat",
                                        "-s", str(w / "celerybeat-schedule"), "-l", "WARNING",
                                        "--pidfile", str(w / "celerybeat.pid")],
                             "bench_sched", "none"),
}


@dataclass
class BurstResult:
    """One burst: milliseconds from the slot to the first and to the N-th message."""

    scheduler: str
    n: int
    first_ms: float | None = None
    last_ms: float | None = None
    rss_mib: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the JSON results."""
        return asdict(self)


@dataclass
class IdleResult:
    """An idle scheduler holding N schedules: CPU share of one core and resident size."""

    scheduler: str
    n: int
    seconds: float
    cpu_percent: float | None = None
    rss_mib: float | None = None
    startup_s: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the JSON results."""
        return asdict(self)


class QueueDepth:
    """Reads a queue's message count; a queue not declared yet counts 0."""

    def __init__(self, url: str, queue: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(url))
        self.queue = queue
        self.channel = self.connection.channel()

    def __call__(self) -> int:
        try:
            return int(self.channel.queue_declare(self.queue, passive=True).method.message_count)
        except pika.exceptions.ChannelClosedByBroker:  # 404: nobody declared it yet
            self.channel = self.connection.channel()
            return 0

    def keepalive(self) -> None:
        """Serve heartbeats (a blocking connection does it only inside pika calls)."""
        self.connection.process_data_events(0)

    def close(self) -> None:
        """Close the connection."""
        if self.connection.is_open:
            self.connection.close()


def next_slot(minute: bool, lead: float) -> float:
    """The first whole second (or minute) at least ``lead`` seconds from now, as epoch seconds."""
    unit = 60 if minute else 1
    return math.ceil((time.time() + lead) / unit) * unit


def _own_files(name: str, workdir: Path) -> dict[str, str]:
    if name != "broker_jobs":
        return {}
    from .peers import bj_sched

    return bj_sched.environment(workdir)


#: Start-up seconds seen per scheduler and size: the next burst starts that much earlier.
_startup: dict[tuple[str, int], float] = {}


def _lead(name: str, n: int) -> float:
    """Seconds from start to slot: the start-up expected for ``n`` schedules, with a margin.

    Start-up is a fixed part plus a part per schedule (periodiq declares an
    actor each, broker-jobs parses a YAML entry each): extrapolated linearly
    from the two largest sizes seen, or 3 ms per schedule from one.
    """
    seen = sorted((size, s) for (who, size), s in _startup.items() if who == name)
    expected = 0.0
    if seen:
        size, took = seen[-1]
        slope = 0.003
        if len(seen) > 1 and seen[-1][0] > seen[-2][0]:
            slope = max(0.001, (took - seen[-2][1]) / (size - seen[-2][0]))
        expected = took + max(0, n - size) * slope
    return max(5.0 + n / 1000, expected * 1.3 + 3)


def _wait_ready(proc: Any, log: Path, marker: str, until: float) -> float | None:
    """Seconds until ``marker`` shows in ``log``; None if not by ``until`` (epoch)."""
    began = time.time()
    while time.time() < until:
        if proc.poll() is not None:
            raise BenchError(f"scheduler exited with code {proc.returncode} during start-up")
        if log.exists() and marker in log.read_text(errors="replace"):
            return time.time() - began
        time.sleep(0.1)
    return None


def _watch(depth: QueueDepth, n: int, slot: float, deadline: float,
           proc: Any | None = None) -> tuple[float | None, float | None]:
    first = last = None
    while time.time() < deadline:
        now = time.time()
        if now < slot - 0.5:
            if proc is not None and proc.poll() is not None:
                raise BenchError(f"scheduler exited with code {proc.returncode} before the slot")
            depth.keepalive()
            time.sleep(0.05)
            continue
        count = depth()
        stamp = time.time()
        if count and first is None:
            first = stamp
        if count >= n:
            last = stamp
            break
        time.sleep(POLL)
    return first, last


def burst(run: Run, name: str, n: int, timeout: float = 240.0) -> BurstResult:
    """Start ``name`` with ``n`` jobs due at the next usable slot; time the slot to the N-th message.

    A scheduler not ready before its slot is stopped and started again with a
    longer lead (its start-up time, measured, plus a margin), once.
    """
    result = BurstResult(name, n)
    for attempt in range(2):
        late = _burst_once(run, name, n, timeout, result, attempt)
        if not late:
            break
    return result


def _burst_once(run: Run, name: str, n: int, timeout: float, result: BurstResult, attempt: int) -> bool:
    """One try; True when the scheduler was not ready in time (then retry)."""
    sched = SCHEDULERS[name]
    queue = f"{sched.queue}_{n}" if sched.queue != "default" else sched.queue
    workdir = run.workdir / f"{name}-{n}-{attempt}"
    workdir.mkdir(exist_ok=True)
    slot = next_slot(sched.minute, _lead(name, n))
    env = run.env(BENCH_SCHED_N=str(n), BENCH_SCHED_SLOT=str(slot), BENCH_SCHED_QUEUE=queue,
                  **_own_files(name, workdir))
    log = workdir / "scheduler.log"
    depth: QueueDepth | None = None
    proc = None
    try:
        if name == "broker_jobs":
            from .peers import bj_sched

            bj_sched.prepare(run, workdir, n, slot)
        proc = start(sched.command(workdir), env, log)
        took = _wait_ready(proc, log, sched.ready, slot - 0.3)
        if took is None:
            took = _wait_ready(proc, log, sched.ready, time.time() + timeout)
            if took is not None:
                _startup[(name, n)] = took + 0.3
            result.error = f"not ready before the slot (start-up {took or timeout:.0f} s)"
            return attempt == 0 and took is not None
        _startup[(name, n)] = took
        depth = QueueDepth(run.amqp_url, queue)
        if depth():
            raise BenchError(f"queue {queue} not empty before the slot")
        first, last = _watch(depth, n, slot, slot + timeout, proc)
        result.first_ms = (first - slot) * 1000 if first else None
        if last is None:
            raise BenchError(f"timed out: {depth()}/{n} published {timeout:.0f} s after the slot")
        result.last_ms = (last - slot) * 1000
        result.rss_mib = tree_rss(proc.pid)[0] / 2**20
        result.error = None
    except (BenchError, pika.exceptions.AMQPError, OSError) as exc:
        result.error = str(exc) or type(exc).__name__
    finally:
        if proc is not None:
            stop(proc)
        if depth is not None:
            depth.close()
        _purge(run, queue)
    return False


def _purge(run: Run, queue: str) -> None:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(run.amqp_url))
        try:
            connection.channel().queue_delete(queue)
        finally:
            connection.close()
    except pika.exceptions.AMQPError:
        pass


def floor(run: Run, n: int) -> BurstResult:
    """Raw pika at the slot: N durable messages in one transaction; ms from the slot to the commit."""
    result = BurstResult("pika_tx", n)
    queue = f"bench_floor_{n}"
    connection = pika.BlockingConnection(pika.URLParameters(run.amqp_url))
    try:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True)
        channel.tx_select()
        properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")
        slot = next_slot(False, 0.2)
        time.sleep(max(0.0, slot - time.time()))
        started = time.time()
        for i in range(n):
            channel.basic_publish("", queue, b'{"args": [%d]}' % i, properties)
        channel.tx_commit()
        done = time.time()
        result.first_ms, result.last_ms = (started - slot) * 1000, (done - slot) * 1000
        channel.queue_delete(queue)
    except pika.exceptions.AMQPError as exc:
        result.error = str(exc) or type(exc).__name__
    finally:
        connection.close()
    return result


def idle(run: Run, name: str, n: int, seconds: float = 30.0, warmup_timeout: float = 120.0) -> IdleResult:
    """CPU share and RSS of ``name`` holding ``n`` schedules due hours later, after its start-up."""
    sched = SCHEDULERS[name]
    result = IdleResult(name, n, seconds)
    workdir = run.workdir / f"{name}-idle-{n}"
    workdir.mkdir(exist_ok=True)
    slot = next_slot(True, 3 * 3600)
    env = run.env(BENCH_SCHED_N=str(n), BENCH_SCHED_SLOT=str(slot), BENCH_SCHED_QUEUE=f"bench_idle_{name}",
                  **_own_files(name, workdir))
    proc = None
    try:
        if name == "broker_jobs":
            from .peers import bj_sched

            bj_sched.prepare(run, workdir, n, slot)
        began = time.monotonic()
        proc = start(sched.command(workdir), env, workdir / "scheduler.log")
        if _wait_ready(proc, workdir / "scheduler.log", sched.ready, time.time() + warmup_timeout) is None:
            raise BenchError(f"not ready {warmup_timeout:.0f} s after start")
        # Start-up is over when a second passes with under 5% of a core used.
        before = 0.0
        while True:
            time.sleep(1.0)
            if proc.poll() is not None:
                raise BenchError(f"scheduler exited with code {proc.returncode} during start-up")
            used = tree_cpu_seconds(proc.pid)
            if used - before < 0.05 and used > 0:
                break
            before = used
            if time.monotonic() - began > warmup_timeout:
                raise BenchError(f"still busy {warmup_timeout:.0f} s after start")
        result.startup_s = time.monotonic() - began - 1.0
        cpu0, t0 = tree_cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        if proc.poll() is not None:
            raise BenchError(f"scheduler exited with code {proc.returncode} while idle")
        cpu1, t1 = tree_cpu_seconds(proc.pid), time.monotonic()
        result.cpu_percent = (cpu1 - cpu0) / (t1 - t0) * 100
        result.rss_mib = tree_rss(proc.pid)[0] / 2**20
    except (BenchError, psutil.Error, OSError) as exc:
        result.error = str(exc) or type(exc).__name__
    finally:
        if proc is not None:
            stop(proc)
    return result
