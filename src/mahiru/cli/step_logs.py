"""What `mahiru jobs logs` prints for each step: its kept log, what is true when there is
none, or its log followed as it is written (`--follow`)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from mahiru.client.jobs import JobsClient
from mahiru.model.jobs import StepState, StepStatus

#: Why a step has no kept log, by its state, where the state alone tells.
_NO_LOG = {
    StepState.WAITING: "no log yet: the step has not started",
    StepState.FETCHING: "no log yet: the step has not started (its inputs are being fetched)",
    StepState.RUNNING: "no log yet: the step is running; follow it with --follow",
    StepState.REUSED: "no log: the step did not run, its stored results were reused",
    StepState.CANCELLED: "no log: the step was cancelled",
}


def no_log_message(status: StepStatus) -> str:
    """What is true of a step that has no kept log, said in brackets."""
    known = _NO_LOG.get(status.state)
    if known is not None:
        return f"({known})"
    if status.state is StepState.FAILED and status.reason:
        return f"(no log: the step failed before it ran or wrote nothing: {status.reason})"
    return "(no log kept for this step)"


def show_kept(steps: Sequence[StepStatus]) -> None:
    """Print each step's kept log, or what is true when there is none."""
    for status in steps:
        click.echo(f"== {status.step} at {status.site}: {status.state.value}")
        if status.log_tail is None:
            click.echo(f"   {no_log_message(status)}")
        elif not status.log_tail:
            click.echo("   (the step printed nothing)")
        else:
            click.echo(status.log_tail.rstrip("\n"))


def follow(client: JobsClient, job_id: str, steps: Sequence[StepStatus], seconds: float) -> None:
    """Print the log of each step in turn as it is written, until that step ends."""
    for status in steps:
        click.echo(f"== {status.step} at {status.site}")
        for text in client.follow_log(job_id, status.step, seconds):
            click.echo(text, nl=False)
