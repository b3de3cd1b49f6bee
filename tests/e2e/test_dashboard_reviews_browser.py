"""A reviewer decides reviews on the dashboard in a real headless Chromium holding their
certificate: one approved and one rejected from the Reviews page; and a page of another web
site that posts the approve form (with a valid token) in the same browser decides nothing."""

from __future__ import annotations

import http.server
import logging
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.browser import Browser, chromium
from tests.support.devtools import DevTools, devtools
from tests.support.reviews import reviewed_result
from tests.support.sites import SiteServer, network

from mahiru.client.http import TlsIdentity
from mahiru.model.identifiers import JobId, PartyId, ResultId
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki.names import Role

pytestmark = pytest.mark.e2e

FAILED = {"check": "min_count", "passed": False, "detail": "column n has 3 < 10"}


@dataclass
class World:
    """A site with a stored result, a review rule of its party's, and a reviewer."""

    site: SiteServer
    reviewer: TlsIdentity
    result: ResultId
    digest: str
    rule_id: str

    def request(self, *checks: dict[str, Any]) -> Review:
        return self.site.services.oversight.reviews.request(
            self.result,
            PartyId("p9.org", f"r{secrets.token_hex(4)}"),
            self.rule_id,
            self.site.party.id,
            JobId(secrets.token_hex(16)),
            self.digest,
            checks or ({"check": "max_bytes", "passed": True, "detail": "3 bytes"},),
        )

    def state(self, review: Review) -> ReviewState:
        return self.site.services.oversight.reviews.get(review.review_id).state

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.site.port}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if chromium() is None:
        pytest.fail("chromium is missing: `make test` installs it (scripts/ensure-chromium.sh)")
    root = tmp_path_factory.mktemp("reviews-browser")
    with network(root, lambda name: f"sqlite:///{root / name}.db", ("p1",)) as net:
        net.replicate_all()
        site = net.sites["p1"]
        made = reviewed_result(site, {"n.csv": b"n\n3\n"})
        reviewer = net.certs.user(site.party, "rita", Role.REVIEWER.value)
        yield World(site, reviewer, made.result, made.digest, made.rule_id)


@pytest.fixture
def browser(world: World, tmp_path: Path) -> Browser:
    return Browser(tmp_path, world.reviewer, world.site.internal_url)


def _open_from_the_list(page: DevTools, world: World, review: Review) -> None:
    """Open the Reviews page from the navigation, then the review from its row."""
    page.navigate(f"{world.origin}/internal/ui/jobs")
    with page.loading():
        page.evaluate("document.querySelector('header a[href=\"/internal/ui/reviews\"]').click()")
    assert page.evaluate("document.querySelector('h1').textContent") == "Reviews"
    with page.loading():
        page.evaluate(f"document.querySelector('tr[data-review=\"{review.review_id}\"] a').click()")
    assert page.evaluate("document.querySelector('h1').textContent") == (
        f"Review {review.review_id}"
    )


def _decide(page: DevTools, form: str, reason: str, *, override: bool = False) -> str:
    """Fill in and send the form `form` (approve or reject); the state the page then shows."""
    script = f"document.querySelector('#{form} input[name=reason]').value = {reason!r};"
    if override:
        script += f"document.querySelector('#{form} input[name=override]').checked = true;"
    page.evaluate(script)
    with page.loading():
        page.evaluate(f"document.querySelector('#{form} button').click()")

    state: str = page.evaluate("document.querySelector('#review-state').textContent")
    return state


def test_a_reviewer_approves_one_review_and_rejects_another_in_the_browser(
    world: World, browser: Browser
) -> None:
    approved, rejected = world.request(FAILED), world.request()
    with devtools(browser) as page:
        _open_from_the_list(page, world, approved)
        assert _decide(page, "approve", "counts are public", override=True) == "approved"
        decision = page.evaluate("document.querySelector('#decision').textContent")
        assert "Approved by rita@" in decision and "although a check failed" in decision
        _open_from_the_list(page, world, rejected)
        assert _decide(page, "reject", "not for them") == "rejected"
        listed = f"{world.origin}/internal/ui/reviews?state=rejected"
        page.navigate(listed)
        assert page.evaluate(
            f"!!document.querySelector('tr[data-review=\"{rejected.review_id}\"]')"
        )
    assert world.state(approved) is ReviewState.APPROVED
    assert world.state(rejected) is ReviewState.REJECTED
    decided = world.site.services.oversight.reviews.get(approved.review_id)
    assert decided.override and decided.decided_by == f"rita@{world.site.party.id}"


def _serve(page: bytes) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Another web site: a plain HTTP server on loopback answering every GET with `page`."""

    class OtherSite(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), OtherSite)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def test_a_page_elsewhere_that_posts_the_approve_form_decides_nothing(
    world: World, browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    """The other origin's page sends the form, with the token the reviewer's page holds, as
    soon as it loads: the browser marks it as another site's, the site refuses it (403) and
    the review still waits."""
    caplog.set_level(logging.INFO, logger="mahiru.access")
    review = world.request()
    with httpx.Client(verify=world.reviewer.ssl_context(), timeout=30) as own:
        page = own.get(f"{world.origin}/internal/ui/reviews/{review.review_id}").text
    token = page.split('name="token" value="', 1)[1].split('"', 1)[0]
    action = f"{world.origin}/internal/ui/reviews/{review.review_id}/approve"
    attack = (
        '<!doctype html><html><body><iframe name="sink"></iframe>'
        f'<form method="post" action="{action}" target="sink">'
        f'<input name="token" value="{token}"><input name="reason" value="sure">'
        "</form><script>document.forms[0].submit();</script></body></html>"
    )
    server, url = _serve(attack.encode())
    try:
        browser.dom(url, "--virtual-time-budget=3000")
    finally:
        server.shutdown()
    path = f"/internal/ui/reviews/{review.review_id}/approve"
    seen = [
        record.__dict__["status"]
        for record in caplog.records
        if record.name == "mahiru.access"
        and record.__dict__.get("method") == "POST"
        and record.__dict__.get("path") == path
    ]
    assert seen == [403]  # it reached the site, with the certificate, and was refused
    assert world.state(review) is ReviewState.PENDING
