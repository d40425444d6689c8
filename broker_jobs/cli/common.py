"""What every ``broker-jobs`` command shares: one-line failures, exit codes, output, the jobs.

Every failure ends as one line on stderr and a documented exit code (see
:data:`EXIT_CODES`, the README's table); ``--json`` prints machine-readable
output only.  ``LOG_LEVEL=DEBUG`` shows the traceback of an unexpected error.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from broker_jobs import registry
from broker_jobs.logging import configure_logging
from broker_jobs.progress import SILENT, Progress
from broker_jobs.redaction import redact

#: Every exit code of the command, and what it means (the README's table comes from here).
EXIT_CODES = {
    0: "success",
    1: "an unexpected error (one line; LOG_LEVEL=DEBUG shows the traceback) or a file that cannot be read",
    2: "a user mistake: a bad option, environment value, jobs file or name",
    4: "RabbitMQ cannot be reached (RABBITMQ_URL: host down, wrong port, bad credentials)",
    5: "the database cannot be reached (DATABASE_URL: host down, wrong port, bad credentials)",
    6: "send --wait: the job ended failed or dead-lettered (its error on stderr)",
    7: "send --wait: the job had not finished within --timeout (it may still run)",
    141: "the reader of the output went away (`| head`): nothing printed, as a coreutils command ends",
}


def fail(message: str, code: int = 2) -> None:
    """Print ``message`` as one line on stderr and exit with ``code``."""
    click.echo(f"broker-jobs: {redact(message)}", err=True)
    sys.exit(code)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn our errors (and a broker that cannot be reached) into one line and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            set_up()
            return fn(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # click's own exits and usage errors: click prints and exits
        except BrokenPipeError:
            closed_output()
        except Exception as exc:
            report(exc)
            raise  # pragma: no cover - report always exits

    return wrapper


def closed_output() -> None:
    """End quietly when the reader of stdout went away (``broker-jobs jobs simulate | head``).

    What it read is all it wanted: no line, exit 141 (128 + SIGPIPE, what a coreutils command
    killed by the signal gives). stdout goes to /dev/null first, so the interpreter's own
    flush at exit cannot fail on the closed pipe again.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    sys.exit(141)


def set_up() -> None:
    """Read the settings (a bad value: one line, exit 2) and configure logging, as a command starts."""
    s = settings()
    configure_logging(s.log_level if s.log_level != "INFO" else "WARNING", s.log_format)
    if s.log_level != "DEBUG":
        # `guarded` reports a broker failure in one line; pika's own warnings would repeat it.
        logging.getLogger("pika").setLevel(logging.CRITICAL)


def _loaded(module: str, *names: str) -> tuple[type[BaseException], ...]:
    """Exception classes of a library, when it is loaded: an error of a library never imported cannot be raised,
    so classifying an error imports nothing (a command that never touched RabbitMQ does not pay for pika).
    Only names the module defines itself (a deprecated alias served by a module ``__getattr__`` is skipped)."""
    loaded = sys.modules.get(module)
    defined = vars(loaded) if loaded is not None else {}
    return tuple(defined[name] for name in names if name in defined)


def report(exc: Exception) -> None:
    """Print ``exc`` as one line and exit with its code (``LOG_LEVEL=DEBUG``: an unexpected one keeps its traceback)."""
    from broker_jobs.errors import (  # deferred: errors.py pulls dramatiq; only on a failure
        BrokerJobsError,
        BrokerUnavailableError,
        DatabaseUnavailableError,
    )

    if isinstance(exc, BrokerJobsError):
        fail(str(exc), exc.exit_code)
    unreachable = _loaded("pika.exceptions", "AMQPError") + _loaded("dramatiq.errors", "BrokerConnectionError",
                                                                     "ConnectionError")
    if isinstance(exc, unreachable):
        fail(str(BrokerUnavailableError(f"RabbitMQ unavailable at RABBITMQ_URL: {exc!r}")), 4)
    if isinstance(exc, _loaded("sqlalchemy.exc", "DBAPIError")):
        cause = _first_line(getattr(exc, "orig", None))
        fail(str(DatabaseUnavailableError(f"database unavailable at DATABASE_URL: {cause}")),
             DatabaseUnavailableError.exit_code)
    if isinstance(exc, _loaded("sqlalchemy.exc", "ArgumentError", "NoSuchModuleError")):
        fail(f"invalid environment variable DATABASE_URL: {_first_line(exc)}", 2)
    if isinstance(exc, OSError):
        fail(f"{exc}", 1)
    if settings_debug():
        raise exc
    fail(f"unexpected {type(exc).__name__}: {_first_line(exc)} (LOG_LEVEL=DEBUG shows the traceback)", 1)


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
    from broker_jobs.settings import get_settings  # deferred: pydantic-settings, only when a command runs

    return get_settings()


def load_jobs(extra_modules: Sequence[str] = ()) -> None:
    """Load the registered jobs (the application's loaders), the jobs file's ``modules:`` and ``extra_modules``."""
    from broker_jobs.errors import ConfigError  # deferred: errors.py pulls dramatiq
    from broker_jobs.scheduling.jobs_file import configured_modules  # deferred: yaml, and errors.py pulls dramatiq

    registry.load_jobs()
    modules = [*extra_modules, *configured_modules(settings().jobs_config)]
    for name in modules:
        try:
            importlib.import_module(name)  # the user's job modules: the jobs file's `modules:` or --module
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
    from broker_jobs.errors import ConfigError  # deferred: errors.py pulls dramatiq

    if text is None:
        return kind()
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{option}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, kind):
        raise ConfigError(f"{option}: expected a JSON {'array' if kind is list else 'object'}")
    return value


# -- progress on long operations -------------------------------------------------------------------------------
class _Bar:
    """A rich progress bar fed by :class:`broker_jobs.progress.Progress` reports."""

    def __init__(self, bar: Any, task: Any) -> None:
        self.bar, self.task, self.total = bar, task, 0

    def found(self, count: int) -> None:
        self.total += count
        self.bar.update(self.task, total=self.total)

    def done(self, count: int = 1) -> None:
        self.bar.advance(self.task, count)


@contextmanager
def progress_bar(label: str, *, quiet: bool = False) -> Iterator[Progress]:
    """A progress bar on stderr while the block runs, if stderr is a terminal and not ``quiet`` (``--json``);
    otherwise nothing is drawn. The bar is erased at the end: the command's own output follows."""
    if quiet or not sys.stderr.isatty():
        yield SILENT
        return
    from rich import progress as rich  # deferred: rich, only when a bar is drawn
    from rich.console import Console  # deferred: rich, only when a bar is drawn

    columns = (rich.TextColumn("{task.description}"), rich.BarColumn(), rich.MofNCompleteColumn(),
               rich.TimeRemainingColumn())
    with rich.Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        yield _Bar(bar, bar.add_task(label, total=None))


# -- shell completion (``broker-jobs completion bash|zsh|fish``) ------------------------------------------------
def _candidates(names: Callable[[], Iterable[str]], incomplete: str) -> list[str]:
    """The names starting with ``incomplete``; none when they cannot be read (completion never prints an error)."""
    try:
        found = sorted(set(names()))
    except Exception:  # noqa: BLE001 - a bad environment or an unreachable database: no candidates
        return []
    return [name for name in found if name.startswith(incomplete)]


def complete_actors(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Actor names: the registered jobs and the jobs file's ``modules:``."""
    def names() -> list[str]:
        load_jobs()
        return registry.names()

    return _candidates(names, incomplete)


def complete_job_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Schedule ids: the jobs file's and the runtime ones."""
    def ids() -> list[str]:
        from broker_jobs.scheduling.control import all_jobs  # deferred: SQLAlchemy, only when completing

        load_jobs()
        return list(all_jobs(settings()))

    return _candidates(ids, incomplete)


def complete_queues(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Queue names: the built-in queues and every registered job's."""
    def names() -> list[str]:
        from broker_jobs.connection import QUEUES  # deferred: connection.py pulls pika

        load_jobs()
        return [*QUEUES, *(spec.queue for spec in registry.list())]

    return _candidates(names, incomplete)
