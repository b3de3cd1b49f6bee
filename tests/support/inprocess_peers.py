"""Another site's external API, called in process: a `JobPeer` and a `RuleFeed` without HTTP.

Each call does what the site's `/external` route does before and around its
service call: the caller is identified as a registered site by its network
certificate (`RegisteredSites.identify`, the route dependency's check),
identifiers are parsed from text as from a URL, and requests and answers go
through their JSON forms both ways, as the real client and routes send them.
A site that is down (or stopped) answers Unavailable, as an unreachable one does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from mahiru.api.errors import status_for
from mahiru.api.routes.site.internal.assets import stored_asset_id
from mahiru.api.site_models import AssetOut, RuleChangeBatch
from mahiru.client.site import asset_record_from_json, parse_rule_batch
from mahiru.errors import Conflict, InvalidInput, MahiruError
from mahiru.model.assets import AssetRecord
from mahiru.model.digests import ImageStream, normalise_digest
from mahiru.model.identifiers import AssetId, JobId, ResultId, parse_identifier
from mahiru.model.jobs import StepAssignment, StepStatus, check_job_id
from mahiru.model.live import LiveAnswer, LiveGrantRequest, LiveReader
from mahiru.model.registry import SiteRecord
from mahiru.policy.changes import PeerRuleBatch
from mahiru.services.jobs import JobServices
from mahiru.services.site import SiteServices


class PeerTarget(Protocol):
    """A site as its peers reach it: its services, or Unavailable while it is down."""

    def external(self) -> tuple[SiteServices, JobServices]:
        """The running site's services; Unavailable if it cannot be reached."""
        ...


@dataclass(frozen=True)
class Caller:
    """Who calls: the identity and network certificate the calling site presents."""

    identity: str
    certificate: x509.Certificate


class InProcessPeer:
    """`target`'s external API as `caller` calls it (a JobPeer and a RuleFeed)."""

    def __init__(self, target: PeerTarget, caller: Caller) -> None:
        self._target = target
        self._caller = caller

    def _enter(self) -> tuple[SiteServices, JobServices, SiteRecord]:
        """The target's services and the caller as they identify it (the route dependency)."""
        services, jobs = self._target.external()
        peer = services.replication.registered_sites.identify(
            self._caller.identity, self._caller.certificate
        )
        return services, jobs, peer

    # -- jobs ---------------------------------------------------------------------

    def assign(self, assignment: StepAssignment) -> list[StepStatus]:
        """POST /external/jobs/{id}/assignment."""
        _, jobs, peer = self._enter()
        received = StepAssignment.from_dict(_wire(assignment.to_dict()))
        views = jobs.assignments.receive(received, peer.id)
        return [StepStatus.from_dict(_wire(v.to_dict())) for v in views]

    def step_statuses(self, job_id: JobId) -> list[StepStatus]:
        """GET /external/jobs/{id}/steps."""
        _, jobs, peer = self._enter()
        views = jobs.assignments.statuses(check_job_id(job_id), peer.id)
        return [StepStatus.from_dict(_wire(v.to_dict())) for v in views]

    def step_changes(
        self, job_id: JobId, version: str | None, seconds: float
    ) -> tuple[list[StepStatus], str]:
        """GET /external/jobs/{id}/steps?after=...&wait=... (in an event loop of its own,
        as the route awaits in the server's)."""
        _, jobs, peer = self._enter()
        waiting = jobs.assignments.statuses_after(
            check_job_id(job_id), peer.id, version=version, seconds=seconds
        )
        views, current = asyncio.run(waiting)
        return [StepStatus.from_dict(_wire(v.to_dict())) for v in views], current

    def cancel(self, job_id: JobId) -> list[StepStatus]:
        """POST /external/jobs/{id}/cancel."""
        _, jobs, peer = self._enter()
        views = jobs.assignments.cancel(check_job_id(job_id), peer.id)
        return [StepStatus.from_dict(_wire(v.to_dict())) for v in views]

    def follow_log(self, job_id: JobId, step: str, seconds: float) -> Iterator[bytes]:
        """GET /external/jobs/{id}/steps/{step}/log (refusals before the first bytes)."""
        _, jobs, peer = self._enter()
        yield from jobs.step_logs.for_peer(check_job_id(job_id), step, peer.id, seconds)

    def readers(self, job_id: JobId, job_digest: str) -> list[LiveReader]:
        """GET /external/jobs/{id}/readers?job_digest=..."""
        _, jobs, peer = self._enter()
        if len(job_digest) > 64:
            raise InvalidInput("job_digest is longer than 64 characters")
        found = jobs.assignments.readers(check_job_id(job_id), peer.id, job_digest)
        return [LiveReader.from_dict(_wire(r.to_dict())) for r in found]

    def live_grant(self, grant: LiveGrantRequest) -> str:
        """POST /external/live/grants."""
        _, jobs, peer = self._enter()
        token, _ = jobs.live.grant(LiveGrantRequest.from_dict(_wire(grant.to_dict())), peer.id)
        return token

    def live_revoke(self, token: str) -> None:
        """DELETE /external/live/{token}."""
        _, jobs, peer = self._enter()
        jobs.live.revoke(token, peer.id)

    @contextlib.contextmanager
    def live_file(self, token: str, path: str) -> Iterator[LiveAnswer]:
        """GET /external/live/{token}/files[/{path}], answered with a status as HTTP does."""
        _, jobs, peer = self._enter()
        try:
            if not path:
                listing = json.dumps({"files": jobs.egress.live_files(token, peer.id)}).encode()
                yield LiveAnswer(200, "application/json", str(len(listing)), iter([listing]))
                return
            file = jobs.egress.live_file(token, peer.id, path)
        except MahiruError as error:
            yield LiveAnswer(status_for(error), "text/plain", None, iter(()), error.message)
            return
        yield LiveAnswer(200, "application/octet-stream", str(file.size), file.read())

    # -- assets and results ---------------------------------------------------------

    def get_asset(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """GET /external/assets/{id}: the record, if this site's policy lets the caller see it."""
        _, jobs, peer = self._enter()
        out = AssetOut.of(jobs.egress.record_for_site(stored_asset_id(str(asset_id)), peer.id))
        return asset_record_from_json(_wire(out.model_dump(mode="json")))

    @contextlib.contextmanager
    def fetch_image(
        self, asset_id: AssetId | ResultId, *, expected_digest: str | None = None
    ) -> Iterator[ImageStream]:
        """GET /external/assets/{id}/image, as a stream with the digest the site announces."""
        _, jobs, peer = self._enter()
        image = jobs.egress.to_site(stored_asset_id(str(asset_id)), peer.id)
        if expected_digest is not None and normalise_digest(expected_digest) != image.digest:
            raise Conflict(f"{asset_id}: the site serves another image than expected")
        yield ImageStream(image.digest, image.size, image.read())

    @contextlib.contextmanager
    def fetch_result(self, result: ResultId) -> Iterator[ImageStream]:
        """GET /external/results/{id}/image, as a stream with the digest the site announces."""
        _, jobs, peer = self._enter()
        identifier = parse_identifier(str(result), ("result",))
        assert isinstance(identifier, ResultId)
        image = jobs.egress.to_site(identifier, peer.id)
        yield ImageStream(image.digest, image.size, image.read())

    # -- rules ----------------------------------------------------------------------

    def rule_changes(self, since: int, limit: int | None = None) -> PeerRuleBatch:
        """GET /external/rules/changes."""
        services, _, _ = self._enter()
        batch = RuleChangeBatch.of(services.rules.changes_since(since, limit=limit))
        return parse_rule_batch(_wire(batch.model_dump(mode="json")))

    def close(self) -> None:
        """Nothing to close."""


def _wire(data: Any) -> Any:
    """`data` as the other side reads it after JSON encoding."""
    return json.loads(json.dumps(data))
