"""Clients of a site's two APIs: `SiteClient` for its owner's users, `PeerClient` for other sites.

Each takes the base URL of its API as registered or configured, prefix
included (for example `https://site1.example.org:8443/internal`), so a proxy
may expose the API under any path. Images travel as streams: uploads are
read from the file chunk by chunk (after computing its sha256, which the
site verifies); downloads are written to a temporary file while hashing, or
handed to the caller as a stream of chunks to store and check, resumed with
HTTP Range requests after a dropped connection, and kept only if the digest
matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from mahiru.client.downloads import (
    CHUNK_SIZE,
    DIGEST_HEADER,
    download_to_file,
    open_image,
)
from mahiru.client.downloads import (
    Progress as Progress,  # re-exported: callers of upload_asset type their callbacks
)
from mahiru.client.http import MAX_INTEGER, ApiClient, request, request_json
from mahiru.client.interrupts import interrupts_deferred
from mahiru.errors import Conflict, InvalidInput, MahiruError, NotFound
from mahiru.model.assets import Asset, AssetKind, AssetRecord
from mahiru.model.digests import BlobInfo, ImageStream, normalise_digest
from mahiru.model.identifiers import AssetId, ResultId, parse_identifier
from mahiru.model.serialization import asset_description_to_dict

if TYPE_CHECKING:
    from mahiru.policy.changes import PeerRuleBatch
    from mahiru.policy.signing import Revocation, SignedRule

logger = logging.getLogger("mahiru.client.site")

#: JSON objects as the API returns them.
JsonObject = dict[str, Any]


def file_digest(path: Path, progress: Progress | None = None) -> BlobInfo:
    """The sha256 and size of a file, read in chunks."""
    try:
        total = path.stat().st_size
        digest = hashlib.sha256()
        done = 0
        with path.open("rb") as file:
            while chunk := file.read(CHUNK_SIZE):
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress("hash", done, total)
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read: {error.strerror}") from None
    return BlobInfo(digest.hexdigest(), done)


def asset_record_from_json(data: object) -> AssetRecord:
    """Parse the API's JSON form of a stored asset."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"an asset record must be a JSON object, got {data!r}")
    try:
        identifier = parse_identifier(data["id"], ("asset", "result"))
        assert isinstance(identifier, AssetId | ResultId)
        metadata = data["metadata"]
        if not isinstance(metadata, Mapping):
            raise InvalidInput("asset metadata must be a JSON object")
        asset = Asset(identifier, AssetKind(data["kind"]), dict(metadata), data["image_digest"])
        return AssetRecord(asset, data["size"], datetime.fromisoformat(data["created_at"]))
    except (KeyError, TypeError, ValueError) as error:
        raise InvalidInput(f"malformed asset record from the site: {error!r}") from None


def asset_record_to_json(record: AssetRecord) -> JsonObject:
    """The API's JSON form of a stored asset (what `asset_record_from_json` reads)."""
    asset = record.asset
    return {
        "id": str(asset.id),
        "kind": asset.kind.value,
        "metadata": dict(asset.metadata),
        "image_digest": asset.image_digest,
        "size": record.size,
        "created_at": record.created_at.isoformat(),
    }


def parse_rule_batch(data: object) -> PeerRuleBatch:
    """Parse a page of a peer's rule log, keeping unparseable changes aside with the reason.

    Only a malformed page as a whole (or a change without a usable version)
    is InvalidInput; one bad rule must not block the others.
    """
    # Here, not at the top: only sites read peers' rule logs, and the `mahiru` command's
    # start would pay for the policy modules otherwise.
    from mahiru.policy.changes import PeerRuleBatch, RuleChange, UnreadableRuleChange

    if not isinstance(data, Mapping) or set(data) != {"changes", "version"}:
        raise InvalidInput("a rule change batch must be an object with changes and version")
    version, items = data["version"], data["changes"]
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version <= MAX_INTEGER:
        raise InvalidInput(f"rule change batch version must be a natural number, got {version!r}")
    if not isinstance(items, list):
        raise InvalidInput("rule change batch changes must be a list")
    changes: list[RuleChange | UnreadableRuleChange] = []
    for item in items:
        try:
            changes.append(RuleChange.from_dict(item))
        except InvalidInput as error:
            number = item.get("version") if isinstance(item, Mapping) else None
            if (
                not isinstance(number, int)
                or isinstance(number, bool)
                or not 1 <= number <= version
            ):
                raise InvalidInput(f"a rule change without a valid version: {item!r}") from None
            rule_id = item.get("rule_id")
            body = item.get("body")
            changes.append(
                UnreadableRuleChange(
                    number,
                    rule_id if isinstance(rule_id, str) else None,
                    dict(body) if isinstance(body, Mapping) else {"change": dict(item)},
                    error.message,
                )
            )
    return PeerRuleBatch(changes, version)


def _asset_path(asset_id: AssetId | ResultId | str) -> str:
    return f"/assets/{quote(str(asset_id), safe=':')}"


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise InvalidInput(f"{response.request.url}: the response is not JSON") from None


# --- the clients ----------------------------------------------------------------


class _AssetReader(ApiClient):
    """What both APIs of a site serve alike: an asset's record and its image."""

    def get_asset(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """An asset's record (at a peer: if policy lets this site see it)."""
        return asset_record_from_json(_json(request(self._http, "GET", _asset_path(asset_id))))

    def download_image(
        self,
        asset_id: AssetId | ResultId,
        dest: Path,
        *,
        resume: bool = True,
        progress: Progress | None = None,
    ) -> BlobInfo:
        """Download an asset's image to `dest` (atomically, digest verified, resumable)."""
        digest = self.get_asset(asset_id).asset.image_digest
        path = f"{_asset_path(asset_id)}/image"
        return download_to_file(
            self._images, path, dest, digest, resume=resume, progress=progress, clock=self._clock
        )


class SiteClient(_AssetReader):
    """The internal API of one's own site: assets, rules, policy explanations, status."""

    # --- assets --------------------------------------------------------------

    def create_asset(self, asset: Asset) -> AssetRecord:
        """Describe an asset (id, kind, metadata) at the site; return its record."""
        body = asset_description_to_dict(asset)
        return asset_record_from_json(_json(request(self._http, "POST", "/assets", json=body)))

    def upload_asset(
        self, asset: Asset, image_path: Path | None = None, *, progress: Progress | None = None
    ) -> AssetRecord:
        """Describe an asset and upload its image from a file, streaming; return the record.

        The file's sha256 is computed first and verified by the site. An
        asset that already has this image is left as it is. If the image
        cannot be stored (refused, failed, interrupted), an asset described
        by this call is deleted again, so no asset without its image is left.
        """
        if image_path is None:
            return self.create_asset(asset)
        info = file_digest(image_path, progress)
        try:
            self.get_asset(asset.id)
            new = False
        except NotFound:
            new = True
        try:
            # A Ctrl-C while the site stores the description would leave the asset
            # there with no record here to clean up: it is held until the reply is in.
            with interrupts_deferred():
                record = self.create_asset(asset)
            return self._upload_image(asset, record, image_path, info, progress)
        except BaseException:
            if new:
                with contextlib.suppress(MahiruError):
                    self.delete_asset(asset.id)
            raise

    def _upload_image(
        self,
        asset: Asset,
        record: AssetRecord,
        image_path: Path,
        info: BlobInfo,
        progress: Progress | None,
    ) -> AssetRecord:
        current = record.asset.image_digest
        if current == info.digest:
            if progress is not None:
                progress("upload", info.size, info.size)
            return record
        if current is not None:
            raise Conflict(
                f"{asset.id} already has another image (sha256:{current});"
                " delete the asset to store different content",
                {"asset": str(asset.id), "digest": f"sha256:{current}"},
            )

        def chunks() -> Iterator[bytes]:
            sent = 0
            with image_path.open("rb") as file:
                while chunk := file.read(CHUNK_SIZE):
                    sent += len(chunk)
                    if progress is not None:
                        progress("upload", sent, info.size)
                    yield chunk

        headers = {
            DIGEST_HEADER: f"sha256:{info.digest}",
            "Content-Length": str(info.size),
            "Content-Type": "application/octet-stream",
        }
        path = f"{_asset_path(asset.id)}/image"
        response = request(self._http, "PUT", path, content=chunks(), headers=headers)
        return asset_record_from_json(_json(response))

    def list_assets(self) -> list[AssetRecord]:
        """Every asset stored at the site, by id."""
        data = _json(request(self._http, "GET", "/assets"))
        return [asset_record_from_json(item) for item in data["assets"]]

    def delete_asset(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """Delete a stored asset (and its image unless another asset uses it)."""
        response = request(self._http, "DELETE", _asset_path(asset_id))
        return asset_record_from_json(_json(response))

    # --- rules -----------------------------------------------------------------

    def add_rule(self, signed: SignedRule) -> JsonObject:
        """Store a signed rule: `{"rule_id", "changed", "version"}`."""
        result: JsonObject = _json(request(self._http, "POST", "/rules", json=signed.to_dict()))
        return result

    def list_rules(self, *, include_replicated: bool = False) -> list[JsonObject]:
        """The site's own active rules (`{"rule_id", "source", "rule"}`), and peers' if asked."""
        params = {"include_replicated": "true" if include_replicated else "false"}
        data = _json(request(self._http, "GET", "/rules", params=params))
        rules: list[JsonObject] = data["rules"]
        return rules

    def revoke(self, revocation: Revocation) -> JsonObject:
        """Revoke a rule with a signed revocation: `{"rule_id", "changed", "version"}`."""
        response = request(self._http, "POST", "/rules/revocations", json=revocation.to_dict())
        result: JsonObject = _json(response)
        return result

    def rejected_rules(self) -> list[JsonObject]:
        """Rules from peers this site rejected, with the reasons."""
        data = _json(request(self._http, "GET", "/rules/rejected"))
        rejected: list[JsonObject] = data["rejected"]
        return rejected

    # --- policy and replication ------------------------------------------------

    def explain(
        self,
        job: Mapping[str, Any],
        item: str,
        *,
        site: str | None = None,
        party: str | None = None,
    ) -> JsonObject:
        """The site's decision (`Decision.to_dict()`) for one item of a job (its dict form)."""
        body = {"job": dict(job), "item": item, "site": site, "party": party}
        result: JsonObject = _json(request(self._http, "POST", "/policy/explain", json=body))
        return result

    def replicate_now(self) -> JsonObject:
        """Run a replication round now; return the site status afterwards."""
        result: JsonObject = _json(request(self._http, "POST", "/replication/run"))
        return result

    def status(self) -> JsonObject:
        """Replication versions and errors, rule and asset counts."""
        result: JsonObject = _json(request(self._http, "GET", "/status"))
        return result

    def metrics(self) -> str:
        """The site's Prometheus metrics (text format); for admins and configured scrapers."""
        return request(self._http, "GET", "/metrics").text

    def audit_records(self, **filters: str | int | None) -> JsonObject:
        """A page of the audit log, newest first: `{"records": [...], "next": N | null}`.

        Filters: job, asset, kind, since (ISO 8601), before (a page's next), limit.
        """
        params = {key: value for key, value in filters.items() if value is not None}
        result: JsonObject = _json(request(self._http, "GET", "/audit", params=params))
        return result

    def audit_record(self, seq: int) -> JsonObject:
        """One audit record by its number."""
        result: JsonObject = _json(request(self._http, "GET", f"/audit/{seq}"))
        return result

    def verify_audit(self, *, full: bool = True) -> JsonObject:
        """The site's check of its whole audit chain (not `full`: of what was added since its
        last check)."""
        params = {"full": "true" if full else "false"}
        result: JsonObject = _json(request(self._http, "GET", "/audit/verify", params=params))
        return result


class PeerClient(_AssetReader):
    """Another site's external API, as this site calls it: rules, asset metadata and images."""

    def rule_changes(self, since: int, limit: int | None = None) -> PeerRuleBatch:
        """The peer's rule changes after version `since` (a `RuleFeed`)."""
        params: dict[str, int] = {"since": since}
        if limit is not None:
            params["limit"] = limit
        return parse_rule_batch(request_json(self._http, "GET", "/rules/changes", params=params))

    def fetch_image(
        self,
        asset_id: AssetId | ResultId,
        *,
        expected_digest: str | None = None,
        progress: Progress | None = None,
    ) -> AbstractContextManager[ImageStream]:
        """An asset's image as a stream, resumed after dropped connections (a context manager).

        The stream carries the digest the peer announced (the expected one, or
        Conflict); the receiver stores the bytes only if they have it.
        """
        expected = None if expected_digest is None else normalise_digest(expected_digest)
        return open_image(
            self._images,
            f"{_asset_path(asset_id)}/image",
            expected_digest=expected,
            progress=progress,
            clock=self._clock,
        )
