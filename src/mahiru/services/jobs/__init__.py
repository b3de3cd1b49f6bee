"""Job orchestration at one site: submission, hand-over, execution, collection.

`JobServices` starts and stops the parts (wired together by `mahiru.bootstrap`);
the API layer calls its submissions and assignments.

See docs/reference.md, "Execution".
"""

from mahiru.services.jobs.environment import StepEnvironment
from mahiru.services.jobs.ledger import JobLedger, KnownJob
from mahiru.services.jobs.peers import JobPeer, JobPeerFactory, JobPeers
from mahiru.services.jobs.ports import JobPorts
from mahiru.services.jobs.service import JobLoops, JobServices

__all__ = [
    "JobLedger",
    "JobLoops",
    "JobPeer",
    "JobPeerFactory",
    "JobPeers",
    "JobPorts",
    "JobServices",
    "KnownJob",
    "StepEnvironment",
]
