"""Back-off delays and the one retry loop, against a clock that moves only when slept on."""

from __future__ import annotations

import threading

import pytest
from tests.support.manual_clock import ManualClock

from mahiru.errors import Conflict, InvalidInput, Unavailable
from mahiru.retry import Backoff, retry, wait
from mahiru.services.jobs.peers import retrying


class Flaky:
    """An action that raises the given errors in turn, then returns "done"."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_delays_grow_by_the_factor_up_to_the_cap() -> None:
    """0.25, 0.5, 1, 2, then 2 for ever; below one failure counts as one."""
    backoff = Backoff(0.25, cap=2.0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]
    assert backoff.delay(0) == backoff.delay(-3) == 0.25
    assert Backoff(1.0, factor=3.0).delay(4) == 27.0
    assert Backoff(1.0, cap=300.0).delay(100_000) == 300.0  # no overflow far past the cap


def test_jitter_draws_below_the_delay_within_its_fraction() -> None:
    """With jitter 0.8 a delay d lies in [0.2 d, d]: the drawn number picks where."""
    assert Backoff(1.0, cap=4.0, jitter=0.8, draw=lambda: 0.0).delay(3) == 4.0
    assert Backoff(1.0, cap=4.0, jitter=0.8, draw=lambda: 1.0).delay(3) == pytest.approx(0.8)
    assert Backoff(1.0, jitter=0.5, draw=lambda: 0.5).delay(2) == 1.5
    spread = Backoff(0.25, cap=1.0, jitter=0.8)
    for failures in range(1, 6):
        base = Backoff(0.25, cap=1.0).delay(failures)
        for _ in range(50):
            assert 0.2 * base - 1e-12 <= spread.delay(failures) <= base


@pytest.mark.parametrize(
    "fields", [{"first": -1.0}, {"first": 1.0, "factor": 0.5}, {"first": 1.0, "jitter": 1.5}]
)
def test_nonsense_back_offs_are_refused(fields: dict[str, float]) -> None:
    """A negative delay, a shrinking factor or jitter past 1 is not a back-off."""
    with pytest.raises(ValueError):
        Backoff(**fields)


def test_retry_sleeps_the_back_off_on_the_clock_until_the_action_succeeds() -> None:
    """Two Unavailable, then success: two pauses, 0.5 then 1, and the action's result."""
    clock = ManualClock()
    action = Flaky(Unavailable("down"), Unavailable("still down"))
    seen: list[tuple[str, int, float]] = []
    result = retry(
        action,
        backoff=Backoff(0.5),
        clock=clock,
        attempts=5,
        on_retry=lambda error, failures, pause: seen.append((str(error), failures, pause)),
    )
    assert result == "done"
    assert action.calls == 3
    assert clock.sleeps == [0.5, 1.0]
    assert seen == [("down", 1, 0.5), ("still down", 2, 1.0)]


def test_retry_re_raises_the_last_error_once_the_attempts_are_used_up() -> None:
    """Three attempts: three calls, two pauses, and the third error escapes."""
    clock = ManualClock()
    action = Flaky(*(Unavailable(f"down {n}") for n in range(1, 10)))
    with pytest.raises(Unavailable, match="down 3"):
        retry(action, backoff=Backoff(1.0), clock=clock, attempts=3)
    assert action.calls == 3
    assert clock.sleeps == [1.0, 2.0]


def test_retry_gives_up_when_the_next_try_would_start_past_the_deadline() -> None:
    """Deadline 10 s with 1, 2, 4, 8 s pauses: tries at 0, 1, 3, 7 s; 15 s would be too late."""
    clock = ManualClock()
    action = Flaky(*(Unavailable(f"down {n}") for n in range(1, 10)))
    with pytest.raises(Unavailable, match="down 4"):
        retry(action, backoff=Backoff(1.0), clock=clock, deadline=10.0)
    assert action.calls == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert clock.seconds == 1007.0


def test_errors_retrying_cannot_cure_pass_straight_through() -> None:
    """InvalidInput is not retried by default: one call, no sleep."""
    clock = ManualClock()
    action = Flaky(InvalidInput("bad"))
    with pytest.raises(InvalidInput, match="bad"):
        retry(action, backoff=Backoff(1.0), clock=clock, attempts=5)
    assert action.calls == 1
    assert clock.sleeps == []


def test_retry_if_narrows_the_errors_retried() -> None:
    """Only the Conflict the predicate accepts is retried; the next one escapes at once."""
    clock = ManualClock()
    action = Flaky(Conflict("stale", {"stale": True}), Conflict("other", {}), Conflict("x", {}))

    def stale(error: Exception) -> bool:
        return isinstance(error, Conflict) and error.details == {"stale": True}

    with pytest.raises(Conflict, match="other"):
        retry(
            action, backoff=Backoff(1.0), clock=clock, attempts=5, retry_on=Conflict, retry_if=stale
        )
    assert action.calls == 2
    assert clock.sleeps == [1.0]


def test_retry_on_takes_several_exception_classes() -> None:
    """A tuple of classes: each is retried, others are not."""
    clock = ManualClock()
    action = Flaky(TimeoutError("slow"), Unavailable("down"))
    result = retry(
        action, backoff=Backoff(0.1), clock=clock, attempts=3, retry_on=(TimeoutError, Unavailable)
    )
    assert result == "done"
    assert action.calls == 3


def test_a_set_stop_event_ends_retrying_with_the_last_error() -> None:
    """Once stop is set no pause starts: the error escapes after one call."""
    clock = ManualClock()
    stop = threading.Event()
    stop.set()
    action = Flaky(Unavailable("down"), Unavailable("down"))
    with pytest.raises(Unavailable):
        retry(action, backoff=Backoff(1.0), clock=clock, attempts=5, stop=stop)
    assert action.calls == 1
    assert clock.sleeps == []


def test_a_stop_during_the_pause_cuts_it_short() -> None:
    """The pause naps on the clock and ends at the first nap after stop is set."""
    stop = threading.Event()
    naps: list[float] = []

    class StoppingClock(ManualClock):
        def sleep(self, seconds: float) -> None:
            naps.append(seconds)
            super().sleep(seconds)
            if len(naps) == 3:
                stop.set()

    clock = StoppingClock()
    action = Flaky(Unavailable("down"), Unavailable("down"))
    with pytest.raises(Unavailable):
        retry(action, backoff=Backoff(5.0), clock=clock, attempts=5, stop=stop)
    assert action.calls == 1
    assert len(naps) == 3
    assert sum(naps) < 5.0


def test_wait_sleeps_the_whole_time_without_a_stop_and_reports_an_early_end() -> None:
    """wait() is one sleep without an event; with one, naps adding up to the time."""
    clock = ManualClock()
    assert wait(clock, 2.0)
    assert clock.sleeps == [2.0]
    clock = ManualClock()
    assert wait(clock, 0.3, threading.Event())
    assert sum(clock.sleeps) == pytest.approx(0.3)
    stopped = threading.Event()
    stopped.set()
    assert not wait(ManualClock(), 1.0, stopped)


def test_retry_needs_a_limit() -> None:
    """Neither attempts nor a deadline would retry for ever: refused."""
    with pytest.raises(ValueError):
        retry(lambda: 1, backoff=Backoff(1.0), clock=ManualClock())
    with pytest.raises(ValueError):
        retry(lambda: 1, backoff=Backoff(1.0), clock=ManualClock(), attempts=0)


def test_retrying_a_peer_doubles_from_the_first_delay_up_to_five_seconds() -> None:
    """retrying(): 0.2 s doubling, capped at 5 s, for attempts - 1 pauses; then the error."""
    clock = ManualClock()
    action = Flaky(*(Unavailable("down") for _ in range(10)))
    with pytest.raises(Unavailable):
        retrying(action, "call a peer", attempts=8, clock=clock)
    assert action.calls == 8
    assert clock.sleeps == pytest.approx([0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0])


def test_retrying_a_peer_stops_pausing_once_told_to_stop() -> None:
    """With the stop event set, the first Unavailable escapes without a pause."""
    clock = ManualClock()
    stop = threading.Event()
    stop.set()
    action = Flaky(Unavailable("down"))
    with pytest.raises(Unavailable):
        retrying(action, "call a peer", stop=stop, clock=clock)
    assert action.calls == 1
    assert clock.sleeps == []
