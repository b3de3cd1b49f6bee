"""Refusals on the job path, in process: each site decides with its own policy, and says no
to the planner's job, to a hand-over, to a step and to a result that its policy does not allow."""

from __future__ import annotations

import json

import pytest
from tests.support.fake_runtime import archive_of
from tests.support.fake_scenario import Scenario
from tests.support.inprocess_peers import Caller, InProcessPeer

from mahiru import pki
from mahiru.errors import NotFound, PermissionDenied, Unauthenticated
from mahiru.model.assets import AssetKind
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import JobState, StepAssignment, StepState
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_revocation


def _revoke(scenario: Scenario, rule: dict[str, str]) -> None:
    """site2's party revokes one of its rules, at site2 only (no one has replicated it yet)."""
    site2 = scenario.site2
    revocation = sign_revocation(rule_from_dict(rule), site2.party.credentials.main_key)
    site2.services.rules.revoke(revocation, user=site2.party.user("admin", admin=True))


def _grant_input(scenario: Scenario) -> str:
    """site2 stores `input_revocable`, which only site2 may read, results going to party1."""
    site2 = scenario.site2
    data = site2.add_asset("input_revocable", AssetKind.DATA, archive_of({"payload": b"[7, 3]"}))
    site2.add_rule({"type": "MayAccess", "site": str(site2.id), "asset": data})
    site2.add_rule(
        {
            "type": "ResultOfDataIn",
            "data": data,
            "compute": "*",
            "output": "*",
            "collection": f"asset_collection:{site2.party.namespace}:results",
        }
    )
    scenario.net.replicate()
    return data


def test_a_job_no_rule_permits_is_refused_with_the_planner_s_explanation(
    scenario: Scenario,
) -> None:
    """No rule lets any site read the secret: PermissionDenied explaining why; nothing stored."""
    site1 = scenario.site1
    secret = scenario.site2.add_asset("secret", AssetKind.DATA, archive_of({"payload": b"[1]"}))
    scenario.net.replicate()
    with pytest.raises(PermissionDenied) as denied:
        site1.jobs.submissions.submit(scenario.job(data=secret), site1.party.user())
    assert "compute" in json.dumps(denied.value.details)
    assert secret in json.dumps(denied.value.details) or secret in denied.value.message
    assert site1.job_store.list_jobs() == []
    (planned,) = [
        e for e in site1.audited(AuditKind.DECISION, None) if e.action == "plan job"
    ]  # the refusal is audited, with the user who asked
    assert planned.outcome == "denied" and planned.user == str(site1.party.user())


def test_a_job_naming_an_asset_no_site_stores_is_refused_as_not_known(scenario: Scenario) -> None:
    """Inputs said to be at this site but not stored, or at a site never registered, read as
    what they are: not known, rather than denied."""
    site1 = scenario.site1
    for missing in (site1.asset_id("nothing"), "asset:nobody.org:x:nobody.org:site"):
        with pytest.raises(NotFound) as unknown:
            site1.jobs.submissions.submit(scenario.job(data=missing), site1.party.user())
        assert missing in unknown.value.details["unknown_assets"]
    assert site1.job_store.list_jobs() == []


def test_a_user_submits_only_as_their_own_party(scenario: Scenario) -> None:
    """A job whose submitter is party1, submitted by a user of party3: refused."""
    party3_user = scenario.net.sites["party3"].party.user()
    with pytest.raises(PermissionDenied):
        scenario.site1.jobs.submissions.submit(scenario.job(), party3_user)


def test_only_the_job_s_submitter_site_may_hand_over_its_steps(scenario: Scenario) -> None:
    """site3 handing over site1's job to site2 is refused, and nothing is stored at site2."""
    site1, site2, site3 = scenario.site1, scenario.site2, scenario.net.sites["party3"]
    status = site1.jobs.submissions.submit(scenario.job(), site1.party.user())
    assert status.plan is not None
    as_site3 = scenario.net.peer(site3, site2.record())
    forged = StepAssignment(status.job_id, site1.id, site2.id, status.job, status.plan)
    with pytest.raises(PermissionDenied) as refused:
        as_site3.assign(forged)
    assert "only the submitter's site" in refused.value.message
    claimed = StepAssignment(status.job_id, site3.id, site2.id, status.job, status.plan)
    with pytest.raises(PermissionDenied) as refused:
        as_site3.assign(claimed)  # site3 claims to be the submitter's site: not party1's
    assert "not to the job's submitter" in refused.value.message
    with pytest.raises(NotFound):
        site2.job_store.steps_of(status.job_id)


def test_only_registered_sites_with_their_registered_key_may_call(scenario: Scenario) -> None:
    """A site the registry does not know is refused; one presenting another key is not believed."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = JobId("j")
    rogue = pki.issue_site_certificate(scenario.net.ca, "site:rogue.org:site")
    with pytest.raises(PermissionDenied):
        InProcessPeer(site2, Caller("site:rogue.org:site", rogue.certificate)).step_statuses(job_id)
    other_key = pki.issue_site_certificate(scenario.net.ca, str(site1.id))
    with pytest.raises(Unauthenticated):
        InProcessPeer(site2, Caller(str(site1.id), other_key.certificate)).step_statuses(job_id)


def test_a_site_refuses_steps_its_policy_does_not_permit_as_planned(scenario: Scenario) -> None:
    """site2 revoked its grant, site1 has not heard: site1 plans, site2 refuses the hand-over,
    and the job fails with site2's reason; the step never starts."""
    site1, site2 = scenario.site1, scenario.site2
    data = _grant_input(scenario)
    _revoke(scenario, {"type": "MayAccess", "site": str(site2.id), "asset": data})
    job_id = site1.jobs.submissions.submit(scenario.job(data=data), site1.party.user()).job_id
    site1.follow()
    status = site1.job(job_id)
    assert status.state is JobState.FAILED
    assert status.reason is not None and "policy does not permit" in status.reason
    assert data in status.reason
    step = site1.steps(job_id)["compute"]
    assert step.state in (StepState.FAILED, StepState.CANCELLED) and step.started_at is None
    denied = [e for e in site2.audited(AuditKind.DECISION, job_id) if e.action == "receive steps"]
    assert [e.outcome for e in denied] == ["denied"]
    assert data in denied[0].details["explanation"]


def test_the_running_site_rechecks_a_step_against_its_own_policy(scenario: Scenario) -> None:
    """Handed over while allowed, revoked before it ran: site2 fails the step, saying why."""
    site1, site2 = scenario.site1, scenario.site2
    data = _grant_input(scenario)
    job_id = site1.jobs.submissions.submit(scenario.job(data=data), site1.party.user()).job_id
    site1.follow()
    assert site2.steps(job_id)["compute"].state is StepState.WAITING
    _revoke(scenario, {"type": "MayAccess", "site": str(site2.id), "asset": data})
    site2.run_steps()
    step = site2.steps(job_id)["compute"]
    assert step.state is StepState.FAILED and step.started_at is None
    assert step.reason is not None
    assert "this site's policy does not permit the step here" in step.reason
    assert site2.runtime.steps_run == {}
    site1.follow()
    assert site1.job(job_id).state is JobState.FAILED


def test_a_result_the_submitter_may_no_longer_use_is_not_collected(scenario: Scenario) -> None:
    """The step ran; then party2 withdrew party1's use of its results: site2 will not release
    the result to site1, and the job fails instead of succeeding without it."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    site2.run_steps()
    assert site2.steps(job_id)["compute"].state is StepState.SUCCEEDED
    results2 = f"asset_collection:{site2.party.namespace}:results"
    _revoke(
        scenario,
        {
            "type": "MayUse",
            "party": str(site1.party.id),
            "asset": results2,
            "conditions": "analysis",
        },
    )
    site1.follow()
    status = site1.job(job_id)
    assert status.state is JobState.FAILED
    assert status.reason is not None and "cannot collect the workflow outputs" in status.reason
    assert not site1.records.has(status.outputs()["result"])


def test_a_site_that_takes_no_part_learns_nothing_of_a_job(scenario: Scenario) -> None:
    """site3 asking site2 about, or cancelling, site1's job is told it does not exist."""
    site1, site2, site3 = scenario.site1, scenario.site2, scenario.net.sites["party3"]
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    as_site3 = scenario.net.peer(site3, site2.record())
    with pytest.raises(NotFound):
        as_site3.step_statuses(job_id)
    with pytest.raises(NotFound):
        as_site3.cancel(job_id)
    assert site2.steps(job_id)["compute"].state is StepState.WAITING
