"""The step side of a live channel: the Unix-socket relay forwards one token's GETs only."""

from __future__ import annotations

import http.client
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mahiru.client.jobs import PeerJobsClient
from mahiru.services.jobs.live_channel import LiveRelay

TOKEN = "t0ken-for-one-step_abc"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("live", timeout=10)
        self._path = path

    def connect(self) -> None:
        # The path is too long to connect to by name (as the container does, by its
        # short mount point); go through a handle of its folder instead.
        folder = os.open(self._path.parent, os.O_PATH | os.O_DIRECTORY)
        try:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(f"/proc/self/fd/{folder}/{self._path.name}")
        finally:
            os.close(folder)
        self.sock = sock


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A relay on a socket in `tmp_path`, to an owner that records the paths it is asked."""
    asked: list[str] = []

    def owner(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.method} {request.url.path}")
        if request.url.path.endswith("/files/data.json"):
            return httpx.Response(200, content=b"[1, 2]\n")
        return httpx.Response(404, json={"error": {"type": "NotFound", "message": "no such"}})

    # The relay reads through the peer port; here the client of it talks to a fake owner.
    client = PeerJobsClient("https://site2/external", None, transport=httpx.MockTransport(owner))
    # A deep folder: longer than a socket path may be, which the relay must cope with.
    folder = tmp_path.joinpath(*["deep-folder-name"] * 8)
    folder.mkdir(parents=True)
    server = LiveRelay(folder / "input0.sock", client, TOKEN)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder / "input0.sock", asked
    finally:
        server.shutdown()
        server.server_close()
        client.close()


def ask(path: Path, method: str, target: str) -> tuple[int, bytes]:
    """One request over the socket: status and body."""
    connection = _UnixConnection(path)
    try:
        connection.request(method, target)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_get_of_a_granted_file_is_forwarded_to_the_owner(
    relay: tuple[Path, list[str]],
) -> None:
    """The file's bytes come back; the owner was asked for exactly that file with the token."""
    path, asked = relay
    assert ask(path, "GET", f"/live/{TOKEN}/files/data.json") == (200, b"[1, 2]\n")
    assert asked == [f"GET /external/live/{TOKEN}/files/data.json"]


def test_the_owners_refusal_is_passed_on(relay: tuple[Path, list[str]]) -> None:
    """A file the owner does not have is a 404 in the container too."""
    path, _ = relay
    status, body = ask(path, "GET", f"/live/{TOKEN}/files/other.json")
    assert status == 404 and b"no such" in body


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("GET", "/live/wrong-token/files/data.json", 403),
        ("GET", "/external/assets", 404),
        ("GET", "/", 404),
        ("GET", f"/live/{TOKEN}/files/../../assets", 400),
        ("GET", f"/live/{TOKEN}/files/%2e%2e/%2e%2e/assets", 400),
        ("GET", f"/live/{TOKEN}/files/a//b", 400),
        ("POST", f"/live/{TOKEN}/files/data.json", 405),
        ("DELETE", f"/live/{TOKEN}", 405),
    ],
)
def test_anything_else_is_refused_without_asking_the_owner(
    relay: tuple[Path, list[str]], method: str, target: str, status: int
) -> None:
    """Other tokens, paths, dot segments and methods never reach the owner's site."""
    path, asked = relay
    assert ask(path, method, target)[0] == status
    assert asked == []
