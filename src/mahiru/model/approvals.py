"""Signed approvals and releases: what a result's chain says about its reviewed releases.

When a reviewer approves the release of a result (`Review`), the site that holds the
review signs an `ApprovalStatement` with its TLS key: which review, result, image digest
and receiving party, the ReleaseReviewedBy rule that asked for it (its id and its dict
form), who decided for which party, when, why, whether over a failed check, and the
checks' outcomes. When the result then leaves, the site that made it signs a
`ReleaseStatement` naming the review rules that covered that release, and the chain
carries both with the signed rules (`ReleaseEntry`), so a verifier holding the
registry's records sees, offline, who approved each release and that none is missing.

Each statement has one written form, as receipts do: its signature covers the
canonical JSON bytes of its fields, its `type` names its kind and version (so no
statement passes for a receipt or another kind), and a document not written the way
`to_dict` writes it is refused as it is parsed. This module is pure: rules travel as
their plain dict forms, and checking their signatures is handed in
(`model/release_checks.py`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model import review_decisions
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import PartyId, ResultId, SiteId
from mahiru.model.reviews import Review, ReviewState
from mahiru.model.statements import HEX as _HEX
from mahiru.model.statements import b64 as _b64
from mahiru.model.statements import canonical as _canonical
from mahiru.model.statements import digest_field as _digest
from mahiru.model.statements import exact as _exact
from mahiru.model.statements import identifier_field as _identifier
from mahiru.model.statements import split_signature as _split_signature
from mahiru.model.statements import time_field as _time

#: The kind and version of each statement, in its `type` field.
APPROVAL_TYPE = "mahiru.approval/1"
RELEASE_TYPE = "mahiru.release/1"


def rule_id_of(rule: Mapping[str, Any]) -> str:
    """The id of a rule from its dict form (without signature): the hex sha256 of its
    canonical bytes, as `Rule.rule_id` computes it."""
    return hashlib.sha256(canonical_json(dict(rule))).hexdigest()


@dataclass(frozen=True, slots=True)
class ApprovalStatement:
    """What a reviewing `site` signs when `decided_by` (for `decided_by_party`) approved
    review `review_id`: releasing `result` (image `digest`) to `receiving_party`, as rule
    `rule_id` (`rule`, its dict form, naming `reviewer`) asked."""

    review_id: str
    result: ResultId
    digest: str
    receiving_party: PartyId
    rule_id: str
    rule: Mapping[str, Any]
    reviewer: str
    site: SiteId
    decided_by: str
    decided_by_party: PartyId
    decided_at: datetime
    reason: str
    override: bool
    checks: tuple[Mapping[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what is signed, in canonical form)."""
        return {
            "type": APPROVAL_TYPE,
            **review_decisions.written(self),
            "rule": dict(self.rule),
            "override": self.override,
            "checks": [dict(check) for check in self.checks],
        }

    def canonical_bytes(self) -> bytes:
        """The bytes the reviewing site signs."""
        return canonical_json(self.to_dict())

    @classmethod
    def of_review(cls, review: Review, site: SiteId, rule: Mapping[str, Any]) -> ApprovalStatement:
        """The statement `site` signs of the approved `review`, whose rule's dict form is
        `rule`; InvalidInput if `review` is not approved or `rule` has another id."""
        shared = review_decisions.of_review(review, site, ReviewState.APPROVED)
        if rule_id_of(rule) != review.rule_id:
            raise InvalidInput(f"the rule given for review {review.review_id} is another rule")
        return cls(**shared, rule=dict(rule), override=review.override, checks=review.checks)

    @classmethod
    def from_dict(cls, data: object) -> ApprovalStatement:
        """Parse the JSON form strictly; InvalidInput naming what is wrong."""
        what = "approval"
        d = _exact(data, _APPROVAL_KEYS, what, APPROVAL_TYPE)
        rule, checks = d["rule"], d["checks"]
        if not isinstance(rule, Mapping):
            raise InvalidInput(f"{what} field 'rule' must be the rule's dict form")
        if not isinstance(checks, list) or not all(isinstance(c, Mapping) for c in checks):
            raise InvalidInput(f"{what} field 'checks' must be a list of check outcomes")
        override = d["override"]
        if not isinstance(override, bool):
            raise InvalidInput(f"{what} field 'override' must be true or false")
        statement = cls(
            **review_decisions.read(d, what),
            rule=dict(rule),
            override=override,
            checks=tuple(dict(c) for c in checks),
        )
        return _canonical(statement, d, what)


@dataclass(frozen=True, slots=True)
class ReleaseStatement:
    """What the `site` that made `result` (image `digest`) signs as it releases it to
    `receiving_party` at `at`: the ids of the review rules that covered this release
    (each needs an approval beside it)."""

    result: ResultId
    digest: str
    receiving_party: PartyId
    site: SiteId
    review_rules: tuple[str, ...]
    at: datetime

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (what is signed, in canonical form)."""
        return {
            "type": RELEASE_TYPE,
            "result": str(self.result),
            "digest": self.digest,
            "receiving_party": str(self.receiving_party),
            "site": str(self.site),
            "review_rules": list(self.review_rules),
            "at": self.at.isoformat(),
        }

    def canonical_bytes(self) -> bytes:
        """The bytes the releasing site signs."""
        return canonical_json(self.to_dict())

    @classmethod
    def of(
        cls,
        result: ResultId,
        digest: str,
        receiving_party: PartyId,
        site: SiteId,
        review_rules: Sequence[str],
        at: datetime,
    ) -> ReleaseStatement:
        """A release statement in canonical form: rule ids sorted, each once."""
        return cls(result, digest, receiving_party, site, tuple(sorted(set(review_rules))), at)

    @classmethod
    def from_dict(cls, data: object) -> ReleaseStatement:
        """Parse the JSON form strictly; InvalidInput naming what is wrong."""
        what = "release"
        d = _exact(data, _RELEASE_KEYS, what, RELEASE_TYPE)
        statement = cls.of(
            _identifier(ResultId, d, "result", what),
            _digest(d, "digest", what),
            _identifier(PartyId, d, "receiving_party", what),
            _identifier(SiteId, d, "site", what),
            rule_ids(d["review_rules"], f"{what} field 'review_rules'"),
            _time(d, "at", what),
        )
        return _canonical(statement, d, what)


@dataclass(frozen=True, slots=True)
class SignedApproval:
    """An approval with the reviewing site's signature over its canonical bytes."""

    statement: ApprovalStatement
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the statement's fields plus base64 `signature`."""
        return {**self.statement.to_dict(), "signature": _b64(self.signature)}

    @classmethod
    def from_dict(cls, data: object) -> SignedApproval:
        """Parse the JSON form strictly."""
        body, signature = _split_signature(data, "approval")
        return cls(ApprovalStatement.from_dict(body), signature)


@dataclass(frozen=True, slots=True)
class SignedRelease:
    """A release with the signature of the site that made the result."""

    statement: ReleaseStatement
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: the statement's fields plus base64 `signature`."""
        return {**self.statement.to_dict(), "signature": _b64(self.signature)}

    @classmethod
    def from_dict(cls, data: object) -> SignedRelease:
        """Parse the JSON form strictly."""
        body, signature = _split_signature(data, "release")
        return cls(ReleaseStatement.from_dict(body), signature)


@dataclass(frozen=True, slots=True)
class ReleaseEntry:
    """One reviewed release in a result's chain: the producer's signed release, the
    signed review rules it lists (their dict forms with the owners' signatures) and the
    signed approval of each."""

    release: SignedRelease
    rules: tuple[Mapping[str, Any], ...]
    approvals: tuple[SignedApproval, ...]

    @property
    def key(self) -> tuple[ResultId, PartyId]:
        """The release it records: which result, to which party."""
        statement = self.release.statement
        return statement.result, statement.receiving_party

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: `release`, `rules` (by id) and `approvals` (by rule id)."""
        rules = sorted(self.rules, key=lambda r: rule_id_of(_unsigned(r)))
        approvals = sorted(self.approvals, key=lambda a: a.statement.rule_id)
        return {
            "release": self.release.to_dict(),
            "rules": [dict(rule) for rule in rules],
            "approvals": [approval.to_dict() for approval in approvals],
        }

    @classmethod
    def from_dict(cls, data: object) -> ReleaseEntry:
        """Parse the JSON form strictly."""
        d = _exact(data, {"release", "rules", "approvals"}, "release entry")
        rules, approvals = d["rules"], d["approvals"]
        if not isinstance(rules, list) or not all(
            isinstance(r, Mapping) and isinstance(r.get("signature"), str) for r in rules
        ):
            raise InvalidInput("a release entry's 'rules' is a list of signed rules")
        if not isinstance(approvals, list) or len(approvals) > 100:
            raise InvalidInput("a release entry's 'approvals' is a list of signed approvals")
        entry = cls(
            SignedRelease.from_dict(d["release"]),
            tuple(dict(r) for r in rules),
            tuple(SignedApproval.from_dict(a) for a in approvals),
        )
        if entry.to_dict() != d:
            raise InvalidInput(
                "a release entry must list its rules by id and its approvals by rule id"
            )
        return entry


def rule_ids(value: object, what: str) -> list[str]:
    """A list of rule ids (hex sha256), strictly; InvalidInput naming `what` otherwise."""
    if not isinstance(value, list) or not all(
        isinstance(r, str) and _HEX.fullmatch(r) for r in value
    ):
        raise InvalidInput(f"{what} must be a list of rule ids")
    return list(value)


def signed_rule_id(signed_rule: Mapping[str, Any]) -> str:
    """The id of a signed rule's dict form (its fields without the signature)."""
    return rule_id_of(_unsigned(signed_rule))


def _unsigned(signed_rule: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in signed_rule.items() if k != "signature"}


_APPROVAL_KEYS = {f.name for f in fields(ApprovalStatement)} | {"type"}
_RELEASE_KEYS = {f.name for f in fields(ReleaseStatement)} | {"type"}
