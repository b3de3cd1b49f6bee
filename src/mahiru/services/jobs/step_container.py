"""A step's container at this site: its inputs found or fetched, laid out, and run.

Inputs read live stay at their owner's site and reach the container only
through its live channel; every other input is an image archive here
(stored, or fetched for the step and let go of afterwards).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mahiru.errors import InvalidInput, MahiruError, Unavailable
from mahiru.model.identifiers import SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs import StepInput, step_inputs
from mahiru.model.receipts import ReceiptChain
from mahiru.runtime.archive_data import extract_archive_data
from mahiru.runtime.outputs import cut
from mahiru.runtime.steps import LABEL_INSTANCE, ContainerOutcome, step_labels
from mahiru.services.jobs.environment import StepEnvironment
from mahiru.services.jobs.fetching import InputFetcher
from mahiru.services.jobs.images import LoadedImages
from mahiru.services.jobs.ledger import KnownJob
from mahiru.services.jobs.live_channel import LiveChannels
from mahiru.services.jobs.waits import waiting_on
from mahiru.storage import BlobStore

logger = logging.getLogger("mahiru.site.jobs")


@dataclass(frozen=True, slots=True)
class StepInputs:
    """What a step runs on: its inputs, the digests and receipt chains of those copied
    here, which of them are read live, and which were fetched for it (to let go of)."""

    needed: list[StepInput]
    digests: dict[WorkflowItem, str]
    chains: list[ReceiptChain]
    live: set[WorkflowItem]
    fetched: list[str]


class StepContainer:
    """Gathers a step's inputs and runs its container on them."""

    def __init__(
        self,
        site: SiteId,
        environment: StepEnvironment,
        fetcher: InputFetcher,
        images: LoadedImages,
        live: LiveChannels,
        blobs: BlobStore,
    ) -> None:
        self._site = site
        self._environment = environment
        self._fetcher = fetcher
        self._images = images
        self._live = live
        self._blobs = blobs

    def gather(self, known: KnownJob, step: str) -> StepInputs:
        """Find or fetch every input of `step` not read live (give them back with `release`).

        On failure, what was fetched so far is let go of again.
        """
        needed = step_inputs(known.job, known.plan, step, submitter_site=known.submitter_site)
        fetched: list[str] = []
        try:
            digests: dict[WorkflowItem, str] = {}
            chains: list[ReceiptChain] = []
            live = self._live.live_inputs(needed)
            for item in needed:
                if item.item in live:
                    continue  # read live from its owner's site while the step runs
                producer_inputs = None
                if item.producer is not None:
                    producer_inputs = step_inputs(
                        known.job,
                        known.plan,
                        item.producer.step,
                        submitter_site=known.submitter_site,
                    )
                with waiting_on(f"cannot fetch input {item.item} from {item.site}", item.site):
                    digest, was_fetched, chain = self._fetcher.archive(known, item, producer_inputs)
                digests[item.item] = digest
                if chain is not None:
                    chains.append(chain)
                if was_fetched:
                    fetched.append(digest)
        except BaseException:
            self._fetcher.release(fetched)
            raise
        return StepInputs(needed, digests, chains, live, fetched)

    def release(self, inputs: StepInputs) -> None:
        """Let go of the inputs fetched for the step."""
        self._fetcher.release(inputs.fetched)

    def run(
        self,
        known: KnownJob,
        step: str,
        inputs: StepInputs,
        started: Callable[[], object] = lambda: None,
    ) -> tuple[ContainerOutcome, dict[str, str]]:
        """Load the images, lay out the inputs and run the step's container (calling
        `started` just before); its outcome and the blob digests of its output bases'
        archives. Unavailable says whether live access or the engine stopped it."""
        with waiting_on("cannot run the step's container"):
            return self._run(known, step, inputs, started)

    def _run(
        self, known: KnownJob, step: str, inputs: StepInputs, started: Callable[[], object]
    ) -> tuple[ContainerOutcome, dict[str, str]]:
        environment = self._environment
        work = environment.work_dir / known.job_id / step
        digests = inputs.digests
        compute = self._images.load(digests[WorkflowItem(ItemKind.STEP, step)])
        laid_out = {}
        bases = {}
        for item in _copied(inputs.needed, inputs.live):
            if item.item.kind is ItemKind.STEP_INPUT:
                name = item.item.part
                laid_out[name] = work / "inputs" / name
                try:
                    self._lay_out(digests[item.item], laid_out[name])
                except Unavailable:
                    raise
                except MahiruError as error:
                    # The input may be an earlier step's output: what is wrong with it
                    # names that step's files, which stay in this site's log.
                    logger.warning(
                        "step input could not be laid out",
                        extra={"job": known.job_id, "step": step, "error": cut(error.message)},
                    )
                    raise InvalidInput(f"input {name} could not be laid out for the step") from None
            elif item.item.kind is ItemKind.OUTPUT_BASE:
                bases[item.item.part] = digests[item.item]  # its archive, read when packaging
        outputs = sorted(known.job.workflow.steps[step].outputs)
        labels = step_labels(site=str(self._site), job=known.job_id, step=step)
        labels[LABEL_INSTANCE] = environment.instance
        live = [n for n in inputs.needed if n.item in inputs.live]
        with self._live.open(known, step, live) as channel:
            started()
            result = environment.runner.run_step(
                compute,
                laid_out,
                outputs,
                environment.limits,
                output_dir=work / "outputs",
                labels=labels,
                live=channel.sockets,
                environment=channel.environment,
            )
        return result, bases

    def _lay_out(self, digest: str, dest: Path) -> None:
        """Put the `/data` of the input image `digest` in `dest`: read from its archive
        here, or, if only the engine has it (loaded for an earlier step), copied from there."""
        archive = self._blobs.path(digest)
        if archive.is_file():
            extract_archive_data(archive, dest)
        else:
            self._environment.engine.extract_data(self._images.load(digest), dest)


def _copied(needed: Iterable[StepInput], live: set[WorkflowItem]) -> list[StepInput]:
    return [item for item in needed if item.item not in live]
