"""Job orchestration at one site: submission, hand-over, execution, collection.

`JobServices` wires the parts together; the API layer calls its submissions and
assignments, and
the app starts it with the site and stops it at shutdown.

See docs/reference.md, "Execution".
"""

from mahiru.services.jobs.context import JobContext, KnownJob
from mahiru.services.jobs.peers import JobPeer, JobPeerFactory, JobPeers
from mahiru.services.jobs.service import JobServices

__all__ = ["JobContext", "JobPeer", "JobPeerFactory", "JobPeers", "JobServices", "KnownJob"]
