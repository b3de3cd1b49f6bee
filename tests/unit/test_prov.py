"""A job's provenance as W3C PROV-JSON and as a Graphviz graph, from its status and steps."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId
from mahiru.model.jobs import JobState, JobStatus, StepState, StepStatus
from mahiru.model.prov import NAMESPACE, job_provenance, to_dot
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Plan, StepOutputRef

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
P1, P2 = "party:p1.org:p1", "party:p2.org:p2"
SITE1, SITE2 = "site:p1.org:site", "site:p2.org:site"
SCRIPT = "asset:p1.org:script:p1.org:site"
DATA = "asset:p2.org:data:p2.org:site"
BASE = "asset:p1.org:base:p1.org:site"
JOB = job_from_dict(
    {
        "submitter": P1,
        "workflow": {
            "inputs": ["input"],
            "outputs": {"result": "combine.out"},
            "steps": [
                {
                    "name": "prepare",
                    "compute_asset": SCRIPT,
                    "inputs": {"data": "input"},
                    "outputs": {"out": BASE},
                },
                {
                    "name": "combine",
                    "compute_asset": SCRIPT,
                    "inputs": {"a": "prepare.out"},
                    "outputs": {"out": None},
                },
            ],
        },
        "inputs": {"input": DATA},
    }
)
JOB_ID = JobId("job1")
PLAN = Plan({"prepare": SiteId.parse(SITE2), "combine": SiteId.parse(SITE1)})
STATUS = JobStatus(
    JOB_ID, JOB, SiteId.parse(SITE1), JobState.RUNNING, NOW, NOW, plan=PLAN, started_at=NOW
)
OWNERS = {SiteId.parse(SITE1): PartyId.parse(P1), SiteId.parse(SITE2): PartyId.parse(P2)}


def _steps() -> list[StepStatus]:
    prepare = StepStatus.waiting(JOB_ID, "prepare", SiteId.parse(SITE2), NOW)
    done = replace(
        prepare,
        state=StepState.SUCCEEDED,
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=3),
        results={"out": JOB.result_ids()[StepOutputRef("prepare", "out")]},
    )
    return [done, StepStatus.waiting(JOB_ID, "combine", SiteId.parse(SITE1), NOW)]


def _q(text: str) -> str:
    return f"mahiru:{text}"


def test_the_document_names_inputs_computes_steps_sites_and_parties() -> None:
    doc = job_provenance(STATUS, _steps(), OWNERS)
    assert doc["prefix"]["mahiru"] == NAMESPACE
    prepared = str(JOB.result_ids()[StepOutputRef("prepare", "out")])
    final = str(JOB.result_ids()[StepOutputRef("combine", "out")])
    assert {_q(DATA), _q(SCRIPT), _q(BASE), _q(prepared), _q(final)} == set(doc["entity"])
    assert doc["entity"][_q(final)]["mahiru:workflowOutput"] == "result"
    activities = doc["activity"]
    prepare = activities[_q("step:job1:prepare")]
    assert prepare["prov:startTime"] == NOW.isoformat() and prepare["prov:label"].endswith(
        "(succeeded)"
    )
    assert "prov:endTime" not in activities[_q("step:job1:combine")]
    assert {_q(P1), _q(P2), _q(SITE1), _q(SITE2)} == set(doc["agent"])

    def pairs(kind: str, a: str, b: str) -> set[tuple[str, str]]:
        return {(r[a], r[b]) for r in doc[kind].values()}

    assert (_q("step:job1:prepare"), _q(DATA)) in pairs("used", "prov:activity", "prov:entity")
    assert (_q("step:job1:combine"), _q(prepared)) in pairs("used", "prov:activity", "prov:entity")
    assert (_q(final), _q("step:job1:combine")) in pairs(
        "wasGeneratedBy", "prov:entity", "prov:activity"
    )
    assert (_q("step:job1:prepare"), _q(SITE2)) in pairs(
        "wasAssociatedWith", "prov:activity", "prov:agent"
    )
    assert (_q(SITE2), _q(P2)) in pairs("actedOnBehalfOf", "prov:delegate", "prov:responsible")
    derived = pairs("wasDerivedFrom", "prov:generatedEntity", "prov:usedEntity")
    assert {
        (_q(prepared), _q(DATA)),
        (_q(prepared), _q(BASE)),
        (_q(final), _q(prepared)),
    } <= derived
    assert all(r["prov:agent"] == _q(P1) for r in doc["wasAttributedTo"].values())


def test_a_reported_result_id_is_used_over_the_expected_one() -> None:
    steps = _steps()
    other = ResultId.parse("result:" + "ab" * 32)
    steps[0] = replace(steps[0], results={"out": other})
    doc = job_provenance(STATUS, steps, OWNERS)
    assert _q(str(other)) in doc["entity"]


def test_the_dot_graph_has_a_node_per_record_and_labelled_edges() -> None:
    doc = job_provenance(STATUS, _steps(), OWNERS)
    dot = to_dot(doc)
    assert dot.startswith("digraph provenance {") and dot.rstrip().endswith("}")
    for section in ("entity", "activity", "agent"):
        for ident in doc[section]:
            assert f'"{ident}" [shape=' in dot
    assert f'"{_q("step:job1:prepare")}" -> "{_q(DATA)}" [label="used (data)"]' in dot
    assert '[label="on behalf of"]' in dot


def _at(seconds: float | None) -> datetime | None:
    return None if seconds is None else NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("job_started", "job_finished", "step_times", "start", "end"),
    [
        # the submitter marked the job started when it heard of the step, later
        (5, None, [(2, None)], 2, None),
        (2, None, [(5, None)], 2, None),
        # planned, nothing started: the submission
        (None, None, [(None, None)], 0, None),
        # a step's site's clock a little behind the submitter's
        (3, None, [(-1, None)], -1, None),
        # finished: the job ends no earlier than its last step
        (1, 10, [(1, 12), (4, 8)], 1, 12),
        (1, 10, [(1, 6), (4, 8)], 1, 10),
        # running: no end, whatever its steps did
        (1, None, [(1, 6), (7, None)], 1, None),
    ],
)
def test_the_job_s_times_span_its_steps(
    job_started: float | None,
    job_finished: float | None,
    step_times: list[tuple[float | None, float | None]],
    start: float,
    end: float | None,
) -> None:
    """The job's activity starts no later than its first step and ends no earlier than its
    last (times in seconds after the submission)."""
    state = (
        JobState.PLANNED
        if job_started is None
        else JobState.RUNNING
        if job_finished is None
        else JobState.FAILED
    )
    status = replace(
        STATUS,
        state=state,
        started_at=_at(job_started),
        finished_at=_at(job_finished),
        reason="r" if state is JobState.FAILED else None,
    )
    steps = []
    for name, (started, finished) in zip(("prepare", "combine"), step_times, strict=False):
        waiting = StepStatus.waiting(JOB_ID, name, PLAN.assignments[name], NOW)
        step_state = (
            StepState.WAITING
            if started is None
            else StepState.RUNNING
            if finished is None
            else StepState.FAILED
        )
        steps.append(
            replace(
                waiting,
                state=step_state,
                started_at=_at(started),
                finished_at=_at(finished),
                reason="r" if step_state is StepState.FAILED else None,
            )
        )
    job = job_provenance(status, steps, OWNERS)["activity"][_q("job:job1")]
    expected_start = _at(start)
    assert expected_start is not None and job["prov:startTime"] == expected_start.isoformat()
    expected_end = _at(end)
    assert job.get("prov:endTime") == (None if expected_end is None else expected_end.isoformat())
