"""Checks for the fields of dict forms (parsed JSON or YAML), shared by every strict parser.

Pure: each function returns the checked value or raises InvalidInput naming
what was being parsed, the field and the offending value.
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any

from mahiru.errors import InvalidInput


def mapping(data: object, what: str) -> Mapping[Any, Any]:
    """Return `data` if it is a mapping; otherwise InvalidInput naming `what` and the type."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"{what} must be a mapping, got {type(data).__name__}")
    return data


def check_fields(
    data: object,
    what: str,
    required: AbstractSet[str],
    optional: AbstractSet[str] = frozenset(),
    *,
    headed: bool = False,
    details: Any = None,
) -> Mapping[str, Any]:
    """Return `data` if it is a mapping with all `required` keys and no keys but `optional`.

    Otherwise one InvalidInput (with `details`) lists every missing and unknown field:
    `"job: missing inputs; unknown field(s) x"`, or when `headed` (the wording rules and
    stored records have always used) `"MayAccess rule has wrong fields: missing asset; unknown x"`.
    Without `details`, the error's details list the missing and unknown fields.
    """
    checked = mapping(data, what)
    missing = required - set(checked)
    unknown = set(checked) - required - optional
    if missing or unknown:
        problems = []
        if missing:
            problems.append(f"missing {', '.join(sorted(missing))}")
        if unknown:
            # YAML keys need not be strings; sort their text so mixed types cannot crash.
            label = "unknown" if headed else "unknown field(s)"
            problems.append(f"{label} {', '.join(sorted(map(str, unknown)))}")
        heading = f"{what} has wrong fields" if headed else what
        if details is None:
            details = {"missing": sorted(missing), "unknown": sorted(map(str, unknown))}
        raise InvalidInput(f"{heading}: {'; '.join(problems)}", details)
    return checked


def name_map(data: object, what: str) -> Mapping[str, Any]:
    """Return `data` if it is a mapping keyed by text, or an empty one if it is None."""
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise InvalidInput(f"{what} must be a mapping of names")
    return data


def text(data: Mapping[str, Any], key: str, what: str) -> str:
    """Return field `key` of `data`, which must be non-empty text."""
    value = data[key]
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} field {key!r} must be non-empty text, got {value!r}")
    return value


def optional_text(data: Mapping[str, Any], key: str, what: str) -> str | None:
    """Return field `key` of `data`, which must be non-empty text or null (or absent)."""
    value = data.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise InvalidInput(f"{what} field {key!r} must be non-empty text or null, got {value!r}")
    return value


def flag(data: Mapping[str, Any], key: str, what: str) -> bool:
    """Return field `key` of `data`, which must be true or false."""
    value = data[key]
    if not isinstance(value, bool):
        raise InvalidInput(f"{what} field {key!r} must be true or false, got {value!r}")
    return value


def integer(data: Mapping[str, Any], key: str, what: str, *, minimum: int | None = None) -> int:
    """Return field `key` of `data`, which must be an integer (not a bool), at least `minimum`."""
    value = data[key]
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or (minimum is not None and value < minimum)
    ):
        kind = "a positive integer" if minimum == 1 else "an integer"
        if minimum is not None and minimum != 1:
            kind = f"an integer of at least {minimum}"
        raise InvalidInput(f"{what} field {key!r} must be {kind}, got {value!r}")
    return value


def timestamp(data: Mapping[str, Any], key: str, what: str) -> datetime:
    """Return field `key` of `data`, which must be an ISO 8601 time with a zone."""
    value = data[key]
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise InvalidInput(
            f"{what} field {key!r} must be an ISO 8601 time with zone, got {value!r}"
        )
    return parsed


def optional_timestamp(data: Mapping[str, Any], key: str, what: str) -> datetime | None:
    """Return field `key` of `data`: null, or an ISO 8601 time with a zone."""
    return None if data[key] is None else timestamp(data, key, what)
