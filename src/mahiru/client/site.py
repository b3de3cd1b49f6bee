"""Clients of a site's two APIs: `SiteClient` for its owner's users, `PeerClient` for other sites.

Each takes the base URL of its API as registered or configured, prefix
included (for example `https://site1.example.org:8443/internal`), so a proxy
may expose the API under any path. Images travel as streams: uploads are
read from the file chunk by chunk (after computing its sha256, which the
site verifies), downloads are written to a temporary file or blob while
hashing, resumed with HTTP Range requests after a dropped connection, and
kept only if the digest matches.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from mahiru.client.http import DEFAULT_TIMEOUT, TlsIdentity, check, make_http_client, request
from mahiru.errors import Conflict, InvalidInput, Unavailable
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, ResultId, parse_identifier
from mahiru.policy.signing import Revocation, SignedRule
from mahiru.services.site.replication import PeerRuleBatch, UnreadableRuleChange
from mahiru.storage import AssetRecord, BlobInfo, BlobStore, BlobWriter, RuleChange
from mahiru.storage.blobs import normalise_digest

logger = logging.getLogger("mahiru.client.site")

#: The header carrying an image's digest, `sha256:<hex>`, on uploads and downloads.
DIGEST_HEADER = "X-Mahiru-Digest"
CHUNK_SIZE = 1024 * 1024
DOWNLOAD_ATTEMPTS = 4

#: Called as `progress(phase, done, total)`; phase is "hash", "upload" or "download".
Progress = Callable[[str, int, int], None]
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
    if not isinstance(data, Mapping) or set(data) != {"changes", "version"}:
        raise InvalidInput("a rule change batch must be an object with changes and version")
    version, items = data["version"], data["changes"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InvalidInput(f"rule change batch version must be a natural number, got {version!r}")
    if not isinstance(items, list):
        raise InvalidInput("rule change batch changes must be a list")
    changes: list[RuleChange | UnreadableRuleChange] = []
    for item in items:
        try:
            changes.append(RuleChange.from_dict(item))
        except InvalidInput as error:
            number = item.get("version") if isinstance(item, Mapping) else None
            if not isinstance(number, int) or isinstance(number, bool) or number < 1:
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


# --- downloads ----------------------------------------------------------------


class _Sink(Protocol):
    """Where downloaded bytes go; `restart` throws away what was written."""

    @property
    def size(self) -> int: ...

    def write(self, chunk: bytes) -> None: ...

    def restart(self) -> None: ...


class _FileSink:
    """A temporary file next to the destination, kept between calls so downloads resume."""

    def __init__(self, partial: Path, resume: bool) -> None:
        self.partial = partial
        self._hash = hashlib.sha256()
        self._file = partial.open("r+b" if resume and partial.exists() else "w+b")
        while chunk := self._file.read(CHUNK_SIZE):
            self._hash.update(chunk)
        self._size = self._file.tell()

    @property
    def size(self) -> int:
        return self._size

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self._size += len(chunk)

    def restart(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.sha256()
        self._size = 0

    def finish(self, dest: Path, digest: str) -> BlobInfo:
        """Move the file to `dest` if it has `digest`; else delete it and raise InvalidInput."""
        actual = self._hash.hexdigest()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        if actual != digest:
            self.partial.unlink(missing_ok=True)
            raise InvalidInput(
                f"the downloaded image has sha256 {actual}, but the site announced {digest}",
                {"expected": digest, "actual": actual},
            )
        os.replace(self.partial, dest)
        return BlobInfo(digest, self._size)

    def close(self) -> None:
        self._file.close()


class _BlobSink:
    """A blob store writer; restarting begins a new one."""

    def __init__(self, blobs: BlobStore, expected_digest: str | None) -> None:
        self._blobs = blobs
        self._expected = expected_digest
        self.writer: BlobWriter = blobs.writer(expected_digest)

    @property
    def size(self) -> int:
        return self.writer.size

    def write(self, chunk: bytes) -> None:
        self.writer.write(chunk)

    def restart(self) -> None:
        self.writer.abort()
        self.writer = self._blobs.writer(self._expected)


def _stream_image(
    http: httpx.Client,
    path: str,
    sink: _Sink,
    *,
    expected_digest: str | None,
    progress: Progress | None,
    attempts: int = DOWNLOAD_ATTEMPTS,
) -> str:
    """Download an image into `sink`, resuming after dropped connections; return its digest."""
    last_error: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(min(0.2 * 2**attempt, 5.0))
        headers: dict[str, str] = {}
        if sink.size:
            headers["Range"] = f"bytes={sink.size}-"
            if expected_digest is not None:
                headers["If-Range"] = f'"sha256:{expected_digest}"'
        try:
            with http.stream("GET", path, headers=headers) as response:
                if response.status_code == 416:  # we hold more than the image: start over
                    sink.restart()
                    continue
                check(response)
                digest = normalise_digest(response.headers.get(DIGEST_HEADER, ""))
                if expected_digest is not None and digest != expected_digest:
                    raise Conflict(
                        f"{path}: the site serves image sha256:{digest},"
                        f" not the expected sha256:{expected_digest}",
                        {"expected": expected_digest, "served": digest},
                    )
                expected_digest = digest
                offset = _range_start(response)
                if offset != sink.size:
                    sink.restart()
                    if offset != 0:
                        continue
                total = offset + int(response.headers.get("content-length", 0))
                # Written as received: a chunker would lose its buffer when the link drops.
                for chunk in response.iter_bytes():
                    sink.write(chunk)
                    if progress is not None:
                        progress("download", sink.size, total)
                return digest
        except httpx.TransportError as error:
            last_error = error
            logger.info(
                "download interrupted; resuming",
                extra={"path": path, "received": sink.size, "error": str(error)},
            )
    raise Unavailable(
        f"{http.base_url}{path}: download failed after {attempts} attempts: {last_error}"
    )


def _range_start(response: httpx.Response) -> int:
    """Where the body starts in the image: 0, or the start of a 206's Content-Range."""
    if response.status_code != 206:
        return 0
    content_range = response.headers.get("content-range", "")
    try:
        unit, _, span = content_range.partition(" ")
        start = int(span.split("-", 1)[0])
    except ValueError:
        return -1
    return start if unit == "bytes" else -1


def _download_to_file(
    http: httpx.Client,
    path: str,
    dest: Path,
    digest: str | None,
    *,
    resume: bool,
    progress: Progress | None,
) -> BlobInfo:
    """Download an image to `dest` atomically, resuming a partial file from an earlier try."""
    if not dest.parent.is_dir():
        raise InvalidInput(f"{dest.parent}: no such directory")
    tag = digest[:16] if digest else "unknown"
    sink = _FileSink(dest.with_name(f".{dest.name}.{tag}.partial"), resume and digest is not None)
    try:
        served = _stream_image(http, path, sink, expected_digest=digest, progress=progress)
        return sink.finish(dest, served)
    finally:
        sink.close()


# --- the clients ----------------------------------------------------------------


class SiteClient:
    """The internal API of one's own site: assets, rules, policy explanations, status."""

    def __init__(
        self,
        internal_url: str,
        identity: TlsIdentity | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = internal_url
        self._http = make_http_client(internal_url, identity, transport=transport, timeout=timeout)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> SiteClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- assets --------------------------------------------------------------

    def create_asset(self, asset: Asset) -> AssetRecord:
        """Describe an asset (id, kind, metadata) at the site; return its record."""
        body = {"id": str(asset.id), "kind": asset.kind.value, "metadata": dict(asset.metadata)}
        return asset_record_from_json(_json(request(self._http, "POST", "/assets", json=body)))

    def upload_asset(
        self, asset: Asset, image_path: Path | None = None, *, progress: Progress | None = None
    ) -> AssetRecord:
        """Describe an asset and upload its image from a file, streaming; return the record.

        The file's sha256 is computed first and verified by the site. An
        asset that already has this image is left as it is.
        """
        record = self.create_asset(asset)
        if image_path is None:
            return record
        info = file_digest(image_path, progress)
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

    def get_asset(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """One stored asset's record."""
        return asset_record_from_json(_json(request(self._http, "GET", _asset_path(asset_id))))

    def download_image(
        self,
        asset_id: AssetId | ResultId,
        dest: Path,
        *,
        resume: bool = True,
        progress: Progress | None = None,
    ) -> BlobInfo:
        """Download an asset's image to `dest` (atomically, digest verified)."""
        digest = self.get_asset(asset_id).asset.image_digest
        path = f"{_asset_path(asset_id)}/image"
        return _download_to_file(self._http, path, dest, digest, resume=resume, progress=progress)

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


class PeerClient:
    """Another site's external API, as this site calls it: rules, asset metadata and images."""

    def __init__(
        self,
        external_url: str,
        identity: TlsIdentity | None,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    ) -> None:
        self.url = external_url
        self._http = make_http_client(external_url, identity, transport=transport, timeout=timeout)

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> PeerClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def rule_changes(self, since: int, limit: int | None = None) -> PeerRuleBatch:
        """The peer's rule changes after version `since` (a `RuleFeed`)."""
        params: dict[str, int] = {"since": since}
        if limit is not None:
            params["limit"] = limit
        return parse_rule_batch(_json(request(self._http, "GET", "/rules/changes", params=params)))

    def asset_metadata(self, asset_id: AssetId | ResultId) -> AssetRecord:
        """The record of an asset stored at the peer, if policy lets this site see it."""
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
        digest = self.asset_metadata(asset_id).asset.image_digest
        path = f"{_asset_path(asset_id)}/image"
        return _download_to_file(self._http, path, dest, digest, resume=resume, progress=progress)

    def fetch_image(
        self,
        asset_id: AssetId | ResultId,
        blobs: BlobStore,
        *,
        expected_digest: str | None = None,
        progress: Progress | None = None,
    ) -> BlobInfo:
        """Copy an asset's image into a blob store, resuming dropped transfers; return it.

        Nothing is stored unless the whole image arrived with the expected
        digest (or, without one, the digest the peer announced).
        """
        expected = None if expected_digest is None else normalise_digest(expected_digest)
        sink = _BlobSink(blobs, expected)
        try:
            path = f"{_asset_path(asset_id)}/image"
            served = _stream_image(
                self._http, path, sink, expected_digest=expected, progress=progress
            )
            info = sink.writer.commit()
            if info.digest != served:
                raise InvalidInput(f"{asset_id}: received sha256 {info.digest}, announced {served}")
            return info
        finally:
            sink.writer.abort()
