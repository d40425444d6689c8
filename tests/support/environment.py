"""Where the tests run: the repository, the shared RabbitMQ, and what a started command must not inherit."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
#: The shared RabbitMQ; tests work on vhosts of their own (:func:`tests.support.rabbitmq.vhost`).
RABBITMQ_URL = os.environ.get("RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")

#: The test process's own Prometheus set-up (broker_jobs writes it into ``os.environ``): never handed
#: down, a command started by a test takes its metrics directory and port from METRICS_DIR / METRICS_PORT.
PROCESS_METRICS = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir", "dramatiq_prom_db", "dramatiq_prom_port",
                   "dramatiq_prom_host")
