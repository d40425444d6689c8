"""Graceful shutdown: a scheduler leader stopped with SIGTERM hands over at once.

Timed from the signal to the event itself, the standby's taking of the lease as the
lease row records it, never through the old leader's exit or a CLI round trip (each
costs seconds on a loaded machine and says nothing about the handover).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from pathlib import Path
from typing import NamedTuple

import pytest

from broker_jobs.scheduling.scheduler import LEASE_TTL
from tests.support import free_port, run_cli, start, stop, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]


class LeaseRow(NamedTuple):
    owner: str
    token: int
    expires_at: float  # seconds since the epoch, from the holder's clock


def status(env: dict[str, str]) -> dict:
    result = run_cli("jobs", "status", "--json", env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def lease(database: Path) -> LeaseRow | None:
    """The scheduler lease as the instances share it (``sched_leases``), read directly."""
    with sqlite3.connect(database, timeout=5) as conn:
        row = conn.execute("SELECT owner, token, expires_at FROM sched_leases WHERE name = 'scheduler'").fetchone()
    return LeaseRow(*row) if row else None


def test_a_leader_stopped_with_sigterm_releases_its_lease_and_the_standby_takes_over_before_it_expires(
    rabbitmq_url: str, tmp_path: Path
):
    config = tmp_path / "jobs.yaml"
    config.write_text("jobs:\n  - id: diag\n    actor: diagnostics\n    interval: {minutes: 30}\n")
    database = tmp_path / "state.sqlite3"
    env = {"RABBITMQ_URL": rabbitmq_url, "DATABASE_URL": f"sqlite:///{database}",
           "JOBS_CONFIG": str(config), "METRICS_DIR": str(tmp_path / "metrics")}
    procs = {}
    for i in range(2):
        proc = start(["-m", "broker_jobs", "scheduler"], {**env, "METRICS_PORT": str(free_port())},
                     tmp_path / f"scheduler{i}.log")
        procs[proc.pid] = proc
    try:
        wait_for(lambda: (s := status(env))["leader"] and s["alive"] == 2, "a leader and a standby", 60)
        old = lease(database)
        assert old is not None
        leader_pid = int(old.owner.split(":")[1])
        assert leader_pid in procs
        signalled_at = time.time()
        os.kill(leader_pid, signal.SIGTERM)
        # Read right before the signal, the old lease's expiry can only be earlier than the real one
        # (the leader may renew it once more): the comparison below errs on the strict side.
        new = wait_for(lambda: (row := lease(database)) is not None and row.owner != old.owner and row,
                       "the standby to take the lease", 30, every=0.05, ignore=(sqlite3.OperationalError,))
        # The standby wrote expires_at = its clock + LEASE_TTL when it took the lease; polled every
        # 0.05 s, the row is seen before its first renewal (every 2 s), and a renewal would only
        # make the takeover look later.
        taken_at = new.expires_at - LEASE_TTL
        assert new.token > old.token
        print(f"handover {taken_at - signalled_at:.2f} s after SIGTERM; the old lease had "
              f"{old.expires_at - signalled_at:.2f} s left")
        # Without the release the standby could only take it once the old lease expired.
        assert taken_at < old.expires_at, (taken_at - signalled_at, old.expires_at - signalled_at)

        # Then the old leader exits cleanly, and the CLI shows the new leader.
        assert procs[leader_pid].wait(timeout=60) == 0
        assert status(env)["leader"] == new.owner
    finally:
        for proc in procs.values():
            stop(proc)
