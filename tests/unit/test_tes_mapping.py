"""The TES mapping on its own: tasks to jobs, and jobs' states and logs to TES (docs/tes.md)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mahiru.errors import InvalidInput
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, JobId, PartyId, SiteId
from mahiru.model.jobs import JobState, JobStatus, StepState, StepStatus
from mahiru.model.workflow import Plan
from mahiru.runtime.limits import StepLimits
from mahiru.services.jobs.tes_mapping import (
    STEP,
    Behaviour,
    check_behaviour,
    check_resources,
    parse_task,
    tags_match,
)
from mahiru.services.jobs.tes_views import TaskView, task_state, task_view

PARTY = PartyId("p1.org", "p1")
SITE = SiteId("p2.org", "site")
COMPUTE = "asset:p1.org:minmax:p1.org:site"
DATA = "asset:p2.org:input:p2.org:site"
BASE = "asset:p1.org:base:p1.org:site"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
LIMITS = StepLimits(cpus=2.0, memory_bytes=2 * 1024**3, timeout_seconds=60, max_output_bytes=10**9)


def body(**changes: Any) -> dict[str, Any]:
    task: dict[str, Any] = {
        "name": "t",
        "executors": [{"image": COMPUTE, "command": []}],
        "inputs": [{"url": DATA, "path": "/mahiru/inputs/input0", "type": "DIRECTORY"}],
        "outputs": [{"url": BASE, "path": "/mahiru/outputs/output0", "type": "DIRECTORY"}],
        "tags": {"Project": "x"},
    }
    return task | changes


def test_a_task_is_one_step_on_its_inputs_writing_its_outputs() -> None:
    """The executor's image is the step's compute asset; inputs and outputs keep their names."""
    request = parse_task(body(), PARTY)
    step = request.job.workflow.steps[STEP]
    assert step.compute_asset == AssetId.parse(COMPUTE)
    assert dict(step.inputs) == {"input0": "input0"}
    assert dict(step.outputs) == {"output0": AssetId.parse(BASE)}
    assert {k: str(v) for k, v in request.job.inputs.items()} == {"input0": DATA}
    assert request.tags == {"Project": "x"} and request.name == "t"


def test_the_assets_declared_behaviour_may_be_repeated_but_not_changed() -> None:
    """The declared command and env pass; another command, env, workdir or stdin do not."""
    declared = Behaviour.of(
        Asset(AssetId.parse(COMPUTE), AssetKind.COMPUTE, {"command": ["run"], "env": {"A": "1"}})
    )
    check_behaviour({"image": COMPUTE, "command": ["run"], "env": {"A": "1"}}, declared)
    check_behaviour({"image": COMPUTE}, declared)
    for executor, field in (
        ({"command": ["run", "--all"]}, "executors[0].command"),
        ({"env": {"A": "2"}}, "executors[0].env"),
        ({"env": {"B": "1"}}, "executors[0].env"),
        ({"workdir": "/"}, "executors[0].workdir"),
        ({"stdin": "/dev/zero"}, "executors[0].stdin"),
    ):
        with pytest.raises(InvalidInput) as refused:
            check_behaviour(executor, declared)
        assert refused.value.details["field"] == field


def test_an_asset_that_declares_no_command_takes_only_an_empty_one() -> None:
    """With nothing declared, any command is refused."""
    nothing = Behaviour.of(Asset(AssetId.parse(COMPUTE), AssetKind.COMPUTE))
    with pytest.raises(InvalidInput, match="none declared"):
        check_behaviour({"command": ["true"]}, nothing)


@pytest.mark.parametrize(
    ("resources", "field"),
    [({"cpu_cores": 3}, "cpu_cores"), ({"ram_gb": 2.2}, "ram_gb"), ({"disk_gb": 1.5}, "disk_gb")],
)
def test_resources_above_the_limits_name_the_field(resources: dict[str, Any], field: str) -> None:
    """Each resource above the step limits is refused by name."""
    with pytest.raises(InvalidInput) as refused:
        check_resources(resources, LIMITS)
    assert refused.value.details["field"] == f"resources.{field}"


def test_resources_at_the_limits_pass() -> None:
    """At the limits is within them."""
    check_resources({"cpu_cores": 2, "ram_gb": 2.0, "disk_gb": 1.0, "preemptible": True}, LIMITS)


def test_tags_match_as_tes_says() -> None:
    """A key with an empty value only needs the key; with a value, both must match."""
    tags = {"foo": "bar", "baz": "bat"}
    assert tags_match(tags, ["foo"], ["bar"])
    assert tags_match(tags, ["foo"], [""])
    assert tags_match(tags, ["foo", "baz"], ["bar", "bat"])
    assert not tags_match(tags, ["foo"], ["bat"])
    assert not tags_match({"foo": ""}, ["foo"], ["bar"])
    assert not tags_match({}, ["foo"], [""])


def _job(state: JobState, reason: str | None = None) -> JobStatus:
    job = parse_task(body(), PARTY).job
    started = state not in (JobState.SUBMITTED, JobState.PLANNED)
    return JobStatus(
        JobId("job-1"),
        job,
        SiteId("p1.org", "site"),
        state,
        T0,
        T0,
        plan=None if state is JobState.SUBMITTED else Plan({STEP: SITE}),
        started_at=T0 if started else None,
        finished_at=T0 + timedelta(minutes=1) if state.terminal else None,
        reason=reason,
    )


def _step(state: StepState, exit_code: int | None = None) -> StepStatus:
    waiting = StepStatus.waiting(JobId("job-1"), STEP, SITE, T0)
    if state is StepState.WAITING:
        return waiting
    return replace(
        waiting,
        state=state,
        started_at=T0,
        finished_at=T0 + timedelta(seconds=30) if state.terminal else None,
        reason="stopped" if state in (StepState.FAILED, StepState.CANCELLED) else None,
        exit_code=exit_code,
        log_tail="out" if exit_code is not None else None,
    )


@pytest.mark.parametrize(
    ("job", "step", "expected"),
    [
        (JobState.PLANNED, StepState.WAITING, "QUEUED"),
        (JobState.RUNNING, StepState.FETCHING, "INITIALIZING"),
        (JobState.RUNNING, StepState.RUNNING, "RUNNING"),
        (JobState.RUNNING, StepState.STORING, "RUNNING"),
        (JobState.RUNNING, StepState.SUCCEEDED, "RUNNING"),
        (JobState.SUCCEEDED, StepState.SUCCEEDED, "COMPLETE"),
        (JobState.CANCELLED, StepState.CANCELLED, "CANCELED"),
    ],
)
def test_job_states_map_to_tes_states(job: JobState, step: StepState, expected: str) -> None:
    """Queued, fetching, running, storing, collecting, succeeded and cancelled."""
    reason = "cancelled by user" if job is JobState.CANCELLED else None
    assert task_state(_job(job, reason), [_step(step)]) == expected


def test_a_non_zero_exit_is_an_executor_error_and_any_other_failure_a_system_error() -> None:
    """A failed step with exit code 3 is EXECUTOR_ERROR; one with none SYSTEM_ERROR."""
    failed = _job(JobState.FAILED, "step executor failed")
    assert task_state(failed, [_step(StepState.FAILED, exit_code=3)]) == "EXECUTOR_ERROR"
    assert task_state(failed, [_step(StepState.FAILED)]) == "SYSTEM_ERROR"


def test_awaiting_review_is_in_the_system_logs_and_not_complete() -> None:
    """A job whose outputs wait for a data owner's review is RUNNING, saying so in FULL."""
    waiting = _job(JobState.RUNNING, "awaiting review by party:p2.org:p2")
    steps = [_step(StepState.SUCCEEDED, exit_code=0)]
    full = task_view(waiting, steps, {}, {}, TaskView.FULL)
    assert full["state"] == "RUNNING"
    assert any("awaiting review" in line for line in full["logs"][0]["system_logs"])
    basic = task_view(waiting, steps, {}, {}, TaskView.BASIC)
    assert "system_logs" not in basic["logs"][0]
    end = (T0 + timedelta(seconds=30)).isoformat()
    assert basic["logs"][0]["logs"] == [
        {"exit_code": 0, "start_time": T0.isoformat(), "end_time": end}
    ]
