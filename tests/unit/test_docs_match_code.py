"""The README documents what the code does."""

from __future__ import annotations

import re

from broker_jobs.settings import Settings
from tests.support import ROOT

README = (ROOT / "README.md").read_text()


def section(name: str) -> str:
    start = README.index(f"<!-- section: {name} -->")
    return README[start : README.index(f"<!-- /section: {name} -->", start)]


def test_every_setting_is_in_the_configuration_table():
    table = section("configuration")
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in table]
    assert missing == []


def test_every_cli_command_is_in_the_cli_table():
    from broker_jobs.cli import main

    table = section("cli")
    documented = set(re.findall(r"`broker-jobs ([a-z-]+)", table))
    assert set(main.commands) - documented == set()
