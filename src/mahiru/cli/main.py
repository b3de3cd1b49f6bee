"""Entry point of the `mahiru` command: the table of its commands, each in its own module.

Each command's module is imported only when that command is used (`LazyGroup`),
so listing the commands or running a client command never loads the server's
database, web and container libraries.
"""

from __future__ import annotations

import inspect
import sys

import click

from mahiru import __version__
from mahiru.cli.errors import EXIT_INTERRUPTED, exit_code_for, report_error
from mahiru.cli.lazy import LazyCommand, LazyGroup, list_summaries_whole
from mahiru.cli.profiles import profile_defaults
from mahiru.client.profiles import CONFIG_ENV, PROFILE_ENV, config_path, load_profile
from mahiru.errors import MahiruError

#: Every command: its name, where it lives, and its summary as `mahiru --help` lists
#: it (tests/unit/test_cli_startup.py checks that each is the command's own).
COMMANDS = (
    LazyCommand(
        "assets",
        "mahiru.cli.assets:assets_group",
        "Upload, list, show, download and delete the assets of your party's site.",
    ),
    LazyCommand(
        "audit",
        "mahiru.cli.audit:audit_group",
        "Read and verify the site's tamper-evident audit log.",
    ),
    LazyCommand(
        "blobs", "mahiru.cli.blobs:blobs_group", "Operator checks of a site's stored images."
    ),
    LazyCommand(
        "certs",
        "mahiru.cli.certs:certs_group",
        "Create the keys and certificates of a Mahiru network.",
    ),
    LazyCommand(
        "completion",
        "mahiru.cli.completion:completion_command",
        "Print the script that makes SHELL complete mahiru's commands and options.",
    ),
    LazyCommand(
        "demo",
        "mahiru.cli.demo:demo_command",
        "Run a registry and two sites on loopback with TLS, and a job in real containers.",
    ),
    LazyCommand(
        "jobs",
        "mahiru.cli.jobs:jobs_group",
        "Submit, follow, cancel and fetch the results of jobs at your party's site.",
    ),
    LazyCommand(
        "plan", "mahiru.cli.offline:plan_command", "Plan a job offline: which site runs each step."
    ),
    LazyCommand(
        "policy", "mahiru.cli.offline:policy_group", "Ask the policy engine about rules, offline."
    ),
    LazyCommand(
        "register",
        "mahiru.cli.register:register_group",
        "Register a party and its sites at the registry; show and remove them.",
    ),
    LazyCommand("results", "mahiru.cli.results:results_group", "Check workflow results."),
    LazyCommand(
        "reviews",
        "mahiru.cli.reviews:reviews_group",
        "List, inspect, approve and reject the reviews of results at your party's site.",
    ),
    LazyCommand(
        "rules",
        "mahiru.cli.rules:rules_group",
        "Publish, list and revoke your party's rules at its site.",
    ),
    LazyCommand(
        "serve",
        "mahiru.cli.serve:serve_group",
        "Run a Mahiru service in the foreground until SIGTERM or Ctrl-C.",
    ),
)


@click.group(
    cls=LazyGroup,
    lazy_commands=COMMANDS,
    prepare=lambda name, command: finish_help(command, (name,)),
    context_settings={"help_option_names": ["-h", "--help"]},
)
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
    name = ctx.invoked_subcommand
    if chosen is not None and name is not None:
        # Click loaded the invoked command before calling this; the others stay unimported.
        command = cli.get_command(ctx, name)
        if command is not None:
            ctx.default_map = profile_defaults({name: command}, chosen)


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


def finish_help(command: click.Command, path: tuple[str, ...]) -> None:
    """Add the examples to the help of `command` (at `path`) and of each under it, and let
    its listings show every summary whole."""
    add_example(command, path)
    if isinstance(command, click.Group):
        list_summaries_whole(command)


def add_example(command: click.Command, path: tuple[str, ...]) -> None:
    """Append the example (EXAMPLES) of `command`, and of each under it, to its help.

    A command whose help already shows an example keeps it alone.
    """
    if isinstance(command, click.Group):
        for name, inner in command.commands.items():
            add_example(inner, (*path, name))
        return
    example = EXAMPLES.get(path)
    if example is not None and "Example" not in (command.help or ""):
        # Dedent the docstring first: the example's lines are not indented.
        text = inspect.cleandoc(command.help or "")
        command.help = f"{text}\n\n\b\nExample:\n  {example}"


def main() -> None:
    """Run the CLI (the `mahiru` console script); Ctrl-C at any point exits 130."""
    # httpx loads its own command-line tool (rich, pygments) whenever it is imported, if
    # it can; `mahiru` never runs it. A None entry makes that import fail, and httpx then
    # goes without it: every command that connects starts ~0.1 s sooner.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
    try:
        cli(prog_name="mahiru")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
