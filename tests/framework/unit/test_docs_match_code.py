"""The README documents what the code does."""

from __future__ import annotations

import re

from broker_jobs.app.settings import AppSettings
from broker_jobs.settings import Settings
from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def section(name: str) -> str:
    start = README.index(f"<!-- section: {name} -->")
    return README[start : README.index(f"<!-- /section: {name} -->", start)]


def configuration_tables() -> tuple[str, str]:
    """The framework's table and the built-in jobs' table of the configuration section."""
    text = section("configuration")
    split = text.index("`AppSettings`")
    return text[:split], text[split:]


def documented(table: str) -> set[str]:
    return {name for row in table.splitlines() if row.startswith("| `")
            for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])}


def test_every_framework_setting_is_in_the_framework_table_and_no_other():
    framework, jobs = configuration_tables()
    fields = {name.upper() for name in Settings.model_fields}
    # WORKER_SHUTDOWN_TIMEOUT is the dramatiq CLI's option, set in the Procfile, not a field.
    assert documented(framework) - {"WORKER_SHUTDOWN_TIMEOUT"} == fields
    assert not documented(jobs) & fields


def test_every_built_in_job_setting_is_in_the_built_in_jobs_table_and_no_other():
    framework, jobs = configuration_tables()
    own = {name.upper() for name in AppSettings.model_fields} - {name.upper() for name in Settings.model_fields}
    assert documented(jobs) == own
    assert not documented(framework) & own


def test_every_cli_command_is_in_the_cli_table():
    from broker_jobs.app.main import cli as main

    table = section("cli")
    documented = set(re.findall(r"`broker-jobs ([a-z-]+)", table))
    assert set(main.commands) - documented == set()
