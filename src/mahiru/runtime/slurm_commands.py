"""Slurm's client commands, as the Slurm runner uses them: start, list, look up, cancel.

Every command is given the cluster's configuration (`SLURM_CONF`, when the
site names one) and a deadline. A cluster that does not answer (no
controller, munge down, the commands missing) is `Unavailable`; a job Slurm
refuses outright (an unknown partition or account) is `InvalidInput`, so the
step fails with Slurm's words instead of waiting for a cluster that will
never take it.

There may be no accounting database: a job's state is read from `squeue`
(slurmctld keeps a finished job for MinJobAge, 5 minutes by default), then
from the job completion file (`sacct -c`).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mahiru.errors import InvalidInput, MahiruError, Unavailable
from mahiru.runtime.slurm_script import JOB_PATH

logger = logging.getLogger("mahiru.runtime")

#: States after which a job never runs again (and nothing of it runs any more).
FINISHED = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "TIMEOUT",
    }
)
#: Seconds one client command may take (they answer in milliseconds when well).
COMMAND_TIMEOUT = 30.0
#: What the client commands say when the cluster itself cannot be reached.
_UNREACHABLE = (
    "unable to contact",
    "socket timed out",
    "zero bytes were transmitted",
    "connection refused",
    "munge",
    "communication connection failure",
)
_FIELD = "|"


@dataclass(frozen=True, slots=True)
class SlurmJob:
    """A job as `squeue` lists it."""

    id: str
    name: str
    state: str
    comment: str


class SlurmCommands:
    """Runs `srun`, `squeue`, `sacct` and `scancel` against one cluster."""

    def __init__(self, slurm_conf: Path | None = None, *, timeout: float = COMMAND_TIMEOUT):
        self._environment = dict(os.environ)
        if slurm_conf is not None:
            self._environment["SLURM_CONF"] = str(slurm_conf)
        # What a job is given: the command path and the cluster, nothing of the site's.
        self._job_environment = {"PATH": JOB_PATH}
        if "SLURM_CONF" in self._environment:
            self._job_environment["SLURM_CONF"] = self._environment["SLURM_CONF"]
        self._timeout = timeout

    def start(self, script: Path, options: Sequence[str], output: Path) -> subprocess.Popen[bytes]:
        """Start `srun` of `script` with `options`, its own output going to `output`; the
        process, which ends when the job's one task has (or Slurm refused or ended the job).

        The job is allocated at once if the cluster has room (a batch job would wait for
        slurmctld's next scheduling pass, up to a second later). `srun` runs in a session
        of its own, so the site's signals (a Ctrl-C, a SIGKILL) leave the job to run on;
        it gets `JOB_PATH` and the cluster's configuration as its only environment, which
        is all the job, started with `--export=ALL`, gets of the site's."""
        srun = shutil.which("srun", path=self._environment.get("PATH")) or "srun"
        try:
            with output.open("wb") as out:
                return subprocess.Popen(
                    [srun, *options, str(script)],
                    env=self._job_environment,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except FileNotFoundError:
            raise Unavailable("Slurm's srun is not installed on this machine") from None

    def job_named(self, name: str) -> SlurmJob | None:
        """This user's job named `name` as `squeue` shows it, finished or not (the last one
        if several have that name); None if there is none."""
        done = self._run(
            "squeue", "--me", "--noheader", "--states=all", "--name", name, "-o", _FORMAT
        )
        listed = [line for line in done.stdout.splitlines() if line.strip()]
        return _job(listed[-1]) if listed else None

    def active_jobs(self, partition: str) -> list[SlurmJob]:
        """This user's jobs in `partition` that are queued or running (or ending)."""
        done = self._run("squeue", "--me", "--noheader", "--partition", partition, "-o", _FORMAT)
        return [_job(line) for line in done.stdout.splitlines() if line.strip()]

    def job(self, job_id: str) -> SlurmJob | None:
        """The job as `squeue` shows it, finished or not; None once it has forgotten it."""
        done = self._run(
            "squeue", "--noheader", "--states=all", "--jobs", job_id, "-o", _FORMAT, check=False
        )
        if done.returncode != 0:
            if "invalid job id" in _said(done).lower():
                return None
            raise Unavailable(f"Slurm cannot say how job {job_id} is: {_said(done)}")
        listed = [line for line in done.stdout.splitlines() if line.strip()]
        return _job(listed[0]) if listed else None

    def state(self, job_id: str) -> str:
        """The job's state (PENDING, RUNNING, COMPLETING, CANCELLED, ...); "" if the
        cluster has no record of it."""
        job = self.job(job_id)
        if job is not None:
            return job.state
        finished = self._run(
            "sacct", "-c", "--noheader", "--parsable2", "-j", job_id, "-o", "State"
        ).stdout.split()
        # The last record: job ids start again at 1 if the controller's state is wiped.
        return finished[-1] if finished else ""

    def cancel(self, job_id: str) -> None:
        """End the job: a queued one is cancelled, a running one's task is sent TERM, so
        that its script removes its container and exits; a finished or unknown job is
        fine. Not a plain `scancel` of a running job: `srun` answers that by SIGKILLing
        the task at once, before the script's trap has removed the container."""
        # Each filtered by state: scancel retries a signal to a queued job for a minute.
        self._run("scancel", "--state=PENDING", job_id, check=False)
        self._run("scancel", "--state=RUNNING", "--signal=TERM", job_id, check=False)

    def kill(self, job_id: str) -> None:
        """Cancel the job outright (its task is killed at once): for a job whose script
        did not end on `cancel`."""
        self._run("scancel", job_id)

    def _run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        try:
            done = subprocess.run(
                command,
                env=self._environment,
                capture_output=True,
                text=True,
                timeout=self._timeout,
                check=False,
            )
        except FileNotFoundError:
            raise Unavailable(f"Slurm's {command[0]} is not installed on this machine") from None
        except subprocess.TimeoutExpired:
            said = f"Slurm's {command[0]} did not answer in {self._timeout:g} s"
            raise Unavailable(said) from None
        if check and done.returncode != 0:
            raise Unavailable(f"Slurm's {command[0]} failed: {_said(done)}")
        return done


#: id|name|state|comment: the comment is last, so a "|" in it does no harm.
_FORMAT = _FIELD.join(("%i", "%j", "%T", "%k"))


def _job(line: str) -> SlurmJob:
    job_id, name, state, comment = [*line.split(_FIELD, 3), "", "", ""][:4]
    # A job state may carry a reason ("CANCELLED by 0"); the word is the state.
    return SlurmJob(job_id.strip(), name, (state.split() or [""])[0], comment)


def _said(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join((done.stderr or done.stdout).split())[:500] or f"exit code {done.returncode}"


def refusal(said: str) -> MahiruError:
    """The error for a job `srun` could not get, from what it said: `InvalidInput` if Slurm
    refused it outright (an unknown partition or account), else `Unavailable`."""
    said = " ".join(said.split())[-500:] or "srun ended without a word"
    if "unable to allocate resources" in said.lower() and not _unreachable(said):
        return InvalidInput(f"Slurm refused the step's job: {said}")
    return Unavailable(f"Slurm cannot take the step's job now: {said}")


def _unreachable(said: str) -> bool:
    lowered = said.lower()
    return any(words in lowered for words in _UNREACHABLE)
