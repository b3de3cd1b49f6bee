"""The submitter's site learns how its steps at another site are doing by long poll: no asks
while nothing changes, the step's end as soon as it happens; and the step site bounds the
waits (how long, how many per calling site)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from tests.support.fake_scenario import Hang, Scenario
from tests.support.inprocess_peers import InProcessPeer
from tests.support.waiting import wait_until

from mahiru.errors import RateLimited
from mahiru.model.identifiers import SiteId
from mahiru.model.jobs import JobState, StepState
from mahiru.services.jobs import step_changes
from mahiru.services.jobs.step_changes import StepChanges, steps_version

DEADLINE = 10.0


@pytest.fixture
def asks(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each site's step states were asked for, by kind (`statuses`: a direct
    ask; `changes`: a long poll), through the in-process peers."""
    counted: Counter[str] = Counter()
    for name, kind in (("step_statuses", "statuses"), ("step_changes", "changes")):
        original = getattr(InProcessPeer, name)

        def counting(
            *args: Any, _original: Callable[..., Any] = original, _kind: str = kind
        ) -> Any:
            counted[_kind] += 1
            return _original(*args)

        monkeypatch.setattr(InProcessPeer, name, counting)
    return counted


def test_a_remote_step_reaches_the_submitter_by_long_poll_without_polling(
    scenario: Scenario, hang: Hang, asks: Counter[str]
) -> None:
    """While a step runs at site2, any number of site1's rounds ask site2 nothing more (one
    long poll waits there) and come after the ordinary interval; the step's end then
    reaches site1 through that long poll, and the job succeeds."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = site1.jobs.submissions.submit(scenario.job("hang"), site1.party.user()).job_id
    coordinator = site1.jobs.loops.coordinator
    coordinator.watch.start()  # as the loops do; the rounds are run here
    try:
        coordinator.loop.run_round()  # hands the step over to site2
        steps = site2.run_steps_aside()
        assert hang.started.wait(DEADLINE)

        def mirrored(state: StepState) -> bool:
            coordinator.loop.run_round()
            return site1.steps(job_id)["compute"].state is state

        wait_until(lambda: mirrored(StepState.RUNNING), DEADLINE, "site1 sees the step run")
        # The watch's next ask is under way: it waits at site2 for a change.
        wait_until(lambda: site2.jobs.ports.ledger.changes.waiting(site1.id), DEADLINE, "a wait")
        before = Counter(asks)
        for _ in range(50):
            assert coordinator.loop.run_round() is None  # nothing to poll soon
        assert asks == before
        assert asks["statuses"] == 0
        hang.release.set()
        steps.join(DEADLINE)
        started = time.monotonic()
        wait_until(lambda: mirrored(StepState.SUCCEEDED), DEADLINE, "site1 sees the step end")
        assert time.monotonic() - started < step_changes.MAX_STEP_WAIT / 2  # not a timeout
        assert asks["changes"] - before["changes"] <= 2  # the answer, and the next wait
        wait_until(
            lambda: (
                coordinator.loop.run_round() is None
                and site1.job(job_id).state is JobState.SUCCEEDED
            ),
            DEADLINE,
            "the job succeeds",
        )
        assert asks["statuses"] == 0
    finally:
        coordinator.watch.stop()


class _View:
    """A step state as shown (`StepView`'s JSON form only)."""

    def __init__(self, state: str) -> None:
        self.state = state

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state}


SITE_A = SiteId.parse("site:a.org:site")
SITE_B = SiteId.parse("site:b.org:site")


def test_a_wait_ends_when_a_step_of_its_job_changes_not_when_another_jobs_does() -> None:
    """A request waiting on job j1 is answered at once with the new states when a step of
    j1 changes; one on j2 keeps waiting, then times out with the states unchanged."""
    changes = StepChanges()
    shown = {"j1": [_View("running")], "j2": [_View("running")]}
    seen = steps_version(shown["j1"])

    async def scenario() -> tuple[tuple[list[_View], str], tuple[list[_View], str], float]:
        first = asyncio.create_task(
            changes.after("j1", SITE_A, lambda: shown["j1"], version=seen, seconds=20)
        )
        second = asyncio.create_task(
            changes.after("j2", SITE_A, lambda: shown["j2"], version=seen, seconds=0.3)
        )
        while changes.waiting(SITE_A) < 2:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        shown["j1"] = [_View("succeeded")]
        changes.changed("j1")
        answered = await first
        took = time.monotonic() - started
        return answered, await second, took

    (views1, version1), (views2, version2), took = asyncio.run(scenario())
    assert [v.state for v in views1] == ["succeeded"] and version1 != seen
    assert took < 5.0
    assert [v.state for v in views2] == ["running"] and version2 == seen
    assert changes.waiting(SITE_A) == 0


def test_a_calling_site_may_hold_only_so_many_waiting_requests() -> None:
    """Past the bound, a site's next wait is refused (RateLimited, so it pauses); another
    site may still wait, and once a wait ends its place is free again."""
    changes = StepChanges(max_waiting_per_caller=2)
    shown = [_View("running")]
    seen = steps_version(shown)

    async def scenario() -> None:
        waits = [
            asyncio.create_task(changes.after(job, SITE_A, lambda: shown, version=seen, seconds=20))
            for job in ("j1", "j2")
        ]
        while changes.waiting(SITE_A) < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(RateLimited):
            await changes.after("j3", SITE_A, lambda: shown, version=seen, seconds=20)
        other = asyncio.create_task(
            changes.after("j3", SITE_B, lambda: shown, version=seen, seconds=20)
        )
        while changes.waiting(SITE_B) < 1:
            await asyncio.sleep(0.01)
        for job in ("j1", "j2", "j3"):
            shown.append(_View("new"))
            changes.changed(job)
        await asyncio.gather(*waits, other)
        assert changes.waiting(SITE_A) == 0
        await changes.after("j4", SITE_A, lambda: shown, version=None, seconds=20)

    asyncio.run(scenario())


def test_no_wait_is_longer_than_the_maximum(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait asked for longer than MAX_STEP_WAIT ends after MAX_STEP_WAIT, unchanged."""
    monkeypatch.setattr(step_changes, "MAX_STEP_WAIT", 0.2)
    changes = StepChanges()
    shown = [_View("running")]
    seen = steps_version(shown)
    started = time.monotonic()
    _views, version = asyncio.run(
        changes.after("j1", SITE_A, lambda: shown, version=seen, seconds=3600)
    )
    assert version == seen
    assert 0.2 <= time.monotonic() - started < 5.0


def test_a_wait_that_rechecks_sees_a_change_nobody_told_it_of() -> None:
    """A web worker's waits are not woken by steps the loops process runs: with
    `recheck_every`, a wait reads the states again on its own and answers with the
    change; without it, the same unannounced change goes unseen until the wait ends."""

    async def waited(recheck: float | None) -> tuple[str, float]:
        changes = StepChanges()
        if recheck is not None:
            changes.recheck_every(recheck)
        shown = [_View("running")]
        seen = steps_version(shown)
        task = asyncio.create_task(
            changes.after("j1", SITE_A, lambda: list(shown), version=seen, seconds=1.5)
        )
        while changes.waiting(SITE_A) < 1:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        shown[0] = _View("succeeded")  # changed elsewhere: no `changed` call
        views, _version = await task
        return views[0].state, time.monotonic() - started

    state, took = asyncio.run(waited(0.05))
    assert state == "succeeded" and took < 1.4
    state, took = asyncio.run(waited(None))
    assert state == "succeeded" and took >= 1.4  # read once more only at the end


def test_a_stopping_site_answers_its_waiting_requests_at_once() -> None:
    """When the site stops, every waiting request is answered at once with the states as
    they are (its caller asks again, of the site once back); later waits wait as before."""
    changes = StepChanges()
    shown = [_View("running")]
    seen = steps_version(shown)

    async def scenario() -> tuple[str, float, str]:
        waiting = asyncio.create_task(
            changes.after("j1", SITE_A, lambda: shown, version=seen, seconds=20)
        )
        while changes.waiting(SITE_A) < 1:
            await asyncio.sleep(0.01)
        started = time.monotonic()
        changes.release_all()
        _views, version = await waiting
        took = time.monotonic() - started
        _views, later = await changes.after("j1", SITE_A, lambda: shown, version=seen, seconds=0.3)
        return version, took, later

    version, took, later = asyncio.run(scenario())
    assert version == seen and took < 5.0
    assert later == seen and changes.waiting(SITE_A) == 0
