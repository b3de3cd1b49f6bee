"""What a job's crate is made of and what it holds, and the names it uses."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.jobs import JobStatus, StepStatus
from mahiru.model.receipts import ReceiptChain

#: The file every RO-Crate describes itself in.
METADATA_FILE = "ro-crate-metadata.json"
WORKFLOW_FILE = "workflow.json"
README_FILE = "README.md"
PROVENANCE_FILE = "provenance.json"
#: The `conformsTo` of a receipt chain file: how `results verify` finds them.
RECEIPTS_FORMAT = "#mahiru-receipt-chain"

CONTEXT = [
    "https://w3id.org/ro/crate/1.1/context",
    "https://w3id.org/ro/terms/workflow-run/context",
]
RO_CRATE = "https://w3id.org/ro/crate/1.1"
WORKFLOW_RO_CRATE = "https://w3id.org/workflowhub/workflow-ro-crate/1.0"
#: The profiles a job's crate conforms to: id -> (name, version).
PROFILES = {
    "https://w3id.org/ro/wfrun/process/0.5": ("Process Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/workflow/0.5": ("Workflow Run Crate", "0.5"),
    "https://w3id.org/ro/wfrun/provenance/0.5": ("Provenance Run Crate", "0.5"),
    WORKFLOW_RO_CRATE: ("Workflow RO-Crate", "1.0"),
}


@dataclass(frozen=True, slots=True)
class IncludedImage:
    """An image that goes into the crate: the asset or result it is, its digest and size."""

    stored: AssetId | ResultId
    digest: str
    size: int

    @property
    def path(self) -> str:
        """Where it lies in the crate: `outputs/<result digest>.tar`, `inputs/<name>.tar`."""
        if isinstance(self.stored, ResultId):
            return f"outputs/{self.stored.digest}.tar"
        return f"inputs/{self.stored.namespace}-{self.stored.name}.tar"


@dataclass(frozen=True, slots=True)
class CrateOutput:
    """A workflow output as the caller may see it: its receipt chain (None if the site
    holds none), its image if the caller may have it, else why not."""

    name: str
    result: ResultId
    chain: ReceiptChain | None
    image: IncludedImage | None = None
    withheld: str | None = None


@dataclass(frozen=True, slots=True)
class CrateSource:
    """What a crate is made of: the job, its steps as the caller may see them, the owners
    of the sites, the outputs, the images of inputs included, and the PROV-JSON document."""

    status: JobStatus
    steps: Sequence[StepStatus]
    owners: Mapping[SiteId, PartyId]
    outputs: Sequence[CrateOutput]
    provenance: Mapping[str, Any]
    inputs: Sequence[IncludedImage] = ()
    version: str = "unknown"


@dataclass(frozen=True, slots=True)
class JobCrate:
    """A crate's metadata and its documents (path -> bytes); `images` go beside them, each
    at its `path`."""

    metadata: dict[str, Any]
    documents: dict[str, bytes]
    images: tuple[IncludedImage, ...]

    def metadata_bytes(self) -> bytes:
        """The bytes of `ro-crate-metadata.json`."""
        return json_bytes(self.metadata)


def urn(identifier: object) -> str:
    """The JSON-LD id of a Mahiru id, as the PROV document names it."""
    return f"urn:mahiru:{identifier}"


def json_bytes(value: Any) -> bytes:
    """A document of the crate as written: indented, keys sorted, one final newline."""
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()
