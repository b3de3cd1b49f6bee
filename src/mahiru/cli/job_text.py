"""How `mahiru jobs` shows a job to people: a one-line summary, and the whole job.

Imported when a `jobs` command has a job to show (it needs the model), not
for `mahiru jobs --help`.
"""

from __future__ import annotations

from mahiru.client.jobs import JobView
from mahiru.model.jobs import JobState, JobStatus


def job_summary(status: JobStatus) -> str:
    """The job's id and state, with the reason if it has one."""
    reason = f" ({status.reason})" if status.reason else ""
    return f"{status.job_id}  {status.state.value}{reason}"


def job_lines(view: JobView) -> list[str]:
    """The job as lines: who submitted it when, its plan, its steps, and its outputs."""
    status = view.status
    by = status.submitted_by or f"a user of {status.submitter}"
    lines = [
        f"job {job_summary(status)}",
        f"  submitted {status.submitted_at.isoformat()} by {by}",
    ]
    if status.plan is not None:
        lines.append("  plan:")
        lines += [f"    {step}: {site}" for step, site in sorted(status.plan.assignments.items())]
    lines.append("  steps:")
    for step in view.steps:
        times = ", ".join(
            f"{label} {value.isoformat()}"
            for label, value in (("started", step.started_at), ("finished", step.finished_at))
            if value is not None
        )
        extra = f" exit code {step.exit_code}" if step.exit_code is not None else ""
        reason = f": {step.reason}" if step.reason else ""
        lines.append(f"    {step.step} at {step.site}: {step.state.value}{extra}{reason}")
        if step.wait is not None:
            lines.append(f"      waits: {step.wait.describe()}")
        if times:
            lines.append(f"      {times}")
        if step.state.value == "failed" and step.log_tail:
            lines += [f"      | {line}" for line in step.log_tail.splitlines()[-10:]]
    if status.state is JobState.SUCCEEDED:
        lines.append("  outputs:")
        lines += [f"    {name}: {rid}" for name, rid in status.outputs().items()]
    return lines
