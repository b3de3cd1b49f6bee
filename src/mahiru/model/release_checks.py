"""Checking the reviewed releases a result's chain carries: who approved each, and that
none is missing.

A result whose receipt names review rules (`Receipt.review_rules`, signed by the site
that made it) was covered by a ReleaseReviewedBy rule, so every release of it out of
that site must be in the chain: the producer's signed release to the receiving party,
the signed rules it lists and the signed approval of each. Which releases are needed
follows from the chain: a result a step ran on at another site went to that site's
owner; the result itself went to `receiver` (when the verifier knows who that is, at
least to someone otherwise). Stripping a release, a rule or an approval therefore
breaks a signature or leaves a need unmet; a rule added after the result was made is
listed only by the release, so a chain stripped of such a release is not told apart
from one of a result released before the rule existed (docs/receipts.md).

Pure: signatures are checked by the functions handed in (`ReleaseTrust`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.approvals import ApprovalStatement, ReleaseEntry, signed_rule_id
from mahiru.model.identifiers import PartyId, ResultId, SiteId, parse_identifier
from mahiru.model.receipts import Receipt, ReceiptChain, SignatureCheck, verify_chain


@dataclass(frozen=True, slots=True)
class ReleaseTrust:
    """What checking releases needs from the registry's records, besides site keys:
    `check_rule` raises InvalidSignature unless a signed rule's dict form is signed by
    the owner of its namespace; `owner_of` is a registered site's owner (None: unknown)."""

    check_rule: Callable[[Mapping[str, Any]], None]
    owner_of: Callable[[SiteId], PartyId | None]


def verify_result(
    result: ResultId,
    digest: str,
    chain: ReceiptChain,
    check: SignatureCheck,
    trust: ReleaseTrust,
    *,
    released: bool = False,
    receiver: PartyId | None = None,
) -> list[str]:
    """`verify_chain`, then `verify_releases`: the lines of both."""
    lines = verify_chain(result, digest, chain, check)
    return lines + verify_releases(
        result, chain, check, trust, released=released, receiver=receiver
    )


def verify_releases(
    result: ResultId,
    chain: ReceiptChain,
    check: SignatureCheck,
    trust: ReleaseTrust,
    *,
    released: bool = False,
    receiver: PartyId | None = None,
) -> list[str]:
    """Check every release `chain` carries, and that it carries each one needed; the
    lines saying who approved what. Run on a chain `verify_chain` accepted for `result`.

    With `released`, `result` itself left the site that made it, so if it was made
    under review rules its release must be in the chain too: to `receiver`, if given,
    else to anyone (a verifier that does not know who received it). Without, the chain
    is the producing site's own, before any release of `result`.

    InvalidSignature for a forged signature; InvalidInput, naming the result, for a
    release or approval of something else, or a needed one missing.
    """
    receipts = _reached(result, chain)
    releases = {entry.key: entry for entry in chain.releases}
    lines: list[str] = []
    for entry in chain.releases:
        of, party = entry.key
        receipt = receipts.get(of)
        if receipt is None:
            raise InvalidInput(
                f"the chain carries a release of {of}, which {result} was not made from",
                {"result": str(of)},
            )
        lines.extend(_check_entry(entry, receipt, check, trust))
    for receipt in receipts.values():
        if not receipt.review_rules:
            continue
        needed = _receivers(receipt, receipts, trust)
        if receipt.result == result and released and receiver is not None:
            needed.add(receiver)
        rules = ", ".join(r[:12] for r in receipt.review_rules)
        for party in sorted(needed, key=str):
            if (receipt.result, party) not in releases:
                raise InvalidInput(
                    f"{receipt.result} was made under review rule(s) {rules} (its receipt"
                    f" says so), but the chain carries no approved release of it to {party}",
                    {"result": str(receipt.result), "party": str(party)},
                )
        if receipt.result == result and released and not any(key[0] == result for key in releases):
            raise InvalidInput(
                f"{result} was made under review rule(s) {rules} (its receipt says so), but"
                " the chain carries no approved release of it",
                {"result": str(result)},
            )
    return lines


def _reached(result: ResultId, chain: ReceiptChain) -> dict[ResultId, Receipt]:
    """The receipts `result`'s derivation reaches (as `verify_chain` walked them)."""
    reached: dict[ResultId, Receipt] = {}
    pending = [result]
    while pending:
        signed = chain.of(pending.pop())
        if signed is None or signed.receipt.result in reached:
            continue
        reached[signed.receipt.result] = signed.receipt
        for entry in signed.receipt.inputs:
            if entry.id.startswith("result:"):
                parsed = parse_identifier(entry.id, ("result",))
                assert isinstance(parsed, ResultId)
                pending.append(parsed)
    return reached


def _receivers(
    made: Receipt, receipts: Mapping[ResultId, Receipt], trust: ReleaseTrust
) -> set[PartyId]:
    """The parties `made` was released to within the chain: the owner of each other
    site whose step ran on it."""
    parties: set[PartyId] = set()
    for consumer in receipts.values():
        if consumer.site == made.site or not any(
            entry.id == str(made.result) for entry in consumer.inputs
        ):
            continue
        owner = trust.owner_of(consumer.site)
        if owner is None:
            raise InvalidInput(
                f"{consumer.site} is not a registered site", {"site": str(consumer.site)}
            )
        parties.add(owner)
    return parties


def _check_entry(
    entry: ReleaseEntry, receipt: Receipt, check: SignatureCheck, trust: ReleaseTrust
) -> list[str]:
    release = entry.release.statement
    result, party = entry.key
    about = {"result": str(result), "party": str(party)}
    if release.site != receipt.site or release.digest != receipt.digest:
        raise InvalidInput(
            f"the release of {result} to {party} is by {release.site} of image"
            f" sha256:{release.digest}, but its receipt names {receipt.site} and"
            f" sha256:{receipt.digest}",
            about,
        )
    check(release.site, release.canonical_bytes(), entry.release.signature)
    rules = {signed_rule_id(rule): rule for rule in entry.rules}
    approvals = {approval.statement.rule_id: approval for approval in entry.approvals}
    listed = set(release.review_rules)
    for extra in sorted((set(rules) | set(approvals)) - listed):
        raise InvalidInput(
            f"the release of {result} to {party} carries rule {extra[:12]} or its approval,"
            " which the release does not list",
            about,
        )
    lines = [
        f"{result}: released to {party} by {release.site} at {release.at.isoformat()},"
        f" under {len(listed)} review rule(s), signed by it"
    ]
    for rule_id in release.review_rules:
        rule, approval = rules.get(rule_id), approvals.get(rule_id)
        if rule is None or approval is None:
            missing = "the rule" if rule is None else "its approval"
            raise InvalidInput(
                f"the release of {result} to {party} lists review rule {rule_id[:12]} but"
                f" not {missing}: a covered result lacks its approval",
                {**about, "rule_id": rule_id},
            )
        if rule.get("type") != "ReleaseReviewedBy":
            raise InvalidInput(f"rule {rule_id[:12]} is no ReleaseReviewedBy rule", about)
        trust.check_rule(rule)
        statement = approval.statement
        _check_approval(statement, release.digest, result, party, rule)
        check(statement.site, statement.canonical_bytes(), approval.signature)
        _check_approver(statement, trust)
        lines.append("    " + describe_approval(statement))
    return lines


def _check_approval(
    statement: ApprovalStatement,
    digest: str,
    result: ResultId,
    party: PartyId,
    rule: Mapping[str, Any],
) -> None:
    unsigned = {k: v for k, v in rule.items() if k != "signature"}
    wrong = [
        what
        for what, ok in (
            (f"result {statement.result}", statement.result == result),
            (f"image sha256:{statement.digest}", statement.digest == digest),
            (f"receiving party {statement.receiving_party}", statement.receiving_party == party),
            ("another form of the rule", statement.rule == unsigned),
            (f"reviewer {statement.reviewer}", statement.reviewer == rule.get("reviewer")),
        )
        if not ok
    ]
    if wrong:
        raise InvalidInput(
            f"the approval {statement.review_id} in the release of {result} to {party} is"
            f" for {', '.join(wrong)}, not for this release",
            {"result": str(result), "party": str(party), "review_id": statement.review_id},
        )


def _check_approver(statement: ApprovalStatement, trust: ReleaseTrust) -> None:
    """The approving site must be one of the deciding party, the person one of its
    people, and the party the rule's reviewer (or, for a category, the site's policy
    said it is in it, which the verifier cannot see offline)."""
    owner = trust.owner_of(statement.site)
    about = {"review_id": statement.review_id, "site": str(statement.site)}
    if owner != statement.decided_by_party:
        raise InvalidInput(
            f"approval {statement.review_id} is signed by {statement.site}, a site of"
            f" {owner}, not of the deciding party {statement.decided_by_party}",
            about,
        )
    if not statement.decided_by.endswith(f"@{statement.decided_by_party}"):
        raise InvalidInput(
            f"approval {statement.review_id} names {statement.decided_by}, who is not of"
            f" {statement.decided_by_party}",
            about,
        )
    if statement.reviewer.startswith("party:") and statement.reviewer != str(
        statement.decided_by_party
    ):
        raise InvalidInput(
            f"approval {statement.review_id} was decided by {statement.decided_by_party},"
            f" but its rule names {statement.reviewer} as reviewer",
            about,
        )


def describe_approval(statement: ApprovalStatement) -> str:
    """One line: who approved, for which party, when, why, and any override."""
    override = ""
    if statement.override:
        failed = [str(c.get("check")) for c in statement.checks if not c.get("passed")]
        override = f" OVERRIDING failed check(s) {', '.join(failed)}"
    return (
        f"approved by {statement.decided_by} ({statement.decided_by_party}) at"
        f" {statement.decided_at.isoformat()}, review {statement.review_id} under rule"
        f" {statement.rule_id[:12]} (reviewer {statement.reviewer}), signed by"
        f" {statement.site}{override}: {statement.reason!r}"
    )
