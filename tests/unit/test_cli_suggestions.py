"""The CLI's messages for a newcomer's slips that need no server: each names the slip and its fix.

Run in-process (click's CliRunner) with no MAHIRU_ variable and no profiles
file of the machine's user, so only what a case sets is seen.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from mahiru.cli.main import cli
from mahiru.client.profiles import load_profile
from mahiru.config import RegistryConfig, load_config
from mahiru.errors import InvalidInput

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "compute_to_data"
RULE = "{type: MayAccess, site: 'site:p.org:s', asset: 'asset:p.org:a:p.org:s'}"
SERVICE_YAML = "tls: {network_ca: ca.crt}\ndatabase_url: sqlite:///r.db\n"
FILES = ("--cert", "user.crt", "--key", "user.key", "--ca", "ca.crt")


def invoke(
    args: list[str], tmp_path: Path, env: Mapping[str, str] | None = None
) -> click.testing.Result:
    """`mahiru ARGS` in tmp_path, seeing of the environment's MAHIRU_ variables only `env`."""
    clean: dict[str, str | None] = {key: None for key in os.environ if key.startswith("MAHIRU_")}
    clean["XDG_CONFIG_HOME"] = str(tmp_path / "no-config")
    clean.update(env or {})
    old = Path.cwd()
    os.chdir(tmp_path)
    try:
        return CliRunner().invoke(cli, args, env=clean)
    finally:
        os.chdir(old)


@dataclass(frozen=True)
class Slip:
    """A mistake: the command line, the files it needs, and what the answer must say."""

    args: list[str]
    says: str
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2
    never: str | None = None


def plan(rules: str) -> list[str]:
    sites, job = EXAMPLE / "sites.yaml", EXAMPLE / "job.yaml"
    return ["plan", "--rules", rules, "--sites", str(sites), "--job", str(job)]


SLIPS = {
    "a rule type one letter off": Slip(
        plan("typo.yaml"),
        "unknown rule type 'MayAcess': did you mean 'MayAccess'?",
        files={"typo.yaml": f"rules: [{RULE.replace('MayAccess', 'MayAcess')}]"},
    ),
    "a rule type in the wrong case": Slip(
        plan("case.yaml"),
        "did you mean 'MayUse'?",
        files={"case.yaml": f"rules: [{RULE.replace('MayAccess', 'mayuse')}]"},
    ),
    "rule: for rules:": Slip(
        plan("rule.yaml"),
        "unknown top-level key 'rule' (did you mean 'rules'?)",
        files={"rule.yaml": f"rule: [{RULE}]"},
    ),
    "a stray key beside rules:": Slip(
        plan("stray.yaml"),
        "unknown top-level key 'rulez' (did you mean 'rules'?)",
        files={"stray.yaml": f"rules: [{RULE}]\nrulez: []"},
    ),
    "the site's API mistyped": Slip(
        ["jobs", "list", "--site", "https://h.example:8443/interal", *FILES],
        "did you mean https://h.example:8443/internal?",
        never="/interal/internal",
    ),
    "the external API mistyped": Slip(
        ["assets", "list", "--site", "https://h.example:8443/proxy/externl", *FILES],
        "did you mean https://h.example:8443/proxy/internal?",
    ),
    "a prefix without /internal": Slip(
        ["assets", "list", "--site", "https://h.example:8443/mahiru", *FILES],
        "try https://h.example:8443/mahiru/internal",
    ),
    "no --site at all": Slip(
        ["jobs", "list"],
        "or pick a profile that has it with --profile NAME",
    ),
    "no --registry at all": Slip(
        ["register", "show"],
        "Missing option '--registry' (env var: 'MAHIRU_REGISTRY_URL'). Give it, set its"
        " variable, or pick a profile that has it with --profile NAME",
    ),
    "the service's variable set for the CLI": Slip(
        ["jobs", "list"],
        "MAHIRU_CONFIG_FILE is set, but it names a service's configuration file;"
        " the profiles file is named by MAHIRU_CONFIG",
        env={"MAHIRU_CONFIG_FILE": "registry.yaml"},
    ),
    "a service's configuration as the profiles file": Slip(
        ["jobs", "list"],
        "a service's configuration goes to `mahiru serve --config`",
        files={"registry.toml": 'database_url = "sqlite:///r.db"\n'},
        env={"MAHIRU_CONFIG": "registry.toml"},
    ),
    "a YAML service configuration as the profiles file": Slip(
        ["jobs", "list"],
        "MAHIRU_CONFIG names the command line's profiles file",
        files={"site.yaml": SERVICE_YAML},
        env={"MAHIRU_CONFIG": "site.yaml"},
    ),
}


@pytest.mark.parametrize("name", SLIPS)
def test_each_slip_is_named_with_its_fix(name: str, tmp_path: Path) -> None:
    slip = SLIPS[name]
    for file_name, text in slip.files.items():
        (tmp_path / file_name).write_text(text)
    env = {
        key: str(tmp_path / value) if key == "MAHIRU_CONFIG" else value
        for key, value in slip.env.items()
    }
    result = invoke(slip.args, tmp_path, env)
    output = " ".join(result.output.split())  # click wraps usage errors
    assert result.exit_code == slip.code, result.output
    assert slip.says in output, result.output
    assert "Traceback" not in output
    if slip.never is not None:
        assert slip.never not in output


def test_a_word_like_none_of_the_known_is_not_guessed_at(tmp_path: Path) -> None:
    """A rule type nothing like a real one lists the types, with no wild suggestion."""
    (tmp_path / "odd.yaml").write_text(f"rules: [{RULE.replace('MayAccess', 'Xyzzy')}]")
    result = invoke(plan("odd.yaml"), tmp_path)
    assert result.exit_code == 2
    assert "unknown rule type 'Xyzzy' (known: " in result.output
    assert "did you mean" not in result.output


def test_another_kind_of_file_as_rules_keeps_the_plain_message(tmp_path: Path) -> None:
    """A job file given as rules has no key like `rules`: no suggestion, the expected shape."""
    result = invoke(plan(str(EXAMPLE / "job.yaml")), tmp_path)
    assert result.exit_code == 2
    assert "expected a mapping with a 'rules' list" in result.output


def test_an_override_with_one_underscore_names_the_right_variable(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text(SERVICE_YAML)
    env = {"MAHIRU_CONFIG_DATABASE_URL": "sqlite:///other.db", "MAHIRU_CONFIG_FILE": str(path)}
    with pytest.raises(InvalidInput, match="did you mean MAHIRU_CONFIG__DATABASE_URL"):
        load_config(RegistryConfig, path, environ=env)
    # MAHIRU_CONFIG_FILE itself, and the right spelling, are no mistake.
    fixed = {"MAHIRU_CONFIG__DATABASE_URL": "sqlite:///other.db", "MAHIRU_CONFIG_FILE": str(path)}
    assert load_config(RegistryConfig, path, environ=fixed).database_url.endswith("other.db")


# --- [required] only when nothing gives the option ------------------------------------------

CONNECTION = ("--site", "--cert", "--key", "--ca")
PROFILE = (
    '[profiles.alice]\nsite = "https://h.example:8443/internal"\n'
    'cert = "alice.crt"\nkey = "alice.key"\nca = "ca.crt"\n'
)


def marked_required(help_text: str) -> set[str]:
    """The options of `--site/--cert/--key/--ca` whose help says `required`."""
    text = " ".join(help_text.split())
    marked: set[str] = set()
    for option in CONNECTION:
        entry = re.search(rf" {option}\b.*?\[([^\]]*)\]", text)
        assert entry is not None, (option, help_text)
        if "required" in entry.group(1):
            marked.add(option)
    return marked


REQUIRED_CASES = {
    "nothing gives them": ({}, None, set(CONNECTION)),
    "the environment gives --site": (
        {"MAHIRU_SITE_URL": "https://h/internal"},
        None,
        {
            "--cert",
            "--key",
            "--ca",
        },
    ),
    "the default profile gives all": ({}, f'default = "alice"\n{PROFILE}', set()),
    "--profile gives all": ({}, PROFILE, set()),
}


@pytest.mark.parametrize("name", REQUIRED_CASES)
def test_required_is_shown_only_when_nothing_gives_the_option(name: str, tmp_path: Path) -> None:
    env, profiles, expected = REQUIRED_CASES[name]
    args = ["jobs", "list", "--help"]
    if profiles is not None:
        (tmp_path / "config.toml").write_text(profiles)
        env = {**env, "MAHIRU_CONFIG": str(tmp_path / "config.toml")}
        if "default" not in profiles:
            args = ["--profile", "alice", *args]
    result = invoke(args, tmp_path, env)
    assert result.exit_code == 0, result.output
    assert marked_required(result.output) == expected


# --- group help: whole summaries ------------------------------------------------------------


def groups(group: click.Group, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [path]
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if isinstance(command, click.Group):
            found += groups(command, (*path, name))
    return found


@pytest.mark.parametrize("path", groups(cli), ids=lambda path: " ".join(("mahiru", *path)))
def test_group_help_lists_every_summary_whole(path: tuple[str, ...], tmp_path: Path) -> None:
    """No summary is cut ("..."): each is its command's first sentence, wrapped."""
    group: click.Command = cli
    for name in path:
        assert isinstance(group, click.Group)
        group = group.get_command(click.Context(group), name)  # type: ignore[assignment]
    assert isinstance(group, click.Group)
    result = invoke([*path, "--help"], tmp_path)
    listing = " ".join(result.output.split("Commands:", 1)[1].split())
    assert "..." not in listing
    for name in group.list_commands(click.Context(group)):
        command = group.get_command(click.Context(group), name)
        assert command is not None
        help_text = " ".join((command.help or "").split("\n\n")[0].split())
        sentence = re.match(r"(.*?\.)(\s[^a-z]|$)", help_text)
        summary = sentence.group(1) if sentence else help_text
        # The wrap may break a hyphenated word: compare without the spaces it adds.
        assert summary.replace(" ", "") in listing.replace(" ", ""), (name, summary)


# --- the profiles file as docs/reference.md shows it ----------------------------------------


def test_the_documented_profiles_file_loads_with_its_default(tmp_path: Path) -> None:
    """The TOML example in docs/reference.md is a valid profiles file, `default` included."""
    reference = (ROOT / "docs" / "reference.md").read_text()
    section = reference.split("## Command line: profiles and environment variables", 1)[1]
    example = section.split("```toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "config.toml").write_text(example)
    profile = load_profile(None, tmp_path / "config.toml")
    assert profile is not None and profile.name == "alice"
    assert profile.site == "https://site1.example.org:8443/internal"
    assert profile.party_dir == str((tmp_path / "p1").resolve())
    for variable in ("MAHIRU_CONFIG`", "MAHIRU_CONFIG_FILE`", "MAHIRU_CONFIG__<KEY>`"):
        assert f"| `{variable}" in section
