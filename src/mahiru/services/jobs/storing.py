"""Storing results: a step's outputs as data images, recorded with their provenance.

A result becomes visible only all at once: its image goes to the blob store
first, then its asset record, its provenance and (for a step that ran here)
the step's `succeeded` state are written in one transaction. If that
transaction fails, the images it would have used are removed again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from mahiru.errors import MahiruError, NotFound
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.digests import BlobInfo
from mahiru.model.identifiers import ResultId
from mahiru.model.jobs import ResultProvenance, StepState, step_provenance, step_results
from mahiru.model.receipts import ReceiptChain, ReceiptInput
from mahiru.runtime.output_images import write_output_image
from mahiru.runtime.protocol import DATA_BASE_IMAGE
from mahiru.services.jobs.environment import StepEnvironment
from mahiru.services.jobs.ledger import JobLedger, KnownJob
from mahiru.services.jobs.receipts import Receipts
from mahiru.storage import AssetRepository, BlobStore, Database, ProvenanceRepository

logger = logging.getLogger("mahiru.site.jobs")


class ResultStore:
    """The results stored at this site: their images, asset records, receipts and provenance."""

    def __init__(
        self,
        database: Database,
        asset_records: AssetRepository,
        blobs: BlobStore,
        provenance: ProvenanceRepository,
        receipts: Receipts,
        ledger: JobLedger,
    ) -> None:
        self._database = database
        self.asset_records = asset_records
        self.blobs = blobs
        self._provenance = provenance
        self._receipts = receipts
        self._ledger = ledger
        self._base_lock = threading.Lock()
        self._base: Path | None = None  # the data base image's archive, once saved

    def verified_chain(self, result: ResultId) -> ReceiptChain | None:
        """The verified chain of a result stored here; None if it has none that verifies."""
        try:
            record = self.asset_records.get(result)
            digest = record.asset.image_digest
            if digest is None:
                return None
            return self._receipts.verify(result, digest, record.asset.metadata)
        except MahiruError:
            return None

    def stored(self, result: ResultId) -> bool:
        """Whether a result is stored here with a sound image, to be reused.

        Its receipt chain must verify, and then its image is checked against its
        digest: a damaged one is set aside (and the result computed again), never
        reused.
        """
        try:
            record = self.asset_records.get(result)
        except NotFound:
            return False
        digest = record.asset.image_digest
        if digest is None or not self.blobs.has(digest):
            return False
        # Only a result whose receipt chain verifies is reused; the receipts are checked
        # first, as they cost far less than hashing the image.
        return self.verified_chain(result) is not None and self.blobs.verify(digest)

    def package(
        self,
        environment: StepEnvironment,
        known: KnownJob,
        step: str,
        outputs: Mapping[str, Path],
        bases: Mapping[str, str],
    ) -> dict[str, BlobInfo]:
        """Store one data image archive per output, on its base (the blob digest of the
        base's archive, or the engine's data base image), written without the engine."""
        images: dict[str, BlobInfo] = {}
        try:
            for output, files in sorted(outputs.items()):
                digest = bases.get(output)
                base = (
                    self._default_base(environment) if digest is None else self.blobs.path(digest)
                )
                labels = {"mahiru.job": known.job_id, "mahiru.step": step, "mahiru.output": output}
                with self.blobs.writer() as writer:
                    write_output_image(
                        base, files, writer, labels=labels, scratch_dir=environment.work_dir
                    )
                    images[output] = writer.commit()
        except BaseException:
            self.drop_unused(images.values())
            raise
        return images

    def _default_base(self, environment: StepEnvironment) -> Path:
        """The archive of the engine's data base image, saved into the work folder the first
        time an output needs it (the folder is emptied when the site starts)."""
        with self._base_lock:
            if self._base is None or not self._base.is_file():
                image = environment.engine.image_id(DATA_BASE_IMAGE)
                name = hashlib.sha256(image.encode()).hexdigest()[:32]
                path = environment.work_dir / ".output-bases" / f"{name}.tar"
                if not path.is_file():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    environment.engine.save_image(image, path)
                self._base = path
            return self._base

    def record_step(
        self,
        known: KnownJob,
        step: str,
        images: Mapping[str, BlobInfo],
        ran_on: list[ReceiptInput],
        rules: list[str],
        input_chains: list[ReceiptChain],
        *,
        first: Callable[[], object] = lambda: None,
    ) -> None:
        """Sign this site's receipt for each output of a step run here (on `ran_on`, allowed
        by `rules`), and record them all with the step `succeeded`, atomically (after
        `first`, in the same transaction)."""
        results = step_results(known.job, step)
        chains = {
            output: self._receipts.make(
                known, step, output, results[output], image.digest, ran_on, rules, input_chains
            )
            for output, image in images.items()
        }
        self.store_step_results(known, step, images, chains, first=first)

    def store_step_results(
        self,
        known: KnownJob,
        step: str,
        images: Mapping[str, BlobInfo],
        chains: Mapping[str, ReceiptChain],
        *,
        first: Callable[[], object] = lambda: None,
    ) -> None:
        """Record each output's image, receipts and provenance, and the step `succeeded`,
        atomically (after `first`, in the same transaction)."""
        ledger = self._ledger
        self._store(
            known,
            step_provenance(known.job_id, known.job, step),
            images,
            chains,
            lambda: ledger.job_records.set_step_state(
                known.job_id, step, StepState.SUCCEEDED, ledger.now()
            ),
            first=first,
        )

    def store_collected(
        self,
        known: KnownJob,
        provenance: ResultProvenance,
        image: BlobInfo,
        chain: ReceiptChain,
        *,
        replace: bool = False,
    ) -> None:
        """Record a result fetched from the site that made it (a workflow output); with
        `replace`, in place of the copy stored here (whose chain lacks what the new one
        carries: the approvals of a review rule added since it came)."""
        previous = None
        if replace and self.asset_records.has(provenance.result):
            previous = self.asset_records.get(provenance.result).asset.image_digest
        self._store(
            known,
            [provenance],
            {provenance.output: image},
            {provenance.output: chain},
            lambda: None,
            replace=replace,
        )
        if previous is not None and previous != image.digest:
            self.drop_if_unused(previous)

    def _store(
        self,
        known: KnownJob,
        provenances: list[ResultProvenance],
        images: Mapping[str, BlobInfo],
        chains: Mapping[str, ReceiptChain],
        finish: Callable[[], object],
        *,
        replace: bool = False,
        first: Callable[[], object] = lambda: None,
    ) -> None:
        records = self.asset_records
        try:
            with self._database.transaction():
                first()
                for provenance in provenances:
                    image = images[provenance.output]
                    metadata = {
                        "job_id": known.job_id,
                        "step": provenance.step,
                        "output": provenance.output,
                        "size": image.size,
                        **chains[provenance.output].to_metadata(),
                    }
                    asset = Asset(provenance.result, AssetKind.DATA, metadata, image.digest)
                    if records.has(provenance.result):
                        stored = records.get(provenance.result).asset.image_digest
                        if (
                            replace
                            or stored is None
                            or not self.blobs.has(stored)
                            or not self.stored(provenance.result)
                        ):
                            # Its image was damaged or lost, or it has no receipt that
                            # verifies: the new one replaces it.
                            records.delete(provenance.result)
                    if not records.has(provenance.result):
                        records.add(asset, size=image.size)
                    self._provenance.add_provenance(provenance, self._ledger.now())
                finish()
        except BaseException:
            self.drop_unused(images.values())
            raise
        logger.info(
            "results stored",
            extra={"job": known.job_id, "results": [str(p.result) for p in provenances]},
        )

    def drop_unused(self, images: Iterable[BlobInfo]) -> None:
        """Delete blobs that no asset record uses (after a failed store, or a step's end)."""
        for image in images:
            self.drop_if_unused(image.digest)

    def drop_if_unused(self, digest: str) -> None:
        """Delete the blob `digest` unless an asset record uses it."""
        if self.asset_records.image_users(digest) == 0:
            self.blobs.delete(digest)
