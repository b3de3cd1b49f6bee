"""Logs and records that say a thing once, with real sites on loopback: replication polls
answered well are logged at debug (and summarised once an hour), and an asset a peer reads
the record and then the image of is one "release to site" decision in the audit log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.sites import Network, SiteServer, may_access, network

from mahiru.api.poll_log import PollSummary
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId

pytestmark = pytest.mark.integration

POLL = "/external/rules/changes"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """p1's and p2's sites, registered and replicated."""
    root = tmp_path_factory.mktemp("quiet")
    with network(root, sqlite_urls(root), ("p1", "p2")) as n:
        n.replicate_all()
        yield n


def _access(records: list[logging.LogRecord], path: str) -> list[logging.LogRecord]:
    return [
        r for r in records if r.name == "mahiru.access" and getattr(r, "path", "").endswith(path)
    ]


# --- replication polls ------------------------------------------------------------------------


def test_polls_answered_are_logged_at_debug_and_a_failed_one_at_info(
    net: Network, caplog: pytest.LogCaptureFixture
) -> None:
    """Three replication rounds of site2 (each asks the registry and site1): every answer
    is a debug line at site1 and the registry; a poll site1 refuses is an info line."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    with caplog.at_level(logging.DEBUG, logger="mahiru.access"):
        for _ in range(3):
            site2.replicate()
        with httpx.Client(verify=site2.identity.ssl_context(), timeout=30) as peer:
            refused = peer.get(f"{site1.external_url}/rules/changes", params={"since": -1})
    assert refused.status_code == 400
    polls = _access(caplog.records, POLL)
    answered = [r for r in polls if getattr(r, "status", 0) == 200]
    assert len(answered) >= 3 and all(r.levelno == logging.DEBUG for r in answered)
    registry = [r for r in _access(caplog.records, "/changes") if r not in polls]
    assert registry and all(r.levelno == logging.DEBUG for r in registry)
    (failed,) = [r for r in polls if getattr(r, "status", 0) == 400]
    assert failed.levelno == logging.INFO


def test_the_registrys_routine_reads_are_logged_at_debug_and_a_refused_one_at_info(
    net: Network, caplog: pytest.LogCaptureFixture
) -> None:
    """The registry's version, health and directory, answered, are debug lines; the same
    route refused (an unknown query parameter) is an info line."""
    site2 = net.sites["p2"]
    routes = ("/version", "/health", "/parties", "/sites")
    with (
        caplog.at_level(logging.DEBUG, logger="mahiru.access"),
        httpx.Client(verify=site2.identity.ssl_context(), timeout=30) as client,
    ):
        for route in routes:
            assert client.get(f"{net.registry.url}{route}").status_code == 200
        refused = client.get(f"{net.registry.url}/version", params={"x": "1"})
    assert refused.status_code == 400
    for route in routes:
        lines = _access(caplog.records, route)
        answered = [r for r in lines if getattr(r, "status", 0) == 200]
        assert answered and all(r.levelno == logging.DEBUG for r in answered), route
    (failed,) = [r for r in _access(caplog.records, "/version") if r.status == 400]
    assert failed.levelno == logging.INFO


@pytest.mark.parametrize(
    ("polls", "summaries"),
    [
        # (seconds after the start, caller) of each poll; the summaries written, in order
        ([(10, "a"), (20, "b"), (3590, "a")], []),
        ([(10, "a"), (20, "b"), (3600, "a")], [{"polls": 3, "callers": {"a": 2, "b": 1}}]),
        (
            [(3600, "a"), (3700, "a"), (7200, "b")],
            [{"polls": 1, "callers": {"a": 1}}, {"polls": 2, "callers": {"a": 1, "b": 1}}],
        ),
        ([(7200 * 3, "a")], [{"polls": 1, "callers": {"a": 1}}]),
    ],
)
def test_polls_are_summarised_at_most_once_an_hour(
    polls: list[tuple[float, str]], summaries: list[dict[str, Any]]
) -> None:
    """The first poll an hour or more after the last summary writes one, with the count
    per caller since then."""
    now = [0.0]
    summary = PollSummary(monotonic=lambda: now[0])
    written = []
    for at, caller in polls:
        now[0] = at
        said = summary.answered(caller)
        if said is not None:
            written.append({key: said[key] for key in ("polls", "callers")})
    assert written == summaries


# --- one release, one record ---------------------------------------------------------------


def _upload(site: SiteServer, name: str, reader: SiteServer, tmp_path: Path) -> AssetId:
    asset_id = AssetId.parse(f"asset:p1.org:{name}:p1.org:site")
    with site.admin() as admin:
        admin.upload_asset(Asset(asset_id, AssetKind.DATA), write_image(tmp_path / f"{name}.tar"))
        admin.add_rule(site.party.sign(may_access(reader.id, str(asset_id))))
    return asset_id


def _act(action: str, site1: SiteServer, site2: SiteServer, asset: AssetId, dest: Path) -> None:
    """What site2 does at site1: read the record, fetch the image, download (record and
    image, as the client does); or site1's rules change."""
    if action == "rules":
        with site1.admin() as admin:
            other = f"asset:p1.org:other-{dest.name}:p1.org:site"
            admin.add_rule(site1.party.sign(may_access(site2.id, other)))
        return
    with site1.peer(site2.identity) as peer:
        if action == "record":
            peer.get_asset(asset)
        elif action == "image":
            with peer.fetch_image(asset) as stream:
                for _ in stream.chunks:
                    pass
        else:
            peer.download_image(asset, dest / "image.tar")


@pytest.mark.parametrize(
    ("actions", "records"),
    [
        (["record", "image"], 1),
        (["download"], 1),
        (["image"], 1),
        (["record"], 1),
        (["record", "image", "image"], 2),
        (["record", "record", "image"], 2),
        (["record", "rules", "image"], 2),
        (["download", "download"], 2),
    ],
    ids=lambda value: "+".join(value) if isinstance(value, list) else str(value),
)
def test_each_release_to_a_peer_is_one_decision_record(
    net: Network, tmp_path: Path, actions: list[str], records: int
) -> None:
    """A record read and the image fetched right after it are one release: one "release to
    site" decision; an image fetched alone, or after the rules changed, is decided again."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    asset = _upload(site1, f"data-{'-'.join(actions)}", site2, tmp_path)
    for action in actions:
        _act(action, site1, site2, asset, tmp_path)
    with site1.admin() as admin:
        audit = admin.audit_records(limit=500, asset=str(asset))["records"]
    decisions = [
        r
        for r in audit
        if (r["kind"], r["action"], r["outcome"], r["actor"])
        == ("decision", "release to site", "allowed", site2.id)
    ]
    assert len(decisions) == records, decisions
