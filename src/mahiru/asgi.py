"""App factories for running the services under Gunicorn with uvicorn workers.

    MAHIRU_CONFIG_FILE=/etc/mahiru/registry.yaml \
        gunicorn -k mahiru.asgi_worker.BoundedWorker 'mahiru.asgi:registry()'
    MAHIRU_CONFIG_FILE=/etc/mahiru/site.yaml \
        gunicorn -k mahiru.asgi_worker.BoundedWorker --workers 1 'mahiru.asgi:site()'

This is how the container images run the registry and the sites
(docs/running-distributed-scenarios.md),
behind an nginx proxy that terminates TLS. Gunicorn serves plain HTTP here,
so the configuration must list the proxies in `tls.trusted_proxies`: only
their `X-Mahiru-Client-Cert` header is believed. A site's `tls.cert` and
`tls.key` are still used, for the calls it makes to the registry and its peers.

A site run by `mahiru.asgi:site()` must have exactly one worker: each would
start its own background loops. To run several, the workers load
`mahiru.asgi:site_web()`, which starts no loop, and one loops process runs
`site_loops()` beside them (the image's Gunicorn configuration does this when
MAHIRU_WORKERS > 1). The registry has no background work and may run several.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from fastapi import FastAPI

from mahiru.config import (
    CallerLimits,
    RegistryConfig,
    SiteConfig,
    TlsConfig,
    load_caller_limits,
    load_config,
)
from mahiru.errors import InvalidInput
from mahiru.logs import configure_logging

#: The environment variable naming the service's configuration file.
CONFIG_FILE_VARIABLE = "MAHIRU_CONFIG_FILE"

C = TypeVar("C", RegistryConfig, SiteConfig)


def registry() -> FastAPI:
    """The registry app, configured by the file named in MAHIRU_CONFIG_FILE."""
    from mahiru.api.registry_app import create_registry_app
    from mahiru.bootstrap import build_registry

    return create_registry_app(build_registry(_load(RegistryConfig)))


def site() -> FastAPI:
    """The site app, configured by the file named in MAHIRU_CONFIG_FILE (run one worker)."""
    from mahiru.api.site_app import create_site_app
    from mahiru.bootstrap import build_site

    return create_site_app(build_site(_load(SiteConfig)))


def site_web() -> FastAPI:
    """A web worker of the site configured by the file in MAHIRU_CONFIG_FILE, when it runs
    several beside a loops process (`site_loops`): it serves the API and starts no loop."""
    from mahiru.api.site_app import create_site_app
    from mahiru.bootstrap.site_parts import site_part

    site = site_part(_load(SiteConfig), web=True)
    return create_site_app(site, start_replication=False, start_jobs=False)


def prepare_site_processes() -> None:
    """Before a site's web workers and loops process start (Gunicorn's `on_starting`):
    migrate its database once and empty its shared metrics folder."""
    from mahiru.bootstrap.site_parts import prepare_processes
    from mahiru.storage.db import create_database

    config = _load(SiteConfig)
    create_database(config.database_url).close()
    prepare_processes(config)


def site_loops() -> None:
    """Run the loops process of the site configured by the file in MAHIRU_CONFIG_FILE until
    SIGTERM or SIGINT (`python -c 'from mahiru.asgi import site_loops; site_loops()'`)."""
    import signal
    import threading

    from mahiru.bootstrap.site_parts import run_loops, site_part

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    run_loops(site_part(_load(SiteConfig), web=False), stop)


def caller_limits() -> CallerLimits:
    """The `callers` limits of the service configured by the file in MAHIRU_CONFIG_FILE."""
    name = os.environ.get(CONFIG_FILE_VARIABLE)
    if not name:
        raise InvalidInput(
            f"{CONFIG_FILE_VARIABLE} is not set: set it to the service's configuration file"
        )
    return load_caller_limits(Path(name))


def _load(cls: type[C]) -> C:
    """The configuration from MAHIRU_CONFIG_FILE (plus MAHIRU_CONFIG__* overrides), checked."""
    name = os.environ.get(CONFIG_FILE_VARIABLE)
    if not name:
        raise InvalidInput(
            f"{CONFIG_FILE_VARIABLE} is not set: set it to the service's configuration file"
        )
    config = load_config(cls, Path(name))
    configure_logging(config.log_level)
    _check_proxied(config.tls)
    return config


def _check_proxied(tls: TlsConfig) -> None:
    """Refuse a configuration under which no caller could ever be authenticated.

    Gunicorn's workers speak plain HTTP, so client certificates can only
    arrive from a trusted proxy.
    """
    if not tls.trusted_proxies:
        raise InvalidInput(
            "tls.trusted_proxies is empty: under Gunicorn the service serves plain HTTP and"
            " learns its callers only from the TLS-terminating proxies listed there"
        )
