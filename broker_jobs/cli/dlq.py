"""``broker-jobs dlq``: list, replay or purge dead letters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from broker_jobs.cli.common import (
    complete_actors,
    complete_queues,
    dump,
    fail,
    guarded,
    load_jobs,
    parse_json,
    progress_bar,
    settings,
    table,
)


@click.group()
def dlq() -> None:
    """List, replay or purge dead letters."""


def _dlq_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--id", "id_", help="One dead letter, by message id."),
        click.option("--queue", help="Only this queue's dead letters.", shell_complete=complete_queues),
        click.option("--actor", help="Only this actor's dead letters.", shell_complete=complete_actors),
        click.option("--json", "as_json", is_flag=True, help="Machine-readable output."),
    ]):
        fn = option(fn)
    return fn


@dlq.command("list")
@_dlq_options
@guarded
def dlq_list(id_: str | None, queue: str | None, actor: str | None, as_json: bool) -> None:
    """Dead letters with their reason."""
    from broker_jobs.dead_letters import list_dead  # deferred: SQLAlchemy/dramatiq/pika, only when the command runs

    load_jobs()
    letters = [d.asdict() for d in list_dead(settings(), queue=queue, id=id_, actor=actor)]
    if as_json:
        dump(letters)
    else:
        click.echo(table(letters, ["id", "queue", "actor", "attempts", "dead_at", "reason"]))


def _dlq_act(action: str, id_: str | None, queue: str | None, actor: str | None, everything: bool,
             as_json: bool, **extra: Any) -> None:
    from broker_jobs import dead_letters  # deferred: SQLAlchemy/dramatiq/pika, only when the command runs

    load_jobs()
    with progress_bar(f"{action} dead letters", quiet=as_json or bool(id_)) as progress:
        done = getattr(dead_letters, action)(settings(), queue=queue, id=id_, actor=actor, everything=everything,
                                             progress=progress, **extra)
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
