"""The workers compared, as data: how to start each one and where its messages go.

Each peer module exposes ``sender() -> (send, close)`` used by
:mod:`benchmarks.producer`; ``send(key, total, sent_at)`` publishes one no-op job.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..common import BIN, PYTHON

THREADS = 8


@dataclass(frozen=True)
class Peer:
    """A worker implementation under test.

    Parameters:
      name: Short id used in tables and keys.
      label: What the table shows.
      module: The peer module (its ``sender()`` publishes).
      queue: The RabbitMQ queue its jobs go to.
      env: Environment of its producer and workers.
    """

    name: str
    label: str
    module: str
    queue: str
    env: tuple[tuple[str, str], ...] = ()

    def worker_command(self, processes: int) -> list[str]:
        """The command line of this peer's worker with ``processes`` processes."""
        if self.name == "pika":
            return [PYTHON, "-m", self.module, "consume", "--processes", str(processes)]
        if self.module == "benchmarks.peers.dramatiq_bare":
            return [str(BIN / "dramatiq"), self.module, "-p", str(processes), "-t", str(THREADS)]
        if self.name == "broker_jobs":
            return [str(BIN / "dramatiq"), "broker_jobs.actors", self.module, "-p", str(processes),
                    "-t", str(THREADS)]
        if self.module == "benchmarks.peers.celery_app":
            return [str(BIN / "celery"), "-A", self.module, "worker", "-P", "prefork", "-c", str(processes),
                    "-Q", self.queue, "-l", "WARNING", "--without-gossip", "--without-mingle",
                    "--without-heartbeat"]
        raise ValueError(f"unknown peer {self.name}")


PEERS: dict[str, Peer] = {
    "pika": Peer("pika", "raw pika", "benchmarks.peers.raw_pika", "bench_pika"),
    "dramatiq": Peer("dramatiq", "bare Dramatiq", "benchmarks.peers.dramatiq_bare", "bench_dramatiq"),
    # The same, on a queue declared as broker_jobs declares its own (x-max-priority 10): what
    # RabbitMQ's priority queues cost, apart from broker_jobs' middleware.
    "dramatiq_prio": Peer("dramatiq_prio", "bare Dramatiq, priority queue", "benchmarks.peers.dramatiq_bare",
                          "bench_dramatiq_prio", (("BENCH_MAX_PRIORITY", "10"),)),
    "broker_jobs": Peer("broker_jobs", "broker_jobs", "benchmarks.peers.bj_jobs", "default"),
    "celery": Peer("celery", "Celery", "benchmarks.peers.celery_app", "bench_celery"),
    # Celery acknowledges a task when it starts by default: a worker that dies mid-task loses
    # it. With acks_late it acknowledges after the task, as Dramatiq and broker_jobs do.
    "celery_late": Peer("celery_late", "Celery, acks_late", "benchmarks.peers.celery_app", "bench_celery_late",
                        (("BENCH_CELERY_ACKS_LATE", "1"),)),
}
