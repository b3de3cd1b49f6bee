"""`StepRunner` on a Slurm cluster: each step is a Slurm job that runs its container on a node.

Each job is started with `srun` of its script, in a session of its own: Slurm
allocates it at once when the partition has room (a batch job would wait for
slurmctld's next scheduling pass), the site waits for `srun` to end, which it
does with the script, and the job outlives the site should the site die.

The step's inputs and outputs are folders on a file system the site and every
node share (`shared_dir`), as are the job's script, its log and its status
(`shared_dir/steps/<name>/`, see `slurm_script`). The job is named after the
step's container and carries the step's labels in its comment, so a restarted
site lists its jobs again (`list_step_containers`) and cancels them, as it
does its containers with the docker runner.

The compute image must be in the container engine of the node that runs the
job. On a one-node cluster (the site's own machine) that is the site's engine,
which loaded it; on a cluster of many nodes, every node's engine must see the
images the site loads (docs/slurm.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mahiru.errors import MahiruError, Unavailable
from mahiru.retry import Backoff
from mahiru.runtime.ended_logs import EndedLogs
from mahiru.runtime.limits import StepLimits
from mahiru.runtime.outputs import discard_outputs, prepare_output_dirs
from mahiru.runtime.runner import ContainerInfo
from mahiru.runtime.slurm_commands import FINISHED, SlurmCommands, refusal
from mahiru.runtime.slurm_outcome import (
    JobEnd,
    judge_job,
    log_bytes,
    log_tail,
    read_status,
    read_text,
    wait_for_end,
    wait_for_status,
)
from mahiru.runtime.slurm_script import (
    CANCEL_FILE,
    ENV_FILE,
    JOB_ID_FILE,
    SCRIPT_FILE,
    SLURM_OUTPUT_FILE,
    STATUS_FILE,
    StepJob,
    environment_file,
    job_options,
    job_script,
    labels_of,
    step_mounts,
)
from mahiru.runtime.space import OutputWatch
from mahiru.runtime.steps import (
    OUTPUTS_DIR,
    ContainerOutcome,
    output_names,
    tail_lines,
)

logger = logging.getLogger("mahiru.runtime")

#: nobody:nogroup, as with the docker runner.
DEFAULT_STEP_USER = "65534:65534"
#: How often a cancelled job is asked about until it has ended (seconds, growing).
END_POLL = Backoff(0.02, factor=1.5, cap=0.1)
#: What `srun` says of a job that waits in the queue, or got its resources after waiting.
_QUEUED = re.compile(r"\bjob (\d+) (?:queued|has been allocated)")


@dataclass(frozen=True, slots=True)
class SlurmSettings:
    """Where and how the Slurm runner runs steps (the site's `runner` configuration)."""

    partition: str
    shared_dir: Path
    engine: str = "docker"
    account: str | None = None
    slurm_conf: Path | None = None
    cancel_wait_seconds: float = 60.0
    step_user: str = DEFAULT_STEP_USER
    log_tail_lines: int = 50


class SlurmRunner:
    """Runs each step as a Slurm job; the steps' folders are under `shared_dir`."""

    def __init__(self, settings: SlurmSettings, commands: SlurmCommands | None = None) -> None:
        self._settings = settings
        self._slurm = commands or SlurmCommands(settings.slurm_conf)
        self._steps = settings.shared_dir / "steps"
        self._lock = threading.Lock()
        self._stopped: set[str] = set()  # the jobs stopped on request (`stop_container`)
        self._running: set[str] = set()  # the names of the jobs `run_step`s of this object run
        self._ended = EndedLogs()

    # -- running --------------------------------------------------------------

    def run_step(
        self,
        compute_image: str,
        inputs: Mapping[str, Path],
        outputs: Sequence[str],
        limits: StepLimits,
        *,
        output_dir: Path,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        live: Mapping[str, Path] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> ContainerOutcome:
        """Run the step as a Slurm job and wait for its end (see the module's description).

        Its container has the docker runner's isolation and limits; the job asks
        Slurm for the same CPUs and memory (plus the script's own), and for the
        step's time limit plus a margin (the script ends the container on time).
        """
        names = output_names(outputs)
        container_name = name or f"mahiru-step-{uuid.uuid4().hex[:12]}"
        mounts = step_mounts(self._settings.shared_dir, inputs, live or {}, output_dir)
        dirs = prepare_output_dirs(output_dir, names, self._output_owner())
        folder = self._steps / container_name
        job = StepJob(
            container_name,
            compute_image,
            folder,
            limits,
            self._settings.step_user,
            {**mounts, **{path: (f"{OUTPUTS_DIR}/{o}", False) for o, path in dirs.items()}},
            dict(labels or {}),
            dict(environment or {}),
        )
        log_context = {"container": container_name, "image": compute_image, **(labels or {})}
        try:
            process = self._start(job)
        except BaseException:
            discard_outputs(dirs.values())
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job_id: str | None = None
        try:
            logger.info("step job started", extra=log_context)
            with OutputWatch(
                dirs, limits.max_output_bytes, lambda: self._cancel(job, process)
            ) as watch:
                job_id, ended = self._wait(job, process)
            with self._lock:
                cancelled = job_id in self._stopped
            outcome = judge_job(
                ended,
                job,
                dirs,
                cancelled=cancelled,
                stopped_for_size=watch.exceeded,
                log_tail_lines=self._settings.log_tail_lines,
            )
        except BaseException:
            self._end(job, process)
            discard_outputs(dirs.values())
            raise
        finally:
            job_id = job_id or self._job_id(job)
            with self._lock:
                self._running.discard(job.name)
                self._stopped.discard(job_id or "")
            # Kept a while for whoever follows the log: the folder goes now.
            if job_id is not None:
                offset, end = log_bytes(folder)
                self._ended.remember(job_id, end, offset)
            shutil.rmtree(folder, ignore_errors=True)
        if not outcome.succeeded:
            discard_outputs(dirs.values())
        logger.info(
            "step job finished",
            extra={
                **log_context,
                "slurm_job": job_id,
                "succeeded": outcome.succeeded,
                "reason": outcome.reason,
                "seconds": outcome.duration_seconds,
            },
        )
        return outcome

    def _start(self, job: StepJob) -> subprocess.Popen[bytes]:
        """Write the job's folder (script, environment) and start its job."""
        job.folder.mkdir(parents=True, mode=0o700)
        env = job.folder / ENV_FILE
        # The environment carries the live inputs' tokens: for the job's eyes only.
        env.touch(mode=0o600)
        env.write_text(environment_file(job))
        script = job.folder / SCRIPT_FILE
        script.write_text(job_script(job, self._settings.engine))
        script.chmod(0o700)
        settings = self._settings
        options = job_options(job, partition=settings.partition, account=settings.account)
        with self._lock:
            self._running.add(job.name)
        return self._slurm.start(script, options, job.folder / SLURM_OUTPUT_FILE)

    def _wait(self, job: StepJob, process: subprocess.Popen[bytes]) -> tuple[str, JobEnd]:
        """Wait until the job's container has ended (its script writes its status, then
        removes it) or `srun` has (Slurm refused or ended the job): its id, how it ended."""
        started = time.monotonic()
        status_file = job.folder / STATUS_FILE
        wait_for_status(process, status_file)
        job_id = self._job_id(job)
        if status_file.exists():
            return job_id or "", JobEnd(read_status(status_file), "", time.monotonic() - started)
        if job_id is None:
            raise refusal(read_text(job.folder / SLURM_OUTPUT_FILE))
        # Without a status: ended by Slurm (cancelled, over its limits), or `srun` itself
        # was ended while the job runs on (then its status or its end is waited for).
        return job_id, wait_for_end(self._slurm, job_id, status_file, started)

    def _job_id(self, job: StepJob) -> str | None:
        """The job's id: written by its script once it runs, said by `srun` once it is
        queued, or found by its name; None if Slurm has no such job (yet)."""
        written = read_text(job.folder / JOB_ID_FILE).strip()
        if written:
            return written
        queued = _QUEUED.search(read_text(job.folder / SLURM_OUTPUT_FILE))
        if queued:
            return queued.group(1)
        with contextlib.suppress(Unavailable):
            found = self._slurm.job_named(job.name)
            if found is not None:
                return found.id
        return None

    # -- keeping track ----------------------------------------------------------

    def step_log(self, step_id: str) -> str:
        """The log tail the step of job `step_id` has written so far; "" once it is gone."""
        job = self._slurm.job(step_id)
        if job is None or job.state in FINISHED:
            return ""
        return "\n".join(tail_lines(log_tail(self._steps / job.name), 10_000))

    def step_output(self, step_id: str, start: int) -> bytes | None:
        """The log the step of job `step_id` has written from byte `start` on; None once
        neither its folder nor this object (for steps that ended lately) has it."""
        ended = self._ended.output(step_id, start)
        if ended is not None:
            return ended
        job = self._slurm.job(step_id)
        if job is None:
            return None
        data = log_bytes(self._steps / job.name, start)[1]
        ended = self._ended.output(step_id, start)  # it may have ended meanwhile
        return data if ended is None else ended

    def list_step_containers(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """The steps' jobs in the partition, queued or running, carrying all of `labels`
        (read from their comments). A job whose step this object saw end is not listed:
        its container is gone, and what is left of the job ends a moment later."""
        wanted = dict(labels or {})
        found = []
        for job in self._slurm.active_jobs(self._settings.partition):
            if job.id in self._ended:
                continue
            carried = labels_of(job.comment)
            if carried is None or any(carried.get(k) != v for k, v in wanted.items()):
                continue
            found.append(ContainerInfo(job.id, job.name, job.state.lower(), carried))
        return found

    def stop_container(self, container_id: str) -> None:
        """Cancel the step's job and wait (at most `cancel_wait_seconds`) until nothing of it
        runs: its script removes the container when Slurm signals it."""
        with self._lock:
            self._stopped.add(container_id)
        job = self._slurm.job(container_id)
        with self._lock:
            waited_for = job is not None and job.name in self._running
        if job is not None:
            _mark_cancelled(self._steps / job.name)
        self._slurm.cancel(container_id)
        if not self._ended_within(container_id, self._settings.cancel_wait_seconds):
            with contextlib.suppress(MahiruError):
                self._slurm.kill(container_id)
            logger.warning(
                "a cancelled step job has not ended yet",
                extra={"slurm_job": container_id, "waited": self._settings.cancel_wait_seconds},
            )
        elif job is not None and not waited_for:
            # Left by an earlier run of the site: nobody else cleans up its folder.
            shutil.rmtree(self._steps / job.name, ignore_errors=True)

    def _cancel(self, job: StepJob, process: subprocess.Popen[bytes]) -> None:
        """Cancel the job without waiting for it (its step's own wait sees it end)."""
        _mark_cancelled(job.folder)
        job_id = self._job_id(job)
        if job_id is None:
            # Not even queued yet: ending srun withdraws its request.
            with contextlib.suppress(OSError):
                process.terminate()
            return
        with contextlib.suppress(MahiruError):
            self._slurm.cancel(job_id)

    def _end(self, job: StepJob, process: subprocess.Popen[bytes]) -> None:
        """Cancel a job whose step is given up on (interrupted, failed to wait), and wait
        for it to end."""
        self._cancel(job, process)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(self._settings.cancel_wait_seconds)
        job_id = self._job_id(job)
        with contextlib.suppress(MahiruError):
            if job_id is not None:
                self._slurm.cancel(job_id)
                self._ended_within(job_id, self._settings.cancel_wait_seconds)

    def _ended_within(self, job_id: str, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        polls = 0
        while self._slurm.state(job_id) not in (*FINISHED, ""):
            if time.monotonic() > deadline:
                return False
            polls += 1
            time.sleep(END_POLL.delay(polls))
        return True

    # -- folders ----------------------------------------------------------------

    @contextlib.contextmanager
    def _plain_folder(self, path: Path) -> Iterator[bool]:
        path.mkdir(parents=True)
        try:
            yield False
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def output_space(self, path: Path, max_bytes: int) -> contextlib.AbstractContextManager[bool]:
        """A plain folder for a step's outputs (a file system mounted here would not be the
        nodes'): the size watch stops a step whose outputs pass `max_bytes`."""
        return self._plain_folder(path)

    def release_output_spaces(self, root: Path) -> int:
        """Nothing is mounted for outputs; the step folders of jobs no longer queued or
        running (left by a crash) are removed. How many output spaces: none."""
        if self._steps.is_dir():
            active = {job.name for job in self._slurm.active_jobs(self._settings.partition)}
            for folder in self._steps.iterdir():
                if folder.name not in active:
                    shutil.rmtree(folder, ignore_errors=True)
        return 0

    def _output_owner(self) -> tuple[int, int] | None:
        """uid:gid to give output folders (the step's user, when we are root), else None
        (mode 0777)."""
        user, _, group = self._settings.step_user.partition(":")
        if os.geteuid() == 0 and user.isdigit() and group.isdigit():
            return int(user), int(group)
        return None


def _mark_cancelled(folder: Path) -> None:
    """Tell the step's script it is cancelled, before Slurm is asked to signal it: Slurm
    drops a signal to a job whose task has not started, and the script looks for this
    file once its trap is set."""
    with contextlib.suppress(OSError):
        (folder / CANCEL_FILE).touch()
