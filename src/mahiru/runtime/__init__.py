"""The container side of job execution: images as archives, and isolated step containers.

The orchestration uses an `ImageEngine` for images and a `StepRunner` to run
steps; `DockerRuntime` is both (a `ContainerRuntime`) on a Docker-API engine
(Docker or Podman). Step failures are `ContainerOutcome`
values; an unreachable engine raises `mahiru.errors.Unavailable`.

`DockerRuntime` and `docker_available` are loaded on first use, so that
importing the runner's port (this package's other modules) never loads the
Docker SDK.
"""

from typing import Any

from mahiru.runtime.limits import StepLimits, limits_from_config
from mahiru.runtime.protocol import ContainerRuntime, ImageConfig, ImageEngine
from mahiru.runtime.runner import ContainerInfo, StepRunner
from mahiru.runtime.steps import (
    INPUTS_DIR,
    LABEL_INSTANCE,
    LABEL_JOB,
    LABEL_ROLE,
    LABEL_SITE,
    LABEL_STEP,
    LIVE_DIR,
    OUTPUTS_DIR,
    ROLE_STEP,
    ContainerOutcome,
    live_environment,
    step_labels,
)

__all__ = [
    "INPUTS_DIR",
    "LABEL_INSTANCE",
    "LABEL_JOB",
    "LABEL_ROLE",
    "LABEL_SITE",
    "LABEL_STEP",
    "LIVE_DIR",
    "OUTPUTS_DIR",
    "ROLE_STEP",
    "ContainerInfo",
    "ContainerOutcome",
    "ContainerRuntime",
    "DockerRuntime",
    "ImageConfig",
    "ImageEngine",
    "StepLimits",
    "StepRunner",
    "docker_available",
    "limits_from_config",
    "live_environment",
    "step_labels",
]


def __getattr__(name: str) -> Any:
    if name == "DockerRuntime":
        from mahiru.runtime.docker_engine import DockerRuntime

        return DockerRuntime
    if name == "docker_available":
        from mahiru.runtime.docker_connection import docker_available

        return docker_available
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
