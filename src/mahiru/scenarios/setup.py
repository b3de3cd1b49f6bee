"""Setting up a party's site with the Python clients: register, upload assets, add rules.

These are the steps an administrator's client machine performs; the
scenario client scripts (scenarios/*/client*/init_site.py) and `mahiru demo`
call them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mahiru import pki
from mahiru.client.http import TlsIdentity
from mahiru.client.registry import RegistryClient
from mahiru.client.site import SiteClient
from mahiru.errors import InvalidInput
from mahiru.files import load_job, load_rules
from mahiru.model.assets import Asset
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registry import PartyRecord, SiteEndpoints, SiteRecord
from mahiru.model.workflow import Job
from mahiru.policy.rules import Rule
from mahiru.policy.signing import sign_rule

logger = logging.getLogger("mahiru.scenarios")

#: Reports progress: (what, done, total).
Progress = Callable[[str, int, int], None]

#: The assets a site stores, with their archive files in a folder of archives.
SiteAssets = Callable[[SiteId, Path], list[tuple[Asset, Path]]]


@dataclass(frozen=True, slots=True)
class PartyCredentials:
    """What a party's administrator holds (files from `mahiru certs`).

    `party_dir` has party.key, party.pub and user-ca.crt (`mahiru certs party`)
    and party-client.crt/.key (`mahiru certs party-client`); `admin_cert` and
    `admin_key` are an admin user's certificate (`mahiru certs user --role admin`).
    """

    party: PartyId
    party_dir: Path
    admin_cert: Path
    admin_key: Path
    network_ca: Path

    def registry_identity(self) -> TlsIdentity:
        """The party's network client certificate, for the registry."""
        return TlsIdentity(
            self.party_dir / "party-client.crt",
            self.party_dir / "party-client.key",
            self.network_ca,
        )

    def site_identity(self) -> TlsIdentity:
        """The admin user's certificate, for the site's internal API."""
        return TlsIdentity(self.admin_cert, self.admin_key, self.network_ca)


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A site to register: where its APIs are and its certificate file."""

    site: SiteId
    internal_url: str
    external_url: str
    certificate: Path
    has_store: bool = True
    has_runner: bool = True


def register(registry_url: str, credentials: PartyCredentials, site: SiteSpec) -> None:
    """Register the party (if needed) and its site at the registry; idempotent."""
    key = pki.load_party_private_key(credentials.party_dir / "party.key")
    party = PartyRecord(
        credentials.party,
        credentials.party.namespace,
        pki.public_key_pem(key),
        (credentials.party_dir / "user-ca.crt").read_text(),
    )
    record = SiteRecord(
        site.site,
        credentials.party,
        credentials.party,
        SiteEndpoints(site.internal_url, site.external_url),
        site.certificate.read_text(),
        site.has_store,
        site.has_runner,
    )
    with RegistryClient(registry_url, credentials.registry_identity()) as registry:
        registry.register_party(party, key)
        registry.register_site(record, key)
    logger.info("registered", extra={"party": str(credentials.party), "site": str(site.site)})


def upload_assets(
    client: SiteClient,
    assets: Iterable[tuple[Asset, Path | None]],
    progress: Progress | None = None,
) -> None:
    """Describe each asset at the site and upload its image; assets already there are kept."""
    for asset, image in assets:
        client.upload_asset(asset, image, progress=progress)
        logger.info("asset uploaded", extra={"asset": str(asset.id)})


def add_rules(client: SiteClient, rules: Iterable[Rule], party_key: Path) -> int:
    """Sign each rule with the party's main key and add it at the site (idempotent)."""
    key = pki.load_party_private_key(party_key)
    count = 0
    for rule in rules:
        client.add_rule(sign_rule(rule, key))
        count += 1
    return count


def own_rules(rules: Iterable[Rule], party: PartyId) -> list[Rule]:
    """The rules `party` must sign: those whose signer namespace it owns."""
    selected = [rule for rule in rules if rule.signer_namespace() == party.namespace]
    if not selected:
        raise InvalidInput(f"no rules for {party} (namespace {party.namespace}) in the rule set")
    return selected


def set_up_site(
    registry_url: str,
    credentials: PartyCredentials,
    site: SiteSpec,
    assets: Iterable[tuple[Asset, Path | None]],
    rules: Iterable[Rule],
    progress: Progress | None = None,
) -> int:
    """Register the party and site, upload `assets` and add the party's share of `rules`.

    Returns the number of rules added. Safe to run again.
    """
    register(registry_url, credentials, site)
    with SiteClient(site.internal_url, credentials.site_identity()) as client:
        upload_assets(client, assets, progress)
        client.replicate_now()
        return add_rules(
            client, own_rules(rules, credentials.party), credentials.party_dir / "party.key"
        )


@dataclass(frozen=True, slots=True)
class ScenarioExample:
    """A scenario: its bundled example (`mahiru/examples/<name>`) and the assets each site holds.

    Each scenario module exposes these methods as its module functions, so the
    scenario scripts and `mahiru demo` treat every scenario alike.
    """

    name: str
    site_assets: SiteAssets

    def example_path(self, file_name: str) -> Path:
        """A file of the bundled example (rules.yaml, sites.yaml, job.yaml)."""
        return Path(str(resources.files("mahiru") / "examples" / self.name / file_name))

    def rules(self) -> list[Rule]:
        """The scenario's rules (unsigned)."""
        return load_rules(self.example_path("rules.yaml"))

    def job(self) -> Job:
        """The scenario's job, as its submitter sends it."""
        return load_job(self.example_path("job.yaml"))

    def init_site(
        self,
        registry_url: str,
        credentials: PartyCredentials,
        site: SiteSpec,
        assets_dir: Path,
        progress: Progress | None = None,
    ) -> int:
        """Register the party and site, upload the site's assets and add the party's rules.

        Returns the number of rules added. Safe to run again.
        """
        assets = self.site_assets(site.site, assets_dir)
        return set_up_site(registry_url, credentials, site, assets, self.rules(), progress)
