"""Live reads of a data set: the data's site's answer to a read, and the steps that may read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mahiru.errors import InvalidInput
from mahiru.model.fields import check_fields
from mahiru.model.identifiers import AssetId, SiteId
from mahiru.model.jobs import JobStatus, StepStatus
from mahiru.model.workflow import Job


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
        d = check_fields(data, "live reader", {"step", "site"})
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
