"""What the rest of Mahiru needs from a container engine: the `ContainerRuntime` protocol.

Images are moved around as `docker save` archives and referred to by the id
the engine gives them. Failing steps are results, not exceptions; an engine
that cannot be reached raises `mahiru.errors.Unavailable` (retry later).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mahiru.runtime.limits import StepLimits
from mahiru.runtime.steps import ContainerOutcome

#: The base images every engine that runs steps has (built from Debian packages):
#: the minimal image outputs are built on, and the one compute assets start from.
DATA_BASE_IMAGE = "mahiru-data-base:latest"
COMPUTE_BASE_IMAGE = "mahiru-base:latest"


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """How a built image runs; None (or empty) keeps what the base image says."""

    cmd: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    user: str | None = None
    workdir: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """A step container as the engine lists it."""

    id: str
    name: str
    status: str
    labels: Mapping[str, str]


class ContainerRuntime(Protocol):
    """The container side of job execution."""

    def load_image(self, archive: Path) -> str:
        """Load a `docker save` archive (streamed from disk); returns the image id."""
        ...

    def save_image(self, image: str, dest: Path) -> None:
        """Write `image` as a `docker save` archive to `dest`, atomically."""
        ...

    def has_image(self, image: str) -> bool:
        """Whether the engine has `image` (an id or a name)."""
        ...

    def image_id(self, image: str) -> str:
        """The id of `image` (a name or an id); NotFound if the engine lacks it."""
        ...

    def remove_image(self, image: str) -> None:
        """Remove `image`; a missing image is fine, one in use is a Conflict."""
        ...

    def extract_data(self, image: str, dest: Path) -> None:
        """Copy the content of `/data` in `image` to the new host directory `dest`, unrun."""
        ...

    def build_image(
        self,
        base_image: str,
        trees: Mapping[str, Path],
        *,
        config: ImageConfig | None = None,
        labels: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        """A new image: `base_image` plus each host folder at its container path; returns its id."""
        ...

    def build_data_image(
        self,
        base_image: str,
        files: Path,
        *,
        labels: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        """A new data image: `base_image` plus the files of `files` under `/data`."""
        ...

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
        """Run `compute_image` isolated; inputs mounted read-only, outputs in `output_dir/<o>`.

        `live` maps a live input's name to the host Unix socket that serves it
        (mounted at `/mahiru/live/<name>.sock`); the container still has no network.
        """
        ...

    def output_space(self, path: Path, max_bytes: int) -> AbstractContextManager[bool]:
        """A new folder `path` for a step's outputs that cannot hold much more than
        `max_bytes` at any time (see `mahiru.runtime.space`); removed on leaving.
        Yields whether the bound holds by construction."""
        ...

    def release_output_spaces(self, root: Path) -> int:
        """Unmount the output spaces a crash left below `root`; how many there were."""
        ...

    def remove_scratch_containers(self) -> int:
        """Remove the scratch containers that crashed processes left; how many."""
        ...

    def list_step_containers(self, labels: Mapping[str, str] | None = None) -> list[ContainerInfo]:
        """Step containers (running or not) carrying all of `labels`."""
        ...

    def stop_container(self, container_id: str) -> None:
        """Kill and remove a container; a missing one is fine."""
        ...
