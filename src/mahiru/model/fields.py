"""Checks for the fields of dict forms (parsed JSON or YAML), shared by every strict parser,
and the one declaration of each form's fields (`Shape`) they check and the API documents.

Pure: each function returns the checked value or raises InvalidInput naming
what was being parsed, the field and the offending value.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from mahiru.errors import InvalidInput

#: A fragment of JSON Schema (draft 2020-12, as OpenAPI 3.1 uses): the type of one value.
Schema = Mapping[str, Any]


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


# --- shapes: the fields of a dict form, declared once ----------------------------------------


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a dict form: its name, the JSON Schema of its value, and whether it
    must be there."""

    name: str
    schema: Schema
    required: bool = True


def optional(name: str, schema: Schema) -> Field:
    """A field that may be left out."""
    return Field(name, schema, required=False)


@dataclass(frozen=True, slots=True)
class Shape:
    """The fields of one dict form: what the parser checks (`check`) and what the API
    documents (`json_schema`), from the one list.

    `what` names the form in errors; `headed` picks the wording of `check_fields`.
    The parser still checks each value's meaning; the schema says as much of it as
    JSON Schema can (types, patterns, bounds), so a value the schema refuses the
    parser refuses too.
    """

    what: str
    description: str
    fields: tuple[Field, ...]
    headed: bool = False

    @property
    def required(self) -> frozenset[str]:
        """The names of the fields that must be there."""
        return frozenset(f.name for f in self.fields if f.required)

    @property
    def optional(self) -> frozenset[str]:
        """The names of the fields that may be left out."""
        return frozenset(f.name for f in self.fields if not f.required)

    def check(self, data: object, *, details: Any = None) -> Mapping[str, Any]:
        """`data` if it is a mapping with exactly these fields (`check_fields`)."""
        return check_fields(
            data, self.what, self.required, self.optional, headed=self.headed, details=details
        )

    def with_fields(self, *fields: Field, what: str, description: str) -> Shape:
        """This shape with `fields` added (a field of the same name replaced)."""
        added = {f.name for f in fields}
        kept = tuple(f for f in self.fields if f.name not in added)
        return replace(self, what=what, description=description, fields=kept + fields)

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the form: an object with these fields and no others."""
        return {
            "type": "object",
            "title": self.what,
            "description": self.description,
            "properties": {f.name: copy.deepcopy(dict(f.schema)) for f in self.fields},
            "required": sorted(self.required),
            "additionalProperties": False,
        }


def string(
    *, pattern: str | None = None, description: str | None = None, non_empty: bool = False
) -> dict[str, Any]:
    """The schema of text, maybe matching `pattern` (anchored) or non-empty."""
    schema: dict[str, Any] = {"type": "string"}
    if non_empty:
        schema["minLength"] = 1
    if pattern is not None:
        schema["pattern"] = pattern
    if description is not None:
        schema["description"] = description
    return schema


def const(value: str) -> dict[str, Any]:
    """The schema of exactly `value`."""
    return {"type": "string", "const": value}


def choice(*values: str) -> dict[str, Any]:
    """The schema of one of `values`."""
    return {"type": "string", "enum": list(values)}


def whole(*, minimum: int | None = None, maximum: int | None = None) -> dict[str, Any]:
    """The schema of an integer within the bounds given."""
    schema: dict[str, Any] = {"type": "integer"}
    if minimum is not None:
        schema["minimum"] = minimum
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


BOOLEAN: Schema = {"type": "boolean"}
#: What `timestamp` accepts (an ISO 8601 time with its zone).
TIMESTAMP: Schema = {"type": "string", "format": "date-time"}
#: Any JSON value.
ANY: Schema = {}


def array(items: Schema) -> dict[str, Any]:
    """The schema of a list of `items`."""
    return {"type": "array", "items": copy.deepcopy(dict(items))}


def names_to(values: Schema, *, keys: str | None = None) -> dict[str, Any]:
    """The schema of a mapping of names (matching the pattern `keys`) to `values`."""
    schema = {"type": "object", "additionalProperties": copy.deepcopy(dict(values))}
    if keys is not None:
        schema["propertyNames"] = {"pattern": keys}
    return schema


def nullable(schema: Schema) -> dict[str, Any]:
    """`schema`, or null."""
    return {"anyOf": [copy.deepcopy(dict(schema)), {"type": "null"}]}


def one_of(*schemas: Schema, discriminator: str, description: str | None = None) -> dict[str, Any]:
    """Exactly one of `schemas`: the branches of a form, told apart by the constant value
    of their field `discriminator` (which OpenAPI readers are told)."""
    schema: dict[str, Any] = {
        "oneOf": [copy.deepcopy(dict(s)) for s in schemas],
        "discriminator": {"propertyName": discriminator},
    }
    if description is not None:
        schema["description"] = description
    return schema
