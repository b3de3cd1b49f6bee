"""`mahiru serve`: run a Mahiru service in the foreground until SIGTERM or Ctrl-C.

    mahiru serve registry --config registry.yaml

Each service is a subcommand of `serve_group`; what they share is here:
`load_service_config` (the file plus its MAHIRU_CONFIG__* environment overrides) and
`run_service` (TLS requiring client certificates when the configuration names
a certificate, else plain HTTP behind a trusted proxy; JSON logs on stdout; a
clean shutdown on SIGTERM or SIGINT, exiting 0). A bad configuration exits 2,
an unreachable database or a port in use 4.
"""

from __future__ import annotations

import logging
import signal
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

import click

from mahiru.cli.errors import handle_errors
from mahiru.errors import Internal, InvalidInput, Unavailable
from mahiru.logs import configure_logging

# The configuration, the server, the database and the crypto library are imported
# where a service starts: `mahiru serve --help`, and `mahiru blobs`, which shares
# load_service_config, do not pay for the web, database and crypto libraries.
if TYPE_CHECKING:
    from mahiru.config import CallerLimits, ListenConfig, RegistryConfig, SiteConfig, TlsConfig
    from mahiru.server import ASGIApp
    from mahiru.storage.db import Database

logger = logging.getLogger("mahiru.serve")

C = TypeVar("C", "RegistryConfig", "SiteConfig")

_CONFIG_FILE = click.Path(dir_okay=False, path_type=Path)


@click.group("serve")
def serve_group() -> None:
    """Run a Mahiru service in the foreground until SIGTERM or Ctrl-C.

    Logs are JSON lines on stdout. Configuration values can be overridden with
    environment variables: MAHIRU_CONFIG__<KEY> for a top-level key and
    MAHIRU_CONFIG__<SECTION>__<KEY> for a nested one (e.g.
    MAHIRU_CONFIG__DATABASE_URL, MAHIRU_CONFIG__TLS__CERT).
    """


def _service_options(kind: str) -> Callable[[Callable[..., None]], click.Command]:
    """The command `mahiru serve KIND`, with the options every service takes."""

    def decorate(function: Callable[..., None]) -> click.Command:
        function = handle_errors(function)
        function = click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"]),
            default=None,
            help="How much to log (default: log_level in the configuration, else info).",
        )(function)
        function = click.option(
            "--config",
            "config_path",
            type=_CONFIG_FILE,
            required=True,
            help=f"The {kind}'s configuration file (YAML, or TOML if it ends in .toml).",
        )(function)
        return serve_group.command(kind)(function)

    return decorate


@_service_options("registry")
def registry_command(config_path: Path, log_level: str | None) -> None:
    """Run the registry: the list of parties and sites every member replicates.

    \b
    The configuration names at least:
      tls.network_ca   the network CA, whose certificates callers must present
      database_url     sqlite:///PATH or postgresql+psycopg://USER:PASS@HOST/DB
    and, to serve TLS itself, tls.cert and tls.key (from `mahiru certs registry`);
    without them it serves plain HTTP to the proxies in tls.trusted_proxies.
    """
    from mahiru.api.registry_app import create_registry_app
    from mahiru.bootstrap import RegistryOverrides, build_registry
    from mahiru.config import RegistryConfig

    def make(config: RegistryConfig, database: Database) -> tuple[ASGIApp, list[Path]]:
        registry = build_registry(config, overrides=RegistryOverrides(database=database))
        return create_registry_app(registry), [config.tls.network_ca]

    _serve("registry", RegistryConfig, config_path, log_level, make)


@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Web worker processes. With more than one, the background loops run in a process"
    " of their own beside them (docs/architecture.md, Processes).",
)
@_service_options("site")
def site_command(config_path: Path, log_level: str | None, workers: int = 1) -> None:
    """Run a site: its internal API (/internal) and external API (/external).

    \b
    The configuration names at least:
      site_id, owner   the site and its owner party, as registered
      tls.network_ca   the network CA, whose certificates peer sites present
      user_ca          the owner party's user CA, whose certificates users present
      registry_url     where the registry is
      database_url     sqlite:///PATH or postgresql+psycopg://USER:PASS@HOST/DB
      data_dir         where asset images are stored
    and, to serve TLS itself and to call its peers, tls.cert and tls.key (from
    `mahiru certs site`). Replication of the registry and of the peers' rules runs
    in the background every replication_interval_seconds.
    """
    from mahiru.api.site_app import create_site_app
    from mahiru.bootstrap import SiteOverrides, build_site
    from mahiru.config import SiteConfig

    def make(config: SiteConfig, database: Database) -> tuple[ASGIApp, list[Path]]:
        site = build_site(config, overrides=SiteOverrides(database=database))
        return create_site_app(site), [config.tls.network_ca, config.user_ca]

    if workers > 1:
        from mahiru.cli.site_processes import serve_site_processes

        config = load_service_config(SiteConfig, config_path)
        if log_level is not None:
            config = config.model_copy(update={"log_level": log_level})
        configure_logging(config.log_level)
        serve_site_processes(config, workers)
        return
    _serve("site", SiteConfig, config_path, log_level, make)


def _serve(
    name: str,
    kind: type[C],
    config_path: Path,
    log_level: str | None,
    make: Callable[[C, Database], tuple[ASGIApp, list[Path]]],
) -> None:
    """Load the configuration, open the database, build the app and serve it."""
    from mahiru.storage.db import create_database

    config = load_service_config(kind, config_path)
    if log_level is not None:
        config = config.model_copy(update={"log_level": log_level})
    configure_logging(config.log_level)
    database = create_database(config.database_url)
    try:
        logger.info(
            "database ready",
            extra={"database": database.url, "revision": database.current_revision()},
        )
        app, client_ca_files = make(config, database)
        run_service(
            app,
            name=name,
            listen=config.listen,
            tls=config.tls,
            client_ca_files=client_ca_files,
            log_level=config.log_level,
            limits=config.callers,
        )
    finally:
        database.close()


def load_service_config(cls: type[C], path: Path, environ: Mapping[str, str] | None = None) -> C:
    """Load a service configuration file with its MAHIRU_CONFIG__* environment overrides."""
    from mahiru.config import load_config

    return load_config(cls, path, environ)


def run_service(
    app: ASGIApp,
    *,
    name: str,
    listen: ListenConfig,
    tls: TlsConfig,
    client_ca_files: Sequence[Path],
    log_level: str = "info",
    limits: CallerLimits | None = None,
) -> None:
    """Serve `app` until SIGTERM or SIGINT, then shut down cleanly and return.

    With `tls.cert` the server speaks TLS and requires a client certificate
    from one of `client_ca_files`; without it, plain HTTP for the proxies in
    `tls.trusted_proxies` (a warning is logged). Unusable TLS files are
    InvalidInput naming them; an address that cannot be listened on is
    Unavailable. Every connection is held to `limits` (mahiru.server).
    """
    from mahiru.server import make_server

    certfile, keyfile = tls_files(name, tls, client_ca_files)
    listener = listen_socket(listen)
    received: list[int] = []

    def note_signal(signum: int, frame: FrameType | None) -> None:
        # uvicorn handles the signals while it runs and re-raises them once
        # it has shut down; noting them here makes that a clean exit.
        received.append(signum)

    stop_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, note_signal) for sig in stop_signals}
    try:
        server = make_server(
            app,
            host=listen.host,
            port=listen.port,
            certfile=certfile,
            keyfile=keyfile,
            client_ca_files=list(client_ca_files),
            log_level=log_level,
            limits=limits,
        )
        # uvicorn set up its own log handlers; route its records to ours again.
        configure_logging(log_level)
        host, port = listener.getsockname()[:2]
        scheme = "http" if certfile is None else "https"
        logger.info(
            f"{name} listening",
            extra={
                "service": name,
                "url": f"{scheme}://{host}:{port}",
                "tls": certfile is not None,
            },
        )
        if not received:
            server.run(sockets=[listener])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
    if not server.started and not received:
        raise Internal(f"the {name} did not start; see the log above")
    signals = [signal.Signals(signum).name for signum in received]
    logger.info(f"{name} stopped", extra={"service": name, "signals": signals})


def tls_files(
    name: str, tls: TlsConfig, client_ca_files: Sequence[Path]
) -> tuple[Path | None, Path | None]:
    """The certificate and key to serve TLS with, checked; (None, None) for plain HTTP."""
    from mahiru.pki import load_certificate, load_certified_key

    if (tls.cert is None) != (tls.key is None):
        raise InvalidInput("tls.cert and tls.key must be configured together")
    if tls.cert is None or tls.key is None:
        if not tls.trusted_proxies:
            raise InvalidInput(
                "neither tls.cert/tls.key nor tls.trusted_proxies are configured, so no caller"
                " could ever be authenticated: configure the service's certificate, or the"
                " address of the TLS-terminating proxy in front of it"
            )
        logger.warning(
            f"{name} serves plain HTTP: only a TLS-terminating proxy that verifies client"
            " certificates may reach it",
            extra={"service": name, "trusted_proxies": list(tls.trusted_proxies)},
        )
        return None, None
    load_certified_key(tls.cert, tls.key)
    for path in client_ca_files:
        load_certificate(path)
    return tls.cert, tls.key


def listen_socket(listen: ListenConfig) -> socket.socket:
    """A socket bound to the configured address, or Unavailable saying why not."""
    try:
        infos = socket.getaddrinfo(
            listen.host, listen.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise InvalidInput(
            f"cannot listen on {listen.host}:{listen.port}: {error.strerror}",
            {"host": listen.host, "port": listen.port},
        ) from None
    family, kind, protocol, _, address = infos[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
    except OSError as error:
        listener.close()
        raise Unavailable(
            f"cannot listen on {listen.host}:{listen.port}: {error.strerror}",
            {"host": listen.host, "port": listen.port},
        ) from None
    return listener
