"""Decide once per fact: a waiting step's run decision is taken (and audited) once per set
of rules in force, and answers that only read (explanations, who may access or use) are
never audited.

The site's pieces are real (database, audit log, job repository, policy view, step
execution: the graph `build_site` wires) on a clock the test moves by hand; no
container ever runs: the step under test waits for a step of this site that never
starts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mahiru.api.auth import CertificateAuthenticator
from mahiru.bootstrap import OutgoingOverrides, SiteOverrides, build_site
from mahiru.config import SiteConfig, TlsConfig
from mahiru.errors import Unavailable
from mahiru.model.assets import SiteDescription
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import AssetId, JobId, PartyId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.jobs import StepAssignment, StepState, StepStatus
from mahiru.model.workflow import Job, Plan, StepOutputRef, Workflow, WorkflowStep
from mahiru.pki import create_network_ca
from mahiru.policy.permissions import primary
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import SignedRule, sign_revocation, sign_rule
from mahiru.storage import AuditQuery, Database

pytestmark = pytest.mark.integration

NS = "p.example.org"
PARTY = PartyId(NS, "p")
SITE = SiteId(NS, "site1")
OTHER_SITE = SiteId(NS, "site2")
KEY = Ed25519PrivateKey.generate()
RESULTS = f"asset_collection:{NS}:results"
COMPUTE = AssetId(NS, "compute", SITE)
DATA = AssetId(NS, "data", SITE)
JOB_ID = JobId("0" * 32)
#: Seconds between two polls of the waiting step: the worker looks at least every
#: MAX_BACKOFF seconds; looking less often here only keeps the test short.
POLL_INTERVAL = 30.0
#: One simulated hour of polls.
POLLS = int(3600 / POLL_INTERVAL)


class Clock:
    """Time the test moves by hand: wall and monotonic move together."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def monotonic(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.seconds)

    def sleep(self, seconds: float) -> None:
        self.seconds += seconds


class NoRuntime:
    """Stands for the container engine, which no test here may reach."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the container engine was used ({name})")


def _no_peer(site: object) -> Any:
    raise AssertionError(f"a peer was asked ({site})")


def _grant(data: dict[str, str]) -> SignedRule:
    return sign_rule(rule_from_dict(data), KEY)


#: Everything the job needs at SITE: its data and compute, and every result usable by PARTY.
ALLOW_DATA = _grant({"type": "MayAccess", "site": str(SITE), "asset": str(DATA)})
GRANTS = [
    ALLOW_DATA,
    _grant({"type": "MayAccess", "site": str(SITE), "asset": str(COMPUTE)}),
    _grant({"type": "MayAccess", "site": "*", "asset": RESULTS}),
    _grant({"type": "MayUse", "party": str(PARTY), "asset": RESULTS, "conditions": "tests"}),
    _grant(
        {"type": "ResultOfDataIn", "data": RESULTS, "compute": "*", "output": "*"}
        | {"collection": RESULTS}
    ),
    _grant(
        {"type": "ResultOfDataIn", "data": str(DATA), "compute": "*", "output": "*"}
        | {"collection": RESULTS}
    ),
    _grant(
        {"type": "ResultOfComputeIn", "data": "*", "compute": str(COMPUTE), "output": "*"}
        | {"collection": RESULTS}
    ),
]
#: A rule that changes nothing this job needs.
UNRELATED = _grant({"type": "MayAccess", "site": str(OTHER_SITE), "asset": str(COMPUTE)})


def _job() -> Job:
    """`first` reads the data; `second` reads `first`'s output (so waits while `first` does)."""
    workflow = Workflow(
        ["data"],
        {"result": StepOutputRef("second", "out")},
        [
            WorkflowStep("first", COMPUTE, {"in0": "data"}, {"out": None}),
            WorkflowStep("second", COMPUTE, {"in0": StepOutputRef("first", "out")}, {"out": None}),
        ],
    )
    return Job(PARTY, workflow, {"data": DATA})


class _NoRegistry:
    """A registry out of reach: the replication round before a denial stands changes
    nothing (its failure is logged, never raised)."""

    def changes_since(self, version: int, limit: int | None = None) -> Any:
        raise Unavailable("no registry in this test")


#: Lets no caller in: no request reaches these sites.
NOBODY = CertificateAuthenticator(create_network_ca("Nobody").certificate)


class Site:
    """One site's rules, policy view, audit log and step worker, on `clock`: the site's own
    object graph (`build_site`), with the engine, the peers and the registry replaced."""

    def __init__(self, db: Database, tmp_path: Path, clock: Clock) -> None:
        self.clock = clock
        config = SiteConfig(
            site_id=str(SITE),
            owner=str(PARTY),
            tls=TlsConfig(network_ca=tmp_path / "unused-ca.crt"),
            user_ca=tmp_path / "unused-user-ca.crt",
            registry_url="https://registry.invalid",
            database_url=db.url,
            data_dir=tmp_path,
            max_image_bytes=1 << 20,
        )
        graph = build_site(
            config,
            overrides=SiteOverrides(
                database=db,
                authenticator=NOBODY,
                outgoing=OutgoingOverrides(registry_feed=_NoRegistry(), job_peer_factory=_no_peer),
                container_runtime=NoRuntime(),  # type: ignore[arg-type]
                clock=clock,
            ),
        )
        self.repositories = graph.storage.repositories
        self.policy = graph.services.policy
        for grant in GRANTS:
            self.add(grant)
        self.worker = graph.jobs.loops.worker
        job = _job()
        plan = Plan({"first": SITE, "second": SITE})
        ledger = graph.jobs.ports.ledger
        ledger.job_records.upsert_step_assignment(
            StepAssignment(JOB_ID, SITE, SITE, job, plan), ledger.now()
        )

    def add(self, signed: SignedRule) -> None:
        """Add a rule as the rule service does: store it, then tell the view."""
        self.repositories.rules.add(signed)
        self.policy.invalidate()

    def revoke(self, signed: SignedRule) -> None:
        """Revoke a rule as the rule service does: store the revocation, then tell the view."""
        self.repositories.rules.revoke(sign_revocation(signed.rule, KEY))
        self.policy.invalidate()

    def status(self) -> StepStatus:
        return self.repositories.jobs.step_status(JOB_ID, "second")

    def poll(self, times: int) -> None:
        """Look at the waiting step `times` times, `POLL_INTERVAL` apart, as the worker does."""
        for _ in range(times):
            assert not self.worker.execution.advance(self.status()), "the step stopped waiting"
            self.clock.seconds += POLL_INTERVAL

    def run_decisions(self) -> list[str]:
        """The outcomes of the run decisions recorded about the waiting step, oldest first."""
        records = self.repositories.audit.page(
            AuditQuery(job=JOB_ID, kind=AuditKind.DECISION), 10 * POLLS
        ).records
        return [
            r.entry.outcome
            for r in reversed(records)
            if r.entry.action == "run step" and r.entry.step == "second"
        ]


@pytest.fixture
def site(db: Database, tmp_path: Path) -> Site:
    return Site(db, tmp_path, Clock())


def test_a_step_waiting_an_hour_writes_one_run_decision(site: Site) -> None:
    """An hour of polls of a step whose input is not made yet: one decision, one record."""
    site.poll(POLLS)
    assert site.status().state is StepState.WAITING
    assert site.run_decisions() == ["allowed"]
    assert site.repositories.audit.verify().intact


def test_a_rule_added_or_revoked_brings_exactly_one_new_decision(site: Site) -> None:
    """Each change of the rules in force is decided on once by the waiting step, whatever
    the change: an unrelated rule added, then revoked."""
    site.poll(10)
    site.add(UNRELATED)
    site.poll(10)
    assert site.run_decisions() == ["allowed", "allowed"]
    site.revoke(UNRELATED)
    site.poll(10)
    assert site.run_decisions() == ["allowed", "allowed", "allowed"]


def test_a_rebuild_that_finds_the_same_rules_brings_no_new_decision(site: Site) -> None:
    """A replication round that stored nothing new about the rules (the view told of a
    change that was none, or a rule added twice) is not a change of the facts."""
    site.poll(5)
    site.policy.invalidate()
    site.poll(5)
    site.add(GRANTS[0])
    site.poll(5)
    assert site.run_decisions() == ["allowed"]


def test_a_revocation_that_denies_fails_the_waiting_step(site: Site) -> None:
    """The decision is taken again after the revocation, denies, and the step fails at
    once, saying why, as before (nothing remembered lets it run)."""
    site.poll(10)
    site.revoke(ALLOW_DATA)
    assert site.worker.execution.advance(site.status())
    status = site.status()
    assert status.state is StepState.FAILED
    assert status.reason is not None
    assert "this site's policy does not permit the step here" in status.reason
    assert site.run_decisions() == ["allowed", "denied"]


def test_a_restart_decides_the_waiting_step_once_more(
    db: Database, tmp_path: Path, site: Site
) -> None:
    """The memory is the running site's: a new site instance decides once again, and once."""
    site.poll(10)
    restarted = Site(db, tmp_path / "again", site.clock)
    restarted.poll(10)
    assert restarted.run_decisions() == ["allowed", "allowed"]


def test_reading_the_policy_writes_no_audit_record(site: Site) -> None:
    """Explanations, who may access or use, counts and plans are answers, not acts."""
    audit = site.repositories.audit
    before = audit.page(AuditQuery(), 1000).records
    job = _job()
    reader = site.policy.reader()
    permissions = reader.job_permissions(job)
    item = WorkflowItem.parse("second.out", job.workflow)
    assert reader.may_use(PARTY, permissions[item], str(item)).allowed
    assert reader.may_access(SITE, permissions[item], str(item)).allowed
    assert reader.may_access(SITE, primary(DATA), str(DATA)).allowed
    assert not reader.may_access(OTHER_SITE, primary(DATA), str(DATA)).allowed
    assert site.policy.explain(job, item, party=PARTY).allowed
    data = WorkflowItem.parse("first.in0", job.workflow)
    assert not site.policy.explain(job, data, site=SiteId(NS, "elsewhere")).allowed
    assert site.policy.rule_count() == reader.rule_count() == len(GRANTS)
    sites = [SiteDescription(SITE, PARTY, runner=True, store=True)]
    assert site.policy.plan(job, lambda: sites).assignments == {"first": SITE, "second": SITE}
    assert audit.page(AuditQuery(), 1000).records == before
