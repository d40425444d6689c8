"""No API_JWT_SECRET shipped in this repository starts a production process.

Every literal value of ``API_JWT_SECRET`` in the deploy files (Kubernetes secret, systemd
environment example, docker-compose, README) is extracted and handed to the real
``broker-jobs`` with ``APP_ENV=production``: it must be refused with one line naming
the variable and exit 2, without repeating the value; a random secret passes.
"""

from __future__ import annotations

import re
import secrets
import string
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from broker_jobs.secret_quality import MIN_LENGTH, weakness
from tests.support import ROOT, run_cli

#: ``API_JWT_SECRET=value`` or ``API_JWT_SECRET: value`` with a literal value.
ASSIGNMENT = re.compile(r"""\bAPI_JWT_SECRET\s*[:=][ \t]*["']?([^\s"'#]*)""")
SHIPPED = ("deploy", "docker-compose.yml", "README.md", "Procfile", "app.json", ".env.example",
           "env.example")


def shipped_files() -> list[Path]:
    files = []
    for name in SHIPPED:
        path = ROOT / name
        if path.is_dir():
            files += [p for p in sorted(path.rglob("*")) if p.is_file() and p.suffix not in (".json", ".png")]
        elif path.is_file():
            files.append(path)
    return files


def shipped_values() -> dict[str, str]:
    """``file:line`` -> the literal secret written there (values computed by a shell are skipped)."""
    values = {}
    for path in shipped_files():
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = ASSIGNMENT.search(line)
            if match and match.group(1) and not match.group(1).startswith(("$", "`")):
                values[f"{path.relative_to(ROOT)}:{number}"] = match.group(1)
    return values


def test_the_scan_finds_the_placeholders_of_kubernetes_and_systemd():
    secret = yaml.safe_load((ROOT / "deploy" / "k8s" / "secret.yaml").read_text())
    env_file = (ROOT / "deploy" / "systemd" / "broker-jobs.env.example").read_text()
    [from_env_file] = re.findall(r"^API_JWT_SECRET=(.*)$", env_file, re.M)
    found = set(shipped_values().values())
    assert {secret["stringData"]["API_JWT_SECRET"], from_env_file} <= found
    # docker-compose passes the variable through, with no value of its own.
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert compose["x-app"]["environment"]["API_JWT_SECRET"] in (None, "")


def refused_in_one_line(result, value: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "API_JWT_SECRET" in result.stderr and "Traceback" not in result.stderr
    if value:
        assert value not in result.stderr


@pytest.mark.parametrize(("where", "value"), sorted(shipped_values().items()))
def test_a_shipped_secret_is_refused_in_production_by_check_config_and_serve(where, value):
    env = {"APP_ENV": "production", "API_JWT_SECRET": value}
    refused_in_one_line(run_cli("check-config", env=env), value)
    refused_in_one_line(run_cli("serve", "--port", "1", env=env), value)


def test_the_empty_value_docker_compose_passes_through_is_refused_by_serve_in_production():
    refused_in_one_line(run_cli("serve", "--port", "1", env={"APP_ENV": "production", "API_JWT_SECRET": ""}), "")


@pytest.mark.parametrize("value", ["s3cr3t-but-short", "x" * 64, "ab" * 32, "<put-a-long-random-secret-here>"],
                         ids=["too-short", "one-repeated-character", "two-characters", "angle-placeholder"])
def test_a_short_repeated_or_bracketed_secret_is_refused_in_production(value):
    refused_in_one_line(run_cli("check-config", env={"APP_ENV": "production", "API_JWT_SECRET": value}), value)


def test_a_random_secret_passes_in_production_and_a_placeholder_still_runs_in_development():
    good = run_cli("check-config", env={"APP_ENV": "production", "API_JWT_SECRET": secrets.token_hex(32)})
    assert good.returncode == 0, good.stderr
    placeholder = next(iter(shipped_values().values()))
    dev = run_cli("check-config", env={"APP_ENV": "development", "API_JWT_SECRET": placeholder})
    assert dev.returncode == 0, dev.stderr


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([secrets.token_hex, secrets.token_urlsafe]), st.integers(min_value=24, max_value=96))
def test_secrets_made_the_way_the_readme_says_always_pass(make, nbytes):
    assert weakness(make(nbytes)) is None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable, max_size=MIN_LENGTH - 1))
def test_any_secret_shorter_than_32_characters_is_weak(value):
    assert weakness(value) is not None


@settings(max_examples=200, deadline=None)
@given(st.characters(blacklist_categories=("Cs",)), st.integers(min_value=MIN_LENGTH, max_value=200))
def test_any_single_character_repeated_is_weak(char, length):
    assert weakness(char * length) == "it is one character repeated"
