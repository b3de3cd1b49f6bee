"""The owner's side of live data access: grants that let one step read a data set here.

A data asset with metadata `live_access: true` is never copied to the site
that computes on it. That site asks for a grant for one step of one job; this
site decides with its own policy (never the asker's plan) whether the asker
may run that step, which must read the asset, and if so returns a random
token bound to (asset, asking site, job, step, input) that expires. With the
token and its own certificate, and nothing else, the asker reads the files
of the asset's `/data`, which are unpacked here (from the image, checked
against its digest first) while any grant uses them; each file's sha256 is
recorded as it is unpacked, and the egress gate sends only recorded files,
checked against that digest as they are read.

The asker's word that it runs the step is not enough: before granting, this
site asks the job's submitter's site (which plans the job and mirrors every
step) which steps of the job, named by its digest, read data stored here
and have not finished, and where; it grants only if that site lists the
step at the asker. It learns nothing else about the job.

Grants are bounded: a site may hold at most MAX_GRANTS_PER_SITE at once,
and grants of the same image share one unpacked copy, so asking again and
again costs neither disk nor time. The policy decides before anything is
looked up, so a site without access learns nothing of which assets exist.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath

from mahiru.clock import Clock
from mahiru.data_archives import extract_data_files
from mahiru.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mahiru.model.assets import AssetKind
from mahiru.model.identifiers import AssetId, JobId, PartyId, SiteId
from mahiru.model.live import LiveGrantRequest, LiveReader
from mahiru.model.serialization import job_digest
from mahiru.policy.decisions import Decision, Release
from mahiru.services.jobs.environment import StepEnvironment
from mahiru.services.site.policy_view import Concerning, PolicyView
from mahiru.storage import AssetRepository, BlobStore, ReplicaRepository
from mahiru.storage.blobs import CHUNK_SIZE

logger = logging.getLogger("mahiru.site.live")

#: How long a grant lives beyond the step's time limit (fetch and start-up slack).
GRANT_MARGIN_SECONDS = 120.0
#: Live grants one site may hold here at once (each is a running step reading data).
MAX_GRANTS_PER_SITE = 16

LIVE_ACCESS = "live_access"


def is_live(metadata: object) -> bool:
    """Whether asset metadata asks for live access (`live_access: true`)."""
    return isinstance(metadata, dict) and metadata.get(LIVE_ACCESS) is True


@dataclass(frozen=True, slots=True)
class LiveGrant:
    """A granted live access: who may read what, for which step, until when."""

    token_hash: str
    asset: AssetId
    site: SiteId
    job_id: JobId
    step: str
    input: str
    expires_at: datetime
    files: Path
    #: The sha256 and size of each file under `files` (by its path there), taken as
    #: the image was unpacked from its verified blob: what every read is checked against.
    digests: Mapping[str, tuple[str, int]]
    #: The job's submitting party, and the decision that let the grantee run the step.
    party: PartyId
    release: Release

    def to_dict(self) -> dict[str, str]:
        """What the grantee is told (the token itself travels separately)."""
        return {
            "asset": str(self.asset),
            "site": str(self.site),
            "job_id": self.job_id,
            "step": self.step,
            "input": self.input,
            "expires_at": self.expires_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class GrantedFile:
    """A file of a granted data set: where it is unpacked, and its recorded sha256 and size."""

    grant: LiveGrant
    path: str
    location: Path
    digest: str
    size: int


def _file_digest(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            hasher.update(chunk)
    return hasher.hexdigest()


def _hash(token: str) -> str:
    # Only hashes are kept, so grants are found by exact match without comparing
    # secrets byte by byte, and a memory dump holds no usable token.
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_reads(request: LiveGrantRequest) -> None:
    """InvalidInput unless the request's step reads its asset as the input it names."""
    definition = request.job.workflow.steps.get(request.step)
    source = None if definition is None else definition.inputs.get(request.input)
    if not isinstance(source, str) or request.job.inputs.get(source) != request.asset:
        raise InvalidInput(
            f"step {request.step!r} of the job does not read {request.asset}"
            f" as its input {request.input!r}",
            {"step": request.step, "input": request.input},
        )


#: Asks a job's submitter's site, for the job with this digest, its unfinished steps that
#: read data stored here (the site, the job id, the job's digest).
AskSubmitter = Callable[[SiteId, JobId, str], list[LiveReader]]


class LiveGrants:
    """Grants of live access to data sets stored here, held in memory (a restart revokes all)."""

    def __init__(
        self,
        policy: PolicyView,
        sites: ReplicaRepository,
        asset_records: AssetRepository,
        blobs: BlobStore,
        environment: StepEnvironment,
        clock: Clock,
        ask_submitter: AskSubmitter,
    ) -> None:
        self._policy = policy
        self._sites = sites
        self._asset_records = asset_records
        self._blobs = blobs
        self._clock = clock
        self._ask_submitter = ask_submitter
        self._root = environment.work_dir / "live-grants"
        self._lock = threading.Lock()
        self._unpack_lock = threading.Lock()
        self._grants: dict[str, LiveGrant] = {}
        #: How long a grant lives: the step's time limit plus a margin.
        self.ttl = timedelta(seconds=environment.limits.timeout_seconds + GRANT_MARGIN_SECONDS)

    def grant(self, request: LiveGrantRequest, caller: SiteId) -> tuple[str, LiveGrant]:
        """A new token for `caller`, if this site's policy lets it run the step on the asset.

        In stages, cheapest and least telling first: the request must make
        sense; this site's policy decides (before anything is looked up, so a
        site without access learns nothing of which assets exist); the asset
        must be a live data set stored here; the caller must hold fewer than
        the most grants; the job's submitter's site must confirm the step runs
        at the caller. Only then is a token issued.
        """
        _check_reads(request)
        decision = self._decide(request, caller)
        digest = self._live_image(request.asset)
        self._check_held(caller)
        self._confirm(request, caller)
        return self._issue(request, caller, digest, Release(decision))

    def _decide(self, request: LiveGrantRequest, caller: SiteId) -> Decision:
        """This site's decision that `caller` may run the step; PermissionDenied if not."""
        # Decided first, from this site's replica, which may lag the requester's
        # by a round: `decide` replicates once before a denial stands.
        decision = self._policy.decide(
            lambda engine: engine.may_run_step(
                engine.job_permissions(request.job), request.step, caller
            ),
            Concerning(
                "live grant",
                str(caller),
                party=str(request.job.submitter),
                job=request.job_id,
                step=request.step,
                asset=str(request.asset),
            ),
        )
        if not decision.allowed:
            raise PermissionDenied(
                f"{caller} may not run step {request.step}, which reads {request.asset}: "
                + "; ".join(decision.failures()),
                decision.to_dict(),
            )
        return decision

    def _live_image(self, asset_id: AssetId) -> str:
        """The image digest of `asset_id`, a data set served live and stored here; NotFound
        alike for every other asset."""
        unavailable = NotFound(
            f"{asset_id} is not a data set served live here", {"asset": str(asset_id)}
        )
        try:
            asset = self._asset_records.get(asset_id).asset
        except NotFound:
            raise unavailable from None
        digest = asset.image_digest
        if asset.kind is not AssetKind.DATA or not is_live(dict(asset.metadata)) or digest is None:
            raise unavailable
        if not self._blobs.has(digest):
            raise unavailable
        return digest

    def _check_held(self, caller: SiteId) -> None:
        """Conflict if `caller` holds as many grants as one site may (expired ones dropped)."""
        self.expire()
        with self._lock:
            held = sum(1 for g in self._grants.values() if g.site == caller)
        if held >= MAX_GRANTS_PER_SITE:
            raise Conflict(
                f"{caller} holds {held} live grants here, the most one site may hold at once;"
                " revoke those of finished steps first",
                {"site": str(caller), "limit": MAX_GRANTS_PER_SITE},
            )

    def _issue(
        self, request: LiveGrantRequest, caller: SiteId, digest: str, release: Release
    ) -> tuple[str, LiveGrant]:
        """A new token and its grant, on the image's unpacked files."""
        token = secrets.token_urlsafe(32)
        with self._unpack_lock:  # so no grant drops the shared files in between
            files, digests = self._unpacked(digest)
            grant = LiveGrant(
                _hash(token),
                request.asset,
                caller,
                request.job_id,
                request.step,
                request.input,
                self._clock.now() + self.ttl,
                files,
                digests,
                request.job.submitter,
                release,
            )
            with self._lock:
                self._grants[grant.token_hash] = grant
        logger.info("live access granted", extra={**grant.to_dict()})
        return token, grant

    def _confirm(self, request: LiveGrantRequest, caller: SiteId) -> None:
        """Refuse unless the job's submitter's site says `caller` runs the step, unfinished."""
        submitter_site = request.submitter_site
        what = f"step {request.step} of job {request.job_id}"
        if self._sites.site(submitter_site).owner != request.job.submitter:
            raise PermissionDenied(
                f"{submitter_site} does not belong to the job's submitter {request.job.submitter}",
                {"submitter_site": str(submitter_site)},
            )
        try:
            readers = self._ask_submitter(submitter_site, request.job_id, job_digest(request.job))
        except (NotFound, InvalidInput) as error:
            # Also a job other than the one the asker sent: the submitter's site
            # answers only about the job with that digest.
            raise PermissionDenied(
                f"{submitter_site} does not confirm {what}: {error.message}",
                {"job_id": request.job_id, "submitter_site": str(submitter_site)},
            ) from None
        if LiveReader(request.step, caller) not in readers:
            raise PermissionDenied(
                f"{submitter_site} does not say that {what} runs at {caller}"
                " (it is not planned there, or it has finished)",
                {"job_id": request.job_id, "step": request.step},
            )

    def _unpacked(self, digest: str) -> tuple[Path, Mapping[str, tuple[str, int]]]:
        """The /data files of image `digest`, unpacked once and shared by its grants, and
        the sha256 and size of each.

        The image is checked against its digest before it is unpacked (a damaged
        one is set aside and nothing is granted), so the recorded file digests
        are those of the image the asset names. Called with the unpack lock held.
        """
        files = self._root / digest[:32]
        with self._lock:
            shared = next((g.digests for g in self._grants.values() if g.files == files), None)
        if shared is not None:
            return files, shared
        shutil.rmtree(files, ignore_errors=True)
        self._root.mkdir(parents=True, exist_ok=True)
        if not self._blobs.verify(digest):
            raise NotFound(f"the image {digest} of the data set is damaged; it was set aside")
        digests = {}
        for found in extract_data_files(self._blobs.path(digest), files):
            if found.is_file() and not found.is_symlink():
                digests[found.relative_to(files).as_posix()] = (
                    _file_digest(found),
                    found.stat().st_size,
                )
        return files, dict(sorted(digests.items()))

    def file(self, token: str, caller: SiteId, path: str) -> GrantedFile:
        """The file at `path` under the granted asset's /data; NotFound without a grant.

        Only the files recorded when the image was unpacked are served.
        """
        grant = self._valid(token, caller)
        parts = PurePosixPath(path).parts
        if not parts or any(part in ("", ".", "..") for part in parts) or path.startswith("/"):
            raise InvalidInput(f"invalid file path {path!r}", {"path": path})
        name = "/".join(parts)
        recorded = grant.digests.get(name)
        if recorded is None:
            raise NotFound(f"{grant.asset} has no file /data/{path}", {"path": path})
        return GrantedFile(grant, name, grant.files.joinpath(*parts), *recorded)

    def files(self, token: str, caller: SiteId) -> list[dict[str, object]]:
        """The files of the granted asset's /data: path, size and sha256, sorted by path."""
        grant = self._valid(token, caller)
        return [
            {"path": name, "size": size, "sha256": digest}
            for name, (digest, size) in grant.digests.items()
        ]

    def revoke(self, token: str, caller: SiteId) -> None:
        """End a grant early (the grantee, when its step is over)."""
        grant = self._valid(token, caller)
        self._drop(grant.token_hash)
        logger.info("live access revoked", extra={**grant.to_dict()})

    def expire(self) -> None:
        """Drop grants past their expiry, and their unpacked files."""
        now = self._clock.now()
        with self._lock:
            expired = [h for h, g in self._grants.items() if g.expires_at <= now]
        for token_hash in expired:
            self._drop(token_hash)

    def revoke_all(self) -> None:
        """Drop every grant (at shutdown)."""
        with self._lock:
            hashes = list(self._grants)
        for token_hash in hashes:
            self._drop(token_hash)

    def _valid(self, token: str, caller: SiteId) -> LiveGrant:
        self.expire()
        with self._lock:
            grant = self._grants.get(_hash(token))
        if grant is None or grant.site != caller:
            # One answer for unknown, expired, revoked and other sites' tokens, which
            # says nothing about which tokens exist (as with other parties' jobs).
            raise NotFound(
                "no live access grant for this token and site here (unknown, expired or revoked)",
                {"site": str(caller)},
            )
        return grant

    def _drop(self, token_hash: str) -> None:
        with self._unpack_lock:
            with self._lock:
                grant = self._grants.pop(token_hash, None)
                still_used = grant is not None and any(
                    g.files == grant.files for g in self._grants.values()
                )
            if grant is not None and not still_used:
                shutil.rmtree(grant.files, ignore_errors=True)
