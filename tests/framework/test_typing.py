"""The framework type-checks under mypy's strict flags (pyproject.toml lists the modules).

mypy runs as ``make lint`` runs it, on the whole package, in a process of its own; the
strict flags apply to every framework module, the built-in application keeps the defaults.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib

from tests.support import ROOT, unavailable

#: The built-in application, outside the framework's strict typing.
APPLICATION_FILES = ("broker_jobs/app/", "broker_jobs/actors/", "broker_jobs/__main__.py")


def test_mypy_finds_no_error_in_the_package():
    if importlib.util.find_spec("mypy") is None:
        unavailable("mypy (the dev extra)")
    done = subprocess.run([sys.executable, "-m", "mypy", "broker_jobs"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "Success: no issues found" in done.stdout


def test_mypy_strict_itself_finds_no_error_in_the_framework():
    # The flags pyproject.toml lists are mypy's --strict, one by one: --strict on the command line
    # must agree for every module but the built-in application's.
    if importlib.util.find_spec("mypy") is None:
        unavailable("mypy (the dev extra)")
    done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "broker_jobs"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    errors = [line for line in done.stdout.splitlines() if ": error:" in line]
    assert errors or done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]  # no crash hidden as "clean"
    assert [e for e in errors if not e.startswith(APPLICATION_FILES)] == []


def test_the_strict_flags_cover_every_framework_module():
    # A framework module outside the override would silently keep mypy's lenient defaults.
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    strict = next(o for o in config["overrides"] if o.get("disallow_untyped_defs"))
    patterns = set(strict["module"])
    application = ("broker_jobs.app", "broker_jobs.actors", "broker_jobs.__main__")
    loose = []
    for path in sorted((ROOT / "broker_jobs").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if module.startswith(application):
            continue
        covered = module in patterns or any(module.startswith(p[:-1]) for p in patterns if p.endswith(".*"))
        if not covered:
            loose.append(module)
    assert loose == []
