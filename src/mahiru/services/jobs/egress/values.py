"""What the egress gate hands out about steps and live data sets, and the key it builds them with.

`StepView` and `LiveFile` ask for the gate's key in their constructors; only
the gate's package has it, so only the gate builds them (the gate's own
module, `__init__.py`, is where they are made).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import InitVar, dataclass, replace
from pathlib import Path
from typing import Any, final

from mahiru.errors import NotFound
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs import LOG_TAIL_CHARS, ResultProvenance, StepStatus
from mahiru.model.workflow import Job
from mahiru.policy.decisions import Release
from mahiru.storage.blobs import DamagedBlob, read_checked

logger = logging.getLogger("mahiru.site.egress")


@final
class _Gate:
    """What the constructors of the gate's outgoing values ask for; only the gate's package
    has one, so only the gate builds them (and a call without it does not type-check)."""

    __slots__ = ()


_GATE = _Gate()


@dataclass(frozen=True, slots=True)
class LiveFile:
    """One file of a live data set, released to the step it was granted for; only the egress
    gate builds one.

    `read` yields its bytes checked against `digest` (the last chunk is held
    back until the whole file has it), each read recorded as a transfer.
    """

    path: str
    digest: str
    size: int
    release: Release
    _location: Path
    _sending: Callable[[Iterator[bytes], int], Iterator[bytes]]
    gate: InitVar[_Gate]

    def __post_init__(self, gate: _Gate) -> None:
        if gate is not _GATE:
            raise TypeError("a LiveFile is built by the egress gate only")

    def read(self) -> Iterator[bytes]:
        """The file's bytes, verified as they are read; DamagedBlob before the end if not."""
        return self._sending(self._verified(), self.size)

    def _verified(self) -> Iterator[bytes]:
        try:
            file = self._location.open("rb")
        except FileNotFoundError:
            raise NotFound(f"the live file /data/{self.path} is gone") from None
        with file:
            try:
                # Never past the recorded size: a grown file does not fill the answer.
                yield from read_checked(file, self.digest, 0, self.size)
            except DamagedBlob as damaged:
                logger.error(
                    "live file damaged: not sent whole",
                    extra={"path": self.path, "why": damaged.message},
                )
                raise


@dataclass(frozen=True, slots=True)
class StepView:
    """A step's status as it may go out of this site; only the egress gate builds one.

    Its reason, exit code and log tail are there only if the viewer may use the
    step's outputs. Routes send step views, never bare statuses, so step data
    cannot leave except through `Egress.step_views` or `Egress.step_states`.
    """

    status: StepStatus
    gate: InitVar[_Gate]

    def __post_init__(self, gate: _Gate) -> None:
        if gate is not _GATE:
            raise TypeError("a StepView is built by the egress gate only")

    @property
    def step(self) -> str:
        """The step's name."""
        return self.status.step

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the status's, as cut for the viewer)."""
        return self.status.to_dict()


def _has_output(status: StepStatus) -> bool:
    return (status.reason, status.exit_code, status.log_tail) != (None, None, None)


def _withheld(status: StepStatus, why: str) -> StepStatus:
    """`status` without the step's output: state and times, and why the rest is not there."""
    return replace(
        status,
        reason=None if status.reason is None else f"(withheld: {why})",
        exit_code=None,
        log_tail=None if status.log_tail is None else f"(log withheld: {why})"[-LOG_TAIL_CHARS:],
    )


def _item(provenance: ResultProvenance) -> WorkflowItem:
    """The workflow item a stored result is: the step output its provenance names."""
    return WorkflowItem(ItemKind.STEP_OUTPUT, provenance.step, provenance.output)


def _outputs(job: Job, step: str) -> list[WorkflowItem]:
    """The outputs of `step` of `job`, as workflow items, by name."""
    return [
        WorkflowItem(ItemKind.STEP_OUTPUT, step, output)
        for output in sorted(job.workflow.steps[step].outputs)
    ]
