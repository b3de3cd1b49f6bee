"""The checks a `ReleaseReviewedBy` rule asks of a result before it may leave: values and
their dict form.

Pure values, parsed strictly: `ReviewChecks.from_dict` refuses unknown keys and
wrong types naming the field. An empty `ReviewChecks` declares no check; the
rule leaves it out of its dict form, so its signed bytes are those of a rule
written without checks. Running the checks on output files is
`mahiru.policy.output_checks`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mahiru.errors import InvalidInput
from mahiru.model.canonical import canonical_json
from mahiru.model.fields import Field, Shape, check_fields, integer, optional, string, whole

#: A file extension as `file_types` lists it: lower-case, without the dot.
_EXTENSION = re.compile(r"[a-z0-9]+")

MIN_COUNT_SHAPE = Shape(
    "min_count",
    "For tabular outputs: the count column `column` is at least `at_least` in every row.",
    (
        Field("column", string(non_empty=True, description="the name of the count column")),
        Field("at_least", whole(minimum=1)),
    ),
)
REVIEW_CHECKS_SHAPE = Shape(
    "checks",
    "Checks a result must pass before its reviewer may release it; each is optional.",
    (
        optional("max_bytes", whole(minimum=1)),
        optional(
            "file_types",
            {
                "type": "array",
                "items": string(pattern=f"^{_EXTENSION.pattern}$"),
                "minItems": 1,
                "uniqueItems": True,
                "description": "allowed file extensions, lower-case, without the dot",
            },
        ),
        optional("min_count", MIN_COUNT_SHAPE.json_schema()),
    ),
)


@dataclass(frozen=True, slots=True)
class MinCount:
    """In every row of a tabular output, the number in column `column` is at least
    `at_least` (so no row describes fewer than that many people or records)."""

    column: str
    at_least: int

    def __post_init__(self) -> None:
        if not isinstance(self.column, str) or not self.column:
            raise InvalidInput(f"min_count column must be non-empty text, got {self.column!r}")
        integer({"at_least": self.at_least}, "at_least", "min_count", minimum=1)

    @classmethod
    def from_dict(cls, data: object, what: str = "min_count") -> MinCount:
        """Parse `{column, at_least}` strictly; errors name `what` and the field."""
        checked = check_fields(data, what, MIN_COUNT_SHAPE.required, MIN_COUNT_SHAPE.optional)
        column = checked["column"]
        if not isinstance(column, str) or not column:
            raise InvalidInput(f"{what} field 'column' must be non-empty text, got {column!r}")
        return cls(column, integer(checked, "at_least", what, minimum=1))

    def to_dict(self) -> dict[str, Any]:
        """The dict form."""
        return {"column": self.column, "at_least": self.at_least}


@dataclass(frozen=True, slots=True)
class ReviewChecks:
    """The checks declared on a review rule; a None field (or empty) declares none.

    `file_types` is kept sorted, so the same checks written in another order
    sign the same bytes.
    """

    max_bytes: int | None = None
    file_types: tuple[str, ...] | None = None
    min_count: MinCount | None = None

    def __post_init__(self) -> None:
        if self.max_bytes is not None:
            integer({"max_bytes": self.max_bytes}, "max_bytes", "checks", minimum=1)
        if self.file_types is not None:
            object.__setattr__(self, "file_types", _file_types(self.file_types, "checks"))
        if self.min_count is not None and not isinstance(self.min_count, MinCount):
            raise InvalidInput(
                f"checks field 'min_count' must be a MinCount, got {self.min_count!r}"
            )

    def __bool__(self) -> bool:
        """Whether any check is declared."""
        return any(v is not None for v in (self.max_bytes, self.file_types, self.min_count))

    @classmethod
    def from_dict(cls, data: object, what: str = "checks") -> ReviewChecks:
        """Parse the dict form strictly: unknown keys and wrong types are InvalidInput
        naming `what` and the field."""
        checked = check_fields(
            data, what, REVIEW_CHECKS_SHAPE.required, REVIEW_CHECKS_SHAPE.optional
        )
        max_bytes = (
            integer(checked, "max_bytes", what, minimum=1) if "max_bytes" in checked else None
        )
        file_types = _file_types(checked["file_types"], what) if "file_types" in checked else None
        min_count = (
            MinCount.from_dict(checked["min_count"], f"{what}.min_count")
            if "min_count" in checked
            else None
        )
        return cls(max_bytes, file_types, min_count)

    def to_dict(self) -> dict[str, Any]:
        """The dict form, with only the checks declared (empty when none is)."""
        out: dict[str, Any] = {}
        if self.max_bytes is not None:
            out["max_bytes"] = self.max_bytes
        if self.file_types is not None:
            out["file_types"] = list(self.file_types)
        if self.min_count is not None:
            out["min_count"] = self.min_count.to_dict()
        return out

    def __str__(self) -> str:
        return canonical_json(self.to_dict()).decode()


def _file_types(value: object, what: str) -> tuple[str, ...]:
    """A non-empty list of distinct lower-case extensions without the dot, sorted."""
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise InvalidInput(
            f"{what} field 'file_types' must be a non-empty list of file extensions, got {value!r}"
        )
    for item in value:
        if not isinstance(item, str) or not _EXTENSION.fullmatch(item):
            raise InvalidInput(
                f"{what} field 'file_types': {item!r} is not a lower-case file extension"
                " without the dot (like 'csv')"
            )
    if len(set(value)) != len(value):
        raise InvalidInput(f"{what} field 'file_types' lists an extension twice: {value!r}")
    return tuple(sorted(value))


#: No check declared: what a ReleaseReviewedBy rule written without `checks` holds.
NO_CHECKS = ReviewChecks()
