"""Ed25519 signatures on rules and revocations, checked against the right owner's key.

Checked as a site checks them when they arrive: with the `KeyRing` of the registered parties.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.identifiers import PartyId
from mahiru.model.registry import PartyRecord
from mahiru.pki import public_key_pem
from mahiru.policy.rules import RULE_TYPES, Rule, rule_from_dict
from mahiru.policy.signing import Revocation, SignedRule, sign_revocation, sign_rule
from mahiru.services.site import KeyRing

#: One valid rule per type; each identifier field lives in its own namespace, named after it.
RULES: dict[str, dict[str, Any]] = {
    "InAssetCollection": {
        "asset": "asset:ns-asset:a:ns-site:s",
        "collection": "asset_collection:ns-collection:c",
    },
    "InAssetCategory": {
        "asset": "asset:ns-asset:a:ns-site:s",
        "category": "asset_category:ns-category:c",
    },
    "InPartyCategory": {
        "party": "party:ns-party:p",
        "category": "party_category:ns-category:c",
    },
    "InSiteCategory": {
        "site": "site:ns-site:s",
        "category": "site_category:ns-category:c",
    },
    "MayAccess": {"site": "site:ns-site:s", "asset": "asset_collection:ns-asset:c"},
    "MayUse": {
        "party": "party_category:ns-party:c",
        "asset": "asset:ns-asset:a:ns-site:s",
        "conditions": "research only",
    },
    "ResultOfDataIn": {
        "data": "asset:ns-data:d:ns-site:s",
        "compute": "asset_category:ns-compute:c",
        "output": "*",
        "collection": "asset_collection:ns-collection:c",
    },
    "ResultOfComputeIn": {
        "data": "asset_category:ns-data:d",
        "compute": "asset:ns-compute:k:ns-site:s",
        "output": "out",
        "collection": "asset_collection:ns-collection:c",
    },
    "ReleaseReviewedBy": {
        "asset": "asset_collection:ns-asset:c",
        "reviewer": "party_category:ns-party:c",
        "checks": {"max_bytes": 1000, "file_types": ["csv"]},
    },
}
#: reference: Rules: whose namespace owner signs each rule type.
SIGNER_FIELD = {
    "InAssetCollection": "asset",
    "InAssetCategory": "category",
    "InPartyCategory": "category",
    "InSiteCategory": "category",
    "MayAccess": "asset",
    "MayUse": "asset",
    "ResultOfDataIn": "data",
    "ResultOfComputeIn": "compute",
    "ReleaseReviewedBy": "asset",
}
NAMESPACES = [
    "ns-asset",
    "ns-collection",
    "ns-category",
    "ns-party",
    "ns-site",
    "ns-data",
    "ns-compute",
]

#: (type, field) for every field other than the signer field whose namespace some party owns.
WRONG_SIGNERS = [
    (t, f)
    for t, fields in RULES.items()
    for f, v in fields.items()
    if f != SIGNER_FIELD[t] and isinstance(v, str) and ":" in v
]


@pytest.fixture(scope="module")
def keys() -> dict[str, Ed25519PrivateKey]:
    """A distinct party main key for every namespace (each namespace owned by its own party)."""
    return {namespace: Ed25519PrivateKey.generate() for namespace in NAMESPACES}


def key_ring(keys: dict[str, Ed25519PrivateKey]) -> KeyRing:
    """The registry's view of these owners: one party per namespace, with its main key."""
    return KeyRing.of(
        PartyRecord(PartyId(namespace, "owner"), namespace, public_key_pem(key), "unused")
        for namespace, key in keys.items()
    )


@pytest.fixture(scope="module")
def ring(keys: dict[str, Ed25519PrivateKey]) -> KeyRing:
    """Every namespace of RULES owned by its own party; any other namespace is owned by nobody."""
    return key_ring(keys)


def rule(type_name: str, **overrides: Any) -> Rule:
    return rule_from_dict({"type": type_name, **RULES[type_name], **overrides})


def owner_namespace(type_name: str) -> str:
    return RULES[type_name][SIGNER_FIELD[type_name]].split(":")[1]


def flip_bit(data: bytes, index: int = 0) -> bytes:
    return data[:index] + bytes([data[index] ^ 1]) + data[index + 1 :]


# --- rules ------------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", sorted(RULES))
def test_rule_signed_by_the_owner_verifies(
    type_name: str, keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """A rule signed with the main key of its signer field's owner is accepted."""
    signed = sign_rule(rule(type_name), keys[owner_namespace(type_name)])
    assert len(signed.signature) == 64
    ring.check_rule(signed)


@pytest.mark.parametrize(("type_name", "field"), WRONG_SIGNERS)
def test_rule_signed_by_another_fields_owner_is_rejected(
    type_name: str, field: str, keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """Owning some other namespace in the rule gives no authority (e.g. InAssetCategory's asset)."""
    other_namespace = RULES[type_name][field].split(":")[1]
    assert other_namespace != owner_namespace(type_name)
    signed = sign_rule(rule(type_name), keys[other_namespace])
    with pytest.raises(InvalidSignature) as error:
        ring.check_rule(signed)
    # The other field's owner is registered, so the refusal names it as the wrong signer.
    assert error.value.details["reason"] == "wrong_signer"
    assert error.value.details["signer"] == str(PartyId(other_namespace, "owner"))
    assert type_name in error.value.message


def test_in_asset_category_needs_the_category_owner_not_the_asset_owner(
    keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """The reference: Rules example: categories are their owner's statement."""
    in_category = rule("InAssetCategory")
    ring.check_rule(sign_rule(in_category, keys["ns-category"]))
    with pytest.raises(InvalidSignature):
        ring.check_rule(sign_rule(in_category, keys["ns-asset"]))


def test_asset_rules_need_the_asset_owner_not_the_storing_site_owner(
    keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """The site named inside an asset id does not own the asset."""
    in_collection = rule("InAssetCollection")
    with pytest.raises(InvalidSignature):
        ring.check_rule(sign_rule(in_collection, keys["ns-site"]))


@pytest.mark.parametrize("type_name", sorted(RULES))
def test_rule_signed_by_an_outsider_is_rejected(type_name: str, ring: KeyRing) -> None:
    """A key nobody registered cannot sign for any namespace."""
    signed = sign_rule(rule(type_name), Ed25519PrivateKey.generate())
    with pytest.raises(InvalidSignature):
        ring.check_rule(signed)


@pytest.mark.parametrize(
    ("type_name", "field", "value"),
    [
        ("MayAccess", "site", "*"),
        ("MayAccess", "site", "site:ns-site:other"),
        ("MayAccess", "asset", "asset_collection:ns-asset:other"),
        ("MayUse", "conditions", "any use"),
        ("ResultOfDataIn", "output", "out"),
        ("ResultOfComputeIn", "collection", "asset_collection:ns-collection:x"),
        ("InAssetCategory", "asset", "asset:ns-asset:a:ns-site:t"),
        ("ReleaseReviewedBy", "reviewer", "party:ns-party:other"),
        ("ReleaseReviewedBy", "checks", {"max_bytes": 1001, "file_types": ["csv"]}),
        ("ReleaseReviewedBy", "checks", {}),
    ],
)
def test_tampered_rule_is_rejected(
    type_name: str,
    field: str,
    value: Any,
    keys: dict[str, Ed25519PrivateKey],
    ring: KeyRing,
) -> None:
    """Changing any field after signing, even one its signer owns, voids the signature."""
    signed = sign_rule(rule(type_name), keys[owner_namespace(type_name)])
    tampered = SignedRule(rule(type_name, **{field: value}), signed.signature)
    assert tampered.rule != signed.rule
    with pytest.raises(InvalidSignature):
        ring.check_rule(tampered)


def test_signature_moved_to_another_rule_type_is_rejected(
    keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """The type is signed too: a ResultOfDataIn signature is no good on a ResultOfComputeIn."""
    fields = {
        "data": "asset:ns-data:d:ns-site:s",
        "compute": "asset:ns-data:k:ns-site:s",
        "output": "*",
        "collection": "asset_collection:ns-collection:c",
    }
    data_rule = rule_from_dict({"type": "ResultOfDataIn", **fields})
    compute_rule = rule_from_dict({"type": "ResultOfComputeIn", **fields})
    signed = sign_rule(data_rule, keys["ns-data"])
    ring.check_rule(signed)
    with pytest.raises(InvalidSignature):
        ring.check_rule(SignedRule(compute_rule, signed.signature))


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: flip_bit(s, 0),
        lambda s: flip_bit(s, 63),
        lambda s: s[:-1],
        lambda s: s + b"\0",
        lambda s: b"",
        lambda s: bytes(64),
    ],
    ids=["first-bit", "last-bit", "truncated", "extended", "empty", "zeros"],
)
def test_tampered_signature_is_rejected(
    damage: Any, keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """A damaged signature is InvalidSignature, never a crash or an acceptance."""
    signed = sign_rule(rule("MayAccess"), keys["ns-asset"])
    with pytest.raises(InvalidSignature):
        ring.check_rule(SignedRule(signed.rule, damage(signed.signature)))


def test_rule_in_an_unowned_namespace_is_rejected(keys: dict[str, Ed25519PrivateKey]) -> None:
    """If the registry knows no owner of the signer namespace, nobody can sign for it."""
    signed = sign_rule(rule("MayAccess"), keys["ns-asset"])
    with pytest.raises(InvalidSignature) as error:
        KeyRing.of([]).check_rule(signed)
    assert "'ns-asset' is not owned by any registered party" in error.value.message


def test_verification_needs_only_the_signer_namespace(
    keys: dict[str, Ed25519PrivateKey],
) -> None:
    """The key checked is that of the signer namespace, not any other namespace in the rule."""
    signed = sign_rule(rule("InSiteCategory"), keys["ns-category"])
    key_ring({"ns-category": keys["ns-category"]}).check_rule(signed)
    others = key_ring({ns: key for ns, key in keys.items() if ns != "ns-category"})
    with pytest.raises(InvalidSignature) as error:
        others.check_rule(signed)
    assert error.value.details["reason"] == "unknown_namespace"


def test_signing_is_deterministic(keys: dict[str, Ed25519PrivateKey]) -> None:
    """Ed25519 gives the same signature for the same rule and key (so replicas agree)."""
    one = sign_rule(rule("MayUse"), keys["ns-asset"])
    two = sign_rule(rule("MayUse"), keys["ns-asset"])
    assert one == two
    assert one.rule_id == one.rule.rule_id()


def test_invalid_signature_is_invalid_input() -> None:
    """A bad signature is the caller's fault (4xx), catchable as InvalidInput."""
    assert issubclass(InvalidSignature, InvalidInput)


# --- signed rule dict form --------------------------------------------------------------


@pytest.mark.parametrize("type_name", sorted(RULES))
def test_signed_rule_round_trips_through_its_dict_and_json(
    type_name: str, keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """to_dict is the rule's fields plus base64 `signature`; parsing it back still verifies."""
    signed = sign_rule(rule(type_name), keys[owner_namespace(type_name)])
    data = signed.to_dict()
    assert data == {
        "type": type_name,
        **RULES[type_name],
        "signature": base64.b64encode(signed.signature).decode(),
    }
    again = SignedRule.from_dict(json.loads(json.dumps(data)))
    assert again == signed
    ring.check_rule(again)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"signature": None}, "'signature'"),
        ({"signature": 5}, "base64 text"),
        ({"signature": "not base64!"}, "not valid base64"),
        ({"signature": "AAA"}, "not valid base64"),
        ({"extra": "x"}, "unknown extra"),
        ({"site": "party:ns-site:p"}, "field 'site'"),
    ],
)
def test_bad_signed_rule_dicts_are_rejected(
    change: dict[str, Any], fragment: str, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """The signed form is parsed as strictly as a rule, and the signature must be base64 text."""
    data = sign_rule(rule("MayAccess"), keys["ns-asset"]).to_dict()
    data.update(change)
    if change.get("signature", "") is None:
        del data["signature"]
    with pytest.raises(InvalidInput) as error:
        SignedRule.from_dict(data)
    assert fragment in error.value.message


def test_signed_rule_from_a_non_mapping_is_rejected() -> None:
    """Only a mapping can be a signed rule."""
    with pytest.raises(InvalidInput):
        SignedRule.from_dict(["MayAccess"])  # type: ignore[arg-type]


# --- revocations ------------------------------------------------------------------------


@pytest.mark.parametrize("type_name", sorted(RULES))
def test_revocation_by_the_owner_verifies_and_names_the_rule(
    type_name: str, keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """A revocation carries the rule id and the rule's signer namespace, signed by its owner."""
    revoked = rule(type_name)
    revocation = sign_revocation(revoked, keys[owner_namespace(type_name)])
    assert revocation.rule_id == revoked.rule_id()
    assert revocation.namespace == revoked.signer_namespace() == owner_namespace(type_name)
    ring.check_revocation(revocation)


@pytest.mark.parametrize(("type_name", "field"), WRONG_SIGNERS)
def test_revocation_by_another_party_is_rejected(
    type_name: str, field: str, keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """Only the owner that may sign a rule may revoke it."""
    other_namespace = RULES[type_name][field].split(":")[1]
    revocation = sign_revocation(rule(type_name), keys[other_namespace])
    with pytest.raises(InvalidSignature):
        ring.check_revocation(revocation)


def test_tampered_revocation_is_rejected(keys: dict[str, Ed25519PrivateKey], ring: KeyRing) -> None:
    """Pointing a signed revocation at another rule, or another namespace, voids it."""
    revocation = sign_revocation(rule("MayAccess"), keys["ns-asset"])
    other_rule = rule("MayAccess", site="*")
    for tampered in (
        Revocation(other_rule.rule_id(), revocation.namespace, revocation.signature),
        Revocation(revocation.rule_id, "ns-site", revocation.signature),
        Revocation(revocation.rule_id, revocation.namespace, flip_bit(revocation.signature)),
    ):
        with pytest.raises(InvalidSignature):
            ring.check_revocation(tampered)


def test_revocation_in_an_unowned_namespace_is_rejected(
    keys: dict[str, Ed25519PrivateKey],
) -> None:
    """Unknown namespace: the revocation cannot be checked, so it is refused."""
    revocation = sign_revocation(rule("MayAccess"), keys["ns-asset"])
    with pytest.raises(InvalidSignature) as error:
        KeyRing.of([]).check_revocation(revocation)
    assert "not owned by any registered party" in error.value.message


def test_revocation_signature_differs_from_the_rule_signature(
    keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """A rule's signature cannot be replayed as its revocation (different signed bytes)."""
    revoked = rule("MayAccess")
    signed = sign_rule(revoked, keys["ns-asset"])
    replayed = Revocation(revoked.rule_id(), "ns-asset", signed.signature)
    with pytest.raises(InvalidSignature):
        ring.check_revocation(replayed)


def test_revocation_round_trips_through_its_dict_and_json(
    keys: dict[str, Ed25519PrivateKey], ring: KeyRing
) -> None:
    """The revocation dict form parses back to an equal, still valid revocation."""
    revocation = sign_revocation(rule("InPartyCategory"), keys["ns-category"])
    data = revocation.to_dict()
    assert set(data) == {"type", "rule_id", "namespace", "signature"}
    assert data["type"] == "Revocation"
    again = Revocation.from_dict(json.loads(json.dumps(data)))
    assert again == revocation
    ring.check_revocation(again)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"extra": "x"}, "revocation has wrong fields: unknown extra"),
        ({"type": "MayAccess"}, "not a revocation"),
        ({"rule_id": "ab"}, "hex sha256"),
        ({"rule_id": "zz" * 32}, "hex sha256"),
        ({"rule_id": "AB" * 32}, "hex sha256"),
        ({"rule_id": 5}, "hex sha256"),
        ({"namespace": ""}, "namespace must be text"),
        ({"namespace": 5}, "namespace must be text"),
        ({"signature": "%%%"}, "not valid base64"),
        ({"signature": None}, "base64 text"),
    ],
)
def test_bad_revocation_dicts_are_rejected(
    change: dict[str, Any], fragment: str, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """Revocations are parsed strictly, naming what is wrong."""
    data: dict[str, Any] = sign_revocation(rule("MayAccess"), keys["ns-asset"]).to_dict()
    data.update(change)
    with pytest.raises(InvalidInput) as error:
        Revocation.from_dict(data)
    assert fragment in error.value.message


@pytest.mark.parametrize("missing", ["type", "rule_id", "namespace", "signature"])
def test_revocation_missing_a_field_is_rejected(
    missing: str, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """Every revocation field is required."""
    data = sign_revocation(rule("MayAccess"), keys["ns-asset"]).to_dict()
    del data[missing]
    with pytest.raises(InvalidInput):
        Revocation.from_dict(data)


def test_every_rule_type_is_covered() -> None:
    """This file signs one rule of each of the nine types."""
    assert set(RULES) == set(RULE_TYPES)
