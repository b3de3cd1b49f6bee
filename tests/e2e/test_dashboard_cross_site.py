"""A page of another web site, opened in a real headless Chromium that holds a user's
certificate, submits forms to the site and frames its dashboard: nothing is cancelled and
nothing of the dashboard is shown."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.browser import Browser, chromium
from tests.support.db import sqlite_urls
from tests.support.sites import SiteServer, network, waiting_job

from mahiru.client.jobs import JobsClient
from mahiru.model.jobs import JobState

pytestmark = pytest.mark.e2e

#: Each form a page can send anywhere without asking first, into a frame of its own.
FORMS = (
    ("api", "application/x-www-form-urlencoded", "/internal/jobs/{job}/cancel"),
    ("api", "text/plain", "/internal/jobs/{job}/cancel"),
    ("api", "multipart/form-data", "/internal/jobs/{job}/cancel"),
    ("dashboard", "application/x-www-form-urlencoded", "/internal/ui/jobs/{job}/cancel"),
)


def _attack(site: str, job: str) -> bytes:
    """The other site's page: frames the job's dashboard page and submits every form."""
    forms = "".join(
        f'<iframe name="sink{n}"></iframe>'
        f'<form method="post" enctype="{enctype}" action="{site}{path.format(job=job)}"'
        f' target="sink{n}"><input name="token" value="{n}"></form>'
        for n, (_, enctype, path) in enumerate(FORMS)
    )
    page = (
        "<!doctype html><html><body>"
        f'<iframe width="900" height="600" src="{site}/internal/ui/jobs/{job}"></iframe>'
        f"{forms}<script>for (const form of document.forms) form.submit();</script>"
        "</body></html>"
    )
    return page.encode()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteServer]:
    """A site whose jobs stay where they are (no steps run)."""
    if chromium() is None:
        pytest.fail("chromium is missing: `make test` installs it (scripts/ensure-chromium.sh)")
    root = tmp_path_factory.mktemp("cross-site-browser")
    with network(root, sqlite_urls(root), ("p1",)) as net:
        site = net.sites["p1"]
        site.stop()
        site.start(jobs=False)
        yield site


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


def _seen(caplog: pytest.LogCaptureFixture, method: str, path: str) -> list[int]:
    """The statuses the site's access log recorded for `method path`."""
    return [
        record.__dict__["status"]
        for record in caplog.records
        if record.name == "mahiru.access"
        and record.__dict__.get("method") == method
        and record.__dict__.get("path") == path
    ]


def test_a_page_elsewhere_cancels_nothing_and_shows_no_dashboard(
    site: SiteServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its forms reach the site and are refused (403); the framed dashboard is fetched but the
    browser never renders it (its stylesheet is never asked for); the job still waits."""
    caplog.set_level(logging.INFO, logger="mahiru.access")
    job = waiting_job(site)
    origin = f"https://127.0.0.1:{site.port}"
    server, url = _serve(_attack(origin, job))
    browser = Browser(tmp_path, site.party.user, site.internal_url)
    try:
        browser.dom(url, "--virtual-time-budget=3000")
    finally:
        server.shutdown()
    api, dashboard = f"/internal/jobs/{job}/cancel", f"/internal/ui/jobs/{job}/cancel"
    assert _seen(caplog, "POST", api) == [403, 403, 403]
    assert _seen(caplog, "POST", dashboard) == [403]
    assert _seen(caplog, "GET", f"/internal/ui/jobs/{job}") == [200]  # fetched, with the cert
    assert _seen(caplog, "GET", "/internal/ui/style.css") == []  # but never rendered
    with JobsClient(site.internal_url, site.party.user) as client:
        assert client.status(job).status.state is JobState.SUBMITTED
    # Control: the same browser shows the page on its own, stylesheet and all.
    assert f"Job {job}" in browser.dom(f"{origin}/internal/ui/jobs/{job}")
    assert _seen(caplog, "GET", "/internal/ui/style.css") == [200]
