"""How a step's Slurm job ended, and the outcome of its step, judged by the runtime's rules.

The job's script writes a status once its container is gone (`slurm_script`);
a job that ended without one was ended by Slurm: cancelled, over its time or
memory, or lost with its node.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mahiru.errors import Unavailable
from mahiru.retry import Backoff
from mahiru.runtime.outputs import judge_outputs
from mahiru.runtime.slurm_commands import FINISHED, SlurmCommands
from mahiru.runtime.slurm_script import LOG_FILE, START_ERROR_FILE, StepJob
from mahiru.runtime.steps import ContainerOutcome, judge_step, tail_lines

logger = logging.getLogger("mahiru.runtime")

#: How often a running step looks for its status file (seconds): a stat and a `waitpid`,
#: about 1 % of a core for four steps. The status comes 0.05-0.15 s before `srun` ends.
STATUS_CHECK_SECONDS = 0.01
#: How often a step whose `srun` ended without a status looks for one (the cap, seconds).
STATUS_POLL = Backoff(0.005, factor=1.5, cap=0.025)
#: How often such a step asks Slurm how its job is (seconds, growing).
STATE_POLL = Backoff(0.1, factor=2.0, cap=5.0)
#: How long Slurm may go unanswering while a step waits, before the step gives up.
UNREACHABLE_LIMIT = 120.0

#: The bytes of the log file read for its tail.
LOG_TAIL_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class JobEnd:
    """How a step's job ended: the status its script wrote (None if it wrote none), the
    state Slurm gave the job ("" if the status came first), and the seconds from
    submission to its end."""

    status: Mapping[str, object] | None
    state: str
    seconds: float


def judge_job(
    ended: JobEnd,
    job: StepJob,
    dirs: Mapping[str, Path],
    *,
    cancelled: bool,
    stopped_for_size: bool,
    log_tail_lines: int,
) -> ContainerOutcome:
    """The outcome of a finished job: its status, its limits and its outputs, judged.

    `cancelled` says the runner was asked to stop the job; a job Slurm cancelled
    (an administrator's scancel) without a status counts as cancelled too.
    """
    limits, status = job.limits, ended.status or {}
    exit_code = status.get("exit_code")
    exit_code = exit_code if isinstance(exit_code, int) else None
    timed_out = status.get("timed_out") is True or ended.state == "TIMEOUT"
    oom_killed = status.get("oom_killed") is True or ended.state == "OUT_OF_MEMORY"
    start_error = None
    if status.get("start_error") is True:
        start_error = read_text(job.folder / START_ERROR_FILE).strip() or "refused"
        logger.warning(
            "step container could not start",
            extra={"container": job.name, "engine_said": start_error[:256]},
        )
    check, exceeded = judge_outputs(
        dirs, limits.max_output_bytes, stopped_for_size=stopped_for_size
    )
    succeeded, reason = judge_step(
        exit_code=exit_code,
        timed_out=timed_out,
        output_exceeded=exceeded,
        oom_killed=oom_killed,
        cancelled=ended.status is None and (cancelled or ended.state == "CANCELLED"),
        start_error=start_error,
        timeout_seconds=limits.timeout_seconds,
        memory_bytes=limits.memory_bytes,
        output_problem=check.problem,
    )
    return ContainerOutcome(
        succeeded=succeeded,
        reason=reason,
        exit_code=exit_code,
        timed_out=timed_out,
        oom_killed=oom_killed,
        duration_seconds=ended.seconds,
        log_tail=tail_lines(log_tail(job.folder), log_tail_lines),
        container_name=job.name,
        output_bytes=check.total_bytes if succeeded else 0,
        outputs=dict(dirs) if succeeded else {},
    )


def wait_for_status(process: subprocess.Popen[bytes], status_file: Path) -> None:
    """Wait until the job's script has written `status_file` or its `srun`, `process`,
    has ended. The script writes its status before it removes the container, so `srun`
    ends a moment later: it is reaped in the background. On a file system shared over
    the network a new file may show late: `srun`'s end is the word that always comes."""
    while process.poll() is None:
        if status_file.exists():
            threading.Thread(target=process.wait, name="srun-reaper", daemon=True).start()
            return
        time.sleep(STATUS_CHECK_SECONDS)


def wait_for_end(slurm: SlurmCommands, job_id: str, status_file: Path, started: float) -> JobEnd:
    """How a job whose `srun` ended without a status ends: Slurm ended it (cancelled, over
    its limits) or `srun` alone was ended while the job runs on; asked of Slurm, with the
    status file looked for in between. `started`: when the step was started."""
    asked = time.monotonic()
    asks = 0
    unreachable_since: float | None = None
    while True:
        now = time.monotonic()
        ended = False
        try:
            state = slurm.state(job_id)
        except Unavailable:
            unreachable_since = unreachable_since or now
            if now - unreachable_since > UNREACHABLE_LIMIT:
                raise
            state = ""
        else:
            unreachable_since = None
            ended = state in FINISHED or not state  # not a state: Slurm forgot the job
        # The script may have written its status just before it ended.
        status = read_status(status_file) if status_file.exists() else None
        if ended or status is not None:
            return JobEnd(status, state if status is None else "", now - started)
        asks += 1
        while time.monotonic() - asked < STATE_POLL.delay(asks):
            if status_file.exists():
                break
            time.sleep(STATUS_POLL.cap)
        asked = time.monotonic()


def read_status(path: Path) -> Mapping[str, object]:
    """The status a step's script wrote; an unreadable one says nothing."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return status if isinstance(status, dict) else {}


def log_tail(folder: Path) -> str:
    """The end of the log file in a step's folder (its last `LOG_TAIL_BYTES`)."""
    return log_bytes(folder)[1].decode("utf-8", errors="replace")


def log_bytes(folder: Path, start: int | None = None) -> tuple[int, bytes]:
    """The log file in a step's folder from byte `start` on (its last `LOG_TAIL_BYTES`
    if None), and the byte it was read from; nothing read if there is no such file."""
    try:
        with (folder / LOG_FILE).open("rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            offset = max(0, size - LOG_TAIL_BYTES) if start is None else min(start, size)
            file.seek(offset)
            return offset, file.read(size - offset)
    except OSError:
        return start or 0, b""


def read_text(path: Path) -> str:
    """The text of a file; "" if it cannot be read."""
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
