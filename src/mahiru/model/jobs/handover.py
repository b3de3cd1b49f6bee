"""Steps handed to another site, and how each result was made (its provenance)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mahiru.errors import InvalidIdentifier, InvalidInput
from mahiru.model.fields import Field, Shape, string, text
from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId, identifier_pattern
from mahiru.model.jobs.checks import check_job_id, check_plan, site_field, step_results, steps_at
from mahiru.model.jobs.states import JOB_ID_SCHEMA
from mahiru.model.serialization import (
    JOB_SHAPE,
    PLAN_SCHEMA,
    job_from_dict,
    job_to_dict,
    plan_from_dict,
    plan_to_dict,
)
from mahiru.model.workflow import NAME_PATTERN, Job, Plan, StepOutputRef, check_name

_SITE = string(pattern=identifier_pattern("site"))

STEP_ASSIGNMENT_SHAPE = Shape(
    "step assignment",
    "Steps of a job handed to a site: the job, its whole plan, and the site the steps run at.",
    (
        Field("job_id", JOB_ID_SCHEMA),
        Field("submitter_site", _SITE),
        Field("site", _SITE),
        Field("job", JOB_SHAPE.json_schema()),
        Field("plan", PLAN_SCHEMA),
    ),
)
RESULT_PROVENANCE_SHAPE = Shape(
    "result provenance",
    "How a result was made: which output of which step of which job.",
    (
        Field("result", string(pattern=identifier_pattern("result"))),
        Field("job_id", JOB_ID_SCHEMA),
        Field("submitter", string(pattern=identifier_pattern("party"))),
        Field("step", string(pattern=NAME_PATTERN)),
        Field("output", string(pattern=NAME_PATTERN)),
        Field("job", JOB_SHAPE.json_schema()),
    ),
)

# --- hand-over and provenance ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepAssignment:
    """What the submitter's site hands to `site`: every step the plan puts there.

    The job and the whole plan come along, so that `site` can check each step
    against its own policy and knows where each input comes from.
    """

    job_id: JobId
    submitter_site: SiteId
    site: SiteId
    job: Job
    plan: Plan

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        check_plan(self.job, self.plan)
        if not self.steps:
            raise InvalidInput(
                f"job {self.job_id}: the plan runs no step at {self.site}",
                {"job_id": self.job_id, "site": str(self.site)},
            )

    @property
    def steps(self) -> list[str]:
        """The steps assigned to `site`, each after its predecessors."""
        return steps_at(self.job, self.plan, self.site)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "job_id": self.job_id,
            "submitter_site": str(self.submitter_site),
            "site": str(self.site),
            "job": job_to_dict(self.job),
            "plan": plan_to_dict(self.plan),
        }

    @classmethod
    def from_dict(cls, data: object) -> StepAssignment:
        """Parse the JSON form strictly."""
        what = "step assignment"
        d = STEP_ASSIGNMENT_SHAPE.check(data)
        return cls(
            check_job_id(d["job_id"]),
            site_field(d, "submitter_site", what),
            site_field(d, "site", what),
            job_from_dict(d["job"]),
            plan_from_dict(d["plan"]),
        )


@dataclass(frozen=True, slots=True)
class ResultProvenance:
    """How a result was made: output `output` of step `step` of job `job_id`.

    It carries the whole job, so the site serving the result can recompute
    the result's permissions later (reference: Policy semantics). Construction checks that
    `result` is that output's result id.
    """

    result: ResultId
    job_id: JobId
    step: str
    output: str
    job: Job

    def __post_init__(self) -> None:
        check_job_id(self.job_id)
        expected = step_results(self.job, self.step).get(self.output)
        if expected is None:
            raise InvalidInput(
                f"step {self.step!r} of job {self.job_id} has no output {self.output!r}"
            )
        if expected != self.result:
            raise InvalidInput(
                f"{self.result} is not the result id of {self.step}.{self.output} in job"
                f" {self.job_id} ({expected})",
                {"result": str(self.result), "expected": str(expected)},
            )

    @property
    def submitter(self) -> PartyId:
        """The party that submitted the job."""
        return self.job.submitter

    @property
    def ref(self) -> StepOutputRef:
        """The step output this result is."""
        return StepOutputRef(self.step, self.output)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "result": str(self.result),
            "job_id": self.job_id,
            "submitter": str(self.submitter),
            "step": self.step,
            "output": self.output,
            "job": job_to_dict(self.job),
        }

    @classmethod
    def from_dict(cls, data: object) -> ResultProvenance:
        """Parse the JSON form strictly; `submitter` must be the job's."""
        what = "result provenance"
        d = RESULT_PROVENANCE_SHAPE.check(data)
        try:
            result = ResultId.parse(text(d, "result", what))
        except InvalidIdentifier as error:
            raise InvalidInput(f"{what} field 'result': {error.message}") from None
        provenance = cls(
            result,
            check_job_id(d["job_id"]),
            check_name(d["step"], "step"),
            check_name(d["output"], "output"),
            job_from_dict(d["job"]),
        )
        if d["submitter"] != str(provenance.submitter):
            raise InvalidInput(f"{what}: submitter {d['submitter']!r} is not the job's submitter")
        return provenance


def step_provenance(job_id: JobId, job: Job, step: str) -> list[ResultProvenance]:
    """The provenance of each output of `step`, by output name."""
    return [
        ResultProvenance(rid, job_id, step, output, job)
        for output, rid in sorted(step_results(job, step).items())
    ]
