"""``broker-jobs scheduler --daemon`` and ``scheduler stop``: a scheduler in the background, found by its pid file.

:func:`daemonize` detaches the process the Unix way (fork, ``setsid``, fork), sends its output to a log file
and writes the pid file; the pid file is removed when the process ends.  :func:`stop` sends SIGTERM (the
scheduler releases its lease and exits 0) and waits.  Under systemd, Kubernetes or docker run the scheduler
in the foreground instead: they supervise it themselves.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import time
from pathlib import Path

from ..errors import ConfigError
from ..probes import process_running


def read_pid(pid_file: Path) -> int | None:
    """The pid in ``pid_file``, or None when there is no file or no number in it."""
    try:
        text = pid_file.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def running_pid(pid_file: Path) -> int | None:
    """The pid of the daemon ``pid_file`` names, if that process still runs (a stale file is removed)."""
    pid = read_pid(pid_file)
    if pid is None:
        return None
    if process_running(pid):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def daemonize(pid_file: Path, log_file: Path) -> int | None:
    """Detach: in the caller, return the daemon's pid (once its pid file exists); in the daemon, return None.

    Raises:
      ConfigError: a daemon of this pid file already runs, or the files cannot be written.
    """
    pid = running_pid(pid_file)
    if pid is not None:
        raise ConfigError(f"a scheduler daemon already runs (pid {pid}, pid file {pid_file}); "
                          "`broker-jobs scheduler stop` first")
    for path, what in ((pid_file, "SCHEDULER_PID_FILE"), (log_file, "--log-file")):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot write {path}: {exc.strerror or exc}") from None
    pid_file.unlink()
    read_end, write_end = os.pipe()
    if os.fork():  # the caller: wait for the daemon's pid
        os.close(write_end)
        with os.fdopen(read_end) as reader:
            text = reader.read().strip()
        return int(text) if text.isdigit() else None
    os.close(read_end)
    os.setsid()
    if os.fork():
        os._exit(0)  # the session leader goes: the daemon can never take a terminal again
    sys.stdout.flush()
    sys.stderr.flush()
    with open(os.devnull, "rb") as devnull:
        os.dup2(devnull.fileno(), 0)
    with log_file.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    pid_file.write_text(f"{os.getpid()}\n", encoding="utf-8")
    mine = os.getpid()

    def remove_pid_file() -> None:
        if os.getpid() == mine and read_pid(pid_file) == mine:
            pid_file.unlink(missing_ok=True)

    atexit.register(remove_pid_file)
    os.write(write_end, f"{mine}\n".encode())
    os.close(write_end)
    return None


def stop(pid_file: Path, timeout: float = 30.0) -> int:
    """SIGTERM the daemon of ``pid_file`` and wait up to ``timeout`` s for it to exit; returns its pid.

    Raises:
      ConfigError: no daemon runs for that pid file, or it did not stop in time.
    """
    pid = running_pid(pid_file)
    if pid is None:
        raise ConfigError(f"no scheduler daemon runs (pid file {pid_file} missing or stale)")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while process_running(pid):
        if time.monotonic() > deadline:
            raise ConfigError(f"the scheduler daemon (pid {pid}) did not stop within {timeout:g} s")
        time.sleep(0.1)
    pid_file.unlink(missing_ok=True)
    return pid
