"""The pieces a crate's JSON-LD graph is built of: the graph, references, vocabulary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mahiru.model.crates.values import (
    PROFILES,
    PROVENANCE_FILE,
    README_FILE,
    RECEIPTS_FORMAT,
    CrateOutput,
)
from mahiru.model.identifiers import ResultId
from mahiru.model.jobs import JobState, JobStatus, StepState, StepStatus
from mahiru.model.receipts import COMPUTE_ITEM

WORKFLOW_PROFILE = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"
PARAMETER_PROFILE = "https://bioschemas.org/profiles/FormalParameter/1.0-RELEASE"
DOCKER_IMAGE = "https://w3id.org/ro/terms/workflow-run#DockerImage"
PROV_JSON = "https://www.w3.org/submissions/prov-json/"
ENGINE = "#mahiru"
LANGUAGE = "#mahiru-workflow"
LICENSE = "#mahiru-policy"
DONE = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"
STEP_STATUS = {
    StepState.SUCCEEDED: DONE,
    StepState.REUSED: DONE,
    StepState.FAILED: FAILED,
    StepState.CANCELLED: FAILED,
}
JOB_STATUS = {JobState.SUCCEEDED: DONE, JobState.FAILED: FAILED, JobState.CANCELLED: FAILED}

Entity = dict[str, Any]


def ref(ident: str | None) -> dict[str, str] | None:
    return None if ident is None else {"@id": ident}


def refs(idents: Sequence[str]) -> list[dict[str, str]]:
    return [{"@id": i} for i in dict.fromkeys(idents)]


def iso_time(value: Any) -> str | None:
    """A time as the run crate profiles check it: to the millisecond, with its offset."""
    return None if value is None else str(value.isoformat(timespec="milliseconds"))


class Graph:
    """Entities by id, in the order first added; adding one again adds its properties
    (lists of references are joined)."""

    def __init__(self) -> None:
        self.entities: dict[str, Entity] = {}

    def add(self, ident: str, kind: str | list[str], **properties: Any) -> str:
        entity = self.entities.setdefault(ident, {"@id": ident, "@type": kind})
        for key, value in properties.items():
            if value is None or value == []:
                continue
            if isinstance(value, list) and isinstance(entity.get(key), list):
                value = refs([r["@id"] for r in entity[key] + value])
            entity[key] = value
        return ident


def describe(state: StepStatus | None) -> str:
    if state is None:
        return "not started"
    text = f"{state.state.value} at {state.site}"
    return text + (f": {state.reason}" if state.reason else "")


def signed_digests(outputs: Sequence[CrateOutput]) -> dict[str, str]:
    """The digest the receipts sign for each result, and for each image a step ran on."""
    digests: dict[str, str] = {}
    for output in outputs:
        for signed in output.chain.receipts if output.chain is not None else ():
            receipt = signed.receipt
            digests[str(receipt.result)] = receipt.digest
            for entry in receipt.inputs:
                digests.setdefault(entry.id, entry.digest)
    return digests


def compute_digest(outputs: Sequence[CrateOutput], made: Sequence[ResultId]) -> str | None:
    """The digest of the compute image that the receipt of one of `made` signs, if any."""
    for output in outputs:
        for result in made:
            signed = output.chain.of(result) if output.chain is not None else None
            for entry in signed.receipt.inputs if signed is not None else ():
                if entry.item == COMPUTE_ITEM:
                    return entry.digest
    return None


def readme(status: JobStatus) -> str:
    """The crate's README.md: what it holds, for people."""
    return f"""# Mahiru job {status.job_id}

This RO-Crate (Provenance Run Crate 0.5) tells how job {status.job_id} of
{status.job.submitter} made its results: the workflow (`workflow.json`), each
step's run (where, when, with which compute image, on which inputs), the signed
receipt chain of each workflow output (`receipts/`), the W3C PROV-JSON document
(`provenance.json`), and the outputs its submitter may use (`outputs/`, image
archives whose `/data` holds the files). `ro-crate-metadata.json` describes it all.

Check it offline: `mahiru results verify THIS.zip --registry registry.json`.
"""


def add_context(g: Graph, job_id: str, run: str) -> None:
    """The contextual entities: the PROV file, the formats, profiles and licence."""
    g.add(
        PROVENANCE_FILE,
        "File",
        name=f"W3C PROV-JSON document of job {job_id}",
        encodingFormat="application/json",
        conformsTo=ref(PROV_JSON),
        about=ref(run),
    )
    g.add(
        README_FILE,
        "File",
        name="README",
        about=ref("./"),
        encodingFormat="text/markdown",
    )
    g.add(
        RECEIPTS_FORMAT,
        "CreativeWork",
        name="Mahiru receipt chain",
        description="a result's id, image digest and signed receipt chain",
    )
    for ident, (name, version) in PROFILES.items():
        g.add(ident, "CreativeWork", name=name, version=version)
    g.add(
        LICENSE,
        "CreativeWork",
        name="Mahiru policy",
        description="use of the data is governed by the rules of the parties that own"
        " it, named in the receipts",
    )


def single_values(entity: Entity) -> Entity:
    """`entity` with each list of one value written as that value, as RO-Crate prefers."""
    return {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in entity.items()}
