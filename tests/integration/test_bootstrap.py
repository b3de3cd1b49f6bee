"""The composition root: `build_site` wires the graph from what it is given, attaches
both gates whatever it is given, closes only what it opened, and the job services
answer the dashboard's questions (read models) without reaching into their parts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from tests.support.manual_clock import ManualClock
from tests.support.metrics import value

from mahiru.api.auth import CertificateAuthenticator
from mahiru.bootstrap import OutgoingOverrides, Site, SiteOverrides, build_site
from mahiru.config import SiteConfig, TlsConfig
from mahiru.errors import PermissionDenied, Unavailable
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import AssetId, JobId, PartyId, ResultId, SiteId
from mahiru.model.people import Person
from mahiru.model.reviews import ReviewState
from mahiru.model.workflow import Job, Plan, StepOutputRef, Workflow, WorkflowStep
from mahiru.pki import create_network_ca
from mahiru.runtime.protocol import ContainerInfo
from mahiru.runtime.steps import LABEL_INSTANCE, LABEL_SITE
from mahiru.storage import AuditQuery, BlobStore, Database

pytestmark = pytest.mark.integration

NS = "p.example.org"
PARTY = PartyId(NS, "p")
SITE = SiteId(NS, "site1")
NOBODY = CertificateAuthenticator(create_network_ca("Nobody").certificate)


class _NoRegistry:
    def changes_since(self, version: int, limit: int | None = None) -> Any:
        raise Unavailable("no registry in this test")


class _Engine:
    """Lists the step containers it was given, filtered by label as the engine does."""

    def __init__(self, containers: list[ContainerInfo]) -> None:
        self.containers = containers

    def list_step_containers(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        wanted = dict(labels or {})
        return [c for c in self.containers if all(c.labels.get(k) == v for k, v in wanted.items())]


def _site(db: Database, tmp_path: Path, **overrides: Any) -> Site:
    config = SiteConfig(
        site_id=str(SITE),
        owner=str(PARTY),
        tls=TlsConfig(network_ca=tmp_path / "unused-ca.crt"),
        user_ca=tmp_path / "unused-user-ca.crt",
        registry_url="https://registry.invalid",
        database_url=db.url,
        data_dir=tmp_path / "data",
    )
    return build_site(
        config,
        overrides=SiteOverrides(
            database=db,
            authenticator=NOBODY,
            outgoing=OutgoingOverrides(registry_feed=_NoRegistry()),
            **overrides,
        ),
    )


def test_given_parts_are_used_and_a_given_store_still_gets_the_ingress_check(
    db: Database, tmp_path: Path
) -> None:
    """The database and engine given are the graph's; the blob store given is wrapped in
    the ingress check (same blobs, a checking copy), never used bare (what the check
    refuses: tests/integration/test_site_api.py)."""
    given = BlobStore(tmp_path / "blobs")
    engine = _Engine([])
    site = _site(db, tmp_path, blobs=given, container_runtime=engine)
    assert site.storage.database is db
    assert site.jobs.ports.environment.engine is engine
    assert site.jobs.ports.environment.runner is engine  # the docker runner is the engine
    assert site.storage.blobs is not given
    assert site.storage.blobs.root == given.root


def test_closing_the_site_leaves_a_given_database_open(db: Database, tmp_path: Path) -> None:
    """`Site.close` closes what the root opened, not the parts passed in."""
    site = _site(db, tmp_path, container_runtime=_Engine([]))
    site.close()
    assert db.current_revision()  # still usable


def test_the_running_step_count_counts_this_site_installation_only(
    db: Database, tmp_path: Path
) -> None:
    """Containers of another site, or of another installation of this site id on the same
    engine, are not this site's."""
    site = _site(db, tmp_path, container_runtime=_Engine([]))
    instance = site.jobs.ports.environment.instance

    def container(name: str, site_id: SiteId, of: str) -> ContainerInfo:
        return ContainerInfo(name, name, "running", {LABEL_SITE: str(site_id), LABEL_INSTANCE: of})

    engine = _Engine(
        [
            container("mine", SITE, instance),
            container("also-mine", SITE, instance),
            container("other-site", SiteId(NS, "site2"), instance),
            container("other-installation", SITE, "0" * 16),
        ]
    )
    site = _site(db, tmp_path, container_runtime=engine)
    assert site.jobs.running_step_count() == 2


def test_recent_jobs_are_the_ledgers(db: Database, tmp_path: Path) -> None:
    """The dashboard's job list reads the party's jobs submitted here, a page and a count."""
    site = _site(db, tmp_path, container_runtime=_Engine([]))
    data = AssetId(NS, "data", SITE)
    workflow = Workflow(
        ["x"],
        {"y": StepOutputRef("s", "out")},
        [WorkflowStep("s", data, {"in": "x"}, {"out": None})],
    )
    ledger = site.jobs.ports.ledger
    for job_id in ("a" * 32, "b" * 32):
        ledger.job_records.create_job(
            job_id, Job(PARTY, workflow, {"x": data}), Plan({"s": SITE}), SITE, ledger.now()
        )
    listed, total = site.jobs.recent_jobs(Person("admin", PARTY, admin=True), limit=1)
    assert total == 2 and len(listed) == 1
    everything, _ = site.jobs.recent_jobs(Person("admin", PARTY, admin=True))
    assert {status.job_id for status in everything} == {"a" * 32, "b" * 32}
    assert site.jobs.recent_jobs(Person("admin", PartyId(NS, "other"), admin=True)) == ([], 0)


def test_a_built_site_queues_reviews_counts_them_and_asks_its_policy_who_decides(
    db: Database, tmp_path: Path
) -> None:
    """The review queue is the site's (`services.oversight.reviews`), on its database and
    clock; its metrics count pending reviews and how long decided ones took; who may decide
    is the site's policy's answer, so under a rule not in force nobody may (audited)."""
    clock = ManualClock()
    site = _site(db, tmp_path, container_runtime=_Engine([]), clock=clock)
    queue = site.services.oversight.reviews
    receiver = PartyId(NS, "receiver")
    asked = [
        queue.request(
            ResultId(digit * 64), receiver, "rule-1", str(PARTY), JobId("j"), "c" * 64, ()
        )
        for digit in "ab"
    ]
    assert asked[0].requested_at == clock.now()
    with pytest.raises(PermissionDenied, match=r"rule-1 is not in force here .* nobody may"):
        queue.approve(asked[0].review_id, Person("admin", PARTY, admin=True), PARTY, "fine")
    denied = site.services.oversight.audit.page(AuditQuery(kind=AuditKind.DECISION)).records
    assert [(r.entry.action, r.entry.outcome) for r in denied] == [("decide review", "denied")]
    clock.sleep(90)
    reviews = site.storage.repositories.results.reviews
    assert reviews.get(asked[0].review_id) == asked[0]
    reviews.decide(
        asked[1].review_id, ReviewState.REJECTED, at=clock.now(), by="a@x", party=PARTY, reason="no"
    )
    metrics = site.edge.metrics.render()[0].decode()
    assert value(metrics, "mahiru_reviews_pending") == 1
    assert value(metrics, "mahiru_review_latency_seconds_count") == 1
    assert value(metrics, "mahiru_review_latency_seconds_bucket", le="60.0") == 0
    assert value(metrics, "mahiru_review_latency_seconds_bucket", le="600.0") == 1
    assert value(metrics, "mahiru_review_latency_seconds_sum") == 90
