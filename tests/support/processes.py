"""Our commands as subprocesses in sessions of their own (started, stopped the way a supervisor does, logged
to files), and free ports for them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .environment import PROCESS_METRICS, ROOT
from .polling import wait_for


def free_ports(count: int) -> list[int]:
    """``count`` different TCP ports nothing listens on right now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    [port] = free_ports(1)
    return port


def start(args: Sequence[str], env: dict[str, str], log: Path, *,
          prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Start ``python ARGS`` (``-m dramatiq ...``, ``-m broker_jobs ...``) in a session of its own, from the repo.

    Parameters:
      args: The arguments after ``python``.
      env: Environment on top of this process's.
      log: File its output (stdout and stderr) is appended to.
      prefix: Words before ``python``, e.g. ``ip netns exec NS`` (which execs it: same pid).
    """
    inherited = {k: v for k, v in os.environ.items() if k not in PROCESS_METRICS}
    with log.open("ab") as out:
        return subprocess.Popen([*prefix, sys.executable, *args], env={**inherited, **env}, cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def kill(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process group of a command started in a session of its own: no cleanup, no acks."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stop(proc: subprocess.Popen[Any], timeout: float = 30) -> int:
    """SIGTERM the process group of a command started in a session of its own; SIGKILL it after ``timeout`` s.

    Returns:
      Its exit code.
    """
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill(proc)
    return proc.returncode


def log_text(log: Path) -> str:
    """Everything written to ``log`` so far (nothing before the file exists)."""
    return log.read_text(errors="replace") if log.exists() else ""


def wait_for_log(log: Path, pattern: str, proc: subprocess.Popen[Any] | None = None, *, count: int = 1,
                 timeout: float = 60) -> None:
    """Wait until ``pattern`` (a regex) occurs ``count`` times in ``log``.

    Fails with the end of the log after ``timeout`` s, or at once when ``proc``
    (the command writing the log) exits first.
    """
    def seen() -> bool:
        return len(re.findall(pattern, log_text(log))) >= count

    try:
        wait_for(lambda: seen() or (proc is not None and proc.poll() is not None), f"{pattern!r} in {log.name}",
                 timeout)
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{log_text(log)[-3000:]}") from None
    if not seen():
        assert proc is not None
        raise AssertionError(f"{log.name}: the command exited ({proc.returncode}) before {pattern!r}:\n"
                             f"{log_text(log)[-3000:]}")


class Process:
    """A command of ours (``python -m ...``) in a session of its own, logging to a file.

    Parameters:
      args: The arguments after ``python``.
      env: Extra environment.
      log: File receiving its output.
    """

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        """Start the command."""
        self.proc = start(self.args, self.env, self.log)
        return self

    def alive(self) -> bool:
        """Whether the command still runs."""
        return self.proc is not None and self.proc.poll() is None

    def wait_for_log(self, pattern: str, timeout: float = 60, count: int = 1) -> None:
        """Wait until ``pattern`` (a regex) occurs ``count`` times in the log; fail if the command exits first."""
        wait_for_log(self.log, pattern, self.proc, count=count, timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the whole process group: no cleanup, no acks, no lease release."""
        if self.proc is not None:
            kill(self.proc)

    def stop(self, timeout: float = 30) -> int | None:
        """SIGTERM (graceful), then SIGKILL after ``timeout`` s; returns the exit code (None if never started)."""
        return stop(self.proc, timeout) if self.proc is not None else None

    def text(self) -> str:
        """Everything the command logged so far."""
        return log_text(self.log)


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``broker-jobs ARGS`` in a subprocess (in ``cwd``, default the repository), as a user would."""
    return subprocess.run([sys.executable, "-m", "broker_jobs", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=cwd or ROOT)
