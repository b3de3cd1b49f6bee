"""Prometheus metrics: served to admins and configured scrapers only, with every metric named."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.db import sqlite_urls
from tests.support.metrics import value
from tests.support.sites import Network, network

from mahiru.client.registry import RegistryClient
from mahiru.errors import PermissionDenied
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SITE_METRICS = (
    "mahiru_http_requests_total",
    "mahiru_http_request_duration_seconds_bucket",
    "mahiru_image_bytes_sent_total",
    "mahiru_image_bytes_received_total",
    "mahiru_policy_decisions_total",
    "mahiru_jobs",
    "mahiru_steps",
    "mahiru_step_duration_seconds_count",
    "mahiru_replication_version",
    "mahiru_replication_seconds_since_success",
    "mahiru_replication_failures",
    "mahiru_rules_rejected",
    "mahiru_reviews_pending",
    "mahiru_review_latency_seconds_count",
    "mahiru_background_failures_total",
)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    with network(tmp_path, sqlite_urls(tmp_path)) as running:
        running.replicate_all()
        yield running


def test_an_admin_reads_every_site_metric_and_a_plain_user_is_refused(net: Network) -> None:
    """Each metric of the site is exposed to its admin; a user without the admin role gets 403."""
    site = net.sites["p1"]
    with site.admin() as admin:
        admin.status()
        text = admin.metrics()
    for name in SITE_METRICS:
        assert re.search(rf"^(# TYPE )?{name}", text, re.M), name
    assert value(text, "mahiru_replication_version", source="registry") >= 1
    with site.client(site.party.user) as user, pytest.raises(PermissionDenied) as refused:
        user.metrics()
    assert "metrics_scrapers" in refused.value.message


def test_requests_are_counted_by_route_template_and_status(net: Network) -> None:
    """Two status calls and a refused one show up under their route, by status."""
    site = net.sites["p1"]
    with site.admin() as admin:
        before = admin.metrics()
        admin.status()
        admin.status()
        with site.client(site.party.user) as user, pytest.raises(PermissionDenied):
            user.metrics()
        after = admin.metrics()
    labels = {"route": "/internal/status", "method": "GET", "status": "200"}
    assert value(after, "mahiru_http_requests_total", **labels) == (
        value(before, "mahiru_http_requests_total", **labels) + 2
    )
    refused = {"route": "/internal/metrics", "method": "GET", "status": "403"}
    assert value(after, "mahiru_http_requests_total", **refused) == 1


def test_a_user_named_as_scraper_reads_the_metrics(net: Network) -> None:
    """metrics_scrapers admits a non-admin user by name (a monitoring certificate)."""
    site = net.sites["p1"]
    site.stop()
    site.config = site.config.model_copy(update={"metrics_scrapers": ["user"]})
    site.start()
    with site.client(site.party.user) as user:
        assert "mahiru_jobs" in user.metrics()


def test_the_registry_serves_its_metrics_to_configured_identities_only(net: Network) -> None:
    """A party client not named in metrics_scrapers gets 403; a named one the metrics."""
    party = net.parties["p1"]
    with httpx.Client(verify=party.client.ssl_context(), timeout=30) as client:
        refused = client.get(f"{net.registry.url}/metrics")
    assert refused.status_code == 403
    net.registry.stop()
    net.registry.config = net.registry.config.model_copy(update={"metrics_scrapers": [party.id]})
    net.registry.start()
    with RegistryClient(net.registry.url, party.client, retries=0) as registry:
        registry.version()
    with httpx.Client(verify=party.client.ssl_context(), timeout=30) as client:
        answer = client.get(f"{net.registry.url}/metrics")
    assert answer.status_code == 200, answer.text
    assert (
        value(
            answer.text, "mahiru_http_requests_total", route="/version", method="GET", status="200"
        )
        >= 1
    )


def test_the_documented_metrics_are_the_ones_served(net: Network) -> None:
    """docs/metrics.md lists exactly the metrics a site serves."""
    documented = set(
        re.findall(r"^\| `(mahiru_\w+)` \|", (ROOT / "docs" / "metrics.md").read_text(), re.M)
    )
    with net.sites["p1"].admin() as admin:
        served = set(re.findall(r"^# TYPE (mahiru_\w+) ", admin.metrics(), re.M))
    normalised = {name.removesuffix("_total") for name in documented}
    assert normalised == {name.removesuffix("_total") for name in served}


def test_a_metrics_refusal_names_none_of_the_allowed_scrapers(net: Network) -> None:
    """The 403 of a site's and of the registry's metrics lists nobody who may scrape."""
    site, other = net.sites["p1"], net.parties["p2"]
    scrapers = ["monitor-7f3a", "user-admin-9c"]
    site.stop()
    site.config = site.config.model_copy(update={"metrics_scrapers": scrapers})
    site.start()
    with httpx.Client(verify=site.party.user.ssl_context(), timeout=30) as client:
        site_refusal = client.get(f"{site.internal_url}/metrics")
    net.registry.stop()
    net.registry.config = net.registry.config.model_copy(
        update={"metrics_scrapers": [*scrapers, other.id]}
    )
    net.registry.start()
    with httpx.Client(verify=net.parties["p1"].client.ssl_context(), timeout=30) as client:
        registry_refusal = client.get(f"{net.registry.url}/metrics")
    for refused in (site_refusal, registry_refusal):
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["type"] == "PermissionDenied" and error["details"] is None
        for allowed in (*scrapers, other.id):
            assert allowed not in refused.text


def test_the_status_counts_the_stored_assets(net: Network) -> None:
    """The status's asset count is the number of assets stored, as they are added and
    deleted."""
    site = net.sites["p1"]
    with site.admin() as admin:
        assert admin.status()["assets"] == 0
        ids = [AssetId.parse(f"asset:p1.org:counted{n}:p1.org:site") for n in range(3)]
        for asset_id in ids:
            admin.create_asset(Asset(asset_id, AssetKind.DATA))
        assert admin.status()["assets"] == 3
        admin.delete_asset(ids[0])
        assert admin.status()["assets"] == 2
