"""Ctrl-C held back across a request whose effect must be known first."""

from __future__ import annotations

import os
import signal

import pytest

from mahiru.client.interrupts import interrupts_deferred


def test_an_interrupt_inside_the_block_is_raised_after_it_completes() -> None:
    finished = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        finished.append(True)
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_block_without_an_interrupt_runs_as_it_is() -> None:
    with interrupts_deferred():
        value = 1
    assert value == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_error_in_the_block_passes_through_and_the_handler_is_restored() -> None:
    with pytest.raises(ValueError, match="inside"), interrupts_deferred():
        raise ValueError("inside")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
