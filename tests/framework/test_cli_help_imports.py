"""``broker-jobs --help`` imports click and the command definitions only (what makes it start at once).

Read from ``python -X importtime`` of the real command, in a process of its own: no speed is asserted (the machine
is shared), only which libraries were loaded.
"""

from __future__ import annotations

import re
import subprocess
import sys

from tests.support import ROOT

HEAVY = ("sqlalchemy", "pydantic", "pydantic_settings", "dramatiq", "pika", "fastapi", "starlette", "numpy",
         "qdrant_client", "alembic", "redis", "prometheus_client", "httpx", "yaml", "apscheduler")


def imported_by(*args: str) -> set[str]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "broker_jobs", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return {m.group(1).strip() for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", done.stderr, re.M)}


def test_broker_jobs_help_loads_no_heavy_library():
    modules = imported_by("--help")
    assert "click" in modules and "broker_jobs.cli.main" in modules  # the reader sees the imports at all
    loaded = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert loaded == []


def test_a_command_help_loads_no_heavy_library_either():
    for command in (["send", "--help"], ["history", "--help"], ["jobs", "list", "--help"], ["scheduler", "--help"]):
        modules = imported_by(*command)
        assert sorted(m for m in modules if m.split(".")[0] in HEAVY) == [], command
