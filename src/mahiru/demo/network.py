"""A local Mahiru network in a workspace folder: PKI, configs, and service processes.

Each service runs as its own `mahiru serve` process with TLS on a loopback
port, exactly as an operator would run it; logs go to files in the workspace.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import yaml

from mahiru import pki
from mahiru.client.http import TlsIdentity
from mahiru.client.profiles import Profile
from mahiru.client.registry import RegistryClient
from mahiru.client.site import SiteClient
from mahiru.errors import Unavailable
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.scenarios.setup import PartyCredentials, SiteSpec

START_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """One `mahiru serve` process."""

    name: str
    config: Path
    log: Path
    port: int
    process: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = None
    #: More arguments of `mahiru serve` (such as `--workers 2`).
    arguments: tuple[str, ...] = ()

    def start(self) -> None:
        """Start the process, logging to `log`."""
        self._log_file = self.log.open("ab")
        kind = "registry" if self.name == "registry" else "site"
        self.process = subprocess.Popen(
            [
                *(sys.executable, "-m", "mahiru", "serve", kind, "--config", str(self.config)),
                *self.arguments,
            ],
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

    def wait_listening(self, deadline: float) -> None:
        """Wait until the port accepts connections; Unavailable if it dies or times out."""
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = self.log.read_text(errors="replace").splitlines()[-10:]
                raise Unavailable(
                    f"{self.name} exited with code {self.process.returncode}; log tail:\n"
                    + "\n".join(tail)
                )
            with socket.socket() as sock:
                sock.settimeout(0.5)
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise Unavailable(
            f"{self.name} did not start listening on port {self.port}; see {self.log}"
        )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


@dataclass
class DemoSite:
    """A site of the demo network and its party's administrator credentials."""

    spec: SiteSpec
    credentials: PartyCredentials
    service: Service


@dataclass
class LocalNetwork:
    """A registry and sites on loopback, with their files under `root`."""

    root: Path
    registry: Service
    registry_url: str
    network_ca: Path
    sites: dict[SiteId, DemoSite] = field(default_factory=dict)

    @classmethod
    def create(cls, root: Path, sites: list[tuple[PartyId, SiteId]]) -> LocalNetwork:
        """Write the PKI and configuration files of a network; start nothing yet."""
        pki_dir = root / "pki"
        pki_dir.mkdir(parents=True, exist_ok=True)
        ca = pki.create_network_ca()
        network_ca = pki_dir / "ca.crt"
        pki.save_certified_key(network_ca, pki_dir / "ca.key", ca)
        port = free_port()
        registry_dir = root / "registry"
        registry_dir.mkdir()
        pki.save_certified_key(
            registry_dir / "registry.crt",
            registry_dir / "registry.key",
            pki.issue_registry_certificate(ca),
        )
        config = {
            "listen": {"host": "127.0.0.1", "port": port},
            "tls": {
                "cert": "registry.crt",
                "key": "registry.key",
                "network_ca": str(network_ca),
            },
            "database_url": f"sqlite:///{registry_dir / 'registry.db'}",
        }
        (registry_dir / "registry.yaml").write_text(yaml.safe_dump(config))
        registry = Service("registry", registry_dir / "registry.yaml", root / "registry.log", port)
        network = cls(root, registry, f"https://127.0.0.1:{port}", network_ca)
        for party, site in sites:
            network.sites[site] = network._create_site(ca, party, site)
        return network

    def _create_site(self, ca: pki.CertifiedKey, party: PartyId, site: SiteId) -> DemoSite:
        party_dir = self.root / party.name
        party_dir.mkdir()
        credentials = pki.create_party_credentials(str(party))
        pki.save_private_key(party_dir / "party.key", credentials.main_key)
        pki.save_public_key(party_dir / "party.pub", credentials.main_key.public_key())
        pki.save_certified_key(
            party_dir / "user-ca.crt", party_dir / "user-ca.key", credentials.user_ca
        )
        pki.save_certified_key(
            party_dir / "party-client.crt",
            party_dir / "party-client.key",
            pki.issue_party_client_certificate(ca, str(party)),
        )
        admin_certificate = pki.issue_user_certificate(credentials.user_ca, "admin", "admin")
        pki.save_certified_key(party_dir / "admin.crt", party_dir / "admin.key", admin_certificate)
        # The same for a web browser (the dashboard).
        pki.save_pkcs12(party_dir / "admin.p12", admin_certificate, name="admin")
        site_dir = self.root / site.name
        site_dir.mkdir()
        pki.save_certified_key(
            site_dir / "site.crt", site_dir / "site.key", pki.issue_site_certificate(ca, str(site))
        )
        port = free_port()
        base = f"https://127.0.0.1:{port}"
        config = {
            "site_id": str(site),
            "owner": str(party),
            "listen": {"host": "127.0.0.1", "port": port},
            "tls": {"cert": "site.crt", "key": "site.key", "network_ca": str(self.network_ca)},
            "user_ca": str(party_dir / "user-ca.crt"),
            "registry_url": self.registry_url,
            "internal_url": f"{base}/internal",
            "external_url": f"{base}/external",
            "database_url": f"sqlite:///{site_dir / 'site.db'}",
            "data_dir": "data",
            "replication_interval_seconds": 2,
        }
        (site_dir / "site.yaml").write_text(yaml.safe_dump(config))
        service = Service(site.name, site_dir / "site.yaml", self.root / f"{site.name}.log", port)
        spec = SiteSpec(site, f"{base}/internal", f"{base}/external", site_dir / "site.crt")
        admin = PartyCredentials(
            party, party_dir, party_dir / "admin.crt", party_dir / "admin.key", self.network_ca
        )
        return DemoSite(spec, admin, service)

    def services(self) -> list[Service]:
        """Every service, registry first."""
        return [self.registry, *(site.service for site in self.sites.values())]

    def start(self) -> None:
        """Start every service and wait until each answers over mutual TLS."""
        deadline = time.monotonic() + START_TIMEOUT
        for service in self.services():
            service.start()
        for service in self.services():
            service.wait_listening(deadline)
        first = next(iter(self.sites.values()))
        identity = first.credentials.registry_identity()
        with RegistryClient(self.registry_url, identity) as registry:
            registry.version()

    def site_client(self, site: SiteId) -> SiteClient:
        """The internal API of `site`, as its party's admin."""
        demo_site = self.sites[site]
        return SiteClient(demo_site.spec.internal_url, demo_site.credentials.site_identity())

    def identity(self, site: SiteId) -> TlsIdentity:
        """The admin identity of `site`'s party."""
        return self.sites[site].credentials.site_identity()

    def stop(self) -> None:
        """Stop every service, sites first."""
        for service in reversed(self.services()):
            service.stop()

    def profile(self, site: SiteId, name: str) -> Profile:
        """A CLI profile for `site`'s party admin: the site, the registry, every key."""
        demo_site = self.sites[site]
        credentials = demo_site.credentials
        client = credentials.registry_identity()
        return Profile(
            name,
            site=demo_site.spec.internal_url,
            registry=self.registry_url,
            cert=str(credentials.admin_cert),
            key=str(credentials.admin_key),
            client_cert=str(client.cert),
            client_key=str(client.key),
            ca=str(self.network_ca),
            signing_key=str(credentials.party_dir / "party.key"),
            party_dir=str(credentials.party_dir),
        )

    def environment(self, site: SiteId) -> dict[str, str]:
        """Environment variables that point the `mahiru` CLI at `site` as its admin."""
        demo_site = self.sites[site]
        return {
            "MAHIRU_SITE_URL": demo_site.spec.internal_url,
            "MAHIRU_CERT": str(demo_site.credentials.admin_cert),
            "MAHIRU_KEY": str(demo_site.credentials.admin_key),
            "MAHIRU_CA": str(self.network_ca),
            "MAHIRU_REGISTRY_URL": self.registry_url,
        }


def pids(network: LocalNetwork) -> dict[str, int]:
    """The process id of each running service."""
    return {
        service.name: service.process.pid
        for service in network.services()
        if service.process is not None and service.process.poll() is None
    }
