"""Checking signed rules and revocations with the keys of the registry replica (reference: Rules).

A rule is valid only if its signature verifies with the main key of the party
that owns its signer namespace. When it does not, the reason says which of
three things went wrong, so an operator can act on it: the namespace is owned
by nobody, the rule was signed by another registered party, or the signature
is simply bad.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registry import ChangeAction, PartyRecord
from mahiru.model.release_checks import ReleaseTrust
from mahiru.pki import parse_party_public_key
from mahiru.policy.changes import RuleChange
from mahiru.policy.signing import Revocation, SignedRule


class Rejection(Enum):
    """Why a rule or revocation was refused."""

    UNKNOWN_NAMESPACE = "unknown namespace"
    WRONG_SIGNER = "signed by the wrong party"
    BAD_SIGNATURE = "bad signature"


@dataclass(frozen=True, slots=True)
class _Owner:
    party: PartyId
    key: Ed25519PublicKey


class KeyRing:
    """The main keys of the registered parties, by the namespace each owns.

    A snapshot: build one per batch of rules (`KeyRing.of(replica.parties())`)
    so checking many rules costs one database read.
    """

    def __init__(self, owners: Mapping[str, _Owner]) -> None:
        self._owners = dict(owners)

    @classmethod
    def of(cls, parties: Iterable[PartyRecord]) -> KeyRing:
        """The key ring of these parties; a party whose key does not parse is left out."""
        owners: dict[str, _Owner] = {}
        for party in parties:
            try:
                key = parse_party_public_key(party.public_key_pem, source=f"key of {party.id}")
            except InvalidInput:
                continue  # its rules will be rejected as having an unknown namespace
            owners[party.namespace] = _Owner(party.id, key)
        return cls(owners)

    def __len__(self) -> int:
        return len(self._owners)

    def check_rule(self, signed: SignedRule) -> None:
        """Raise InvalidSignature, with the reason, unless the namespace owner signed `signed`."""
        self._check(
            signed.rule.signer_namespace(),
            signed.signature,
            signed.rule.canonical_bytes(),
            what=str(signed.rule),
            rule_id=signed.rule_id,
        )

    def check_revocation(self, revocation: Revocation) -> None:
        """Raise InvalidSignature, with the reason, unless the namespace owner signed it."""
        self._check(
            revocation.namespace,
            revocation.signature,
            revocation.canonical_bytes(),
            what=f"revocation of rule {revocation.rule_id}",
            rule_id=revocation.rule_id,
        )

    def check_change(self, change: RuleChange) -> None:
        """Check the rule or revocation a peer's rule change carries."""
        if change.action is ChangeAction.ADDED and change.rule is not None:
            self.check_rule(change.rule)
        elif change.action is ChangeAction.REVOKED and change.revocation is not None:
            self.check_revocation(change.revocation)
        else:
            raise InvalidInput(f"rule change {change.version} carries no rule or revocation")

    def _check(
        self, namespace: str, signature: bytes, data: bytes, *, what: str, rule_id: str
    ) -> None:
        owner = self._owners.get(namespace)
        details = {"rule_id": rule_id, "namespace": namespace}
        if owner is None:
            hint = "" if self._owners else " (no parties are known yet: is the registry reachable?)"
            raise InvalidSignature(
                f"{Rejection.UNKNOWN_NAMESPACE.value}: {what}: namespace {namespace!r}"
                f" is not owned by any registered party{hint}",
                {**details, "reason": Rejection.UNKNOWN_NAMESPACE.name.lower()},
            )
        if _verifies(owner.key, signature, data):
            return
        signer = next(
            (
                other.party
                for other in self._owners.values()
                if other is not owner and _verifies(other.key, signature, data)
            ),
            None,
        )
        if signer is not None:
            raise InvalidSignature(
                f"{Rejection.WRONG_SIGNER.value}: {what}: signed by {signer}, but namespace"
                f" {namespace!r} is owned by {owner.party}",
                {
                    **details,
                    "reason": Rejection.WRONG_SIGNER.name.lower(),
                    "signer": str(signer),
                    "owner": str(owner.party),
                },
            )
        raise InvalidSignature(
            f"{Rejection.BAD_SIGNATURE.value}: {what}: the signature does not verify with the"
            f" main key of {owner.party}, owner of namespace {namespace!r}",
            {**details, "reason": Rejection.BAD_SIGNATURE.name.lower(), "owner": str(owner.party)},
        )


def _verifies(key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    try:
        key.verify(signature, data)
    except _CryptoInvalidSignature:
        return False
    return True


def release_trust(
    parties: Callable[[], Iterable[PartyRecord]], owner_of: Callable[[SiteId], PartyId | None]
) -> ReleaseTrust:
    """What checking a chain's reviewed releases needs: the rules' signatures checked
    against the main keys of `parties()` (read once, and only if a chain has a rule to
    check: most chains have none), and the registered sites' owners (`owner_of`)."""
    ring: list[KeyRing] = []

    def check_rule(rule: Mapping[str, Any]) -> None:
        if not ring:
            ring.append(KeyRing.of(parties()))
        ring[0].check_rule(SignedRule.from_dict(rule))

    return ReleaseTrust(check_rule, owner_of)
