"""``broker-jobs scheduler`` and ``broker-jobs jobs ...`` (imports nothing heavy at module level)."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from ..cli.common import complete_actors, complete_job_ids, dump, guarded, load_jobs, parse_json, settings, table
from ..logging import configure_logging


def _when(option: str, text: str | None) -> datetime | None:
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light

    if text is None:
        return None
    text = text.replace("Z", "+00:00")
    if len(text) > 10 and text[10] in "+-":  # a date with a zone: Python 3.11 would drop the zone
        text = f"{text[:10]}T00:00{text[10:]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option}: not an ISO date and time: {text!r}") from None


def _every(text: str) -> float:
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if text and text[-1] in units:
            return float(text[:-1]) * units[text[-1]]
        return float(text)
    except ValueError:
        raise ConfigError(f"--every: not a duration: {text!r} (use 30, 30s, 5m, 2h, 1d)") from None


@click.group("scheduler", invoke_without_command=True)
@click.option("--engine", type=click.Choice(["broker-jobs", "apscheduler"]), default="broker-jobs",
              show_default=True, help="Our scheduler (leases, HA), or APScheduler 3 (one instance per database).")
@click.option("--daemon", is_flag=True, help="Detach into the background; the pid goes to SCHEDULER_PID_FILE.")
@click.option("--log-file", type=click.Path(dir_okay=False), help="The daemon's log (default: the pid file's .log).")
@click.option("--group", help="Run only the jobs of this group (the jobs file's group:), under a lease of its own.")
@click.pass_context
@guarded
def scheduler(ctx: click.Context, engine: str, daemon: bool, log_file: str | None, group: str | None) -> None:
    """Run a scheduler instance (run any number: one leader fires each slot; one set per --group); `stop` and
    `status` below."""
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light

    if ctx.invoked_subcommand is not None:
        return
    if group is not None and engine != "broker-jobs":
        raise ConfigError("--group: only the broker-jobs engine runs one scheduler per group")
    if daemon:
        from .daemon import daemonize  # deferred: only with --daemon

        pid_file = Path(settings().scheduler_pid_file)
        pid = daemonize(pid_file, Path(log_file) if log_file else pid_file.with_suffix(".log"))
        if pid is not None:  # the caller: the daemon runs on
            click.echo(f"scheduler daemon started: pid {pid} (pid file {pid_file})")
            return
    _run_scheduler(engine, group)


@scheduler.command("stop")
@click.option("--timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Seconds to wait for it to exit.")
@guarded
def scheduler_stop(timeout: float) -> None:
    """Stop the scheduler daemon of SCHEDULER_PID_FILE (SIGTERM: it releases its lease and exits)."""
    from .daemon import stop  # deferred: only for this command

    pid = stop(Path(settings().scheduler_pid_file), timeout)
    click.echo(f"scheduler daemon stopped (pid {pid})")


@scheduler.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def scheduler_status(as_json: bool) -> None:
    """Running scheduler instances (both engines) from their heartbeats, and this host's daemon."""
    from . import control  # deferred: the scheduler's machinery (dramatiq, SQLAlchemy, Redis)
    from .daemon import running_pid  # deferred: only for this command

    s = settings()
    status = control.scheduler_status(s)
    for row in status["instances"]:
        row["engine"] = "apscheduler" if str(row["instance_id"]).startswith("apscheduler:") else "broker-jobs"
    pid_file = Path(s.scheduler_pid_file)
    status["daemon"] = {"pid_file": str(pid_file), "pid": running_pid(pid_file)}
    if as_json:
        dump(status)
        return
    daemon_pid = status["daemon"]["pid"]
    click.echo(f"daemon: {'pid ' + str(daemon_pid) if daemon_pid else 'none'} ({pid_file})")
    click.echo(f"leader: {status['leader'] or 'none'}; {status['alive']} instance(s) alive")
    click.echo(table(status["instances"], ["instance_id", "engine", "leader", "heartbeat_at", "alive", "errors",
                                           "last_error"]))


def _run_scheduler(engine: str, group: str | None) -> None:
    """Run one instance of ``engine`` (of ``group``'s jobs only, if given) in this process until SIGTERM or SIGINT."""
    # deferred (each below): the scheduler's machinery pulls dramatiq, SQLAlchemy and Redis; --help stays light
    from ..broker import get_broker  # deferred: dramatiq and pika
    from ..store.scheduler_state import open_scheduler_store  # deferred: SQLAlchemy
    from .control import check_group  # deferred: SQLAlchemy
    from .firing import declare_queues  # deferred: the broker
    from .lease import build_lease, lease_name  # deferred: redis

    s = settings()
    configure_logging(s.log_level, s.log_format)
    load_jobs()
    if group is not None:
        check_group(s, group)
    from .. import probes  # deferred: prometheus_client and the probes' server
    from ..metrics.env import configure  # deferred: prometheus_client
    from ..metrics.exporter import start_exporter  # deferred: prometheus_client

    # Serves now, or takes the port over when this host's worker exporter stops.
    start_exporter(s.metrics_host, s.metrics_port, role="scheduler")
    store = open_scheduler_store(s.database_url, fence=lease_name(group))

    def declare(queues: set[str]) -> None:
        declare_queues(get_broker(), queues)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    log = logging.getLogger(__name__)
    env = configure()
    from .. import metrics  # deferred: prometheus_client, after configure()

    def resources() -> None:
        metrics.process_resources("scheduler")

    if engine == "apscheduler":
        from .aps_engine import ApsEngine  # deferred: apscheduler, dramatiq, SQLAlchemy

        aps = ApsEngine(s, store, declare_queues=declare)
        aps.start()
        log.info("[apscheduler] instance %s started: %d jobs from %s, job store table %s", aps.instance_id,
                 len(aps.catalog.jobs), aps.catalog.config_path, "apscheduler_jobs")
        beat = probes.Beat(env, "scheduler", aps.health, on_beat=resources).start()
        try:
            aps.run(stop)
        finally:
            beat.stop()
        return
    from .publisher import Publisher  # deferred: dramatiq and pika
    from .scheduler import Scheduler  # deferred: dramatiq, SQLAlchemy, redis

    instance = Scheduler(s, store=store, lease=build_lease(s, store.engine, group),
                         publisher=Publisher.for_settings(s),
                         declare_queues=declare, group=group)
    instance.load()
    log.info(
        "[scheduler] instance %s started: %d jobs%s from %s, lease %s in %s", instance.instance_id,
        len(instance.jobs), f" of group {group}" if group else "", instance.config_path, lease_name(group),
        "Redis" if s.redis_url else "the database")
    beat = probes.Beat(env, "scheduler", instance.health, on_beat=resources).start()
    try:
        instance.run(stop)
    finally:
        beat.stop()  # the exporter's threads end with the process, which frees the port at once


@click.group("jobs")
def jobs() -> None:
    """Scheduled jobs: list, show, preview, pause, resume, run-now, backfill, add, remove, status, stats."""


def _control() -> Any:
    from . import control  # deferred: SQLAlchemy and the jobs file, only when the command runs

    load_jobs()
    return control


def _firing() -> Any:
    from . import firing  # deferred: the broker and the publisher as well, only for run-now and backfill

    load_jobs()
    return firing


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_list(as_json: bool) -> None:
    """Every job with its trigger, priority, state, next and last run."""
    rows = _control().list_jobs(settings())
    if as_json:
        dump(rows)
        return
    for row in rows:
        row["state"] = "paused" if row["paused"] else ("enabled" if row["enabled"] else "disabled")
    click.echo(table(rows, ["id", "actor", "trigger", "priority", "state", "next_run", "last_run", "last_outcome"]))


@jobs.command("show")
@click.argument("job_id", shell_complete=complete_job_ids)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_show(job_id: str, as_json: bool) -> None:
    """One job in full and its recent slot outcomes."""
    row = _control().show_job(settings(), job_id)
    if as_json:
        dump(row)
        return
    audit = row.pop("audit")
    flights = row.pop("in_flight")
    for key, value in row.items():
        click.echo(f"{key + ':':15} {json.dumps(value, default=str) if isinstance(value, (dict, list)) else value}")
    click.echo(f"{'in flight:':15} " + (", ".join(f"{f['fire_id']} ({f['state']})" for f in flights) or "none"))
    click.echo("\nrecent slots:")
    click.echo(table(audit, ["slot", "outcome", "fire_id", "lag_ms", "detail"]))


@jobs.command("preview")
@click.argument("job_id", shell_complete=complete_job_ids)
@click.option("--count", type=click.IntRange(1, 1000), default=10, show_default=True)
@click.option("--from", "start", help="Start after this ISO time (default now; naive = the job's zone).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_preview(job_id: str, count: int, start: str | None, as_json: bool) -> None:
    """The next fire times, DST-aware, in the job's time zone."""
    times = _control().preview(settings(), job_id, count, _when("--from", start))
    if as_json:
        dump([t.isoformat() for t in times])
    else:
        click.echo("\n".join(t.isoformat() for t in times) or "no more slots")


def _window(text: str) -> tuple[datetime, datetime]:
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light

    start, sep, end = text.partition("/")
    first, last = _when("--down", start) if sep else None, _when("--down", end) if sep else None
    if first is None or last is None or first.tzinfo is None or last.tzinfo is None or not first < last:
        raise ConfigError(f"--down: not FROM/TO, two ISO times with a zone, FROM first: {text!r}")
    return first, last


@jobs.command("simulate")
@click.option("--from", "start", help="Start (ISO time with a zone; default now).")
@click.option("--to", "end", help="End (ISO time with a zone; default 7 days after --from).")
@click.option("--down", "down", multiple=True, metavar="FROM/TO",
              help="The scheduler is down from FROM to TO (ISO times): its misfire policies decide those slots.")
@click.option("--duration", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds each run lasts (the overlap policies then apply).")
@click.option("--paused", "paused", multiple=True, shell_complete=complete_job_ids, help="A job paused throughout.")
@click.option("--job", "only", multiple=True, shell_complete=complete_job_ids, help="Only this job (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_simulate(start: str | None, end: str | None, down: tuple[str, ...], duration: float,
                  paused: tuple[str, ...], only: tuple[str, ...], as_json: bool) -> None:
    """Play the jobs file on a virtual clock: every slot and its decision (misfire, overlap, DST).

    Nothing is published or recorded. A year of the shipped jobs file takes under a second.
    """
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light
    from .config import load_config  # deferred: pydantic and the jobs, only when the command runs
    from .simulate import render  # deferred: the scheduling machinery, only when the command runs

    first = _when("--from", start) or datetime.now(UTC)
    last = _when("--to", end) or first + timedelta(days=7)
    for option, value in (("--from", first), ("--to", last)):
        if value.tzinfo is None:
            raise ConfigError(f"{option}: give a zone (Z or +01:00): {value.isoformat()!r}")
    if not first < last:
        raise ConfigError("--to: must come after --from")
    load_jobs()
    jobs = load_config(settings().jobs_config, settings()).jobs
    known = {job.id for job in jobs}
    for option, ids in (("--job", only), ("--paused", paused)):
        for job_id in ids:
            if job_id not in known:
                raise ConfigError(f"{option}: no job {job_id!r} in the jobs file (known: {', '.join(sorted(known))})")
    chosen = [job for job in jobs if not only or job.id in only]
    windows = [_window(w) for w in down]
    # Written in pieces of many lines, as rendered: a year is hundreds of thousands of them.
    for piece in render(chosen, first, last, down=windows, duration=duration, paused=set(paused), as_json=as_json):
        sys.stdout.write(piece)
    sys.stdout.flush()


def _target(job_id: str | None, everything: bool, group: str | None) -> str:
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light

    if sum((job_id is not None, everything, group is not None)) != 1:
        raise ConfigError("say what: a JOB_ID, --all (the whole scheduler) or --group NAME (one group's scheduler)")
    return "job" if job_id is not None else "scheduler"


@jobs.command("pause")
@click.argument("job_id", required=False, shell_complete=complete_job_ids)
@click.option("--all", "everything", is_flag=True, help="Pause the whole scheduler: every job.")
@click.option("--group", help="Pause one group's jobs (the jobs file's group:).")
@click.option("--note", help="Why (shown in jobs list and show).")
@guarded
def jobs_pause(job_id: str | None, everything: bool, group: str | None, note: str | None) -> None:
    """Pause a job, a group or the whole scheduler, on every scheduler instance."""
    if _target(job_id, everything, group) == "job":
        assert job_id is not None
        _control().pause(settings(), job_id, note)
        click.echo(f"paused {job_id}" + (f": {note}" if note else ""))
        return
    done = _control().pause_scheduler(settings(), group, note)
    click.echo(f"paused {done['scheduler']}" + (f": {note}" if note else ""))


@jobs.command("resume")
@click.argument("job_id", required=False, shell_complete=complete_job_ids)
@click.option("--all", "everything", is_flag=True, help="Resume the whole scheduler.")
@click.option("--group", help="Resume one group's jobs.")
@guarded
def jobs_resume(job_id: str | None, everything: bool, group: str | None) -> None:
    """Resume a paused job, group or the whole scheduler from the next slot (paused slots are not caught up)."""
    if _target(job_id, everything, group) == "job":
        assert job_id is not None
        _control().resume(settings(), job_id)
        click.echo(f"resumed {job_id}")
        return
    done = _control().resume_scheduler(settings(), group)
    click.echo(f"resumed {done['scheduler']}")


@jobs.command("run-now")
@click.argument("job_id", shell_complete=complete_job_ids)
@click.option("--force", is_flag=True, help="Ignore the overlap policy.")
@guarded
def jobs_run_now(job_id: str, force: bool) -> None:
    """Publish one run now (respects the overlap policy unless --force)."""
    result = _firing().run_now(settings(), job_id, force)
    if "skipped" in result:
        click.echo(f"not run: {result['skipped']} (use --force to run anyway)")
    else:
        click.echo(result["message_id"])


@jobs.command("backfill")
@click.argument("job_id", shell_complete=complete_job_ids)
@click.option("--from", "start", required=True, help="First instant (ISO; naive = the job's zone).")
@click.option("--to", "end", required=True, help="Last instant, inclusive.")
@click.option("--force", is_flag=True, help="Ignore the overlap policy.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_backfill(job_id: str, start: str, end: str, force: bool, as_json: bool) -> None:
    """Publish every slot in a range, through the overlap policy."""
    result = _firing().backfill(settings(), job_id, _when("--from", start), _when("--to", end), force)
    if as_json:
        dump(result)
    else:
        click.echo(f"{result['slots']} slot(s): {result['published']} published, "
                   f"{result['skipped_overlap']} skipped by the overlap policy")


@jobs.command("add")
@click.argument("job_id")
@click.argument("actor", shell_complete=complete_actors)
@click.option("--cron", help="Cron expression.")
@click.option("--every", help="Interval: 30, 30s, 5m, 2h, 1d.")
@click.option("--at", "at", help="One run at this ISO time.")
@click.option("--args", "args_json", help="Positional arguments as a JSON array.")
@click.option("--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--set", "extra", multiple=True, help="Any other field, KEY=JSON (priority, queue, overlap, ...).")
@guarded
def jobs_add(job_id: str, actor: str, cron: str | None, every: str | None, at: str | None,
             args_json: str | None, kwargs_json: str | None, extra: tuple[str, ...]) -> None:
    """Add a runtime job (stored in the database, shared by every scheduler)."""
    from ..errors import ConfigError  # deferred: errors.py pulls dramatiq; --help stays light

    spec: dict[str, Any] = {"id": job_id, "actor": actor}
    if cron is not None:
        spec["cron"] = cron
    if every is not None:
        spec["interval"] = {"seconds": _every(every)}
    if at is not None:
        spec["date"] = at
    if args_json is not None:
        spec["args"] = parse_json("--args", args_json, list)
    if kwargs_json is not None:
        spec["kwargs"] = parse_json("--kwargs", kwargs_json, dict)
    for item in extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: use KEY=VALUE")
        try:
            spec[key] = json.loads(value)
        except json.JSONDecodeError:
            spec[key] = value
    row = _control().add_runtime_job(settings(), spec)
    click.echo(f"added {row['id']}: {row['trigger']}, next run {row['next_run']}")


@jobs.command("remove")
@click.argument("job_id", shell_complete=complete_job_ids)
@guarded
def jobs_remove(job_id: str) -> None:
    """Remove a runtime job."""
    _control().remove_runtime_job(settings(), job_id)
    click.echo(f"removed {job_id}")


@jobs.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_status(as_json: bool) -> None:
    """The scheduler leader, its fencing token and the instances' heartbeats."""
    from . import (
        control,  # deferred: the scheduler's machinery (dramatiq, SQLAlchemy, Redis), only when the command runs
    )

    status = control.scheduler_status(settings())
    if as_json:
        dump(status)
        return
    click.echo(f"leader: {status['leader'] or 'none'} (fencing token {status['fencing_token']}, "
               f"lease expires in {status['lease_expires_in']} s)")
    click.echo(table(status["instances"], ["instance_id", "leader", "heartbeat_at", "alive", "errors",
                                           "last_error"]))


@jobs.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def jobs_stats(as_json: bool) -> None:
    """Runs executed, failed and slots missed per job and in total, and the last error (from the history)."""
    stats = _control().job_stats(settings())
    if as_json:
        dump(stats)
        return
    rows = [{"job": job_id, "executed": r["executed"], "failed": r["failed"], "missed": r["missed"],
             "last_error": f"{r['last_error']['at']} {r['last_error']['error']}" if r["last_error"] else ""}
            for job_id, r in stats["jobs"].items()]
    total = stats["total"]
    rows.append({"job": "TOTAL", "executed": total["jobs_executed"], "failed": total["jobs_failed"],
                 "missed": total["jobs_missed"],
                 "last_error": f"{total['last_error']['job_id']}: {total['last_error']['error']}"
                 if total["last_error"] else ""})
    click.echo(table(rows, ["job", "executed", "failed", "missed", "last_error"]))


COMMANDS = [scheduler, jobs]
