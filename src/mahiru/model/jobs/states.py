"""The job and step state machines (see the package docstring), and what they imply."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any, TypeVar

from mahiru.errors import Conflict

#: How much of a step's log is kept and reported: its last characters.
LOG_TAIL_CHARS = 16_384
#: What stands for a step's kept log once the site's log retention has removed it.
LOG_PRUNED = "(log removed: older than this site's log retention)"

JOB_ID_PATTERN = re.compile(r"[A-Za-z0-9_.-]{1,128}")
#: A job id's JSON Schema: what `check_job_id` accepts.
JOB_ID_SCHEMA = {"type": "string", "pattern": f"^{JOB_ID_PATTERN.pattern}$"}


class JobState(Enum):
    """Where a job is, as seen by the submitter's site."""

    SUBMITTED = "submitted"
    PLANNED = "planned"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the job is finished: no transition leaves this state."""
        return self in TERMINAL_JOB_STATES


class StepState(Enum):
    """Where one step is, at the site that runs it (and as mirrored by the submitter's)."""

    WAITING = "waiting"
    FETCHING = "fetching"
    RUNNING = "running"
    STORING = "storing"
    SUCCEEDED = "succeeded"
    REUSED = "reused"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """Whether the step is finished: no transition leaves this state."""
        return self in TERMINAL_STEP_STATES

    @property
    def done(self) -> bool:
        """Whether the step's results exist (it succeeded or reused stored ones)."""
        return self in DONE_STEP_STATES


JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.SUBMITTED: frozenset({JobState.PLANNED, JobState.FAILED, JobState.CANCELLED}),
    JobState.PLANNED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

_STOPPED = frozenset({StepState.FAILED, StepState.CANCELLED})

STEP_TRANSITIONS: Mapping[StepState, frozenset[StepState]] = {
    StepState.WAITING: frozenset({StepState.FETCHING, StepState.REUSED}) | _STOPPED,
    StepState.FETCHING: frozenset({StepState.RUNNING}) | _STOPPED,
    StepState.RUNNING: frozenset({StepState.STORING}) | _STOPPED,
    StepState.STORING: frozenset({StepState.SUCCEEDED}) | _STOPPED,
    StepState.SUCCEEDED: frozenset(),
    StepState.REUSED: frozenset(),
    StepState.FAILED: frozenset(),
    StepState.CANCELLED: frozenset(),
}

TERMINAL_JOB_STATES = frozenset(s for s, nexts in JOB_TRANSITIONS.items() if not nexts)
TERMINAL_STEP_STATES = frozenset(s for s, nexts in STEP_TRANSITIONS.items() if not nexts)
DONE_STEP_STATES = frozenset({StepState.SUCCEEDED, StepState.REUSED})
#: Step states in which the step has begun work (so `started_at` is set).
STARTED_STEP_STATES = frozenset(
    {StepState.FETCHING, StepState.RUNNING, StepState.STORING, *DONE_STEP_STATES}
)

S = TypeVar("S", JobState, StepState)


def _transitions(state: S) -> frozenset[S]:
    table: Mapping[Any, frozenset[Any]] = (
        JOB_TRANSITIONS if isinstance(state, JobState) else STEP_TRANSITIONS
    )
    return table[state]


def check_transition(old: S, new: S, subject: str = "state") -> None:
    """Raise Conflict (naming both states) unless `old -> new` is an allowed transition."""
    allowed = _transitions(old)
    if new not in allowed:
        options = ", ".join(sorted(s.value for s in allowed)) or "none: it is final"
        raise Conflict(
            f"{subject} cannot go from {old.value} to {new.value} (allowed from"
            f" {old.value}: {options})",
            {"from": old.value, "to": new.value, "allowed": sorted(s.value for s in allowed)},
        )


def can_reach(old: S, new: S) -> bool:
    """Whether `new` follows `old` by one or more allowed transitions."""
    frontier = list(_transitions(old))
    seen = set(frontier)
    while frontier:
        state = frontier.pop()
        if state == new:
            return True
        for following in _transitions(state) - seen:
            seen.add(following)
            frontier.append(following)
    return False


def derive_job_state(step_states: Iterable[StepState]) -> JobState:
    """The job state that its steps' states imply.

    Any failed step fails the job, else any cancelled step cancels it; all
    steps done (none at all included) is `succeeded` (the submitter's site
    still has to collect the outputs before the job really is); all waiting is
    `planned`; anything else is `running`.
    """
    states = set(step_states)
    if StepState.FAILED in states:
        return JobState.FAILED
    if StepState.CANCELLED in states:
        return JobState.CANCELLED
    if states <= DONE_STEP_STATES:
        return JobState.SUCCEEDED
    if states == {StepState.WAITING}:
        return JobState.PLANNED
    return JobState.RUNNING
