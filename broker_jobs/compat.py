"""Fixes to the libraries broker_jobs runs on, applied when :mod:`broker_jobs.broker` is imported.

* ``dramatiq.common.join_all`` (used by ``Worker.stop``) takes the *total* time
  elapsed off the *remaining* timeout after each thread it joins, so the
  shutdown deadline (``--worker-shutdown-timeout``) shrinks as soon as one job
  ends during the stop, and a job that needed less than the deadline is killed
  and runs again.  :func:`join_all` waits for all of them against one fixed
  deadline.  ``tests/scaleout/test_worker_shutdown.py`` pins the behaviour.
* The RabbitMQ consumer's decoding is replaced (:class:`broker_jobs.consumer.CheckingConsumer`
  re-implements Dramatiq 2.x's ``_RabbitmqConsumer.__next__``): another major version
  is refused here rather than silently bypassing the message checks.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import dramatiq
import dramatiq.worker


def join_all(joinables: Iterable[Any], timeout: float) -> None:
    """Join every object within ``timeout`` milliseconds in all, from now."""
    deadline = time.monotonic() + timeout / 1000
    for joinable in joinables:
        joinable.join(timeout=max(0.0, deadline - time.monotonic()))


#: The Dramatiq major version the fixes and the checking consumer were written against.
DRAMATIQ_MAJOR = "2"


def install() -> None:
    """Apply the fixes (idempotent).

    Raises:
      RuntimeError: Dramatiq is not 2.x (the consumer's decode would no longer be ours).
    """
    version = getattr(dramatiq, "__version__", "")
    if version.split(".")[0] != DRAMATIQ_MAJOR:
        raise RuntimeError(f"broker_jobs supports Dramatiq {DRAMATIQ_MAJOR}.x, found {version or 'unknown'}")
    dramatiq.worker.join_all = join_all  # type: ignore[attr-defined]
