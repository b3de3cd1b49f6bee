"""Reviews of a result's release: a data owner looks at a result before it leaves the site.

A `ReleaseReviewedBy` rule names who must review a result before it is released to a
party. A `Review` records one such request (which result, to whom, under which rule,
what the automatic checks found) and, once a reviewer decided, the decision: who, for
which party, when, why, and whether they released it although a check failed
(`override`). A review is decided once: `Review.decide` is the only way from pending to
approved or rejected, and it refuses to approve over a failed check unless told to.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from mahiru.errors import Conflict, InvalidIdentifier, InvalidInput
from mahiru.model.digests import normalise_digest
from mahiru.model.fields import (
    BOOLEAN,
    TIMESTAMP,
    Field,
    Shape,
    array,
    choice,
    flag,
    nullable,
    optional,
    optional_text,
    optional_timestamp,
    string,
    text,
    timestamp,
)
from mahiru.model.identifiers import (
    JobId,
    PartyId,
    ResultId,
    SiteId,
    identifier_pattern,
    parse_identifier,
)
from mahiru.model.jobs.checks import aware, check_job_id, iso
from mahiru.model.jobs.states import JOB_ID_SCHEMA
from mahiru.model.review_states import ReviewState as ReviewState  # re-exported

Id = TypeVar("Id", ResultId, PartyId, SiteId)


#: What a review id may be: what an id source gives (like a job id).
REVIEW_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_PARTY = string(pattern=identifier_pattern("party"))

CHECK_SHAPE = Shape(
    "review check",
    "The outcome of one automatic check of a result, shown to its reviewer.",
    (
        Field("check", string(non_empty=True, description="the check's name")),
        Field("passed", BOOLEAN),
        Field("detail", string(description="what the check found")),
    ),
)

REVIEW_SHAPE = Shape(
    "review",
    "A review of the release of a result to a party, as a ReleaseReviewedBy rule asks,"
    " and its decision once taken.",
    (
        Field("review_id", string(pattern=f"^{REVIEW_ID_PATTERN.pattern}$")),
        Field("result", string(pattern=identifier_pattern("result"))),
        Field(
            "receiving_party",
            {**_PARTY, "description": "the party the result would be released to"},
        ),
        Field("rule_id", string(non_empty=True, description="the ReleaseReviewedBy rule's id")),
        Field(
            "reviewer",
            string(
                pattern=identifier_pattern("party", "party_category"),
                description="the party or party category the rule names as reviewer",
            ),
        ),
        Field("job_id", {**JOB_ID_SCHEMA, "description": "the job that asked for the release"}),
        Field("digest", string(pattern="^[0-9a-f]{64}$", description="the result image's")),
        Field("checks", array(CHECK_SHAPE.json_schema())),
        Field("state", choice(*(state.value for state in ReviewState))),
        Field("requested_at", TIMESTAMP),
        Field("decided_at", nullable(TIMESTAMP)),
        Field("decided_by", nullable(string(non_empty=True, description="the person"))),
        Field("decided_by_party", nullable(_PARTY)),
        Field("reason", nullable(string(non_empty=True))),
        Field("override", BOOLEAN),
        optional(
            "held_at",
            nullable(
                string(
                    pattern=identifier_pattern("site"),
                    description="the site that holds the result, when another site does",
                )
            ),
        ),
    ),
)


REVIEW_DECISION_SHAPE = Shape(
    "review decision",
    "A reviewer's decision on a review: why, and (approving only) whether to release the"
    " result although a check failed.",
    (
        Field("reason", string(non_empty=True, description="why; kept in the audit log")),
        optional(
            "override",
            {**BOOLEAN, "description": "approve although a check failed (default false)"},
        ),
    ),
)


def review_decision(body: object) -> tuple[str, bool]:
    """The reason and the override of a decision's JSON form `{reason, override?}`;
    InvalidInput naming a missing, unknown or bad field."""
    what = "review decision"
    data = REVIEW_DECISION_SHAPE.check(body)
    reason = text(data, "reason", what)
    if not reason.strip():
        raise InvalidInput(f"{what} field 'reason' must say why, got {reason!r}")
    return reason, flag(data, "override", what) if "override" in data else False


def check_result(check: object) -> dict[str, Any]:
    """One check's outcome as a plain dict `{check, passed, detail}`; InvalidInput otherwise."""
    what = "review check"
    data = CHECK_SHAPE.check(check)
    detail = data["detail"]
    if not isinstance(detail, str):
        raise InvalidInput(f"{what} field 'detail' must be text, got {detail!r}")
    return {
        "check": text(data, "check", what),
        "passed": flag(data, "passed", what),
        "detail": detail,
    }


def check_review_id(review_id: object) -> str:
    """Validate a review id: 1 to 128 letters, digits, '_', '.' or '-'."""
    if not isinstance(review_id, str) or not REVIEW_ID_PATTERN.fullmatch(review_id):
        raise InvalidInput(
            f"invalid review id {review_id!r}: use 1 to 128 letters, digits, '_', '.' and '-'",
            {"review_id": review_id},
        )
    return review_id


def check_reviewer(reviewer: object) -> str:
    """Validate a reviewer: the text of a party or party category identifier."""
    try:
        parse_identifier(reviewer, ("party", "party_category"))
    except InvalidIdentifier as error:
        raise InvalidInput(
            f"a review's reviewer: {error.message}", {"reviewer": reviewer}
        ) from None
    assert isinstance(reviewer, str)  # parse_identifier accepts text only
    return reviewer


@dataclass(frozen=True, slots=True)
class Review:
    """A request that `reviewer` review the release of `result` to `receiving_party`, as
    rule `rule_id` demands, made for job `job_id`; and once decided, the decision.

    `checks` are the automatic checks' outcomes (`{check, passed, detail}` each). A
    decided review names the person (`decided_by`, a `Person`'s text) and the party
    (`decided_by_party`) that decided, when, and why; `override` says it was approved
    although a check failed. `held_at` names the site that holds the result when it is
    not the site keeping this review: a mirror of that site's review, decided here for
    the reviewer party and reported back to it.
    """

    review_id: str
    result: ResultId
    receiving_party: PartyId
    rule_id: str
    reviewer: str
    job_id: JobId
    digest: str
    checks: tuple[Mapping[str, Any], ...]
    state: ReviewState
    requested_at: datetime
    decided_at: datetime | None = None
    decided_by: str | None = None
    decided_by_party: PartyId | None = None
    reason: str | None = None
    override: bool = False
    held_at: SiteId | None = None

    def __hash__(self) -> int:
        return hash((self.review_id, self.state))

    def __post_init__(self) -> None:
        check_review_id(self.review_id)
        what = f"review {self.review_id}"
        if not isinstance(self.result, ResultId) or not isinstance(self.receiving_party, PartyId):
            raise InvalidInput(f"{what}: result must be a ResultId and receiving_party a PartyId")
        if not isinstance(self.rule_id, str) or not self.rule_id:
            raise InvalidInput(f"{what}: rule_id must be non-empty text, got {self.rule_id!r}")
        check_reviewer(self.reviewer)
        if self.held_at is not None and not isinstance(self.held_at, SiteId):
            raise InvalidInput(f"{what}: held_at must be a SiteId, got {self.held_at!r}")
        check_job_id(self.job_id)
        object.__setattr__(self, "digest", normalise_digest(self.digest))
        if not isinstance(self.checks, (tuple, list)):
            raise InvalidInput(f"{what}: checks must be a sequence of check outcomes")
        object.__setattr__(self, "checks", tuple(check_result(c) for c in self.checks))
        if not isinstance(self.state, ReviewState):
            raise InvalidInput(f"{what}: state must be a ReviewState, got {self.state!r}")
        aware(self.requested_at, f"{what}: requested_at")
        self._check_decision(what)

    def _check_decision(self, what: str) -> None:
        decision = (self.decided_at, self.decided_by, self.decided_by_party, self.reason)
        if not self.state.decided:
            if any(value is not None for value in decision) or self.override:
                raise InvalidInput(f"{what}: a pending review has no decision")
            return
        if any(value is None for value in decision):
            raise InvalidInput(
                f"{what}: a decided review names when, by whom, for which party and why"
            )
        assert self.decided_at is not None  # checked just above
        aware(self.decided_at, f"{what}: decided_at")
        if self.decided_at < self.requested_at:
            raise InvalidInput(f"{what}: decided before it was requested")
        if not isinstance(self.decided_by_party, PartyId):
            raise InvalidInput(f"{what}: decided_by_party must be a PartyId")
        for name in ("decided_by", "reason"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise InvalidInput(f"{what}: {name} must be non-empty text, got {value!r}")
        if not isinstance(self.override, bool):
            raise InvalidInput(f"{what}: override must be true or false")
        if self.override and (self.state is not ReviewState.APPROVED or not self.failed_checks):
            raise InvalidInput(
                f"{what}: override is only for approving a result whose checks failed"
            )
        if self.state is ReviewState.APPROVED and self.failed_checks and not self.override:
            raise InvalidInput(f"{what}: approved over failed checks without override")

    @property
    def failed_checks(self) -> list[str]:
        """The names of the checks that did not pass, in order."""
        return [c["check"] for c in self.checks if not c["passed"]]

    def decide(
        self,
        state: ReviewState,
        *,
        at: datetime,
        by: str,
        party: PartyId,
        reason: str,
        override: bool = False,
    ) -> Review:
        """This review decided `state` at `at` by the person `by` for `party`, because of
        `reason`.

        Conflict if it is decided already (naming how), or if it would approve a result
        whose checks failed without `override`; InvalidInput for an empty reason, a
        state that is no decision, or an override where no failed check needs one.
        """
        what = f"review {self.review_id}"
        if self.state.decided:
            raise Conflict(
                f"{what} is already {self.state.value} (by {self.decided_by} at"
                f" {iso(self.decided_at)}); a review is decided once",
                {"review_id": self.review_id, "state": self.state.value},
            )
        if not isinstance(state, ReviewState) or not state.decided:
            raise InvalidInput(f"{what}: a decision approves or rejects, got {state!r}")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput(
                f"{what}: give a reason for the decision", {"review_id": self.review_id}
            )
        failed = self.failed_checks
        if override and state is not ReviewState.APPROVED:
            raise InvalidInput(f"{what}: override applies to approving only, not to rejecting")
        if override and not failed:
            raise InvalidInput(f"{what}: every check passed, so there is nothing to override")
        if state is ReviewState.APPROVED and failed and not override:
            raise Conflict(
                f"{what} cannot be approved: check(s) {', '.join(failed)} failed; approve with"
                " override (and a reason) to release the result anyway",
                {"review_id": self.review_id, "failed_checks": failed},
            )
        return replace(
            self,
            state=state,
            decided_at=at,
            decided_by=by,
            decided_by_party=party,
            reason=reason,
            override=override,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (every field present, nulls included)."""
        return {
            "review_id": self.review_id,
            "result": str(self.result),
            "receiving_party": str(self.receiving_party),
            "rule_id": self.rule_id,
            "reviewer": self.reviewer,
            "job_id": self.job_id,
            "digest": self.digest,
            "checks": [dict(c) for c in self.checks],
            "state": self.state.value,
            "requested_at": self.requested_at.isoformat(),
            "decided_at": iso(self.decided_at),
            "decided_by": self.decided_by,
            "decided_by_party": (
                None if self.decided_by_party is None else str(self.decided_by_party)
            ),
            "reason": self.reason,
            "override": self.override,
            "held_at": None if self.held_at is None else str(self.held_at),
        }

    @classmethod
    def from_dict(cls, data: object) -> Review:
        """Parse the JSON form strictly: InvalidInput naming any missing, unknown or bad field."""
        what = "review"
        d = REVIEW_SHAPE.check(data)
        checks = d["checks"]
        if not isinstance(checks, list):
            raise InvalidInput(f"{what} field 'checks' must be a list of check outcomes")
        decided_by_party = optional_text(d, "decided_by_party", what)
        held_at = optional_text(d, "held_at", what)
        return cls(
            review_id=check_review_id(d["review_id"]),
            result=_parsed(ResultId, d, "result", what),
            receiving_party=_parsed(PartyId, d, "receiving_party", what),
            rule_id=text(d, "rule_id", what),
            reviewer=check_reviewer(d["reviewer"]),
            job_id=check_job_id(d["job_id"]),
            digest=text(d, "digest", what),
            checks=tuple(check_result(c) for c in checks),
            state=_state(d, what),
            requested_at=timestamp(d, "requested_at", what),
            decided_at=optional_timestamp(d, "decided_at", what),
            decided_by=optional_text(d, "decided_by", what),
            decided_by_party=(
                None if decided_by_party is None else _parsed(PartyId, d, "decided_by_party", what)
            ),
            reason=optional_text(d, "reason", what),
            override=flag(d, "override", what),
            held_at=None if held_at is None else _parsed(SiteId, d, "held_at", what),
        )


def _parsed(kind: type[Id], data: Mapping[str, Any], key: str, what: str) -> Id:
    try:
        return kind.parse(text(data, key, what))
    except InvalidIdentifier as error:
        raise InvalidInput(f"{what} field {key!r}: {error.message}") from None


def _state(data: Mapping[str, Any], what: str) -> ReviewState:
    value = data["state"]
    for state in ReviewState:
        if state.value == value:
            return state
    names = ", ".join(state.value for state in ReviewState)
    raise InvalidInput(f"{what} field 'state' must be one of {names}, got {value!r}")
