"""Each shipped way to run the worker lets running jobs finish before its platform kills them.

After SIGTERM a worker takes up to 1 s to notice (Dramatiq polls), waits up to
``--worker-shutdown-timeout`` (``WORKER_SHUTDOWN_TIMEOUT``) for running jobs, then
closes its connections.  Every platform sends SIGKILL some time after SIGTERM; the
deadline must end, with room to close, before that.  The README's deploy section
lists the same figures.
"""

from __future__ import annotations

import re

import pytest
import yaml

from tests.support import ROOT

#: Seconds between the end of the deadline and the platform's SIGKILL: the 1 s signal poll,
#: closing connections and flushing history.
ROOM_S = 5
#: Heroku sends SIGKILL 30 s after SIGTERM, whatever the app asks (not configurable).
HEROKU_KILL_S = 30


def option(command: str) -> str:
    """The value of ``--worker-shutdown-timeout`` in a command line."""
    match = re.search(r"--worker-shutdown-timeout[ =\"',]+([^ \"',\]]+)", command)
    assert match, command
    return match.group(1)


def default(value: str) -> int:
    """``${WORKER_SHUTDOWN_TIMEOUT:-N}`` -> N, a plain number -> itself (milliseconds)."""
    match = re.fullmatch(r"\$\{WORKER_SHUTDOWN_TIMEOUT:-(\d+)\}|(\d+)", value)
    assert match, f"{value!r}: expected a number or ${{WORKER_SHUTDOWN_TIMEOUT:-N}}"
    return int(match.group(1) or match.group(2))


def seconds(duration: str | int) -> float:
    """A compose duration (``2m``, ``90s``, ``1m30s``) or systemd seconds, in seconds."""
    text = str(duration).strip()
    if text.isdigit():
        return float(text)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


def test_the_procfile_deadline_ends_before_herokus_kill():
    deadline_ms = default(option(procfile()["worker"]))
    assert deadline_ms / 1000 + ROOM_S <= HEROKU_KILL_S, deadline_ms


def test_the_compose_worker_deadline_ends_before_its_stop_grace_period():
    worker = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["worker"]
    deadline_ms = default(option(worker["command"] if isinstance(worker["command"], str)
                                 else " ".join(worker["command"])))
    grace = seconds(worker.get("stop_grace_period", "10s"))  # docker's default
    assert deadline_ms / 1000 + ROOM_S <= grace, (deadline_ms, grace)


def test_the_kubernetes_worker_deadline_ends_before_its_termination_grace_period():
    [deployment] = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/worker.yaml").read_text())
                    if d and d.get("kind") == "Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = [c for c in pod["containers"] if c["name"] == "worker"]
    deadline_ms = default(option(" ".join([*container.get("command", []), *container.get("args", [])])))
    grace = float(pod.get("terminationGracePeriodSeconds", 30))  # Kubernetes' default
    assert deadline_ms / 1000 + ROOM_S <= grace, (deadline_ms, grace)


def test_the_systemd_worker_deadline_ends_before_its_stop_timeout():
    unit = (ROOT / "deploy/systemd/broker-jobs-worker.service").read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", unit, re.M))
    assert "${WORKER_SHUTDOWN_TIMEOUT}" in settings["ExecStart"]
    environment = " ".join(re.findall(r"^Environment=(.*)$", unit, re.M))  # a unit may have several lines
    [deadline_ms] = [int(v) for k, v in re.findall(r"(\w+)=(\S+)", environment) if k == "WORKER_SHUTDOWN_TIMEOUT"]
    stop_timeout = seconds(settings.get("TimeoutStopSec", "90"))  # systemd's DefaultTimeoutStopSec
    assert deadline_ms / 1000 + ROOM_S <= stop_timeout, (deadline_ms, stop_timeout)
    # Any KillMode but "process" reaches the worker processes too: SIGTERM to the group is a
    # graceful stop (broker_jobs.compat.OneStop), SIGKILL at the timeout ends what is left.
    assert settings.get("KillMode", "control-group") in ("control-group", "mixed")


def test_make_run_gives_the_worker_a_deadline_that_ends_before_honcho_kills_it():
    honcho = pytest.importorskip("honcho.manager")
    makefile = (ROOT / "Makefile").read_text()
    run = re.search(r"^run:.*?(?=^\S)", makefile, re.M | re.S)
    assert run, "Makefile has no run target"
    match = re.search(r"WORKER_SHUTDOWN_TIMEOUT=\$\$\{WORKER_SHUTDOWN_TIMEOUT:-(\d+)\}", run.group(0))
    assert match, "make run sets no WORKER_SHUTDOWN_TIMEOUT for honcho"
    # honcho sends SIGKILL KILL_WAIT s after the first of its processes exits (web and scheduler
    # exit within a second of the stop); the worker ends at most 1 s + its deadline after it.
    assert int(match.group(1)) / 1000 + 1 <= honcho.KILL_WAIT, (match.group(1), honcho.KILL_WAIT)
