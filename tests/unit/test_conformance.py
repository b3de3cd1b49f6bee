"""The YAML conformance cases of tests/cases: one test per file (format in tests/cases/README.md).

Each case gives rules, sites and a job as the offline commands read them
(reference: Command line), and states the expected permissions, decisions and plan or
denial, derived by hand from the reference's Policy semantics and Planner.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from mahiru.errors import PermissionDenied
from mahiru.model.assets import SiteDescription
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId, parse_identifier
from mahiru.model.items import WorkflowItem
from mahiru.model.serialization import job_from_dict, site_from_dict
from mahiru.model.workflow import Job
from mahiru.planner import plan_job
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.store import RuleStore

CASES_DIR = Path(__file__).resolve().parent.parent / "cases"

CASE_KEYS = {"description", "rules", "job", "expect"}
OPTIONAL_CASE_KEYS = {"sites", "sizes", "xfail_reason"}
EXPECT_KEYS = {
    "plan",
    "denied",
    "denied_steps",
    "explanation_contains",
    "decisions",
    "permissions",
}
DECISION_KEYS = {"item", "allowed"}
OPTIONAL_DECISION_KEYS = {"site", "party", "explanation_contains"}


def _read(path: Path) -> dict[str, Any]:
    """Load one case file and check its shape, failing with the file name on any problem."""
    where = path.name
    try:
        case = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        pytest.fail(f"{where}: invalid YAML: {error}")
    if not isinstance(case, dict):
        pytest.fail(f"{where}: a case must be a mapping")
    _check_keys(case, CASE_KEYS, OPTIONAL_CASE_KEYS, where)
    expect = case["expect"]
    if not isinstance(expect, dict):
        pytest.fail(f"{where}: expect must be a mapping")
    _check_keys(expect, set(), EXPECT_KEYS, f"{where} expect")
    if not expect:
        pytest.fail(f"{where}: expect states nothing")
    if "plan" in expect and "denied" in expect:
        pytest.fail(f"{where}: expect either a plan or denied, not both")
    if "denied" in expect and expect["denied"] is not True:
        pytest.fail(f"{where}: denied must be true (leave it out when a plan exists)")
    if ("denied_steps" in expect or "explanation_contains" in expect) and "denied" not in expect:
        pytest.fail(f"{where}: denied_steps and explanation_contains need denied: true")
    if ("plan" in expect or "denied" in expect) and not case.get("sites"):
        pytest.fail(f"{where}: a plan or denial needs sites")
    return case


def _check_keys(
    data: Mapping[str, Any], required: set[str], optional: set[str], where: str
) -> None:
    missing = required - set(data)
    unknown = set(data) - required - optional
    if missing or unknown:
        pytest.fail(f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}")


def _params() -> list[Any]:
    """One pytest param per case file; a case with `xfail_reason` is a strict xfail."""
    params = []
    for path in sorted(CASES_DIR.glob("*.yaml")):
        try:
            reason = (yaml.safe_load(path.read_text()) or {}).get("xfail_reason")
        except (yaml.YAMLError, AttributeError):
            reason = None  # the test itself reports the broken file
        marks = [pytest.mark.xfail(reason=str(reason), strict=True)] if reason else []
        params.append(pytest.param(path, id=path.stem, marks=marks))
    return params


def _submitter_site(job: Job, sites: list[SiteDescription]) -> SiteId | None:
    """The submitter's site: owned by the submitter, with a store, the first by id."""
    own = sorted(str(s.id) for s in sites if s.owner == job.submitter and s.store)
    return SiteId.parse(own[0]) if own else None


def _contains_all(text: str, needles: list[str], what: str) -> None:
    missing = [needle for needle in needles if needle not in text]
    assert not missing, f"{what} lacks {missing}; it is:\n{text}"


def _check_permissions(engine: PolicyEngine, job: Job, expected: list[dict[str, Any]]) -> None:
    permissions = engine.job_permissions(job)
    for entry in expected:
        _check_keys(entry, {"item", "requirements"}, set(), f"permissions {entry}")
        item = WorkflowItem.parse(entry["item"], job.workflow)
        actual = sorted(requirement.texts() for requirement in permissions[item])
        wanted = sorted(sorted(requirement) for requirement in entry["requirements"])
        assert actual == wanted, f"permissions of {entry['item']}"


def _check_decisions(engine: PolicyEngine, job: Job, expected: list[dict[str, Any]]) -> None:
    for entry in expected:
        _check_keys(entry, DECISION_KEYS, OPTIONAL_DECISION_KEYS, f"decision {entry}")
        if ("site" in entry) == ("party" in entry):
            pytest.fail(f"decision {entry}: give exactly one of site and party")
        item = WorkflowItem.parse(entry["item"], job.workflow)
        if "site" in entry:
            decision = engine.explain_item(job, item, site=SiteId.parse(entry["site"]))
            subject = entry["site"]
        else:
            decision = engine.explain_item(job, item, party=PartyId.parse(entry["party"]))
            subject = entry["party"]
        # The multi-line explanation, then the one-line reasons the CLI and API
        # also show ("site2 may not access compute.output0: no MayAccess ...").
        explanation = "\n".join([decision.explain(), *decision.failures()])
        assert decision.allowed is entry["allowed"], (
            f"{subject} on {entry['item']}: expected allowed={entry['allowed']}:\n{explanation}"
        )
        _contains_all(explanation, entry.get("explanation_contains", []), "the explanation")


def _runnable_anywhere(engine: PolicyEngine, job: Job, sites: list[SiteDescription]) -> set[str]:
    """Steps that at least one site with a runner may run (by the engine alone)."""
    permissions = engine.job_permissions(job)
    return {
        step
        for step in job.workflow.steps
        for site in sites
        if site.runner and engine.may_run_step(permissions, step, site.id).allowed
    }


def _sizes(texts: Mapping[str, int] | None) -> dict[AssetId | ResultId, int] | None:
    """The `sizes` of a case, keyed by parsed asset or result id."""
    if texts is None:
        return None
    sizes: dict[AssetId | ResultId, int] = {}
    for text, size in texts.items():
        identifier = parse_identifier(text, ("asset", "result"))
        assert isinstance(identifier, AssetId | ResultId)
        sizes[identifier] = size
    return sizes


def _check_plan(
    engine: PolicyEngine,
    job: Job,
    sites: list[SiteDescription],
    sizes: dict[AssetId | ResultId, int] | None,
    expect: Mapping[str, Any],
) -> None:
    if "plan" in expect:
        plan = plan_job(job, sites, engine, sizes=sizes)
        actual = {step: str(site) for step, site in plan.assignments.items()}
        assert actual == expect["plan"]
        # The plan must be one the engine itself permits (reference: Policy semantics, last bullet).
        submitter_site = _submitter_site(job, sites)
        assert submitter_site is not None
        permissions = engine.job_permissions(job)
        verdict = engine.check_job(permissions, plan.assignments, submitter_site)
        assert verdict.allowed, verdict.explain()
        return
    with pytest.raises(PermissionDenied) as raised:
        plan_job(job, sites, engine, sizes=sizes)
    error = raised.value
    text = error.message + "\n" + json.dumps(error.details, sort_keys=True, default=str)
    _contains_all(text, expect.get("explanation_contains", []), "the denial")
    if "denied_steps" in expect:
        wanted = set(expect["denied_steps"])
        stuck = set(job.workflow.steps) - _runnable_anywhere(engine, job, sites)
        assert stuck == wanted, "steps no site may run, by the engine"
        assert isinstance(error.details, dict), "the denial details"
        assert set(error.details.get("steps", {})) == wanted, "steps the denial names"


@pytest.mark.parametrize("path", _params())
def test_conformance_case(path: Path) -> None:
    """The engine and planner give exactly what the case file expects."""
    case = _read(path)
    expect = case["expect"]
    rules = [rule_from_dict(rule) for rule in case["rules"] or []]
    job = job_from_dict(case["job"])
    sites = [site_from_dict(site) for site in case.get("sites") or []]
    engine = PolicyEngine(RuleStore(rules))
    _check_permissions(engine, job, expect.get("permissions", []))
    _check_decisions(engine, job, expect.get("decisions", []))
    if "plan" in expect or "denied" in expect:
        _check_plan(engine, job, sites, _sizes(case.get("sizes")), expect)
