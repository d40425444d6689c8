"""docker-compose's `cluster` profile (deploy/compose/cluster.yml): three RabbitMQ nodes that form one cluster,
quorum queues, and every app process given the three nodes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.test_compose_and_image import APP_SERVICES, compose_command
from tests.support import ROOT

CLUSTER_FILE = ROOT / "deploy" / "compose" / "cluster.yml"
CLUSTER_CONF = ROOT / "rabbitmq" / "cluster.conf"
NODES = ("rabbitmq", "rabbitmq-2", "rabbitmq-3")
SCHEMA = next(Path("/usr/lib/rabbitmq/lib").glob("rabbitmq_server-*/plugins/rabbit-*/priv/schema/rabbit.schema"),
              None)


def cluster_compose(*args: str, cookie: str | None = "a-cookie-for-the-test") -> Any:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "RABBITMQ_", "POSTGRES_"))}
    if cookie is not None:
        env["RABBITMQ_ERLANG_COOKIE"] = cookie
    return subprocess.run([*compose_command(), "-f", str(ROOT / "docker-compose.yml"), "-f", str(CLUSTER_FILE),
                           "--profile", "cluster", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=60)


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    result = cluster_compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_cluster_profile_validates_and_needs_a_shared_erlang_cookie():
    assert cluster_compose("config", "-q").returncode == 0
    refused = cluster_compose("config", "-q", cookie=None)
    assert refused.returncode != 0 and "RABBITMQ_ERLANG_COOKIE" in refused.stderr


def test_three_nodes_with_one_cookie_their_own_data_and_the_cluster_config(config):
    services = config["services"]
    assert {name for name in services if name.startswith("rabbitmq")} == set(NODES)
    cookies = {services[name]["environment"]["RABBITMQ_ERLANG_COOKIE"] for name in NODES}
    assert cookies == {"a-cookie-for-the-test"}
    data = set()
    for name in NODES:
        mounts = {v["target"]: v["source"] for v in services[name]["volumes"]}
        assert Path(mounts["/etc/rabbitmq/conf.d/30-broker-jobs-cluster.conf"]) == CLUSTER_CONF
        assert Path(mounts["/etc/rabbitmq/definitions.json"]) == ROOT / "rabbitmq" / "definitions-quorum.json"
        assert Path(mounts["/etc/rabbitmq/conf.d/20-broker-jobs.conf"]) == ROOT / "rabbitmq" / "rabbitmq.conf"
        data.add(mounts["/var/lib/rabbitmq"])
        assert "healthcheck" in services[name]
    assert len(data) == 3
    assert [services[name].get("hostname") for name in NODES] == list(NODES)


def test_the_nodes_find_each_other_by_their_compose_hostnames_and_pause_the_minority():
    text = CLUSTER_CONF.read_text()
    assert sorted(re.findall(r"^cluster_formation\.classic_config\.nodes\.\d+ = rabbit@(\S+)$", text, re.M)) == \
        sorted(NODES)
    assert re.search(r"^cluster_partition_handling = pause_minority$", text, re.M)


@pytest.mark.skipif(SCHEMA is None, reason="RabbitMQ's configuration schema is not installed")
def test_every_key_of_the_cluster_conf_is_one_rabbitmq_knows():
    assert SCHEMA is not None
    schema = SCHEMA.read_text()
    keys = [line.split(" = ")[0] for line in CLUSTER_CONF.read_text().splitlines()
            if line and not line.startswith("#")]
    assert keys
    for key in keys:
        generic = re.sub(r"\.\d+$", ".$node", key)
        assert f'{{mapping, "{key}"' in schema or f'{{mapping, "{generic}"' in schema, key


def test_every_app_process_gets_the_three_nodes_and_quorum_queues(config, settings_env):
    from broker_jobs.settings import load_settings

    for name in APP_SERVICES:
        environment = config["services"][name]["environment"]
        assert environment["QUEUE_TYPE"] == "quorum"
        settings_env.setenv("RABBITMQ_URLS", environment["RABBITMQ_URLS"])
        settings_env.setenv("QUEUE_TYPE", environment["QUEUE_TYPE"])
        settings = load_settings()
        assert [re.search(r"@([^:]+):", url).group(1) for url in settings.amqp_urls] == list(NODES)
        assert {url.rsplit("/", 1)[1] for url in settings.amqp_urls} == {"broker_jobs"}


def test_the_default_compose_file_keeps_one_node_and_classic_queues():
    from tests.deploy.test_compose_and_image import compose

    result = compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert [name for name in services if name.startswith("rabbitmq")] == ["rabbitmq"]
    assert all("QUEUE_TYPE" not in services[name]["environment"] for name in APP_SERVICES)
