"""Jobs the scale-out test runs in real worker processes.

Each execution is counted in Redis (``SCALEOUT_REDIS_URL``) under the test's run id:
per message id (to prove exactly once) and per worker pid (to see the load spread).
"""

from __future__ import annotations

import os
import time

from dramatiq.middleware import CurrentMessage

from broker_jobs import job
from tests.framework.scaleout.counting import client


def _count(kind: str) -> None:
    run = os.environ["SCALEOUT_RUN"]
    message = CurrentMessage.get_current_message()
    pid, now = os.getpid(), time.time()
    pipe = client().pipeline(transaction=False)
    pipe.hincrby(f"{run}:{kind}:ids", message.message_id if message else "?", 1)
    pipe.hincrby(f"{run}:{kind}:pids", str(pid), 1)
    pipe.rpush(f"{run}:{kind}:times", repr(now))
    if message is not None:  # how each execution came about, to explain a doubled one
        pipe.rpush(f"{run}:{kind}:runs", f"{message.message_id} pid={pid} at={now:.6f} "
                   f"redelivered={getattr(message, 'redelivered', '?')} retries={message.options.get('retries', 0)}")
    pipe.execute()


@job(queue="scaleout", max_retries=3, min_backoff=0.1)
def scale_noop(i: int) -> None:
    """One unit of work."""
    time.sleep(0.001)
    _count("noop")


@job(queue="scaleout", rate_limit="4/2s")
def scale_limited(i: int) -> None:
    """Rate limited across every worker."""
    _count("limited")


# Jobs of the shutdown and partition tests.  Their executions are appended to files
# in ``SCALEOUT_EVENTS`` (one file per process, one line per event), which survive a
# killed worker and are shared by workers in other network namespaces.


def record(event: str, key: str) -> None:
    """Append ``event message_id key pid time`` to this process's events file."""
    message = CurrentMessage.get_current_message()
    line = f"{event} {message.message_id if message else '?'} {key} {os.getpid()} {time.time():.6f}\n"
    path = os.path.join(os.environ["SCALEOUT_EVENTS"], f"{os.getpid()}.events")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line.encode())  # one write per line: lines never interleave
    finally:
        os.close(fd)


def first_run(key: str) -> bool:
    """Whether no process ran ``key`` before (a marker file, created atomically)."""
    try:
        os.close(os.open(os.path.join(os.environ["SCALEOUT_EVENTS"], f"{key}.ran"), os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


@job(queue="scaleout_shutdown", max_retries=0)
def shutdown_job(key: str, seconds: float, seconds_again: float = -1) -> None:
    """Sleeps ``seconds`` (``seconds_again`` on a rerun, when not negative), recording start and end."""
    if seconds_again >= 0 and not first_run(key):
        seconds = seconds_again
    record("start", key)
    time.sleep(seconds)
    record("done", key)


def _thread_rank() -> int:
    """This worker thread's place in its Worker's thread list (the order ``Worker.stop`` joins them)."""
    import threading

    def number(thread: threading.Thread) -> int:
        return int(thread.name.split("-")[1].split()[0])

    threads = sorted((t for t in threading.enumerate() if type(t).__name__ == "WorkerThread"), key=number)
    return threads.index(threading.current_thread())


@job(queue="scaleout_shutdown", max_retries=0)
def shutdown_after_stop(key: str, seconds_by_rank: list[float]) -> None:
    """Waits until its worker is told to stop, then works ``seconds_by_rank[rank of its thread]`` more."""
    import threading

    me, rank = threading.current_thread(), _thread_rank()
    record("start", key)
    while getattr(me, "running", False):  # Worker.stop() sets it False on every worker thread at once
        time.sleep(0.02)
    record(f"stopping:{rank}", key)
    time.sleep(seconds_by_rank[rank])
    record("done", key)


@job(queue="scaleout_partition", max_retries=0)
def partition_job(key: str, seconds: float) -> None:
    """Sleeps ``seconds``, recording start and end."""
    record("start", key)
    time.sleep(seconds)
    record("done", key)
