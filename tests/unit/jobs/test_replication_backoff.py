"""A source that keeps failing is left alone by the background rounds, but not when someone
waits on the answer: an admin's "replicate now" and a denial about to stand try it anyway."""

from __future__ import annotations

from tests.support.fake_scenario import Scenario

from mahiru.services.site.replication import BACKOFF_AFTER


def _source(scenario: Scenario, name: str) -> tuple[int, str | None, object]:
    """(failures, last error, next attempt) of `name`'s rules as site1 replicates them."""
    site1, peer = scenario.site1, scenario.net.sites[name]
    [status] = [
        s for s in site1.services.replication.replicator.status() if s.source == str(peer.id)
    ]
    return status.failures, status.last_error, status.next_attempt


def _fail_until_backing_off(scenario: Scenario) -> None:
    """site2 unreachable for BACKOFF_AFTER rounds of site1, then back."""
    site2 = scenario.site2
    site2.down = True
    for _ in range(BACKOFF_AFTER):
        scenario.site1.services.replication.replicator.run_once()
    failures, error, waiting = _source(scenario, "party2")
    assert failures == BACKOFF_AFTER and error is not None and waiting is not None
    site2.down = False  # back, but site1 waits out its back-off (the fake clock stands still)


def test_a_round_leaves_a_failing_source_alone_while_it_backs_off(scenario: Scenario) -> None:
    """The background round does not call a source before its back-off is over."""
    _fail_until_backing_off(scenario)
    scenario.site1.services.replication.replicator.run_once()
    failures, error, waiting = _source(scenario, "party2")
    assert (failures, error is not None, waiting is not None) == (BACKOFF_AFTER, True, True)


def test_replicate_now_tries_a_source_that_backs_off(scenario: Scenario) -> None:
    """An admin's "replicate now" (an eager round) calls it, and the failures are cleared."""
    _fail_until_backing_off(scenario)
    scenario.site1.services.replication.replicator.run_once(eager=True)
    assert _source(scenario, "party2") == (0, None, None)


def test_a_denial_about_to_stand_tries_a_source_that_backs_off(scenario: Scenario) -> None:
    """The policy view's refresh before a denial stands is eager: site1 asks site2 again."""
    _fail_until_backing_off(scenario)
    assert scenario.site1.services.policy.refresh()  # what `decide` runs before a denial stands
    assert _source(scenario, "party2") == (0, None, None)
