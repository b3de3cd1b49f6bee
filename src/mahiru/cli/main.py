"""Entry point of the `mahiru` command: wires the command groups together."""

from __future__ import annotations

import sys

import click

from mahiru import __version__
from mahiru.cli.errors import EXIT_INTERRUPTED, exit_code_for, report_error
from mahiru.cli.profiles import profile_defaults
from mahiru.client.profiles import CONFIG_ENV, PROFILE_ENV, config_path, load_profile
from mahiru.errors import MahiruError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mahiru")
@click.option(
    "--profile",
    envvar=PROFILE_ENV,
    show_envvar=True,
    metavar="NAME",
    help="Take URLs and credentials from this profile of the profiles file"
    f" (${CONFIG_ENV}, else ~/.config/mahiru/config.toml); options still win.",
)
@click.pass_context
def cli(ctx: click.Context, profile: str | None) -> None:
    """Mahiru: a federated, policy-driven data exchange.

    \b
    Examples:
      mahiru demo --keep
      mahiru --profile alice jobs submit job.yaml --wait
      mahiru plan --rules rules.yaml --sites sites.yaml --job job.yaml
    """
    try:
        chosen = load_profile(profile, config_path())
    except MahiruError as error:
        report_error(error, as_json=False)
        sys.exit(exit_code_for(error))
    if chosen is not None:
        ctx.default_map = profile_defaults(cli, chosen)


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
