"""Fixes to the libraries broker_jobs runs on, applied when :mod:`broker_jobs.broker` is imported.

Each fix says which library version it was checked against; ``tests/framework/unit/test_compat.py``
fails when an upgrade changes what a fix relies on, so it is looked at again.

* ``dramatiq.common.join_all`` (used by ``Worker.stop``) takes the *total* time
  elapsed off the *remaining* timeout after each thread it joins, so the
  shutdown deadline (``--worker-shutdown-timeout``) shrinks as soon as one job
  ends during the stop, and a job that needed less than the deadline is killed
  and runs again.  :func:`join_all` waits for all of them against one fixed
  deadline.  ``tests/framework/scaleout/test_worker_shutdown.py`` pins the behaviour.
* Dramatiq's worker process takes a second SIGTERM as "kill now".  A process
  manager that signals the whole process group (honcho, Heroku, ``docker stop``
  with a group-signalling init, systemd's default ``KillMode=control-group``)
  reaches each worker process twice for one stop: directly, and forwarded by
  the Dramatiq master a few milliseconds later.  The worker process then exits
  at once, its running jobs die unacked, their history rows stay ``running``
  and RabbitMQ runs them again; ``--worker-shutdown-timeout`` never applies.
  :class:`OneStop` wraps Dramatiq's handler so that the copies of one stop,
  arriving within :data:`SAME_STOP_WINDOW_S` of the first, count once; a
  SIGTERM sent later still kills at once, as Dramatiq does (Ctrl-C twice on a
  bare ``dramatiq``).  It is installed only in a Dramatiq worker process, where
  Dramatiq's handler is in place when the broker module is imported.
  ``tests/framework/scaleout/test_group_stop.py`` stops real workers the way honcho and
  ``kill -TERM -PGID`` do.
* The RabbitMQ consumer's decoding is replaced (:class:`broker_jobs.consumer.CheckingConsumer`
  re-implements Dramatiq 2.x's ``_RabbitmqConsumer.__next__``): another major version
  is refused here rather than silently bypassing the message checks.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any

import dramatiq
import dramatiq.worker

logger = logging.getLogger(__name__)

#: Dramatiq majors the fixes, :class:`OneStop` and the checking consumer were written against (2.2.1).
CHECKED_DRAMATIQ_MAJORS = (2,)
#: Dramatiq's worker-process handler for SIGTERM and SIGHUP (``dramatiq.cli.worker_process``).
DRAMATIQ_WORKER_HANDLER = ("dramatiq.cli", "worker_process.<locals>.termhandler")
#: Seconds after a stop signal during which another one is a copy of it (the master's forward
#: arrives within milliseconds, later on a loaded machine); a person sending it again waits longer.
SAME_STOP_WINDOW_S = 2.0

Handler = Callable[[int, FrameType | None], Any]


def join_all(joinables: Iterable[Any], timeout: float) -> None:
    """Join every object within ``timeout`` milliseconds in all, from now."""
    deadline = time.monotonic() + timeout / 1000
    for joinable in joinables:
        joinable.join(timeout=max(0.0, deadline - time.monotonic()))


class OneStop:
    """A signal handler that passes the first stop signal, and any sent after the window, to ``handler``.

    Parameters:
      handler: Dramatiq's worker-process handler: the first call stops, the next kills.
      window: Seconds after the first signal during which another is a copy of it.
      clock: Monotonic seconds (tests pass their own).
    """

    def __init__(self, handler: Handler, window: float = SAME_STOP_WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.handler, self.window, self.clock = handler, window, clock
        self.first: float | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> Any:
        now = self.clock()
        if self.first is None:
            self.first = now
        elif now - self.first < self.window:
            logger.info("%s again %.3f s after the first: the same stop (the whole process group was signalled); "
                        "running jobs still get --worker-shutdown-timeout. Send it again after %g s, or SIGKILL, "
                        "to kill them now.", signal.Signals(signum).name, now - self.first, self.window)
            return None
        return self.handler(signum, frame)


def is_dramatiq_worker_handler(handler: object) -> bool:
    """Whether ``handler`` is the signal handler Dramatiq's ``worker_process`` installs."""
    return (getattr(handler, "__module__", None), getattr(handler, "__qualname__", None)) == DRAMATIQ_WORKER_HANDLER


def dramatiq_major() -> int:
    """The installed Dramatiq's major version."""
    return int(str(dramatiq.__version__).split(".")[0])


def install_one_stop() -> bool:
    """In a Dramatiq worker process (main thread), wrap its SIGTERM/SIGHUP handler in :class:`OneStop`.

    Returns:
      Whether it was installed now (False elsewhere, and when already installed).
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    handler = signal.getsignal(signal.SIGTERM)
    if not is_dramatiq_worker_handler(handler):
        return False
    one = OneStop(handler)  # type: ignore[arg-type]  # checked above: Dramatiq's handler, a callable
    for name in ("SIGTERM", "SIGHUP"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) is handler:
            signal.signal(number, one)
    return True


def install() -> None:
    """Apply the fixes (idempotent).

    Raises:
      RuntimeError: Dramatiq is not 2.x (the consumer's decode would no longer be ours).
    """
    if dramatiq_major() not in CHECKED_DRAMATIQ_MAJORS:
        raise RuntimeError(f"broker_jobs supports Dramatiq {CHECKED_DRAMATIQ_MAJORS}, found {dramatiq.__version__}")
    dramatiq.worker.join_all = join_all  # type: ignore[attr-defined]  # the worker module's own import of it
    install_one_stop()
