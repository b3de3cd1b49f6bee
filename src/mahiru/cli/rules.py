"""`mahiru rules`: publish, list and revoke your party's rules at its site.

Rules are signed here with the party's main key (--key party.key from
`mahiru certs party`), which never leaves this machine; the site verifies
each signature against the registry before storing the rule, and its peers
verify it again when they replicate it. Because --key names the party key,
these commands take the TLS key of the user certificate as --tls-key (or
MAHIRU_KEY).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mahiru.cli.connection import CONNECTION_HELP, echo_json, site_client, site_options
from mahiru.cli.errors import exit_code_for, handle_errors
from mahiru.cli.prefixes import resolve_prefix
from mahiru.errors import Conflict, InvalidInput, PermissionDenied

# The policy model and the crypto library are imported where a command runs, not here:
# `--help` needs neither.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

_FILE = click.Path(dir_okay=False, path_type=Path)
#: The shortest rule id prefix `rules revoke` accepts.
MIN_PREFIX = 8
_RULES_HINT = "`mahiru rules list` shows the active rules"


def _party_key_option(command: Any) -> Any:
    command = click.option(
        "--key",
        "old_party_key",
        type=_FILE,
        hidden=True,
        help="Old name of --signing-key.",
    )(command)
    return click.option(
        "--signing-key",
        "party_key",
        type=_FILE,
        envvar="MAHIRU_PARTY_KEY",
        show_envvar=True,
        help="Your party's main key (party.key from `mahiru certs party`), to sign with.",
    )(command)


def _signing_key(party_key: Path | None, old_party_key: Path | None) -> Ed25519PrivateKey:
    """The party's signing key from --signing-key (or its old name --key, with a note)."""
    from mahiru.pki import load_party_private_key

    if old_party_key is not None:
        if party_key is not None and party_key != old_party_key:
            raise InvalidInput("give the signing key once, as --signing-key")
        click.echo(
            "note: --key is now --signing-key here (--key names the TLS key everywhere else)",
            err=True,
        )
        party_key = old_party_key
    if party_key is None:
        raise InvalidInput("no signing key: give --signing-key party.key (or set MAHIRU_PARTY_KEY)")
    return load_party_private_key(party_key)


@click.group("rules", epilog=CONNECTION_HELP)
def rules_group() -> None:
    """Publish, list and revoke your party's rules at its site."""


@rules_group.command("add")
@click.argument("rules_path", metavar="RULES.yaml", type=_FILE)
@_party_key_option
@site_options(tls_key_names=("--tls-key",))
@handle_errors
def add_command(
    rules_path: Path,
    party_key: Path | None,
    old_party_key: Path | None,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Sign every rule of RULES.yaml with --signing-key and publish it at the site.

    Each rule is accepted or rejected on its own (with the reason); the exit
    code is 0 only if all were accepted, else that of the worst rejection
    (2 for a bad signature or an invalid rule).
    """
    from mahiru.files import load_rules
    from mahiru.policy.signing import sign_rule

    rules = load_rules(rules_path)
    key = _signing_key(party_key, old_party_key)
    results: list[dict[str, Any]] = []
    exit_code = 0
    with site_client(site_url, cert, tls_key, ca) as site:
        for rule in rules:
            signed = sign_rule(rule, key)
            entry: dict[str, Any] = {"rule": rule.to_dict(), "rule_id": signed.rule_id}
            try:
                outcome = site.add_rule(signed)
            except (InvalidInput, Conflict, PermissionDenied) as error:
                # The rule's own fault: report it and go on with the others.
                entry.update(status="rejected", error=error.to_dict()["error"])
                exit_code = max(exit_code, exit_code_for(error))
            else:
                entry.update(
                    status="added" if outcome["changed"] else "unchanged",
                    version=outcome["version"],
                )
            results.append(entry)
    counts = {status: sum(r["status"] == status for r in results) for status in _STATUSES}
    if as_json:
        echo_json({"results": results, **counts})
    else:
        for entry, rule in zip(results, rules, strict=True):
            line = f"{entry['status']:<9}  {entry['rule_id'][:12]}  {rule}"
            if entry["status"] == "rejected":
                line += f"\n           {entry['error']['message']}"
            click.echo(line, err=entry["status"] == "rejected")
        click.echo(", ".join(f"{count} {status}" for status, count in counts.items()))
    if exit_code:
        sys.exit(exit_code)


_STATUSES = ("added", "unchanged", "rejected")


@rules_group.command("list")
@click.option("--replicated", is_flag=True, help="Also list the rules replicated from peers.")
@site_options()
@handle_errors
def list_command(
    replicated: bool, site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool
) -> None:
    """List the site's active rules (oldest first), and with --replicated its peers' too."""
    from mahiru.policy.signing import SignedRule

    with site_client(site_url, cert, tls_key, ca) as site:
        entries = site.list_rules(include_replicated=replicated)
    if as_json:
        echo_json({"rules": entries})
        return
    if not entries:
        click.echo("no rules")
    for entry in entries:
        rule = SignedRule.from_dict(entry["rule"]).rule
        click.echo(f"{entry['rule_id'][:12]}  {entry['source']}  {rule}")


@rules_group.command("revoke")
@click.argument("rule_id")
@_party_key_option
@site_options(tls_key_names=("--tls-key",))
@handle_errors
def revoke_command(
    rule_id: str,
    party_key: Path | None,
    old_party_key: Path | None,
    site_url: str,
    cert: Path,
    tls_key: Path,
    ca: Path,
    as_json: bool,
) -> None:
    """Revoke the site's rule RULE_ID (or a unique prefix of it), signing with your key."""
    from mahiru.policy.signing import SignedRule, sign_revocation

    if len(rule_id) < MIN_PREFIX:  # before the key is read or the site is asked
        resolve_prefix(rule_id, (), what="rule id", minimum=MIN_PREFIX, hint=_RULES_HINT)
    key = _signing_key(party_key, old_party_key)
    with site_client(site_url, cert, tls_key, ca) as site:
        entries = {str(e["rule_id"]): e for e in site.list_rules()}
        found = resolve_prefix(
            rule_id, entries, what="rule id", minimum=MIN_PREFIX, hint=_RULES_HINT
        )
        rule = SignedRule.from_dict(entries[found]["rule"]).rule
        outcome = site.revoke(sign_revocation(rule, key))
    if as_json:
        echo_json({"rule": rule.to_dict(), **outcome})
    else:
        state = "revoked" if outcome["changed"] else "was already revoked"
        click.echo(f"{state}  {outcome['rule_id'][:12]}  {rule}")


@rules_group.command("rejected")
@site_options()
@handle_errors
def rejected_command(site_url: str, cert: Path, tls_key: Path, ca: Path, as_json: bool) -> None:
    """List the rules from peers that the site rejected, with the reasons."""
    with site_client(site_url, cert, tls_key, ca) as site:
        rejected = site.rejected_rules()
    if as_json:
        echo_json({"rejected": rejected})
        return
    if not rejected:
        click.echo("no rejected rules")
    for entry in rejected:
        rule_id = (entry.get("rule_id") or "?")[:12]
        click.echo(f"{entry['source']} v{entry['version']}  {rule_id}  {entry['reason']}")
