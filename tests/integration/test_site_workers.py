"""`mahiru serve site --workers 2`: two web workers and a loops process serve one site as one."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from tests.support.db import sqlite_urls
from tests.support.metrics import value
from tests.support.sites import (
    Network,
    SiteServer,
    client_as,
    may_access,
    network,
    registered_elsewhere,
)
from tests.support.waiting import wait_until

from mahiru.errors import MahiruError
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId
from mahiru.policy.signing import sign_revocation

pytestmark = pytest.mark.integration

MAHIRU = str(Path(sys.executable).parent / "mahiru")
#: Fresh connections per check: the kernel hands each to whichever worker accepts first.
CONNECTIONS = 8


class ServedSite:
    """p1's site as a `mahiru serve site --workers 2` process, and its log."""

    def __init__(self, net: Network, site: SiteServer, log: Path) -> None:
        self.net, self.site, self.log = net, site, log

    def started(self, role: str) -> list[int]:
        """The pids of the site's processes of `role` started so far, oldest first."""
        lines = [json.loads(line) for line in self.log.read_text().splitlines() if line]
        return [
            line["pid"]
            for line in lines
            if line.get("event") == "site process started" and line.get("role") == role
        ]

    def peer_reads(self, asset_id: AssetId) -> list[int]:
        """The status of p2's site reading the asset's record over CONNECTIONS connections."""
        url = f"{self.site.external_url}/assets/{asset_id}"
        statuses = []
        for _ in range(CONNECTIONS):
            with client_as(self.net.sites["p2"].identity, self.site.external_url) as peer:
                statuses.append(peer.get(url).status_code)
        return statuses

    def metrics(self) -> str:
        """The site's metrics, scraped over a fresh connection."""
        with self.site.admin() as admin:
            return admin.metrics()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[ServedSite]:
    """A registry and p2's site in-process, and p1's site as two workers and a loops process."""
    urls = sqlite_urls(tmp_path)
    with network(tmp_path, urls, names=("p2",)) as net:
        site = registered_elsewhere(net, tmp_path, urls)
        config_path = tmp_path / "site.yaml"
        config_path.write_text(
            yaml.safe_dump(site.config.model_dump(mode="json", exclude_none=True))
        )
        log_path = tmp_path / "site.log"
        env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [MAHIRU, "serve", "site", "--config", str(config_path), "--workers", "2"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
            try:
                _wait_until_synced(site, process, log_path)
                yield ServedSite(net, site, log_path)
            finally:
                process.send_signal(signal.SIGTERM)
                assert process.wait(timeout=60) == 0, log_path.read_text()[-3000:]


def _wait_until_synced(site: SiteServer, process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the site serves and its loops process has replicated the registry once."""
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        try:
            with site.client(site.party.user) as user:
                sources = {s["source"]: s for s in user.status()["replication"]}
            if sources.get("registry", {}).get("version", 0) > 0:
                return
        except MahiruError:
            pass
        time.sleep(0.2)


def _requests_by_process(metrics_dir: Path, route: str) -> dict[int, float]:
    """How many requests to `route` each process answered, read from its own metric files."""
    counts: dict[int, float] = {}
    for path in metrics_dir.glob("counter_*.db"):
        pid = int(re.fullmatch(r"counter_(\d+)\.db", path.name).group(1))  # type: ignore[union-attr]
        alone = metrics_dir.parent / f"alone-{pid}"
        alone.mkdir(exist_ok=True)
        shutil.copy(path, alone / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))
        text = generate_latest(registry).decode()
        counts[pid] = sum(
            value(text, "mahiru_http_requests_total", route=route, method="GET", status=status)
            for status in ("200", "403", "404")
        )
        shutil.rmtree(alone)
    return counts


def test_a_rule_revoked_through_one_worker_is_refused_by_every_worker(
    served: ServedSite,
) -> None:
    """Three times: a rule added lets every worker allow the read, and once its revocation
    returns, no worker allows it (whichever worker took the change, whichever decides)."""
    site, party = served.site, served.site.party
    for round_ in range(3):
        asset_id = AssetId.parse(f"asset:p1.org:w{round_}:p1.org:site")
        rule = party.sign(may_access("site:p2.org:site", str(asset_id)))
        with site.admin() as admin:
            admin.create_asset(Asset(asset_id, AssetKind.DATA))
            assert served.peer_reads(asset_id) == [403] * CONNECTIONS
            admin.add_rule(rule)
        assert served.peer_reads(asset_id) == [200] * CONNECTIONS
        with site.admin() as admin:
            admin.revoke(sign_revocation(rule.rule, party.main_key))
        assert served.peer_reads(asset_id) == [403] * CONNECTIONS
    served_by = _requests_by_process(
        site.config.data_dir / "run" / "metrics", "/external/assets/{asset_id}"
    )
    web = served.started("web")
    assert len(web) == 2
    assert all(served_by.get(pid, 0) > 0 for pid in web), served_by


def test_metrics_scraped_from_any_worker_count_every_workers_requests(
    served: ServedSite,
) -> None:
    """Every scrape counts the requests both workers answered, whichever worker serves it."""
    with served.site.client(served.site.party.user) as user:
        for _ in range(CONNECTIONS):
            user.status()
    scraped = [served.metrics() for _ in range(CONNECTIONS)]
    counts = {
        value(
            text, "mahiru_http_requests_total", route="/internal/status", method="GET", status="200"
        )
        for text in scraped
    }
    by_process = _requests_by_process(
        served.site.config.data_dir / "run" / "metrics", "/internal/status"
    )
    assert len(counts) == 1
    assert counts.pop() == sum(by_process.values()) >= CONNECTIONS + 1  # +1: the start-up wait


def test_a_web_worker_killed_loses_nothing(served: ServedSite) -> None:
    """A killed worker is replaced; what it stored and counted stays, the site keeps serving."""
    site = served.site
    rule = site.party.sign(may_access("site:p2.org:site", "asset:p1.org:kept:p1.org:site"))
    with site.admin() as admin:
        admin.add_rule(rule)
    before = value(
        served.metrics(),
        "mahiru_http_requests_total",
        route="/internal/rules",
        method="POST",
        status="200",
    )
    victim = served.started("web")[0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(served.started("web")) == 3, 30, "a web worker started again")
    for _ in range(CONNECTIONS):
        with site.admin() as admin:
            assert rule.rule_id in {entry["rule_id"] for entry in admin.list_rules()}
    after = value(
        served.metrics(),
        "mahiru_http_requests_total",
        route="/internal/rules",
        method="POST",
        status="200",
    )
    assert before == after == 1


def test_every_worker_reports_when_the_loops_process_last_replicated(served: ServedSite) -> None:
    """The web workers run no replication round of their own, yet each reports the last
    success of the loops process's rounds (from the replica), over fresh connections."""
    for _ in range(CONNECTIONS):
        with served.site.client(served.site.party.user) as user:
            sources = {s["source"]: s for s in user.status()["replication"]}
        assert sources["registry"]["last_success"] is not None, sources
