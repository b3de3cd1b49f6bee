"""Jobs as they run: states, where step inputs come from, and status values (reference: Execution).

Pure: no I/O and no clock. Every change of state takes the time as `now` and
goes through `advance_job` or `advance_step`, which refuse any transition the
state machines below do not allow (Conflict naming both states):

    job:   submitted -> planned -> running -> succeeded
           submitted | planned | running -> failed | cancelled
    step:  waiting -> fetching -> running -> storing -> succeeded
           waiting -> reused        (every output is stored already: nothing to run)
           waiting | fetching | running | storing -> failed | cancelled

There are no edges back. A site that restarts with a step in `fetching`,
`running` or `storing` redoes that state's work, or fails the step; it never
moves the step backwards. That also orders the reports a submitter's site gets
about a remote step: a report can only move it forward (`can_reach`).
"""

from __future__ import annotations

from mahiru.model.jobs.checks import check_job_id, check_plan, ready_steps, step_results, steps_at
from mahiru.model.jobs.handover import ResultProvenance, StepAssignment, step_provenance
from mahiru.model.jobs.routing import InputOrigin, StepInput, step_inputs, workflow_output_sources
from mahiru.model.jobs.states import (
    DONE_STEP_STATES,
    JOB_TRANSITIONS,
    LOG_PRUNED,
    LOG_TAIL_CHARS,
    STEP_TRANSITIONS,
    TERMINAL_JOB_STATES,
    TERMINAL_STEP_STATES,
    JobState,
    StepState,
    can_reach,
    check_transition,
    derive_job_state,
)
from mahiru.model.jobs.status import (
    JobStatus,
    StepStatus,
    advance_job,
    advance_step,
    check_step_status,
    noted_job,
)

__all__ = [
    "DONE_STEP_STATES",
    "JOB_TRANSITIONS",
    "LOG_PRUNED",
    "LOG_TAIL_CHARS",
    "STEP_TRANSITIONS",
    "TERMINAL_JOB_STATES",
    "TERMINAL_STEP_STATES",
    "InputOrigin",
    "JobState",
    "JobStatus",
    "ResultProvenance",
    "StepAssignment",
    "StepInput",
    "StepState",
    "StepStatus",
    "advance_job",
    "advance_step",
    "can_reach",
    "check_job_id",
    "check_plan",
    "check_step_status",
    "check_transition",
    "derive_job_state",
    "noted_job",
    "ready_steps",
    "step_inputs",
    "step_provenance",
    "step_results",
    "steps_at",
    "workflow_output_sources",
]
