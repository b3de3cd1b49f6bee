"""Entry point of the `mahiru` command: wires the command groups together."""

from __future__ import annotations

import sys

import click

from mahiru import __version__
from mahiru.cli.errors import EXIT_INTERRUPTED


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mahiru")
def cli() -> None:
    """Mahiru: a federated, policy-driven data exchange."""


def _register_commands() -> None:
    """Attach every command group; each lives in its own module."""
    from mahiru.cli import (
        assets,
        blobs,
        certs,
        demo,
        jobs,
        offline,
        register,
        results,
        rules,
        serve,
    )

    cli.add_command(certs.certs_group)
    cli.add_command(offline.plan_command)
    cli.add_command(offline.policy_group)
    cli.add_command(serve.serve_group)
    cli.add_command(register.register_group)
    cli.add_command(assets.assets_group)
    cli.add_command(blobs.blobs_group)
    cli.add_command(rules.rules_group)
    cli.add_command(jobs.jobs_group)
    cli.add_command(results.results_group)
    cli.add_command(demo.demo_command)


def main() -> None:
    """Run the CLI (the `mahiru` console script); Ctrl-C at any point exits 130."""
    try:
        _register_commands()
        cli(prog_name="mahiru")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
