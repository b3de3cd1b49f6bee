"""A site checks each rule against the registry's keys and says exactly why it refused one."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mahiru.errors import InvalidSignature
from mahiru.model.identifiers import PartyId
from mahiru.model.registry import PartyRecord
from mahiru.pki import public_key_pem
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import SignedRule, sign_revocation, sign_rule
from mahiru.services.site import KeyRing

KEY1 = Ed25519PrivateKey.generate()
KEY2 = Ed25519PrivateKey.generate()
RULE = rule_from_dict(
    {"type": "MayAccess", "site": "site:p2.org:site2", "asset": "asset:p1.org:data:p1.org:site1"}
)


def _party(name: str, namespace: str, key: Ed25519PrivateKey) -> PartyRecord:
    return PartyRecord(PartyId(namespace, name), namespace, public_key_pem(key), "unused")


KEYS = KeyRing.of([_party("p1", "p1.org", KEY1), _party("p2", "p2.org", KEY2)])


def _reason(signed: SignedRule) -> tuple[str, str]:
    with pytest.raises(InvalidSignature) as caught:
        KEYS.check_rule(signed)
    return caught.value.details["reason"], caught.value.message


def test_rule_signed_by_its_namespace_owner_is_accepted() -> None:
    """MayAccess is signed by the owner of the asset's namespace: p1."""
    KEYS.check_rule(sign_rule(RULE, KEY1))


def test_rule_signed_by_another_registered_party_names_the_signer() -> None:
    """A signature by p2's key is 'signed by the wrong party', naming both parties."""
    reason, message = _reason(sign_rule(RULE, KEY2))
    assert reason == "wrong_signer"
    assert "party:p2.org:p2" in message and "party:p1.org:p1" in message


def test_rule_with_a_broken_signature_is_a_bad_signature() -> None:
    """A signature no registered key made is a 'bad signature'."""
    signed = sign_rule(RULE, KEY1)
    reason, message = _reason(SignedRule(signed.rule, bytes(64)))
    assert reason == "bad_signature"
    assert message.startswith("bad signature")
    reason, _ = _reason(sign_rule(RULE, Ed25519PrivateKey.generate()))
    assert reason == "bad_signature"


def test_rule_for_a_namespace_nobody_owns_is_an_unknown_namespace() -> None:
    """A rule about a namespace without a registered owner cannot be valid."""
    rule = rule_from_dict(
        {"type": "MayAccess", "site": "site:p2.org:s", "asset": "asset:p9.org:d:p1.org:site1"}
    )
    reason, message = _reason(sign_rule(rule, KEY1))
    assert reason == "unknown_namespace"
    assert "'p9.org'" in message


def test_empty_key_ring_hints_at_the_registry() -> None:
    """Before the first registry sync, the refusal says why nothing is known."""
    with pytest.raises(InvalidSignature, match="is the registry reachable"):
        KeyRing.of([]).check_rule(sign_rule(RULE, KEY1))


def test_revocations_are_checked_like_rules() -> None:
    """Only the namespace owner's key makes a valid revocation."""
    KEYS.check_revocation(sign_revocation(RULE, KEY1))
    with pytest.raises(InvalidSignature, match="signed by the wrong party"):
        KEYS.check_revocation(sign_revocation(RULE, KEY2))


def test_a_party_with_an_unreadable_key_owns_nothing() -> None:
    """A garbled key in the registry makes that party's rules 'unknown namespace', not a crash."""
    ring = KeyRing.of([PartyRecord(PartyId("p1.org", "p1"), "p1.org", "garbage", "unused")])
    assert len(ring) == 0
    with pytest.raises(InvalidSignature, match="unknown namespace"):
        ring.check_rule(sign_rule(RULE, KEY1))
