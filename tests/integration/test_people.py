"""Every act tied to a person: the audit log names the user behind each upload, rule change,
submission, download and cancel; a job records who submitted it; a plain user sees only their
own jobs (and the records of their own acts and jobs), an admin every job of the party.
On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import insert, update
from tests.support.images import write_image
from tests.support.sites import (
    DATABASE_PARAMS,
    DatabaseUrls,
    Network,
    SiteServer,
    database_urls,
    may_access,
    may_use,
    network,
)

from mahiru.client.http import TlsIdentity
from mahiru.client.jobs import JobsClient
from mahiru.errors import InvalidInput, NotFound, PermissionDenied
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.audit import GENESIS, AuditEntry, AuditKind, record_hash
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.jobs import JobStatus
from mahiru.model.people import Person
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job
from mahiru.policy.signing import sign_revocation
from mahiru.services.jobs import JobServices
from mahiru.storage import AuditLog, JobRepository, create_database
from mahiru.storage.db import migrate
from mahiru.storage.job_rows import job_values
from mahiru.storage.schema import audit_log, change_heads, jobs

pytestmark = pytest.mark.integration

MAHIRU = str(Path(sys.executable).parent / "mahiru")

DATA = "asset:p1.org:data:p1.org:site"
SCRIPT = "asset:p1.org:script:p1.org:site"
RESULTS = "asset_collection:p1.org:results"


@pytest.fixture(params=DATABASE_PARAMS)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseUrls]:
    """Fresh databases on each backend in turn."""
    with database_urls(request, tmp_path_factory) as urls:
        yield urls


@pytest.fixture
def net(tmp_path: Path, databases: DatabaseUrls) -> Iterator[Network]:
    """p1's site alone, serving with no job runner: submitted jobs stay planned."""
    with network(tmp_path, databases, ("p1",)) as running:
        site = running.sites["p1"]
        site.stop()
        site.start(jobs=False)
        running.replicate_all()
        yield running


class People:
    """Two plain users and an admin of p1, each with their `name@party` text form."""

    def __init__(self, net: Network) -> None:
        self.site = net.sites["p1"]
        party = self.site.party
        self.alice = net.certs.user(party, "alice")
        self.bob = net.certs.user(party, "bob")
        self.admin = party.admin

    def name(self, identity: TlsIdentity) -> str:
        user = {self.alice: "alice", self.bob: "bob", self.admin: "admin"}[identity]
        return f"{user}@{self.site.party.id}"

    def jobs(self, identity: TlsIdentity) -> JobsClient:
        return JobsClient(self.site.internal_url, identity, timeout=60)


@pytest.fixture
def people(net: Network, tmp_path: Path) -> People:
    """The users, with rules that let p1 run a one-step job at its site and use the result."""
    found = People(net)
    site = found.site
    with site.admin() as admin:
        admin.upload_asset(Asset(AssetId.parse(DATA), AssetKind.DATA), write_image(tmp_path / "d"))
        for rule in (
            may_access(site.id, DATA),
            may_access(site.id, SCRIPT),
            may_access(site.id, RESULTS),
            may_use(site.party.id, RESULTS),
            may_use(site.party.id, DATA),
            {"type": "ResultOfDataIn", "data": DATA, "compute": "*", "output": "*",
             "collection": RESULTS},
            {"type": "ResultOfComputeIn", "data": "*", "compute": SCRIPT, "output": "*",
             "collection": RESULTS},
        ):  # fmt: skip
            admin.add_rule(site.party.sign(rule))
    return found


def _job(site: SiteServer | str) -> Job:
    return job_from_dict(
        {
            "submitter": site if isinstance(site, str) else site.party.id,
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "compute.output0"},
                "steps": [
                    {"name": "compute", "compute_asset": SCRIPT,
                     "inputs": {"input0": "input"}, "outputs": {"output0": None}}
                ],
            },
            "inputs": {"input": DATA},
        }
    )  # fmt: skip


def _records(site: SiteServer, **filters: Any) -> list[dict[str, Any]]:
    with site.admin() as admin:
        records: list[dict[str, Any]] = admin.audit_records(limit=500, **filters)["records"]
    return records


def _one(records: list[dict[str, Any]], **expected: Any) -> dict[str, Any]:
    found = [r for r in records if all(r.get(k) == v for k, v in expected.items())]
    assert found, f"no record with {expected} in {json.dumps(records, indent=1)[:3000]}"
    return found[0]


def test_each_act_names_the_acting_user_in_the_audit_log(people: People, tmp_path: Path) -> None:
    """Upload, rule added, rejected and revoked, submit, download, cancel: each record names
    the user (name and party) who did it, and the chain still verifies."""
    site, alice, admin = people.site, people.alice, people.admin
    party = site.party
    extra = party.sign(may_access(site.id, "asset:p1.org:other:p1.org:site"))
    foreign = party.sign(may_access(site.id, "asset:p2.org:x:p2.org:site"))
    with site.client(admin) as client:
        client.add_rule(extra)
        with pytest.raises((PermissionDenied, InvalidInput)):
            client.add_rule(foreign)
        client.revoke(sign_revocation(extra.rule, party.main_key))
    with people.jobs(alice) as jobs:
        job_id = jobs.submit(_job(site)).status.job_id
        jobs.cancel(job_id)
    with site.client(alice) as client:
        client.download_image(AssetId.parse(DATA), tmp_path / "got.tar")

    records = _records(site)
    by_admin, by_alice = people.name(admin), people.name(alice)
    _one(records, kind="transfer", action="receive", asset=DATA, user=by_admin)
    rules = [r for r in records if r["kind"] == "rule"]
    _one(rules, outcome="added", user=by_admin, actor=party.namespace)
    _one(rules, outcome="rejected", user=by_admin)
    _one(rules, outcome="revoked", user=by_admin)
    assert all(r["user"] == by_admin for r in rules)
    _one(records, kind="decision", action="plan job", job=job_id, user=by_alice)
    _one(records, kind="job", outcome="planned", job=job_id, user=by_alice)
    _one(records, kind="job", outcome="cancelled", job=job_id, user=by_alice)
    _one(records, kind="step", outcome="cancelled", job=job_id, user=by_alice)
    _one(records, kind="decision", action="release to party", asset=DATA, user=by_alice)
    _one(records, kind="transfer", action="send", asset=DATA, user=by_alice)
    with site.admin() as client:
        assert client.verify_audit()["intact"]


def test_a_job_records_and_shows_who_submitted_it(people: People) -> None:
    """Status (API, client and `mahiru jobs status`), listing and provenance name the
    submitting user."""
    site, alice = people.site, people.alice
    with people.jobs(alice) as jobs:
        view = jobs.submit(_job(site))
        job_id = view.status.job_id
        assert view.status.submitted_by == people.name(alice)
        assert jobs.status(job_id).status.submitted_by == people.name(alice)
        assert [s.submitted_by for s in jobs.list()] == [people.name(alice)]
        document = jobs.provenance(job_id)
    person = f"mahiru:user:{people.name(alice)}"
    assert document["agent"][person]["prov:type"] == "prov:Person"
    delegations = document["actedOnBehalfOf"].values()
    assert {"prov:delegate": person, "prov:responsible": f"mahiru:{site.party.id}"} in delegations
    associations = document["wasAssociatedWith"].values()
    assert {"prov:activity": f"mahiru:job:{job_id}", "prov:agent": person} in associations
    env = {
        **os.environ,
        "MAHIRU_SITE_URL": site.internal_url,
        "MAHIRU_CERT": str(alice.cert),
        "MAHIRU_KEY": str(alice.key),
        "MAHIRU_CA": str(alice.ca),
    }
    shown = subprocess.run(
        [MAHIRU, "jobs", "status", job_id], env=env, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    assert f"by {people.name(alice)}" in shown.stdout


def test_a_plain_user_sees_and_cancels_only_their_own_jobs(people: People, tmp_path: Path) -> None:
    """Alice and Bob see, cancel, trace and fetch only their own jobs (another user's is
    answered like an unknown id); the admin sees and cancels both."""
    site = people.site
    with people.jobs(people.alice) as alice, people.jobs(people.bob) as bob:
        mine = alice.submit(_job(site)).status.job_id
        theirs = bob.submit(_job(site)).status.job_id
        assert [s.job_id for s in alice.list()] == [mine]
        assert [s.job_id for s in bob.list()] == [theirs]
        unknown = "0" * 32
        for attempt in (
            alice.status,
            alice.cancel,
            alice.provenance,
            lambda job_id: alice.download_output_archive(job_id, "result", tmp_path / "out"),
        ):
            with pytest.raises(NotFound) as other_user:
                attempt(theirs)
            with pytest.raises(NotFound) as no_such:
                attempt(unknown)
            assert other_user.value.message == no_such.value.message.replace(unknown, theirs)
        assert bob.status(theirs).status.state.value == "planned"
    with people.jobs(people.admin) as admin:
        assert {s.job_id for s in admin.list()} == {mine, theirs}
        assert admin.status(theirs).status.submitted_by == people.name(people.bob)
        assert admin.cancel(theirs).status.state.value == "cancelled"
    cancelled = _one(_records(site, job=theirs, kind="job"), outcome="cancelled")
    assert cancelled["user"] == people.name(people.admin)


def test_the_dashboard_lists_a_plain_user_s_own_jobs_and_shows_who_did_what(
    people: People,
) -> None:
    """The jobs page lists a plain user's jobs only, another user's job page is 404; the
    admin's jobs page lists both with who submitted each, and the audit page shows users."""
    site = people.site
    with people.jobs(people.alice) as alice, people.jobs(people.bob) as bob:
        mine = alice.submit(_job(site)).status.job_id
        theirs = bob.submit(_job(site)).status.job_id
    ui = site.internal_url + "/ui"
    with httpx.Client(verify=people.alice.ssl_context(), timeout=30) as browser:
        page = browser.get(f"{ui}/jobs").text
        assert mine[:12] in page and theirs[:12] not in page
        assert browser.get(f"{ui}/jobs/{theirs}").status_code == 404
        assert people.name(people.alice) in browser.get(f"{ui}/jobs/{mine}").text
        audit = browser.get(f"{ui}/audit").text
        assert mine[:12] in audit and theirs[:12] not in audit
    with httpx.Client(verify=people.admin.ssl_context(), timeout=30) as browser:
        page = browser.get(f"{ui}/jobs").text
        assert mine[:12] in page and theirs[:12] in page
        assert people.name(people.alice) in page and people.name(people.bob) in page
        audit = browser.get(f"{ui}/audit").text
        assert f'<td class="user">{people.name(people.bob)}</td>' in audit


def test_the_recent_jobs_read_model_pages_the_jobs_a_person_sees_newest_first(
    people: People,
) -> None:
    """JobServices.recent_jobs, which the dashboard lists: a plain user's own jobs, newest
    first, one page at a time with the total; an admin's, every job of the party."""
    site = people.site
    with people.jobs(people.alice) as alice, people.jobs(people.bob) as bob:
        first = alice.submit(_job(site)).status.job_id
        theirs = bob.submit(_job(site)).status.job_id
        second = alice.submit(_job(site)).status.job_id
    assert site.app is not None
    jobs: JobServices = site.app.state.jobs
    party = PartyId.parse(site.party.id)
    alice_person, admin = Person("alice", party), Person("admin", party, admin=True)
    listed, total = jobs.recent_jobs(alice_person)
    assert ([s.job_id for s in listed], total) == ([second, first], 2)
    listed, total = jobs.recent_jobs(alice_person, offset=1, limit=1)
    assert ([s.job_id for s in listed], total) == ([first], 2)
    listed, total = jobs.recent_jobs(admin)
    assert ([s.job_id for s in listed], total) == ([second, theirs, first], 3)


def test_a_plain_user_reads_the_records_of_their_own_acts_and_jobs_only(people: People) -> None:
    """Alice lists her records and her job's, not Bob's nor the admin's uploads and rules, and
    any other record is, to her, not there; the admin reads them all."""
    site = people.site
    with people.jobs(people.alice) as alice, people.jobs(people.bob) as bob:
        mine = alice.submit(_job(site)).status.job_id
        theirs = bob.submit(_job(site)).status.job_id
    everything = _records(site)
    with site.client(people.alice) as alice_site:
        own = alice_site.audit_records(limit=500)["records"]
        assert own and all(r["user"] == people.name(people.alice) or r["job"] == mine for r in own)
        _one(own, kind="job", job=mine, outcome="planned")
        _one(own, kind="step", job=mine)  # moved by the site, about her job
        hidden = [r for r in everything if r not in own]
        assert _one(hidden, job=theirs) and _one(hidden, kind="rule")
        for record in (_one(hidden, job=theirs), _one(hidden, kind="rule")):
            with pytest.raises(NotFound, match=f"audit record {record['seq']} is not known"):
                alice_site.audit_record(record["seq"])
        assert alice_site.audit_record(own[0]["seq"]) == own[0]
    with site.admin() as admin:
        assert admin.audit_record(_one(everything, job=theirs)["seq"])["job"] == theirs


def _hash_before_people(seq: int, at: datetime, entry: AuditEntry, prev: str) -> str:
    """A record's hash as written before records named a user (no `user` key at all)."""
    document = {"seq": seq, "at": at.isoformat(), "prev": prev, **entry.to_dict()}
    del document["user"]
    return hashlib.sha256(canonical_json(document)).hexdigest()


def test_the_migration_keeps_old_records_verifying_and_old_jobs_for_admins(db_url: str) -> None:
    """A database at 0004 holding audit records and a job upgrades to head: the old records
    still verify (a user given to one later is caught), new ones name their user and chain
    on, and the old job, whose submitter is unknown, is left to the party's admins."""
    database = create_database(db_url, run_migrations=False)
    try:
        migrate(database, "0004_audit_log")
        at = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
        job_id = "a" * 32
        old_job = JobStatus.submitted(job_id, _job("party:p1.org:p1"), SiteId.parse(
            "site:p1.org:site"), at)  # fmt: skip
        prev = GENESIS
        with database.transaction() as session:
            values = job_values(old_job)
            del values["submitted_by"]
            session.execute(insert(jobs).values(values))
            for seq in (1, 2, 3):
                entry = AuditEntry(
                    AuditKind.JOB, "state", "submitted", party="party:p1.org:p1", job=job_id
                )
                digest = _hash_before_people(seq, at, entry, prev)
                assert record_hash(seq, at, entry, prev) == digest
                row = {k: v for k, v in entry.to_dict().items() if k != "user"}
                row.update(seq=seq, at=at, prev=prev, hash=digest)
                session.execute(insert(audit_log).values(row))
                prev = digest
            session.execute(
                update(change_heads).where(change_heads.c.log == "audit").values(version=3)
            )
        migrate(database)

        log = AuditLog(database)
        assert log.verify().intact and log.verify().records == 3
        stored = JobRepository(database).get_job(job_id)
        assert stored.submitted_by is None
        party = PartyId.parse("party:p1.org:p1")
        assert Person("admin", party, admin=True).sees_job(party, stored.submitted_by)
        assert not Person("alice", party).sees_job(party, stored.submitted_by)

        alice = str(Person("alice", party))
        log.record(AuditEntry(AuditKind.JOB, "state", "cancelled", job=job_id, user=alice))
        check = log.verify()
        assert check.intact and check.records == 4
        assert log.get(4).entry.user == alice

        for seq, forged in ((2, alice), (4, None)):
            with database.transaction() as session:
                session.execute(update(audit_log).where(audit_log.c.seq == seq).values(user=forged))
            broken = log.verify()
            assert broken.broken_at == seq and "was changed" in (broken.problem or "")
            with database.transaction() as session:
                original = None if forged == alice else alice
                session.execute(
                    update(audit_log).where(audit_log.c.seq == seq).values(user=original)
                )
        assert log.verify().intact
    finally:
        database.close()
