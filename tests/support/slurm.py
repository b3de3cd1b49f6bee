"""The one-node Slurm cluster of the tests (scripts/ensure-slurm.sh), and the few
commands the tests give it: submit a batch script, wait for a job's state, cancel.

The cluster is private to Mahiru: its client commands find it through the
`SLURM_CONF` the script prints, which every command here is given. Job states
are read from `squeue --states=all` (slurmctld keeps a finished job for
MinJobAge, 5 minutes), then from the job completion file (`sacct -c`), since
there is no accounting database. A job whose processes are still being ended
shows as COMPLETING; its final state (COMPLETED, CANCELLED, TIMEOUT, ...) is
shown only once nothing of it runs any more.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pytest

from mahiru.runtime.slurm_commands import FINISHED
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
ENSURE_SCRIPT = ROOT / "scripts" / "ensure-slurm.sh"
#: Seconds a client command may take (they answer in milliseconds when well).
COMMAND_TIMEOUT = 30
#: Seconds the set-up script may take: an install from Debian's mirror, then the start.
START_TIMEOUT = 300


@dataclass(frozen=True, slots=True)
class SlurmCluster:
    """The test cluster, reached through its configuration file."""

    conf: Path

    def run(self, *command: str) -> str:
        """Run a Slurm client command against this cluster and return its stdout;
        AssertionError with its stderr if it fails."""
        done = subprocess.run(
            command,
            env={**os.environ, "SLURM_CONF": str(self.conf)},
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed: {done.stderr.strip()}")
        return done.stdout

    def submit(self, script: Path, *options: str) -> str:
        """Submit a batch script with `sbatch` options; returns the job id."""
        # --parsable prints "id" or "id;cluster".
        return self.run("sbatch", "--parsable", *options, str(script)).strip().split(";")[0]

    def state(self, job_id: str) -> str:
        """The job's state (RUNNING, COMPLETING, TIMEOUT, ...); "" if the cluster has
        no record of it."""
        try:
            listed = self.run("squeue", "--noheader", "--states=all", "--jobs", job_id, "-o", "%T")
        except AssertionError:
            listed = ""  # squeue refuses job ids it has forgotten
        if listed.strip():
            return listed.split()[0]
        finished = self.run("sacct", "-c", "--noheader", "--parsable2", "-j", job_id, "-o", "State")
        # The last record: job ids start again at 1 if the state folder is wiped.
        return finished.split()[-1] if finished.strip() else ""

    def wait_for_state(self, job_id: str, states: Collection[str], timeout: float) -> str:
        """Wait up to `timeout` seconds until the job is in one of `states`, and return
        it; AssertionError naming the state it was in if it does not get there."""
        seen: list[str] = []

        def reached() -> bool:
            seen.append(self.state(job_id))
            return seen[-1] in states

        try:
            wait_until(reached, timeout, f"job {job_id} in {sorted(states)}", interval=0.2)
        except AssertionError as error:
            raise AssertionError(f"{error}; it was {seen[-1] or 'unknown'}") from None
        return seen[-1]

    def wait_until_finished(self, job_id: str, timeout: float) -> str:
        """Wait up to `timeout` seconds until nothing of the job runs, and return its
        final state."""
        return self.wait_for_state(job_id, FINISHED, timeout)

    def cancel(self, job_id: str) -> None:
        """Cancel the job (Slurm signals its processes: TERM, then KILL after KillWait)."""
        self.run("scancel", job_id)


def start_cluster() -> SlurmCluster:
    """The test cluster, started by scripts/ensure-slurm.sh if it is not running (a
    no-op check if it is). Skips when Slurm is not installed or the script cannot
    run (it needs root), except in CI (CI=true), where the script installs Slurm
    and any failure fails the run."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    if not in_ci:
        if shutil.which("slurmctld") is None:
            pytest.skip("Slurm is not installed; `make slurm` installs and starts it")
        if os.geteuid() != 0:
            pytest.skip("the Slurm tests run as root, as scripts/ensure-slurm.sh does")
    started = subprocess.run(
        ["bash", str(ENSURE_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        check=False,
    )
    if started.returncode != 0:
        pytest.fail(f"scripts/ensure-slurm.sh failed:\n{started.stderr[-3000:]}")
    return SlurmCluster(Path(started.stdout.strip()))
