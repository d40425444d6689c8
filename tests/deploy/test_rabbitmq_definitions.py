"""rabbitmq/: the broker's own config never conflicts with what the code declares."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

import pytest

from broker_jobs.store.db import get_engine
from broker_jobs.store.queries import query_runs
from tests.deploy.conftest import Management
from tests.support import ROOT, run_cli, start, stop, wait_for, wait_for_log

RABBITMQ_DIR = ROOT / "rabbitmq"
DEFINITIONS = json.loads((RABBITMQ_DIR / "definitions.json").read_text())
VHOST = "broker_jobs"
USER = "broker_jobs"
#: The password whose hash definitions.json ships (documented in the README: change it).
SHIPPED_PASSWORD = "change-me"


def code_topology() -> dict[str, dict[str, Any]]:
    """Every queue the code declares for the built-in queues, with its arguments."""
    from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL

    from broker_jobs.broker import QUEUES, JobsBroker
    from broker_jobs.priorities import MAX_PRIORITY

    broker = JobsBroker(url="amqp://127.0.0.1:1/%2F", max_priority=MAX_PRIORITY, middleware=[])
    wanted: dict[str, dict[str, Any]] = {}
    for queue in QUEUES:
        wanted[queue] = broker._build_queue_arguments(queue)
        wanted[f"{queue}.DQ"] = broker._build_queue_arguments(queue)
        wanted[f"{queue}.XQ"] = {"x-message-ttl": DEAD_MESSAGE_TTL}
    return wanted


def test_definitions_declare_the_queues_exactly_as_the_code_does():
    declared = {q["name"]: q["arguments"] for q in DEFINITIONS["queues"]}
    assert declared == code_topology()
    assert all(q["durable"] and not q["auto_delete"] and q["vhost"] == VHOST for q in DEFINITIONS["queues"])


def test_no_policy_sets_a_key_that_a_matching_queue_sets_as_an_argument():
    matched = [(policy, queue) for policy in DEFINITIONS["policies"] for queue in DEFINITIONS["queues"]
               if re.search(policy["pattern"], queue["name"])]
    assert matched, "no policy matches a shipped queue: nothing checked"
    for policy, queue in matched:
        arguments = {name.removeprefix("x-") for name in queue["arguments"]}
        assert not set(policy["definition"]) & arguments, (policy["name"], queue["name"])


def test_no_guest_user_and_the_app_user_may_use_only_its_vhost():
    assert [u["name"] for u in DEFINITIONS["users"]] == [USER]
    assert "administrator" not in DEFINITIONS["users"][0]["tags"]
    assert [(p["user"], p["vhost"]) for p in DEFINITIONS["permissions"]] == [(USER, VHOST)]
    conf = (RABBITMQ_DIR / "rabbitmq.conf").read_text()
    assert re.search(r"^loopback_users\.guest = true$", conf, re.M)


def test_the_conf_documents_a_consumer_timeout_equal_to_the_default_setting():
    from broker_jobs.settings import DEFAULT_CONSUMER_TIMEOUT

    conf = (RABBITMQ_DIR / "rabbitmq.conf").read_text()
    [value] = re.findall(r"^consumer_timeout = (\d+)$", conf, re.M)
    assert int(value) == DEFAULT_CONSUMER_TIMEOUT * 1000
    assert "CONSUMER_TIMEOUT" in conf


def test_enabled_plugins_has_management_and_prometheus():
    text = (RABBITMQ_DIR / "enabled_plugins").read_text().strip()
    assert text.startswith("[") and text.endswith("].")
    assert {p.strip() for p in text[1:-2].split(",")} == {"rabbitmq_management", "rabbitmq_prometheus"}


def renamed_definitions(vhost: str, user: str) -> dict[str, Any]:
    """definitions.json with its vhost and user renamed, so the import touches nothing else."""
    text = json.dumps(DEFINITIONS)
    text = text.replace(f'"vhost": "{VHOST}"', f'"vhost": "{vhost}"')
    data = json.loads(text)
    for item in data["vhosts"]:
        item["name"] = vhost
    for item in data["users"]:
        item["name"] = user
    for item in data["permissions"]:
        item["user"] = user
    return data


@pytest.mark.rabbitmq
def test_a_worker_runs_cleanly_on_the_imported_definitions(management: Management, scratch, worker_env,
                                                          tmp_path):
    vhost, user = scratch("bj-defs"), scratch("bj-defs-user")
    management.request("POST", "/definitions", json=renamed_definitions(vhost, user))
    env = {**worker_env, "RABBITMQ_URL": management.amqp_url(vhost, user, SHIPPED_PASSWORD)}
    log_path = tmp_path / "worker.log"

    worker = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "1"], env, log_path)
    try:
        wait_for_log(log_path, "ready for action", worker, timeout=45)
        assert worker.poll() is None, log_path.read_text()
        sent = run_cli("send", "diagnostics", env=env)
        assert sent.returncode == 0, sent.stderr
        message_id = sent.stdout.strip()

        def succeeded() -> bool:
            # Read the worker's history in-process: a CLI call per poll costs seconds of imports.
            runs = query_runs(get_engine(env["DATABASE_URL"]), actor="diagnostics")
            return any(r.message_id == message_id and r.status == "succeeded" for r in runs)

        wait_for(succeeded, f"diagnostics {message_id} to succeed", timeout=45)
    finally:
        stop(worker)
    log = log_path.read_text()
    assert "PRECONDITION_FAILED" not in log
    assert "CRITICAL" not in log

    def queues() -> dict[str, Any]:
        return {q["name"]: q for q in management.request("GET", f"/queues/{quote(vhost, safe='')}").json()}

    assert {name: queues()[name]["arguments"] for name in code_topology()} == code_topology()
    # The management API shows the applied policy a few seconds late.
    wait_for(lambda: {q.get("policy") for name, q in queues().items() if name.endswith(".XQ")} == {
        "broker-jobs-dead-letters"}, "the dead-letter policy on every .XQ queue", timeout=20)


#: The definitions of the cluster profile: the same user, vhost and permissions, quorum queues.
QUORUM_DEFINITIONS = json.loads((RABBITMQ_DIR / "definitions-quorum.json").read_text())


def quorum_code_topology() -> dict[str, dict[str, Any]]:
    """Every queue the code declares for the built-in queues with QUEUE_TYPE=quorum, bands included."""
    from broker_jobs.broker import QUEUES, JobsBroker
    from broker_jobs.topology import family

    broker = JobsBroker(url="amqp://127.0.0.1:1/%2F", middleware=[], queue_type="quorum")
    return {queue: broker.arguments(queue) for name in QUEUES for queue in family(name, "quorum")}


def test_quorum_definitions_declare_the_queues_exactly_as_the_code_does_with_quorum_queues():
    declared = {q["name"]: q["arguments"] for q in QUORUM_DEFINITIONS["queues"]}
    assert declared == quorum_code_topology()
    assert all(q["durable"] and not q["auto_delete"] and q["vhost"] == VHOST for q in QUORUM_DEFINITIONS["queues"])
    assert all(q["arguments"]["x-queue-type"] == "quorum" for q in QUORUM_DEFINITIONS["queues"])


def test_quorum_definitions_share_the_user_vhost_and_permissions_and_no_policy_conflicts():
    for key in ("users", "vhosts", "permissions"):
        assert QUORUM_DEFINITIONS[key] == DEFINITIONS[key], key
    matched = [(policy, queue) for policy in QUORUM_DEFINITIONS["policies"] for queue in QUORUM_DEFINITIONS["queues"]
               if re.search(policy["pattern"], queue["name"])]
    assert matched
    for policy, queue in matched:
        arguments = {name.removeprefix("x-") for name in queue["arguments"]}
        assert not set(policy["definition"]) & arguments, (policy["name"], queue["name"])
        assert "queue-mode" not in policy["definition"]  # classic queues only


@pytest.mark.rabbitmq
def test_a_quorum_worker_runs_cleanly_on_the_imported_quorum_definitions(management: Management, scratch,
                                                                         worker_env, tmp_path):
    vhost, user = scratch("bj-qdefs"), scratch("bj-qdefs-user")
    data = renamed_definitions(vhost, user)
    quorum = json.loads(json.dumps(QUORUM_DEFINITIONS).replace(f'"vhost": "{VHOST}"', f'"vhost": "{vhost}"'))
    data["queues"], data["policies"] = quorum["queues"], quorum["policies"]
    management.request("POST", "/definitions", json=data)
    env = {**worker_env, "RABBITMQ_URL": management.amqp_url(vhost, user, SHIPPED_PASSWORD), "QUEUE_TYPE": "quorum"}
    log_path = tmp_path / "worker.log"

    worker = start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "1"], env, log_path)
    try:
        wait_for_log(log_path, "ready for action", worker, timeout=45)
        sent = run_cli("send", "diagnostics", "--priority", "high", env=env)
        assert sent.returncode == 0, sent.stderr
        message_id = sent.stdout.strip()
        wait_for(lambda: any(r.message_id == message_id and r.status == "succeeded"
                             for r in query_runs(get_engine(env["DATABASE_URL"]), actor="diagnostics")),
                 f"diagnostics {message_id} to succeed", timeout=45)
    finally:
        stop(worker)
    log = log_path.read_text()
    assert "PRECONDITION_FAILED" not in log and "CRITICAL" not in log
    queues = {q["name"]: q for q in management.request("GET", f"/queues/{quote(vhost, safe='')}").json()}
    assert {name: queues[name]["arguments"] for name in quorum_code_topology()} == quorum_code_topology()
    assert {queues[name]["type"] for name in quorum_code_topology()} == {"quorum"}
