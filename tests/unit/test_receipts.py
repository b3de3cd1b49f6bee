"""Result receipts: signed by the producing site, checked link by link, offline."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from mahiru import pki
from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.identifiers import ResultId, SiteId
from mahiru.model.receipts import (
    Receipt,
    ReceiptChain,
    ReceiptInput,
    SignedReceipt,
    verify_chain,
)
from mahiru.pki.signatures import sign_with_tls_key, verify_with_certificate

CA = pki.create_network_ca()
SITE1, SITE2 = SiteId.parse("site:p1.org:site1"), SiteId.parse("site:p2.org:site2")
KEYS = {site: pki.issue_site_certificate(CA, str(site)) for site in (SITE1, SITE2)}
CERTS = {site: pki.certificate_pem(k.certificate) for site, k in KEYS.items()}


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check(site: SiteId, data: bytes, signature: bytes) -> None:
    if site not in CERTS:
        raise InvalidSignature(f"{site} is not registered")
    verify_with_certificate(CERTS[site], data, signature, who=str(site))


def _signed(
    result: ResultId, digest: str, site: SiteId, inputs: list[ReceiptInput]
) -> SignedReceipt:
    receipt = Receipt(
        result, digest, "0" * 32, "s", "o", site, tuple(inputs), (_hex("rule"),),
        datetime(2026, 12, 6, tzinfo=UTC),
    )  # fmt: skip
    return SignedReceipt(
        receipt, sign_with_tls_key(KEYS[site].private_key, receipt.canonical_bytes())
    )


A, B = ResultId(_hex("a")), ResultId(_hex("b"))
DA, DB = _hex("image a"), _hex("image b")
COMPUTE = ReceiptInput("compute", "asset:p1.org:script:p1.org:site1", _hex("script"))


def _chain() -> ReceiptChain:
    """b, computed at site1 on result a (computed at site2)."""
    a = _signed(
        A, DA, SITE2, [COMPUTE, ReceiptInput("input0", "asset:p2.org:d:p2.org:site2", _hex("d"))]
    )
    b = _signed(B, DB, SITE1, [COMPUTE, ReceiptInput("input0", str(A), DA)])
    return ReceiptChain((b, a))


def test_a_sound_chain_verifies_and_round_trips_through_json() -> None:
    chain = ReceiptChain.from_list(_chain().to_list())
    lines = verify_chain(B, DB, chain, _check)
    assert len(lines) == 2 and str(A) in lines[1] and str(SITE2) in lines[1]


def test_a_tampered_receipt_fails() -> None:
    data = _chain().to_list()
    data[1]["step"] = "other"  # a's receipt, changed after signing
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_chain(B, DB, ReceiptChain.from_list(data), _check)


def test_a_wrong_digest_fails() -> None:
    with pytest.raises(InvalidInput, match="names image"):
        verify_chain(B, _hex("something else"), _chain(), _check)
    # b says it ran on a with digest DA; a's receipt claiming another image breaks the link.
    chain = _chain()
    forged_a = _signed(A, _hex("fabricated"), SITE2, [COMPUTE])
    with pytest.raises(InvalidInput, match="names image"):
        verify_chain(B, DB, ReceiptChain((chain.receipts[0], forged_a)), _check)


def test_a_forged_signer_fails() -> None:
    chain = _chain()
    a = chain.receipts[1]
    # site1 signs a receipt claiming site2 computed a.
    forged = SignedReceipt(
        a.receipt, sign_with_tls_key(KEYS[SITE1].private_key, a.receipt.canonical_bytes())
    )
    with pytest.raises(InvalidSignature, match="site2"):
        verify_chain(B, DB, ReceiptChain((chain.receipts[0], forged)), _check)
    stranger = SiteId.parse("site:p9.org:site9")
    receipt = Receipt(
        *(stranger if f == "site" else getattr(a.receipt, f) for f in a.receipt.__slots__)
    )  # type: ignore[arg-type]
    with pytest.raises(InvalidSignature, match="not registered"):
        verify_chain(
            B, DB, ReceiptChain((chain.receipts[0], SignedReceipt(receipt, a.signature))), _check
        )


def test_a_missing_link_fails() -> None:
    with pytest.raises(InvalidInput, match="no receipt for"):
        verify_chain(B, DB, ReceiptChain((_chain().receipts[0],)), _check)


@pytest.mark.parametrize(
    "change",
    [
        {"result": "result:nothex"},
        {"digest": "x"},
        {"rules": ["x"]},
        {"at": "yesterday"},
        {"extra": 1},
    ],
)
def test_malformed_receipts_are_refused(change: dict[str, object]) -> None:
    data = _chain().to_list()[0]
    with pytest.raises(InvalidInput):
        SignedReceipt.from_dict({**data, **change})
