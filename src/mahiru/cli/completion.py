"""`mahiru completion SHELL`: the script that makes a shell complete mahiru's commands."""

from __future__ import annotations

import click


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@click.pass_context
def completion_command(ctx: click.Context, shell: str) -> None:
    """Print the script that makes SHELL complete mahiru's commands and options."""
    from click.shell_completion import get_completion_class

    completion = get_completion_class(shell)
    assert completion is not None  # every choice has one
    root = ctx.find_root().command
    click.echo(completion(root, {}, "mahiru", "_MAHIRU_COMPLETE").source())
