"""Metric updates from worker threads, summed and applied once a second by one thread.

In multiprocess mode every ``inc``/``observe`` of ``prometheus_client`` takes
the process-wide lock and writes a memory-mapped file; with eight worker
threads per process that was 40 µs of a no-op job's 416 µs of worker CPU
(benchmarks/README.md).  A worker thread now appends ``(child, amount)`` to a
deque (no lock); once a second one thread sums what came in per labelled child
and writes each sum once, a histogram's observations as one count per bucket.
Metrics are at most ``interval`` seconds late, which no scrape notices.

Outside a booted worker (no thread running) updates are applied at once.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from typing import Any

from .definitions import safely


class MetricBatch:
    """Pending metric updates of one process.

    Parameters:
      interval: Seconds between two applications.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._ops: deque[tuple[Any, float, bool]] = deque()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def inc(self, child: Any, amount: float = 1.0) -> None:
        """``child.inc(amount)``, batched (a negative amount decrements a gauge)."""
        if self._thread is None:
            safely("update", child.inc, amount)
        else:
            self._ops.append((child, amount, False))

    def observe(self, child: Any, value: float) -> None:
        """``child.observe(value)`` on a histogram child, batched."""
        if self._thread is None:
            safely("update", child.observe, value)
        else:
            self._ops.append((child, value, True))

    def start(self) -> None:
        """Apply updates from a thread of this process until :meth:`stop`."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="metric-batch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; what is pending is applied now."""
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.apply()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.apply()

    def apply(self) -> None:
        """Write every pending update: one ``inc`` per child, one per histogram bucket."""
        sums: dict[Any, float] = {}
        observed: dict[Any, list[float]] = {}
        pop = self._ops.popleft
        while True:
            try:
                child, value, is_observation = pop()
            except IndexError:
                break
            if is_observation:
                observed.setdefault(child, []).append(value)
            else:
                sums[child] = sums.get(child, 0.0) + value
        for child, amount in sums.items():
            if amount:
                safely("update", child.inc, amount)
        for child, values in observed.items():
            safely("update", _observe_all, child, values)


def _observe_all(histogram: Any, values: list[float]) -> None:
    """``observe`` each value, writing each bucket and the sum once."""
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None:  # not the prometheus_client we know
        for value in values:
            histogram.observe(value)
        return
    counts = [0] * len(bounds)
    for value in values:  # observe() counts a value in the first bucket whose bound is >= it
        counts[min(bisect.bisect_left(bounds, value), len(bounds) - 1)] += 1
    total.inc(sum(values))
    for bucket, count in zip(buckets, counts, strict=True):
        if count:
            bucket.inc(count)


#: The process's batch (worker middleware start and stop it).
batch = MetricBatch()
