"""Network partition: one worker host loses its link mid-run; nothing is lost.

Each worker "host" is a network namespace joined to this machine by a veth pair;
a private RabbitMQ node listens on the host ends (the shared one listens on
127.0.0.1 only, and this test must not depend on it).  Workers connect with a
2 s AMQP heartbeat.  Mid-run one namespace's link goes down (inside the
namespace: the host keeps its route, so RabbitMQ's packets to the cut worker are
dropped silently, as on a cut cable, and it can only notice by the missed
heartbeats).  RabbitMQ then drops the dead connection and redelivers what the
cut worker held unacked to the others.

The cut worker does not know it is cut off until its own heartbeat check fires,
and it keeps running the messages it had already prefetched (Dramatiq does not
empty its in-memory work queue on a connection error): their acks can never
arrive, so they run twice.  That is the at-least-once contract; the test checks
duplicates come only from messages the cut worker ran.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import (
    Event,
    PrivateRabbit,
    booted_rabbit,
    count_events,
    events,
    free_port,
    kill,
    publish,
    start,
    wait_for,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

QUEUE = "scaleout_partition"
WORKERS = 3
THREADS = 4  # each worker holds up to 2 × 4 = 8 unacked messages
MESSAGES = 200
JOB_S = 0.3
HEARTBEAT_S = 2


def ip(*args: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run ``ip ARGS`` (inside namespace ``ns`` when given)."""
    command = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)}: {result.stderr.strip()}")
    return result


class Hosts:
    """Network namespaces, each linked to this machine by a veth pair on its own /30 of 10.77.N.0/24.

    Names are unique per run (``bjp<6 hex><i>``, at most 15 characters for the veths).
    """

    def __init__(self, count: int) -> None:
        tag = uuid.uuid4().hex[:6]
        used = ip("-4", "-o", "addr").stdout + ip("-4", "route").stdout
        free = [n for n in range(64, 255) if f"10.77.{n}." not in used]
        if not free:
            raise RuntimeError("no free 10.77.N.0/24 subnet")
        self.subnet = f"10.77.{free[int(tag, 16) % len(free)]}"
        self.namespaces = [f"bjp{tag}{i}" for i in range(count)]
        self.outer = [f"bjp{tag}h{i}" for i in range(count)]  # this machine's end
        self.inner = [f"bjp{tag}n{i}" for i in range(count)]  # the namespace's end

    def host_address(self, i: int) -> str:
        """This machine's address on namespace ``i``'s link."""
        return f"{self.subnet}.{4 * i + 1}"

    def address(self, i: int) -> str:
        """Namespace ``i``'s address."""
        return f"{self.subnet}.{4 * i + 2}"

    def create(self) -> None:
        for i, ns in enumerate(self.namespaces):
            ip("netns", "add", ns)
            ip("link", "add", self.outer[i], "type", "veth", "peer", "name", self.inner[i])
            ip("link", "set", self.inner[i], "netns", ns)
            ip("addr", "add", f"{self.host_address(i)}/30", "dev", self.outer[i])
            ip("link", "set", self.outer[i], "up")
            ip("addr", "add", f"{self.address(i)}/30", "dev", self.inner[i], ns=ns)
            ip("link", "set", self.inner[i], "up", ns=ns)
            ip("link", "set", "lo", "up", ns=ns)

    def cut(self, i: int) -> None:
        """Take namespace ``i``'s end of its link down: both directions go silent."""
        ip("link", "set", self.inner[i], "down", ns=self.namespaces[i])

    def destroy(self) -> None:
        """Kill whatever still runs in the namespaces, then delete them and the veths."""
        for i, ns in enumerate(self.namespaces):
            pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            ip("netns", "del", ns, check=False)
            ip("link", "del", self.outer[i], check=False)


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    if shutil.which("ip") is None:
        pytest.skip("iproute2's `ip` is not installed")
    created = Hosts(WORKERS)
    try:
        created.create()
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        created.destroy()
        pytest.skip(f"cannot create network namespaces here: {exc}")
    yield created
    created.destroy()


@pytest.fixture
def rabbit(hosts: Hosts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRabbit]:
    """A private RabbitMQ node listening on 127.0.0.1 and on this machine's end of every link."""
    listen = ("127.0.0.1", *(hosts.host_address(i) for i in range(WORKERS)))
    with booted_rabbit(tmp_path_factory.mktemp("bjpart-rabbit"), listen) as node:
        yield node


def worker_pid(log: Path) -> int | None:
    """The pid of the worker process (the one running jobs) once it is ready."""
    found = re.search(r"\[PID (\d+)\] \[MainThread\] \[dramatiq\.WorkerProcess\(0\)\] \[INFO\] Worker process is "
                      r"ready", log.read_text(errors="replace"))
    return int(found.group(1)) if found else None


def peers(rabbit: PrivateRabbit) -> list[str]:
    """The client address of every AMQP connection the node has open."""
    return [line.strip() for line in rabbit.ctl("-q", "list_connections", "--no-table-headers", "peer_host")
            .splitlines() if line.strip()]


def queue_counts(rabbit: PrivateRabbit) -> dict[str, tuple[int, int]]:
    """``queue -> (ready, unacked)`` on the default vhost."""
    rows = rabbit.ctl("-q", "list_queues", "--no-table-headers", "name", "messages_ready",
                      "messages_unacknowledged").splitlines()
    return {name: (int(r), int(u)) for name, r, u in (row.split() for row in rows if row.strip())}


def test_a_worker_cut_off_mid_run_loses_nothing_and_its_unacked_messages_run_on_the_other_workers(
    hosts: Hosts, rabbit: PrivateRabbit, tmp_path: Path
):
    (tmp_path / "events").mkdir()
    procs = []
    try:
        for i, ns in enumerate(hosts.namespaces):
            url = f"amqp://guest:guest@{hosts.host_address(i)}:{rabbit.port}/%2F?heartbeat={HEARTBEAT_S}"
            env = {"RABBITMQ_URL": url, "DATABASE_URL": f"sqlite:///{tmp_path}/state.sqlite3",
                   "METRICS_DIR": str(tmp_path / f"metrics{i}"), "METRICS_PORT": str(free_port()),
                   "SCALEOUT_EVENTS": str(tmp_path / "events"), "PYTHONUNBUFFERED": "1"}
            procs.append(start(["-m", "dramatiq", "broker_jobs.actors", "tests.framework.scaleout.jobs",
                                "--processes", "1",
                                "--threads", str(THREADS), "--queues", QUEUE], env, tmp_path / f"worker{i}.log",
                               prefix=["ip", "netns", "exec", ns]))  # it execs the command: same pid
        logs = [tmp_path / f"worker{i}.log" for i in range(WORKERS)]
        pids = [wait_for(lambda log=log: worker_pid(log), f"{log.name} ready", 60) for log in logs]
        connected = peers(rabbit)
        assert all(hosts.address(i) in connected for i in range(WORKERS)), connected

        sent = publish(rabbit.url, QUEUE, "partition_job", [[f"m{i}", JOB_S] for i in range(MESSAGES)])
        cut = pids[0]

        def busy() -> bool:
            seen = events(tmp_path / "events")
            return len(count_events(seen, "done")) >= 40 and len(count_events(seen, "start", cut)) >= THREADS

        wait_for(busy, "all workers busy", 30)
        hosts.cut(0)
        cut_at = time.time()

        # RabbitMQ notices the silent peer by its heartbeat and drops the connection.
        wait_for(lambda: hosts.address(0) not in peers(rabbit), "RabbitMQ dropping the cut worker", 30)
        dropped_after = time.time() - cut_at
        others = set(pids[1:])

        def unacked(seen: list[Event]) -> set[str]:
            """What the cut worker ran without finishing before the cut: no ack of it can arrive."""
            finished = {e.message_id: e.at for e in seen if e.pid == cut and e.kind == "done"}
            return {e.message_id for e in seen if e.pid == cut and e.kind == "start"
                    and (e.message_id not in finished or finished[e.message_id] > cut_at)}

        def complete() -> bool:
            seen = events(tmp_path / "events")
            done_by_others = set(count_events((e for e in seen if e.pid in others), "done"))
            return set(sent) <= set(count_events(seen, "done")) and unacked(seen) <= done_by_others

        # Until RabbitMQ dropped it, the cut worker kept running what it had prefetched.
        wait_for(complete, "every message done, the cut worker's unacked ones by the others", 90)
        kill(procs[0])  # the cut worker's record is now final
        wait_for(complete, "what the cut worker started last done by the others", 30)

        seen: list[Event] = events(tmp_path / "events")
        by_cut = {e.message_id: e for e in seen if e.pid == cut and e.kind == "start"}
        done_by_others = count_events((e for e in seen if e.pid in others), "done")
        done = count_events(seen, "done")
        lost_acks = unacked(seen)
        assert lost_acks, "the cut worker had nothing in flight: the test did not test anything"
        assert lost_acks <= set(done_by_others), "redelivered to the connected workers and done there"
        assert set(done) == set(sent), f"lost: {len(set(sent) - set(done))}"
        duplicates = {m for m, n in done.items() if n > 1}
        assert duplicates <= set(by_cut), "only messages the cut worker ran may run twice"
        assert all(n == 1 for n in done_by_others.values()), "the connected workers ran nothing twice"
        assert all(n == 1 for n in count_events(seen, "done", cut).values())
        assert {e.pid for e in seen} <= set(pids)
        wait_for(lambda: queue_counts(rabbit).get(QUEUE) == (0, 0), "the queue empty, nothing unacked", 10)
        assert queue_counts(rabbit).get(QUEUE + ".XQ", (0, 0)) == (0, 0)

        redelivered_after = min(e.at for e in seen if e.pid in others and e.message_id in lost_acks) - cut_at
        started_after_cut = sum(1 for e in by_cut.values() if e.at > cut_at)
        print(f"cut worker: {len(by_cut)} started, {len(lost_acks)} unacked at the cut "
              f"({started_after_cut} started after it), {len(duplicates)} ran twice; RabbitMQ dropped it "
              f"{dropped_after:.1f} s after the cut, first redelivery ran {redelivered_after:.1f} s after it; "
              f"per worker: {[len(count_events(seen, 'done', p)) for p in pids]}")
        for log in logs:
            assert "PRECONDITION_FAILED" not in log.read_text(errors="replace"), log.name
    finally:
        for proc in procs:
            kill(proc)
