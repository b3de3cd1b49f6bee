"""Result receipts: signed by the producing site, checked link by link, offline.

The attacks tried here are those of docs/security.md, "Results carry signed
receipts": a valid receipt of another result, a chain mixing sites, a receipt
signed over or written in a non-canonical form, and a receipt signed with a
party's main key instead of the site's TLS key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from mahiru import pki
from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import ResultId, SiteId
from mahiru.model.receipts import (
    Receipt,
    ReceiptChain,
    ReceiptInput,
    SignedReceipt,
    verify_chain,
)
from mahiru.pki.signatures import SiteSignatures, sign_with_tls_key

CA = pki.create_network_ca()
SITE1, SITE2 = SiteId.parse("site:p1.org:site1"), SiteId.parse("site:p2.org:site2")
KEYS = {site: pki.issue_site_certificate(CA, str(site)) for site in (SITE1, SITE2)}
CERTS = {site: pki.certificate_pem(k.certificate) for site, k in KEYS.items()}
PARTY_KEY = pki.generate_party_key()  # party p2's Ed25519 main key


def _hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _check(certificates: dict[SiteId, str] | None = None) -> SiteSignatures:
    """The registry's records: each site's certificate."""
    known = CERTS if certificates is None else certificates
    return SiteSignatures(known.get)


def _receipt(result: ResultId, digest: str, site: SiteId, inputs: list[ReceiptInput]) -> Receipt:
    return Receipt.of(
        result, digest, "0" * 32, "s", "o", site, inputs, [_hex("rule")],
        datetime(2026, 12, 6, tzinfo=UTC),
    )  # fmt: skip


def _signed(
    result: ResultId, digest: str, site: SiteId, inputs: list[ReceiptInput]
) -> SignedReceipt:
    receipt = _receipt(result, digest, site, inputs)
    return SignedReceipt(
        receipt, sign_with_tls_key(KEYS[site].private_key, receipt.canonical_bytes())
    )


A, B, C = ResultId(_hex("a")), ResultId(_hex("b")), ResultId(_hex("c"))
DA, DB, DC = _hex("image a"), _hex("image b"), _hex("image c")
COMPUTE = ReceiptInput("compute", "asset:p1.org:script:p1.org:site1", _hex("script"))
DATA = ReceiptInput("input0", "asset:p2.org:d:p2.org:site2", _hex("d"))


def _chain() -> ReceiptChain:
    """b, computed at site1 on result a (computed at site2)."""
    a = _signed(A, DA, SITE2, [COMPUTE, DATA])
    b = _signed(B, DB, SITE1, [COMPUTE, ReceiptInput("input0", str(A), DA)])
    return ReceiptChain((b, a))


def test_a_sound_chain_verifies_and_round_trips_through_json() -> None:
    """The chain as its producing sites made it verifies, after a trip through JSON."""
    chain = ReceiptChain.from_list(_chain().to_list())
    lines = verify_chain(B, DB, chain, _check())
    assert len(lines) == 2 and str(A) in lines[1] and str(SITE2) in lines[1]


def test_a_tampered_receipt_fails() -> None:
    """A receipt changed after it was signed does not verify."""
    data = _chain().to_list()
    data[1]["step"] = "other"  # a's receipt, changed after signing
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_chain(B, DB, ReceiptChain.from_list(data), _check())


def test_a_missing_link_fails() -> None:
    """A result built on a result whose receipt is not in the chain does not verify."""
    with pytest.raises(InvalidInput, match="no receipt for"):
        verify_chain(B, DB, ReceiptChain((_chain().receipts[0],)), _check())


# (a) A valid receipt of another result, presented for this one.


def _another_results_receipt_for_b() -> ReceiptChain:
    """c's own valid chain, presented where b's is wanted."""
    return ReceiptChain((_signed(C, DB, SITE1, [COMPUTE, DATA]),))


def _another_results_receipt_for_a() -> ReceiptChain:
    """b's receipt, with c's valid receipt (of c's image) standing in for a's."""
    return ReceiptChain((_chain().receipts[0], _signed(C, DC, SITE2, [COMPUTE, DATA])))


def _relabelled_receipt() -> ReceiptChain:
    """c's valid receipt with its result id changed to b's."""
    c = _signed(C, DB, SITE1, [COMPUTE, DATA])
    return ReceiptChain((SignedReceipt(replace(c.receipt, result=B), c.signature),))


def _receipt_of_same_result_other_image() -> ReceiptChain:
    """A valid receipt of a, but of another image than the one b ran on."""
    return ReceiptChain((_chain().receipts[0], _signed(A, DC, SITE2, [COMPUTE, DATA])))


@pytest.mark.parametrize(
    ("chain", "digest", "error", "message"),
    [
        (_another_results_receipt_for_b, DB, InvalidInput, "no receipt for " + str(B)),
        (_another_results_receipt_for_a, DB, InvalidInput, "no receipt for " + str(A)),
        (_relabelled_receipt, DB, InvalidSignature, "does not verify"),
        (_receipt_of_same_result_other_image, DB, InvalidInput, "names image"),
        (_chain, DC, InvalidInput, "names image"),  # b's receipt, for an image of c
    ],
    ids=["other-result", "other-input-result", "relabelled", "input-other-image", "other-image"],
)
def test_a_valid_receipt_of_another_result_or_image_is_refused(
    chain: Callable[[], ReceiptChain], digest: str, error: type[Exception], message: str
) -> None:
    """A receipt that verifies, but of another result id or another image, stands for
    neither the result nor any input it was built on."""
    with pytest.raises(error, match=message):
        verify_chain(B, digest, chain(), _check())


def test_a_chain_with_two_receipts_of_one_result_is_refused() -> None:
    """A chain holds one receipt per result: two (even both valid) leave it ambiguous."""
    chain = _chain()
    other_a = _signed(A, DC, SITE2, [COMPUTE, DATA])
    with pytest.raises(InvalidInput, match="more than one receipt of"):
        ReceiptChain((*chain.receipts, other_a))
    with pytest.raises(InvalidInput, match="more than one receipt of"):
        ReceiptChain.from_list([*chain.to_list(), other_a.to_dict()])


# (b) A chain mixing sites.


def test_an_input_receipt_signed_by_another_site_than_it_names_is_refused() -> None:
    """site1 signs a receipt saying site2 computed a: refused, naming site2."""
    b, a = _chain().receipts
    forged = SignedReceipt(
        a.receipt, sign_with_tls_key(KEYS[SITE1].private_key, a.receipt.canonical_bytes())
    )
    with pytest.raises(InvalidSignature, match="site2"):
        verify_chain(B, DB, ReceiptChain((b, forged)), _check())
    # And the other way round: site2's own receipt, renamed as site1's.
    renamed = SignedReceipt(replace(a.receipt, site=SITE1), a.signature)
    with pytest.raises(InvalidSignature, match="site1"):
        verify_chain(B, DB, ReceiptChain((b, renamed)), _check())


def test_a_receipt_naming_an_unregistered_site_is_refused() -> None:
    """A receipt of a site the registry does not know verifies with nothing."""
    b, a = _chain().receipts
    stranger = SiteId.parse("site:p9.org:site9")
    receipt = replace(a.receipt, site=stranger)
    with pytest.raises(InvalidSignature, match="not a registered site"):
        verify_chain(B, DB, ReceiptChain((b, SignedReceipt(receipt, a.signature))), _check())


@pytest.mark.parametrize("signer", [SITE1, SITE2])
def test_a_certificate_recorded_for_another_site_id_is_refused(signer: SiteId) -> None:
    """Records that list site1's certificate (or a certificate issued to site1) under
    site2's id make no receipt of site2 verify, whoever signed it."""
    b, a = _chain().receipts  # a: computed at site2
    receipt = a.receipt
    signed = SignedReceipt(
        receipt, sign_with_tls_key(KEYS[signer].private_key, receipt.canonical_bytes())
    )
    swapped = {SITE1: CERTS[SITE1], SITE2: CERTS[SITE1]}
    with pytest.raises(InvalidSignature, match=re.escape(f"was issued to {SITE1}")):
        verify_chain(B, DB, ReceiptChain((b, signed)), _check(swapped))


def test_a_certificate_naming_no_site_is_refused() -> None:
    """A certificate with no Mahiru identity (a party's user CA, say) signs for no site."""
    user_ca = pki.create_user_ca("party:p2.org:p2")
    records = {**CERTS, SITE2: pki.certificate_pem(user_ca.certificate)}
    with pytest.raises(InvalidSignature, match="unusable"):
        verify_chain(B, DB, _chain(), _check(records))


# (c) Non-canonical JSON.


def _encodings() -> dict[str, Callable[[dict[str, Any]], bytes]]:
    return {
        "spaces": lambda d: json.dumps(d, sort_keys=True).encode(),
        "indented": lambda d: json.dumps(d, sort_keys=True, indent=2).encode(),
        "keys-unsorted": lambda d: json.dumps(d, separators=(",", ":")).encode(),
        "keys-reversed": lambda d: json.dumps(
            dict(reversed(list(d.items()))), separators=(",", ":")
        ).encode(),
        "trailing-newline": lambda d: (
            json.dumps(d, sort_keys=True, separators=(",", ":")).__add__("\n").encode()
        ),
        "escaped-letter": lambda d: (
            json.dumps(d, sort_keys=True, separators=(",", ":"))
            .replace('"step":"s"', '"step":"\\u0073"')
            .encode()
        ),
    }


@pytest.mark.parametrize("encoding", sorted(_encodings()))
def test_a_receipt_signed_over_non_canonical_json_is_refused(encoding: str) -> None:
    """The signature is checked over the canonical bytes only: one made over the same
    content in another byte form (whitespace, key order, escapes) does not verify."""
    b, a = _chain().receipts
    content = a.receipt.to_dict()
    data = _encodings()[encoding](content)
    assert data != a.receipt.canonical_bytes() and json.loads(data) == content
    signed = SignedReceipt(a.receipt, sign_with_tls_key(KEYS[SITE2].private_key, data))
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_chain(B, DB, ReceiptChain((b, signed)), _check())


def test_a_canonical_receipt_verifies_whatever_bytes_carried_it() -> None:
    """The carrier's own form (indented, keys in any order) is not the receipt's: parsed,
    the same fields verify."""
    data = json.loads(json.dumps(list(reversed(_chain().to_list())), indent=3))
    assert len(verify_chain(B, DB, ReceiptChain.from_list(data), _check())) == 2


def _later(data: dict[str, Any]) -> None:
    data["at"] = "2026-12-06T00:00:00Z"


def _fraction(data: dict[str, Any]) -> None:
    data["at"] = "2026-12-06T00:00:00.000000+00:00"


def _offset(data: dict[str, Any]) -> None:
    data["at"] = "2026-12-06T01:00:00+01:00"  # the same instant


def _inputs_reversed(data: dict[str, Any]) -> None:
    data["inputs"] = list(reversed(data["inputs"]))


def _input_twice(data: dict[str, Any]) -> None:
    data["inputs"] = [data["inputs"][0], *data["inputs"]]


def _rules_twice(data: dict[str, Any]) -> None:
    data["rules"] = data["rules"] * 2


def _rules_unsorted(data: dict[str, Any]) -> None:
    data["rules"] = sorted([*data["rules"], _hex("another rule")], reverse=True)


def _result_upper(data: dict[str, Any]) -> None:
    data["result"] = "result:" + data["result"].removeprefix("result:").upper()


@pytest.mark.parametrize(
    "change",
    [
        _later,
        _fraction,
        _offset,
        _inputs_reversed,
        _input_twice,
        _rules_twice,
        _rules_unsorted,
        _result_upper,
    ],
)
def test_a_receipt_not_written_in_its_canonical_form_is_refused(
    change: Callable[[dict[str, Any]], None],
) -> None:
    """A receipt is written one way only: another form of the same content (time, order,
    repetition, case) is refused as it is parsed, even signed by its own site over the
    canonical bytes of exactly what it says."""
    data = _chain().to_list()[1]
    change(data)
    fields = {k: v for k, v in data.items() if k != "signature"}
    signature = sign_with_tls_key(KEYS[SITE2].private_key, canonical_json(fields))
    data["signature"] = base64.b64encode(signature).decode()
    with pytest.raises(InvalidInput, match=r"canonical form|UTC|lowercase"):
        SignedReceipt.from_dict(data)


def _spare_bits_set(text: str) -> str:
    """The same bytes in base64, with the unused low bits of the last digit set."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    body = text.rstrip("=")
    last = alphabet.index(body[-1]) | 1
    return body[:-1] + alphabet[last] + text[len(body) :]


def test_a_signature_not_in_canonical_base64_is_refused() -> None:
    """The signature's base64 is written one way only: the same bytes with the spare
    bits set, or without padding, are refused."""
    data = _chain().to_list()[1]
    raw = b"\x30" * 70  # 70 bytes: two padding characters, four spare bits
    canonical = base64.b64encode(raw).decode()
    assert base64.b64decode(_spare_bits_set(canonical), validate=True) == raw
    for text in (_spare_bits_set(canonical), canonical.rstrip("=")):
        with pytest.raises(InvalidInput, match="base64"):
            SignedReceipt.from_dict({**data, "signature": text})


@pytest.mark.parametrize("at", ["2026-12-06T00:00:00", "2026-12-06"])
def test_a_receipt_time_without_an_offset_is_refused(at: str) -> None:
    """A receipt's time is in UTC and says so: a local time is no time at all."""
    data = _chain().to_list()[1]
    data["at"] = at
    with pytest.raises(InvalidInput, match="UTC"):
        SignedReceipt.from_dict(data)


@pytest.mark.parametrize(
    "change",
    [
        {"result": "result:nothex"},
        {"digest": "x"},
        {"rules": ["x"]},
        {"at": "yesterday"},
        {"extra": 1},
        {"step": 1},
        {"step": 1.0},
        {"digest": None},
    ],
)
def test_malformed_receipts_are_refused(change: dict[str, object]) -> None:
    """Wrong kinds, wrong types and unknown fields are refused as the receipt is parsed."""
    data = _chain().to_list()[0]
    with pytest.raises(InvalidInput):
        SignedReceipt.from_dict({**data, **change})


# (d) Signed with the party's main key instead of the site's TLS key.


def test_a_receipt_signed_with_the_party_key_is_refused() -> None:
    """party p2 signs its site's receipt with its Ed25519 main key: refused, for the
    result itself and for an input."""
    b, a = _chain().receipts
    by_party = SignedReceipt(a.receipt, PARTY_KEY.sign(a.receipt.canonical_bytes()))
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_chain(A, DA, ReceiptChain((by_party,)), _check())
    with pytest.raises(InvalidSignature, match="does not verify"):
        verify_chain(B, DB, ReceiptChain((b, by_party)), _check())


def _certificate_with_party_key(site: SiteId) -> str:
    """A certificate of the network CA for `site`, carrying the party's Ed25519 key."""
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(site))]))
        .issuer_name(CA.certificate.subject)
        .public_key(PARTY_KEY.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(f"mahiru:{site}")]),
            critical=False,
        )
        .sign(CA.private_key, hashes.SHA256())
    )
    return pki.certificate_pem(certificate)


def test_a_site_certificate_carrying_a_party_key_signs_no_receipt() -> None:
    """Even a certificate issued to the site but carrying the party's Ed25519 key makes
    no party-key signature pass for the site's: sites sign with ECDSA keys only."""
    _, a = _chain().receipts
    by_party = SignedReceipt(a.receipt, PARTY_KEY.sign(a.receipt.canonical_bytes()))
    records = {**CERTS, SITE2: _certificate_with_party_key(SITE2)}
    with pytest.raises(InvalidSignature, match="no ECDSA key"):
        verify_chain(A, DA, ReceiptChain((by_party,)), _check(records))


# Cost: each receipt checked once, however many results share it.


def test_each_receipt_is_checked_once_however_often_it_is_shared() -> None:
    """A ladder where each result is built on the two before it has exponentially many
    paths; verifying it checks each receipt's signature exactly once."""
    results = [ResultId(_hex(f"r{i}")) for i in range(40)]
    digests = [_hex(f"image {i}") for i in range(40)]
    receipts = []
    for i, result in enumerate(results):
        inputs = [COMPUTE, DATA] + [
            ReceiptInput(f"input{j}", str(results[i - j]), digests[i - j])
            for j in (1, 2)
            if i - j >= 0
        ]
        receipts.append(_signed(result, digests[i], SITE1, inputs))
    checked: list[SiteId] = []
    check = _check()

    def counting(site: SiteId, data: bytes, signature: bytes) -> None:
        checked.append(site)
        check(site, data, signature)

    lines = verify_chain(results[-1], digests[-1], ReceiptChain(tuple(receipts)), counting)
    assert len(lines) == len(checked) == len(results)
