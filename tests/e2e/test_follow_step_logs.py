"""A running step's log followed as it is written, over mutual TLS from real sites, with
real step containers (reference: Execution, "Step logs")."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from tests.support.browser import Browser, chromium
from tests.support.db import sqlite_urls
from tests.support.jobs import Scenario, compute_to_data
from tests.support.sites import Network, network

from mahiru.cli.main import cli
from mahiru.client.jobs import JobsClient
from mahiru.errors import NotFound, Unavailable
from mahiru.model.jobs import JobState
from mahiru.runtime import DockerRuntime, ImageConfig
from mahiru.runtime.assets import COMPUTE_BASE_IMAGE, INPUT_ASSET, OUTPUT_BASE_ASSET

pytestmark = pytest.mark.e2e

WAIT = 120.0
LINES = [f"line {number}" for number in range(1, 9)]
#: Prints a line every half second (four seconds in all), then writes its output.
TALKER = """
import time
from pathlib import Path

for number in range(1, 9):
    print(f"line {number}", flush=True)
    time.sleep(0.5)
Path("/mahiru/outputs/output0/data.json").write_text("[]")
"""


@pytest.fixture(scope="module")
def talker(
    container_runtime: DockerRuntime, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """The archive of a compute image that runs TALKER."""
    folder = tmp_path_factory.mktemp("talker")
    (folder / "program").mkdir()
    (folder / "program" / "talk.py").write_text(TALKER)
    image = container_runtime.build_image(
        COMPUTE_BASE_IMAGE,
        {"/opt/talk": folder / "program"},
        config=ImageConfig(cmd=("python3", "-u", "/opt/talk/talk.py")),
    )
    archive = folder / "talker.tar"
    try:
        container_runtime.save_image(image, archive)
        yield archive
    finally:
        container_runtime.remove_image(image)


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A registry and the sites of party1, party2 and party3 (which no rule mentions)."""
    root = tmp_path_factory.mktemp("follow")
    with network(root, sqlite_urls(root), ("party1", "party2", "party3")) as running:
        running.replicate_all()
        yield running


@pytest.fixture(scope="module")
def scenario(net: Network, scenario_archives: dict[str, Path], talker: Path) -> Scenario:
    """Compute-to-data with the talker as its compute asset, twice (as `talker` and
    `chatter`: a job run again reuses its results instead of running)."""
    return compute_to_data(
        net,
        scenario_archives[INPUT_ASSET],
        scenario_archives[OUTPUT_BASE_ASSET],
        {"talker": talker, "chatter": talker},
    )


def _user(scenario: Scenario) -> JobsClient:
    return JobsClient(scenario.site1.internal_url, scenario.site1.party.user, timeout=60)


def _follow(client: JobsClient, job_id: str) -> list[tuple[float, str]]:
    """The followed log's lines, each with the time it arrived."""
    arrived: list[tuple[float, str]] = []
    pending = ""
    for text in client.follow_log(job_id, "compute"):
        pending += text
        *lines, pending = pending.split("\n")
        arrived += [(time.monotonic(), line) for line in lines]
    assert pending == ""
    return arrived


@pytest.mark.parametrize("where", ["site1", "site2"])
def test_a_running_step_s_log_arrives_as_it_is_written_and_ends_with_the_step(
    scenario: Scenario, where: str
) -> None:
    """Followed from the submitter's site, at that site (data there) or at the data's site:
    every line arrives, in order, the first ones seconds before the last (as written, not
    at the end), and the stream ends when the step does."""
    data = scenario.output_base if where == "site1" else scenario.input
    with _user(scenario) as client:
        submitted = client.submit(scenario.job("talker", data=data))
        job_id = submitted.status.job_id
        assert submitted.status.plan is not None
        (site,) = set(submitted.status.plan.assignments.values())
        assert str(site) == getattr(scenario, where).id
        arrived = _follow(client, job_id)
        ended = time.monotonic()
    texts = [line for _, line in arrived]
    log = [line for line in texts if not line.startswith("[mahiru]")]
    assert log == LINES
    assert texts[-1] in ("[mahiru] step compute is storing", "[mahiru] step compute is succeeded")
    first = next(at for at, line in arrived if line == LINES[0])
    last = next(at for at, line in arrived if line == LINES[-1])
    assert last - first > 2.0  # written over four seconds; seen as written
    assert ended - last < 5.0  # and ended with it, not at a deadline
    with _user(scenario) as client:
        done = client.wait(job_id, WAIT)
    assert done.status.state is JobState.SUCCEEDED
    (step,) = done.steps
    assert step.log_tail is not None and step.log_tail.splitlines() == LINES  # kept too


def test_mahiru_jobs_logs_follows_a_step_and_shows_the_kept_log_after(
    scenario: Scenario,
) -> None:
    """`mahiru jobs logs JOB --follow` prints every line and returns when the step ends;
    afterwards `mahiru jobs logs JOB` shows the succeeded step's kept log."""
    identity = scenario.site1.party.user
    env = {
        "MAHIRU_SITE_URL": scenario.site1.internal_url,
        "MAHIRU_CERT": str(identity.cert),
        "MAHIRU_KEY": str(identity.key),
        "MAHIRU_CA": str(identity.ca),
    }
    with _user(scenario) as client:
        job_id = client.submit(scenario.job("chatter")).status.job_id
    runner = CliRunner()
    followed = runner.invoke(cli, ["jobs", "logs", job_id, "--follow"], env=env)
    assert followed.exit_code == 0, followed.output
    lines = followed.output.splitlines()
    assert lines[0] == f"== compute at {scenario.site2.id}"
    assert [line for line in lines if line.startswith("line ")] == LINES
    with _user(scenario) as client:
        client.wait(job_id, WAIT)
    kept = runner.invoke(cli, ["jobs", "logs", job_id], env=env)
    assert kept.exit_code == 0, kept.output
    assert kept.output.splitlines() == [f"== compute at {scenario.site2.id}: succeeded", *LINES]


def test_no_log_for_whoever_does_not_see_the_job(net: Network, scenario: Scenario) -> None:
    """Another plain user of party1 gets 404, as for no such job; another party's user is
    not even let in (its certificate is refused at the handshake)."""
    with _user(scenario) as client:
        job_id = client.submit(scenario.job("talker")).status.job_id
        client.wait(job_id, WAIT)
        # Its submitter is answered (the step may have reused an earlier run's results).
        assert "[mahiru] step compute is " in "".join(client.follow_log(job_id, "compute"))
    mallory = net.certs.user(net.parties["party1"], "mallory")
    other = JobsClient(scenario.site1.internal_url, mallory, timeout=60)
    with other, pytest.raises(NotFound, match=job_id):
        "".join(other.follow_log(job_id, "compute"))
    outsider = JobsClient(scenario.site1.internal_url, net.sites["party3"].party.user)
    with outsider, pytest.raises(Unavailable, match="disconnected"):
        "".join(outsider.follow_log(job_id, "compute"))


def test_the_job_page_links_each_step_to_its_log_as_plain_text(
    scenario: Scenario, tmp_path: Path
) -> None:
    """In Chromium, signed in with the user's certificate: the job page links the step to
    its log, and the link shows the log as text (here, of a step that has ended)."""
    if chromium() is None:
        pytest.fail("chromium is missing: `make test` installs it (scripts/ensure-chromium.sh)")
    site = scenario.site1
    with _user(scenario) as client:
        job_id = client.submit(scenario.job("talker")).status.job_id
        client.wait(job_id, WAIT)
    browser = Browser(tmp_path, site.party.user, site.internal_url)
    page = browser.dom(f"{site.internal_url}/ui/jobs/{job_id}")
    link = f"/internal/jobs/{job_id}/steps/compute/log"
    assert f'<a href="{link}">compute</a>' in page
    shown = html.unescape(browser.dom(f"{site.internal_url}/jobs/{job_id}/steps/compute/log"))
    assert f"[mahiru] step compute runs at {scenario.site2.id}" in shown
    assert "[mahiru] step compute is " in shown
