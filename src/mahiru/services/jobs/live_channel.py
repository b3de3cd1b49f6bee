"""The computing site's side of live data access: one scoped channel per step and input.

A step input whose asset is marked `live_access` at its owner's site is not
fetched. Instead, while the step's container runs, this site holds a grant
from the owner (a token bound to the asset, this site, the job and the step)
and serves a Unix socket that is mounted into that container only. The
container keeps `network_mode=none`: the socket is the one thing it can
reach. Behind the socket a small HTTP relay forwards `GET /live/<token>/files`
and `GET /live/<token>/files/<path>` (with that exact token) to the owner
over mutual TLS, and refuses everything else. The bytes stream through
memory; nothing of them is written to this site's store or disk. The grant
is revoked and the socket removed when the step ends.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import re
import secrets
import shutil
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from mahiru.errors import (
    Internal,
    InvalidInput,
    MahiruError,
    NotFound,
    PermissionDenied,
    Unavailable,
)
from mahiru.model.identifiers import AssetId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.jobs import StepInput
from mahiru.model.live import LiveGrantRequest
from mahiru.runtime.steps import live_environment
from mahiru.services.jobs.ledger import KnownJob
from mahiru.services.jobs.live_grants import is_live
from mahiru.services.jobs.peers import JobPeer, JobPeers
from mahiru.services.jobs.waits import waiting_on
from mahiru.storage import AssetRepository

logger = logging.getLogger("mahiru.site.live")

_SEGMENT = re.compile(r"[A-Za-z0-9_.-]+")
_PATH = re.compile(r"^/live/(?P<token>[A-Za-z0-9_-]+)/files(?:/(?P<path>[^?#]*))?$")
#: How often a relay looks whether it was shut down: its step's end waits that long at most
#: per live input (the standard library's default, half a second, is slower than most steps).
RELAY_POLL_SECONDS = 0.02


@dataclass
class LiveChannel:
    """What a step container needs for its live inputs: sockets and environment."""

    sockets: dict[str, Path] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)


class LiveRelay(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """A Unix-socket HTTP server relaying one token's reads to the owner's site."""

    daemon_threads = True

    def __init__(self, path: Path, owner: JobPeer, token: str) -> None:
        self.owner = owner
        self.token = token
        # A socket's path may have at most 107 bytes, which a deep data directory
        # exceeds; bound through an open handle of its folder, the path stays short.
        folder = os.open(path.parent, os.O_PATH | os.O_DIRECTORY)
        try:
            super().__init__(f"/proc/self/fd/{folder}/{path.name}", LiveRelayHandler)
        finally:
            os.close(folder)


class LiveRelayHandler(BaseHTTPRequestHandler):
    """Forwards GETs of the relay's token's files; refuses every other request."""

    server: LiveRelay
    protocol_version = "HTTP/1.1"
    timeout = 60

    def do_GET(self) -> None:
        match = _PATH.match(self.path)
        if match is None:
            self._refuse(404, "only /live/<token>/files[/<path>] is served here")
            return
        if not hmac.compare_digest(match["token"].encode(), self.server.token.encode()):
            self._refuse(403, "wrong token")
            return
        segments = match["path"].split("/") if match["path"] else []
        if any(not _SEGMENT.fullmatch(part) or part in (".", "..") for part in segments):
            # Dot segments would be resolved on the way and reach other endpoints.
            self._refuse(400, "file paths are plain names: letters, digits, '_', '.', '-'")
            return
        try:
            with self.server.owner.live_file(self.server.token, "/".join(segments)) as answer:
                if answer.status != 200:
                    self._refuse(answer.status, answer.message)
                    return
                self.send_response(200)
                self.send_header("Content-Type", answer.content_type)
                if answer.length is not None:
                    self.send_header("Content-Length", answer.length)
                    self.end_headers()
                    for chunk in answer.chunks:
                        self.wfile.write(chunk)
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for chunk in answer.chunks:
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                    self.wfile.write(b"0\r\n\r\n")
        except Unavailable as error:
            self._refuse(502, error.message)
        except OSError:
            self.close_connection = True  # the container went away mid-transfer

    def _refuse(self, status: int, message: str) -> None:
        body = (message + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _not_allowed(self) -> None:
        self._refuse(405, "only GET is allowed")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _not_allowed

    def address_string(self) -> str:
        return "step container"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("live relay: " + format, *args)


class LiveChannels:
    """Decides which step inputs are read live, and opens their channels for a step."""

    def __init__(
        self, site: SiteId, asset_records: AssetRepository, peers: JobPeers, work_dir: Path
    ) -> None:
        self._site = site
        self._asset_records = asset_records
        self._peers = peers
        self._work_dir = work_dir

    def live_inputs(self, needed: list[StepInput]) -> set[WorkflowItem]:
        """The step inputs to read live: data assets at other sites marked `live_access`."""
        live: set[WorkflowItem] = set()
        for item in needed:
            asset = item.asset
            if item.item.kind is not ItemKind.STEP_INPUT or not isinstance(asset, AssetId):
                continue
            if item.site == self._site or self._asset_records.has(asset):
                continue
            with waiting_on(f"cannot ask {item.site} about {asset}", item.site):
                metadata = self._peers.get(item.site).get_asset(asset).asset.metadata
            if is_live(dict(metadata)):
                live.add(item.item)
        return live

    @contextlib.contextmanager
    def open(self, known: KnownJob, step: str, needed: list[StepInput]) -> Iterator[LiveChannel]:
        """Grants and relays for the live inputs in `needed`, for as long as the step runs."""
        channel = LiveChannel()
        root = self._work_dir / "live" / secrets.token_hex(6)
        relays: list[tuple[LiveRelay, threading.Thread]] = []
        grants: list[tuple[JobPeer, str]] = []
        try:
            if needed:
                root.mkdir(parents=True)
                root.chmod(0o700)  # only this site's user (and the engine) get to the sockets
            for item in needed:
                name = item.item.part
                assert name is not None  # step inputs have a name
                owner = self._peers.get(item.site)
                what = f"cannot get live access to {item.asset} at {item.site}"
                with waiting_on(what, item.site):
                    token = self._grant(owner, known, step, name, item)
                grants.append((owner, token))
                socket_path = root / f"{name}.sock"
                relay = LiveRelay(socket_path, owner, token)
                # The step runs as another user; the socket's folder keeps others out.
                socket_path.chmod(0o666)
                thread = threading.Thread(
                    target=partial(relay.serve_forever, poll_interval=RELAY_POLL_SECONDS),
                    name=f"mahiru-live-{name}",
                    daemon=True,
                )
                thread.start()
                relays.append((relay, thread))
                channel.sockets[name] = socket_path
                channel.environment.update(live_environment(name, token))
            yield channel
        finally:
            for relay, thread in relays:
                relay.shutdown()
                relay.server_close()
                thread.join(10)
            for owner, token in grants:
                self._revoke(owner, token, known)
            shutil.rmtree(root, ignore_errors=True)

    def _grant(self, owner: JobPeer, known: KnownJob, step: str, name: str, item: StepInput) -> str:
        assert isinstance(item.asset, AssetId)  # only data assets are read live (live_inputs)
        grant = LiveGrantRequest(
            known.job_id, known.job, known.submitter_site, step, name, item.asset
        )
        try:
            token = owner.live_grant(grant)
        except InvalidInput as error:
            raise Internal(f"{item.site}: {error.message}") from None
        logger.info(
            "live access granted to a step",
            extra={"job": known.job_id, "step": step, "input": name, "asset": str(item.asset)},
        )
        return token

    def _revoke(self, owner: JobPeer, token: str, known: KnownJob) -> None:
        try:
            owner.live_revoke(token)
        except (PermissionDenied, NotFound):
            pass  # expired already
        except (Unavailable, MahiruError) as error:
            # The grant still expires on its own.
            logger.warning(
                "cannot revoke a live grant: %s", error.message, extra={"job": known.job_id}
            )
