"""What the site needs from whatever runs its steps: the `StepRunner` protocol.

A runner runs one step, a compute image on inputs already laid out in host
folders, under the step's limits and time limit, and reports how it went; it
can show the log of a step while it runs, cancel it, and list the steps it
runs (so that a restarted site finds what an earlier run of it left). It
decides nothing: the policy engine has decided before a step is handed over.

Two runners exist: the container engine itself (`DockerRuntime`, a step is a
container) and a Slurm cluster (`SlurmRunner`, a step is a batch job that runs
the container on a node). Images are the engine's business (`ImageEngine`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mahiru.runtime.limits import StepLimits
from mahiru.runtime.steps import ContainerOutcome


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A step as its runner lists it: `id` is the runner's handle on it (a container id,
    a Slurm job id), `name` the name it was run under, `status` the runner's word for
    its state, and `labels` those it was run with."""

    id: str
    name: str
    status: str
    labels: Mapping[str, str]


class StepRunner(Protocol):
    """Runs steps, isolated and bounded, and keeps track of them."""

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
        """Run `compute_image` isolated and wait for its end; inputs mounted read-only,
        outputs in `output_dir/<o>`.

        `live` maps a live input's name to the host Unix socket that serves it
        (mounted at `/mahiru/live/<name>.sock`); the step still has no network.
        A failing step is an outcome, never an exception.
        """
        ...

    def step_log(self, step_id: str) -> str:
        """The log a listed step has written so far (its tail); "" once it is gone."""
        ...

    def step_output(self, step_id: str, start: int) -> bytes | None:
        """The log a listed step has written from byte `start` on, as far as it has written
        (what a reader following it reads next); None once the step is gone and the runner
        no longer has its log. A step that ended lately still has it for a while."""
        ...

    def list_step_containers(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """The steps this runner runs (or is about to), carrying all of `labels`."""
        ...

    def stop_container(self, container_id: str) -> None:
        """Cancel a listed step: once this returns, nothing of it runs; a missing one is fine."""
        ...

    def output_space(self, path: Path, max_bytes: int) -> AbstractContextManager[bool]:
        """A new folder `path` for a step's outputs that cannot hold much more than
        `max_bytes` at any time (see `mahiru.runtime.space`); removed on leaving.
        Yields whether the bound holds by construction."""
        ...

    def release_output_spaces(self, root: Path) -> int:
        """Release the output spaces a crash left below `root`; how many there were."""
        ...
