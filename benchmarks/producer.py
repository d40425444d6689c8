"""Publish no-op jobs through one peer's own API, in a process of its own.

``python -m benchmarks.producer PEER --key K --n N`` publishes N jobs as fast as
it can and prints ``{"sent", "seconds", "rate"}``; the clock starts after the
first publish, so connecting and declaring queues are not counted.
``--rate R --seconds D`` publishes at a steady R per second for D seconds
(each job carries its send time, for the latency measurement).
"""

from __future__ import annotations

import argparse
import importlib
import json
import time

from .peers import PEERS


def burst(send, key: str, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Publish ``n`` jobs back to back."""
    send(key, n, 0.0)
    started = time.perf_counter()
    for _ in range(n - 1):
        send(key, n, 0.0)
    seconds = time.perf_counter() - started
    return {"sent": n, "seconds": seconds, "rate": (n - 1) / seconds if seconds > 0 else 0.0}


def paced(send, key: str, rate: float, seconds: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Publish at ``rate`` per second for ``seconds``; each job carries its send time."""
    total = max(1, int(rate * seconds))
    start = time.perf_counter()
    behind = 0
    for i in range(total):
        due = start + i / rate
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        elif wait < -0.05:
            behind += 1
        send(key, total, time.time())
    elapsed = time.perf_counter() - start
    return {"sent": total, "seconds": elapsed, "rate": total / elapsed, "late_sends": behind}


def main() -> None:
    """Parse the command line, publish, print one JSON line."""
    parser = argparse.ArgumentParser(prog="benchmarks.producer")
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("--key", required=True)
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=0.0)
    args = parser.parse_args()
    module = importlib.import_module(PEERS[args.peer].module)
    send, close = module.sender()
    try:
        result = paced(send, args.key, args.rate, args.seconds) if args.rate else burst(send, args.key, args.n)
    finally:
        close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
