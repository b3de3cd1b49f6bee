"""`mahiru certs`: create the keys and certificates of a Mahiru network.

Files written (private keys with mode 0600, everything else 0644; existing files are
never replaced without --overwrite):

    certs ca        OUT/ca.crt, OUT/ca.key                  network root CA
    certs registry  OUT/registry.crt, OUT/registry.key      registry TLS certificate
    certs site      OUT/site.crt, OUT/site.key              a site's TLS certificate
    certs party     OUT/party.key, OUT/party.pub,           party main key (Ed25519)
                    OUT/user-ca.crt, OUT/user-ca.key        and the party's user CA
    certs user      OUT/<name>.crt, OUT/<name>.key          a user's client certificate
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mahiru.certificate_terms import (
    CA_VALIDITY_DAYS,
    DEFAULT_DNS_NAMES,
    DEFAULT_IP_ADDRESSES,
    LEAF_VALIDITY_DAYS,
    Role,
)
from mahiru.cli.errors import handle_errors
from mahiru.cli.key_files import (
    CA_CERT,
    CA_KEY,
    PARTY_CLIENT_CERT,
    PARTY_CLIENT_KEY,
    PARTY_KEY,
    PARTY_PUBLIC_KEY,
    REGISTRY_CERT,
    REGISTRY_KEY,
    SITE_CERT,
    SITE_KEY,
    USER_CA_CERT,
    USER_CA_KEY,
)
from mahiru.errors import InvalidInput

# The PKI (the crypto library) is imported where a command runs: `--help` does not need it.
if TYPE_CHECKING:
    from mahiru.pki import CertifiedKey

F = TypeVar("F", bound=Callable[..., Any])

_DIRECTORY = click.Path(file_okay=False, dir_okay=True, path_type=Path)


@click.group("certs")
def certs_group() -> None:
    """Create the keys and certificates of a Mahiru network.

    Private keys are written with mode 0600 and are never sent anywhere; existing files
    are only replaced with --overwrite.
    """


def _common_options(default_days: int) -> Callable[[F], F]:
    """The options every certs command has: --days, --overwrite and --json."""

    def decorate(command: F) -> F:
        command = click.option(
            "--json", "as_json", is_flag=True, help="Print the written paths as JSON."
        )(command)
        command = click.option(
            "--overwrite", is_flag=True, help="Replace files that already exist."
        )(command)
        command = click.option(
            "--days",
            type=click.IntRange(min=1),
            default=default_days,
            show_default=True,
            help="How many days the certificate is valid.",
        )(command)
        return command

    return decorate


def _address_options(command: F) -> F:
    """The --dns and --ip options of server certificates."""
    command = click.option(
        "--ip",
        "ip_addresses",
        multiple=True,
        metavar="ADDR",
        help="IP address the server is reached at (repeatable).",
    )(command)
    command = click.option(
        "--dns",
        "dns_names",
        multiple=True,
        metavar="NAME",
        help=(
            "DNS name the server is reached at (repeatable). Without any --dns or --ip: "
            f"{DEFAULT_DNS_NAMES[0]} and {DEFAULT_IP_ADDRESSES[0]}."
        ),
    )(command)
    return command


@certs_group.command("ca")
@click.option("--out", "out_dir", type=_DIRECTORY, required=True, help="Directory to write to.")
@click.option("--name", default="Mahiru network CA", show_default=True, help="The CA's name.")
@_common_options(CA_VALIDITY_DAYS)
@handle_errors
def ca_command(out_dir: Path, name: str, days: int, overwrite: bool, as_json: bool) -> None:
    """Create the network root CA: OUT/ca.crt and OUT/ca.key.

    The CA issues the registry and site certificates; keep ca.key offline.
    """
    from mahiru.pki import create_network_ca, save_certified_key

    paths = _paths(out_dir, certificate=CA_CERT, private_key=CA_KEY)
    ca = create_network_ca(name, days=days)
    _prepare(out_dir, paths, overwrite=overwrite)
    save_certified_key(paths["certificate"], paths["private_key"], ca, overwrite=overwrite)
    _report(paths, as_json=as_json, summary=f"created network CA {name!r}")


@certs_group.command("registry")
@click.option(
    "--ca", "ca_dir", type=_DIRECTORY, required=True, help="Directory with ca.crt and ca.key."
)
@click.option("--out", "out_dir", type=_DIRECTORY, required=True, help="Directory to write to.")
@_address_options
@_common_options(LEAF_VALIDITY_DAYS)
@handle_errors
def registry_command(
    ca_dir: Path,
    out_dir: Path,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    days: int,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Create the registry's TLS certificate: OUT/registry.crt and OUT/registry.key.

    Issued by the network CA in CA, for server and client authentication.
    """
    from mahiru.pki import issue_registry_certificate

    ca = _load_network_ca(ca_dir)
    paths = _paths(out_dir, certificate=REGISTRY_CERT, private_key=REGISTRY_KEY)
    dns, ips = _addresses(dns_names, ip_addresses)
    issued = issue_registry_certificate(ca, dns_names=dns, ip_addresses=ips, days=days)
    _prepare(out_dir, paths, overwrite=overwrite)
    _save_issued(paths, issued, overwrite=overwrite)
    _report(paths, as_json=as_json, summary="created registry certificate", identity="registry")


@certs_group.command("site")
@click.option(
    "--ca", "ca_dir", type=_DIRECTORY, required=True, help="Directory with ca.crt and ca.key."
)
@click.option("--site", "site_id", required=True, metavar="SITE_ID", help="site:<namespace>:<name>")
@click.option("--out", "out_dir", type=_DIRECTORY, required=True, help="Directory to write to.")
@_address_options
@_common_options(LEAF_VALIDITY_DAYS)
@handle_errors
def site_command(
    ca_dir: Path,
    site_id: str,
    out_dir: Path,
    dns_names: tuple[str, ...],
    ip_addresses: tuple[str, ...],
    days: int,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Create a site's TLS certificate: OUT/site.crt and OUT/site.key.

    Issued by the network CA in CA, for server and client authentication, naming SITE_ID.
    """
    from mahiru.pki import issue_site_certificate

    ca = _load_network_ca(ca_dir)
    paths = _paths(out_dir, certificate=SITE_CERT, private_key=SITE_KEY)
    dns, ips = _addresses(dns_names, ip_addresses)
    issued = issue_site_certificate(ca, site_id, dns_names=dns, ip_addresses=ips, days=days)
    _prepare(out_dir, paths, overwrite=overwrite)
    _save_issued(paths, issued, overwrite=overwrite)
    _report(paths, as_json=as_json, summary=f"created certificate of {site_id}", identity=site_id)


@certs_group.command("party-client")
@click.option(
    "--ca", "ca_dir", type=_DIRECTORY, required=True, help="Directory with ca.crt and ca.key."
)
@click.option(
    "--party", "party_id", required=True, metavar="PARTY_ID", help="party:<namespace>:<name>"
)
@click.option("--out", "out_dir", type=_DIRECTORY, required=True, help="Directory to write to.")
@_common_options(LEAF_VALIDITY_DAYS)
@handle_errors
def party_client_command(
    ca_dir: Path, party_id: str, out_dir: Path, days: int, overwrite: bool, as_json: bool
) -> None:
    """Create a party's network client certificate: OUT/party-client.crt and .key.

    Issued by the network CA; the party's administrators present it to the
    registry to register the party and its sites.
    """
    from mahiru.pki import issue_party_client_certificate

    ca = _load_network_ca(ca_dir)
    paths = _paths(out_dir, certificate=PARTY_CLIENT_CERT, private_key=PARTY_CLIENT_KEY)
    issued = issue_party_client_certificate(ca, party_id, days=days)
    _prepare(out_dir, paths, overwrite=overwrite)
    _save_issued(paths, issued, overwrite=overwrite)
    _report(
        paths,
        as_json=as_json,
        summary=f"created client certificate of {party_id}",
        identity=party_id,
    )


@certs_group.command("party")
@click.option(
    "--party", "party_id", required=True, metavar="PARTY_ID", help="party:<namespace>:<name>"
)
@click.option("--out", "out_dir", type=_DIRECTORY, required=True, help="Directory to write to.")
@_common_options(CA_VALIDITY_DAYS)
@handle_errors
def party_command(party_id: str, out_dir: Path, days: int, overwrite: bool, as_json: bool) -> None:
    """Create a party's main key and user CA.

    Writes OUT/party.key (Ed25519 main key, signs rules and registrations), OUT/party.pub
    (its public key, for the registry), OUT/user-ca.crt and OUT/user-ca.key (the CA that
    certifies the party's users; --days applies to it).
    """
    from mahiru.pki import (
        create_party_credentials,
        save_certified_key,
        save_private_key,
        save_public_key,
    )

    credentials = create_party_credentials(party_id, days=days)
    paths = _paths(
        out_dir,
        main_key=PARTY_KEY,
        public_key=PARTY_PUBLIC_KEY,
        user_ca_certificate=USER_CA_CERT,
        user_ca_key=USER_CA_KEY,
    )
    _prepare(out_dir, paths, overwrite=overwrite)
    save_private_key(paths["main_key"], credentials.main_key, overwrite=overwrite)
    save_public_key(paths["public_key"], credentials.main_key, overwrite=overwrite)
    save_certified_key(
        paths["user_ca_certificate"],
        paths["user_ca_key"],
        credentials.user_ca,
        overwrite=overwrite,
    )
    _report(paths, as_json=as_json, summary=f"created keys of {party_id}", identity=party_id)


@certs_group.command("user")
@click.option(
    "--party-dir",
    type=_DIRECTORY,
    required=True,
    help="The party's directory, with user-ca.crt and user-ca.key.",
)
@click.option(
    "--name", "user_name", required=True, help="The user's name (letters, digits, _.@+-)."
)
@click.option(
    "--role",
    type=click.Choice([role.value for role in Role]),
    default=Role.USER.value,
    show_default=True,
    help="admin users may also upload assets and rules; reviewer (and admin) users also"
    " see and decide the reviews of results their party is to review.",
)
@click.option("--out", "out_dir", type=_DIRECTORY, required=True, help="Directory to write to.")
@_common_options(LEAF_VALIDITY_DAYS)
@handle_errors
def user_command(
    party_dir: Path,
    user_name: str,
    role: str,
    out_dir: Path,
    days: int,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Create a user's client certificate: OUT/NAME.crt and OUT/NAME.key, and both as
    OUT/NAME.p12 for a web browser (the site's dashboard).

    Issued by the party's user CA in PARTY_DIR, with the user's NAME, party and ROLE.
    The .p12 file has no password: like the key, it is readable by you only.
    """
    from mahiru.pki import issue_user_certificate, load_certified_key, save_pkcs12, user_ca_party
    from mahiru.pki.names import check_user_name

    check_user_name(user_name)
    user_ca = load_certified_key(party_dir / USER_CA_CERT, party_dir / USER_CA_KEY)
    party_id = user_ca_party(user_ca.certificate)
    paths = _paths(
        out_dir,
        certificate=f"{user_name}.crt",
        private_key=f"{user_name}.key",
        browser_bundle=f"{user_name}.p12",
    )
    issued = issue_user_certificate(user_ca, user_name, role, days=days)
    _prepare(out_dir, paths, overwrite=overwrite)
    _save_issued(paths, issued, overwrite=overwrite)
    save_pkcs12(paths["browser_bundle"], issued, name=user_name, overwrite=overwrite)
    _report(
        paths,
        as_json=as_json,
        summary=f"created certificate of user {user_name} ({role}) of {party_id}",
        identity=party_id,
        user=user_name,
        role=role,
    )


def _paths(out_dir: Path, **names: str) -> dict[str, Path]:
    """The absolute output paths, keyed by what each file holds."""
    base = out_dir.expanduser().absolute()
    return {kind: base / name for kind, name in names.items()}


def _prepare(out_dir: Path, paths: dict[str, Path], *, overwrite: bool) -> None:
    """Create the output directory, and refuse early if any output file exists."""
    from mahiru.pki import ensure_can_write

    if out_dir.exists() and not out_dir.is_dir():
        raise InvalidInput(f"not a directory: {out_dir}", details={"path": str(out_dir)})
    out_dir.mkdir(parents=True, exist_ok=True)
    ensure_can_write(paths.values(), overwrite=overwrite)


def _load_network_ca(ca_dir: Path) -> CertifiedKey:
    """The network CA from CA_DIR/ca.crt and CA_DIR/ca.key."""
    from mahiru.pki import load_certified_key

    return load_certified_key(ca_dir / CA_CERT, ca_dir / CA_KEY)


def _addresses(
    dns_names: tuple[str, ...], ip_addresses: tuple[str, ...]
) -> tuple[Sequence[str], Sequence[str]]:
    """The DNS and IP SANs to certify; with neither option given, the localhost defaults."""
    if not dns_names and not ip_addresses:
        return DEFAULT_DNS_NAMES, DEFAULT_IP_ADDRESSES
    return dns_names, ip_addresses


def _save_issued(paths: dict[str, Path], issued: CertifiedKey, *, overwrite: bool) -> None:
    """Write an issued certificate and its key to the `certificate`/`private_key` paths."""
    from mahiru.pki import save_certified_key

    save_certified_key(paths["certificate"], paths["private_key"], issued, overwrite=overwrite)


def _report(paths: dict[str, Path], *, as_json: bool, summary: str, **facts: str) -> None:
    """Tell the user what was written: a line per file, or one JSON object."""
    if as_json:
        document: dict[str, Any] = dict(facts)
        document["files"] = {kind: str(path) for kind, path in paths.items()}
        click.echo(json.dumps(document, indent=2))
        return
    click.echo(summary)
    for kind, path in paths.items():
        click.echo(f"  {kind.replace('_', ' ')}: {path}")
