"""The connection options of the client commands, and the clients they connect with.

The options (URL, certificate, key, CA, --json) are defined here for every
command's help; the clients and the checks of the URL and the TLS files
(`mahiru.cli.tls_mistakes`) are imported only when a command connects, so
`mahiru <command> --help` loads neither the HTTP client nor the crypto library.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mahiru.cli.options import ProfileOption

if TYPE_CHECKING:
    from mahiru.client.jobs import JobsClient
    from mahiru.client.registry import RegistryClient
    from mahiru.client.reviews import ReviewsClient
    from mahiru.client.site import SiteClient

F = TypeVar("F", bound=Callable[..., Any])
_FILE = click.Path(dir_okay=False, path_type=Path)


CONNECTION_HELP = """\b
The connection options can also be set in the environment:
  MAHIRU_SITE_URL  --site     MAHIRU_CERT  --cert
  MAHIRU_CA        --ca       MAHIRU_KEY   --key (--tls-key)
"""


def connection_options(
    url_option: Callable[[F], F],
    *,
    cert_help: str,
    peer: str,
    key_names: tuple[str, ...] = ("--key",),
    key_parameter: str = "key",
) -> Callable[[F], F]:
    """The URL option, --cert, the TLS key, --ca and --json, each settable in the environment.

    `peer` names what --ca checks ("the site", "the registry").
    """
    options: list[Callable[[Any], Any]] = [
        url_option,
        click.option(
            "--cert",
            type=_FILE,
            required=True,
            cls=ProfileOption,
            envvar="MAHIRU_CERT",
            show_envvar=True,
            help=cert_help,
        ),
        click.option(
            *key_names,
            key_parameter,
            type=_FILE,
            required=True,
            cls=ProfileOption,
            envvar="MAHIRU_KEY",
            show_envvar=True,
            help="The private key of --cert.",
        ),
        click.option(
            "--ca",
            type=_FILE,
            required=True,
            cls=ProfileOption,
            envvar="MAHIRU_CA",
            show_envvar=True,
            help=f"The network CA certificate (ca.crt), to check {peer} with.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the result as JSON."),
    ]

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def site_options(*, tls_key_names: tuple[str, ...] = ("--key", "--tls-key")) -> Callable[[F], F]:
    """--site, --cert, the TLS key, --ca and --json, for commands using the internal API.

    Commands that also take a party key (`mahiru rules add --signing-key`, old name
    `--key`) name the TLS key `--tls-key` only.
    """
    site = click.option(
        "--site",
        "site_url",
        required=True,
        cls=ProfileOption,
        envvar="MAHIRU_SITE_URL",
        show_envvar=True,
        metavar="URL",
        help="The site's internal API, e.g. https://site1.example.org:8443/internal.",
    )
    return connection_options(
        site,
        cert_help="Your user certificate (from `mahiru certs user`).",
        peer="the site",
        key_names=tls_key_names,
        key_parameter="tls_key",
    )


def echo_json(data: Any) -> None:
    """Print JSON for scripts."""
    click.echo(json.dumps(data, indent=2, default=str))


def site_client(url: str, cert: Path, key: Path, ca: Path) -> SiteClient:
    """A client of a site's internal API, after the local checks."""
    from mahiru.cli.tls_mistakes import DiagnosingTransport, checked_identity
    from mahiru.cli.urls import Api
    from mahiru.client.site import SiteClient

    identity = checked_identity(url, cert, key, ca, Api.SITE)
    return SiteClient(url, identity, transport=DiagnosingTransport(url, identity, Api.SITE))


def jobs_client(url: str, cert: Path, key: Path, ca: Path) -> JobsClient:
    """A jobs client of a site's internal API, after the local checks."""
    from mahiru.cli.tls_mistakes import DiagnosingTransport, checked_identity
    from mahiru.cli.urls import Api
    from mahiru.client.jobs import JobsClient

    identity = checked_identity(url, cert, key, ca, Api.SITE)
    return JobsClient(url, identity, transport=DiagnosingTransport(url, identity, Api.SITE))


def reviews_client(url: str, cert: Path, key: Path, ca: Path) -> ReviewsClient:
    """A reviews client of a site's internal API, after the local checks."""
    from mahiru.cli.tls_mistakes import DiagnosingTransport, checked_identity
    from mahiru.cli.urls import Api
    from mahiru.client.reviews import ReviewsClient

    identity = checked_identity(url, cert, key, ca, Api.SITE)
    return ReviewsClient(url, identity, transport=DiagnosingTransport(url, identity, Api.SITE))


def registry_client(url: str, cert: Path, key: Path, ca: Path) -> RegistryClient:
    """A client of the registry, after the local checks."""
    from mahiru.cli.tls_mistakes import DiagnosingTransport, checked_identity
    from mahiru.cli.urls import Api
    from mahiru.client.registry import RegistryClient

    identity = checked_identity(url, cert, key, ca, Api.REGISTRY)
    transport = DiagnosingTransport(url, identity, Api.REGISTRY)
    return RegistryClient(url, identity, transport=transport)
