"""Live data access on the job path, in process: a data set marked `live_access` at site2 is
read by a step at site1 through a grant site2 issues for that step alone
(`services/jobs/live_grants.py`), never copied to site1.

The step's program reads through its channel's socket as a container does; grants are asked
for through the in-process `/external/live` calls. Nothing sleeps: the clock is fake, blocked
steps are released by the test, and waits on the step's thread have deadlines only a broken
test reaches.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from tests.support.fake_runtime import Program, StepRun, archive_of
from tests.support.fake_scenario import Scenario
from tests.support.fake_sites import FakeSite

from mahiru.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mahiru.model.assets import AssetKind
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import AssetId, JobId
from mahiru.model.jobs import JobState, StepState
from mahiru.model.live import LiveGrantRequest
from mahiru.model.serialization import job_to_dict
from mahiru.model.workflow import Job
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_revocation
from mahiru.services.jobs.live_grants import MAX_GRANTS_PER_SITE
from mahiru.storage.digests import DamagedBlob

#: The live data set's one file.
DATA = b"[5, 1, 34, 2]"
#: The compute asset (at site1) whose program each test sets (`Live.program`).
READER = "reader"
#: The longest wait for the step's thread (reached only when something is broken).
DEADLINE = 10.0


def read_minmax(run: StepRun) -> int:
    """Reads data.json of live input0 through its channel; writes [min, max] to output0."""
    status, body = run.read_live("input0", "data.json")
    if status != 200:
        run.log.append(f"live read refused: {status} {body.decode(errors='replace')}")
        return 1
    values = json.loads(body)
    run.write("output0", "data.json", json.dumps([min(values), max(values)]).encode())
    return 0


@dataclass
class Holding:
    """A step that reads its live input, tells the test its token, and holds until released
    (or its container is stopped); then exits with `exit_code`."""

    exit_code: int = 0
    tokens: list[str] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def __call__(self, run: StepRun) -> int:
        self.tokens.append(run.live_token("input0"))
        status, _ = run.read_live("input0", "data.json")
        assert status == 200
        self.started.set()
        run.block(self.release)
        if self.exit_code == 0:
            run.write("output0", "done", b"read")
        return self.exit_code


@dataclass(frozen=True)
class Live:
    """The compute-to-data scenario plus the live data set `data` at site2, which only
    site1 may access: a job reading it runs its step at site1."""

    scenario: Scenario
    data: str

    @property
    def site1(self) -> FakeSite:
        return self.scenario.site1

    @property
    def site2(self) -> FakeSite:
        return self.scenario.site2

    @property
    def site3(self) -> FakeSite:
        return self.scenario.net.sites["party3"]

    def program(self, program: Program) -> None:
        """Run `program` as the reader compute's step, in this test."""
        self.scenario.net.programs.compute(READER, program)

    def job(self) -> Job:
        """One step at site1 running the reader on the live data set."""
        return self.scenario.job(READER, data=self.data)

    def submit(self) -> JobId:
        """Submit the job at site1 and hand its step over (not started); its id."""
        site1 = self.site1
        job_id = site1.jobs.submissions.submit(self.job(), site1.party.user()).job_id
        site1.follow()
        assert site1.steps(job_id)["compute"].site == site1.id
        return job_id

    def body(self, job_id: JobId, **changed: Any) -> dict[str, Any]:
        """The grant request site1's channel sends for the job's step, with `changed`."""
        return {
            "job_id": job_id,
            "job": job_to_dict(self.job()),
            "submitter_site": str(self.site1.id),
            "step": "compute",
            "input": "input0",
            "asset": self.data,
            **changed,
        }

    def ask(self, asker: FakeSite, body: dict[str, Any]) -> str:
        """POST /external/live/grants at site2, as `asker`, the body parsed as the route
        parses it; the token."""
        request = LiveGrantRequest.from_dict(body)
        return self.scenario.net.peer(asker, self.site2.record()).live_grant(request)

    def files(self, asker: FakeSite, token: str) -> list[dict[str, object]]:
        """GET /external/live/{token}/files at site2, as `asker`."""
        return self.site2.jobs.egress.live_files(token, asker.id)

    def unpacked(self) -> list[Path]:
        """The files site2 holds unpacked for grants."""
        root = self.site2.root / "work" / "live-grants"
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []

    def run_aside(self, holding: Holding) -> threading.Thread:
        """Start the job's step at site1 in another thread; return once it holds its grant."""
        worker = self.site1.run_steps_aside()
        assert holding.started.wait(DEADLINE)
        return worker


@pytest.fixture(scope="module")
def live_template(template: Scenario, tmp_path_factory: pytest.TempPathFactory) -> Live:
    """The live scenario set up once (sites stopped); each test runs on a copy of it."""
    net = template.net.copy(tmp_path_factory.mktemp("live") / "net")
    net.start(replicate=False)
    scenario = template.on(net)
    site2 = scenario.site2
    data = site2.add_asset(
        "live", AssetKind.DATA, archive_of({"data.json": DATA}), live_access=True
    )
    site2.add_rule({"type": "MayAccess", "site": str(scenario.site1.id), "asset": data})
    site2.add_rule(
        {
            "type": "ResultOfDataIn",
            "data": data,
            "compute": "*",
            "output": "*",
            "collection": f"asset_collection:{site2.party.namespace}:results",
        }
    )
    scenario.add_compute(READER, read_minmax)  # replicates
    net.stop()
    return Live(scenario, data)


@pytest.fixture
def live(live_template: Live, tmp_path: Path) -> Iterator[Live]:
    """The live scenario on three started sites, the reader's program `read_minmax`."""
    net = live_template.scenario.net.copy(tmp_path / "net")
    net.start(replicate=False)  # copied replicated
    try:
        yield Live(live_template.scenario.on(net), live_template.data)
    finally:
        net.stop()


def test_the_step_at_site1_reads_the_data_live_and_nothing_of_it_is_copied(live: Live) -> None:
    """The job succeeds with [1, 34] computed at site1, which stores neither the data set's
    record nor its image; the grant ends with the step, leaving nothing unpacked at site2."""
    site1, site2 = live.site1, live.site2
    job_id = live.submit()
    live.scenario.net.drive()
    assert site1.job(job_id).state is JobState.SUCCEEDED
    (result,) = site1.steps(job_id)["compute"].results.values()
    image = site1.records.get(result).asset.image_digest
    assert image is not None
    assert b"[1, 34]" in site1.blobs.path(image).read_bytes()
    digest = site2.records.get(AssetId.parse(live.data)).asset.image_digest
    assert digest is not None and not site1.blobs.has(digest)
    assert not site1.records.has(AssetId.parse(live.data))
    assert live.unpacked() == []


def test_a_grant_and_each_file_read_through_it_are_audited_at_the_data_s_site(
    live: Live,
) -> None:
    """site2 records its decision to let site1 run the step (with the job, step, asset and
    submitting party), and each read of a file as a transfer to site1 (its path and digest)."""
    site1, site2 = live.site1, live.site2
    job_id = live.submit()
    live.scenario.net.drive()
    (decision,) = [e for e in site2.audited(AuditKind.DECISION, job_id) if e.action == "live grant"]
    assert (decision.outcome, decision.actor, decision.step) == (
        "allowed",
        str(site1.id),
        "compute",
    )
    assert (decision.asset, decision.party) == (live.data, str(site1.party.id))
    sent = [
        e
        for e in site2.audited(AuditKind.TRANSFER, job_id)
        if e.action == "send" and e.actor == str(site1.id)
    ]
    digest = f"sha256:{hashlib.sha256(DATA).hexdigest()}"
    assert [(e.outcome, e.asset, e.details["path"], e.details["digest"]) for e in sent] == [
        ("complete", live.data, "data.json", digest)
    ]


def test_a_site_the_policy_does_not_let_run_the_step_gets_no_grant(live: Live) -> None:
    """site3 may not access the compute or the data: refused before anything is looked up,
    with the policy's explanation, and the refusal is audited."""
    job_id = live.submit()
    with pytest.raises(PermissionDenied) as denied:
        live.ask(live.site3, live.body(job_id))
    assert "may not run step compute" in denied.value.message
    (decision,) = [
        e for e in live.site2.audited(AuditKind.DECISION, job_id) if e.action == "live grant"
    ]
    assert (decision.outcome, decision.actor) == ("denied", str(live.site3.id))
    assert live.unpacked() == []


def test_the_data_s_site_decides_by_its_own_rules_in_force_not_the_plan(live: Live) -> None:
    """site1 planned the step under site2's rule; site2 revokes it: site2 grants nothing,
    and the step fails with site2's reason before its container starts."""
    site1, site2 = live.site1, live.site2
    job_id = live.submit()
    rule = {"type": "MayAccess", "site": str(site1.id), "asset": live.data}
    revocation = sign_revocation(rule_from_dict(rule), site2.party.credentials.main_key)
    site2.services.rules.revoke(revocation, user=site2.party.user("admin", admin=True))
    with pytest.raises(PermissionDenied, match="may not run step compute"):
        live.ask(site1, live.body(job_id))
    live.scenario.net.drive()
    step = site1.steps(job_id)["compute"]
    assert step.state is StepState.FAILED
    assert step.reason is not None and f"may not access {live.data}" in step.reason
    assert live.site1.runtime.steps_run == {}
    assert live.unpacked() == []


def test_a_grant_needs_the_job_s_submitter_site_to_say_the_step_runs_at_the_asker(
    live: Live,
) -> None:
    """A made-up job, another job than the one planned, a submitter's site that is not the
    submitter's: no grant, each with its reason; the real request gets one."""
    site1, site2 = live.site1, live.site2
    job_id = live.submit()
    other = live.scenario.job("minmax", data=live.data)
    attempts = {
        "does not confirm": live.body(JobId("0" * 32)),
        "does not confirm step": live.body(job_id, job=job_to_dict(other)),
        "does not belong to the job's submitter": live.body(job_id, submitter_site=str(site2.id)),
    }
    for reason, body in attempts.items():
        with pytest.raises(PermissionDenied, match=reason):
            live.ask(site1, body)
    assert live.unpacked() == []
    token = live.ask(site1, live.body(job_id))
    assert [f["path"] for f in live.files(site1, token)] == ["data.json"]


def test_a_request_must_name_a_step_that_reads_the_asset_as_that_input(live: Live) -> None:
    """An unknown step, an input the step does not have, or an asset the step does not read
    there: InvalidInput, before the policy is asked."""
    job_id = live.submit()
    other = live.scenario.input
    for changed in ({"step": "other"}, {"input": "input9"}, {"asset": other}):
        with pytest.raises(InvalidInput, match="does not read"):
            live.ask(live.site1, live.body(job_id, **changed))
    assert [e for e in live.site2.audited(AuditKind.DECISION, job_id)] == []


def test_a_data_set_not_marked_live_is_never_granted(live: Live) -> None:
    """Even to a site the policy lets run a step reading it: NotFound, as for no such asset."""
    site1, site2 = live.site1, live.site2
    plain = site2.add_asset("plain", AssetKind.DATA, archive_of({"data.json": DATA}))
    site2.add_rule({"type": "MayAccess", "site": str(site1.id), "asset": plain})
    site2.add_rule(
        {
            "type": "ResultOfDataIn",
            "data": plain,
            "compute": "*",
            "output": "*",
            "collection": f"asset_collection:{site2.party.namespace}:results",
        }
    )
    live.scenario.net.replicate()
    job = live.scenario.job(READER, data=plain)
    job_id = site1.jobs.submissions.submit(job, site1.party.user()).job_id
    site1.follow()
    body = live.body(job_id, job=job_to_dict(job), asset=plain)
    with pytest.raises(NotFound, match="not a data set served live here"):
        live.ask(site1, body)


def test_a_live_data_set_never_leaves_whole(live: Live) -> None:
    """site1, which may access it, still cannot fetch its image: it is served only live."""
    as_site1 = live.scenario.net.peer(live.site1, live.site2.record())
    with (
        pytest.raises(PermissionDenied, match="served only live"),
        as_site1.fetch_image(AssetId.parse(live.data)),
    ):
        pass


def test_a_token_works_for_its_site_only_and_only_for_the_recorded_files(live: Live) -> None:
    """site3 and a made-up token read nothing; a path out of /data is invalid; a file
    planted next to the unpacked ones is not there; a changed file never goes out, and its
    read is recorded as an incomplete transfer."""
    site1, site3 = live.site1, live.site3
    job_id = live.submit()
    token = live.ask(site1, live.body(job_id))
    egress = live.site2.jobs.egress
    for caller, tried in ((site3.id, token), (site1.id, "y" * len(token))):
        with pytest.raises(NotFound, match="no live access grant"):
            egress.live_file(tried, caller, "data.json")
    with pytest.raises(InvalidInput):
        egress.live_file(token, site1.id, "../data.json")
    (unpacked,) = live.unpacked()
    (unpacked.parent / "planted.json").write_bytes(b"[]")
    with pytest.raises(NotFound, match="no file"):
        egress.live_file(token, site1.id, "planted.json")
    unpacked.write_bytes(DATA.replace(b"34", b"99"))
    sent: list[bytes] = []
    with pytest.raises(DamagedBlob):
        sent.extend(egress.live_file(token, site1.id, "data.json").read())
    assert sent == []  # the last chunk is held back until the whole file is checked
    (transfer,) = live.site2.audited(AuditKind.TRANSFER, job_id)
    assert (transfer.outcome, transfer.actor) == ("incomplete", str(site1.id))


def test_a_site_holds_at_most_the_most_grants_and_they_share_one_copy(live: Live) -> None:
    """MAX_GRANTS_PER_SITE grants, then Conflict; revoking one makes room; one unpacked copy."""
    site1 = live.site1
    body = live.body(live.submit())
    tokens = [live.ask(site1, body) for _ in range(MAX_GRANTS_PER_SITE)]
    with pytest.raises(Conflict, match="the most one site may hold"):
        live.ask(site1, body)
    assert len(live.unpacked()) == 1
    live.scenario.net.peer(site1, live.site2.record()).live_revoke(tokens.pop())
    tokens.append(live.ask(site1, body))
    for token in tokens:
        live.scenario.net.peer(site1, live.site2.record()).live_revoke(token)
    assert live.unpacked() == []


def test_a_grant_expires_after_the_step_s_time_limit_and_a_margin(live: Live) -> None:
    """Past its expiry a token reads nothing, and the unpacked copy is gone."""
    site1 = live.site1
    token = live.ask(site1, live.body(live.submit()))
    ttl = live.site2.jobs.live.ttl
    live.scenario.net.clock.advance(ttl.total_seconds() - 1)
    assert live.files(site1, token)
    live.scenario.net.clock.advance(1)
    with pytest.raises(NotFound, match="no live access grant"):
        live.files(site1, token)
    assert live.unpacked() == []


@pytest.mark.parametrize(
    ("end", "state"),
    [
        ("finishes", StepState.SUCCEEDED),
        ("fails", StepState.FAILED),
        ("is cancelled", StepState.CANCELLED),
    ],
)
def test_a_grant_ends_with_its_step_and_the_finished_step_gets_no_other(
    live: Live, end: str, state: StepState
) -> None:
    """While the step runs its token reads; when the step finishes, fails or is cancelled,
    site1 revokes it, nothing stays unpacked at site2, and no new grant is given for it."""
    site1 = live.site1
    holding = Holding(exit_code=3 if end == "fails" else 0)
    live.program(holding)
    job_id = live.submit()
    worker = live.run_aside(holding)
    (token,) = holding.tokens
    assert [f["path"] for f in live.files(site1, token)] == ["data.json"]
    if end == "is cancelled":
        site1.jobs.submissions.cancel(job_id, site1.party.user())
    else:
        holding.release.set()
    worker.join(DEADLINE)
    assert not worker.is_alive()
    assert site1.steps(job_id)["compute"].state is state
    with pytest.raises(NotFound, match="no live access grant"):
        live.files(site1, token)
    assert live.unpacked() == []
    live.scenario.net.drive()
    with pytest.raises(PermissionDenied, match="does not say that step compute"):
        live.ask(site1, live.body(job_id))


def test_a_grant_site1_cannot_revoke_still_expires(live: Live) -> None:
    """site2 is unreachable when the step ends: the step still finishes, and the grant ends
    at its expiry."""
    site1, site2 = live.site1, live.site2
    holding = Holding()
    live.program(holding)
    live.submit()
    worker = live.run_aside(holding)
    (token,) = holding.tokens
    site2.down = True
    holding.release.set()
    worker.join(DEADLINE)
    assert not worker.is_alive()
    site2.down = False
    assert live.files(site1, token)  # not revoked: site1 could not reach site2
    live.scenario.net.clock.advance(site2.jobs.live.ttl.total_seconds())
    with pytest.raises(NotFound, match="no live access grant"):
        live.files(site1, token)
    assert live.unpacked() == []


def test_a_restart_of_the_data_s_site_ends_every_grant(live: Live) -> None:
    """Grants are held in memory: after site2 restarts no token reads and nothing stays
    unpacked; the step, still unfinished, is granted again when it asks."""
    site1, site2 = live.site1, live.site2
    job_id = live.submit()
    token = live.ask(site1, live.body(job_id))
    site2.stop()
    assert live.unpacked() == []
    site2.start()
    with pytest.raises(NotFound, match="no live access grant"):
        live.files(site1, token)
    assert live.files(site1, live.ask(site1, live.body(job_id)))


def test_what_a_crash_left_unpacked_is_removed_when_the_site_starts(live: Live) -> None:
    """Files unpacked for grants before a crash (no orderly stop) are gone once the data's
    site starts its job services again."""
    site2 = live.site2
    live.ask(live.site1, live.body(live.submit()))
    (unpacked,) = live.unpacked()
    kept = unpacked.read_bytes()
    site2.stop()
    unpacked.parent.mkdir(parents=True)  # as a crash leaves it
    unpacked.write_bytes(kept)
    site2.start(loops=True)
    assert live.unpacked() == []
