"""Live reads of a data set: a request for a grant, the data's site's answer to a read, and
the steps that may read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from mahiru.errors import InvalidIdentifier, InvalidInput
from mahiru.model.fields import Field, Shape, string, text
from mahiru.model.identifiers import AssetId, JobId, SiteId, identifier_pattern
from mahiru.model.jobs import JobStatus, StepStatus, check_job_id
from mahiru.model.jobs.checks import site_field
from mahiru.model.jobs.states import JOB_ID_SCHEMA
from mahiru.model.serialization import JOB_SHAPE, job_from_dict, job_to_dict
from mahiru.model.workflow import NAME_PATTERN, Job, check_name

_SITE = string(pattern=identifier_pattern("site"))

LIVE_GRANT_REQUEST_SHAPE = Shape(
    "live grant request",
    "A request to read a live data asset for one input of one step of a job.",
    (
        Field("job_id", JOB_ID_SCHEMA),
        Field("job", JOB_SHAPE.json_schema()),
        Field(
            "submitter_site",
            {**_SITE, "description": "the site the job was submitted at, which is asked"},
        ),
        Field("step", string(pattern=NAME_PATTERN)),
        Field("input", string(pattern=NAME_PATTERN)),
        Field("asset", string(pattern=identifier_pattern("asset"))),
    ),
)
LIVE_READER_SHAPE = Shape(
    "live reader",
    "An unfinished step that reads data live, and the site it runs at.",
    (Field("step", string()), Field("site", _SITE)),
)


@dataclass(frozen=True, slots=True)
class LiveGrantRequest:
    """A site's request to read `asset` live, for input `input` of `step` of a job.

    The data's site asks `submitter_site` whether the step runs at the asker.
    """

    job_id: JobId
    job: Job
    submitter_site: SiteId
    step: str
    input: str
    asset: AssetId

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "job_id": self.job_id,
            "job": job_to_dict(self.job),
            "submitter_site": str(self.submitter_site),
            "step": self.step,
            "input": self.input,
            "asset": str(self.asset),
        }

    @classmethod
    def from_dict(cls, data: object) -> LiveGrantRequest:
        """Parse the JSON form strictly; InvalidInput naming the wrong field."""
        what = "live grant request"
        d = LIVE_GRANT_REQUEST_SHAPE.check(data)
        try:
            asset = AssetId.parse(text(d, "asset", what))
        except InvalidIdentifier as error:
            raise InvalidInput(f"{what} field 'asset': {error.message}") from None
        return cls(
            check_job_id(d["job_id"]),
            job_from_dict(d["job"]),
            site_field(d, "submitter_site", what),
            check_name(d["step"], "step"),
            check_name(d["input"], "input"),
            asset,
        )


@dataclass(frozen=True)
class LiveAnswer:
    """The status of a live file read and, if it succeeded, its bytes as they arrive.

    `message` says why a read failed (status not 200); `length` is the
    Content-Length if the owner sent one.
    """

    status: int
    content_type: str
    length: str | None
    chunks: Iterator[bytes]
    message: str = ""


@dataclass(frozen=True, slots=True)
class LiveReader:
    """A step that reads a data set's site's data live and has not finished, and where it runs.

    All a job's submitter's site tells that data's site about the job: the
    data's site grants a live read only to a step listed here, at the asker.
    """

    step: str
    site: SiteId

    def to_dict(self) -> dict[str, str]:
        """The JSON form."""
        return {"step": self.step, "site": str(self.site)}

    @classmethod
    def from_dict(cls, data: object) -> LiveReader:
        """Parse the JSON form; InvalidInput naming what is wrong."""
        d = LIVE_READER_SHAPE.check(data)
        if not isinstance(d["step"], str):
            raise InvalidInput("a live reader's step must be a string")
        return cls(d["step"], SiteId.parse(d["site"]))


def steps_reading(job: Job, data_site: SiteId) -> set[str]:
    """The steps of `job` that read one of its inputs stored at `data_site`."""
    return {
        name
        for name, step in job.workflow.steps.items()
        for source in step.inputs.values()
        if isinstance(source, str)
        and isinstance(asset := job.inputs.get(source), AssetId)
        and asset.site == data_site
    }


def live_readers(
    status: JobStatus, steps: Iterable[StepStatus], data_site: SiteId
) -> list[LiveReader]:
    """The steps of a job, unfinished as `steps` say, that read an input stored at `data_site`.

    A finished job has no live readers, whatever its steps' last mirrored states.
    """
    if status.state.terminal or status.plan is None:
        return []
    reading = steps_reading(status.job, data_site)
    return [
        LiveReader(step.step, step.site)
        for step in sorted(steps, key=lambda s: s.step)
        if step.step in reading and not step.state.terminal
    ]
