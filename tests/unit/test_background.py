"""The supervised background loop: a failing round is logged, counted, backed off, survived."""

from __future__ import annotations

import itertools
import logging
import threading
import time

import pytest

from mahiru.services.background import BackgroundLoop, Unexpected, guarded

LOGGER = logging.getLogger("mahiru.test.background")


def wait_for(condition: object, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_guarded_hands_back_what_an_action_raised_and_passes_results_through() -> None:
    """guarded returns the action's value, or Unexpected holding the exception."""
    assert guarded(lambda: 42) == 42
    outcome = guarded(lambda: 1 // 0)
    assert isinstance(outcome, Unexpected)
    assert isinstance(outcome.error, ZeroDivisionError)
    assert outcome.describe() == "ZeroDivisionError: integer division or modulo by zero"


def test_a_failing_round_is_logged_once_counted_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same failure three times: one traceback, then one-line repeats; later rounds run."""
    calls: list[int] = []

    def round_() -> float | None:
        calls.append(1)
        if len(calls) <= 3:
            raise RuntimeError("broken round")
        return None

    loop = BackgroundLoop(
        "test-loop", round_, 0.01, logger=LOGGER, context={"site": "s1"}, max_failure_pause=0.05
    )
    with caplog.at_level(logging.DEBUG, logger="mahiru.test.background"):
        loop.start()
        try:
            wait_for(lambda: len(calls) >= 5)
        finally:
            loop.stop()
    assert loop.failures == 3
    records = [r for r in caplog.records if r.name == "mahiru.test.background"]
    with_traceback = [r for r in records if r.exc_info]
    assert len(with_traceback) == 1
    assert with_traceback[0].site == "s1"  # type: ignore[attr-defined]
    assert with_traceback[0].loop == "test-loop"  # type: ignore[attr-defined]
    repeats = [r for r in records if "failed again" in r.getMessage()]
    assert len(repeats) == 2
    assert [r.failures_in_a_row for r in repeats] == [2, 3]  # type: ignore[attr-defined]


def test_pauses_grow_after_failures_up_to_the_limit() -> None:
    """After failing rounds the loop waits interval, 2x, 4x ... but never past the limit."""
    times: list[float] = []

    def round_() -> float | None:
        times.append(time.monotonic())
        raise ValueError("always")

    loop = BackgroundLoop("test-pauses", round_, 0.05, logger=LOGGER, max_failure_pause=0.2)
    loop.start()
    try:
        wait_for(lambda: len(times) >= 6, seconds=10)
    finally:
        loop.stop()
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.045 and gaps[1] >= 0.095 and gaps[2] >= 0.195
    assert [loop.failure_backoff.delay(n) for n in range(1, 6)] == [0.05, 0.1, 0.2, 0.2, 0.2]


def test_a_round_chooses_its_own_pause_and_wake_starts_the_next_at_once() -> None:
    """A round's returned pause is kept; wake() cuts it short."""
    ran = threading.Event()
    count: list[int] = []

    def round_() -> float | None:
        count.append(1)
        ran.set()
        return 30.0

    loop = BackgroundLoop("test-wake", round_, 0.01, logger=LOGGER)
    loop.start()
    try:
        wait_for(lambda: len(count) == 1)
        time.sleep(0.1)  # ten of its 0.01 s intervals, in which no round may start
        assert len(count) == 1  # waiting its own 30 s, not the 0.01 s interval
        loop.wake()
        wait_for(lambda: len(count) == 2)
    finally:
        loop.stop()
    assert loop.failures == 0


def test_wake_after_shortens_the_pause_and_an_earlier_wake_up_stands() -> None:
    """wake_after(0.1) ends a 30 s pause after about 0.1 s; a later wake_after does not delay it."""
    times: list[float] = []

    def round_() -> float | None:
        times.append(time.monotonic())
        return 30.0

    loop = BackgroundLoop("test-wake-after", round_, 0.01, logger=LOGGER)
    loop.start()
    try:
        wait_for(lambda: len(times) == 1)
        loop.wake_after(0.1)
        loop.wake_after(20.0)
        wait_for(lambda: len(times) == 2)
        gap = times[1] - times[0]
        assert 0.09 <= gap < 5.0
        time.sleep(0.2)
        assert len(times) == 2  # the wake-up was used up: back to the round's own 30 s
    finally:
        loop.stop()


def test_wake_after_asked_during_a_round_shortens_the_pause_after_it() -> None:
    """A round that asks to be woken in 0.05 s is run again then, not after its 30 s."""
    count: list[int] = []
    loop: BackgroundLoop

    def round_() -> float | None:
        count.append(1)
        if len(count) == 1:
            loop.wake_after(0.05)
        return 30.0

    loop = BackgroundLoop("test-wake-during", round_, 0.01, logger=LOGGER)
    loop.start()
    try:
        wait_for(lambda: len(count) == 2)
    finally:
        loop.stop()


def test_stop_ends_a_long_pause_at_once() -> None:
    """stop() does not wait out the pause the loop is in."""
    ran = threading.Event()

    def round_() -> float | None:
        ran.set()
        return 60.0

    loop = BackgroundLoop("test-stop", round_, 0.01, logger=LOGGER)
    loop.start()
    ran.wait(5)
    started = time.monotonic()
    loop.stop(timeout=10)
    assert time.monotonic() - started < 2.0


def test_run_round_runs_one_round_in_the_caller_s_thread_unsupervised() -> None:
    """No thread is started; the round's pause comes back, and what it raises escapes."""
    threads: list[threading.Thread] = []

    def round_() -> float | None:
        threads.append(threading.current_thread())
        if len(threads) > 1:
            raise ZeroDivisionError("second round")
        return 0.25

    loop = BackgroundLoop("test-driven", round_, 10.0, logger=LOGGER)
    assert loop.run_round() == 0.25
    assert threads == [threading.current_thread()]
    with pytest.raises(ZeroDivisionError):
        loop.run_round()
    assert loop.failures == 0
