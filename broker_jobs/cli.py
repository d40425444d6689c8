"""The ``broker-jobs`` command.

Every failure ends as one line on stderr and a documented exit code (see
:data:`EXIT_CODES`, the README's table); ``--json`` prints machine-readable
output only.  ``LOG_LEVEL=DEBUG`` shows the traceback of an unexpected error.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import click

from .errors import BrokerJobsError, BrokerUnavailableError, ConfigError, DatabaseUnavailableError

#: Every exit code of the command, and what it means (the README's table comes from here).
EXIT_CODES = {
    0: "success",
    1: "an unexpected error (one line; LOG_LEVEL=DEBUG shows the traceback) or a file that cannot be read",
    2: "a user mistake: a bad option, environment value, jobs file or name",
    4: "RabbitMQ cannot be reached (RABBITMQ_URL: host down, wrong port, bad credentials)",
    5: "the database cannot be reached (DATABASE_URL: host down, wrong port, bad credentials)",
}


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` as one line on stderr and exit with ``code``."""
    from .redaction import redact

    click.echo(f"broker-jobs: {redact(message)}", err=True)
    sys.exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors (and a broker that cannot be reached) into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import dramatiq
        import pika
        from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError

        try:
            return fn(*args, **kwargs)
        except BrokerJobsError as exc:
            fail(str(exc), exc.exit_code)
        except (pika.exceptions.AMQPError, dramatiq.errors.ConnectionError) as exc:
            fail(str(BrokerUnavailableError(f"RabbitMQ unavailable at RABBITMQ_URL: {exc!r}")), 4)
        except DBAPIError as exc:
            fail(str(DatabaseUnavailableError(f"database unavailable at DATABASE_URL: {_first_line(exc.orig)}")),
                 DatabaseUnavailableError.exit_code)
        except (ArgumentError, NoSuchModuleError) as exc:
            fail(f"invalid environment variable DATABASE_URL: {_first_line(exc)}", 2)
        except OSError as exc:
            fail(f"{exc}", 1)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # click's own exits and usage errors: click prints and exits
        except Exception as exc:
            if settings_debug():
                raise
            fail(f"unexpected {type(exc).__name__}: {_first_line(exc)} (LOG_LEVEL=DEBUG shows the traceback)", 1)

    return wrapper


def _first_line(exc: BaseException | None) -> str:
    """The first line of an error's text (drivers add hints, SQL and URLs on further lines)."""
    text = str(exc).strip() if exc is not None else ""
    return text.splitlines()[0] if text else type(exc).__name__


def settings_debug() -> bool:
    """Whether ``LOG_LEVEL=DEBUG`` (then unexpected errors keep their traceback)."""
    try:
        return bool(settings().log_level == "DEBUG")
    except Exception:  # noqa: BLE001 - settings that do not load are reported elsewhere
        return False


def settings() -> Any:
    """The settings (a bad environment value exits 2 with its name)."""
    from .settings import get_settings

    return get_settings()


def load_jobs(extra_modules: Sequence[str] = ()) -> None:
    """Import the built-in jobs, the jobs file's ``modules:`` and ``extra_modules``."""
    import importlib

    import broker_jobs.actors  # noqa: F401

    modules = list(extra_modules)
    try:
        from .scheduling.config import configured_modules

        modules += configured_modules(settings().jobs_config)
    except ImportError:
        pass
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise ConfigError(f"cannot import job module {name!r}: {exc}") from None


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain text table."""
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S")
        if isinstance(value, float):
            return f"{value:.0f}"
        text = str(value).replace("\n", " ")
        return text if len(text) <= 60 else text[:57] + "..."

    cells = [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def dump(data: Any) -> None:
    """Print ``data`` as JSON."""
    click.echo(json.dumps(data, indent=2, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)))


def parse_json(option: str, text: str | None, kind: type) -> Any:
    """Parse an option's JSON value, naming the option when it is not valid."""
    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, kind):
        raise ConfigError(f"{option}: expected a JSON {'array' if kind is list else 'object'}")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="broker-jobs")
def main() -> None:
    """Scheduled and on-demand background jobs over RabbitMQ with Dramatiq."""
    from .logging import configure_logging

    try:
        s = settings()
    except ConfigError as exc:
        fail(str(exc), 2)
    configure_logging(s.log_level if s.log_level != "INFO" else "WARNING", s.log_format)
    if s.log_level != "DEBUG":
        # `guarded` reports a broker failure in one line; pika's own warnings would repeat it.
        import logging

        logging.getLogger("pika").setLevel(logging.CRITICAL)


@main.command()
@click.argument("actor")
@click.option("--args", "args_json", help="Positional arguments as a JSON array.")
@click.option("--kwargs", "kwargs_json", help="Keyword arguments as a JSON object.")
@click.option("--priority", help="high, medium, low (or 1, 2, 3); default: the job's.")
@click.option("--delay", type=click.FloatRange(min=0), help="Seconds before the job may start.")
@click.option("--module", "modules", multiple=True, help="Also import this module's jobs.")
@guarded
def send(actor: str, args_json: str | None, kwargs_json: str | None, priority: str | None,
         delay: float | None, modules: tuple[str, ...]) -> None:
    """Enqueue ACTOR and print the message id (the publish is confirmed)."""
    from . import registry
    from .priorities import parse_priority

    args = parse_json("--args", args_json, list)
    kwargs = parse_json("--kwargs", kwargs_json, dict)
    options: dict[str, Any] = {}
    if priority is not None:
        try:
            options["priority"] = parse_priority(priority).label
        except ValueError as exc:
            raise ConfigError(f"--priority: {exc}") from None
    load_jobs(modules)
    spec = registry.get(actor)
    if delay:
        options["delay"] = int(delay * 1000)
    message = spec.actor.send_with_options(args=tuple(args), kwargs=kwargs, **options)
    click.echo(message.message_id)


@main.command()
@click.option("--actor", help="Only this actor's runs.")
@click.option("--status", type=click.Choice(["running", "succeeded", "failed", "retrying", "dead", "skipped"]))
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def history(actor: str | None, status: str | None, limit: int, as_json: bool) -> None:
    """Recent executions, newest first."""
    from .store.db import get_engine
    from .store.history import query_runs

    runs = query_runs(get_engine(settings().database_url), actor=actor, status=status, limit=limit)
    rows = [
        {c.name: getattr(run, c.name) for c in run.__table__.columns if c.name not in ("seq",)}
        for run in runs
    ]
    if as_json:
        dump(rows)
    else:
        click.echo(table(rows, ["message_id", "actor", "fire_id", "priority", "status", "attempt",
                                "started_at", "duration_ms", "error"]))


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
@guarded
def queues(ctx: click.Context, as_json: bool) -> None:
    """Ready, unacked, delayed and dead messages and consumers per queue; `repair` fixes a queue's arguments."""
    if ctx.invoked_subcommand is not None:
        return
    from .queues import queue_stats

    load_jobs()
    rows = [s.asdict() for s in queue_stats(settings())]
    if as_json:
        dump(rows)
    else:
        click.echo(table(rows, ["queue", "ready", "unacked", "delayed", "dead", "consumers"]))


@queues.command("repair")
@click.argument("names", nargs=-1, metavar="[QUEUE]...")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def queues_repair(names: tuple[str, ...], as_json: bool) -> None:
    """Re-create QUEUE (default: every degraded queue) with the right arguments, moving every message across."""
    from .repair import repair_queues

    load_jobs()
    done = repair_queues(settings(), list(names))
    if as_json:
        dump([r.asdict() for r in done])
    elif not done:
        click.echo("no queue differs from the arguments broker_jobs declares")
    else:
        for result in done:
            click.echo(result.line())


@main.group()
def dlq() -> None:
    """List, replay or purge dead letters."""


def _dlq_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--id", "id_", help="One dead letter, by message id."),
        click.option("--queue", help="Only this queue's dead letters."),
        click.option("--actor", help="Only this actor's dead letters."),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]):
        fn = option(fn)
    return fn


@dlq.command("list")
@_dlq_options
@guarded
def dlq_list(id_: str | None, queue: str | None, actor: str | None, as_json: bool) -> None:
    """Dead letters with their reason."""
    from .dead_letters import list_dead

    load_jobs()
    letters = [d.asdict() for d in list_dead(settings(), queue=queue, id=id_, actor=actor)]
    if as_json:
        dump(letters)
    else:
        click.echo(table(letters, ["id", "queue", "actor", "attempts", "dead_at", "reason"]))


def _dlq_act(action: str, id_: str | None, queue: str | None, actor: str | None, everything: bool,
             as_json: bool, **extra: Any) -> None:
    from . import dead_letters

    load_jobs()
    done = getattr(dead_letters, action)(settings(), queue=queue, id=id_, actor=actor, everything=everything,
                                         **extra)
    if action == "purge":
        if as_json:
            dump([d.asdict() for d in done])
        else:
            click.echo(f"purged {len(done)} dead letter(s)")
        return
    if as_json:
        dump(done.asdict())
    else:
        click.echo(f"replayed {len(done.replayed)} dead letter(s), skipped {len(done.skipped)}")
        for letter in done.skipped:
            click.echo(f"skipped {letter.id}: {letter.not_replayable}")
    if id_ and done.skipped:
        fail(f"dead letter {id_} cannot be replayed: {done.skipped[0].not_replayable}", 1)


@dlq.command("replay")
@_dlq_options
@click.option("--all", "everything", is_flag=True, help="Every dead letter (of --queue if given).")
@click.option("--args", "args_json", help="With --id: replay with these positional arguments (JSON array).")
@click.option("--kwargs", "kwargs_json", help="With --id: replay with these keyword arguments (JSON object).")
@guarded
def dlq_replay(id_: str | None, queue: str | None, actor: str | None, everything: bool, as_json: bool,
               args_json: str | None, kwargs_json: str | None) -> None:
    """Re-enqueue dead letters with their retries reset, under a new message id.

    Letters that cannot be replayed (malformed, or over MAX_MESSAGE_BYTES) are skipped,
    listed, and stay dead; with --id such a letter exits 1.
    """
    args = parse_json("--args", args_json, list) if args_json is not None else None
    kwargs = parse_json("--kwargs", kwargs_json, dict) if kwargs_json is not None else None
    _dlq_act("replay", id_, queue, actor, everything, as_json, args=args, kwargs=kwargs)


@dlq.command("purge")
@_dlq_options
@click.option("--all", "everything", is_flag=True, help="Every dead letter (of --queue if given).")
@guarded
def dlq_purge(id_: str | None, queue: str | None, actor: str | None, everything: bool, as_json: bool) -> None:
    """Delete dead letters for good."""
    _dlq_act("purge", id_, queue, actor, everything, as_json)


@main.command("setup")
@guarded
def setup() -> None:
    """Declare the queues and create the database schema (the release step)."""
    from .broker import get_broker
    from .store.db import get_engine

    load_jobs()
    broker = get_broker()
    for queue in sorted(broker.get_declared_queues()):
        broker.declare_queue(queue, ensure=True)  # type: ignore[call-arg]
    get_engine(settings().database_url)
    click.echo(f"declared {len(broker.get_declared_queues())} queues; database schema ready")


@main.command("check-config")
@click.argument("path", required=False, type=click.Path(dir_okay=False))
@guarded
def check_config(path: str | None) -> None:
    """Validate the jobs file (default ``JOBS_CONFIG``) for every APP_ENV, not only the current one."""
    from pathlib import Path

    from .scheduling.config import ENVIRONMENTS, load_config

    load_jobs()
    s = settings()
    counts = []
    # A production-only mistake must show up on a development machine, before the deploy.
    for env in (e for e in ENVIRONMENTS if e != "default"):
        try:
            config = load_config(Path(path) if path else s.jobs_config, s.model_copy(update={"app_env": env}))
        except ConfigError as exc:
            raise ConfigError(f"APP_ENV={env}: {exc}") from None
        counts.append(f"{env} {len(config.jobs)}")
    click.echo(f"{config.source}: jobs OK ({', '.join(counts)})")


#: Modules that contribute commands: each exposes ``COMMANDS``, a list of click
#: commands or groups, and imports nothing heavy at module level.
COMMAND_MODULES = (
    "broker_jobs.scheduling.commands",
    "broker_jobs.api.commands",
    "broker_jobs.app.commands",
)


def _register_commands() -> None:
    import importlib

    for path in COMMAND_MODULES:
        try:
            module = importlib.import_module(path)
        except ModuleNotFoundError as exc:
            if exc.name and path.startswith(exc.name):
                continue
            raise
        for command in getattr(module, "COMMANDS", []):
            main.add_command(command)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    main()
