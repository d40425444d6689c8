"""Profile one scheduler tick with N jobs due: where do the milliseconds before the publish go?

``python -m benchmarks.profile_scheduler [--n 1000]`` builds the real
:class:`~broker_jobs.scheduling.scheduler.Scheduler` on a jobs file of N cron
jobs due in the same second, with a fake clock and the real confirmed
publisher on the run's private vhost, runs the tick that fires them under
cProfile and prints the tick's wall time and its top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from .common import private_run


def main() -> None:
    """Build, tick once under cProfile, print."""
    parser = argparse.ArgumentParser(prog="benchmarks.profile_scheduler")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--plain", action="store_true", help="no cProfile: just the tick's phases")
    args = parser.parse_args()
    with private_run() as run:
        os.environ.update(run.env())
        os.environ["DATABASE_URL"] = f"sqlite:///{run.workdir}/scheduler.sqlite3"
        from broker_jobs.broker import get_broker
        from broker_jobs.scheduling.lease import DatabaseLease
        from broker_jobs.scheduling.publisher import Publisher
        from broker_jobs.scheduling.scheduler import Scheduler
        from broker_jobs.store.scheduler_state import open_scheduler_store

        from .peers import bj_sched

        slot = (int(time.time()) // 60 + 2) * 60
        path = bj_sched.prepare(run, run.workdir, args.n, slot)
        settings = SimpleNamespace(app_env="development", scheduler_timezone="UTC", jobs_config=path,
                                   redis_url=None, database_url=os.environ["DATABASE_URL"])
        now = [datetime.fromtimestamp(slot - 30, UTC)]
        store = open_scheduler_store(settings.database_url)

        def declare(queues: set[str]) -> None:
            for queue in sorted(queues):
                get_broker().declare_queue(queue, ensure=True)  # type: ignore[call-arg]

        began = time.perf_counter()
        scheduler = Scheduler(settings, store=store, lease=DatabaseLease(store.engine),
                              publisher=Publisher(run.amqp_url), clock=lambda: now[0], declare_queues=declare)
        scheduler.load()
        assert scheduler.step_lease()
        print(f"load + lease with {args.n} jobs: {time.perf_counter() - began:.2f} s")
        now[0] = datetime.fromtimestamp(slot, UTC) + timedelta(milliseconds=1)
        publish, stamps = scheduler.publisher.publish, {}

        def timed_publish(batch: list, now_ms: int) -> None:  # type: ignore[type-arg]
            stamps["start"] = time.perf_counter()
            publish(batch, now_ms)
            stamps["end"] = time.perf_counter()

        scheduler.publisher.publish = timed_publish  # type: ignore[method-assign]
        if args.plain:
            began = time.perf_counter()
            plans = scheduler.tick(now[0])
            print(f"tick firing {len(plans)} jobs: planned in {(stamps['start'] - began) * 1000:.0f} ms, "
                  f"committed at {(stamps['end'] - began) * 1000:.0f} ms, "
                  f"recorded at {(time.perf_counter() - began) * 1000:.0f} ms")
            scheduler.release()
            return
        profile = cProfile.Profile()
        began = time.perf_counter()
        profile.enable()
        plans = scheduler.tick(now[0])
        profile.disable()
        print(f"tick firing {len(plans)} jobs: {(time.perf_counter() - began) * 1000:.0f} ms (under cProfile)")
        out = io.StringIO()
        pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
        scheduler.release()


if __name__ == "__main__":
    main()
