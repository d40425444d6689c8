"""A worker process freezes its start-up heap once, after every other middleware has booted.

Each check runs in a process of its own: the test process itself never freezes (see conftest).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker_jobs.middleware.heap import GC_THRESHOLD
from tests.support import ROOT

pytestmark = pytest.mark.rabbitmq

WORKER = """
import gc, json
import dramatiq
from broker_jobs.broker import build_broker, use_broker
from broker_jobs.middleware.heap import freeze_startup_heap
from broker_jobs.settings import get_settings

before = gc.get_freeze_count()
broker = use_broker(build_broker(get_settings()))
broker.emit_after("process_boot")
worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
worker.start()
try:
    print(json.dumps({"before": before, "frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold()),
                      "first": type(broker.middleware[0]).__name__, "again": freeze_startup_heap()}))
finally:
    worker.stop()
"""

SKIPPED = """
import gc, json
from broker_jobs.middleware.heap import freeze_startup_heap, skip_heap_freeze
skip_heap_freeze()
froze = freeze_startup_heap()
print(json.dumps({"froze": froze, "frozen": gc.get_freeze_count(), "threshold": list(gc.get_threshold())}))
"""


def run_python(code: str, tmp_path: Path, **env: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/history.sqlite3", **env})
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_a_booted_worker_has_frozen_its_start_up_heap_once_and_collects_young_objects_less_often(
        rabbitmq_url, tmp_path):
    result = run_python(WORKER, tmp_path, RABBITMQ_URL=rabbitmq_url)
    assert result["before"] == 0
    assert isinstance(result["frozen"], int) and result["frozen"] > 50_000  # Dramatiq, pika, SQLAlchemy, the jobs
    assert result["threshold"] == list(GC_THRESHOLD)
    assert result["first"] == "HeapFreeze"  # first in the stack: its after_worker_boot runs last
    assert result["again"] is False


def test_a_process_that_minds_its_own_heap_is_never_frozen(tmp_path):
    result = run_python(SKIPPED, tmp_path)
    assert result == {"froze": False, "frozen": 0, "threshold": list(gc.get_threshold())}
