"""The jobs file: every mistake is one ``file:line: jobs[i].field: message`` line and exit 2."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from broker_jobs.errors import ConfigError
from broker_jobs.scheduling.config import load_config
from broker_jobs.scheduling.jobs_file import configured_modules
from broker_jobs.scheduling.triggers import CronTrigger, IntervalTrigger
from tests.support import ROOT, run_cli
from tests.support.scheduling import fake_settings


@pytest.fixture
def probe_actor(stub_broker):
    from broker_jobs import job

    @job(queue="default", priority="low", broker=stub_broker)
    def sched_config_probe(n: int = 0) -> None:
        """A job for config tests."""

    return sched_config_probe


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "jobs.yaml"
    path.write_text(textwrap.dedent(body).lstrip(), encoding="utf-8")
    return path


def line_of(path: Path, marker: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if marker in line)


BASE = "  - id: probe\n    actor: sched_config_probe\n"

# (what is added to a valid job, the field path, a fragment of the message, the text on the reported line)
CASES = [
    ("    cron: '*/5 * * * *'\n    priority: urgent\n", "jobs[0].priority", "invalid priority 'urgent'", "urgent"),
    ("    cron: '61 * * * *'\n", "jobs[0].cron", "61", "61 *"),
    ("    cron: 5\n", "jobs[0].cron", "valid string", "cron: 5"),
    ("    interval: {minutes: -1}\n", "jobs[0].interval.minutes", "greater than or equal to 0", "interval"),
    ("    interval:\n      weeks: 1\n", "jobs[0].interval.weeks", "unknown field", "weeks"),
    ("    interval: 'often'\n", "jobs[0].interval", "valid number", "often"),
    ("    date: tomorrow\n", "jobs[0].date", "not an ISO date", "tomorrow"),
    ("    cron: '* * * * *'\n    interval: 60\n", "jobs[0]", "exactly one trigger", "- id: probe"),
    ("    args: [1]\n", "jobs[0]", "exactly one trigger", "- id: probe"),
    ("    cron: '@daily'\n    args: 5\n", "jobs[0].args", "valid list", "args: 5"),
    ("    cron: '@daily'\n    kwargs: [1]\n", "jobs[0].kwargs", "valid dictionary", "kwargs"),
    ("    cron: '@daily'\n    kwargs: {n: many}\n", "jobs[0].kwargs", "argument 'n'", "kwargs"),
    ("    cron: '@daily'\n    kwargs: {m: 1}\n", "jobs[0].kwargs", "'m'", "kwargs"),
    ("    cron: '@daily'\n    enabled: 'yes'\n", "jobs[0].enabled", "valid boolean", "enabled"),
    ("    cron: '@daily'\n    queue: 5\n", "jobs[0].queue", "valid string", "queue"),
    ("    cron: '@daily'\n    timezone: Mars/Olympus\n", "jobs[0].timezone", "unknown time zone", "Mars"),
    ("    cron: '@daily'\n    jitter: -1\n", "jobs[0].jitter", "greater than or equal to 0", "jitter"),
    ("    cron: '@daily'\n    jitter: '5'\n", "jobs[0].jitter", "valid number", "jitter"),
    ("    cron: '@daily'\n    misfire: later\n", "jobs[0].misfire", "'skip', 'run_once' or 'run_all'", "misfire"),
    ("    cron: '@daily'\n    misfire_grace: 0\n", "jobs[0].misfire_grace", "greater than 0", "misfire_grace"),
    ("    cron: '@daily'\n    overlap: queue\n", "jobs[0].overlap", "'allow', 'skip', 'buffer_one' or 'replace'",
     "overlap"),
    ("    cron: '@daily'\n    dst:\n      gap: jump\n", "jobs[0].dst.gap", "'shift' or 'skip'", "gap"),
    ("    cron: '@daily'\n    description: [a]\n", "jobs[0].description", "valid string", "description"),
    ("    cron: '@daily'\n    priorty: high\n", "jobs[0].priorty", "unknown field", "priorty"),
    ("    cron: {production: '@daily'}\n", "jobs[0].cron", "no value for APP_ENV='development'", "cron"),
]


@pytest.mark.parametrize(("extra", "field", "fragment", "marker"), CASES,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_a_bad_field_is_reported_with_file_line_and_path(tmp_path, probe_actor, extra, field, fragment, marker):
    path = write(tmp_path, "jobs:\n" + BASE + extra)
    with pytest.raises(ConfigError) as caught:
        load_config(path, fake_settings(path))
    message = str(caught.value)
    assert message.startswith(f"{path}:{line_of(path, marker)}: {field}: "), message
    assert fragment in message
    assert "\n" not in message


def test_an_unknown_actor_names_the_known_ones(tmp_path, probe_actor):
    path = write(tmp_path, "jobs:\n  - id: x\n    actor: nope\n    cron: '@daily'\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: jobs\[0\].actor: unknown actor 'nope' \(known: .*"
                                          r"sched_config_probe"):
        load_config(path, fake_settings(path))


def test_a_duplicate_id_points_at_the_second_one(tmp_path, probe_actor):
    path = write(tmp_path, "jobs:\n" + BASE + "    cron: '@daily'\n" + BASE + "    cron: '@hourly'\n")
    with pytest.raises(ConfigError,
                       match=rf"^{path}:5: jobs\[1\].id: duplicate id 'probe' \(first used by jobs\[0\]\)"):
        load_config(path, fake_settings(path))


@pytest.mark.parametrize(("body", "expected"), [
    ("jobs: [\n", "invalid YAML"),
    ("jobs: {}\n", "jobs: must be a list"),
    ("schedules: []\n", "schedules: unknown top-level key"),
    ("modules: [no_such_module_xyz]\njobs: []\n", "modules[0]: cannot import 'no_such_module_xyz'"),
    ("- 1\n", "must be a mapping"),
])
def test_a_bad_file_shape_is_one_line(tmp_path, body, expected):
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_config(path, fake_settings(path))
    assert str(caught.value).startswith(f"{path}:") and expected in str(caught.value)


def test_per_environment_values_follow_app_env(tmp_path, probe_actor):
    path = write(tmp_path, """
        jobs:
          - id: probe
            actor: sched_config_probe
            interval: {production: {minutes: 5}, development: {minutes: 15}}
            priority: {production: high, default: low}
            timezone: Europe/Paris
            dst: {gap: skip, fold: twice}
        """)
    dev = load_config(path, fake_settings(path)).jobs[0]
    prod = load_config(path, fake_settings(path, app_env="production")).jobs[0]
    assert dev.trigger == IntervalTrigger(900, timezone="Europe/Paris")
    assert prod.trigger == IntervalTrigger(300, timezone="Europe/Paris")
    assert (dev.priority.label, prod.priority.label) == ("low", "high")
    assert dev.queue == "default" and dev.misfire == "run_once" and dev.overlap == "skip"


def test_a_cron_job_carries_its_dst_policy_and_the_default_time_zone(tmp_path, probe_actor):
    path = write(tmp_path, "jobs:\n" + BASE + "    cron: '0 0 2 * * sun'\n    dst: {gap: skip}\n")
    job = load_config(path, fake_settings(path, scheduler_timezone="America/New_York")).jobs[0]
    assert job.trigger == CronTrigger("0 0 2 * * sun", timezone="America/New_York", gap="skip", fold="once")
    assert job.priority.label == "low" and job.description == "A job for config tests."


def test_configured_modules_never_raises():
    assert configured_modules(Path("/nonexistent/jobs.yaml")) == []


def test_configured_modules_reads_the_list(tmp_path):
    assert configured_modules(write(tmp_path, "modules: [a.b, c]\njobs: [\n")) == []
    assert configured_modules(write(tmp_path, "modules: [a.b, c]\n")) == ["a.b", "c"]


@pytest.mark.parametrize("app_env", ["development", "production"])
def test_the_shipped_jobs_file_is_valid(app_env):
    path = ROOT / "config" / "jobs.yaml"
    jobs = {job.id: job for job in load_config(path, fake_settings(path, app_env=app_env)).jobs}
    assert jobs["etl-high"].trigger.seconds == (300 if app_env == "production" else 900)  # type: ignore[union-attr]
    assert jobs["etl-high"].priority.label == "high" and jobs["etl-high"].queue == "etl"


def test_check_config_exits_2_with_one_line(tmp_path):
    path = write(tmp_path, "jobs:\n  - id: x\n    actor: diagnostics\n    cron: '* * * *'\n")
    result = run_cli("check-config", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and f"{path}:4: jobs[0].cron: " in result.stderr
