"""The dashboard's Reviews pages with real sites on loopback, over TLS with users' client
certificates: who sees which review, how a result's files are shown without running what
they hold, and the decision forms, which only this dashboard's page for that reviewer
can send."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from tests.support.reviews import reviewed_result
from tests.support.sites import Network, SiteServer, network, waiting_job

from mahiru.client.http import TlsIdentity
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import JobId, PartyId, ResultId
from mahiru.model.people import Person
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki.names import Role
from mahiru.storage import AuditQuery

pytestmark = pytest.mark.integration

FAILED = {"check": "min_count", "passed": False, "detail": "column n has 3 < 10"}
PASSED = {"check": "max_bytes", "passed": True, "detail": "54 bytes"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
FILES = {
    "counts.csv": b'name,n\n<b>bold</b>,3\n"a,b",<script>alert(1)</script>\n',
    "page.html": b"<h1 id='injected'>hi</h1><script>alert(1)</script>\n",
    "plot.png": PNG,
    "drawing.svg": b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
    "model.bin": b"\x00\x01\x02",
}


@dataclass
class World:
    """p1's and p2's sites; at p1's a stored result, a review rule of p1's and a reviewer."""

    net: Network
    site: SiteServer
    reviewer: TlsIdentity
    result: ResultId
    digest: str
    rule_id: str

    def request(
        self, *checks: dict[str, Any], reviewer: str | None = None, job: str | None = None
    ) -> Review:
        """A new review of releasing the result to a party of its own."""
        return self.site.services.oversight.reviews.request(
            self.result,
            PartyId("p9.org", f"r{secrets.token_hex(4)}"),
            self.rule_id,
            reviewer or self.site.party.id,
            JobId(job or secrets.token_hex(16)),
            self.digest,
            checks or (PASSED,),
        )

    def state(self, review: Review) -> ReviewState:
        return self.site.services.oversight.reviews.get(review.review_id).state

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.site.port}"

    def ui(self, identity: TlsIdentity) -> httpx.Client:
        """The site's dashboard as a browser holding `identity` reaches it."""
        return httpx.Client(
            base_url=f"{self.site.internal_url}/ui", verify=identity.ssl_context(), timeout=30
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("dashboard-reviews")
    with network(root, lambda name: f"sqlite:///{root / name}.db", ("p1", "p2")) as net:
        net.replicate_all()
        site = net.sites["p1"]
        made = reviewed_result(site, FILES)
        reviewer = net.certs.user(site.party, "rita", Role.REVIEWER.value)
        yield World(net, site, reviewer, made.result, made.digest, made.rule_id)


def _text(page: str) -> str:
    """A page's text, tags removed, whitespace collapsed."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _token(page: str) -> str:
    found = re.search(r'name="token" value="([0-9a-f]+)"', page)
    assert found is not None, page
    return found.group(1)


def _form(**fields: str) -> dict[str, Any]:
    body = "&".join(f"{k}={v}" for k, v in fields.items())
    return {
        "content": body.encode(),
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
    }


# --- who sees what --------------------------------------------------------------------------


def test_reviewers_and_admins_see_the_pending_reviews_with_checks_and_a_nav_link(
    world: World,
) -> None:
    review = world.request(PASSED, FAILED)
    for identity in (world.reviewer, world.site.party.admin):
        with world.ui(identity) as ui:
            page = ui.get("/reviews")
        assert page.status_code == 200, page.text
        assert '<a href="/internal/ui/reviews" class="here">Reviews</a>' in page.text
        row = re.search(
            rf'<tr class="review-row" data-review="{review.review_id}">(.*?)</tr>', page.text, re.S
        )
        assert row is not None
        text = _text(row.group(1))
        assert "pending" in text and "max_bytes: passed" in text and "min_count: failed" in text
        assert str(review.receiving_party) in text  # no job recorded: the receiving party
        assert review.requested_at.strftime("%Y-%m-%d %H:%M:%S") in text


def test_a_plain_user_gets_403_and_no_link(world: World) -> None:
    review = world.request()
    with world.ui(world.site.party.user) as ui:
        jobs = ui.get("/jobs")
        answers = [
            ui.get("/reviews"),
            ui.get(f"/reviews/{review.review_id}"),
            ui.get(f"/reviews/{review.review_id}/files/counts.csv"),
            ui.get(f"/reviews/{review.review_id}/raw/counts.csv"),
        ]
    assert jobs.status_code == 200 and "/internal/ui/reviews" not in jobs.text
    for answer in answers:
        assert answer.status_code == 403
        assert "reviewer (or admin) role" in answer.json()["error"]["message"]


def test_the_filter_shows_decided_reviews_and_the_decision(world: World) -> None:
    approved = world.request()
    world.site.services.oversight.reviews.approve(
        approved.review_id,
        Person("admin", PartyId.parse(world.site.party.id), admin=True),
        PartyId.parse(world.site.party.id),
        "fine by us",
    )
    with world.ui(world.reviewer) as ui:
        pending = ui.get("/reviews").text
        decided = ui.get("/reviews", params={"state": "approved"}).text
        everything = ui.get("/reviews", params={"state": "all"}).text
        page = ui.get(f"/reviews/{approved.review_id}").text
        bad = ui.get("/reviews", params={"state": "maybe"})
    assert approved.review_id not in pending
    assert approved.review_id in decided and approved.review_id in everything
    assert "Approved by admin@" in _text(page) and "fine by us" in _text(page)
    assert 'id="approve"' not in page and 'name="token"' not in page  # nothing to decide
    assert bad.status_code == 400


def test_another_party_s_review_is_answered_as_a_missing_one(world: World) -> None:
    """A review p2 is to decide: every page and form of it answers as an id of nothing (the
    pages 404, the forms 403 for want of a token), and it is listed nowhere."""
    foreign = world.request(reviewer=world.net.sites["p2"].party.id)
    missing = secrets.token_hex(16)
    for identity in (world.reviewer, world.site.party.admin):
        with world.ui(identity) as ui:
            assert foreign.review_id not in ui.get("/reviews", params={"state": "all"}).text
            for method, route, extra in (
                ("GET", "", {}),
                ("GET", "/files/counts.csv", {}),
                ("GET", "/raw/plot.png", {}),
                ("POST", "/approve", _form(token="x", reason="r")),
                ("POST", "/reject", _form(token="x", reason="r")),
            ):
                answers = [
                    ui.request(method, f"/reviews/{rid}{route}", **extra)
                    for rid in (foreign.review_id, missing)
                ]
                # A form's token is checked first: no form of ours names either id.
                assert [a.status_code for a in answers] == [403 if method == "POST" else 404] * 2
                texts = [
                    a.text.replace(rid, "ID")
                    for a, rid in zip(answers, (foreign.review_id, missing), strict=True)
                ]
                assert texts[0] == texts[1]
    assert world.state(foreign) is ReviewState.PENDING


def test_the_review_page_names_the_submitter_and_the_inputs_owners(world: World) -> None:
    """With the job recorded here, the person who submitted it and the namespaces of its
    input assets; the result's files with their sizes."""
    job = waiting_job(world.site)
    review = world.request(job=job)
    with world.ui(world.reviewer) as ui:
        page = ui.get(f"/reviews/{review.review_id[:10]}").text
    submitter = re.search(r'<td id="submitter" class="user">(.*?)</td>', page, re.S)
    assert submitter and _text(submitter.group(1)).strip() == f"user@{world.site.party.id}"
    owners = re.search(r'<td id="owners">(.*?)</td>', page, re.S)
    assert owners and owners.group(1) == world.site.party.namespace
    listed = re.findall(
        r"<tr><td class=\"mono\"><a [^>]*>/data/([^<]+)</a></td>"
        r"<td><span class=\"size\" title=\"(\d+) bytes\">\d+ B</span></td>",
        page,
    )
    assert sorted(listed) == sorted((path, str(len(data))) for path, data in FILES.items())


# --- the files ------------------------------------------------------------------------------


def test_a_csv_file_is_shown_as_an_escaped_table(world: World) -> None:
    review = world.request()
    with world.ui(world.reviewer) as ui:
        page = ui.get(f"/reviews/{review.review_id}/files/counts.csv")
    assert page.status_code == 200
    table = re.search(r'<table id="table">(.*?)</table>', page.text, re.S)
    assert table is not None
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1))
    assert rows == [
        "<th>name</th><th>n</th>",
        "<td>&lt;b&gt;bold&lt;/b&gt;</td><td>3</td>",
        "<td>a,b</td><td>&lt;script&gt;alert(1)&lt;/script&gt;</td>",
    ]
    assert "<script" not in page.text and "<b>" not in page.text


def test_html_and_svg_files_are_shown_as_text_never_as_markup(world: World) -> None:
    review = world.request()
    with world.ui(world.reviewer) as ui:
        for name in ("page.html", "drawing.svg"):
            page = ui.get(f"/reviews/{review.review_id}/files/{name}")
            shown = re.search(r'<pre id="text">(.*?)</pre>', page.text, re.S)
            assert shown is not None and html.unescape(shown.group(1)) == FILES[name].decode()
            assert "<script" not in page.text and "id='injected'" not in page.text
            raw = ui.get(f"/reviews/{review.review_id}/raw/{name}")
            assert raw.content == FILES[name]
            assert raw.headers["content-type"] == "application/octet-stream"
            assert raw.headers["content-disposition"].startswith("attachment;")
        binary = ui.get(f"/reviews/{review.review_id}/files/model.bin")
    assert "not shown in the browser" in _text(binary.text)
    assert f'href="/internal/ui/reviews/{review.review_id}/raw/model.bin"' in binary.text


def test_an_image_is_shown_inline_from_a_route_that_runs_nothing(world: World) -> None:
    """The file page embeds it; its route sends it as a PNG, inline, never sniffed, under a
    policy with no script; each read is a transfer to the reviewer's party."""
    review = world.request()
    with world.ui(world.reviewer) as ui:
        page = ui.get(f"/reviews/{review.review_id}/files/plot.png")
        raw = ui.get(f"/reviews/{review.review_id}/raw/plot.png")
        missing = ui.get(f"/reviews/{review.review_id}/raw/nothing.png")
    src = f"/internal/ui/reviews/{review.review_id}/raw/plot.png"
    assert f'<img id="image" src="{src}"' in page.text
    assert raw.status_code == 200 and raw.content == PNG
    assert raw.headers["content-type"] == "image/png"
    assert raw.headers["content-disposition"] == "inline; filename*=UTF-8''plot.png"
    assert raw.headers["x-content-type-options"] == "nosniff"
    policy = raw.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy  # no script at all
    assert "img-src 'self'" in policy
    assert missing.status_code == 404
    transfers = world.site.services.oversight.audit.page(
        AuditQuery(kind=AuditKind.TRANSFER, asset=str(world.result)), 500
    ).records
    assert any(
        r.entry.details.get("path") == "plot.png" and r.entry.user == f"rita@{world.site.party.id}"
        for r in transfers
    )


# --- deciding -------------------------------------------------------------------------------


def test_a_reviewer_approves_and_rejects_from_the_page(world: World) -> None:
    """A reason is needed; over a failed check only with override ticked; each decision
    redirects back to the review, which says what was decided."""
    checked, plain = world.request(PASSED, FAILED), world.request()
    with world.ui(world.reviewer) as ui:
        page = ui.get(f"/reviews/{checked.review_id}").text
        assert 'name="override"' in page
        assert 'name="override"' not in ui.get(f"/reviews/{plain.review_id}").text
        token = _token(page)
        url = f"/reviews/{checked.review_id}/approve"
        no_reason = ui.post(url, **_form(token=token, reason="+"))
        assert no_reason.status_code == 303
        assert no_reason.headers["location"].endswith("?problem=reason")
        no_override = ui.post(url, **_form(token=token, reason="fine"))
        assert no_override.headers["location"].endswith("?problem=override")
        assert "tick" in _text(ui.get(world.origin + no_override.headers["location"]).text)
        assert world.state(checked) is ReviewState.PENDING
        done = ui.post(url, **_form(token=token, reason="counts+are+public", override="on"))
        assert done.status_code == 303
        assert done.headers["location"] == f"/internal/ui/reviews/{checked.review_id}"
        shown = _text(ui.get(world.origin + done.headers["location"]).text)
        assert f"Approved by rita@{world.site.party.id}" in shown
        assert "although a check failed: counts are public" in shown
        again = ui.post(f"/reviews/{checked.review_id}/reject", **_form(token=token, reason="x"))
        assert again.headers["location"].endswith("?problem=decided")
        rejected = ui.post(
            f"/reviews/{plain.review_id}/reject",
            **_form(token=_token(ui.get(f"/reviews/{plain.review_id}").text), reason="no"),
        )
        assert rejected.status_code == 303
    assert world.state(checked) is ReviewState.APPROVED
    assert world.state(plain) is ReviewState.REJECTED


def test_a_form_from_elsewhere_or_without_the_right_token_decides_nothing(world: World) -> None:
    """Refused with 403: the right token sent from another origin (or marked cross-site),
    no token, a made-up one, and the token another user's page was given."""
    review = world.request()
    with world.ui(world.site.party.admin) as admin:
        admins_token = _token(admin.get(f"/reviews/{review.review_id}").text)
    with world.ui(world.reviewer) as ui:
        token = _token(ui.get(f"/reviews/{review.review_id}").text)
        assert token != admins_token
        for action in ("approve", "reject"):
            url = f"/reviews/{review.review_id}/{action}"
            refused = [
                ui.post(
                    url, **_with(_form(token=token, reason="r"), Origin="https://evil.example")
                ),
                ui.post(url, **_with(_form(token=token, reason="r"), Origin="null")),
                ui.post(
                    url,
                    **_with(
                        _form(token=token, reason="r"),
                        Origin=f"https://127.0.0.1:{world.net.sites['p2'].port}",
                    ),
                ),
                ui.post(
                    url, **_with(_form(token=token, reason="r"), **{"Sec-Fetch-Site": "cross-site"})
                ),
                ui.post(url, **_form(reason="r")),
                ui.post(url, **_form(token="0" * 64, reason="r")),
                ui.post(url, **_form(token="é", reason="r")),
                ui.post(url, **_form(token=admins_token, reason="r")),
            ]
            assert [r.status_code for r in refused] == [403] * len(refused), [
                r.text for r in refused
            ]
            assert "reload the review's page" in refused[-1].json()["error"]["message"]
    assert world.state(review) is ReviewState.PENDING
    # Control: the same form from the dashboard's own origin decides.
    with world.ui(world.reviewer) as ui:
        done = ui.post(
            f"/reviews/{review.review_id}/reject",
            **_with(
                _form(token=token, reason="r"),
                Origin=world.origin,
                **{"Sec-Fetch-Site": "same-origin"},
            ),
        )
    assert done.status_code == 303 and world.state(review) is ReviewState.REJECTED


def _with(form: dict[str, Any], **headers: str) -> dict[str, Any]:
    return {**form, "headers": {**form["headers"], **headers}}
