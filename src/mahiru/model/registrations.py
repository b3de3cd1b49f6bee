"""Signed registration documents: what a party asks the registry to change (reference: HTTP APIs).

A document is one JSON object, in one of four shapes:

    {"action": "put_party",    "record": {<party record>},      "base_version": 7,
     "issued_at": "2025-01-31T12:00:00Z", "signature": "<base64>"}
    {"action": "put_site",     "record": {<site record>},       ...}
    {"action": "remove_party", "id": "party:<namespace>:<name>", ...}
    {"action": "remove_site",  "id": "site:<namespace>:<name>",  ...}

Records are in the form of `PartyRecord.to_dict` and `SiteRecord.to_dict`.
`signature` is the Ed25519 signature, by the main key of the party that owns
the subject's namespace, over the canonical JSON (`canonical_json`: keys
sorted, no whitespace, UTF-8) of every other field. A document must be in
exactly the normal form `SignedRegistration.to_dict` writes, so the bytes that
were signed are the bytes that are interpreted.

Replays. Two fields make a copy of an old document useless:

- `base_version` is the registry version the document was made against. The
  registry applies a document only while its version is still exactly that (a
  compare-and-swap), so once the registry has changed, by this document or by
  any other, the document can never be applied again. A client that loses a
  race against another registration signs again against the newer version.
- `issued_at` bounds how long a document that was never delivered stays usable
  in a quiet registry: it is accepted from `MAX_CLOCK_SKEW` before its time to
  `MAX_AGE` after it.

Neither alone would do: within any time window, a removal could be undone by
replaying the registration before it; and with versions alone, a signed but
undelivered document could still apply months later.

This module is pure: the caller passes the current time in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography.exceptions import InvalidSignature as _CryptoInvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mahiru.errors import InvalidInput, InvalidSignature
from mahiru.model.canonical import canonical_json
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.registration_forms import (
    DOCUMENT_SHAPES,
    MAX_AGE,
    SIGNED_DOCUMENT_SHAPES,
    TIME_TEXT,
    RegistrationAction,
)
from mahiru.model.registry import (
    PartyRecord,
    SiteRecord,
)

MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far a document's `issued_at` may lie ahead of the registry's clock."""

STALE_BASE_VERSION = "stale_base_version"
"""`details["reason"]` of the Conflict raised for a document made against an old version."""

_SIGNATURE_BYTES = 64
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class RegistrationOutcome:
    """What applying a registration did: the registry version now, and whether it changed."""

    version: int
    changed: bool


def format_time(moment: datetime) -> str:
    """The text form of `issued_at`: UTC, whole seconds, `YYYY-MM-DDTHH:MM:SSZ`."""
    if moment.tzinfo is None:
        raise InvalidInput(f"a registration time must have a time zone, got {moment!r}")
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


def parse_time(text: object) -> datetime:
    """Parse the text form of `issued_at` strictly; anything else is InvalidInput."""
    if isinstance(text, str) and TIME_TEXT.fullmatch(text):
        try:
            return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            pass
    raise InvalidInput(
        f"registration field 'issued_at' must be a UTC time written YYYY-MM-DDTHH:MM:SSZ,"
        f" got {text!r}",
        {"issued_at": text},
    )


@dataclass(frozen=True, slots=True)
class Registration:
    """An unsigned registration: the action, its subject, and what binds it to a moment.

    `record` is the party or site record for the two `put_*` actions and None
    for removals; `subject` is always the id of the party or site concerned.
    Build one with `put_party`, `put_site`, `remove_party` or `remove_site`.
    """

    action: RegistrationAction
    subject: PartyId | SiteId
    record: PartyRecord | SiteRecord | None
    base_version: int
    issued_at: datetime

    def __post_init__(self) -> None:
        action = _action(self.action)
        subject_type = SiteId if action.is_about_site else PartyId
        record_type = SiteRecord if action.is_about_site else PartyRecord
        if not isinstance(self.subject, subject_type):
            raise InvalidInput(f"{action} needs a {subject_type.kind} id, got {self.subject!r}")
        if action.is_removal:
            if self.record is not None:
                raise InvalidInput(f"{action} carries no record")
        elif not isinstance(self.record, record_type):
            raise InvalidInput(f"{action} needs a {subject_type.kind} record")
        elif self.record.id != self.subject:
            raise InvalidInput(f"{action}: record {self.record.id} is not about {self.subject}")
        version = self.base_version
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise InvalidInput(
                f"registration field 'base_version' must be an integer >= 0, got {version!r}",
                {"base_version": version},
            )
        if not isinstance(self.issued_at, datetime):
            raise InvalidInput(f"a registration time must be a datetime, got {self.issued_at!r}")
        # Whole seconds in UTC: exactly what the text form can carry.
        object.__setattr__(self, "action", action)
        object.__setattr__(self, "issued_at", parse_time(format_time(self.issued_at)))

    @classmethod
    def put_party(
        cls, record: PartyRecord, *, base_version: int, issued_at: datetime
    ) -> Registration:
        """Register a party, or update its keys."""
        return cls(RegistrationAction.PUT_PARTY, record.id, record, base_version, issued_at)

    @classmethod
    def put_site(
        cls, record: SiteRecord, *, base_version: int, issued_at: datetime
    ) -> Registration:
        """Register a site, or update it."""
        return cls(RegistrationAction.PUT_SITE, record.id, record, base_version, issued_at)

    @classmethod
    def remove_party(
        cls, party_id: PartyId, *, base_version: int, issued_at: datetime
    ) -> Registration:
        """Remove a party (it must no longer own or administer any site)."""
        return cls(RegistrationAction.REMOVE_PARTY, party_id, None, base_version, issued_at)

    @classmethod
    def remove_site(
        cls, site_id: SiteId, *, base_version: int, issued_at: datetime
    ) -> Registration:
        """Remove a site."""
        return cls(RegistrationAction.REMOVE_SITE, site_id, None, base_version, issued_at)

    @property
    def namespace(self) -> str:
        """The namespace whose owner must sign this document."""
        return self.subject.namespace

    def to_dict(self) -> dict[str, Any]:
        """The unsigned JSON form: every field of the document except `signature`."""
        body: dict[str, Any] = {
            "action": self.action.value,
            "base_version": self.base_version,
            "issued_at": format_time(self.issued_at),
        }
        if self.record is None:
            body["id"] = str(self.subject)
        else:
            body["record"] = self.record.to_dict()
        return body

    def canonical_bytes(self) -> bytes:
        """The bytes the signature covers."""
        return canonical_json(self.to_dict(), escape_non_ascii=False)

    def sign(self, key: Ed25519PrivateKey) -> SignedRegistration:
        """This registration signed with a party's main key."""
        return SignedRegistration(self, key.sign(self.canonical_bytes()))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Registration:
        """Parse the unsigned JSON form strictly (InvalidInput naming the wrong field)."""
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a registration must be a JSON object, got {data!r}")
        action = _action(data.get("action"))
        DOCUMENT_SHAPES[action].check(data)
        subject: PartyId | SiteId
        record: PartyRecord | SiteRecord | None = None
        if action.is_removal:
            text = data["id"]
            try:
                subject = SiteId.parse(text) if action.is_about_site else PartyId.parse(text)
            except InvalidInput as error:
                raise InvalidInput(f"registration field 'id': {error.message}") from None
        else:
            record = (
                SiteRecord.from_dict(data["record"])
                if action.is_about_site
                else PartyRecord.from_dict(data["record"])
            )
            subject = record.id
        return cls(action, subject, record, data["base_version"], parse_time(data["issued_at"]))

    def __str__(self) -> str:
        return f"{self.action} {self.subject}"


@dataclass(frozen=True, slots=True)
class SignedRegistration:
    """A registration with the Ed25519 signature of its namespace owner's main key."""

    registration: Registration
    signature: bytes

    def to_dict(self) -> dict[str, Any]:
        """The JSON document: the registration's fields plus base64 `signature`."""
        signature = base64.b64encode(self.signature).decode("ascii")
        return {**self.registration.to_dict(), "signature": signature}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedRegistration:
        """Parse a document strictly; it must be in the normal form `to_dict` writes.

        The signature is not checked here: that needs the right key (`verify`).
        """
        if not isinstance(data, Mapping):
            raise InvalidInput(f"a registration document must be a JSON object, got {data!r}")
        SIGNED_DOCUMENT_SHAPES[_action(data.get("action"))].check(data)
        body = {key: value for key, value in data.items() if key != "signature"}
        signed = cls(Registration.from_dict(body), _decode_signature(data["signature"]))
        if canonical_json(signed.to_dict(), escape_non_ascii=False) != canonical_json(
            dict(data), escape_non_ascii=False
        ):
            raise InvalidInput(
                f"{signed.registration}: the document is not in normal form"
                " (write it as SignedRegistration.to_dict does: every record field present,"
                " times as YYYY-MM-DDTHH:MM:SSZ, padded base64)",
                {"expected": signed.to_dict()},
            )
        return signed

    def verify(self, key: Ed25519PublicKey, *, signer: str) -> None:
        """Check the signature with `key`, the main key of `signer`; else InvalidSignature."""
        try:
            key.verify(self.signature, self.registration.canonical_bytes())
        except _CryptoInvalidSignature:
            raise InvalidSignature(
                f"{self.registration}: the signature does not verify with the main key of {signer}",
                {"subject": str(self.registration.subject), "signer": signer},
            ) from None


def check_fresh(
    registration: Registration,
    now: datetime,
    *,
    max_age: timedelta = MAX_AGE,
    max_clock_skew: timedelta = MAX_CLOCK_SKEW,
) -> None:
    """Raise InvalidInput unless `registration` was issued within the accepted window."""
    issued = registration.issued_at
    details = {"issued_at": format_time(issued), "registry_time": format_time(now)}
    if issued > now + max_clock_skew:
        raise InvalidInput(
            f"{registration}: issued at {details['issued_at']}, which is more than"
            f" {_minutes(max_clock_skew)} ahead of the registry's clock"
            f" ({details['registry_time']}); check the clocks of both machines",
            {**details, "reason": "issued_in_future"},
        )
    if issued < now - max_age:
        raise InvalidInput(
            f"{registration}: issued at {details['issued_at']}, more than {_minutes(max_age)}"
            f" before the registry's clock ({details['registry_time']}); sign it again",
            {**details, "reason": "expired"},
        )


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:g} minute{'' if minutes == 1 else 's'}"


def _action(value: object) -> RegistrationAction:
    for action in RegistrationAction:
        if value == action.value:
            return action
    names = ", ".join(action.value for action in RegistrationAction)
    raise InvalidInput(
        f"registration field 'action' must be one of {names}, got {value!r}", {"action": value}
    )


def _decode_signature(value: object) -> bytes:
    if not isinstance(value, str):
        raise InvalidInput(f"registration field 'signature' must be base64 text, got {value!r}")
    try:
        signature = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput("registration field 'signature' is not valid base64") from None
    if len(signature) != _SIGNATURE_BYTES:
        raise InvalidInput(
            f"registration field 'signature' must hold {_SIGNATURE_BYTES} bytes (Ed25519),"
            f" got {len(signature)}"
        )
    return signature
