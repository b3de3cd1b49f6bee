"""Signed registration documents: the wire form, signatures, tampering and freshness."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from mahiru import pki
from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registration_forms import MAX_AGE, RegistrationAction
from mahiru.model.registrations import (
    MAX_CLOCK_SKEW,
    Registration,
    SignedRegistration,
    check_fresh,
)
from mahiru.model.registry import PartyRecord, SiteEndpoints, SiteRecord

PARTY = PartyId.parse("party:party1.example.org:party1")
SITE = SiteId.parse("site:party1.example.org:site1")
NOW = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)
KEY = pki.generate_party_key()
OTHER_KEY = pki.generate_party_key()


def party_record(key: Any = KEY) -> PartyRecord:
    return PartyRecord(PARTY, PARTY.namespace, pki.public_key_pem(key), "user CA PEM")


def site_record() -> SiteRecord:
    return SiteRecord(
        SITE,
        PARTY,
        PARTY,
        SiteEndpoints("https://site1:8443/internal", None),
        "site certificate PEM",
        has_store=True,
        has_runner=False,
    )


def all_registrations() -> list[Registration]:
    return [
        Registration.put_party(party_record(), base_version=0, issued_at=NOW),
        Registration.put_site(site_record(), base_version=3, issued_at=NOW),
        Registration.remove_party(PARTY, base_version=4, issued_at=NOW),
        Registration.remove_site(SITE, base_version=5, issued_at=NOW),
    ]


@pytest.mark.parametrize("registration", all_registrations(), ids=str)
def test_signed_document_round_trips_and_verifies(registration: Registration) -> None:
    """A signed document survives JSON and verifies with the signer's public key."""
    signed = registration.sign(KEY)
    document = json.loads(json.dumps(signed.to_dict()))
    parsed = SignedRegistration.from_dict(document)
    assert parsed == signed
    parsed.verify(KEY.public_key(), signer=str(PARTY))


def test_document_has_the_documented_shape() -> None:
    """Removals name an id, puts carry the record; times are UTC `...Z`, signatures base64."""
    removal = Registration.remove_site(SITE, base_version=5, issued_at=NOW).sign(KEY).to_dict()
    assert set(removal) == {"action", "id", "base_version", "issued_at", "signature"}
    assert removal["action"] == "remove_site"
    assert removal["id"] == str(SITE)
    assert removal["issued_at"] == "2025-01-31T12:00:00Z"
    assert len(base64.b64decode(removal["signature"])) == 64
    put = Registration.put_site(site_record(), base_version=3, issued_at=NOW).sign(KEY).to_dict()
    assert set(put) == {"action", "record", "base_version", "issued_at", "signature"}
    assert put["record"] == site_record().to_dict()


def test_signature_covers_canonical_json_of_everything_but_the_signature() -> None:
    """The signed bytes are sorted-key compact UTF-8 JSON of the document minus `signature`."""
    signed = Registration.put_party(party_record(), base_version=0, issued_at=NOW).sign(KEY)
    body = {k: v for k, v in signed.to_dict().items() if k != "signature"}
    expected = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    KEY.public_key().verify(signed.signature, expected.encode("utf-8"))
    assert canonical_json({"b": "é", "a": [1, 2]}, escape_non_ascii=False) == (
        '{"a":[1,2],"b":"é"}'.encode()
    )


def test_issued_at_is_kept_to_whole_seconds_in_utc() -> None:
    """A local time with microseconds is normalised to what the text form carries."""
    local = datetime(2025, 1, 31, 14, 0, 0, 999_999, tzinfo=timezone(timedelta(hours=1)))
    registration = Registration.remove_site(SITE, base_version=0, issued_at=local)
    assert registration.issued_at == datetime(2025, 1, 31, 13, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda d: d.update(base_version=d["base_version"] + 1),
        lambda d: d.update(issued_at="2025-01-31T12:00:01Z"),
        lambda d: d["record"].update(has_runner=True),
        lambda d: d["record"]["endpoints"].update(external="https://evil.example.org"),
        lambda d: d["record"].update(admin="party:party1.example.org:other"),
    ],
    ids=["base_version", "issued_at", "flag", "endpoint", "admin"],
)
def test_tampered_document_does_not_verify(tamper: Any) -> None:
    """Changing any signed field breaks the signature."""
    document = Registration.put_site(site_record(), base_version=3, issued_at=NOW).sign(KEY)
    data = json.loads(json.dumps(document.to_dict()))
    tamper(data)
    parsed = SignedRegistration.from_dict(data)
    with pytest.raises(InvalidSignature, match="does not verify with the main key of"):
        parsed.verify(KEY.public_key(), signer=str(PARTY))


def test_action_cannot_be_swapped() -> None:
    """A removal signature does not make a removal of the other kind."""
    signed = Registration.remove_site(SITE, base_version=1, issued_at=NOW).sign(KEY).to_dict()
    signed["action"] = "remove_party"
    signed["id"] = str(PARTY)
    with pytest.raises(InvalidSignature):
        SignedRegistration.from_dict(signed).verify(KEY.public_key(), signer=str(PARTY))


def test_wrong_key_does_not_verify() -> None:
    """A document signed by another key is rejected."""
    signed = Registration.remove_site(SITE, base_version=1, issued_at=NOW).sign(OTHER_KEY)
    with pytest.raises(InvalidSignature):
        signed.verify(KEY.public_key(), signer=str(PARTY))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("signature"), "missing signature"),
        (lambda d: d.update(signature="not base64!"), "not valid base64"),
        (lambda d: d.update(signature=base64.b64encode(b"short").decode()), "64 bytes"),
        (lambda d: d.update(extra=1), "unknown extra"),
        (lambda d: d.pop("base_version"), "missing base_version"),
        (lambda d: d.update(action="rename_site"), "must be one of"),
        (lambda d: d.update(base_version=-1), "integer >= 0"),
        (lambda d: d.update(base_version=True), "integer >= 0"),
        (lambda d: d.update(base_version="3"), "integer >= 0"),
        (lambda d: d.update(issued_at="2025-01-31T12:00:00+00:00"), "YYYY-MM-DDTHH:MM:SSZ"),
        (lambda d: d.update(issued_at="2025-02-30T12:00:00Z"), "YYYY-MM-DDTHH:MM:SSZ"),
        (lambda d: d.update(id="site:party1.example.org"), "segments"),
        (lambda d: d.update(id="party:party1.example.org:x"), "not a site identifier"),
        (lambda d: d.update(record={}), "unknown record"),
    ],
)
def test_malformed_documents_are_invalid_input(change: Any, message: str) -> None:
    """Every malformed field is InvalidInput naming the problem."""
    data = Registration.remove_site(SITE, base_version=1, issued_at=NOW).sign(KEY).to_dict()
    change(data)
    with pytest.raises(InvalidInput, match=message):
        SignedRegistration.from_dict(data)


def test_documents_must_be_in_normal_form() -> None:
    """What is interpreted is exactly what was signed: no alternative spellings."""
    signed = Registration.put_site(site_record(), base_version=3, issued_at=NOW).sign(KEY)
    data = signed.to_dict()
    del data["record"]["endpoints"]["external"]  # the same record, written shorter
    with pytest.raises(InvalidInput, match="normal form"):
        SignedRegistration.from_dict(data)
    unpadded = signed.to_dict()
    unpadded["signature"] = unpadded["signature"].rstrip("=")
    with pytest.raises(InvalidInput):
        SignedRegistration.from_dict(unpadded)


def test_record_must_match_action_and_subject() -> None:
    """A registration is internally consistent by construction."""
    with pytest.raises(InvalidInput, match="needs a site record"):
        Registration(RegistrationAction.PUT_SITE, SITE, party_record(), 0, NOW)
    with pytest.raises(InvalidInput, match="carries no record"):
        Registration(RegistrationAction.REMOVE_PARTY, PARTY, party_record(), 0, NOW)
    with pytest.raises(InvalidInput, match="needs a party id"):
        Registration(RegistrationAction.REMOVE_PARTY, SITE, None, 0, NOW)


def test_fresh_documents_pass() -> None:
    """Documents issued within the window, allowing for clock skew, are fresh."""
    for issued in (NOW, NOW - MAX_AGE, NOW + MAX_CLOCK_SKEW):
        check_fresh(Registration.remove_site(SITE, base_version=0, issued_at=issued), NOW)


def test_replayed_old_document_is_rejected() -> None:
    """A document older than the maximum age is expired, however well signed."""
    old = Registration.remove_site(
        SITE, base_version=0, issued_at=NOW - MAX_AGE - timedelta(seconds=1)
    )
    with pytest.raises(InvalidInput, match="sign it again") as raised:
        check_fresh(old, NOW)
    assert raised.value.details["reason"] == "expired"


def test_document_from_the_future_is_rejected() -> None:
    """A document dated beyond the clock-skew allowance is refused with a hint."""
    future = Registration.remove_site(
        SITE, base_version=0, issued_at=NOW + MAX_CLOCK_SKEW + timedelta(seconds=1)
    )
    with pytest.raises(InvalidInput, match="check the clocks") as raised:
        check_fresh(future, NOW)
    assert raised.value.details["reason"] == "issued_in_future"
