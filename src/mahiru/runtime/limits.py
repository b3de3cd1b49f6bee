"""The resource limits of one step container, and their mapping from a site's config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mahiru.errors import InvalidInput

# For the annotation only: the runtime's other users (a client packing a data
# image, say) do not load the configuration's validation library.
if TYPE_CHECKING:
    from mahiru.config import ContainerLimits

MIB = 1024 * 1024
#: Processes and threads a step may have at once: enough for any sane program,
#: too few for a fork bomb to hurt the host.
DEFAULT_PIDS = 256
#: Below this the engine refuses to start a container at all (Docker's minimum is 6 MiB).
MIN_MEMORY_BYTES = 6 * MIB


@dataclass(frozen=True, slots=True)
class StepLimits:
    """What one step container may use: CPUs, memory (no swap), wall time, output, processes."""

    cpus: float
    memory_bytes: int
    timeout_seconds: float
    max_output_bytes: int
    pids: int = DEFAULT_PIDS

    def __post_init__(self) -> None:
        problems = []
        if not self.cpus > 0:
            problems.append(f"cpus must be positive, got {self.cpus}")
        if self.memory_bytes < MIN_MEMORY_BYTES:
            problems.append(
                f"memory_bytes must be at least {MIN_MEMORY_BYTES}, got {self.memory_bytes}"
            )
        if not self.timeout_seconds > 0:
            problems.append(f"timeout_seconds must be positive, got {self.timeout_seconds}")
        if self.max_output_bytes < 0:
            problems.append(f"max_output_bytes must not be negative, got {self.max_output_bytes}")
        if self.pids < 1:
            problems.append(f"pids must be at least 1, got {self.pids}")
        if problems:
            raise InvalidInput(f"invalid step limits: {'; '.join(problems)}", problems)

    @property
    def nano_cpus(self) -> int:
        """The CPU limit in the engine's unit (10^-9 CPUs)."""
        return round(self.cpus * 1_000_000_000)


def limits_from_config(config: ContainerLimits, *, pids: int = DEFAULT_PIDS) -> StepLimits:
    """The step limits a site's `containers` configuration section describes."""
    return StepLimits(
        cpus=config.cpus,
        memory_bytes=config.memory_mb * MIB,
        timeout_seconds=float(config.timeout_seconds),
        max_output_bytes=config.max_output_mb * MIB,
        pids=pids,
    )
