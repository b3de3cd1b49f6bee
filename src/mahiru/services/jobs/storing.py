"""Storing results: a step's outputs as data images, recorded with their provenance.

A result becomes visible only all at once: its image goes to the blob store
first, then its asset record, its provenance and (for a step that ran here)
the step's `succeeded` state are written in one transaction. If that
transaction fails, the images it would have used are removed again.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from mahiru.errors import NotFound
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.digests import BlobInfo
from mahiru.model.identifiers import ResultId
from mahiru.model.jobs import ResultProvenance, StepState, step_provenance
from mahiru.model.receipts import ReceiptChain
from mahiru.runtime.protocol import DATA_BASE_IMAGE
from mahiru.services.jobs.context import JobContext, KnownJob
from mahiru.services.jobs.receipts import RECEIPTS_KEY, Receipts

logger = logging.getLogger("mahiru.site.jobs")


def result_stored(ctx: JobContext, result: ResultId) -> bool:
    """Whether a result is stored here with a sound image, to be reused.

    Its receipt chain must verify, and then its image is checked against its
    digest: a damaged one is set aside (and the result computed again), never
    reused.
    """
    try:
        record = ctx.records.get(result)
    except NotFound:
        return False
    digest = record.asset.image_digest
    if digest is None or not ctx.blobs.has(digest):
        return False
    # Only a result whose receipt chain verifies is reused; the receipts are checked
    # first, as they cost far less than hashing the image.
    return Receipts(ctx).stored(result) is not None and ctx.blobs.verify(digest)


def package_outputs(
    ctx: JobContext,
    known: KnownJob,
    step: str,
    outputs: Mapping[str, Path],
    bases: Mapping[str, str],
) -> dict[str, BlobInfo]:
    """Build and save one data image per output (on its base image id, or the data base)."""
    images: dict[str, BlobInfo] = {}
    try:
        for output, files in sorted(outputs.items()):
            base = bases.get(output, DATA_BASE_IMAGE)
            labels = {"mahiru.job": known.job_id, "mahiru.step": step, "mahiru.output": output}
            image = ctx.runtime.build_data_image(base, files, labels=labels)
            try:
                with tempfile.TemporaryDirectory(dir=ctx.work_dir, prefix=".save-") as temp:
                    archive = Path(temp) / "image.tar"
                    ctx.runtime.save_image(image, archive)
                    with archive.open("rb") as content:
                        images[output] = ctx.blobs.write_stream(content)
            finally:
                ctx.runtime.remove_image(image)
    except BaseException:
        drop_unused(ctx, images.values())
        raise
    return images


def store_step_results(
    ctx: JobContext,
    known: KnownJob,
    step: str,
    images: Mapping[str, BlobInfo],
    chains: Mapping[str, ReceiptChain],
) -> None:
    """Record each output's image, receipts and provenance, and the step `succeeded`,
    atomically."""
    _store(
        ctx,
        known,
        step_provenance(known.job_id, known.job, step),
        images,
        chains,
        lambda: ctx.jobs.set_step_state(known.job_id, step, StepState.SUCCEEDED, ctx.now()),
    )


def store_collected(
    ctx: JobContext,
    known: KnownJob,
    provenance: ResultProvenance,
    image: BlobInfo,
    chain: ReceiptChain,
) -> None:
    """Record a result fetched from the site that made it (a workflow output)."""
    _store(
        ctx,
        known,
        [provenance],
        {provenance.output: image},
        {provenance.output: chain},
        lambda: None,
    )


def _store(
    ctx: JobContext,
    known: KnownJob,
    provenances: list[ResultProvenance],
    images: Mapping[str, BlobInfo],
    chains: Mapping[str, ReceiptChain],
    finish: Callable[[], object],
) -> None:
    try:
        with ctx.database.transaction():
            for provenance in provenances:
                image = images[provenance.output]
                metadata = {
                    "job_id": known.job_id,
                    "step": provenance.step,
                    "output": provenance.output,
                    "size": image.size,
                    RECEIPTS_KEY: chains[provenance.output].to_list(),
                }
                asset = Asset(provenance.result, AssetKind.DATA, metadata, image.digest)
                if ctx.records.has(provenance.result):
                    stored = ctx.records.get(provenance.result).asset.image_digest
                    if (
                        stored is None
                        or not ctx.blobs.has(stored)
                        or not result_stored(ctx, provenance.result)
                    ):
                        # Its image was damaged or lost, or it has no receipt that
                        # verifies: the new one replaces it.
                        ctx.records.delete(provenance.result)
                if not ctx.records.has(provenance.result):
                    ctx.records.add(asset, size=image.size)
                ctx.provenance.add_provenance(provenance, ctx.now())
            finish()
    except BaseException:
        drop_unused(ctx, images.values())
        raise
    logger.info(
        "results stored",
        extra={"job": known.job_id, "results": [str(p.result) for p in provenances]},
    )


def drop_unused(ctx: JobContext, images: Iterable[BlobInfo]) -> None:
    """Delete blobs that no asset record uses (after a failed store)."""
    for image in images:
        if ctx.records.image_users(image.digest) == 0:
            ctx.blobs.delete(image.digest)
