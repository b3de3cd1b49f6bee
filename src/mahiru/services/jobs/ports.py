"""What the job services of a site share, each built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from mahiru.services.jobs.environment import StepEnvironment
from mahiru.services.jobs.images import LoadedImages
from mahiru.services.jobs.ledger import JobLedger
from mahiru.services.jobs.peers import JobPeers
from mahiru.services.jobs.receipts import Receipts
from mahiru.services.jobs.storing import ResultStore


@dataclass(frozen=True, slots=True)
class JobPorts:
    """The ledger, step environment, peers, receipts, result store and loaded images that
    the job services' parts are built from (docs/architecture.md, "Ports")."""

    ledger: JobLedger
    environment: StepEnvironment
    peers: JobPeers
    receipts: Receipts
    results: ResultStore
    images: LoadedImages
