"""A network of real sites in one process, for fast tests of the job path (holds no tests).

`FakeNetwork` is a network CA, a registry replica feed, and two or three
sites, each wired from real services - SQLite in the test's folder, a blob
store with the ingress check, the policy engine, the egress gate, the job
services - with a `FakeRuntime` for its container engine, `InProcessPeer`s
for its peers and one `FakeClock` for all. All wiring is in `wire_site`,
built as the site app builds a site; no test builds job services itself.

Nothing runs in the background unless a test starts a site's loops
(`FakeSite.start(loops=True)`): `FakeNetwork.drive` runs the coordinators'
rounds and advances every unfinished step in the test's thread until
nothing changes, so each test decides exactly what happens when.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from mahiru import pki
from mahiru.api.auth import CertificateAuthenticator
from mahiru.bootstrap import OutgoingOverrides, SiteOverrides, build_site
from mahiru.config import ContainerLimits, SiteConfig, TlsConfig
from mahiru.errors import NotFound, Unavailable
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.audit import AuditEntry, AuditKind
from mahiru.model.identifiers import AssetId, JobId, PartyId, SiteId
from mahiru.model.jobs import JobStatus, StepStatus
from mahiru.model.people import Person
from mahiru.model.registry import (
    ChangeAction,
    ChangeBatch,
    PartyRecord,
    RegistryChange,
    SiteEndpoints,
    SiteRecord,
)
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_rule
from mahiru.runtime.limits import MIB
from mahiru.services.jobs import JobServices
from mahiru.services.jobs.images import LoadedImages
from mahiru.services.site import SiteServices
from mahiru.services.site.reviews import ReviewQueue
from mahiru.storage import (
    AssetRepository,
    BlobStore,
    Database,
    JobRepository,
    SiteRepositories,
    create_database,
)
from mahiru.storage.audit import AuditQuery
from tests.support.db import migrated_sqlite
from tests.support.fake_runtime import FakeRuntime, Programs
from tests.support.inprocess_peers import Caller, InProcessPeer

#: The step limits of every fake site: small, so an output limit is easy to pass.
LIMITS = ContainerLimits(cpus=1.0, memory_mb=64, timeout_seconds=60, max_output_mb=1)
#: How long a fake site's steps wait for an unavailable peer or engine (fake seconds).
PEER_RETRY_DEADLINE = 600.0


class FakeClock:
    """A clock that moves only when told to (`advance`, or `sleep`)."""

    def __init__(self, start: datetime, monotonic: float = 1000.0) -> None:
        self._now = start
        self._monotonic = monotonic
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The fake wall time."""
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """The fake monotonic time."""
        with self._lock:
            return self._monotonic

    def sleep(self, seconds: float) -> None:
        """Advance at once instead of waiting."""
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move both clocks on by `seconds`."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._monotonic += seconds


class RegistryFeed:
    """The registry's change log of the network's parties and sites (a `RegistryFeed`)."""

    def __init__(self) -> None:
        self.changes: list[RegistryChange] = []

    def add(
        self, subject: PartyId | SiteId, record: PartyRecord | SiteRecord, at: datetime
    ) -> None:
        """Log the registration of `record`."""
        version = len(self.changes) + 1
        self.changes.append(RegistryChange(version, ChangeAction.ADDED, subject, record, at))

    def changes_since(self, version: int, limit: int | None = None) -> ChangeBatch[RegistryChange]:
        """The changes after `version`, at most `limit` of them."""
        after = [c for c in self.changes if c.version > version][:limit]
        return ChangeBatch(after, after[-1].version if after else len(self.changes))


@dataclass(frozen=True)
class FakeParty:
    """A party: its id, namespace and main key (which signs its rules)."""

    name: str
    id: PartyId
    credentials: pki.PartyCredentials

    @property
    def namespace(self) -> str:
        """The party's namespace."""
        return self.id.namespace

    def record(self) -> PartyRecord:
        """The party as registered."""
        return PartyRecord(
            self.id,
            self.namespace,
            pki.public_key_pem(self.credentials.main_key),
            pki.certificate_pem(self.credentials.user_ca.certificate),
        )

    def user(self, name: str = "user", *, admin: bool = False, reviewer: bool = False) -> Person:
        """A user of the party, as the internal API's certificate check makes them."""
        return Person(name, self.id, admin, reviewer)


@dataclass
class Wired:
    """One running instance of a site: its database, stores, services and job services."""

    database: Database
    repositories: SiteRepositories
    blobs: BlobStore
    services: SiteServices
    jobs: JobServices


def wire_site(site: FakeSite, network: FakeNetwork) -> Wired:
    """The one place a fake site is wired: by the composition root, as a real one is,
    with the fake runtime, the in-process peers, the fake registry feed and clock."""
    path = site.root / "site.db"
    # A copy of a migrated template (every test makes three sites); opening it migrates
    # nothing, as the app would on a database at the head revision.
    database = create_database(migrated_sqlite(path))
    built = build_site(
        _config(site, path),
        overrides=SiteOverrides(
            database=database,
            blobs=BlobStore(site.root / "blobs"),  # given the ingress check by the root
            authenticator=CertificateAuthenticator(
                network.ca.certificate, user_ca=site.party.credentials.user_ca.certificate
            ),
            outgoing=OutgoingOverrides(
                registry_feed=network.registry,
                rule_feed_factory=partial(network.peer, site),
                job_peer_factory=partial(network.peer, site),
            ),
            container_runtime=site.runtime,
            clock=network.clock,
        ),
    )
    storage = built.storage
    return Wired(database, storage.repositories, storage.blobs, built.services, built.jobs)


def _config(site: FakeSite, database: Path) -> SiteConfig:
    """The configuration of a fake site: its TLS key signs its result receipts."""
    key, cert = site.root / "tls.key", site.root / "tls.crt"
    if not key.exists():
        key.write_bytes(pki.private_key_pem(site.certified.private_key))
        cert.write_text(pki.certificate_pem(site.certified.certificate))
    return SiteConfig(
        site_id=str(site.id),
        owner=str(site.party.id),
        tls=TlsConfig(cert=cert, key=key, network_ca=site.root / "unused-network-ca.pem"),
        user_ca=site.root / "unused-user-ca.pem",
        registry_url="https://registry.test",
        database_url=f"sqlite:///{database}",
        data_dir=site.root,
        replication_interval_seconds=3600.0,
        peer_retry_deadline_seconds=PEER_RETRY_DEADLINE,
        max_image_bytes=64 * MIB,
        containers=LIMITS,
    )


class FakeSite:
    """A site of `party` (`site:<namespace>:site`), started and stopped on the same folder."""

    def __init__(
        self, network: FakeNetwork, party: FakeParty, root: Path, certified: pki.CertifiedKey
    ) -> None:
        self.network = network
        self.party = party
        self.id = SiteId.parse(f"site:{party.namespace}:site")
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.certified = certified
        self.runtime = FakeRuntime(network.programs)
        #: While True, peers cannot reach this site (its services still run).
        self.down = False
        self._wired: Wired | None = None
        self._threads: list[threading.Thread] = []

    def record(self) -> SiteRecord:
        """The site as registered."""
        return SiteRecord(
            self.id,
            self.party.id,
            self.party.id,
            SiteEndpoints(
                f"https://{self.party.name}.test/internal",
                f"https://{self.party.name}.test/external",
            ),
            pki.certificate_pem(self.certified.certificate),
            has_store=True,
            has_runner=True,
        )

    def caller(self) -> Caller:
        """How this site presents itself to its peers."""
        return Caller(str(self.id), self.certified.certificate)

    # -- lifecycle --------------------------------------------------------------------

    def start(self, *, loops: bool = False) -> None:
        """Wire a new instance on the site's folder; with `loops`, start its job services
        (clean-up of an earlier run, then the background loops) as the app does."""
        assert self._wired is None, "the site is running"
        self._wired = wire_site(self, self.network)
        if loops:
            self._wired.jobs.start()

    def stop(self) -> None:
        """Stop the job services (running steps are stopped, to be redone) and close."""
        wired, self._wired = self._wired, None
        if wired is not None:
            wired.jobs.stop()
            for thread in self._threads:
                thread.join(10.0)
                assert not thread.is_alive(), "a step did not stop with its site"
            self._threads.clear()
            wired.database.close()

    @property
    def running(self) -> bool:
        """Whether the site is started."""
        return self._wired is not None

    def external(self) -> tuple[SiteServices, JobServices]:
        """The services peers call; Unavailable while the site is down or stopped."""
        wired = self._wired
        if self.down or wired is None:
            raise Unavailable(f"{self.id} cannot be reached")
        return wired.services, wired.jobs

    @property
    def services(self) -> SiteServices:
        """The running instance's site services."""
        assert self._wired is not None, "the site is not running"
        return self._wired.services

    @property
    def jobs(self) -> JobServices:
        """The running instance's job services."""
        assert self._wired is not None, "the site is not running"
        return self._wired.jobs

    # What tests look into, named here once (not reached for through the job services).

    @property
    def job_store(self) -> JobRepository:
        """The running instance's job and step records."""
        assert self._wired is not None, "the site is not running"
        return self._wired.repositories.jobs

    @property
    def records(self) -> AssetRepository:
        """The running instance's asset and result records."""
        assert self._wired is not None, "the site is not running"
        return self._wired.repositories.assets

    @property
    def images(self) -> LoadedImages:
        """The running instance's record of the images its engine has loaded."""
        assert self._wired is not None, "the site is not running"
        return self._wired.jobs.ports.images

    @property
    def blobs(self) -> BlobStore:
        """The running instance's blob store (with the ingress check)."""
        assert self._wired is not None, "the site is not running"
        return self._wired.blobs

    def reviewers(self) -> ReviewQueue:
        """The site's review queue (who may decide is the site's policy's answer)."""
        return self.services.oversight.reviews

    # -- content ----------------------------------------------------------------------

    def asset_id(self, name: str) -> str:
        """The id of asset `name` stored here."""
        namespace = self.party.namespace
        return f"asset:{namespace}:{name}:{namespace}:site"

    def add_asset(self, name: str, kind: AssetKind, archive: bytes, **metadata: Any) -> str:
        """Store an asset with its image (through the ingress check); its id."""
        identifier = AssetId.parse(self.asset_id(name))
        self.services.assets.add(Asset(identifier, kind, dict(metadata)))
        self.services.assets.attach_image(identifier, self.blobs.write_bytes(archive))
        return str(identifier)

    def add_rule(self, rule: dict[str, str]) -> None:
        """Publish a rule signed by the site's party."""
        signed = sign_rule(rule_from_dict(rule), self.party.credentials.main_key)
        self.services.rules.add(signed, user=self.party.user("admin", admin=True))

    # -- driving --------------------------------------------------------------------------

    def follow(self) -> None:
        """One round of the coordinator: hand over, mirror step states, collect, finish."""
        self.jobs.loops.coordinator.loop.run_round()

    def run_steps(self) -> None:
        """Advance each unfinished step of this site once, in this thread."""
        for status in self.job_store.unfinished_steps(self.id):
            self.jobs.loops.worker.execution.advance(status)

    def run_steps_aside(self) -> threading.Thread:
        """`run_steps` in another thread (for a step that blocks); `stop` waits for it, as
        the worker's pool is waited for, before the database closes."""
        thread = threading.Thread(target=self.run_steps, name=f"steps of {self.id}")
        self._threads.append(thread)
        thread.start()
        return thread

    def audited(self, kind: AuditKind, job_id: JobId | None) -> list[AuditEntry]:
        """This site's audit records of `kind` (about a job, or any), oldest first."""
        page = self.services.oversight.audit.page(AuditQuery(job=job_id, kind=kind), limit=1000)
        return [record.entry for record in reversed(page.records)]

    def job(self, job_id: JobId) -> JobStatus:
        """A job submitted here."""
        return self.job_store.get_job(job_id)

    def steps(self, job_id: JobId) -> dict[str, StepStatus]:
        """The steps of a job as this site knows them, by name."""
        return {s.step: s for s in self.job_store.steps_of(job_id)}


class FakeNetwork:
    """A CA, a registry feed, and one site per party name, sharing a clock and programs."""

    def __init__(self, root: Path, names: tuple[str, ...] = ("party1", "party2", "party3")) -> None:
        self.clock = FakeClock(datetime.now(UTC).replace(microsecond=0))
        self.programs = Programs()
        self.ca = pki.create_network_ca()
        self.registry = RegistryFeed()
        self.root = root
        self.sites: dict[str, FakeSite] = {}
        for name in names:
            party_id = PartyId.parse(f"party:{name}.org:{name}")
            party = FakeParty(name, party_id, pki.create_party_credentials(str(party_id)))
            site = FakeSite(
                self,
                party,
                root / name,
                pki.issue_site_certificate(self.ca, f"site:{name}.org:site"),
            )
            self.sites[name] = site
            self.registry.add(party.id, party.record(), self.clock.now())
            self.registry.add(site.id, site.record(), self.clock.now())

    def copy(self, root: Path) -> FakeNetwork:
        """A network of the same parties and sites, with everything they stored copied to
        `root` (the sites must be stopped): set up once, used by many tests."""
        assert not any(site.running for site in self.sites.values()), "stop the sites first"
        shutil.copytree(self.root, root)
        net = FakeNetwork.__new__(FakeNetwork)
        net.clock = FakeClock(self.clock.now(), self.clock.monotonic())
        net.programs = self.programs.copy()
        net.ca = self.ca
        net.registry = self.registry
        net.root = root
        net.sites = {
            name: FakeSite(net, site.party, root / name, site.certified)
            for name, site in self.sites.items()
        }
        return net

    def site(self, site_id: SiteId) -> FakeSite:
        """The site with id `site_id`."""
        return next(s for s in self.sites.values() if s.id == site_id)

    def peer(self, caller: FakeSite, record: SiteRecord) -> InProcessPeer:
        """The external API of the site `record` registers, as `caller` calls it."""
        return InProcessPeer(self.site(record.id), caller.caller())

    def start(self, *, replicate: bool = True) -> None:
        """Start every site (no loops), and replicate."""
        for site in self.sites.values():
            site.start()
        if replicate:
            self.replicate()

    def stop(self) -> None:
        """Stop every running site."""
        for site in self.sites.values():
            site.stop()

    def replicate(self) -> None:
        """Replicate the registry and every peer's rules at each running site (twice: new
        peers are seen the first time)."""
        for _ in range(2):
            for site in self.sites.values():
                if site.running:
                    site.services.replication.replicator.run_once()

    def _snapshot(self) -> list[Any]:
        """Every job's state and every step's state, at every running site."""
        running = [site for site in self.sites.values() if site.running]
        jobs = [j for site in running for j in site.job_store.list_jobs()]
        shot: list[Any] = [(j.job_id, j.state) for j in jobs]
        for site in running:
            for job in jobs:
                with contextlib.suppress(NotFound):
                    shot.append([(s.step, s.state) for s in site.job_store.steps_of(job.job_id)])
        return shot

    def drive(self, rounds: int = 20) -> None:
        """Follow jobs and advance steps at every running, reachable site until nothing
        changes (at most `rounds` times)."""
        before = self._snapshot()
        for _ in range(rounds):
            for site in self.sites.values():
                if site.running and not site.down:
                    site.follow()
                    site.run_steps()
            after = self._snapshot()
            if after == before:
                return
            before = after
