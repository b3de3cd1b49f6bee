"""GA4GH Task Execution Service 1.1 at `/internal/ga4gh/tes/v1`: for the owner party's users.

So `py-tes` and other TES clients given a site's internal URL find it. Each task
is a job (services/jobs/tes.py): a user sees and cancels only the tasks they
submitted, an admin every task of their party; others are 404, like tasks that
do not exist. `POST /tasks:validate` (an extension) plans a task without running it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from pydantic import WithJsonSchema

from mahiru import __version__
from mahiru.api.routes.site.dependencies import Jobs, Services, User
from mahiru.errors import InvalidInput
from mahiru.model.identifiers import JobId
from mahiru.model.jobs import check_job_id
from mahiru.services.jobs.tes import TaskFilter, TesTasks
from mahiru.services.jobs.tes_mapping import TASK_SCHEMA
from mahiru.services.jobs.tes_views import TaskView

JsonObject = dict[str, Any]
#: A TES task, parsed by `tes_mapping.parse_task`.
Task = Annotated[JsonObject, Body(), WithJsonSchema(TASK_SCHEMA)]

router = APIRouter(prefix="/internal/ga4gh/tes/v1", tags=["tes"])


def tes_tasks(jobs: Jobs) -> TesTasks:
    """The site's tasks, on its job submissions and step limits."""
    return TesTasks(jobs.submissions, jobs.step_limits())


Tasks = Annotated[TesTasks, Depends(tes_tasks)]


def _view(text: str | None, default: TaskView) -> TaskView:
    if text is None:
        return default
    try:
        return TaskView(text)
    except ValueError:
        raise InvalidInput(
            f"unknown view {text!r}: MINIMAL, BASIC or FULL", {"field": "view"}
        ) from None


@router.get("/service-info", summary="TES service info")
def service_info(request: Request, caller: User, services: Services) -> JsonObject:
    """The GA4GH service info of this site's TES endpoint (type org.ga4gh:tes:1.1.0)."""
    site = str(services.site)
    return {
        "id": "org.mahiru." + site.replace(":", "."),
        "name": f"Mahiru TES at {site}",
        "type": {"group": "org.ga4gh", "artifact": "tes", "version": "1.1.0"},
        "description": (
            "Tasks run as Mahiru jobs: each executor image is a compute asset, inputs and"
            " outputs are assets and results, and the sites' policies decide where each"
            " runs (docs/tes.md)."
        ),
        "organization": {
            "name": str(services.rules.owner),
            "url": str(request.base_url).rstrip("/") + "/internal",
        },
        "version": __version__,
        "storage": [],
        "tesResources_backend_parameters": [],
    }


@router.get("/tasks", summary="List tasks")
def list_tasks(
    caller: User,
    tasks: Tasks,
    name_prefix: str | None = None,
    state: str | None = None,
    tag_key: Annotated[list[str] | None, Query()] = None,
    tag_value: Annotated[list[str] | None, Query()] = None,
    page_size: int | None = None,
    page_token: str | None = None,
    view: str | None = None,
) -> JsonObject:
    """The tasks the caller sees, newest first, filtered and paged as TES says."""
    wanted = TaskFilter(name_prefix, state, tag_key or (), tag_value or (), page_size, page_token)
    return tasks.list(caller.person, wanted, _view(view, TaskView.MINIMAL))


@router.post("/tasks", summary="Create a task")
def create_task(body: Task, caller: User, tasks: Tasks) -> JsonObject:
    """Submit a task as a job; 400 naming a field the mapping refuses, 403 with the
    policy's explanation if no site may run it."""
    return {"id": tasks.create(body, caller.person)}


@router.post("/tasks:validate", summary="Validate a task (extension)")
def validate_task(body: Task, caller: User, tasks: Tasks) -> JsonObject:
    """Plan a task without running it: whether it would be accepted, where, or why not."""
    return tasks.validate(body, caller.person)


@router.get("/tasks/{task_id}", summary="A task")
def get_task(task_id: JobId, caller: User, tasks: Tasks, view: str | None = None) -> JsonObject:
    """The task in the view asked for (MINIMAL by default, as TES says)."""
    return tasks.get(check_job_id(task_id), caller.person, _view(view, TaskView.MINIMAL))


@router.post("/tasks/{task_id}:cancel", summary="Cancel a task")
def cancel_task(task_id: JobId, caller: User, tasks: Tasks) -> JsonObject:
    """Cancel the task here and at the sites running its steps."""
    tasks.cancel(check_job_id(task_id), caller.person)
    return {}
