"""The registry's composition root: its database, repository and service, built once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mahiru.api.auth import CertificateAuthenticator
from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.config import RegistryConfig
from mahiru.pki import load_certificate
from mahiru.services.registry import RegistryService
from mahiru.storage.db import Database, create_database
from mahiru.storage.registry import RegistryRepository


@dataclass(frozen=True, slots=True)
class RegistryOverrides:
    """Parts of the registry to use instead of those built from its configuration (used
    as they are and left open)."""

    database: Database | None = None
    authenticator: CertificateAuthenticator | None = None
    clock: Clock = SYSTEM_CLOCK


@dataclass(frozen=True, slots=True)
class Registry:
    """The registry's object graph, as `build_registry` wired it."""

    config: RegistryConfig
    database: Database
    service: RegistryService
    authenticator: CertificateAuthenticator
    #: What `build_registry` opened, closed by `close`.
    closing: tuple[Callable[[], None], ...]

    def close(self) -> None:
        """Close what `build_registry` opened (not the parts passed in)."""
        for close in reversed(self.closing):
            close()


def build_registry(
    config: RegistryConfig, *, overrides: RegistryOverrides = RegistryOverrides()
) -> Registry:
    """The registry of `config`.

    Without a database given, `config.database_url` is opened (and migrated);
    without an authenticator, callers are checked against the network CA and
    trusted proxies of `config.tls`.
    """
    authenticator = overrides.authenticator or CertificateAuthenticator(
        load_certificate(config.tls.network_ca),
        trusted_proxies=config.tls.trusted_proxies,
    )
    closing: list[Callable[[], None]] = []
    database = overrides.database
    if database is None:
        database = create_database(config.database_url)
        closing.append(database.close)
    service = RegistryService(
        database,
        RegistryRepository(database, clock=overrides.clock),
        network_ca=authenticator.network_ca,
    )
    return Registry(config, database, service, authenticator, tuple(closing))
