"""requirements.lock pins every runtime dependency of pyproject.toml, with hashes.

The lock is what CI (``make venv``) and the Dockerfile install with
``pip install --require-hashes``; a dependency added to pyproject.toml without
re-running ``make lock`` would be installed unpinned and unaudited.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.support import ROOT

#: What an extra of a runtime dependency pulls in (pip-compile --strip-extras pins them by name).
EXTRA_PACKAGES = {("dramatiq", "rabbitmq"): ["pika"], ("dramatiq", "redis"): ["redis"],
                  ("psycopg", "binary"): ["psycopg-binary"]}


def locked() -> dict[str, tuple[str, list[str]]]:
    """Package -> (pinned version, hashes) from requirements.lock."""
    text = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pins: dict[str, tuple[str, list[str]]] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        match = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", block)
        if match:
            pins[canonicalize_name(match[1])] = (match[2], re.findall(r"--hash=sha256:([0-9a-f]{64})", block))
    return pins


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(spec) for spec in project["dependencies"]]


def test_every_runtime_dependency_is_pinned_in_the_lock_within_its_range_with_hashes():
    pins = locked()
    problems = []
    for requirement in runtime_requirements():
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{name}: not in requirements.lock")
            continue
        pinned, _ = pins[name]
        if not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{name}=={pinned}: outside {requirement.specifier}")
        for extra in requirement.extras:
            problems += [f"{dep} (for {name}[{extra}]): not in requirements.lock"
                         for dep in EXTRA_PACKAGES.get((name, extra), [f"?{extra}"]) if dep not in pins]
    problems += [f"{name}: no hash" for name, (_, hashes) in pins.items() if not hashes]
    assert problems == []


def test_the_virtualenv_runs_the_locked_versions_of_the_runtime_dependencies():
    pins = locked()
    drift = {}
    for name, (pinned, _) in pins.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            drift[name] = "missing"
            continue
        if canonicalize_name(installed) != canonicalize_name(pinned) and installed != pinned:
            drift[name] = f"{installed} installed, {pinned} locked (run make venv)"
    assert drift == {}


def test_ci_and_the_image_install_the_runtime_dependencies_from_the_lock_with_hashes():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    venv_recipe = makefile[makefile.index("$(STAMP):"):makefile.index("services:")]
    assert "install --quiet --require-hashes -r $(LOCK)" in venv_recipe and "LOCK   := requirements.lock" in makefile
    assert "pip install --no-cache-dir --require-hashes -r requirements.lock" in dockerfile
    # The package itself goes in without resolving: nothing unlocked reaches the image.
    assert "pip install --no-cache-dir --no-deps ." in dockerfile
    assert "exec make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
