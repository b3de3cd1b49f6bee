"""`mahiru register`: register a party and its sites at the registry, show and remove them.

Every command talks to the registry over mutual TLS: it presents a network
certificate (--cert/--key; the party's party-client.crt from
`mahiru certs party-client`, or a site's site.crt) and checks the registry's
certificate against the network CA (--ca). Registrations are signed with the
party's main key from --party-dir (as written by `mahiru certs party`), which
never leaves this machine.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mahiru.cli.connection import connection_options, registry_client
from mahiru.cli.errors import handle_errors
from mahiru.cli.key_files import PARTY_KEY, PARTY_PUBLIC_KEY, USER_CA_CERT
from mahiru.cli.options import ProfileOption
from mahiru.errors import InvalidInput

# The client, the model and the crypto library are imported where a command runs, not
# here: `--help` needs none of them.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from mahiru.client.registry import RegistryClient
    from mahiru.model.registry import PartyRecord

F = TypeVar("F", bound=Callable[..., Any])

_FILE = click.Path(dir_okay=False, path_type=Path)
_DIRECTORY = click.Path(file_okay=False, dir_okay=True, path_type=Path)


@click.group("register")
def register_group() -> None:
    """Register a party and its sites at the registry; show and remove them.

    \b
    The connection options can also be set in the environment:
      MAHIRU_REGISTRY_URL  --registry     MAHIRU_CERT  --cert
      MAHIRU_CA            --ca           MAHIRU_KEY   --key
      MAHIRU_PARTY_DIR     --party-dir
    """


_connection_options = connection_options(
    click.option(
        "--registry",
        "registry_url",
        required=True,
        cls=ProfileOption,
        envvar="MAHIRU_REGISTRY_URL",
        show_envvar=True,
        metavar="URL",
        help="The registry's URL, e.g. https://registry.example.org:8443.",
    ),
    cert_help="This side's network certificate (e.g. party-client.crt).",
    peer="the registry",
)


def _party_dir_option(command: F) -> F:
    """--party-dir: where `mahiru certs party` wrote the party's keys."""
    option = click.option(
        "--party-dir",
        type=_DIRECTORY,
        required=True,
        cls=ProfileOption,
        envvar="MAHIRU_PARTY_DIR",
        show_envvar=True,
        help=f"The party's directory, with {PARTY_KEY}, {PARTY_PUBLIC_KEY} and {USER_CA_CERT}.",
    )
    return option(command)


@register_group.command("party")
@_connection_options
@_party_dir_option
@handle_errors
def party_command(
    registry_url: str, cert: Path, key: Path, ca: Path, as_json: bool, party_dir: Path
) -> None:
    """Register the party of PARTY_DIR, or update its keys.

    The party id and its namespace come from the party's user CA; the client
    certificate must be that party's (from `mahiru certs party-client`).
    """
    record, main_key = _load_party(party_dir)
    with _client(registry_url, cert, key, ca) as registry:
        version = registry.register_party(record, main_key)
    _report(
        as_json,
        {"registered": record.to_dict(), "version": version},
        f"registered {record.id} (namespace {record.namespace}); registry version {version}",
    )


@register_group.command("site")
@_connection_options
@_party_dir_option
@click.option("--site", "site_id", required=True, metavar="SITE_ID", help="site:<namespace>:<name>")
@click.option(
    "--site-cert",
    type=_FILE,
    required=True,
    help="The site's TLS certificate (site.crt from `mahiru certs site`).",
)
@click.option("--internal-url", metavar="URL", help="Where the site's own users reach it.")
@click.option("--external-url", metavar="URL", help="Where other sites reach it.")
@click.option(
    "--store/--no-store", default=True, show_default=True, help="Whether the site stores assets."
)
@click.option(
    "--runner/--no-runner",
    default=True,
    show_default=True,
    help="Whether the site runs workflow steps.",
)
@click.option(
    "--admin",
    "admin_id",
    metavar="PARTY_ID",
    help="The party administering the site (default: the owner).",
)
@handle_errors
def site_command(
    registry_url: str,
    cert: Path,
    key: Path,
    ca: Path,
    as_json: bool,
    party_dir: Path,
    site_id: str,
    site_cert: Path,
    internal_url: str | None,
    external_url: str | None,
    store: bool,
    runner: bool,
    admin_id: str | None,
) -> None:
    """Register a site of the party of PARTY_DIR, or update it.

    The site id must be in the party's namespace. The client certificate may
    be the party's or the site's own.
    """
    from mahiru.model.identifiers import PartyId, SiteId
    from mahiru.model.registry import SiteEndpoints, SiteRecord
    from mahiru.pki import certificate_pem, load_certificate

    party, main_key = _load_party(party_dir)
    record = SiteRecord(
        id=SiteId.parse(site_id),
        owner=party.id,
        admin=PartyId.parse(admin_id) if admin_id else party.id,
        endpoints=SiteEndpoints(internal=internal_url, external=external_url),
        tls_cert_pem=certificate_pem(load_certificate(site_cert)),
        has_store=store,
        has_runner=runner,
    )
    with _client(registry_url, cert, key, ca) as registry:
        version = registry.register_site(record, main_key)
    _report(
        as_json,
        {"registered": record.to_dict(), "version": version},
        f"registered {record.id} of {record.owner}; registry version {version}",
    )


@register_group.command("show")
@_connection_options
@handle_errors
def show_command(registry_url: str, cert: Path, key: Path, ca: Path, as_json: bool) -> None:
    """Show every registered party and site."""
    with _client(registry_url, cert, key, ca) as registry:
        version = registry.version()
        parties = registry.parties()
        sites = registry.sites()
    if as_json:
        document = {
            "registry": registry_url,
            "version": version,
            "parties": [party.to_dict() for party in parties],
            "sites": [site.to_dict() for site in sites],
        }
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(f"registry {registry_url} at version {version}")
    click.echo(f"parties ({len(parties)}):")
    for party in parties:
        click.echo(f"  {party.id}  (namespace {party.namespace})")
    click.echo(f"sites ({len(sites)}):")
    for site in sites:
        flags = (("store", site.has_store), ("runner", site.has_runner))
        capabilities = ", ".join(name for name, present in flags if present)
        click.echo(
            f"  {site.id}  owner {site.owner}, admin {site.admin};"
            f" {capabilities or 'no store, no runner'}"
        )
        click.echo(
            f"      internal {site.endpoints.internal or '-'}"
            f"  external {site.endpoints.external or '-'}"
        )


@register_group.command("remove-site")
@_connection_options
@_party_dir_option
@click.option("--site", "site_id", required=True, metavar="SITE_ID", help="site:<namespace>:<name>")
@handle_errors
def remove_site_command(
    registry_url: str,
    cert: Path,
    key: Path,
    ca: Path,
    as_json: bool,
    party_dir: Path,
    site_id: str,
) -> None:
    """Remove a site of the party of PARTY_DIR from the registry."""
    from mahiru.model.identifiers import SiteId

    checked = SiteId.parse(site_id)
    _, main_key = _load_party(party_dir)
    with _client(registry_url, cert, key, ca) as registry:
        version = registry.remove_site(checked, main_key)
    _report(
        as_json,
        {"removed": str(checked), "version": version},
        f"removed {checked}; registry version {version}",
    )


@register_group.command("remove-party")
@_connection_options
@_party_dir_option
@handle_errors
def remove_party_command(
    registry_url: str, cert: Path, key: Path, ca: Path, as_json: bool, party_dir: Path
) -> None:
    """Remove the party of PARTY_DIR from the registry (remove its sites first)."""
    party, main_key = _load_party(party_dir)
    with _client(registry_url, cert, key, ca) as registry:
        version = registry.remove_party(party.id, main_key)
    _report(
        as_json,
        {"removed": str(party.id), "version": version},
        f"removed {party.id}; registry version {version}",
    )


def _client(registry_url: str, cert: Path, key: Path, ca: Path) -> RegistryClient:
    return registry_client(registry_url, cert, key, ca)


def _load_party(party_dir: Path) -> tuple[PartyRecord, Ed25519PrivateKey]:
    """The party's record and main key, from the files `mahiru certs party` wrote."""
    from mahiru.model.identifiers import PartyId
    from mahiru.model.registry import PartyRecord
    from mahiru.pki import (
        certificate_pem,
        load_certificate,
        load_party_private_key,
        load_party_public_key,
        public_key_pem,
        user_ca_party,
    )

    main_key = load_party_private_key(party_dir / PARTY_KEY)
    public_key = load_party_public_key(party_dir / PARTY_PUBLIC_KEY)
    if public_key_pem(public_key) != public_key_pem(main_key):
        raise InvalidInput(
            f"{party_dir / PARTY_PUBLIC_KEY} is not the public key of {party_dir / PARTY_KEY}",
            {"party_dir": str(party_dir)},
        )
    user_ca = load_certificate(party_dir / USER_CA_CERT)
    try:
        party_id = PartyId.parse(user_ca_party(user_ca))
    except InvalidInput as error:
        raise InvalidInput(f"{party_dir / USER_CA_CERT}: {error.message}", error.details) from None
    record = PartyRecord(
        id=party_id,
        namespace=party_id.namespace,
        public_key_pem=public_key_pem(main_key),
        user_ca_pem=certificate_pem(user_ca),
    )
    return record, main_key


def _report(as_json: bool, document: dict[str, Any], summary: str) -> None:
    """Print the outcome: one line for people, or a JSON object for scripts."""
    if as_json:
        click.echo(json.dumps(document, indent=2))
    else:
        click.echo(summary)
