"""Entry point of the `mahiru` command: wires the command groups together."""

from __future__ import annotations

import inspect
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


@click.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell: str) -> None:
    """Print the script that makes SHELL complete mahiru's commands and options."""
    from click.shell_completion import get_completion_class

    completion = get_completion_class(shell)
    assert completion is not None  # every choice has one
    click.echo(completion(cli, {}, "mahiru", "_MAHIRU_COMPLETE").source())


#: One example per command whose own help has none, shown at the end of its --help.
EXAMPLES = {
    ("assets", "delete"): "mahiru assets delete asset:p1.example.org:data1:p1.example.org:site1",
    ("assets", "download"): (
        "mahiru assets download asset:p1.example.org:data1:p1.example.org:site1 --out data1.tar"
    ),
    ("assets", "list"): "mahiru assets list --json",
    ("assets", "pack"): "mahiru assets pack data.json more/ --out data.tar",
    ("assets", "show"): "mahiru assets show asset:p1.example.org:data1:p1.example.org:site1",
    ("blobs", "verify"): "mahiru blobs verify --config site1.yaml",
    ("certs", "ca"): "mahiru certs ca --out pki",
    ("certs", "party"): "mahiru certs party --party party:p1.example.org:p1 --out p1",
    ("certs", "party-client"): (
        "mahiru certs party-client --ca pki --party party:p1.example.org:p1 --out p1"
    ),
    ("certs", "registry"): "mahiru certs registry --ca pki --dns registry.example.org --out reg",
    ("certs", "site"): "mahiru certs site --ca pki --site site:p1.example.org:site1 --out site1",
    ("certs", "user"): "mahiru certs user --party-dir p1 --name alice --role admin --out users",
    ("demo",): "mahiru demo --keep",
    ("completion",): 'eval "$(mahiru completion bash)"   # or add the line to ~/.bashrc',
    ("plan",): "mahiru plan --rules rules.yaml --sites sites.yaml --job job.yaml --json",
    ("policy", "explain"): (
        "mahiru policy explain --rules rules.yaml --job job.yaml --item compute.output0"
        " --party party:p1.example.org:p1"
    ),
    ("register", "party"): "mahiru --profile alice register party",
    ("register", "remove-party"): "mahiru --profile alice register remove-party",
    ("register", "remove-site"): (
        "mahiru --profile alice register remove-site --site site:p1.example.org:site1"
    ),
    ("register", "show"): "mahiru --profile alice register show --json",
    ("register", "site"): (
        "mahiru --profile alice register site --site site:p1.example.org:site1"
        " --site-cert site1/site.crt --internal-url https://site1.example.org/internal"
        " --external-url https://site1.example.org/external"
    ),
    ("results", "verify"): "mahiru results verify result.json --registry registry.json",
    ("audit", "list"): "mahiru audit list --kind decision --since 2026-12-06T00:00:00Z",
    ("audit", "show"): "mahiru audit show 17",
    ("audit", "verify"): "mahiru audit verify --json",
    ("rules", "add"): "mahiru --profile alice rules add rules.yaml",
    ("rules", "list"): "mahiru --profile alice rules list --replicated",
    ("rules", "rejected"): "mahiru --profile alice rules rejected",
    ("rules", "revoke"): "mahiru --profile alice rules revoke 5f1c2a9e",
    ("serve", "registry"): "mahiru serve registry --config registry.yaml --log-level warning",
    ("serve", "site"): "mahiru serve site --config site1.yaml",
}


def _add_examples(group: click.Group, path: tuple[str, ...] = ()) -> None:
    """Append each command's example (EXAMPLES) to its help, unless it has one already."""
    for name, command in group.commands.items():
        where = (*path, name)
        if isinstance(command, click.Group):
            _add_examples(command, where)
            continue
        example = EXAMPLES.get(where)
        if example is not None and "Example" not in (command.help or ""):
            # Dedent the docstring first: the example's lines are not indented.
            text = inspect.cleandoc(command.help or "")
            command.help = f"{text}\n\n\b\nExample:\n  {example}"


def _register_commands() -> None:
    """Attach every command group; each lives in its own module."""
    from mahiru.cli import (
        assets,
        audit,
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
    cli.add_command(audit.audit_group)
    cli.add_command(demo.demo_command)
    cli.add_command(completion_command)
    _add_examples(cli)


def main() -> None:
    """Run the CLI (the `mahiru` console script); Ctrl-C at any point exits 130."""
    try:
        _register_commands()
        cli(prog_name="mahiru")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
