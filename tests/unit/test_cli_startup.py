"""`mahiru` starts without the server's libraries: each command's module is imported on use.

The suite spawns the command hundreds of times, so these tests pin which
modules a start loads (never how long it takes: benchmarks/cli_startup.py
prints that).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mahiru.cli.lazy import LazyCommand, LazyGroup
from mahiru.cli.main import COMMANDS, cli

#: What only a service needs: a client's start must load none of them.
SERVER_ONLY = (
    "sqlalchemy",
    "alembic",
    "fastapi",
    "uvicorn",
    "starlette",
    "mahiru.storage",
    "mahiru.server",
    "mahiru.api",
)
COMMAND_MODULES = {entry.target.partition(":")[0] for entry in COMMANDS}
COMMANDS_BY_NAME = {entry.name: entry for entry in COMMANDS}
#: What only running a command needs: the help of any command loads none of them (the
#: HTTP client, crypto, progress bars, YAML, the policy engine, the planner, containers).
RUN_ONLY = (
    "httpx",
    "cryptography",
    "rich",
    "yaml",
    "mahiru.client.http",
    "mahiru.pki",
    "mahiru.policy",
    "mahiru.planner",
    "mahiru.runtime",
    "mahiru.model.serialization",
)

# Runs the console script's `main` on the given arguments, then reports every
# module the process loaded as the last line of stderr (a None entry is a module
# kept from loading, not a loaded one).
PROBE = """
import json, sys
from mahiru.cli.main import main
sys.argv = ["mahiru", *json.loads(sys.argv[1])]
try:
    main()
finally:
    loaded = sorted(name for name, module in sys.modules.items() if module is not None)
    print(json.dumps(loaded), file=sys.stderr)
"""


def loaded_modules(*args: str, exit_code: int = 0) -> set[str]:
    """The modules a fresh `mahiru ARGS` process has loaded when it exits (with `exit_code`)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == exit_code, result.stderr
    return set(json.loads(result.stderr.splitlines()[-1]))


def in_packages(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The modules of `modules` that belong to one of `packages`."""
    return sorted(
        name
        for name in modules
        if any(name == package or name.startswith(f"{package}.") for package in packages)
    )


def server_only(modules: set[str]) -> list[str]:
    """The modules of `modules` that belong to a SERVER_ONLY package."""
    return in_packages(modules, SERVER_ONLY)


def test_listing_the_commands_imports_none_of_them() -> None:
    modules = loaded_modules("--help")
    assert server_only(modules) == []
    assert sorted(modules & COMMAND_MODULES) == []


@pytest.mark.parametrize(
    "args",
    [
        ("assets", "--help"),
        ("assets", "list", "--help"),
        ("assets", "pack", "--help"),
        ("jobs", "submit", "--help"),
        ("rules", "add", "--help"),
        ("register", "show", "--help"),
        ("audit", "verify", "--help"),
        ("reviews", "approve", "--help"),
    ],
    ids=" ".join,
)
def test_a_client_command_loads_no_server_library(args: tuple[str, ...]) -> None:
    """The command's own module is imported, and nothing only a server needs."""
    modules = loaded_modules(*args)
    assert server_only(modules) == []
    assert f"mahiru.cli.{args[0]}" in modules and "mahiru.cli.serve" not in modules


@pytest.mark.parametrize(
    "args",
    [
        *((entry.name, "--help") for entry in COMMANDS),
        ("jobs", "submit", "--help"),
        ("assets", "upload", "--help"),
        ("register", "site", "--help"),
        ("results", "verify", "--help"),
        ("rules", "revoke", "--help"),
        ("serve", "site", "--help"),
        ("certs", "user", "--help"),
    ],
    ids=" ".join,
)
def test_the_help_of_a_command_loads_only_its_options(args: tuple[str, ...]) -> None:
    """`mahiru COMMAND --help` imports the command's module, not what running it needs."""
    modules = loaded_modules(*args)
    assert in_packages(modules, RUN_ONLY) == []
    assert COMMANDS_BY_NAME[args[0]].target.partition(":")[0] in modules


#: What no command that only lists needs once it runs: YAML, the policy engine, and the
#: command-line tool of the HTTP client (rich, pygments), which httpx loads if it can.
LISTING_NEVER = ("yaml", "rich", "pygments", "mahiru.policy", "mahiru.planner")


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The --cert, --key and --ca options of a party's user, for a site that is not there."""
    from mahiru import pki

    folder = tmp_path_factory.mktemp("user")
    pki.save_certified_key(folder / "ca.crt", folder / "ca.key", pki.create_network_ca())
    credentials = pki.create_party_credentials("party:p1.example.org:p1")
    user = pki.issue_user_certificate(credentials.user_ca, "alice", "admin")
    pki.save_certified_key(folder / "alice.crt", folder / "alice.key", user)
    files = {"--cert": "alice.crt", "--key": "alice.key", "--ca": "ca.crt"}
    return [part for option, name in files.items() for part in (option, str(folder / name))]


@pytest.mark.parametrize("command", [("assets", "list"), ("jobs", "list")], ids=" ".join)
def test_a_listing_command_loads_only_what_it_runs(
    command: tuple[str, ...], user_files: list[str]
) -> None:
    """Run against a port where nothing listens (exit 4), the command has loaded the HTTP
    client and its own module, and none of LISTING_NEVER."""
    modules = loaded_modules(
        *command, "--site", "https://127.0.0.1:9/internal", *user_files, exit_code=4
    )
    assert {"httpx", "mahiru.client.http", f"mahiru.cli.{command[0]}"} <= modules
    assert in_packages(modules, LISTING_NEVER) == []
    assert server_only(modules) == []


def test_the_help_of_serve_and_blobs_loads_no_server_library() -> None:
    """Only starting a service (or reading its store) imports the database and web libraries."""
    assert server_only(loaded_modules("serve", "site", "--help")) == []
    assert server_only(loaded_modules("blobs", "verify", "--help")) == []


@pytest.mark.parametrize("entry", COMMANDS, ids=lambda entry: entry.name)
def test_the_table_lists_each_command_as_its_own_help_does(entry: LazyCommand) -> None:
    """A summary in the table is the first sentence of the command's help, under its name."""
    command = entry.load()
    assert command.name == entry.name
    assert entry.summary == command.get_short_help_str(limit=1000)


def fresh_group() -> LazyGroup:
    """A group like `mahiru`, with the same table and options, and nothing loaded yet."""
    return LazyGroup(name="mahiru", lazy_commands=COMMANDS, params=cli.params, help=cli.help)


def test_the_listing_before_loading_equals_the_listing_after() -> None:
    """`mahiru --help` shows the same lines from the table as from the imported commands."""
    group = fresh_group()
    before = CliRunner().invoke(group, ["--help"])
    context = click.Context(group)
    for name in group.list_commands(context):
        group.get_command(context, name)
    after = CliRunner().invoke(group, ["--help"])
    assert before.exit_code == after.exit_code == 0
    assert "assets" in before.output and before.output == after.output


def test_a_mistyped_command_is_matched_against_commands_not_yet_loaded() -> None:
    group = fresh_group()
    result = CliRunner().invoke(group, ["asets"])
    assert result.exit_code == 2
    assert "No such command 'asets'" in result.output and "'assets'" in result.output
    assert group.commands == {}


def test_completing_a_command_name_imports_no_command() -> None:
    group = fresh_group()
    with click.Context(group, resilient_parsing=True) as context:
        items = group.shell_complete(context, "re")
    assert [item.value for item in items] == ["register", "results", "reviews"]
    assert items[1].help == "Check workflow results."
    assert group.commands == {}


def test_shell_completion_descends_into_a_command_loaded_on_demand() -> None:
    """The completion protocol itself, as a shell drives it, completes a sub-command's names."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "mahiru")],
        env={
            **os.environ,
            "_MAHIRU_COMPLETE": "bash_complete",
            "COMP_WORDS": "mahiru jobs sub",
            "COMP_CWORD": "2",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["plain,submit"]


def test_a_profile_fills_in_the_options_of_the_command_that_runs(tmp_path: Path) -> None:
    """Only the invoked command is loaded to learn its options, and it takes the profile's."""
    config = tmp_path / "config.toml"
    config.write_text(
        '[profiles.alice]\nsite = "https://127.0.0.1:9/internal"\n'
        'cert = "alice.crt"\nkey = "alice.key"\nca = "ca.crt"\n'
    )
    result = CliRunner().invoke(
        cli, ["--profile", "alice", "jobs", "list"], env={"MAHIRU_CONFIG": str(config)}
    )
    assert result.exit_code == 2
    assert f"file not found: {tmp_path / 'alice.crt'}" in result.output
