"""Every step's log is kept, followed as it is written, shown only where its outputs may go,
and removed after the site's retention, in process on the fake engine (reference:
Execution, "Step logs")."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from tests.support.fake_runtime import StepRun, archive_of
from tests.support.fake_scenario import Scenario
from tests.support.fake_sites import FakeSite

from mahiru.api.text_streams import streamed_text
from mahiru.cli.step_logs import no_log_message, show_kept
from mahiru.errors import NotFound, NotKnown, PermissionDenied
from mahiru.model.assets import AssetKind
from mahiru.model.identifiers import JobId, SiteId
from mahiru.model.jobs import LOG_PRUNED, JobState, StepState, StepStatus
from mahiru.model.serialization import job_from_dict
from mahiru.runtime.ended_logs import EndedLogs
from mahiru.services.jobs.step_logs import PRUNE_EVERY_SECONDS, LogRetention, paced

#: Real seconds a test waits for a step thread at most.
DEADLINE = 10.0
DAY = 24 * 3600.0
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Talker:
    """A step that writes `lines` log lines, waiting after each one until the test lets it go
    on (`go`), then writes an empty list as its output."""

    def __init__(self, lines: int = 3) -> None:
        self.said = [threading.Event() for _ in range(lines)]
        self.go = [threading.Event() for _ in range(lines)]

    def __call__(self, run: StepRun) -> int:
        for number, (said, go) in enumerate(zip(self.said, self.go, strict=True)):
            run.log.append(f"line {number}")
            said.set()
            run.block(go)
        run.write("output0", "data.json", b"[]")
        return 0


def _short(run: StepRun) -> int:
    """Writes one log line and an empty list as its output."""
    run.log.append("short and done")
    run.write("output0", "data.json", b"[]")
    return 0


def _run(scenario: Scenario, compute: str = "minmax", *, here: bool = False) -> JobId:
    """Submit a job as party1's user and drive it to its end (at site1 if `here`)."""
    site1 = scenario.site1
    data = scenario.output_base if here else None
    job = scenario.job(compute, data=data)
    job_id = site1.jobs.submissions.submit(job, site1.party.user()).job_id
    scenario.net.drive()
    return job_id


def _view(site: FakeSite, job_id: JobId, step: str = "compute") -> StepStatus:
    """The step as the submitting user sees it."""
    _, views = site.jobs.submissions.get(job_id, site.party.user())
    return next(v.status for v in views if v.step == step)


def test_a_succeeded_step_keeps_its_log_where_it_ran_and_for_the_submitter(
    scenario: Scenario,
) -> None:
    """The step succeeds at site2: its log is kept there and reaches party1's user."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = _run(scenario)
    assert site1.job(job_id).state is JobState.SUCCEEDED
    held = site2.job_store.step_status(job_id, "compute")
    assert held.state is StepState.SUCCEEDED and held.log_tail == "read 4 values"
    seen = _view(site1, job_id)
    assert seen.log_tail == "read 4 values"


def _private_chain(scenario: Scenario) -> JobId:
    """Step a reads party2's secret (party1 may not use its output), b reads a's output;
    both succeed at site2. The job's id."""
    site1, site2 = scenario.site1, scenario.site2
    secret = site2.add_asset("log_secret", AssetKind.DATA, archive_of({"payload": b"[1, 2]"}))
    private = f"asset_collection:{site2.party.namespace}:private"
    results1 = f"asset_collection:{site1.party.namespace}:results"
    results2 = f"asset_collection:{site2.party.namespace}:results"
    for rule in (
        {"type": "MayAccess", "site": str(site2.id), "asset": secret},
        {"type": "MayAccess", "site": str(site2.id), "asset": private},
        {"type": "ResultOfDataIn", "data": secret, "compute": "*", "output": "*",
         "collection": private},
        {"type": "ResultOfDataIn", "data": private, "compute": "*", "output": "*",
         "collection": results2},
    ):  # fmt: skip
        site2.add_rule(rule)
    site1.add_rule(
        {"type": "ResultOfDataIn", "data": results1, "compute": "*", "output": "*",
         "collection": results1}
    )  # fmt: skip
    scenario.net.replicate()
    minmax_id = scenario.computes["minmax"]
    job = job_from_dict(
        {
            "submitter": str(site1.party.id),
            "workflow": {
                "inputs": ["input"],
                "outputs": {"result": "b.output0"},
                "steps": [_step("a", minmax_id, "input"), _step("b", minmax_id, "a.output0")],
            },
            "inputs": {"input": secret},
        }
    )
    return site1.jobs.submissions.submit(job, site1.party.user()).job_id


def _step(name: str, compute: str, source: str) -> dict[str, object]:
    return {
        "name": name,
        "compute_asset": compute,
        "inputs": {"input0": source},
        "outputs": {"output0": None},
    }


def test_a_succeeded_step_s_log_is_withheld_where_its_outputs_may_not_go(
    scenario: Scenario,
) -> None:
    """Step a succeeds on party2's private data: its log stays at site2; party1's user sees
    why it is withheld, and may not follow it either (403, the same decision)."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = _private_chain(scenario)
    scenario.net.drive()
    held = site2.job_store.step_status(job_id, "a")
    assert held.state is StepState.SUCCEEDED and held.log_tail == "read 2 values"
    seen = _view(site1, job_id, "a")
    assert seen.log_tail is not None and "read 2 values" not in seen.log_tail
    assert seen.log_tail.startswith("(log withheld:") and "may not use a.output0" in seen.log_tail
    with pytest.raises(PermissionDenied, match=r"may not use a\.output0"):
        site1.jobs.step_logs.follow(job_id, "a", site1.party.user())
    # Asked of site2 directly, by the submitter's site, the same decision holds there.
    with pytest.raises(PermissionDenied, match=r"may not use a\.output0"):
        site2.jobs.step_logs.for_peer(job_id, "a", site1.id)
    # b's output is party1's to use: its log is there, to follow too.
    followed = site1.jobs.step_logs.follow(job_id, "b", site1.party.user())
    assert b"read 2 values\n" in b"".join(followed)


def test_a_running_step_s_log_is_followed_as_it_is_written_until_the_step_ends(
    scenario: Scenario,
) -> None:
    """The step runs at site1 and writes a line at a time: each line arrives as it is
    written, and the stream ends with the step, saying how it ended."""
    site1 = scenario.site1
    talker = Talker()
    scenario.add_compute("talker", talker)
    job = scenario.job("talker", data=scenario.output_base)
    status = site1.jobs.submissions.submit(job, site1.party.user())
    assert status.plan is not None and set(status.plan.assignments.values()) == {site1.id}
    site1.follow()
    steps = site1.run_steps_aside()
    assert talker.said[0].wait(DEADLINE)
    pieces = site1.jobs.step_logs.follow(status.job_id, "compute", site1.party.user())
    followed = paced(pieces, scenario.net.clock)
    assert next(followed) == b"line 0\n"
    talker.go[0].set()
    assert talker.said[1].wait(DEADLINE)
    assert next(followed) == b"line 1\n"
    talker.go[1].set()
    assert talker.said[2].wait(DEADLINE)
    assert next(followed) == b"line 2\n"
    talker.go[2].set()
    steps.join(DEADLINE)
    rest = b"".join(followed)
    assert rest.decode().startswith("[mahiru] step compute is s")  # storing or succeeded
    assert site1.steps(status.job_id)["compute"].log_tail == "line 0\nline 1\nline 2"


def test_a_step_running_at_another_site_is_followed_there(scenario: Scenario) -> None:
    """The step runs at site2: site1 streams its log from site2 as it is written."""
    site1, site2 = scenario.site1, scenario.site2
    talker = Talker(2)
    scenario.add_compute("talker", talker)
    job_id = site1.jobs.submissions.submit(scenario.job("talker"), site1.party.user()).job_id
    site1.follow()
    steps = site2.run_steps_aside()
    assert talker.said[0].wait(DEADLINE)
    pieces = site1.jobs.step_logs.follow(job_id, "compute", site1.party.user())
    followed = paced(pieces, scenario.net.clock)
    assert next(followed) == f"[mahiru] step compute runs at {site2.id}\n".encode()
    assert next(followed) == b"line 0\n"
    talker.go[0].set()
    assert talker.said[1].wait(DEADLINE)
    assert next(followed) == b"line 1\n"
    talker.go[1].set()
    steps.join(DEADLINE)
    assert b"".join(followed).startswith(b"[mahiru] step compute is s")


def test_a_step_at_a_site_that_cannot_be_followed_is_shown_when_it_ends(
    scenario: Scenario,
) -> None:
    """site2 cannot be reached: the follower says so, waits, and shows the kept log once
    site1 hears that the step ended."""
    site1, site2 = scenario.site1, scenario.site2
    scenario.add_compute("short", _short)
    job_id = site1.jobs.submissions.submit(scenario.job("short"), site1.party.user()).job_id
    site1.follow()  # handed over
    site2.run_steps()  # done at site2; site1 has not heard yet
    site2.down = True
    followed = site1.jobs.step_logs.follow(job_id, "compute", site1.party.user())
    assert next(followed) == f"[mahiru] step compute runs at {site2.id}\n".encode()
    assert next(followed).startswith(b"[mahiru] cannot follow it there (")
    assert next(followed) == b""  # waits for the step's end to be heard
    site2.down = False
    site1.follow()
    assert b"".join(followed) == b"short and done\n[mahiru] step compute is succeeded\n"


def test_following_a_step_that_has_not_ended_stops_after_the_seconds_asked_for(
    scenario: Scenario,
) -> None:
    """30 (fake) seconds asked for a step that keeps running: the stream ends, saying so."""
    site1 = scenario.site1
    talker = Talker(1)
    scenario.add_compute("talker", talker)
    job = scenario.job("talker", data=scenario.output_base)
    job_id = site1.jobs.submissions.submit(job, site1.party.user()).job_id
    site1.follow()
    steps = site1.run_steps_aside()
    assert talker.said[0].wait(DEADLINE)
    clock = scenario.net.clock
    before = clock.monotonic()
    pieces = site1.jobs.step_logs.follow(job_id, "compute", site1.party.user(), 30)
    followed = b"".join(paced(pieces, clock))
    assert 30 <= clock.monotonic() - before < 31
    assert followed == b"line 0\n[mahiru] stopped following; step compute is running\n"
    talker.go[0].set()
    steps.join(DEADLINE)


def test_a_step_that_ended_before_it_was_followed_gives_its_kept_log(
    scenario: Scenario,
) -> None:
    """Followed after its end, at site1 and from site2, the step's kept log comes at once."""
    site1 = scenario.site1
    scenario.add_compute("short", _short)
    for here in (True, False):
        job_id = _run(scenario, "short", here=here)
        followed = b"".join(site1.jobs.step_logs.follow(job_id, "compute", site1.party.user()))
        assert followed.endswith(b"short and done\n[mahiru] step compute is succeeded\n")


def test_only_those_who_see_the_job_may_follow_its_steps(scenario: Scenario) -> None:
    """Another party's user, another plain user of party1, an unknown step, another site
    than the submitter's: not found, as for a job that does not exist."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = _run(scenario)
    logs = site1.jobs.step_logs
    with pytest.raises(NotKnown):
        logs.follow(job_id, "compute", scenario.net.sites["party3"].party.user())
    with pytest.raises(NotKnown):
        logs.follow(job_id, "compute", site1.party.user("mallory"))
    with pytest.raises(NotFound, match="no step 'other'"):
        logs.follow(job_id, "other", site1.party.user())
    with pytest.raises(NotKnown):
        site2.jobs.step_logs.for_peer(job_id, "compute", scenario.net.sites["party3"].id)
    admin = site1.party.user("boss", admin=True)
    assert b"read 4 values" in b"".join(logs.follow(job_id, "compute", admin))


def test_logs_older_than_the_retention_are_removed_and_say_so(scenario: Scenario) -> None:
    """30 days kept: a day later nothing is removed; 31 days later the log is removed at
    both sites (a second pass finds nothing more), and the status says so."""
    site1, site2 = scenario.site1, scenario.site2
    job_id = _run(scenario)
    retention = [LogRetention(site.jobs.ports.ledger, 30) for site in (site1, site2)]
    scenario.net.clock.advance(DAY)
    assert [r.prune() for r in retention] == [0, 0]
    scenario.net.clock.advance(30 * DAY)
    assert [r.prune() for r in retention] == [1, 1]
    assert [r.prune() for r in retention] == [0, 0]
    assert site2.job_store.step_status(job_id, "compute").log_tail == LOG_PRUNED
    assert _view(site1, job_id).log_tail == LOG_PRUNED
    assert site1.job(job_id).state is JobState.SUCCEEDED  # only the log goes


def test_the_coordinator_removes_old_logs_at_most_once_an_hour(scenario: Scenario) -> None:
    """With the default retention (30 days), the coordinator's round removes a log 31 days
    old; a retention looks again only an hour after its last look."""
    site2 = scenario.site2
    job_id = _run(scenario)
    scenario.net.clock.advance(31 * DAY)
    site2.follow()
    assert site2.job_store.step_status(job_id, "compute").log_tail == LOG_PRUNED
    retention = LogRetention(site2.jobs.ports.ledger, 10 / DAY)  # ten seconds
    scenario.add_compute("short", _short)
    again = _run(scenario, "short")
    assert retention.prune_when_due() == 0  # the new log is not ten seconds old
    scenario.net.clock.advance(60)
    assert retention.prune_when_due() == 0  # old enough, but looked a minute ago
    assert site2.job_store.step_status(again, "compute").log_tail == "short and done"
    scenario.net.clock.advance(PRUNE_EVERY_SECONDS)
    assert retention.prune_when_due() == 1
    assert site2.job_store.step_status(again, "compute").log_tail == LOG_PRUNED


@pytest.mark.parametrize(
    ("state", "reason", "says"),
    [
        (StepState.WAITING, None, "has not started"),
        (StepState.FETCHING, None, "has not started"),
        (StepState.RUNNING, None, "--follow"),
        (StepState.REUSED, None, "did not run"),
        (StepState.CANCELLED, "cancelled by user:u@p", "was cancelled"),
        (StepState.FAILED, "input x could not be laid out", "input x could not be laid out"),
        (StepState.SUCCEEDED, None, "no log kept"),
    ],
)
def test_a_step_without_a_kept_log_is_described_truly(
    state: StepState, reason: str | None, says: str
) -> None:
    """`mahiru jobs logs` says why there is no log from the step's state, never "may not"."""
    status = StepStatus(
        JobId("j1"),
        "compute",
        SiteId.parse("site:p.example.org:s"),
        state,
        NOW,
        NOW,
        started_at=None if state is StepState.WAITING else NOW,
        finished_at=NOW if state.terminal else None,
        reason=reason,
    )
    message = no_log_message(status)
    assert says in message and "may not" not in message


def test_a_runner_remembers_the_end_of_each_ended_step_s_log_a_while() -> None:
    """Read from any offset; a reader behind what is kept is told what was skipped; the
    oldest step is forgotten first."""
    ended = EndedLogs(steps=2, max_bytes=8)
    ended.remember("s1", b"0123456789abcdef")
    assert ended.output("s1", 12) == b"cdef"
    assert ended.output("s1", 16) == b""
    assert ended.output("s1", 2) == b"[... 6 bytes of the log not kept ...]\n89abcdef"
    ended.remember("s2", b"tail", offset=100)
    assert ended.output("s2", 102) == b"il"
    ended.remember("s3", b"x")
    assert ended.output("s1", 0) is None and ended.output("s3", 0) == b"x"


def test_the_log_routes_send_each_piece_as_it_comes_and_wait_out_the_empty_ones() -> None:
    """Empty pieces (nothing new yet) are waited out, not sent; the rest go in order."""
    response = streamed_text(iter([b"one\n", b"", b"", b"two\n"]))
    assert response.media_type == "text/plain; charset=utf-8"
    assert response.headers["cache-control"] == "no-store"

    async def collect() -> list[bytes]:
        return [bytes(piece) async for piece in response.body_iterator]

    assert asyncio.run(collect()) == [b"one\n", b"two\n"]


def test_mahiru_jobs_logs_shows_kept_logs_and_says_why_a_step_has_none(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A kept log as it is; an empty one, and none, each said in words."""
    site = SiteId.parse("site:p.example.org:s")

    def status(step: str, state: StepState, log: str | None) -> StepStatus:
        started = None if state is StepState.WAITING else NOW
        finished = NOW if state.terminal else None
        return StepStatus(
            JobId("j1"), step, site, state, NOW, NOW,
            started_at=started, finished_at=finished, log_tail=log,
        )  # fmt: skip

    show_kept(
        [
            status("a", StepState.SUCCEEDED, "one\ntwo\n"),
            status("b", StepState.SUCCEEDED, ""),
            status("c", StepState.WAITING, None),
        ]
    )
    assert capsys.readouterr().out.splitlines() == [
        f"== a at {site}: succeeded",
        "one",
        "two",
        f"== b at {site}: succeeded",
        "   (the step printed nothing)",
        f"== c at {site}: waiting",
        "   (no log yet: the step has not started)",
    ]
