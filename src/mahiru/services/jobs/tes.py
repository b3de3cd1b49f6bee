"""GA4GH TES 1.1 tasks at a site: each task a job, submitted, shown and cancelled through
`JobSubmissions` like any other (the same planner, decisions, audit and visibility).

The mapping is `tes_mapping.py` (task to job) and `tes_views.py` (job to task).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mahiru.errors import InvalidInput, MahiruError, NotFound, NotKnown
from mahiru.model.assets import AssetKind
from mahiru.model.identifiers import JobId, ResultId
from mahiru.model.jobs import JobStatus, StepStatus
from mahiru.model.people import Person
from mahiru.model.serialization import job_to_dict
from mahiru.planner import NoPermittedPlan
from mahiru.runtime.limits import StepLimits
from mahiru.services.jobs.submission import JobSubmissions
from mahiru.services.jobs.tes_mapping import (
    Behaviour,
    TaskRequest,
    check_behaviour,
    check_resources,
    parse_task,
    tags_match,
)
from mahiru.services.jobs.tes_views import TES_STATES, TaskView, task_state, task_view
from mahiru.storage.tes_tasks import TaskFields

#: Page sizes of task lists (TES recommends a default of 256 and at most 2048).
DEFAULT_PAGE_SIZE = 256
MAX_PAGE_SIZE = 2048


@dataclass(frozen=True, slots=True)
class TaskFilter:
    """What `GET /tasks` asks for: the TES filters and the page."""

    name_prefix: str | None = None
    state: str | None = None
    tag_keys: Sequence[str] = field(default_factory=tuple)
    tag_values: Sequence[str] = field(default_factory=tuple)
    page_size: int | None = None
    page_token: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in TES_STATES:
            raise InvalidInput(
                f"unknown task state {self.state!r}: one of {', '.join(TES_STATES)}",
                {"field": "state"},
            )
        if self.page_size is not None and not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise InvalidInput(
                f"page_size must be from 1 to {MAX_PAGE_SIZE}", {"field": "page_size"}
            )
        if self.page_token is not None and not self.page_token.isdigit():
            raise InvalidInput("page_token is not one this site gave", {"field": "page_token"})


class TesTasks:
    """The tasks of this site's users, as TES shows them."""

    def __init__(self, submissions: JobSubmissions, limits: StepLimits) -> None:
        self._submissions = submissions
        self._limits = limits

    def _request(self, body: object, person: Person) -> TaskRequest:
        """The task in `body`, checked against the mapping, the asset and the limits."""
        request = parse_task(body, person.party)
        check_resources(request.resources, self._limits)
        executor = request.executor
        if any(executor.get(key) for key in ("command", "env", "workdir", "stdin")):
            try:
                asset = self._submissions.describe_asset(request.compute_asset)
            except NotFound:
                raise InvalidInput(
                    f"executors[0].image: no compute asset {request.compute_asset} is known",
                    {"field": "executors[0].image"},
                ) from None
            if asset.kind is not AssetKind.COMPUTE:
                raise InvalidInput(
                    f"executors[0].image: {request.compute_asset} is not a compute asset",
                    {"field": "executors[0].image"},
                )
            check_behaviour(executor, Behaviour.of(asset))
        return request

    def create(self, body: object, person: Person) -> JobId:
        """Submit the task in `body` as a job of `person`'s; its id (the job's).

        InvalidInput naming the field that does not fit; PermissionDenied with the
        policy's explanation if no plan is permitted."""
        request = self._request(body, person)
        fields = TaskFields(request.name, request.description, request.tags, request.kept())
        try:
            return self._submissions.submit(request.job, person, task=fields).job_id
        except NotFound as error:
            raise _unknown_assets(error, request) from None

    def validate(self, body: object, person: Person) -> dict[str, Any]:
        """Whether the task in `body` would be accepted, where each step would run or why
        none may, and the job it maps to; nothing is stored or run."""
        request = self._request(body, person)
        answer: dict[str, Any] = {"job": job_to_dict(request.job)}
        try:
            plan = self._submissions.check(request.job, person)
        except NoPermittedPlan as denial:
            return answer | {
                "valid": False,
                "explanation": denial.denial.explain(),
                "details": denial.details,
            }
        except NotFound as error:
            unknown = _unknown_assets(error, request)
            return answer | {
                "valid": False,
                "explanation": unknown.message,
                "details": unknown.details,
            }
        placed = {step: str(site) for step, site in plan.assignments.items()}
        explanation = "permitted: " + ", ".join(f"{s} at {site}" for s, site in placed.items())
        return answer | {"valid": True, "plan": placed, "explanation": explanation}

    def _fields(self, job_id: JobId) -> TaskFields:
        fields = self._submissions.task_fields([job_id]).get(job_id)
        if fields is None:
            raise NotKnown("task", job_id)
        return fields

    def _show(
        self, status: JobStatus, steps: list[StepStatus], fields: TaskFields, view: TaskView
    ) -> dict[str, Any]:
        sizes: dict[ResultId, int | None] = {}
        if view is not TaskView.MINIMAL:
            sizes = {r: self._submissions.stored_size(r) for r in status.outputs().values()}
        kept = {
            "name": fields.name,
            "description": fields.description,
            "tags": fields.tags,
            "request": fields.request,
        }
        return task_view(status, steps, kept, sizes, view)

    def _steps(self, job_id: JobId, person: Person) -> tuple[JobStatus, list[StepStatus]]:
        status, views = self._submissions.get(job_id, person)
        return status, [view.status for view in views]

    def get(self, job_id: JobId, person: Person, view: TaskView) -> dict[str, Any]:
        """The task `job_id` as `person` sees it; NotKnown for a task they do not see."""
        status, steps = self._steps(job_id, person)  # NotKnown before anything else
        return self._show(status, steps, self._fields(job_id), view)

    def cancel(self, job_id: JobId, person: Person) -> None:
        """Cancel the task `job_id` of `person`'s, stopping its containers everywhere."""
        self._steps(job_id, person)
        self._fields(job_id)
        self._submissions.cancel(job_id, person)

    def list(self, person: Person, wanted: TaskFilter, view: TaskView) -> dict[str, Any]:
        """One page of the tasks `person` sees that match `wanted`, newest first, and the
        token of the next page if there is one."""
        jobs = list(reversed(self._submissions.visible_to(person)))
        fields = self._submissions.task_fields([status.job_id for status in jobs])
        matching: list[tuple[JobStatus, TaskFields]] = []
        for status in jobs:
            task = fields.get(status.job_id)
            if task is None:
                continue
            if wanted.name_prefix and not (task.name or "").startswith(wanted.name_prefix):
                continue
            if not tags_match(task.tags, wanted.tag_keys, wanted.tag_values):
                continue
            matching.append((status, task))
        start = int(wanted.page_token or 0)
        size = wanted.page_size or DEFAULT_PAGE_SIZE
        shown: list[dict[str, Any]] = []
        position = start
        # The state filter needs each job's steps, so it is applied while paging.
        while position < len(matching) and len(shown) < size:
            status, task = matching[position]
            position += 1
            _, steps = self._steps(status.job_id, person)
            if wanted.state is not None and task_state(status, steps) != wanted.state:
                continue
            shown.append(self._show(status, steps, task, view))
        answer: dict[str, Any] = {"tasks": shown}
        if position < len(matching):
            answer["next_page_token"] = str(position)
        return answer


def _unknown_assets(error: NotFound, request: TaskRequest) -> MahiruError:
    """A planning NotFound for assets no site is known to store, as the 400 naming the first
    task field that names one (a TES client reads a 404 as a wrong URL); else `error`."""
    unknown = error.details.get("unknown_assets") if isinstance(error.details, dict) else None
    if not isinstance(unknown, dict):
        return error
    field = next((where for where, asset in request.named if asset in unknown), "task")
    return InvalidInput(f"{field}: {error.message}", {"field": field, "unknown_assets": unknown})
