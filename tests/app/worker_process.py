"""A worker process for the crash tests: ``python -m tests.app.worker_process [CRASH_AFTER_BATCH]``.

With an argument, the process SIGKILLs itself right after ETL committed that
batch: no cleanup, no ack, exactly like a machine losing power mid-job.
"""

from __future__ import annotations

import os
import signal
import sys
import threading


def main() -> None:
    import dramatiq

    from broker_jobs.app.jobs import etl
    from broker_jobs.broker import get_broker

    if len(sys.argv) > 1:
        crash_after = int(sys.argv[1])

        def crash(batch: int) -> None:
            if batch == crash_after:
                os.kill(os.getpid(), signal.SIGKILL)

        etl.batch_hook = crash
    broker = get_broker()
    broker.emit_after("process_boot")
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    worker.stop()
    broker.close()


if __name__ == "__main__":
    main()
