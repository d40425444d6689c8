"""Metric updates batched once a second end up exactly as if applied one by one."""

from __future__ import annotations

import uuid

import prometheus_client as prom
import pytest

from broker_jobs.metrics.batch import MetricBatch

BUCKETS = (5, 10, 25, 50, 100, 250, float("inf"))
#: Durations on, between and beyond the bucket bounds.
DURATIONS = [0, 1, 5, 5.0001, 10, 24.9, 25, 99, 100, 101, 250, 251, 10_000, -3]


def twins(registry: prom.CollectorRegistry) -> dict[str, tuple[object, object]]:
    made = {}
    for way in ("direct", "batched"):
        tag = f"bj_batch_{uuid.uuid4().hex[:8]}_{way}"
        made[way] = (
            prom.Counter(f"{tag}_runs", "runs", ["actor"], registry=registry),
            prom.Gauge(f"{tag}_inprogress", "in progress", ["actor"], registry=registry,
                       multiprocess_mode="livesum"),
            prom.Histogram(f"{tag}_ms", "durations", ["actor"], buckets=BUCKETS, registry=registry),
        )
    return made


def samples(registry: prom.CollectorRegistry, way: str) -> dict[tuple[str, tuple], float]:
    out = {}
    for family in registry.collect():
        for sample in family.samples:
            if sample.name.endswith("_created") or f"_{way}_" not in sample.name:
                continue
            name = sample.name.split(f"_{way}_", 1)[1]
            out[(name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.mark.parametrize("started", [True, False], ids=["thread running", "no thread: applied at once"])
def test_batched_counters_gauges_and_histograms_equal_the_same_updates_made_one_by_one(started: bool):
    registry = prom.CollectorRegistry()
    made = twins(registry)
    batch = MetricBatch(interval=3600)  # nothing is applied before stop()
    if started:
        batch.start()
    direct_runs, direct_gauge, direct_ms = made["direct"]
    runs, gauge, ms = made["batched"]
    for actor in ("etl", "sync"):
        for value in DURATIONS:
            direct_gauge.labels(actor).inc()
            batch.inc(gauge.labels(actor), 1)
            direct_ms.labels(actor).observe(value)
            batch.observe(ms.labels(actor), value)
            direct_runs.labels(actor).inc()
            batch.inc(runs.labels(actor), 1)
        direct_gauge.labels(actor).dec()
        batch.inc(gauge.labels(actor), -1)
    if started:
        assert samples(registry, "batched") != samples(registry, "direct")  # still pending
    batch.stop()
    assert samples(registry, "batched") == samples(registry, "direct")
    assert samples(registry, "direct")[("ms_count", (("actor", "etl"),))] == len(DURATIONS)
