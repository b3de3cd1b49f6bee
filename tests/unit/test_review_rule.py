"""The ReleaseReviewedBy rule (reference: Rules): its optional checks, parsed strictly,
written canonically, signed by the asset's owner and indexed by asset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.identifiers import AssetCollectionId, PartyId
from mahiru.model.registry import PartyRecord
from mahiru.model.serialization import load_yaml_text
from mahiru.pki import public_key_pem
from mahiru.policy.review_checks import MinCount, ReviewChecks
from mahiru.policy.rules import RULE_SHAPES, RULE_TYPES, ReleaseReviewedBy, rule_from_dict
from mahiru.policy.signing import SignedRule, sign_rule
from mahiru.policy.store import RuleStore
from mahiru.services.site import KeyRing

BASE: dict[str, Any] = {
    "type": "ReleaseReviewedBy",
    "asset": "asset_collection:p2.org:results",
    "reviewer": "party_category:p2.org:stewards",
}
CHECKS: dict[str, Any] = {
    "max_bytes": 1_000_000,
    "file_types": ["csv", "json"],
    "min_count": {"column": "n", "at_least": 10},
}
SCHEMA = RULE_SHAPES["ReleaseReviewedBy"].json_schema()


def with_checks(checks: Any) -> dict[str, Any]:
    return {**BASE, "checks": checks}


def test_a_rule_without_checks_has_none_and_writes_none() -> None:
    rule = rule_from_dict(BASE)
    assert isinstance(rule, ReleaseReviewedBy)
    assert rule.checks == ReviewChecks() and not rule.checks
    assert rule.to_dict() == BASE
    assert "checks" not in str(rule)


def test_empty_checks_are_left_out_so_the_rule_signs_the_same_bytes() -> None:
    """`checks: {}` declares nothing: the same rule, bytes and id as without it."""
    plain, empty = rule_from_dict(BASE), rule_from_dict(with_checks({}))
    assert empty == plain
    assert empty.to_dict() == BASE
    assert empty.canonical_bytes() == plain.canonical_bytes()
    assert empty.rule_id() == plain.rule_id()


def test_checks_round_trip_and_are_signed() -> None:
    rule = rule_from_dict(with_checks(CHECKS))
    assert isinstance(rule, ReleaseReviewedBy)
    assert rule.checks == ReviewChecks(1_000_000, ("csv", "json"), MinCount("n", 10))
    assert rule.to_dict() == with_checks(CHECKS)
    assert rule_from_dict(json.loads(json.dumps(rule.to_dict()))) == rule
    assert b'"checks":{"file_types":["csv","json"],"max_bytes":1000000,' in rule.canonical_bytes()
    assert rule.rule_id() != rule_from_dict(BASE).rule_id()
    assert 'checks={"file_types":["csv","json"]' in str(rule)


def test_file_types_in_another_order_make_the_same_rule() -> None:
    """The canonical form sorts file types, so the order they were written in is not signed."""
    one = rule_from_dict(with_checks({"file_types": ["json", "csv", "txt"]}))
    other = rule_from_dict(with_checks({"file_types": ["txt", "csv", "json"]}))
    assert one == other and one.canonical_bytes() == other.canonical_bytes()
    assert one.to_dict()["checks"] == {"file_types": ["csv", "json", "txt"]}


@pytest.mark.parametrize(
    "checks",
    [{"max_bytes": 1}, {"file_types": ["csv"]}, {"min_count": {"column": "count", "at_least": 1}}],
)
def test_each_check_may_be_declared_alone(checks: dict[str, Any]) -> None:
    rule = rule_from_dict(with_checks(checks))
    assert rule.to_dict()["checks"] == checks
    jsonschema_rs.validate(SCHEMA, rule.to_dict())


BAD_CHECKS = [
    (None, "ReleaseReviewedBy checks must be a mapping"),
    (["max_bytes"], "ReleaseReviewedBy checks must be a mapping"),
    ({"max_size": 1}, "ReleaseReviewedBy checks: unknown field(s) max_size"),
    ({"max_bytes": 0}, "'max_bytes' must be a positive integer"),
    ({"max_bytes": -5}, "'max_bytes' must be a positive integer"),
    ({"max_bytes": True}, "'max_bytes' must be a positive integer"),
    ({"max_bytes": "10"}, "'max_bytes' must be a positive integer"),
    ({"max_bytes": 1.5}, "'max_bytes' must be a positive integer"),
    ({"file_types": "csv"}, "'file_types' must be a non-empty list"),
    ({"file_types": []}, "'file_types' must be a non-empty list"),
    ({"file_types": ["CSV"]}, "'CSV' is not a lower-case file extension"),
    ({"file_types": [".csv"]}, "'.csv' is not a lower-case file extension"),
    ({"file_types": ["tar.gz"]}, "'tar.gz' is not a lower-case file extension"),
    ({"file_types": [7]}, "7 is not a lower-case file extension"),
    ({"file_types": ["csv", "csv"]}, "'file_types' lists an extension twice"),
    ({"min_count": 10}, "ReleaseReviewedBy checks.min_count must be a mapping"),
    ({"min_count": {"column": "n"}}, "ReleaseReviewedBy checks.min_count: missing at_least"),
    (
        {"min_count": {"column": "n", "at_least": 1, "at_most": 5}},
        "ReleaseReviewedBy checks.min_count: unknown field(s) at_most",
    ),
    ({"min_count": {"column": "", "at_least": 1}}, "'column' must be non-empty text"),
    ({"min_count": {"column": 3, "at_least": 1}}, "'column' must be non-empty text"),
    ({"min_count": {"column": "n", "at_least": 0}}, "'at_least' must be a positive integer"),
    ({"min_count": {"column": "n", "at_least": "5"}}, "'at_least' must be a positive integer"),
]


@pytest.mark.parametrize(("checks", "message"), BAD_CHECKS)
def test_bad_checks_are_refused_naming_the_field(checks: Any, message: str) -> None:
    """Unknown keys and wrong types are InvalidInput naming the field, with the rule."""
    data = with_checks(checks)
    with pytest.raises(InvalidInput) as error:
        rule_from_dict(data)
    assert message in error.value.message
    assert error.value.message.startswith("ReleaseReviewedBy checks")
    assert error.value.details == {"rule": data}


@pytest.mark.parametrize(("checks", "message"), BAD_CHECKS)
def test_the_schema_refuses_what_the_parser_refuses(checks: Any, message: str) -> None:
    """The documented JSON Schema of the rule says as much about checks as the parser."""
    assert jsonschema_rs.is_valid(SCHEMA, with_checks(CHECKS))
    assert not jsonschema_rs.is_valid(SCHEMA, with_checks(checks)), message


@pytest.mark.parametrize(
    "make",
    [
        lambda: ReviewChecks(max_bytes=0),
        lambda: ReviewChecks(file_types=("CSV",)),
        lambda: ReviewChecks(file_types=()),
        lambda: MinCount("", 1),
        lambda: MinCount("n", 0),
        lambda: ReleaseReviewedBy(
            AssetCollectionId("p2.org", "r"),
            PartyId("p2.org", "alice"),
            {"max_bytes": 1},  # type: ignore[arg-type]
        ),
    ],
)
def test_constructing_in_code_applies_the_same_checks(make: Any) -> None:
    with pytest.raises(InvalidInput):
        make()


@pytest.mark.parametrize("reviewer", ["*", "site:p2.org:site2", "asset_collection:p2.org:x"])
def test_the_reviewer_is_a_party_or_party_category(reviewer: str) -> None:
    with pytest.raises(InvalidInput, match="field 'reviewer'"):
        rule_from_dict({**BASE, "reviewer": reviewer})


def test_the_asset_owner_signs_and_a_signed_rule_with_checks_round_trips() -> None:
    """Signed by the owner of the asset's namespace; the reviewer's owner cannot sign it."""
    owner, reviewer_owner = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    rule = rule_from_dict(
        {
            **with_checks(CHECKS),
            "asset": "asset:p2.org:data:p1.org:site1",
            "reviewer": "party:p3.org:r",
        }
    )
    assert rule.signer_namespace() == "p2.org"
    ring = KeyRing.of(
        [
            PartyRecord(PartyId("p2.org", "p2"), "p2.org", public_key_pem(owner), "unused"),
            PartyRecord(PartyId("p3.org", "p3"), "p3.org", public_key_pem(reviewer_owner), "x"),
        ]
    )
    signed = sign_rule(rule, owner)
    again = SignedRule.from_dict(json.loads(json.dumps(signed.to_dict())))
    assert again == signed
    ring.check_rule(again)
    with pytest.raises(InvalidSignature):
        ring.check_rule(sign_rule(rule, reviewer_owner))
    # Dropping the checks from a signed rule voids its signature.
    bare = {k: v for k, v in signed.to_dict().items() if k != "checks"}
    with pytest.raises(InvalidSignature):
        ring.check_rule(SignedRule.from_dict(bare))


def test_the_store_indexes_review_rules_by_asset() -> None:
    rule = rule_from_dict(with_checks(CHECKS))
    other = rule_from_dict({**BASE, "asset": "asset_collection:p2.org:other"})
    store = RuleStore([rule, other])
    assert store.indexed(ReleaseReviewedBy, AssetCollectionId("p2.org", "results")) == [rule]
    store.remove(rule)
    assert store.indexed(ReleaseReviewedBy, AssetCollectionId("p2.org", "results")) == []


def test_the_reference_examples_parse_one_rule_of_each_type() -> None:
    """docs/reference.md, "Rules": its example block holds one valid rule of every type,
    the review rule with every check."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "reference.md").read_text()
    block = text.split("One example of each, with what it means:", 1)[1]
    block = block.split("```yaml\n", 1)[1].split("```", 1)[0]
    rules = [rule_from_dict(data) for data in load_yaml_text(block, "the example")["rules"]]
    assert sorted(rule.type_name for rule in rules) == sorted(RULE_TYPES)
    (review,) = [rule for rule in rules if isinstance(rule, ReleaseReviewedBy)]
    assert review.checks == ReviewChecks(1_000_000, ("csv", "json"), MinCount("n", 10))
