"""The dashboard's views of results, jobs and the audit log, on the compute-to-data scenario's
sites (real services and SQLite, in process; pages through the site's dashboard routes):
who may have a stored result (by its ResultOf rules), an output's files as a `.tar.gz`
under the egress gate's decision, a job page that reloads itself until the job ends, and
an audit page of short ids, zoned times and readable sizes."""

from __future__ import annotations

import html
import io
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from tests.support.fake_runtime import StepRun, archive_of
from tests.support.fake_scenario import Scenario, compute_to_data, minmax
from tests.support.fake_sites import FakeNetwork, FakeSite

from mahiru.api.auth import UserCaller
from mahiru.api.errors import install_error_handlers
from mahiru.api.routes.site import dashboard
from mahiru.api.routes.site.dashboard.pages import (
    ASSETS_PER_PAGE,
    JOB_REFRESH_SECONDS,
    DashboardPages,
)
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import JobId, ResultId
from mahiru.model.jobs import JobState
from mahiru.pki import Role, UserIdentity
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_revocation
from mahiru.storage import AuditQuery

pytestmark = pytest.mark.integration

ANSWER = b"42\n"


def constant(run: StepRun) -> int:
    """Whatever it reads, writes /data/answer.txt and /data/deep/dir/notes.md."""
    run.write("output0", "answer.txt", ANSWER)
    run.write("output0", "deep/dir/notes.md", b"# notes\n")
    return 0


class _User:
    """An authenticator taking every request as party1's plain user `user` (the one whose
    jobs the scenario submits), as the site's certificate check would."""

    def __init__(self, site: FakeSite) -> None:
        identity = UserIdentity("user", str(site.party.id), Role.USER)
        self.caller = UserCaller(identity, certificate=None)  # type: ignore[arg-type]

    def user(self, request: Request) -> UserCaller:
        return self.caller


def _app(site: FakeSite) -> FastAPI:
    """The site's dashboard routes over its running services, as the site app mounts them."""
    app = FastAPI()
    install_error_handlers(app)
    app.state.services, app.state.jobs = site.services, site.jobs
    app.state.authenticator = _User(site)
    app.state.clock = site.network.clock
    app.state.dashboard = DashboardPages(str(site.id), site.network.clock)
    for module in (dashboard.jobs, dashboard.downloads, dashboard.assets, dashboard.audit):
        app.include_router(module.router)
    return app


@dataclass
class World:
    """The scenario, and a browser's way into site1's dashboard as party1's user."""

    scenario: Scenario
    ui: TestClient

    @property
    def site1(self) -> FakeSite:
        return self.scenario.site1

    def run(self, compute: str = "minmax", *, data: str | None = None) -> JobId:
        """The scenario job with `compute` (on `data`), submitted by the user, driven to
        its end."""
        job = self.scenario.job(compute, data=data)
        job_id = self.site1.jobs.submissions.submit(job, self.site1.party.user()).job_id
        self.scenario.net.drive()
        assert self.site1.job(job_id).state is JobState.SUCCEEDED
        return job_id

    def result(self, job_id: JobId) -> ResultId:
        return self.site1.job(job_id).outputs()["result"]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    net = FakeNetwork(tmp_path / "net")
    net.start()
    try:
        scenario = compute_to_data(net, {"minmax": minmax, "constant": constant})
        with TestClient(_app(scenario.site1)) as ui:
            yield World(scenario, ui)
    finally:
        net.stop()


def _text(page: str) -> str:
    """A page's text, tags removed, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _row(page: str, table: str, cell: str) -> str:
    """The text of the row of table `table` holding `cell`."""
    body = re.search(rf'<table id="{table}">(.*?)</table>', page, re.S)
    assert body is not None, page
    rows = [r for r in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S) if cell in r]
    assert len(rows) == 1, rows
    return _text(rows[0])


# --- who may have a stored result ------------------------------------------------------------


def test_the_assets_page_says_who_may_have_a_stored_result_by_its_resultof_rules(
    world: World,
) -> None:
    """A stored result is listed with the sites and parties its ResultOf rules let have it
    (both sites may access party1's and party2's results collections; party1 may use
    them), not as a primary asset no rule names; an asset of party1's own is party1's to
    use. The page's answers write no audit record."""
    site1, site2 = world.site1, world.scenario.site2
    result = world.result(world.run())
    audited = len(site1.services.oversight.audit.page(AuditQuery(), 10_000).records)
    page = world.ui.get("/internal/ui/assets")
    assert page.status_code == 200, page.text
    row = _row(page.text, "assets", str(result))
    assert f"{site1.id}, {site2.id}" in row or f"{site2.id}, {site1.id}" in row
    assert str(site1.party.id) in row and str(site2.party.id) not in row
    base = _row(page.text, "assets", f"{world.scenario.output_base}<")
    assert str(site1.party.id) in base  # its own asset, its own to use
    assert len(site1.services.oversight.audit.page(AuditQuery(), 10_000).records) == audited


def test_a_result_whose_making_is_not_recorded_goes_to_nobody_on_the_assets_page(
    world: World,
) -> None:
    """Without provenance a result is released to nobody (the gate answers "not found"),
    and the page says so rather than guess."""
    digest = world.site1.blobs.write_bytes(archive_of({"x": b"1"}))
    orphan = ResultId("ab" * 32)
    world.site1.records.add(Asset(orphan, AssetKind.DATA, {}, digest.digest), size=digest.size)
    row = _row(world.ui.get("/internal/ui/assets").text, "assets", str(orphan))
    assert row.count("—") == 2, row


def test_the_assets_page_shows_a_page_at_a_time_stored_first_then_rule_named(
    world: World,
) -> None:
    """With more assets than fit a page, each page lists ASSETS_PER_PAGE of them, those
    stored here first, and links to the next; the last page ends the stored list and then
    lists what only the rules name. Every asset is on exactly one page."""
    digest = world.site1.blobs.write_bytes(archive_of({"x": b"1"}))
    extra = [ResultId(f"{n:064x}") for n in range(ASSETS_PER_PAGE + 5)]
    for result in extra:
        world.site1.records.add(Asset(result, AssetKind.DATA, {}, digest.digest), size=digest.size)
    stored = [str(record.asset.id) for record in world.site1.services.assets.list()]
    first = world.ui.get("/internal/ui/assets")
    assert first.status_code == 200, first.text
    assert first.text.count('<tr><td class="mono">') == ASSETS_PER_PAGE
    assert "page 1 of 2" in first.text and 'href="?page=2"' in first.text
    assert 'id="known"' not in first.text  # the rule-named ones come after the stored
    second = world.ui.get("/internal/ui/assets?page=2")
    assert second.status_code == 200, second.text
    assert "page 2 of 2" in second.text and 'href="?page=1"' in second.text
    assert 'id="known"' in second.text
    shown = [
        cell
        for page in (first.text, second.text)
        for cell in re.findall(r'<table id="assets">.*?</table>', page, re.S)
        for cell in re.findall(r'<tr><td class="mono">([^<]+)</td>', cell)
    ]
    assert shown == stored
    beyond = world.ui.get("/internal/ui/assets?page=3")
    assert beyond.status_code == 200
    assert f"{len(stored)} stored here, on the pages before this one" in beyond.text
    refused = world.ui.get("/internal/ui/assets?page=0")
    assert refused.status_code == 400 and "page" in refused.text


# --- an output's files -------------------------------------------------------------------


def test_the_job_page_links_the_output_s_files_which_download_as_a_tar_gz(
    world: World,
) -> None:
    """The download link of a succeeded job's output gives its /data files in a gzipped
    tar named after the job and output, released to the user's party by the egress gate
    and recorded as a transfer to it."""
    job_id = world.run("constant", data=world.scenario.output_base)
    page = world.ui.get(f"/internal/ui/jobs/{job_id}").text
    link = f'href="/internal/ui/jobs/{job_id}/outputs/result/files.tar.gz"'
    assert link in page
    answer = world.ui.get(f"/internal/ui/jobs/{job_id}/outputs/result/files.tar.gz")
    assert answer.status_code == 200, answer.text
    folder = f"{job_id[:12]}-result"
    assert answer.headers["content-disposition"] == f'attachment; filename="{folder}.tar.gz"'
    assert answer.headers["content-type"] == "application/gzip"
    assert int(answer.headers["content-length"]) == len(answer.content)
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as packed:
        names = sorted(packed.getnames())
        answer_file = packed.extractfile(f"{folder}/answer.txt")
        assert answer_file is not None and answer_file.read() == ANSWER
    assert names == [f"{folder}/answer.txt", f"{folder}/deep/dir/notes.md"]
    released = [
        e
        for e in world.site1.audited(AuditKind.DECISION, job_id)
        if e.action == "release to party" and e.user == f"user@{world.site1.party.id}"
    ]
    assert [e.outcome for e in released] == ["allowed"]
    sent = [e for e in world.site1.audited(AuditKind.TRANSFER, job_id) if e.user]
    assert [e.asset for e in sent] == [str(world.result(job_id))]


def test_a_result_a_review_holds_is_not_downloaded_from_the_dashboard(world: World) -> None:
    """After a ReleaseReviewedBy rule covers a result made at site1, its release to the
    user's party waits for the review: the dashboard's download is refused as the
    command line's is, and no byte of it is recorded as sent."""
    site1 = world.site1
    job_id = world.run("constant", data=world.scenario.output_base)
    assert site1.steps(job_id)["compute"].site == site1.id  # made here: site1's to hold
    site1.add_rule(
        {
            "type": "ReleaseReviewedBy",
            "asset": world.scenario.output_base,
            "reviewer": str(site1.party.id),
        }
    )
    for path in (
        f"/internal/ui/jobs/{job_id}/outputs/result/files.tar.gz",
        f"/internal/ui/jobs/{job_id}/outputs/result/files.tar.gz",  # asked again: still held
    ):
        refused = world.ui.get(path)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["type"] == "AwaitingReview"
    assert not [e for e in site1.audited(AuditKind.TRANSFER, job_id) if e.user]


def test_a_denied_release_downloads_nothing(world: World) -> None:
    """A job output whose use policy no longer allows (party1's MayUse of its results
    revoked) is refused with the decision's explanation, and nothing is sent."""
    site1 = world.site1
    job_id = world.run("constant", data=world.scenario.output_base)
    results1 = f"asset_collection:{site1.party.namespace}:results"
    rule = {"type": "MayUse", "party": str(site1.party.id), "asset": results1}
    site1.services.rules.revoke(
        sign_revocation(
            rule_from_dict({**rule, "conditions": "own results"}), site1.party.credentials.main_key
        ),
        user=site1.party.user("admin", admin=True),
    )
    refused = world.ui.get(f"/internal/ui/jobs/{job_id}/outputs/result/files.tar.gz")
    assert refused.status_code == 403, refused.text
    assert f"no MayUse for {results1}" in refused.text or "MayUse" in refused.text
    assert not [e for e in site1.audited(AuditKind.TRANSFER, job_id) if e.user]


# --- a job's page reloads until the job ends ----------------------------------------------


def test_a_running_job_s_page_reloads_itself_until_the_job_ends(world: World) -> None:
    """Until the job ends its page carries a meta refresh (no script: the pages allow
    none); the page of the ended job has none, and shows the submission time's zone."""
    site1 = world.site1
    job = world.scenario.job()
    job_id = site1.jobs.submissions.submit(job, site1.party.user()).job_id
    refresh = f'<meta http-equiv="refresh" content="{JOB_REFRESH_SECONDS}">'
    waiting = world.ui.get(f"/internal/ui/jobs/{job_id}").text
    assert refresh in waiting and "<script" not in waiting
    world.scenario.net.drive()
    assert site1.job(job_id).state is JobState.SUCCEEDED
    done = world.ui.get(f"/internal/ui/jobs/{job_id}").text
    assert 'http-equiv="refresh"' not in done
    assert re.search(
        r"submitted <time datetime=\"[^\"]+\">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC<", done
    )


# --- the audit page -----------------------------------------------------------------------


def test_the_audit_page_shortens_ids_and_shows_zoned_times_and_readable_sizes(
    world: World,
) -> None:
    """Long ids are shortened, the full id in the element's title and in the record's
    details; each time has its zone; a transfer's size reads as bytes, kB or MB."""
    job_id = world.run("constant", data=world.scenario.output_base)
    result = str(world.result(job_id))
    assert world.ui.get(f"/internal/ui/jobs/{job_id}/outputs/result/files.tar.gz").is_success
    page = world.ui.get("/internal/ui/audit", params={"job": job_id}).text
    short = f"{result[:13]}…{result[-6:]}"
    assert f'<span class="mono id" title="{result}">{short}</span>' in page
    assert f'title="{job_id}">{job_id[:13]}…{job_id[-6:]}</span>' in page
    assert f"asset: {result}" in page and f"job: {job_id}" in page  # in the details, whole
    times = re.findall(r"<time datetime=\"[^\"]+\">([^<]+)</time>", page)
    assert times and all(t.endswith(" UTC") for t in times), times
    summaries = [html.unescape(s) for s in re.findall(r"<summary>(.*?)</summary>", page)]
    assert any(re.fullmatch(r"\d+(\.\d)? (B|kB|MB) \S+ → \S+", s) for s in summaries), summaries
    assert any(short in s for s in summaries), summaries  # a decision about the result
    assert not [s for s in summaries if result in s or job_id in s], summaries
