"""The HTTP helper of the clients: transport failures become Unavailable with a clean URL."""

from __future__ import annotations

import httpx
import pytest
from tests.support.servers import free_port

from mahiru.client.http import request, unreachable
from mahiru.errors import Unavailable


def test_a_refused_connection_says_nothing_answers_and_names_the_url() -> None:
    port = free_port()  # nothing listens there
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}/internal", timeout=5)
    with client, pytest.raises(Unavailable) as raised:
        request(client, "GET", "/jobs")
    message = raised.value.message
    assert message.startswith(f"nothing answers at 127.0.0.1:{port} — is the service running?")
    assert f"http://127.0.0.1:{port}/internal/jobs" in message
    assert "Errno" not in message and "ConnectError" not in message


def test_other_transport_failures_keep_their_name() -> None:
    """Only a refused connection is "nothing answers": a timeout stays a timeout."""
    error = unreachable(httpx.ReadTimeout("timed out"), "https://h.example:8443/internal/jobs")
    assert error.message == "https://h.example:8443/internal/jobs: ReadTimeout: timed out"


def test_the_default_port_of_https_is_named() -> None:
    refused = httpx.ConnectError("refused")
    refused.__cause__ = ConnectionRefusedError(111, "Connection refused")
    assert unreachable(refused, "https://h.example/x").message.startswith(
        "nothing answers at h.example:443"
    )


def _dropping_once(calls: list[str]) -> httpx.Client:
    """A client whose server drops the first connection without answering, then answers."""

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return httpx.Response(200, json={"ok": True})

    return httpx.Client(transport=httpx.MockTransport(handle), base_url="https://site.test")


def test_a_read_whose_connection_was_dropped_is_sent_once_more() -> None:
    calls: list[str] = []
    with _dropping_once(calls) as client:
        assert request(client, "GET", "/internal/jobs/j1").json() == {"ok": True}
    assert calls == ["GET", "GET"]


def test_a_write_whose_connection_was_dropped_is_not_sent_again() -> None:
    calls: list[str] = []
    with _dropping_once(calls) as client, pytest.raises(Unavailable, match="RemoteProtocolError"):
        request(client, "POST", "/internal/jobs", json={})
    assert calls == ["POST"]


def test_a_read_dropped_twice_is_unavailable() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset")

    client = httpx.Client(transport=httpx.MockTransport(handle), base_url="https://site.test")
    with client, pytest.raises(Unavailable, match="ReadError"):
        request(client, "GET", "/internal/jobs/j1")
