"""A question a user asks a site's policy to explain: may a site access, or a party use,
one item of a job."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from mahiru.errors import InvalidInput
from mahiru.model.fields import Field, Shape, nullable, optional, string
from mahiru.model.identifiers import PartyId, SiteId, identifier_pattern
from mahiru.model.items import WorkflowItem
from mahiru.model.serialization import JOB_SHAPE, job_from_dict, job_to_dict
from mahiru.model.workflow import Job

T = TypeVar("T")

POLICY_QUESTION_SHAPE = Shape(
    "explain request",
    "Which decision to explain: access by `site`, or use by `party`, of one item of `job`;"
    " give exactly one of the two.",
    (
        Field("job", JOB_SHAPE.json_schema()),
        Field(
            "item",
            string(
                non_empty=True,
                description="input, step, step.input, step.@output, step.output or output",
            ),
        ),
        optional("site", nullable(string(pattern=identifier_pattern("site")))),
        optional("party", nullable(string(pattern=identifier_pattern("party")))),
    ),
)


@dataclass(frozen=True, slots=True)
class PolicyQuestion:
    """Whether `site` may access, or `party` may use, `item` of `job` (exactly one of them)."""

    job: Job
    item: WorkflowItem
    site: SiteId | None = None
    party: PartyId | None = None

    def __post_init__(self) -> None:
        if (self.site is None) == (self.party is None):
            raise InvalidInput("give exactly one of site or party")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the one of site and party not asked about is null)."""
        return {
            "job": job_to_dict(self.job),
            "item": str(self.item),
            "site": None if self.site is None else str(self.site),
            "party": None if self.party is None else str(self.party),
        }

    @classmethod
    def from_dict(cls, data: object) -> PolicyQuestion:
        """Parse the JSON form strictly; InvalidInput naming the wrong field."""
        d = POLICY_QUESTION_SHAPE.check(data)
        job = job_from_dict(d["job"])
        return cls(
            job,
            WorkflowItem.parse(d["item"], job.workflow),
            _optional(d.get("site"), "site", SiteId.parse),
            _optional(d.get("party"), "party", PartyId.parse),
        )


def _optional(value: object, key: str, parse: Callable[[str], T]) -> T | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"explain request field {key!r} must be text or null, got {value!r}")
    try:
        return parse(value)
    except InvalidInput as error:
        raise InvalidInput(f"explain request field {key!r}: {error.message}") from None
