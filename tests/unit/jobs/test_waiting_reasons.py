"""Every waiting step says why, in process: the part that met the obstacle names it (a hand-over,
an input fetch, live access, the container engine, a reviewer, the steps it reads from, a
peer that cannot be asked), with since when and how many tries in a row met it, and the
submitter's users see it in the step's JSON.

Nothing sleeps: the clock is fake and each try is one call.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from tests.support.fake_scenario import Scenario
from tests.support.fake_sites import FakeSite
from tests.support.inprocess_peers import InProcessPeer
from tests.unit.jobs.test_job_path_chain import _review_chain_input, chain  # noqa: F401
from tests.unit.jobs.test_job_path_live import Live, live, live_template  # noqa: F401

from mahiru.cli.job_progress import REPEAT_WAITS, ProgressLines
from mahiru.client.jobs import JobView
from mahiru.errors import InvalidInput, Unavailable
from mahiru.model.identifiers import JobId, SiteId
from mahiru.model.jobs import JobState, JobStatus, StepState, StepStatus
from mahiru.model.jobs.waiting import Waiting
from mahiru.model.serialization import job_from_dict
from mahiru.model.workflow import Job, Plan
from mahiru.services.jobs.waits import StepWaits

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SITE = SiteId.parse("site:p2:s2")


def shown(site: FakeSite, job_id: JobId, step: str) -> Waiting | None:
    """The wait of `step` as the submitter's user gets it: the job's JSON, parsed back."""
    _, views = site.jobs.submissions.get(job_id, site.party.user())
    (view,) = [v for v in views if v.step == step]
    return StepStatus.from_dict(view.to_dict()).wait


def reported(site: FakeSite, submitter: FakeSite, job_id: JobId, step: str) -> Waiting | None:
    """The wait of `step`, run at `site`, as `site` reports it to the submitter's site."""
    views = site.jobs.assignments.statuses(job_id, submitter.id)
    (view,) = [v for v in views if v.step == step]
    return StepStatus.from_dict(view.to_dict()).wait


def waiting(wait: Waiting | None) -> Waiting:
    assert wait is not None, "the step says nothing about what it waits for"
    return wait


# --- each kind of wait ------------------------------------------------------------------------


def test_a_step_not_handed_over_says_its_site_cannot_be_reached(scenario: Scenario) -> None:
    """site2 down: compute's wait names the hand-over to site2 and why; each round counts
    one more try since the first, and once site2 has the step the hand-over wait is gone."""
    site1, site2, clock = scenario.site1, scenario.site2, scenario.net.clock
    site2.down = True
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    first = waiting(shown(site1, job_id, "compute"))
    assert first.reason == f"cannot hand over steps to {site2.id}: {site2.id} cannot be reached"
    assert first.site == site2.id
    clock.advance(60)
    site1.follow()
    site1.follow()
    later = waiting(shown(site1, job_id, "compute"))
    assert (later.reason, later.since) == (first.reason, first.since)
    assert later.attempts == first.attempts + 2
    site2.down = False
    site1.follow()
    assert site2.steps(job_id)["compute"].state is StepState.WAITING
    after = shown(site1, job_id, "compute")
    assert after is None or not after.reason.startswith("cannot hand over")


def test_a_step_that_cannot_fetch_its_input_names_the_input_and_its_site(
    scenario: Scenario,
) -> None:
    """site1 (holding the compute asset) down after the hand-over: site2's step says it cannot
    fetch it from site1, counted per try; site1, back, shows what site2 reports."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    site1.down = True
    site2.run_steps()
    site2.run_steps()
    wait = waiting(reported(site2, site1, job_id, "compute"))
    assert wait.reason.startswith("cannot fetch input ")
    assert f"from {site1.id}: " in wait.reason and wait.reason.endswith("cannot be reached")
    assert (wait.site, wait.attempts) == (site1.id, 2)
    site1.down = False
    site1.follow()
    assert shown(site1, job_id, "compute") == wait
    scenario.net.drive()
    assert shown(site1, job_id, "compute") is None  # finished: nothing to wait for


def test_a_step_whose_engine_is_down_says_so_and_counts_its_tries(scenario: Scenario) -> None:
    """The engine down: the step says its container cannot run and why, with one more try
    each time, the same since; the engine back, the step runs and waits no more."""
    site1, site2, clock = scenario.site1, scenario.site2, scenario.net.clock
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    site2.runtime.down = True
    site2.run_steps()
    first = waiting(reported(site2, site1, job_id, "compute"))
    clock.advance(30)
    site2.run_steps()
    later = waiting(reported(site2, site1, job_id, "compute"))
    assert later.reason.startswith("cannot run the step's container: ")
    assert (later.since, later.attempts, later.site) == (first.since, 2, None)
    site2.runtime.down = False
    site2.run_steps()
    assert site2.steps(job_id)["compute"].state is StepState.SUCCEEDED
    assert site2.jobs.ports.ledger.waits.of(job_id, "compute") is None


def test_a_step_denied_live_access_for_now_says_so(
    live: Live,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """site2 cannot grant live access just now: the step at site1 says it cannot get live
    access to the data set at site2; once it can, the step runs."""
    site1, site2 = live.site1, live.site2
    job_id = live.submit()

    def refuse(self: InProcessPeer, grant: object) -> str:
        raise Unavailable(f"{site2.id} is busy")

    with monkeypatch.context() as patched:
        patched.setattr(InProcessPeer, "live_grant", refuse)
        site1.run_steps()
    wait = waiting(shown(site1, job_id, "compute"))
    assert wait.reason == f"cannot get live access to {live.data} at {site2.id}: {site2.id} is busy"
    assert wait.site == site2.id
    live.scenario.net.drive()
    assert shown(site1, job_id, "compute") is None


def test_a_step_whose_input_awaits_review_names_the_reviewer(
    scenario: Scenario,
    chain: Job,  # noqa: F811
) -> None:
    """a's result is held for party3 by party2's review: b (at site3) says it awaits that
    review, and site1's user sees it."""
    net = scenario.net
    site1, site2 = net.sites["party1"], net.sites["party2"]
    _review_chain_input(site2, chain)
    job_id = site1.jobs.submissions.submit(chain, site1.party.user()).job_id
    net.drive()
    (review,) = site2.reviewers().pending()[0]
    wait = waiting(shown(site1, job_id, "b"))
    assert f"awaiting review by {site2.party.id} (review {review.review_id})" in wait.reason


def test_a_step_waiting_for_its_producers_names_them_and_their_sites(
    scenario: Scenario,
    chain: Job,  # noqa: F811
) -> None:
    """b (at site3) waits for a (at site2), and says so, counting each look."""
    net = scenario.net
    site1, site2, site3 = (net.sites[name] for name in ("party1", "party2", "party3"))
    job_id = site1.jobs.submissions.submit(chain, site1.party.user()).job_id
    site1.follow()
    site3.run_steps()
    site3.run_steps()
    wait = waiting(reported(site3, site1, job_id, "b"))
    assert wait.reason == f"waits for the steps it reads from to finish: a (at {site2.id})"
    assert wait.attempts == 2


def test_a_step_at_a_site_that_cannot_be_asked_says_so(scenario: Scenario) -> None:
    """Handed over, then site2 down: site1 says it cannot ask site2 how its step is."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job(), site1.party.user()).job_id
    site1.follow()
    site2.down = True
    site1.follow()
    site1.follow()
    wait = waiting(shown(site1, job_id, "compute"))
    assert wait.reason == f"cannot ask {site2.id} how its steps are: {site2.id} cannot be reached"
    assert (wait.site, wait.attempts) == (site2.id, 2)


def test_a_cancelled_job_has_no_waits(scenario: Scenario) -> None:
    """Cancelled while its hand-over waits: the steps are cancelled, and say no wait."""
    site1, site2 = scenario.site1, scenario.site2
    user = site1.party.user()
    site2.down = True
    job_id = site1.jobs.submissions.submit(scenario.job(), user).job_id
    site1.follow()
    assert shown(site1, job_id, "compute") is not None
    site1.jobs.submissions.cancel(job_id, user)
    assert shown(site1, job_id, "compute") is None
    assert site1.jobs.ports.ledger.waits.of(job_id, "compute") is None


# --- the values -----------------------------------------------------------------------------


def test_the_tracker_counts_the_same_reason_and_starts_again_for_a_new_one() -> None:
    """The same reason again: one more try, the same since (also after the step moved on
    past it and met it again); another reason: a new wait; cleared: none."""
    waits = StepWaits()
    job = "j1"
    first = waits.note(job, "s", "engine down", T0, None)
    assert (first.attempts, first.since) == (1, T0)
    assert waits.note(job, "s", "engine down", T0 + timedelta(seconds=5)).attempts == 2
    waits.moved_on(job, "s")
    assert waits.of(job, "s") is None
    again = waits.note(job, "s", "engine down", T0 + timedelta(seconds=9))
    assert (again.attempts, again.since) == (3, T0)
    other = waits.note(job, "s", "cannot fetch", T0 + timedelta(seconds=10), SITE)
    assert (other.attempts, other.since, other.site) == (1, T0 + timedelta(seconds=10), SITE)
    waits.cleared(job, "s")
    assert waits.of(job, "s") is None


def test_a_reported_wait_replaces_the_one_noted_here_and_a_report_without_one_ends_it() -> None:
    """The site that runs a step knows best: its report stands, and a report of a step
    that no longer waits (or finished) ends the wait here."""
    waits = StepWaits()
    waits.note("j1", "s", "cannot ask site2", T0, SITE)
    theirs = Waiting("cannot fetch", T0 + timedelta(seconds=1), 4, None)
    status = StepStatus("j1", "s", SITE, StepState.FETCHING, T0, T0, started_at=T0, wait=theirs)
    waits.report(status)
    assert waits.of("j1", "s") == theirs
    waits.report(StepStatus("j1", "s", SITE, StepState.RUNNING, T0, T0, started_at=T0))
    assert waits.of("j1", "s") is None


@pytest.mark.parametrize(
    ("wait", "state", "problem"),
    [
        (Waiting("x", T0), StepState.SUCCEEDED, "only an unfinished step waits"),
        (Waiting("x", T0), StepState.CANCELLED, "only an unfinished step waits"),
    ],
)
def test_a_finished_step_does_not_wait(wait: Waiting, state: StepState, problem: str) -> None:
    """A wait goes only with a step that has not finished."""
    with pytest.raises(InvalidInput, match=problem):
        StepStatus(
            "j1", "s", SITE, state, T0, T0, started_at=T0, finished_at=T0, reason="r", wait=wait
        )


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"reason": "", "since": T0.isoformat(), "attempts": 1, "site": None}, "non-empty"),
        ({"reason": "x", "since": T0.isoformat(), "attempts": 0, "site": None}, "attempts"),
        ({"reason": "x", "since": "2026-01-01T00:00:00", "attempts": 1, "site": None}, "zone"),
        ({"reason": "x", "since": T0.isoformat(), "attempts": 1, "site": "nope"}, "site"),
        ({"reason": "x", "since": T0.isoformat(), "attempts": 1}, "missing site"),
    ],
)
def test_a_wait_s_json_is_parsed_strictly(data: dict[str, object], problem: str) -> None:
    """Each bad field of a wait's JSON form is named."""
    with pytest.raises(InvalidInput, match=problem):
        Waiting.from_dict(data)


def test_a_wait_round_trips_through_json_with_its_step() -> None:
    """A step status with a wait parses back equal, and says it in one line."""
    wait = Waiting("cannot hand over", T0, 3, SITE)
    status = StepStatus("j1", "s", SITE, StepState.WAITING, T0, T0, wait=wait)
    assert StepStatus.from_dict(status.to_dict()) == status
    assert wait.describe() == "cannot hand over (since 2026-01-01T00:00:00+00:00, 3 tries)"


def test_a_status_from_a_site_that_sends_no_wait_waits_for_nothing() -> None:
    """A step status without the `wait` field (a site of an earlier release) parses, with no
    wait; any other field missing is still refused."""
    data = StepStatus("j1", "s", SITE, StepState.WAITING, T0, T0).to_dict()
    del data["wait"]
    assert StepStatus.from_dict(data).wait is None
    del data["version"]
    with pytest.raises(InvalidInput, match="missing version"):
        StepStatus.from_dict(data)


def _view(state: StepState, wait: Waiting | None) -> JobView:
    job = job_from_dict(
        {
            "submitter": "party:p1.org:p1",
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "compute.out"},
                "steps": [{"name": "compute", "compute_asset": "asset:p1.org:c:p1.org:site",
                           "inputs": {"in": "input"}, "outputs": {"out": None}}],
            },
            "inputs": {"input": "asset:p2.org:d:p2.org:site"},
        }
    )  # fmt: skip
    plan = Plan({"compute": SITE})
    status = JobStatus(
        "j1", job, SiteId.parse("site:p1.org:s1"), JobState.PLANNED, T0, T0, plan=plan
    )
    started = None if state is StepState.WAITING else T0
    step = StepStatus("j1", "compute", SITE, state, T0, T0, started_at=started, wait=wait)
    return JobView(status, [step])


HANDING = Waiting("cannot hand over steps to site:p2:s2: refused", T0, 1, SITE)


@pytest.mark.parametrize(
    ("polls", "lines"),
    [
        # (seconds, step state, wait) per poll -> the lines written
        ([(0, StepState.WAITING, None), (1, StepState.WAITING, None)], ["compute waiting"]),
        (
            [(0, StepState.WAITING, HANDING), (1, StepState.WAITING, HANDING.again(SITE))],
            ["compute waiting (cannot hand over"],
        ),
        (
            [
                (0, StepState.WAITING, HANDING),
                (REPEAT_WAITS, StepState.WAITING, HANDING.again(SITE)),
            ],
            ["compute waiting (cannot hand over", "2 tries"],
        ),
        (
            [(0, StepState.WAITING, None), (1, StepState.FETCHING, None)],
            ["compute waiting", "compute fetching"],
        ),
    ],
)
def test_progress_lines_say_each_change_and_repeat_a_wait_with_its_count(
    polls: list[tuple[float, StepState, Waiting | None]],
    lines: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A line per change of state or wait; while a step waits, the line again every
    REPEAT_WAITS seconds (with the count of tries), never more often."""
    now = [0.0]
    progress = ProgressLines(monotonic=lambda: now[0])
    for at, state, wait in polls:
        now[0] = at
        progress(_view(state, wait))
    written = capsys.readouterr().err.splitlines()
    assert len(written) == len(lines), written
    for line, expected in zip(written, lines, strict=True):
        assert line.startswith("planned: ") and expected in line
