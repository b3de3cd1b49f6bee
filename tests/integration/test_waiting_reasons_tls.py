"""A job whose step cannot be handed over says why, with real sites on loopback: site2 is
stopped, and site1's user sees the hand-over's reason, since when, and a growing count of
tries, in `mahiru jobs submit --wait`'s progress lines, `mahiru jobs status` (text and
JSON) and the dashboard's job page, which links to site2's entry on the Status page."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.sites import Network, SiteServer, may_access, network
from tests.support.waiting import wait_until

from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId

pytestmark = pytest.mark.integration

MAHIRU = str(Path(sys.executable).parent / "mahiru")
DATA = "asset:p2.org:data:p2.org:site"
SCRIPT = "asset:p1.org:script:p1.org:site"
#: How the client says that nothing listens at the peer's address.
REFUSED = re.compile(r"connection refused|nothing answers", re.IGNORECASE)


@pytest.fixture
def stopped(tmp_path: Path) -> Iterator[Network]:
    """p1's and p2's sites, with rules that put a compute-to-data step at site2, replicated;
    then site2 stopped."""
    with network(tmp_path, sqlite_urls(tmp_path), ("p1", "p2")) as net:
        net.replicate_all()
        site1, site2 = net.sites["p1"], net.sites["p2"]
        with site2.admin() as admin:
            admin.upload_asset(Asset(AssetId.parse(DATA), AssetKind.DATA), write_image(
                tmp_path / "d.tar"))  # fmt: skip
            for rule in (
                may_access(site2.id, DATA),
                {"type": "ResultOfDataIn", "data": DATA, "compute": "*", "output": "*",
                 "collection": "asset_collection:p2.org:results"},
                may_access(site1.id, "asset_collection:p2.org:results"),
                may_access(site2.id, "asset_collection:p2.org:results"),
                {"type": "MayUse", "party": site1.party.id,
                 "asset": "asset_collection:p2.org:results", "conditions": "the tests"},
            ):  # fmt: skip
                admin.add_rule(site2.party.sign(rule))
        with site1.admin() as admin:
            admin.upload_asset(Asset(AssetId.parse(SCRIPT), AssetKind.COMPUTE), write_image(
                tmp_path / "c.tar"))  # fmt: skip
            for rule in (
                may_access(site2.id, SCRIPT),
                {"type": "ResultOfComputeIn", "data": "*", "compute": SCRIPT, "output": "*",
                 "collection": "asset_collection:p1.org:results"},
                may_access(site1.id, "asset_collection:p1.org:results"),
                may_access(site2.id, "asset_collection:p1.org:results"),
                {"type": "MayUse", "party": site1.party.id,
                 "asset": "asset_collection:p1.org:results", "conditions": "own"},
            ):  # fmt: skip
                admin.add_rule(site1.party.sign(rule))
        net.replicate_all()
        site2.stop()
        yield net


def _job_file(tmp_path: Path, submitter: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "submitter": submitter,
                "workflow": {
                    "inputs": ["input"],
                    "outputs": {"result": "compute.output0"},
                    "steps": [
                        {"name": "compute", "compute_asset": SCRIPT,
                         "inputs": {"input0": "input"}, "outputs": {"output0": None}}
                    ],
                },
                "inputs": {"input": DATA},
            }
        )
    )  # fmt: skip
    return path


def _mahiru(site: SiteServer, *args: str) -> subprocess.CompletedProcess[str]:
    """`mahiru ARGS` as the plain user of the site's party."""
    identity = site.party.user
    env = {**os.environ, "MAHIRU_SITE_URL": site.internal_url, "MAHIRU_CA": str(identity.ca)}
    command = [MAHIRU, *args, "--cert", str(identity.cert), "--key", str(identity.key)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def _wait_of(site: SiteServer, job_id: str) -> dict[str, Any]:
    done = _mahiru(site, "jobs", "status", job_id, "--json")
    assert done.returncode == 0, done.stderr
    (step,) = json.loads(done.stdout)["steps"]
    assert step["state"] == "waiting"
    wait: dict[str, Any] = step["wait"]
    return wait


def test_a_job_waiting_on_a_stopped_site_says_why_since_when_and_how_often(
    stopped: Network, tmp_path: Path
) -> None:
    """Each view names the hand-over to site2 and the refused connection; the count of tries
    grows while `since` stays."""
    site1, site2 = stopped.sites["p1"], stopped.sites["p2"]
    submitted = _mahiru(
        site1, "jobs", "submit", str(_job_file(tmp_path, site1.party.id)), "--wait",
        "--timeout", "3",
    )  # fmt: skip
    assert submitted.returncode == 5, submitted.stderr  # timed out: the job goes on
    progress = [line for line in submitted.stderr.splitlines() if line.startswith("planned: ")]
    assert progress, submitted.stderr
    assert f"compute waiting (cannot hand over steps to {site2.id}: " in progress[-1]
    assert REFUSED.search(progress[-1]), progress[-1]
    assert re.search(r"\(since [0-9T:+-]+, \d+ tr(y|ies)\)\)$", progress[-1]), progress[-1]
    job_id = re.findall(r"\b[0-9a-f]{32}\b", submitted.stderr)[0]

    first = _wait_of(site1, job_id)
    assert first["reason"].startswith(f"cannot hand over steps to {site2.id}: ")
    assert REFUSED.search(first["reason"]), first["reason"]
    assert first["site"] == site2.id
    datetime.fromisoformat(first["since"])
    later = wait_until(
        lambda: (w := _wait_of(site1, job_id))["attempts"] > first["attempts"] and w,
        30,
        "another try of the hand-over",
    )
    assert (later["reason"], later["since"]) == (first["reason"], first["since"])

    text = _mahiru(site1, "jobs", "status", job_id)
    assert text.returncode == 0, text.stderr
    assert f"waits: cannot hand over steps to {site2.id}: " in text.stdout
    assert re.search(r"\(since \S+, \d+ tries\)", text.stdout), text.stdout

    identity = site1.party.user
    with httpx.Client(verify=identity.ssl_context(), timeout=30) as browser:
        page = browser.get(f"{site1.internal_url}/ui/jobs/{job_id}")
        assert page.status_code == 200
        shown = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page.text)))
        assert f"waits: cannot hand over steps to {site2.id}" in shown
        link = f'href="/internal/ui/status#source-{site2.id}"'
        assert link in page.text, page.text
        status = browser.get(f"{site1.internal_url}/ui/status")
        assert f'id="source-{site2.id}"' in status.text
