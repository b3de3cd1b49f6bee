"""What the rest of Mahiru needs from a container engine: the `ImageEngine` protocol, and
`ContainerRuntime`, an engine that also runs steps itself (a `StepRunner`, see
`mahiru.runtime.runner`).

Images are moved around as `docker save` archives and referred to by the id
the engine gives them. Failing steps are results, not exceptions; an engine
that cannot be reached raises `mahiru.errors.Unavailable` (retry later).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mahiru.runtime.runner import ContainerInfo, StepRunner

__all__ = [
    "COMPUTE_BASE_IMAGE",
    "DATA_BASE_IMAGE",
    "ContainerInfo",
    "ContainerRuntime",
    "ImageConfig",
    "ImageEngine",
    "ScratchLeftovers",
    "StepRunner",
]

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
class ScratchLeftovers:
    """What a clean-up removed of crashed processes' work: scratch containers, output images.

    `owners` names the process (`host:pid`) that made each scratch container removed.
    """

    containers: int = 0
    images: int = 0
    owners: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.containers or self.images)


class ImageEngine(Protocol):
    """The images side of job execution: the engine that holds the images steps run."""

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

    def remove_scratch_leftovers(self) -> ScratchLeftovers:
        """Remove the scratch containers and untagged output images crashed processes left."""
        ...


class ContainerRuntime(ImageEngine, StepRunner, Protocol):
    """An engine that runs steps itself, as containers (the `docker` runner)."""
