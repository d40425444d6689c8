"""Classic against quorum queues on a three-node RabbitMQ cluster, and the recovery after a node kill.

A private cluster (tests/support/cluster.py: three nodes on loopback, everything
under the run's scratch directory) serves both measurements:

1. throughput: the same no-op jobs as the throughput section (broker_jobs, two
   worker processes, publisher confirms), once with ``QUEUE_TYPE=classic`` and
   once with ``QUEUE_TYPE=quorum``, each on a vhost of its own, every process
   given the three nodes (``RABBITMQ_URLS``);
2. recovery (quorum): N jobs queued, the workers started, the node holding the
   queue's leader SIGKILLed a third of the way: the seconds from the kill until
   jobs run again, and whether every job ran.

A classic queue lives on one node: killed, its jobs wait until that node is back.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.support.cluster import RabbitCluster

from . import throughput
from .common import PYTHON, BenchError, Run, redis_client, run_json, start, stop, wait_until
from .peers import PEERS

#: Messages two worker processes may hold at once (8 threads, prefetch 2 per thread, one band in use) plus margin.
HELD = 2 * 8 * 2 + 16


def _env(cluster: RabbitCluster, vhost: str, queue_type: str) -> dict[str, str]:
    return {"RABBITMQ_URLS": ",".join(url + "?heartbeat=5" for url in cluster.urls(vhost)),
            "QUEUE_TYPE": queue_type}


def recovery(run: Run, cluster: RabbitCluster, n: int, timeout: float) -> dict[str, Any]:
    """Kill the leader's node a third of the way through ``n`` jobs; seconds until jobs run again."""
    peer = PEERS["broker_jobs"]
    vhost = f"bjbench-{run.run_id}-recovery"
    cluster.add_vhost(vhost)
    env = run.env(**_env(cluster, vhost, "quorum"))
    key = run.key("cluster", "recovery")
    redis = redis_client(run.redis_url)
    deadline = time.monotonic() + timeout
    row: dict[str, Any] = {"n": n, "recovery_s": None, "ran": None, "error": None}
    worker = None
    try:
        run_json([PYTHON, "-m", "benchmarks.producer", peer.name, "--key", key, "--n", str(n)], env,
                 max(1.0, deadline - time.monotonic()), run.workdir / "cluster-producer.log")
        leader = cluster.leader_of(vhost, "default")  # before the run: rabbitmqctl takes a second or two
        worker = start(peer.worker_command(2), env, run.workdir / "cluster-recovery-worker.log")

        def count() -> int:
            return int(redis.get(key) or 0)

        if not wait_until(lambda: count() >= n // 3, max(1.0, deadline - time.monotonic()), interval=0.02):
            raise BenchError(f"a third of the jobs never ran ({count()}/{n})")
        at_kill, killed = count(), time.monotonic()
        leader.kill()
        # What the workers held when their node died still runs (its ack is lost, it runs again later):
        # recovered once more than that has run.
        if not wait_until(lambda: count() > at_kill + HELD, max(1.0, deadline - time.monotonic()), interval=0.02):
            raise BenchError(f"no job ran after the kill ({count()}/{n})")
        row["recovery_s"] = round(time.monotonic() - killed, 2)
        row["killed"] = leader.node
        wait_until(lambda: count() >= n, max(1.0, deadline - time.monotonic()), interval=0.1)
        row["ran"] = count()
        cluster.restart(leader)
    except BenchError as exc:
        row["error"] = str(exc)
    finally:
        if worker is not None:
            stop(worker)
    return row


def measure(run: Run, n: int, timeout: float) -> dict[str, Any]:
    """Boot the cluster, measure both queue types and the recovery; never raises for a measurement's failure."""
    root = Path(run.workdir) / "cluster"
    root.mkdir(parents=True, exist_ok=True)
    cluster = RabbitCluster(root)
    result: dict[str, Any] = {"throughput": [], "recovery": None}
    try:
        began = time.monotonic()
        cluster.start()
        result["boot_s"] = round(time.monotonic() - began, 1)
        for queue_type in ("classic", "quorum"):
            name = f"bjbench-{run.run_id}-{queue_type}"
            cluster.add_vhost(name)
            row = throughput.measure(run, "broker_jobs", n, 2, timeout=timeout, env=_env(cluster, name, queue_type),
                                     tag=queue_type)
            result["throughput"].append({**row.as_dict(), "queue_type": queue_type})
        result["recovery"] = recovery(run, cluster, n, timeout)
    except Exception as exc:  # noqa: BLE001 - a cluster that cannot boot is reported in the table
        result["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        cluster.stop()
    return result


def markdown(section: dict[str, Any]) -> list[str]:
    """The results page's lines for this section."""
    out = ["## Classic against quorum queues (three-node cluster)", "",
           f"A private three-node RabbitMQ cluster on this machine (booted in {section.get('boot_s', '?')} s); "
           "broker_jobs, two worker processes, every process given the three nodes.", "",
           "| QUEUE_TYPE | producer /s | consumer /s | error |", "|---|---:|---:|---|"]
    for row in section.get("throughput", []):
        out.append(f"| {row['queue_type']} | {_f(row.get('producer_rate'))} | {_f(row.get('consumer_rate'))} "
                   f"| {row.get('error') or ''} |")
    rates = {r["queue_type"]: r.get("consumer_rate") for r in section.get("throughput", [])}
    if rates.get("classic") and rates.get("quorum"):
        out += ["", f"Quorum ÷ classic consumer rate: {rates['quorum'] / rates['classic']:.2f} ×."]
    rec = section.get("recovery") or {}
    if rec:
        out += ["", f"Recovery (quorum, {rec.get('n', 0):,} jobs): the leader's node SIGKILLed a third of the way, "
                    f"jobs running again after {_f(rec.get('recovery_s'), '{:.1f} s')}; "
                    f"{rec.get('ran') if rec.get('ran') is not None else '?'} executions for {rec.get('n')} jobs"
                    + (f" (error: {rec['error']})" if rec.get("error") else "") + "."]
    if section.get("error"):
        out += ["", f"Cluster section failed: {section['error']}"]
    return [*out, ""]


def _f(value: Any, fmt: str = "{:,.0f}") -> str:
    return "–" if value is None else fmt.format(value)
