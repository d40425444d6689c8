"""The systemd units share one metrics directory per host, which none of them hides.

Worker, scheduler and web each write their metrics into ``METRICS_DIR``; the worker's
exporter serves the whole directory. With ``PrivateTmp=yes`` a directory under /tmp is
a different one in every unit, and the scheduler's leader gauge never reaches the
exporter (the no-leader alert fires for ever).
"""

from __future__ import annotations

import shlex
from pathlib import PurePosixPath

import pytest

from tests.deploy.test_kubernetes_and_systemd import SYSTEMD, UNITS, unit_settings

ENV_EXAMPLE = SYSTEMD / "broker-jobs.env.example"
#: Where broker_jobs puts METRICS_DIR when it is unset ($TMPDIR, i.e. /tmp under systemd).
DEFAULT_DIR = PurePosixPath("/tmp/broker-jobs-metrics-<METRICS_PORT>")


def env_file_values(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            name, value = line.split("=", 1)
            values[name.strip()] = value.strip().strip("'\"")
    return values


def metrics_dir_of(unit_text: str, env_text: str) -> PurePosixPath:
    """The METRICS_DIR a unit's processes see: Environment=, then EnvironmentFile= overrides it."""
    settings = unit_settings_text(unit_text)
    environment: dict[str, str] = {}
    for line in settings.get("Environment", []):
        for assignment in shlex.split(line):
            name, value = assignment.split("=", 1)
            environment[name] = value
    if settings.get("EnvironmentFile"):
        environment.update(env_file_values(env_text))
    value = environment.get("METRICS_DIR")
    return PurePosixPath(value) if value else DEFAULT_DIR


def unit_settings_text(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit's text, in order (a key may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def metrics_dir_problems(unit_text: str, env_text: str) -> list[str]:
    """Why this unit's processes would not write into the host's one metrics directory."""
    settings = unit_settings_text(unit_text)
    directory = metrics_dir_of(unit_text, env_text)
    yes = {"yes", "true", "1", "on"}
    problems = []
    private_tmp = settings.get("PrivateTmp", ["no"])[-1] in yes
    if private_tmp and any(directory.is_relative_to(t) for t in ("/tmp", "/var/tmp")):
        problems.append(f"METRICS_DIR={directory} is under a private /tmp (PrivateTmp=yes)")
    hidden = [p for key in ("InaccessiblePaths", "TemporaryFileSystem") for v in settings.get(key, [])
              for p in v.split()]
    if any(directory.is_relative_to(p.lstrip("-+").split(":")[0]) for p in hidden):
        problems.append(f"METRICS_DIR={directory} is hidden from the unit")
    runtime = [PurePosixPath("/run", d) for v in settings.get("RuntimeDirectory", []) for d in v.split()]
    writable = runtime + [PurePosixPath(p.lstrip("-+")) for v in settings.get("ReadWritePaths", [])
                          for p in v.split()]
    if settings.get("ProtectSystem", ["no"])[-1] == "strict" and not any(
            directory.is_relative_to(w) for w in writable):
        problems.append(f"METRICS_DIR={directory} is read-only (ProtectSystem=strict)")
    if any(directory.is_relative_to(r) for r in runtime) and \
            settings.get("RuntimeDirectoryPreserve", ["no"])[-1] not in yes:
        problems.append("RuntimeDirectory= without RuntimeDirectoryPreserve=yes: stopping one unit "
                        "deletes the directory the others write to")
    return problems


@pytest.mark.parametrize("unit", UNITS)
def test_each_unit_writes_its_metrics_where_the_others_can_see_them(unit):
    assert metrics_dir_problems((SYSTEMD / unit).read_text(), ENV_EXAMPLE.read_text()) == []


def test_every_unit_points_at_the_same_metrics_directory_outside_tmp():
    env_text = ENV_EXAMPLE.read_text()
    directories = {unit: metrics_dir_of((SYSTEMD / unit).read_text(), env_text) for unit in UNITS}
    assert len(set(directories.values())) == 1, directories
    assert set(directories.values()) == {PurePosixPath("/run/broker-jobs/metrics")}
    # Without the environment file's line the units' own default is the same directory.
    assert {metrics_dir_of((SYSTEMD / unit).read_text(), "") for unit in UNITS} == set(directories.values())
    assert {u: unit_settings(SYSTEMD / u)["PrivateTmp"] for u in UNITS} == {u: ["yes"] for u in UNITS}


def test_the_check_finds_the_private_tmp_of_units_without_a_metrics_directory():
    # The units as they were: PrivateTmp=yes and METRICS_DIR left to its /tmp default.
    unit = "\n".join(line for line in (SYSTEMD / UNITS[0]).read_text().splitlines()
                     if not line.startswith(("Environment=METRICS_DIR", "RuntimeDirectory")))
    env_text = "\n".join(line for line in ENV_EXAMPLE.read_text().splitlines()
                         if not line.startswith("METRICS_DIR="))
    problems = metrics_dir_problems(unit, env_text)
    assert any("private /tmp" in p for p in problems), problems
    assert any("read-only" in p for p in problems), problems
    assert metrics_dir_problems(unit + "\nRuntimeDirectory=broker-jobs/metrics\n",
                                "METRICS_DIR=/run/broker-jobs/metrics") != []  # no Preserve
