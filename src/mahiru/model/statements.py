"""How signed statements (approvals, rejections, releases) are read: one written form
each, parsed strictly field by field, their signature in canonical base64.

Each statement's signature covers the canonical JSON bytes of its fields, and its
`type` names its kind and version, so no statement passes for another kind; a document
not written the way the statement's `to_dict` writes it is refused as it is parsed.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from mahiru.errors import InvalidIdentifier, InvalidInput
from mahiru.model.identifiers import PartyId, ResultId, SiteId

#: A hex sha256 (a digest, a rule id).
HEX = re.compile(r"[0-9a-f]{64}")
Id = TypeVar("Id", ResultId, PartyId, SiteId)


class Written(Protocol):
    """A statement: it has one written form."""

    def to_dict(self) -> dict[str, Any]: ...


Statement = TypeVar("Statement", bound=Written)


def exact(data: object, keys: set[str], what: str, kind: str | None = None) -> Mapping[str, Any]:
    """`data`, if it is a mapping with exactly `keys` (and, given `kind`, a `type` of
    `kind`); InvalidInput naming `what` otherwise."""
    if not isinstance(data, Mapping) or set(data) != keys:
        raise InvalidInput(
            f"a{'n' if what[0] in 'aeiou' else ''} {what} has exactly the fields {sorted(keys)}"
        )
    if kind is not None and data["type"] != kind:
        raise InvalidInput(f"{what} type must be {kind!r}, got {data['type']!r:.80}")
    return data


def canonical(statement: Statement, data: Mapping[str, Any], what: str) -> Statement:
    """`statement`, parsed from `data`, if `data` is written as `statement` writes itself;
    InvalidInput naming the first field that is not."""
    written = statement.to_dict()
    for key in sorted(written):
        if written[key] != data[key]:
            raise InvalidInput(f"{what} field {key!r} is not in its canonical form", {"field": key})
    return statement


def b64(signature: bytes) -> str:
    """A signature's written form: base64."""
    return base64.b64encode(signature).decode()


def split_signature(data: object, what: str) -> tuple[dict[str, Any], bytes]:
    """The fields of a signed statement's written form and its signature's bytes, the
    signature in canonical base64; InvalidInput naming `what` otherwise."""
    if not isinstance(data, Mapping) or not isinstance(data.get("signature"), str):
        raise InvalidInput(f"a signed {what} needs a base64 'signature'")
    signature = data["signature"]
    try:
        decoded = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{what} signature is not base64") from None
    if base64.b64encode(decoded).decode() != signature:
        raise InvalidInput(f"{what} signature is not in canonical base64")
    return {k: v for k, v in data.items() if k != "signature"}, decoded


def text_field(data: Mapping[str, Any], key: str, what: str, *, limit: int = 512) -> str:
    """Field `key`: non-blank text of at most `limit` characters."""
    value = data[key]
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise InvalidInput(f"{what} field {key!r} must be text, got {value!r:.80}")
    return value


def digest_field(data: Mapping[str, Any], key: str, what: str) -> str:
    """Field `key`: a hex sha256."""
    value = text_field(data, key, what)
    if not HEX.fullmatch(value):
        raise InvalidInput(f"{what} field {key!r} must be a hex sha256")
    return value


def identifier_field(kind: type[Id], data: Mapping[str, Any], key: str, what: str) -> Id:
    """Field `key`: the text of an identifier of `kind`."""
    try:
        return kind.parse(text_field(data, key, what))
    except InvalidIdentifier as error:
        raise InvalidInput(f"{what} field {key!r}: {error.message}") from None


def time_field(data: Mapping[str, Any], key: str, what: str) -> datetime:
    """Field `key`: an ISO 8601 time in UTC, with its offset."""
    try:
        at = datetime.fromisoformat(text_field(data, key, what))
    except ValueError:
        raise InvalidInput(f"{what} field {key!r} is not an ISO 8601 time") from None
    if at.utcoffset() != timedelta(0):
        raise InvalidInput(f"{what} field {key!r} must be in UTC, with its offset (+00:00)")
    return at
