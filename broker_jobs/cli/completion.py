"""``broker-jobs completion bash|zsh|fish``: the shell's completion script (commands, options, actor names,
schedule ids and queue names), from click's own shell completion."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

#: The variable click reads to complete (click derives it from the program name).
COMPLETE_VAR = "_BROKER_JOBS_COMPLETE"


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion(ctx: click.Context, shell: str) -> None:
    """Print SHELL's completion script for broker-jobs.

    \b
    bash:  eval "$(broker-jobs completion bash)"      (in ~/.bashrc)
    zsh:   eval "$(broker-jobs completion zsh)"       (in ~/.zshrc)
    fish:  broker-jobs completion fish > ~/.config/fish/completions/broker-jobs.fish
    """
    cls = get_completion_class(shell)
    assert cls is not None  # the choices are click's own shells
    root = ctx.find_root().command
    click.echo(cls(root, {}, "broker-jobs", COMPLETE_VAR).source())
