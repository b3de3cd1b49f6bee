"""A hostile registered peer feeds malformed rule changes: only its own replication fails.

Three sites: p0's is replaced by a hostile server on p0's port with p0's real
site certificate (registered like any other, and first in every round), p1
replicates, p2 is honest. For every malformed answer - hand-made ones and
seeded random mutations of a valid page - p1's replication run answers 200,
p2's newest rule arrives at p1, and p0's status shows the error.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.responses import Response
from tests.support.db import sqlite_urls
from tests.support.servers import serving
from tests.support.sites import Network, SiteServer, may_access, network

from mahiru.services.site.replication import backoff_seconds

pytestmark = pytest.mark.integration

SEED = 20261206
JSON = "application/json"


def _valid_page() -> bytes:
    change = {
        "version": 1,
        "action": "added",
        "rule_id": "0" * 64,
        "body": {"type": "MayAccess", "site": "site:p0.org:site",
                 "asset": "asset:p0.org:x:p0.org:site", "signature": "AAAA"},
        "at": "2026-12-06T00:00:00+00:00",
    }  # fmt: skip
    return json.dumps({"changes": [change], "version": 1}).encode()


def _payloads() -> dict[str, tuple[bytes, str]]:
    """Malformed answers (body, content type) by name."""
    deep = 100_000
    valid = _valid_page()
    payloads: dict[str, tuple[bytes, str]] = {
        "deep nesting": (
            b'{"changes": ' + b"[" * deep + b"]" * deep + b', "version": 1}',
            JSON,
        ),
        "5000-digit number": (b'{"changes": [], "version": 1' + b"0" * 5000 + b"}", JSON),
        "number beyond 64 bits": (json.dumps({"changes": [], "version": 2**70}).encode(), JSON),
        "NaN": (b'{"changes": [], "version": NaN}', JSON),
        "invalid UTF-8": (b'{"changes": [], "version": 1, "x": "\xff\xfe"}', JSON),
        "NUL and lone surrogates": (
            json.dumps({"changes": [{"version": 1, "action": "added",
                        "rule_id": "\u0000\ud800", "body": {"x": "\u0000", "y": "\ud800"},
                        "at": "x"}], "version": 1}).encode(),
            JSON,
        ),
        "40 MB": (b" " * (40 * 1024 * 1024) + b'{"changes": [], "version": 0}', JSON),
        "a list": (b"[]", JSON),
        "a string": (b'"changes"', JSON),
        "changes not a list": (b'{"changes": {}, "version": 1}', JSON),
        "changes of numbers": (b'{"changes": [1, 2, 3], "version": 3}', JSON),
        "change beyond the page": (valid.replace(b'"version": 1}', b'"version": 0}'), JSON),
        "a megabyte rule id": (
            valid.replace(b'"rule_id": "' + b"0" * 64, b'"rule_id": "' + b"a" * 1_000_000),
            JSON,
        ),
        "HTML": (b"<html><body>hello</body></html>", "text/html"),
        "empty": (b"", JSON),
    }  # fmt: skip
    rng = random.Random(SEED)
    for number in range(12):
        data = bytearray(valid)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        payloads[f"mutation {number}"] = (bytes(data), JSON)
    for number in range(4):
        payloads[f"truncation {number}"] = (
            valid[: rng.randrange(1, len(valid))],
            JSON,
        )
    for number in range(4):
        payloads[f"random bytes {number}"] = (
            rng.randbytes(rng.randint(1, 4096)),
            JSON,
        )
    return payloads


class Hostile:
    """What the hostile peer answers next."""

    def __init__(self) -> None:
        self.body = b""
        self.media_type = JSON

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/external/rules/changes")
        def changes() -> Response:
            return Response(self.body, media_type=self.media_type)

        return app


@pytest.fixture
def hostile_net(tmp_path: Path) -> Iterator[tuple[Network, Hostile]]:
    urls = sqlite_urls(tmp_path)
    with network(tmp_path, urls, ("p0", "p1", "p2")) as net:
        net.replicate_all()
        bad = net.sites["p0"]
        bad.stop()
        hostile = Hostile()
        with serving(
            hostile.app(),
            certfile=bad.identity.cert,
            keyfile=bad.identity.key,
            client_ca_files=[net.certs.ca],
            port=bad.port,
        ):
            yield net, hostile


def _rules_at(site: SiteServer) -> set[str]:
    with site.client(site.party.user) as user:
        return {entry["rule_id"] for entry in user.list_rules(include_replicated=True)}


def test_a_hostile_peer_never_stops_the_honest_ones(
    hostile_net: tuple[Network, Hostile],
) -> None:
    net, hostile = hostile_net
    receiver, honest, bad = net.sites["p1"], net.sites["p2"], net.sites["p0"]
    failures = []
    for number, (name, (body, media_type)) in enumerate(_payloads().items()):
        hostile.body, hostile.media_type = body, media_type
        rule = honest.party.sign(may_access(receiver.id, f"asset:p2.org:data{number}:p2.org:site"))
        with honest.admin() as admin:
            admin.add_rule(rule)
        status = receiver.replicate()  # 200, whatever p0 answered
        sources = {s["source"]: s for s in status["replication"]}
        if rule.rule_id not in _rules_at(receiver):
            failures.append(f"{name}: p2's rule did not arrive")
        if sources[honest.id]["last_error"] is not None:
            failures.append(f"{name}: p2's replication failed: {sources[honest.id]['last_error']}")
        refused = sources[bad.id]["last_error"] is not None or sources[bad.id]["rejected"] > 0
        if not refused and sources[bad.id]["next_attempt"] is None:
            failures.append(f"{name}: p0's answer was taken without an error or a rejection")
    assert failures == []
    with receiver.client(receiver.party.user) as user:
        final = {s["source"]: s for s in user.status()["replication"]}
    assert final[bad.id]["failures"] >= 3
    assert final[bad.id]["next_attempt"] is not None  # backing off


def test_backoff_grows_and_is_bounded() -> None:
    assert [backoff_seconds(n) for n in range(6)] == [0, 0, 0, 1, 2, 4]
    assert backoff_seconds(100) == 300
