"""The site's web dashboard in a real headless Chromium, signed in with a user certificate,
after a real job ran (compute-to-data, in containers)."""

from __future__ import annotations

import html
import io
import json
import os
import re
import shutil
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.browser import Browser, chromium
from tests.support.db import sqlite_urls
from tests.support.jobs import Scenario, compute_to_data
from tests.support.sites import network

from mahiru.client.jobs import JobsClient
from mahiru.model.jobs import JobState
from mahiru.runtime import DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
#: The screenshot in the documentation, made by this test.
DOCS_SCREENSHOT = ROOT / "docs" / "dashboard-job.png"


@pytest.fixture(scope="module")
def scenario(
    tmp_path_factory: pytest.TempPathFactory,
    container_runtime: DockerRuntime,
    scenario_archives: dict[str, Path],
    probe_archive: Callable[[str], Path],
) -> Iterator[tuple[Scenario, str]]:
    """Two sites with the compute-to-data assets, and the id of a job that succeeded."""
    if chromium() is None:
        pytest.fail("chromium is missing: `make test` installs it (scripts/ensure-chromium.sh)")
    root = tmp_path_factory.mktemp("dashboard")
    hang = probe_archive("hang")
    names = ("party1", "party2")
    with network(root, sqlite_urls(root), names) as net:
        net.replicate_all()
        scenario = compute_to_data(
            net,
            scenario_archives[INPUT_ASSET],
            scenario_archives[OUTPUT_BASE_ASSET],
            {"minmax": scenario_archives[MINMAX_ASSET], "hang": hang},
        )
        site1 = scenario.site1
        with JobsClient(site1.internal_url, site1.party.user, timeout=60) as client:
            view = client.wait(client.submit(scenario.job()).status.job_id, 120)
        assert view.status.state is JobState.SUCCEEDED, view.to_json()
        yield scenario, view.status.job_id


@pytest.fixture(scope="module")
def browser(scenario: tuple[Scenario, str], tmp_path_factory: pytest.TempPathFactory) -> Browser:
    site = scenario[0].site1
    return Browser(tmp_path_factory.mktemp("browser"), site.party.user, site.internal_url)


def _ui(scenario: tuple[Scenario, str], path: str) -> str:
    return f"{scenario[0].site1.internal_url}/ui{path}"


def _text(dom: str) -> str:
    """The page's text, tags removed, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", dom)))


def test_the_jobs_page_lists_the_job_with_its_state(
    scenario: tuple[Scenario, str], browser: Browser
) -> None:
    _, job_id = scenario
    dom = browser.dom(_ui(scenario, "/jobs"))
    assert f'href="/internal/ui/jobs/{job_id}"' in dom
    text = _text(dom)
    assert "1 job you submitted at this site" in text and "succeeded" in text
    assert "user:user@party:party1.org:party1" in text  # who is signed in
    assert '<td class="user">user@party:party1.org:party1</td>' in dom  # who submitted it


def test_the_job_page_shows_plan_graph_timeline_and_result(
    scenario: tuple[Scenario, str], browser: Browser, tmp_path: Path
) -> None:
    setup, job_id = scenario
    url = _ui(scenario, f"/jobs/{job_id}")
    dom = browser.dom(url)
    text = _text(dom)
    assert f"Job {job_id}" in text
    plan_row = re.search(r'<tr class="step-row" data-step="compute">(.*?)</tr>', dom, re.S)
    assert plan_row and setup.site2.id in plan_row.group(1) and "succeeded" in plan_row.group(1)
    assert re.search(r'<g class="step" data-step="compute" data-state="succeeded">', dom)
    assert f"{setup.site2.id}</text>" in dom  # the graph labels the step with its site
    assert re.search(r'<rect class="bar" data-step="compute"', dom)  # the timeline's bar
    link = f'href="/internal/ui/jobs/{job_id}/outputs/result/files.tar.gz"'
    assert link in dom and "Cancel job" not in text  # finished: nothing to cancel
    screenshot = browser.screenshot(url, tmp_path / "job.png")
    assert screenshot.read_bytes().startswith(b"\x89PNG")
    if os.environ.get("MAHIRU_UPDATE_SCREENSHOTS"):  # the picture in docs/dashboard.md
        shutil.copyfile(screenshot, DOCS_SCREENSHOT)


def test_the_result_link_downloads_the_output_with_the_user_certificate(
    scenario: tuple[Scenario, str],
) -> None:
    setup, job_id = scenario
    identity = setup.site1.party.user
    with httpx.Client(verify=identity.ssl_context(), timeout=30) as raw:
        response = raw.get(f"{setup.site1.internal_url}/jobs/{job_id}/outputs/result/image")
    assert response.status_code == 200 and len(response.content) > 1000


def test_the_job_page_s_download_gives_the_output_s_files_as_a_tar_gz(
    scenario: tuple[Scenario, str],
) -> None:
    """The dashboard's download link gives the files the job's container wrote under /data
    (read out of the real `docker save` archive), packed under `<job>-<output>/`."""
    setup, job_id = scenario
    identity = setup.site1.party.user
    with httpx.Client(verify=identity.ssl_context(), timeout=60) as raw:
        response = raw.get(_ui(scenario, f"/jobs/{job_id}/outputs/result/files.tar.gz"))
    assert response.status_code == 200, response.text
    folder = f"{job_id[:12]}-result"
    assert response.headers["content-disposition"] == f'attachment; filename="{folder}.tar.gz"'
    with tarfile.open(fileobj=io.BytesIO(response.content), mode="r:gz") as packed:
        assert packed.getnames() == [f"{folder}/data.json"]
        data = packed.extractfile(f"{folder}/data.json")
        assert data is not None and json.loads(data.read()) == [1, 34]


def test_the_why_page_explains_a_decision(scenario: tuple[Scenario, str], browser: Browser) -> None:
    setup, job_id = scenario
    allowed = browser.dom(
        _ui(scenario, f"/why?job={job_id}&item=input&site={setup.site2.id}&party=")
    )
    verdict = re.search(r'<p id="verdict" class="allowed">(.*?)</p>', allowed, re.S)
    assert verdict and f"{setup.site2.id} may access" in html.unescape(verdict.group(1))
    assert "MayAccess" in _text(allowed)
    denied = browser.dom(
        _ui(scenario, f"/why?job={job_id}&item=input&site={setup.site1.id}&party=")
    )
    assert 'id="verdict" class="denied"' in denied
    assert f"no MayAccess for {setup.input}" in _text(denied)


def test_the_assets_rules_audit_and_status_pages(
    scenario: tuple[Scenario, str], browser: Browser
) -> None:
    setup, job_id = scenario
    assets = _text(browser.dom(_ui(scenario, "/assets")))
    assert setup.computes["minmax"] in assets and setup.output_base in assets
    assert setup.input in assets  # known from the rules, stored at site2
    rules = _text(browser.dom(_ui(scenario, "/rules")))
    assert "MayAccess" in rules and setup.site2.id in rules  # replicated from site2
    # The result leaves to the party when the user downloads it: done here, so this
    # test does not depend on another having run first.
    test_the_result_link_downloads_the_output_with_the_user_certificate(scenario)
    audit = browser.dom(_ui(scenario, f"/audit?job={job_id}"))
    assert 'id="chain" class="intact"' in audit
    audit_text = _text(audit)
    for expected in ("plan job", "release to party", "succeeded"):
        assert expected in audit_text, expected
    assert '<td class="user">user@party:party1.org:party1</td>' in audit  # who submitted it
    status = _text(browser.dom(_ui(scenario, "/status")))
    assert "registry" in status and setup.site2.id in status
    assert "reachable" in status


def test_a_job_is_cancelled_from_its_page_only_with_the_page_s_token(
    scenario: tuple[Scenario, str], browser: Browser
) -> None:
    """The cancel form works for its user; a forged token, or the user's token in another
    user's hands, is refused."""
    setup, finished = scenario
    site = setup.site1
    with JobsClient(site.internal_url, site.party.user, timeout=60) as client:
        job_id = client.submit(setup.job("hang")).status.job_id
    dom = browser.dom(_ui(scenario, f"/jobs/{job_id}"))
    assert "Cancel job" in _text(dom)
    token = re.search(r'name="token" value="([0-9a-f]+)"', dom)
    assert token is not None
    url = f"{site.internal_url}/ui/jobs/{job_id}/cancel"
    body = f"token={token.group(1)}".encode()
    with httpx.Client(verify=site.party.admin.ssl_context(), timeout=30) as other_user:
        refused = other_user.post(url, content=body)  # the admin did not get that token
        assert refused.status_code == 403
        assert "reload the job's page" in refused.json()["error"]["message"]
    with httpx.Client(verify=site.party.user.ssl_context(), timeout=30) as owner:
        assert owner.post(url, content=b"token=deadbeef").status_code == 403
        done = owner.post(url, content=body)
        assert done.status_code == 303 and done.headers["location"].endswith(job_id)
    with JobsClient(site.internal_url, site.party.user, timeout=60) as client:
        view = client.wait(job_id, 60)
    assert view.status.state is JobState.CANCELLED
    assert "cancelled by user:user@" in (view.status.reason or "")
    assert 'name="token"' not in browser.dom(_ui(scenario, f"/jobs/{finished}"))
