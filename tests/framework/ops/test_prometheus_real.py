"""The shipped Prometheus configuration, alert rules and dashboard, run by a real Prometheus.

A worker, a scheduler and ``broker-jobs serve`` run on a vhost of their own and share one
metrics directory, as on one host. Debian's ``prometheus`` scrapes them with the scrape
jobs of ``deploy/prometheus/prometheus.yml`` (only targets and intervals changed) and
evaluates ``deploy/prometheus/alerts.yml``; every expression of
``deploy/grafana/broker-jobs.json`` is queried. A control job scraping the same exporter
without ``honor_labels`` shows what the shipped setting prevents: the schedule's ``job``
label renamed to ``exported_job``.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support import RABBITMQ_URL, ROOT, free_ports, port_open, start, stop, unavailable, vhost, wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.slow]

DEPLOY = ROOT / "deploy"
SCHEDULE = "prom-heartbeat"
#: Scrape jobs of deploy/prometheus/prometheus.yml that read our exporters (their series carry `job`).
OUR_JOBS = ("broker-jobs-workers", "broker-jobs-scheduler", "broker-jobs-web")
CONTROL = "control-without-honor-labels"
UNREACHABLE = (httpx.HTTPError, OSError)
SERIES = re.compile(r"\b((?:dramatiq|broker_jobs)_[a-z_]+)\b")


def tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        unavailable(f"the command {name!r} (Debian package prometheus)")
    return str(found)


def scrape_config(ports: dict[str, int], rules: Path) -> dict[str, Any]:
    """The shipped configuration with this test's targets, 1 s intervals and a control job."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    targets = {"broker-jobs-workers": [f"127.0.0.1:{ports['metrics']}"], "broker-jobs-scheduler": [],
               "broker-jobs-web": [f"127.0.0.1:{ports['api']}"]}
    for job in config["scrape_configs"]:
        job["scrape_interval"] = "1s"
        for static in job.get("static_configs", []):
            static["targets"] = targets[job["job_name"]]
    control = copy.deepcopy(next(j for j in config["scrape_configs"] if j["job_name"] == "broker-jobs-workers"))
    control.pop("honor_labels", None)
    control["job_name"] = CONTROL
    for static in control["static_configs"]:
        static["labels"] = {**static.get("labels", {}), "role": "control"}
    config["scrape_configs"].append(control)
    return config


class Prometheus:
    """The HTTP API of a running Prometheus."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result; an expression Prometheus cannot parse or run fails the test."""
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10).json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def rules(self) -> dict[str, dict[str, Any]]:
        """Every loaded alerting rule by name."""
        body = httpx.get(f"{self.url}/api/v1/rules", params={"type": "alert"}, timeout=10).json()
        return {r["name"]: r for g in body["data"]["groups"] for r in g["rules"]}


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Worker, scheduler and web on one host's metrics directory; yields the environment and processes."""
    if not port_open(RABBITMQ_URL, 5672):
        unavailable(f"RabbitMQ at {RABBITMQ_URL}")
    tmp = tmp_path_factory.mktemp("prom-host")
    (tmp / "jobs.yaml").write_text(f"jobs:\n  - {{id: {SCHEDULE}, actor: diagnostics, interval: 1, "
                                   "overlap: allow, misfire: skip}\n")
    metrics_port, api_port = free_ports(2)
    with vhost("bj-prom") as url:
        if url is None:
            unavailable(f"a vhost of its own on RabbitMQ at {RABBITMQ_URL}")
        env = {"RABBITMQ_URL": url, "DATABASE_URL": f"sqlite:///{tmp}/jobs.sqlite3", "REDIS_URL": "",
               "JOBS_CONFIG": str(tmp / "jobs.yaml"), "METRICS_DIR": str(tmp / "metrics"),
               "METRICS_PORT": str(metrics_port), "API_PORT": str(api_port),
               "API_JWT_SECRET": "prom-test-" + "k3y9" * 10, "PYTHONUNBUFFERED": "1"}
        procs = {
            "worker": start(["-m", "dramatiq", "broker_jobs.actors", "--processes", "1", "--threads", "2"], env,
                            tmp / "worker.log"),
            "scheduler": start(["-m", "broker_jobs", "scheduler"], env, tmp / "scheduler.log"),
            "web": start(["-m", "broker_jobs", "serve", "--port", str(api_port)], env, tmp / "web.log"),
        }
        try:
            yield {"env": env, "procs": procs, "ports": {"metrics": metrics_port, "api": api_port}, "tmp": tmp}
        finally:
            for proc in procs.values():
                stop(proc, timeout=30)


@pytest.fixture(scope="module")
def prometheus(host: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """Debian's prometheus scraping ``host`` with the shipped scrape jobs and alert rules."""
    binary = tool("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    rules = tmp / "alerts.yml"
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", rules)
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(scrape_config(host["ports"], rules)))
    [port] = free_ports(1)
    log = tmp / "prometheus.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([binary, f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: proc.poll() is None and httpx.get(url + "/-/ready", timeout=2).status_code == 200,
                 f"prometheus ready (log: {log})", timeout=60, ignore=UNREACHABLE)
        yield Prometheus(url)
    finally:
        stop(proc, timeout=30)


def test_the_shipped_scrape_jobs_keep_our_job_label():
    for path in (DEPLOY / "prometheus" / "prometheus.yml", DEPLOY / "compose" / "prometheus.yml"):
        jobs = {j["job_name"]: j for j in yaml.safe_load(path.read_text())["scrape_configs"]}
        for name in OUR_JOBS:
            assert jobs[name].get("honor_labels") is True, (path, name)


def test_promtool_accepts_the_shipped_rules_and_both_configurations(tmp_path):
    promtool = tool("promtool")
    result = subprocess.run([promtool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout
    # The compose file names the rules where its container mounts them; check it beside a copy.
    shutil.copy(DEPLOY / "prometheus" / "alerts.yml", tmp_path / "alerts.yml")
    compose = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    compose["rule_files"] = [str(tmp_path / "alerts.yml")]
    (tmp_path / "compose.yml").write_text(yaml.safe_dump(compose))
    for config in (DEPLOY / "prometheus" / "prometheus.yml", tmp_path / "compose.yml"):
        result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True,
                                timeout=60, cwd=config.parent)
        assert result.returncode == 0, (config, result.stdout + result.stderr)


def test_the_schedules_job_label_survives_the_scrape_and_is_renamed_without_honor_labels(prometheus):
    series = f'broker_jobs_schedule_slots_total{{job="{SCHEDULE}",outcome="fired"}}'
    [found] = wait_for(lambda: prometheus.query(series), f"{series} in Prometheus", timeout=90, every=1)
    assert found["metric"]["role"] == "worker" and "exported_job" not in found["metric"]
    assert prometheus.query('{__name__=~"broker_jobs_.*|dramatiq_.*", exported_job!="", role!="control"}') == []
    # The same exporter scraped without honor_labels: what the shipped setting prevents.
    [renamed] = wait_for(lambda: prometheus.query(f'broker_jobs_schedule_slots_total{{job="{CONTROL}"}}'),
                         "the control job's series", timeout=60, every=1)
    assert renamed["metric"]["exported_job"] == SCHEDULE


def test_every_dashboard_expression_runs_and_returns_the_series_the_host_exports(prometheus):
    dashboard = json.loads((DEPLOY / "grafana" / "broker-jobs.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    # Per-schedule panels are keyed by job: the schedule's id must be there, not the scrape job's.
    wait_for(lambda: any(r["metric"].get("job") == SCHEDULE for r in prometheus.query(
        "time() - max by (job) (broker_jobs_schedule_last_success_timestamp)")),
        "a successful run of the schedule", timeout=90, every=1)

    def missing() -> list[str]:
        exported = {r["metric"]["__name__"] for r in prometheus.query('{__name__=~"broker_jobs_.*|dramatiq_.*"}')}
        # An expression over series the host has exported must return something.
        return [e for e in exprs if set(SERIES.findall(e)) <= exported and not prometheus.query(e)]

    wait_for(lambda: not missing(), "every dashboard expression over exported series to return data",
             timeout=90, every=2)
    for expr in exprs:
        prometheus.query(expr)  # parses and runs, whether or not its series exist yet
    answered = [e for e in exprs if prometheus.query(e)]
    assert len(answered) >= len(exprs) * 2 // 3, sorted(set(exprs) - set(answered))


def test_each_worker_and_scheduler_process_exports_its_cpu_and_memory_and_the_alerts_watch_them(prometheus):
    # Seed 003: "Resource utilization" metrics and "Resource exhaustion alerts", from the shared directory.
    def by_role() -> dict[str, list[dict[str, Any]]] | None:
        found: dict[str, list[dict[str, Any]]] = {}
        for row in prometheus.query("broker_jobs_process_resident_memory_bytes"):
            found.setdefault(row["metric"]["role"], []).append(row)
        return found if {"worker", "scheduler"} <= set(found) else None

    memory = wait_for(by_role, "worker and scheduler memory series", timeout=60, every=1)
    for role, rows in memory.items():
        assert all("pid" in r["metric"] and float(r["value"][1]) > 10e6 for r in rows), (role, rows)
    cpu = wait_for(lambda: prometheus.query("broker_jobs_process_cpu_seconds") or None, "CPU series", timeout=30)
    assert {r["metric"]["role"] for r in cpu} >= {"worker", "scheduler"}
    assert all(float(r["value"][1]) > 0 for r in cpu)
    # The shipped rules' expressions over these series: quiet at their thresholds, firing at a tiny one.
    rules = {r["alert"]: r for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
             for r in g["rules"]}
    memory_rule = rules["BrokerJobsProcessMemoryHigh"]["expr"]
    assert prometheus.query(memory_rule) == []
    lowered = memory_rule.replace("1.5e9", "1").replace("200e6", "1")
    assert {r["metric"]["role"] for r in prometheus.query(lowered)} == {"worker", "scheduler"}
    cpu_rule = rules["BrokerJobsProcessCpuBusy"]["expr"]
    assert prometheus.query(cpu_rule) == []
    assert wait_for(lambda: prometheus.query(cpu_rule.replace("> 0.9", ">= 0")) or None, "a CPU rate per process",
                    timeout=60, every=1)


def test_the_alert_rules_load_and_no_leader_is_quiet_while_a_scheduler_leads_then_pending(prometheus, host):
    rules = wait_for(prometheus.rules, "the alert rules loaded", timeout=30, every=1)
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    assert set(rules) == {r["alert"] for g in shipped["groups"] for r in g["rules"]}
    wait_for(lambda: prometheus.query("max(broker_jobs_scheduler_leader) == 1"), "the leader gauge at 1",
             timeout=90, every=1)
    seen_leading = time.time()

    def evaluated_after(name: str) -> dict[str, Any] | None:
        rule = prometheus.rules()[name]
        last = rule.get("lastEvaluation", "")
        return rule if last and _epoch(last) > seen_leading + 1 else None

    rule = wait_for(lambda: evaluated_after("BrokerJobsNoSchedulerLeader"), "an evaluation with a leader",
                    timeout=30, every=1)
    assert rule["state"] == "inactive" and rule["health"] == "ok", rule
    assert prometheus.query('ALERTS{alertname="BrokerJobsNoSchedulerLeader"}') == []
    for name, loaded in prometheus.rules().items():
        assert loaded["health"] == "ok" and not loaded.get("lastError"), (name, loaded)

    # The rule really watches the scheduler: once it stops, the leader gauge goes and it is pending.
    assert stop(host["procs"]["scheduler"], timeout=30) == 0
    wait_for(lambda: prometheus.rules()["BrokerJobsNoSchedulerLeader"]["state"] == "pending",
             "the no-leader alert pending after the scheduler stopped", timeout=60, every=1)


def _epoch(rfc3339: str) -> float:
    from datetime import datetime

    text = re.sub(r"(\.\d{6})\d*", r"\1", rfc3339).replace("Z", "+00:00")
    return datetime.fromisoformat(text).timestamp()
