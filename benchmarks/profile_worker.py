"""Profile a worker under load with py-spy: where does a no-op job's time go?

``python -m benchmarks.profile_worker [--peer broker_jobs] [--n 5000]``
publishes N no-op jobs, starts one worker process (8 threads), records it
with ``py-spy record --format raw`` until the burst is done, and prints the
share of samples spent under each middleware hook and library call.  The raw
collapsed stacks go to ``--out`` (default ``$TMPDIR/profile-<peer>.txt``; load them in
speedscope.app or flamegraph.pl).
"""

from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from .common import BIN, PYTHON, BenchError, private_run, redis_client, run_json, start, stop, wait_until
from .peers import PEERS

#: Frames worth naming in the summary: (label, regex on "function (file:line)").
BUCKETS = [
    ("History middleware", r"\((?:[^)]*/)?middleware/history\.py"),
    ("history writer (SQLite upserts)", r"store/history\.py"),
    ("JobMetrics / Prometheus", r"middleware/metrics\.py|prometheus|dramatiq/middleware/prometheus"),
    ("FireDedup", r"middleware/dedup\.py"),
    ("RateLimit", r"middleware/rate_limit\.py"),
    ("JobRetries", r"middleware/retries\.py|dramatiq/middleware/retries\.py"),
    ("PriorityTagging", r"middleware/priority\.py"),
    ("argument validation (pydantic)", r"^(validate_arguments|validated_call) \("),
    ("logging (a line per job, piped to the master)", r"logging/__init__\.py"),
    ("TimeLimit", r"middleware/time_limit\.py"),
    ("AgeLimit", r"middleware/age_limit\.py"),
    ("CurrentMessage", r"middleware/current_message\.py"),
    ("the job (Redis INCR)", r"benchmarks/peers/noop\.py"),
    ("pika (consume, ack)", r"\(pika/"),
    ("message decoding", r"dramatiq/message\.py|json"),
]


def _samples(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def summarize(path: Path) -> list[tuple[str, float]]:
    """Share of non-idle samples under each bucket (inclusive; a sample counts once per bucket)."""
    stacks = _samples(path)
    idle = re.compile(r"\b(wait|select|poll|_wait_for_tstate_lock|acquire|get) \(.*(threading|queue|selectors)\.py")
    busy = [(frames, n) for frames, n in stacks if not idle.search(frames[-1])]
    total = sum(n for _, n in busy) or 1
    shares = collections.Counter[str]()
    for frames, n in busy:
        for label, pattern in BUCKETS:
            if any(re.search(pattern, f) for f in frames[1:]):
                shares[label] += n
    return [(label, shares[label] / total) for label, _ in BUCKETS if shares[label]]


def main() -> None:
    """Publish, start one worker process under py-spy, summarize."""
    parser = argparse.ArgumentParser(prog="benchmarks.profile_worker")
    parser.add_argument("--peer", default="broker_jobs", choices=["dramatiq", "broker_jobs"])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--timeout", type=float, default=180)
    parser.add_argument("--out", type=Path, default=None, help="where the raw stacks go")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(BIN / "py-spy")
    peer = PEERS[args.peer]
    out = args.out or Path(tempfile.gettempdir()) / f"profile-{peer.name}.txt"
    with private_run() as run:
        env, key = run.env(), run.key(peer.name, "profile")
        run_json([PYTHON, "-m", "benchmarks.producer", peer.name, "--key", key, "--n", str(args.n)],
                 env, args.timeout, run.workdir / "producer.log")
        worker = start(peer.worker_command(1), env, run.workdir / "worker.log")
        try:
            if not wait_until(lambda: bool(psutil.Process(worker.pid).children()), 30):
                raise BenchError("worker process did not start")
            child = psutil.Process(worker.pid).children()[0].pid
            redis = redis_client(run.redis_url)
            # Start-up (imports, connecting) is not what we are after: record from the first job on.
            wait_until(lambda: int(redis.get(key) or 0) > 0, args.timeout, interval=0.01)
            # --gil: only samples holding the GIL, i.e. Python doing work, not threads waiting on sockets.
            record = subprocess.Popen([spy, "record", "--pid", str(child), "--format", "raw", "--gil",
                                       "--rate", "250", "--nonblocking", "--output", str(out)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            started = time.monotonic()
            wait_until(lambda: int(redis.get(key) or 0) >= args.n, args.timeout, interval=0.05)
            print(f"{args.n} jobs, recorded {time.monotonic() - started:.1f} s")
            record.send_signal(2)
            record.wait(30)
        finally:
            stop(worker)
    for label, share in summarize(out):
        print(f"{share * 100:5.1f}%  {label}")
    print(f"raw stacks: {out}")


if __name__ == "__main__":
    main()
