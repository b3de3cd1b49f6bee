"""The dashboard in a real headless Chromium at 1280 px: the audit page of long ids, long
decisions and transfers fits the window (details open or closed), and a job's page reloads
itself while the job runs and stops once it has ended."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.browser import Browser, chromium
from tests.support.devtools import DevTools, devtools
from tests.support.reviews import reviewed_result
from tests.support.sites import SiteServer, network, waiting_job

from mahiru.model.audit import AuditEntry, AuditKind
from mahiru.model.identifiers import JobId, PartyId
from mahiru.model.people import Person

pytestmark = pytest.mark.e2e

#: The window the pages must fit.
WIDTH = 1280


@dataclass
class World:
    """A site (its job services off, so a stored job stays as it is) with a stored result
    and audit records about it."""

    site: SiteServer

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.site.port}"


def _records(site: SiteServer, result: str) -> None:
    """Records as a job's run writes them: decisions naming the result and the job, with
    long explanations; transfers of it; acts of a user of a party with a long name."""
    party = str(site.party.id)
    user = f"someone.with.a.long.name@{party}"
    for _ in range(10):
        job = JobId(secrets.token_hex(16))
        about = f"{result} (compute.output0)"
        for kind, action, details in (
            (
                AuditKind.DECISION,
                "release to party",
                {
                    "decision": f"allowed: {party} may use {about}",
                    "explanation": f"{party} may use {about}:\n  via MayUse "
                    + "asset_collection:p1.org:results_of_a_long_study_name " * 4,
                    "rules": [secrets.token_hex(32) for _ in range(3)],
                },
            ),
            (
                AuditKind.TRANSFER,
                "send",
                {"bytes": 123_456_789, "from": str(site.id), "to": party, "digest": "ab" * 32},
            ),
            (AuditKind.JOB, "submit", {"reason": f"planned: compute at {site.id} for {about}"}),
        ):
            site.services.oversight.audit.record(
                AuditEntry(
                    kind,
                    action,
                    "allowed",
                    actor=f"user:{user}",
                    party=party,
                    job=job,
                    step="compute",
                    asset=result,
                    details=details,
                    user=user,
                )
            )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if chromium() is None:
        pytest.fail("chromium is missing: `make test` installs it (scripts/ensure-chromium.sh)")
    root = tmp_path_factory.mktemp("layout-browser")
    with network(root, lambda name: f"sqlite:///{root / name}.db", ("p1",)) as net:
        site = net.sites["p1"]
        site.stop()
        site.start(jobs=False)
        net.replicate_all()
        made = reviewed_result(site, {"n.csv": b"n\n3\n"})
        _records(site, str(made.result))
        yield World(site)


@pytest.fixture
def page(world: World, tmp_path: Path) -> Iterator[DevTools]:
    """A page of a browser holding the party admin's certificate, in a 1280-px window."""
    browser = Browser(tmp_path, world.site.party.admin, world.site.internal_url)
    with devtools(browser) as page:
        page.call(
            "Emulation.setDeviceMetricsOverride",
            width=WIDTH,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        yield page


def _width(page: DevTools) -> int:
    width: int = page.evaluate("document.documentElement.scrollWidth")
    return width


def test_the_audit_page_fits_a_1280_px_window(world: World, page: DevTools) -> None:
    """No horizontal scrolling, with every record's details closed and then open; the long
    ids are there shortened, whole in their title."""
    page.navigate(f"{world.origin}/internal/ui/audit")
    rows = page.evaluate("document.querySelectorAll('#audit tr').length")
    assert rows > 30
    assert _width(page) <= WIDTH
    assert page.evaluate("document.querySelector('#audit span.id[title^=\"result:\"]') !== null")
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    assert _width(page) <= WIDTH


def test_a_running_job_s_page_reloads_itself_until_the_job_ends(
    world: World, page: DevTools
) -> None:
    """The page of a job not yet ended loads again by itself; once the job is cancelled
    the next load shows it cancelled, with no reload left in the page."""
    job_id = waiting_job(world.site)
    page.navigate(f"{world.origin}/internal/ui/jobs/{job_id}")
    page.evaluate("window.seen = true")  # gone once the page has loaded again
    with page.loading():
        pass  # the page's own reload
    assert page.evaluate("window.seen === undefined")
    assert page.evaluate("document.querySelector('#job-state').textContent") == "submitted"
    admin = Person("admin", PartyId.parse(world.site.party.id), admin=True)
    world.site.site.jobs.submissions.cancel(JobId(job_id), admin)
    with page.loading():
        pass  # the next reload shows the end
    assert page.evaluate("document.querySelector('#job-state').textContent") == "cancelled"
    assert page.evaluate("document.querySelector('meta[http-equiv=refresh]') === null")
