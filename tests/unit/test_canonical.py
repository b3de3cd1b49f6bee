"""One canonical JSON for everything signed or hashed, pinned by golden vectors.

Each vector is the SHA-256 of the canonical bytes of a fixed value, recorded
from the code as it was before the five encoders became one: if any changes,
existing signatures (rules, revocations, registrations, receipts) and result
ids stop verifying, so these must never be updated to make a test pass.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mahiru.errors import InvalidInput
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.receipts import Receipt, ReceiptInput
from mahiru.model.registrations import Registration
from mahiru.model.registry import PartyRecord
from mahiru.model.serialization import job_digest, job_from_dict
from mahiru.model.workflow import StepOutputRef
from mahiru.pki import public_key_pem
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import SignedRule, sign_revocation, sign_rule
from mahiru.services.site import KeyRing

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SCRIPT = "asset:p1.example.org:script:p1.example.org:site1"
BASE = "asset:p1.example.org:base:p1.example.org:site1"
JOB = job_from_dict(
    {
        "submitter": "party:p1.example.org:p1",
        "workflow": {
            "inputs": ["input", "previous"],
            "outputs": {"result": "combine.out", "log": "prepare.log"},
            "steps": [
                {
                    "name": "prepare",
                    "compute_asset": SCRIPT,
                    "inputs": {"data": "input"},
                    "outputs": {
                        "log": None,
                        "out": "asset:p1.example.org:base:p1.example.org:site1",
                    },
                },
                {
                    "name": "combine",
                    "compute_asset": SCRIPT,
                    "inputs": {"a": "prepare.out", "b": "previous"},
                    "outputs": {"out": None},
                },
            ],
        },
        "inputs": {
            "input": "asset:p2.example.org:data:p2.example.org:site2",
            "previous": "result:" + "ab" * 32,
        },
    }
)
RULE = rule_from_dict(
    {
        "type": "MayAccess",
        "site": "site:p2.example.org:site2",
        "asset": "asset:p1.example.org:data:p1.example.org:site1",
    }
)
PARTY = PartyId.parse("party:p1.example.org:p1")


def _receipt() -> bytes:
    result = JOB.result_ids()[StepOutputRef("combine", "out")]
    inputs = (
        ReceiptInput("compute", SCRIPT, "ef" * 32),
        ReceiptInput("b", "result:" + "ab" * 32, "12" * 32),
    )
    site = SiteId.parse("site:p1.example.org:site1")
    receipt = Receipt(
        result, "cd" * 32, "0" * 32, "combine", "out", site, inputs, ("34" * 32,), NOW
    )
    return receipt.canonical_bytes()


def _registration() -> bytes:
    # Text outside ASCII is written as itself (UTF-8), not as \\u escapes.
    record = PartyRecord(PARTY, PARTY.namespace, "public key PEM", "user CA PEM \u00e9\u4e2d")
    return Registration.put_party(record, base_version=7, issued_at=NOW).canonical_bytes()


RULE_WITH_TEXT = rule_from_dict(
    {
        "type": "MayUse",
        "party": "party:p2.example.org:p2",
        "asset": "asset:p1.example.org:data:p1.example.org:site1",
        "conditions": "f\u00fcr Forschung",
    }
)


REVIEW_RULE = rule_from_dict(
    {
        "type": "ReleaseReviewedBy",
        "asset": "asset_collection:p2.example.org:results",
        "reviewer": "party_category:p2.example.org:stewards",
    }
)
# The checks written out of order: the canonical form sorts keys and file types.
REVIEW_RULE_WITH_CHECKS = rule_from_dict(
    {
        "type": "ReleaseReviewedBy",
        "asset": "asset:p2.example.org:data:p2.example.org:site2",
        "reviewer": "party:p2.example.org:alice",
        "checks": {
            "min_count": {"column": "n", "at_least": 10},
            "max_bytes": 1000000,
            "file_types": ["json", "csv"],
        },
    }
)


def _result_ids() -> bytes:
    return "\n".join(f"{k} {v}" for k, v in sorted(JOB.result_ids().items(), key=str)).encode()


VECTORS: dict[str, tuple[Callable[[], bytes], str]] = {
    "rule": (
        RULE.canonical_bytes,
        "6f06f85be010983137c899a8cfa95a56d452719016331e474bc7d8d85cbc6381",
    ),
    "rule with text outside ASCII": (
        RULE_WITH_TEXT.canonical_bytes,
        "3fa7b84b2560af98de57e2236f80c9a44ac56eec9ab16d3eca6177633db85acd",
    ),
    "review rule": (
        REVIEW_RULE.canonical_bytes,
        "f76835652fb6c380cb39368ef4e49fb280dc9ed65d2c1c2b6c63ecdce3d5c8c8",
    ),
    "review rule with checks": (
        REVIEW_RULE_WITH_CHECKS.canonical_bytes,
        "dc26f4293d964f8b98c0a9b1fe855b68807e3e975eac0c47cbb2ab13678b32c7",
    ),
    "revocation": (
        lambda: sign_revocation(RULE, KEY).canonical_bytes(),
        "2b307f8d922b5992b4a5d56042cc62999c11741962dc805de8191c375c4d23b4",
    ),
    "result ids": (
        _result_ids,
        "f2c09cf2711b3a794964a05b962219ef113aaa5e2fb2e279a43eba3bc5ec8cf7",
    ),
    "receipt": (
        _receipt,
        "63a738b3cb9fa0d0f391c789bb6bb66e3ca606f25663f13e9f83a8fb93cb4878",
    ),
    "registration": (
        _registration,
        "a314c5289fcfa44c5a995ec5959143817c62d5a4f31b0c9f2baca74c9546a485",
    ),
    "job digest": (
        lambda: job_digest(JOB).encode(),
        "38ce958352011068f4435b8ad4d268c4b0b6dbf8a8392d5a344a67634e43f0f7",
    ),
}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_canonical_bytes_are_unchanged(name: str) -> None:
    """The bytes each signed or hashed value is encoded to match their golden digest."""
    make, expected = VECTORS[name]
    assert hashlib.sha256(make()).hexdigest() == expected


def test_a_signature_made_before_still_verifies() -> None:
    """A rule signature recorded with the old encoder verifies with the canonical one."""
    signature = bytes.fromhex(
        "6614e773a8ab72f4282cbf0a567e3282b1523e48374830226605d56d4e8a683b"
        "94b206db820446f8b664e34d61733f567843b67f0437b5d50dab70e1d6a0670b"
    )
    assert sign_rule(RULE, KEY).signature == signature
    owner = PartyRecord(PARTY, RULE.signer_namespace(), public_key_pem(KEY), "unused")
    KeyRing.of([owner]).check_rule(SignedRule(RULE, signature))


def test_canonical_json_sorts_keys_drops_whitespace_and_escapes_as_asked() -> None:
    """Keys sorted at every depth, no spaces; text outside ASCII escaped unless told not to."""
    value = {"b": [1, {"d": True, "c": None}], "a": "\u00e9"}
    assert canonical_json(value) == b'{"a":"\\u00e9","b":[1,{"c":null,"d":true}]}'
    assert canonical_json(value, escape_non_ascii=False) == (
        '{"a":"\u00e9","b":[1,{"c":null,"d":true}]}'.encode()
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": math.nan}, "Out of range float"),
        ({"x": math.inf}, "Out of range float"),
        ({1: "a", "b": "mixed keys"}, "not a plain JSON document"),
        ({"x": object()}, "not JSON serializable"),
    ],
)
def test_anything_but_plain_json_is_refused(value: Any, message: str) -> None:
    """Non-finite numbers, other objects and mixed keys are InvalidInput, naming the problem."""
    with pytest.raises(InvalidInput, match=message):
        canonical_json(value)


def test_text_that_is_not_unicode_is_refused_where_it_would_be_written_as_itself() -> None:
    """A lone surrogate cannot be UTF-8: refused unless it is escaped."""
    with pytest.raises(InvalidInput, match="surrogates not allowed"):
        canonical_json({"x": "\ud800"}, escape_non_ascii=False)
    assert canonical_json({"x": "\ud800"}) == b'{"x":"\\ud800"}'
