"""Worker throughput, latency and memory: one peer, one worker size, one measurement.

1. N jobs published with no consumer running: the producer rate.
2. The workers started: the consumer rate, from the first to the last counter
   increment (start-up excluded).
3. Optionally, with the workers still up, jobs sent at a steady rate: p50/p99
   of send-to-start latency.
4. The resident size of the worker processes, then the workers stopped.

Every step has a deadline: a peer that hangs is reported as timed out and the
run goes on.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from dataclasses import asdict, dataclass
from typing import Any

from .common import PYTHON, BenchError, Run, redis_client, run_json, start, stop, tree_rss, wait_until
from .peers import PEERS, Peer


@dataclass
class WorkerResult:
    """What one throughput measurement found (rates per second, latencies in ms, RSS in MiB)."""

    peer: str
    processes: int
    n: int
    producer_rate: float | None = None
    consumer_rate: float | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_samples: int = 0
    rss_max_mib: float | None = None
    rss_total_mib: float | None = None
    history_rows: int | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for the JSON results."""
        return asdict(self)


def median_round(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median consumer rate, carrying every round's rate and the first
    round's latency (only the first round measures it)."""
    rated = sorted((r for r in rows if r.get("consumer_rate")), key=lambda r: r["consumer_rate"])
    chosen = dict(rated[len(rated) // 2] if rated else rows[0])
    chosen["consumer_rates"] = [r.get("consumer_rate") for r in rows]
    first = rows[0]
    for name in ("latency_p50_ms", "latency_p99_ms", "latency_samples"):
        chosen[name] = first.get(name)
    return chosen


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _count(redis: Any, key: str) -> int:
    return int(redis.get(key) or 0)


def _wait_count(redis: Any, key: str, n: int, worker: subprocess.Popen[bytes], deadline: float, what: str) -> None:
    def done() -> bool:
        if worker.poll() is not None:
            raise BenchError(f"worker exited with code {worker.returncode} during {what}")
        return _count(redis, key) >= n

    if not wait_until(done, max(0.0, deadline - time.monotonic()), interval=0.02):
        raise BenchError(f"timed out during {what}: {_count(redis, key)}/{n} jobs ran")


def _history_rows(run: Run) -> int | None:
    path = run.workdir / "history.sqlite3"
    if not path.exists():
        return None
    with sqlite3.connect(path) as conn:
        return int(conn.execute("select count(*) from job_runs where actor = 'bench_noop'").fetchone()[0])


def measure(run: Run, peer: Peer | str, n: int, processes: int = 2, *, latency_rate: float = 0.0,
            latency_seconds: float = 0.0, timeout: float = 180.0, env: dict[str, str] | None = None,
            tag: str = "") -> WorkerResult:
    """Measure one peer with ``processes`` worker processes; never raises for a peer's failure.

    Parameters:
      run: The run (vhost, Redis prefix).
      peer: The peer or its name.
      n: Jobs in the burst.
      processes: Worker processes.
      latency_rate: Jobs per second of the latency phase (0: no latency phase).
      latency_seconds: Length of the latency phase.
      timeout: Hard limit for the whole measurement, in seconds.
      env: Extra environment variables of the producer and the workers.
      tag: Distinguishes repeated measurements of one peer and size (keys, logs).
    """
    peer = PEERS[peer] if isinstance(peer, str) else peer
    result = WorkerResult(peer.name, processes, n)
    deadline = time.monotonic() + timeout
    redis = redis_client(run.redis_url)
    key = run.key(peer.name, f"p{processes}{tag}")
    env = run.env(**{**dict(peer.env), **(env or {})})
    logs = run.workdir
    worker: subprocess.Popen[bytes] | None = None
    try:
        produced = run_json([PYTHON, "-m", "benchmarks.producer", peer.name, "--key", key, "--n", str(n)],
                            env, max(1.0, deadline - time.monotonic()), logs / f"{peer.name}-producer.log")
        result.producer_rate = produced["rate"]
        worker = start(peer.worker_command(processes), env, logs / f"{peer.name}-p{processes}{tag}-worker.log")
        _wait_count(redis, key, n, worker, deadline, "the burst")
        # The job that brought the counter to n stamps ":last" just after its INCR.
        wait_until(lambda: redis.exists(key + ":last"), 5.0)
        first, last = float(redis.get(key + ":first")), float(redis.get(key + ":last") or time.time())
        result.consumer_rate = (n - 1) / (last - first) if last > first else None
        if latency_rate and latency_seconds:
            lat_key = key + ":steady"
            sent = run_json([PYTHON, "-m", "benchmarks.producer", peer.name, "--key", lat_key,
                             "--rate", str(latency_rate), "--seconds", str(latency_seconds)],
                            env, max(1.0, deadline - time.monotonic()), logs / f"{peer.name}-producer.log")
            _wait_count(redis, lat_key, int(sent["sent"]), worker, deadline, "the latency phase")
            samples = [float(v) * 1000 for v in redis.lrange(lat_key + ":lat", 0, -1)]
            result.latency_samples = len(samples)
            if samples:
                result.latency_p50_ms = percentile(samples, 0.50)
                result.latency_p99_ms = percentile(samples, 0.99)
        biggest, total = tree_rss(worker.pid)
        result.rss_max_mib, result.rss_total_mib = biggest / 2**20, total / 2**20
    except BenchError as exc:
        result.error = str(exc)
    finally:
        if worker is not None:
            stop(worker)
    if peer.name == "broker_jobs":
        try:
            result.history_rows = _history_rows(run)
        except sqlite3.Error:
            result.history_rows = None
    return result
