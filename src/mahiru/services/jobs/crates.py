"""A job's RO-Crate for the user who asks: what goes in is what the egress gate allows them.

The job, its steps and the PROV document are read as `jobs status` and `jobs
provenance` show them to that user (a job they do not see is NotKnown). Each
workflow output of a succeeded job brings its receipt chain, as its record
shows it to the user's party, and its image only if the egress gate releases it
to the party (a result held for review, rejected or not allowed is named with
the reason, and left out). Of the job's own inputs and output bases, those
stored here that the gate releases to the party go in too (a party's own asset,
typically); the others are named by id and by the digest the receipts sign.
Every image that goes in is opened through the gate, so each is a recorded
transfer to the party.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mahiru import __version__
from mahiru.errors import Conflict, NotFound, PermissionDenied
from mahiru.model.crates import CrateOutput, CrateSource, IncludedImage, JobCrate, build_crate
from mahiru.model.identifiers import AssetId, JobId, ResultId
from mahiru.model.jobs import JobState
from mahiru.model.people import Person
from mahiru.model.receipts import ReceiptChain
from mahiru.model.workflow import Job
from mahiru.services.jobs.egress import Egress
from mahiru.services.jobs.submission import JobSubmissions
from mahiru.services.site.assets import AssetStore, ImageFile

#: Reads an image's bytes, in chunks, when the crate is written.
ImageReader = Callable[[], Iterable[bytes]]


class JobCrates:
    """Builds the crate of a job for a person who sees it."""

    def __init__(self, submissions: JobSubmissions, assets: AssetStore, egress: Egress) -> None:
        self._submissions = submissions
        self._assets = assets
        self._egress = egress

    def crate(self, job_id: JobId, person: Person) -> tuple[JobCrate, dict[str, ImageReader]]:
        """The crate of job `job_id` for `person`, and a reader of each image in it (by
        its path in the crate); NotKnown for a job they do not see."""
        status, views = self._submissions.get(job_id, person)
        steps = [view.status for view in views]
        opened: dict[str, ImageFile] = {}
        outputs = []
        if status.state is JobState.SUCCEEDED:
            for name, result in status.outputs().items():
                outputs.append(self._output(name, result, job_id, person, opened))
        inputs = []
        for stored in _stored_assets(status.job):
            image = self._open(stored, job_id, person)
            if image is not None:
                included = IncludedImage(stored, image.digest, image.size)
                opened[included.path] = image
                inputs.append(included)
        source = CrateSource(
            status=status,
            steps=steps,
            owners=self._submissions.site_owners(status),
            outputs=outputs,
            provenance=self._submissions.provenance(job_id, person),
            inputs=inputs,
            version=__version__,
        )
        readers: dict[str, ImageReader] = {path: image.read for path, image in opened.items()}
        return build_crate(source), readers

    def _output(
        self,
        name: str,
        result: ResultId,
        job_id: JobId,
        person: Person,
        opened: dict[str, ImageFile],
    ) -> CrateOutput:
        try:
            record = self._egress.shown_to(self._assets.get(result), person.party)
            chain: ReceiptChain | None = ReceiptChain.from_metadata(record.asset.metadata)
        except NotFound:
            return CrateOutput(name, result, None, withheld="not stored at this site")
        try:
            image = self._egress.to_party(result, person.party, job_id=job_id, user=person)
        except (PermissionDenied, Conflict) as refused:  # not allowed, held or rejected
            return CrateOutput(name, result, chain, withheld=f"withheld: {refused.message}")
        included = IncludedImage(result, image.digest, image.size)
        opened[included.path] = image
        return CrateOutput(name, result, chain, included)

    def _open(self, stored: AssetId, job_id: JobId, person: Person) -> ImageFile | None:
        """The image of an input stored here, if the gate releases it to the party."""
        try:
            self._assets.get(stored)
        except NotFound:
            return None
        try:
            return self._egress.to_party(stored, person.party, job_id=job_id, user=person)
        except (PermissionDenied, Conflict, NotFound):
            return None


def _stored_assets(job: Job) -> list[AssetId]:
    """The job's input assets and output bases, each once (results are left to receipts)."""
    named = [i for i in job.inputs.values() if isinstance(i, AssetId)]
    for step in job.workflow.steps.values():
        named += [base for base in step.outputs.values() if base is not None]
    return sorted(set(named), key=str)
