"""What running a step produced, and the pure rules that turn container facts into it.

A step container sees input `i` at `/mahiru/inputs/<i>/` (read-only) and
writes output `o` under `/mahiru/outputs/<o>/`. A step that fails (non-zero
exit, timeout, out of memory, output too large or of the wrong kind) is a
`ContainerOutcome` with `succeeded=False` and a reason for people, never an
exception: exceptions are for the caller's mistakes and an unavailable engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mahiru.errors import InvalidInput

INPUTS_DIR = "/mahiru/inputs"
OUTPUTS_DIR = "/mahiru/outputs"
#: Live input `i` is a Unix socket at `/mahiru/live/<i>.sock`, its path in the
#: environment variable `MAHIRU_LIVE_<I>_SOCKET` and its token in `MAHIRU_LIVE_<I>_TOKEN`.
LIVE_DIR = "/mahiru/live"


def live_environment(name: str, token: str) -> dict[str, str]:
    """The environment variables that tell a step container about live input `name`."""
    key = re.sub(r"[^A-Za-z0-9]", "_", name).upper()
    return {
        f"MAHIRU_LIVE_{key}_SOCKET": f"{LIVE_DIR}/{name}.sock",
        f"MAHIRU_LIVE_{key}_TOKEN": token,
    }


#: Every step container carries `mahiru.role=step`, so that an orchestrator can
#: find its containers after a restart even if it set no labels of its own.
LABEL_ROLE = "mahiru.role"
ROLE_STEP = "step"
LABEL_SITE = "mahiru.site"
#: Which installation of a site started the container (see StepEnvironment.instance).
LABEL_INSTANCE = "mahiru.instance"
LABEL_JOB = "mahiru.job"
LABEL_STEP = "mahiru.step"

#: Longer log lines are cut: a tail is for people, and must stay small to store.
MAX_LOG_LINE_CHARS = 2000

_IO_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def check_io_name(kind: str, name: str) -> str:
    """`name` if it can name a step input or output directory; InvalidInput otherwise."""
    if not _IO_NAME.fullmatch(name) or name in {".", ".."}:
        raise InvalidInput(
            f"invalid step {kind} name {name!r}: use letters, digits, '_', '.' and '-'"
        )
    return name


def output_names(outputs: Sequence[str]) -> list[str]:
    """The step's output names, each checked, none twice."""
    names = [check_io_name("output", output) for output in outputs]
    if len(set(names)) != len(names):
        raise InvalidInput(f"duplicate step output names in {names}")
    return names


def step_labels(*, site: str, job: str, step: str, **extra: str) -> dict[str, str]:
    """The labels that tie a step container to its site, job and step."""
    return {LABEL_SITE: site, LABEL_JOB: job, LABEL_STEP: step, **extra}


@dataclass(frozen=True, slots=True)
class ContainerOutcome:
    """The outcome of one step container.

    On success `outputs` maps each output name to the host directory holding
    its files; on failure no output directory is left behind and `outputs`
    is empty.
    """

    succeeded: bool
    reason: str
    exit_code: int | None
    timed_out: bool
    oom_killed: bool
    duration_seconds: float
    log_tail: tuple[str, ...]
    container_name: str
    output_bytes: int = 0
    outputs: Mapping[str, Path] = field(default_factory=dict)


def judge_step(
    *,
    exit_code: int | None,
    timed_out: bool,
    oom_killed: bool,
    cancelled: bool,
    start_error: str | None = None,
    timeout_seconds: float,
    memory_bytes: int,
    output_problem: str | None,
    output_exceeded: str | None = None,
) -> tuple[bool, str]:
    """Whether a finished step succeeded, and why (or why not) in one sentence.

    The first cause wins: a killed container's exit code says nothing about
    its program, and output is only judged for a program that exited cleanly,
    except for output past its limit (`output_exceeded`, the reason), which
    fails the step whatever its exit code.
    """
    if timed_out:
        return False, f"the step ran longer than its {timeout_seconds:g} s limit and was killed"
    if output_exceeded is not None:
        # Before the exit code: a step that ran out of room fails because of it.
        return False, output_exceeded
    if oom_killed:
        mib = memory_bytes / (1024 * 1024)
        return False, f"the step exceeded its {mib:g} MiB memory limit and was killed"
    if start_error is not None:
        # The engine's words name the image's command, which its compute asset
        # chose: they go to this site's log (the runtime logs them), not here.
        return False, "the step container could not start: the engine refused its command"
    if cancelled:
        return False, "the step was cancelled (its container was stopped)"
    if exit_code is None:
        return False, "the step container vanished before it reported an exit code"
    if exit_code != 0:
        detail = ""
        if exit_code > 128:
            detail = f" (killed by signal {exit_code - 128})"
        return False, f"the step exited with code {exit_code}{detail}"
    if output_problem is not None:
        return False, output_problem
    return True, "the step exited with code 0"


def tail_lines(text: str, count: int) -> tuple[str, ...]:
    """The last `count` lines of `text`, each cut to a readable length."""
    if count <= 0:
        return ()
    lines = text.splitlines()[-count:]
    return tuple(
        line if len(line) <= MAX_LOG_LINE_CHARS else line[:MAX_LOG_LINE_CHARS] + "…"
        for line in lines
    )
