"""Ed25519 signatures on rules and revocations: the signed forms and how they are made.

A rule is valid only if its signature verifies with the main key of the party
that owns the namespace named by the rule's signer field (reference: Rules).
That check needs the registry's keys, so a site makes it where it has them
(`mahiru.services.site.KeyRing`); this pure module only signs and parses.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mahiru.errors import InvalidInput
from mahiru.model.canonical import canonical_json
from mahiru.model.fields import Field, Shape, const, one_of, string
from mahiru.policy.rules import RULE_SHAPES, Rule, rule_from_dict

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_SIGNATURE = Field(
    "signature",
    string(
        pattern=r"^[A-Za-z0-9+/]*={0,2}$",
        description="base64 Ed25519 signature over the canonical bytes of the other fields",
    ),
)

#: The dict form of a signed rule: one rule type's fields and its signature.
SIGNED_RULE_SCHEMA = one_of(
    *(
        shape.with_fields(
            _SIGNATURE, what=f"signed {name} rule", description=shape.description
        ).json_schema()
        for name, shape in RULE_SHAPES.items()
    ),
    discriminator="type",
    description="A rule signed by the owner of the namespace its signer field names.",
)
REVOCATION_SHAPE = Shape(
    "revocation",
    "A revocation of a rule, signed by the owner of the namespace that signed the rule.",
    (
        Field("type", const("Revocation")),
        Field(
            "rule_id",
            string(
                pattern=f"^{_SHA256_HEX.pattern}$",
                description="hex sha256 of the revoked rule's canonical bytes",
            ),
        ),
        Field("namespace", string(non_empty=True)),
        _SIGNATURE,
    ),
    headed=True,
)


@dataclass(frozen=True, slots=True)
class SignedRule:
    """A rule with the Ed25519 signature of its signer over its canonical bytes."""

    rule: Rule
    signature: bytes

    @property
    def rule_id(self) -> str:
        """The rule's stable id (hash of its canonical bytes)."""
        return self.rule.rule_id()

    def to_dict(self) -> dict[str, Any]:
        """The serialised form: the rule's fields plus base64 `signature`."""
        return {**self.rule.to_dict(), "signature": base64.b64encode(self.signature).decode()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedRule:
        """Parse the serialised form, strictly."""
        if not isinstance(data, Mapping) or "signature" not in data:
            raise InvalidInput("a signed rule needs a 'signature' field", {"rule": data})
        fields = {k: v for k, v in data.items() if k != "signature"}
        return cls(rule_from_dict(fields), _decode_signature(data["signature"]))


@dataclass(frozen=True, slots=True)
class Revocation:
    """A signed statement that the rule with `rule_id` no longer holds."""

    rule_id: str
    namespace: str
    signature: bytes

    def canonical_bytes(self) -> bytes:
        """The bytes the revocation's signature covers."""
        body = {"type": "Revocation", "rule_id": self.rule_id, "namespace": self.namespace}
        return canonical_json(body)

    def to_dict(self) -> dict[str, str]:
        """The serialised form."""
        return {
            "type": "Revocation",
            "rule_id": self.rule_id,
            "namespace": self.namespace,
            "signature": base64.b64encode(self.signature).decode(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Revocation:
        """Parse the serialised form, strictly."""
        REVOCATION_SHAPE.check(data, details={"data": data})
        if data["type"] != "Revocation":
            raise InvalidInput(f"not a revocation: type {data['type']!r}")
        rule_id, namespace = data["rule_id"], data["namespace"]
        if not isinstance(rule_id, str) or not _SHA256_HEX.fullmatch(rule_id):
            raise InvalidInput(f"revocation rule_id must be a hex sha256, got {rule_id!r}")
        if not isinstance(namespace, str) or not namespace:
            raise InvalidInput(f"revocation namespace must be text, got {namespace!r}")
        return cls(rule_id, namespace, _decode_signature(data["signature"]))


def _decode_signature(value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"signature must be base64 text, got {value!r}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("signature is not valid base64") from None


def sign_rule(rule: Rule, key: Ed25519PrivateKey) -> SignedRule:
    """Sign a rule with a party's main key."""
    return SignedRule(rule, key.sign(rule.canonical_bytes()))


def sign_revocation(rule: Rule, key: Ed25519PrivateKey) -> Revocation:
    """Make a signed revocation of `rule`, by the same owner that signed it."""
    unsigned = Revocation(rule.rule_id(), rule.signer_namespace(), b"")
    return Revocation(unsigned.rule_id, unsigned.namespace, key.sign(unsigned.canonical_bytes()))


def in_force(rules: Iterable[SignedRule], revocations: Iterable[Revocation]) -> list[SignedRule]:
    """The rules no revocation undoes, each once, in the order given.

    A revocation undoes a rule whatever site relayed either of them, but only
    a rule signed for the revocation's namespace: the namespace owner signed
    both (their signatures were checked when they arrived).
    """
    revoked = {(revocation.rule_id, revocation.namespace) for revocation in revocations}
    active: dict[str, SignedRule] = {}
    for signed in rules:
        rule_id = signed.rule_id
        if rule_id in active or (rule_id, signed.rule.signer_namespace()) in revoked:
            continue
        active[rule_id] = signed
    return list(active.values())
