"""The Prometheus and Grafana files in deploy/ only query series that something exports."""

from __future__ import annotations

import inspect
import json
import re

import yaml

from broker_jobs.api import collector
from broker_jobs.metrics import definitions
from tests.support import ROOT

DEPLOY = ROOT / "deploy"
SERIES = re.compile(r"\b((?:dramatiq|broker_jobs)_[a-z_]+)\b")


def exported_names() -> set[str]:
    names: set[str] = set()
    for metric in vars(definitions.get()).values():
        kind = getattr(metric, "_type", None)
        name = getattr(metric, "_name", None)
        if name is None:
            continue
        names |= {f"{name}_total"} if kind == "counter" else {name}
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    names |= set(re.findall(r'GaugeMetricFamily\("([a-z_]+)"', inspect.getsource(collector)))
    from dramatiq.middleware import prometheus

    for name in re.findall(r'"(dramatiq_[a-z_]+)"', inspect.getsource(prometheus)):
        names |= {name, f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def test_the_grafana_dashboard_is_valid_json_with_the_promised_panels():
    dashboard = json.loads((DEPLOY / "grafana" / "broker-jobs.json").read_text())
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for topic in ("throughput", "errors", "duration", "queue depth", "schedule lag", "dead letters"):
        assert topic in titles


def test_every_series_queried_by_grafana_and_the_alert_rules_is_exported():
    known = exported_names()
    dashboard = json.loads((DEPLOY / "grafana" / "broker-jobs.json").read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    queries += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {name for q in queries for name in SERIES.findall(q)}
    assert used and used <= known, sorted(used - known)


def test_the_scrape_config_covers_workers_and_the_web_app():
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["broker-jobs-workers"]["static_configs"][0]["targets"] == ["127.0.0.1:9191"]
    assert jobs["broker-jobs-web"]["metrics_path"] == "/metrics"
    assert config["rule_files"] == ["alerts.yml"]
