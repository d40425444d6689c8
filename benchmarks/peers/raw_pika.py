"""Raw pika: durable publishes, and a consumer acking each message after the job.

The floor of what a Python worker on RabbitMQ can do: no middleware, no
retries, no serialisation beyond JSON.  ``python -m benchmarks.peers.raw_pika
consume --processes N`` runs N consumer processes (one connection each).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
from collections.abc import Callable
from typing import Any

import pika

from .noop import bump

QUEUE = "bench_pika"
PREFETCH = 16


def _channel() -> tuple[pika.BlockingConnection, Any]:
    connection = pika.BlockingConnection(pika.URLParameters(os.environ["BENCH_AMQP_URL"]))
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True)
    return connection, channel


def sender() -> tuple[Callable[[str, int, float], None], Callable[[], None]]:
    """A publisher of durable messages (no confirms, as Dramatiq's and Celery's defaults)."""
    connection, channel = _channel()
    properties = pika.BasicProperties(delivery_mode=2, content_type="application/json")

    def send(key: str, total: int, sent_at: float) -> None:
        body = json.dumps({"args": [key, total, sent_at]})
        channel.basic_publish("", QUEUE, body, properties)

    return send, connection.close


def consume() -> None:
    """Run the no-op job for every message, acking each one after it."""
    connection, channel = _channel()
    channel.basic_qos(prefetch_count=PREFETCH)

    def on_message(ch: Any, method: Any, _properties: Any, body: bytes) -> None:
        bump(*json.loads(body)["args"])
        ch.basic_ack(method.delivery_tag)

    signal.signal(signal.SIGTERM, lambda *_: channel.stop_consuming())
    channel.basic_consume(QUEUE, on_message)
    try:
        channel.start_consuming()
    finally:
        connection.close()


def main() -> None:
    """``consume --processes N``."""
    parser = argparse.ArgumentParser(prog="raw_pika")
    parser.add_argument("command", choices=["consume"])
    parser.add_argument("--processes", type=int, default=1)
    args = parser.parse_args()
    if args.processes == 1:
        consume()
        return
    children = [multiprocessing.Process(target=consume) for _ in range(args.processes)]
    for child in children:
        child.start()
    signal.signal(signal.SIGTERM, lambda *_: [c.terminate() for c in children])
    for child in children:
        child.join()


if __name__ == "__main__":
    main()
