"""A job as a GA4GH TES 1.1 task: its state, logs and the three views, with no I/O.

The step statuses handed in are the egress gate's views, so an exit code and a
log tail appear only where the job's party may use the step's outputs (as with
`mahiru jobs logs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import Enum
from typing import Any

from mahiru.model.identifiers import ResultId
from mahiru.model.jobs import JobState, JobStatus, StepState, StepStatus
from mahiru.services.jobs.tes_mapping import OUTPUTS_DIR, executors_of, inputs_of, outputs_of


class TaskView(Enum):
    """How much of a task an answer shows (TES `view`)."""

    MINIMAL = "MINIMAL"
    BASIC = "BASIC"
    FULL = "FULL"


#: The TES states this site answers with (the TES enum has more).
TES_STATES = (
    "QUEUED", "INITIALIZING", "RUNNING", "COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED"
)  # fmt: skip


def task_state(status: JobStatus, steps: Sequence[StepStatus]) -> str:
    """The TES state of a job: queued or planned is QUEUED, fetching inputs INITIALIZING,
    running or storing RUNNING, succeeded COMPLETE, a step's non-zero exit EXECUTOR_ERROR,
    any other failure SYSTEM_ERROR, cancelled CANCELED.

    A job waiting for a review, or for its outputs to be collected, is still RUNNING.
    """
    state = status.state
    if state is JobState.SUCCEEDED:
        return "COMPLETE"
    if state is JobState.CANCELLED:
        return "CANCELED"
    if state is JobState.FAILED:
        failed = [s for s in steps if s.state is StepState.FAILED]
        if any(s.exit_code not in (None, 0) for s in failed):
            return "EXECUTOR_ERROR"
        return "SYSTEM_ERROR"
    states = {s.state for s in steps}
    if state in (JobState.SUBMITTED, JobState.PLANNED) or states <= {StepState.WAITING}:
        return "QUEUED"
    if states & {StepState.RUNNING, StepState.STORING}:
        return "RUNNING"
    if StepState.FETCHING in states:
        return "INITIALIZING"
    return "RUNNING"  # its steps are done: its outputs are collected (or reviewed)


def _executor_log(step: StepStatus, full: bool) -> dict[str, Any] | None:
    """A step's executor log once it has an exit code to report (TES requires one)."""
    if step.exit_code is None:
        return None
    log: dict[str, Any] = {"exit_code": step.exit_code}
    for key, moment in (("start_time", step.started_at), ("end_time", step.finished_at)):
        if moment is not None:
            log[key] = moment.isoformat()
    if full and step.log_tail is not None:
        log["stdout"] = step.log_tail
    return log


def _system_logs(status: JobStatus, steps: Sequence[StepStatus]) -> list[str]:
    lines = [f"mahiru job {status.job_id}: {status.state.value}"]
    if status.reason:
        # A running job's reason says what it waits for: a review of its outputs among them.
        lines.append(f"job: {status.reason}")
    for step in steps:
        line = f"step {step.step} at {step.site}: {step.state.value}"
        if step.started_at is not None and step.finished_at is None:
            line += f" since {step.started_at.isoformat()}"
        if step.reason:
            line += f" ({step.reason})"
        lines.append(line)
    return lines


def task_log(
    status: JobStatus,
    steps: Sequence[StepStatus],
    sizes: Mapping[ResultId, int | None],
    view: TaskView,
) -> dict[str, Any]:
    """The task's one log (one attempt): each executor's log, the outputs made, times."""
    full = view is TaskView.FULL
    executor_logs = [e for s in steps if (e := _executor_log(s, full)) is not None]
    outputs: list[dict[str, Any]] = []
    if status.state is JobState.SUCCEEDED:
        for name, result in status.outputs().items():
            size = sizes.get(result)
            outputs.append(
                {
                    "url": str(result),
                    "path": OUTPUTS_DIR + name,
                    "size_bytes": str(size if size is not None else 0),
                }
            )
    log: dict[str, Any] = {
        "logs": executor_logs,
        "outputs": outputs,
        "metadata": {"mahiru_job": status.job_id} | {f"site_{s.step}": str(s.site) for s in steps},
    }
    for key, moment in (("start_time", status.started_at), ("end_time", status.finished_at)):
        if moment is not None:
            log[key] = moment.isoformat()
    if full:
        log["system_logs"] = _system_logs(status, steps)
    return log


def task_view(
    status: JobStatus,
    steps: Sequence[StepStatus],
    kept: Mapping[str, Any],
    sizes: Mapping[ResultId, int | None],
    view: TaskView,
) -> dict[str, Any]:
    """A job as a TES task in `view`: MINIMAL is its id and state; BASIC adds everything
    but the executors' stdout and the system logs; FULL has those too."""
    task: dict[str, Any] = {"id": status.job_id, "state": task_state(status, steps)}
    if view is TaskView.MINIMAL:
        return task
    if kept.get("name") is not None:
        task["name"] = kept["name"]
    if kept.get("description") is not None:
        task["description"] = kept["description"]
    request = kept.get("request") or {}
    task["inputs"] = inputs_of(status.job)
    task["outputs"] = outputs_of(status.job)
    if request.get("resources"):
        task["resources"] = dict(request["resources"])
    task["executors"] = executors_of(status.job, request)
    task["tags"] = dict(kept.get("tags") or {})
    task["logs"] = [task_log(status, steps, sizes, view)]
    task["creation_time"] = status.submitted_at.isoformat()
    return task
