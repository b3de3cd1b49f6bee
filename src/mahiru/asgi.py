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

A site must run with exactly one worker: each worker would start its own
background replication, and two would replicate (and later run steps) twice.
The registry has no background work and may run several.
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
