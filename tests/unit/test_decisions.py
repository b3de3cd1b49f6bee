"""Decision values explain themselves: rule chains when allowed, what is missing when denied."""

from __future__ import annotations

import json

import pytest

from mahiru.model.identifiers import parse_identifier
from mahiru.policy.decisions import Decision, RequirementOutcome
from mahiru.policy.permissions import Requirement
from mahiru.policy.rules import Rule, rule_from_dict

RESULTS = "asset_collection:party1.example.org:results"
DATA = "asset:party1.example.org:data:party1.example.org:site1"
PUBLIC = "asset_collection:party1.example.org:public"

IN_PUBLIC = rule_from_dict({"type": "InAssetCollection", "asset": DATA, "collection": PUBLIC})
GRANT = rule_from_dict(
    {"type": "MayAccess", "site": "site:party2.example.org:site2", "asset": PUBLIC}
)


def requirement(*texts: str, origin: str = "") -> Requirement:
    return Requirement(frozenset(parse_identifier(t) for t in texts), origin)


def met(*chain: Rule, texts: tuple[str, ...] = (DATA,)) -> RequirementOutcome:
    return RequirementOutcome(requirement(*texts), tuple(chain))


def unmet(*texts: str, verb: str = "MayAccess", origin: str = "") -> RequirementOutcome:
    return RequirementOutcome(requirement(*texts, origin=origin), None, verb)


# --- one requirement --------------------------------------------------------------------


def test_met_requirement_shows_its_rule_chain() -> None:
    """A met requirement explains itself by the rules that met it, in order."""
    outcome = met(IN_PUBLIC, GRANT)
    assert outcome.met
    assert outcome.explain() == f"{IN_PUBLIC} -> {GRANT}"
    assert outcome.explain() == (
        f"InAssetCollection(asset={DATA}, collection={PUBLIC}) -> "
        f"MayAccess(site=site:party2.example.org:site2, asset={PUBLIC})"
    )


def test_requirement_met_by_an_empty_chain_is_still_met() -> None:
    """`chain=()` (met without rules) differs from `chain=None` (not met)."""
    assert RequirementOutcome(requirement(DATA), ()).met
    assert not RequirementOutcome(requirement(DATA), None).met


@pytest.mark.parametrize("verb", ["MayAccess", "MayUse"])
def test_unmet_single_requirement_says_no_grant_for_it_or_its_containers(verb: str) -> None:
    """The reference: Policy semantics wording: `no MayAccess for X or anything containing it`."""
    outcome = unmet(RESULTS, verb=verb)
    assert not outcome.met
    assert outcome.explain() == f"no {verb} for {RESULTS} or anything containing it"


def test_unmet_requirement_of_several_ids_lists_them_sorted() -> None:
    """Any one of several ids would have done; all are named, in a stable order."""
    outcome = unmet(RESULTS, PUBLIC, DATA)
    assert outcome.explain() == (
        f"no MayAccess for any of {DATA}, {PUBLIC}, {RESULTS} or anything containing them"
    )


def test_empty_requirement_says_nobody_may_have_the_result() -> None:
    """An empty requirement (no rule says where a result goes) can never be met."""
    outcome = unmet(origin="ResultOfDataIn for compute.output0 from {x} and y")
    assert outcome.explain() == (
        "no rule says where this result may go"
        " (ResultOfDataIn for compute.output0 from {x} and y), so nobody may have it"
    )


def test_empty_requirement_without_origin_still_explains() -> None:
    """Without an origin the message is the same, minus the parenthesis."""
    assert unmet().explain() == "no rule says where this result may go, so nobody may have it"


def test_outcome_dict_has_requirement_origin_met_chain_and_explanation() -> None:
    """to_dict gives ids as sorted text, the origin, met, the chain as rule dicts, and the text."""
    outcome = RequirementOutcome(requirement(RESULTS, DATA, origin="asset x"), (IN_PUBLIC, GRANT))
    assert outcome.to_dict() == {
        "requirement": [DATA, RESULTS],
        "origin": "asset x",
        "met": True,
        "chain": [IN_PUBLIC.to_dict(), GRANT.to_dict()],
        "explanation": outcome.explain(),
    }
    denied = unmet(RESULTS)
    assert denied.to_dict() == {
        "requirement": [RESULTS],
        "origin": "",
        "met": False,
        "chain": None,
        "explanation": f"no MayAccess for {RESULTS} or anything containing it",
    }
    json.dumps(outcome.to_dict())
    json.dumps(denied.to_dict())


# --- leaf decisions ---------------------------------------------------------------------


def test_denied_decision_reads_like_the_design_example() -> None:
    """`site2 may not access compute.output0: no MayAccess for ... or anything containing it`."""
    decision = Decision(False, "site2", "access", "compute.output0", (unmet(RESULTS),))
    assert not decision
    assert decision.headline() == "site2 may not access compute.output0"
    assert decision.failures() == [
        "site2 may not access compute.output0: no MayAccess for"
        " asset_collection:party1.example.org:results or anything containing it"
    ]


def test_allowed_decision_has_no_failures_and_shows_its_chains() -> None:
    """An allowed decision is truthy and explains each requirement by its chain."""
    decision = Decision(True, "site2", "access", "input", (met(IN_PUBLIC, GRANT),))
    assert decision
    assert decision.headline() == "site2 may access input"
    assert decision.failures() == []
    lines = decision.explain().splitlines()
    assert lines[0] == "site2 may access input"
    assert any(DATA in line and "requirement" in line for line in lines[1:])
    assert any(f"met by {IN_PUBLIC} -> {GRANT}" in line for line in lines[1:])


def test_denied_decision_lists_only_the_unmet_requirements() -> None:
    """Met requirements are not failures; every unmet one is, each on its own line."""
    decision = Decision(
        False, "site2", "access", "s.o", (met(GRANT), unmet(RESULTS), unmet(origin="o"))
    )
    assert decision.failures() == [
        f"site2 may not access s.o: no MayAccess for {RESULTS} or anything containing it",
        "site2 may not access s.o:"
        " no rule says where this result may go (o), so nobody may have it",
    ]
    explanation = decision.explain()
    assert explanation.splitlines()[0] == "site2 may not access s.o"
    assert f"no MayAccess for {RESULTS} or anything containing it" in explanation
    assert "no rule says where this result may go (o), so nobody may have it" in explanation


def test_denied_explanation_does_not_bury_the_reason_under_met_requirements() -> None:
    """Per Decision.explain's docstring, a denied decision shows only what failed."""
    decision = Decision(False, "site2", "access", "s.o", (met(IN_PUBLIC, GRANT), unmet(RESULTS)))
    assert str(GRANT) not in decision.explain()


def test_denied_composite_explains_only_its_denied_parts() -> None:
    """A denied job's explanation shows the denied parts, not the allowed ones."""
    explanation = _job_decision(False).explain()
    assert "site2 may not access compute.output0" in explanation
    assert "site1 may access input" not in explanation


def test_use_decision_uses_the_use_verb() -> None:
    """Decisions about a party using an item read `party may not use item: no MayUse ...`."""
    decision = Decision(False, "party:p:p1", "use", "result", (unmet(RESULTS, verb="MayUse"),))
    assert decision.failures() == [
        f"party:p:p1 may not use result: no MayUse for {RESULTS} or anything containing it"
    ]


def test_note_only_denial_is_reported_as_its_failure() -> None:
    """A denial with no requirements to show still says why, from its note."""
    decision = Decision(False, "site:p:s", "run", "step", note="site has no runner")
    assert decision.failures() == ["site:p:s may not run step: site has no runner"]
    assert decision.explain().splitlines()[0] == "site:p:s may not run step (site has no runner)"


# --- composite decisions ----------------------------------------------------------------


def _job_decision(second_allowed: bool) -> Decision:
    first = Decision(True, "site1", "access", "input", (met(GRANT),))
    second = Decision(
        second_allowed,
        "site2",
        "access",
        "compute.output0",
        (met(GRANT),) if second_allowed else (unmet(RESULTS),),
    )
    step = Decision.all_of("site2", "run", "compute", (first, second), note="planned")
    return Decision.all_of("party:p:p1", "run", "job", (step,))


def test_composite_is_allowed_iff_every_part_is() -> None:
    """all_of combines parts; a single denied part denies the whole."""
    assert _job_decision(True).allowed
    assert not _job_decision(False).allowed
    assert Decision.all_of("x", "do", "nothing", ()).allowed


def test_composite_failures_collect_the_denied_leaves() -> None:
    """The failures of a job are those of its denied leaves, with their own headlines."""
    assert _job_decision(False).failures() == [
        f"site2 may not access compute.output0: no MayAccess for {RESULTS}"
        " or anything containing it"
    ]
    assert _job_decision(True).failures() == []


def test_allowed_composite_explains_every_part_indented() -> None:
    """An allowed composite shows each part's explanation, indented under its headline."""
    lines = _job_decision(True).explain().splitlines()
    assert lines[0] == "party:p:p1 may run job"
    assert lines[1] == "  site2 may run compute (planned)"
    assert "    site1 may access input" in lines
    assert "    site2 may access compute.output0" in lines


def test_decision_dict_shape() -> None:
    """to_dict is JSON: allowed, subject, action, target, explanation; note/requirements/parts
    only when present."""
    leaf = Decision(False, "site2", "access", "compute.output0", (unmet(RESULTS),))
    assert leaf.to_dict() == {
        "allowed": False,
        "subject": "site2",
        "action": "access",
        "target": "compute.output0",
        "explanation": "site2 may not access compute.output0",
        "requirements": [unmet(RESULTS).to_dict()],
    }
    composite = _job_decision(False).to_dict()
    assert set(composite) == {"allowed", "subject", "action", "target", "explanation", "parts"}
    step = composite["parts"][0]
    assert step["note"] == "planned"
    assert [part["allowed"] for part in step["parts"]] == [True, False]
    assert step["parts"][1]["requirements"][0]["explanation"] == (
        f"no MayAccess for {RESULTS} or anything containing it"
    )
    assert json.loads(json.dumps(composite)) == composite


def test_decisions_are_values() -> None:
    """Equal decisions compare equal, so they can be cached and compared in tests."""
    assert _job_decision(False) == _job_decision(False)
    assert _job_decision(False) != _job_decision(True)
