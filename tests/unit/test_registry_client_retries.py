"""The registry client's retries, against a scripted transport and a clock that never waits."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.manual_clock import ManualClock

from mahiru.client.registry import RegistryClient
from mahiru.errors import Conflict, Unavailable
from mahiru.model.identifiers import PartyId
from mahiru.model.registrations import STALE_BASE_VERSION
from mahiru.model.registry import PartyRecord

PARTY = PartyRecord(PartyId.parse("party:p1.org:p1"), "p1.org", "key", "ca")


def _error(status: int, type_name: str, details: object = None) -> httpx.Response:
    body = {"error": {"type": type_name, "message": "scripted", "details": details}}
    return httpx.Response(status, content=json.dumps(body).encode())


def _client(
    serve: Callable[[httpx.Request], httpx.Response], clock: ManualClock, **kwargs: float
) -> RegistryClient:
    return RegistryClient(
        "https://registry.test", None, transport=httpx.MockTransport(serve), clock=clock, **kwargs
    )


def test_an_unavailable_registry_is_asked_again_after_doubling_pauses() -> None:
    """retries=2, retry_delay=0.5: two 503s are waited out (0.5 s, then 1 s) on the clock."""
    answers = [httpx.Response(503), httpx.Response(503), httpx.Response(200, json={"version": 7})]
    clock = ManualClock()
    with _client(lambda request: answers.pop(0), clock, retries=2, retry_delay=0.5) as client:
        assert client.version() == 7
    assert clock.sleeps == [0.5, 1.0]


def test_a_registry_still_unavailable_after_the_retries_is_reported() -> None:
    """After 1 + retries tries the Unavailable escapes."""
    calls: list[int] = []

    def serve(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(503)

    clock = ManualClock()
    with _client(serve, clock, retries=3, retry_delay=0.1) as client, pytest.raises(Unavailable):
        client.version()
    assert len(calls) == 4
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_a_stale_registration_is_signed_again_after_a_short_random_pause() -> None:
    """Two stale-version conflicts: signed three times, with 0.05-0.25 s, then 0.1-0.5 s pauses."""
    submitted: list[int] = []
    version = [0]

    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/version":
            version[0] += 1
            return httpx.Response(200, json={"version": version[0]})
        submitted.append(json.loads(request.content)["base_version"])
        if len(submitted) < 3:
            return _error(409, "Conflict", {"reason": STALE_BASE_VERSION})
        return httpx.Response(200, json={"version": 10, "changed": True})

    clock = ManualClock()
    with _client(serve, clock) as client:
        assert client.register_party(PARTY, Ed25519PrivateKey.generate()) == 10
    assert submitted == [1, 2, 3]  # made against the version current at each signing
    first, second = clock.sleeps
    assert 0.05 - 1e-9 <= first <= 0.25
    assert 0.1 - 1e-9 <= second <= 0.5


def test_another_conflict_is_not_retried() -> None:
    """A conflict for any other reason escapes at once, without a pause."""
    calls: list[str] = []

    def serve(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if request.url.path == "/version":
            return httpx.Response(200, json={"version": 1})
        return _error(409, "Conflict", {"reason": "namespace_taken"})

    clock = ManualClock()
    with _client(serve, clock) as client, pytest.raises(Conflict):
        client.register_party(PARTY, Ed25519PrivateKey.generate())
    assert calls == ["/version", "/registrations"]
    assert clock.sleeps == []
