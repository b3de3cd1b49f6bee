"""Reviewers decide their party's review queue at their site over the internal API and
`mahiru reviews`, with real sites on loopback: by id or prefix, only as reviewers or
admins, never seeing another party's reviews, and inspecting the result's files through
the egress gate."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from tests.support.images import write_image
from tests.support.reviews import reviewed_result
from tests.support.sites import Network, SiteServer, client_as, network
from tests.support.waiting import wait_until

from mahiru.cli.main import cli
from mahiru.client.http import TlsIdentity
from mahiru.errors import PermissionDenied
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import AssetId, JobId, PartyId, ResultId
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki import load_certificate, user_identity
from mahiru.pki.names import Role
from mahiru.policy.signing import sign_revocation
from mahiru.storage import AuditQuery

pytestmark = pytest.mark.integration

FAILED = {"check": "min_count", "passed": False, "detail": "column n has 3 < 10"}
PASSED = {"check": "max_bytes", "passed": True, "detail": "54 bytes"}
FILES = {"counts.csv": b"n\n3\n", "sub/notes.txt": b"made by the tests\n" * 3}


@dataclass
class World:
    """p1's and p2's sites; at p1's a stored result and a review rule of p1's."""

    net: Network
    site: SiteServer
    reviewer: TlsIdentity
    result: ResultId
    digest: str
    rule_id: str

    def request(self, *checks: dict[str, Any], reviewer: str | None = None) -> Review:
        """A new review of releasing the result to a party of its own."""
        receiver = PartyId("p9.org", f"r{secrets.token_hex(4)}")
        return self.site.services.oversight.reviews.request(
            self.result,
            receiver,
            self.rule_id if reviewer is None else "rule-of-another",
            reviewer or self.site.party.id,
            JobId(secrets.token_hex(16)),
            self.digest,
            checks or (PASSED,),
        )

    def api(self, identity: TlsIdentity) -> httpx.Client:
        """The site's internal API as `identity`."""
        return client_as(identity, self.site.internal_url)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("reviews")
    with network(root, lambda name: f"sqlite:///{root / name}.db", ("p1", "p2")) as net:
        net.replicate_all()
        site = net.sites["p1"]
        made = reviewed_result(site, FILES)
        reviewer = net.certs.user(site.party, "rita", Role.REVIEWER.value)
        yield World(net, site, reviewer, made.result, made.digest, made.rule_id)


def _error(response: httpx.Response) -> dict[str, Any]:
    error: dict[str, Any] = response.json()["error"]
    return error


def test_a_reviewer_lists_shows_and_decides_by_prefix(world: World) -> None:
    """Listing pages newest first by state; a prefix finds a review; approving over a
    failed check needs override, which is audited naming the person; a decided review is
    decided once (409)."""
    first = world.request(PASSED, FAILED)
    second = world.request()
    with world.api(world.reviewer) as api:
        listed = api.get("/reviews", params={"state": "pending", "limit": 500}).json()
        ids = [r["review_id"] for r in listed["reviews"]]
        assert {first.review_id, second.review_id} <= set(ids) and listed["total"] == len(ids)
        assert ids.index(second.review_id) < ids.index(first.review_id)
        shown = api.get(f"/reviews/{first.review_id[:8]}").json()
        assert Review.from_dict(shown) == first
        refused = api.post(f"/reviews/{first.review_id[:8]}/approve", json={"reason": "fine"})
        assert refused.status_code == 409
        assert "min_count failed" in _error(refused)["message"]
        approved = api.post(
            f"/reviews/{first.review_id}/approve",
            json={"reason": "n is public anyway", "override": True},
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["state"] == "approved" and approved.json()["override"] is True
        rejected = api.post(f"/reviews/{second.review_id}/reject", json={"reason": "no"})
        assert rejected.json()["decided_by"] == f"rita@{world.site.party.id}"
        again = api.post(f"/reviews/{second.review_id}/approve", json={"reason": "yes"})
        assert again.status_code == 409 and "already rejected" in _error(again)["message"]
        bad = api.get("/reviews", params={"state": "maybe"})
        assert bad.status_code == 400 and "pending, approved, rejected" in _error(bad)["message"]
    records = world.site.services.oversight.audit.page(AuditQuery(kind=AuditKind.REVIEW), 500)
    decided = [
        r.entry
        for r in records.records
        if r.entry.action == "decide" and r.entry.details["review_id"] == first.review_id
    ]
    assert [(e.user, e.details["override"], e.details["reason"]) for e in decided] == [
        (f"rita@{world.site.party.id}", True, "n is public anyway")
    ]


def test_a_plain_user_is_refused_the_reviews(world: World) -> None:
    review = world.request()
    with world.api(world.site.party.user) as api:
        for answer in (
            api.get("/reviews"),
            api.get(f"/reviews/{review.review_id}"),
            api.post(f"/reviews/{review.review_id}/reject", json={"reason": "mine"}),
        ):
            assert answer.status_code == 403
            assert "reviewer (or admin) role" in _error(answer)["message"]


def test_another_party_s_review_is_as_if_it_did_not_exist(world: World) -> None:
    """A review p2 is to decide: p1's reviewers and admins get the answer of a missing id
    on every route, and never see it listed; p2's users see nothing at their own site."""
    foreign = world.request(reviewer=world.net.sites["p2"].party.id)
    missing = secrets.token_hex(16)
    for identity in (world.reviewer, world.site.party.admin):
        with world.api(identity) as api:
            listed = api.get("/reviews", params={"limit": 500}).json()["reviews"]
            assert foreign.review_id not in {r["review_id"] for r in listed}
            for route, method, body in (
                ("", "GET", None),
                ("/files", "GET", None),
                ("/files/counts.csv", "GET", None),
                ("/approve", "POST", {"reason": "x"}),
            ):
                answers = [
                    api.request(method, f"/reviews/{rid}{route}", json=body)
                    for rid in (foreign.review_id, missing)
                ]
                assert [a.status_code for a in answers] == [404, 404]
                texts = [
                    a.text.replace(rid, "ID")
                    for a, rid in zip(answers, (foreign.review_id, missing), strict=True)
                ]
                assert texts[0] == texts[1]
    p2 = world.net.sites["p2"]
    with client_as(p2.party.admin, p2.internal_url) as api:
        # p2's reviewers see it at their own site, offered there by p1's (a mirror).
        listed = wait_until(
            lambda: api.get("/reviews").json()["reviews"], 30, "the review offered to p2"
        )
        assert [(r["review_id"], r["held_at"]) for r in listed] == [
            (foreign.review_id, world.site.id)
        ]
    assert world.site.services.oversight.reviews.get(foreign.review_id).state is ReviewState.PENDING


def test_a_reviewer_reads_the_result_s_files_through_the_egress_gate(world: World) -> None:
    """The listing and each file come out of the stored image; each read is a decision
    and a transfer to the reviewer's party, naming the person and the file."""
    review = world.request()
    with world.api(world.reviewer) as api:
        listing = api.get(f"/reviews/{review.review_id[:6]}/files").json()
        assert listing["files"] == [
            {"path": path, "size": len(data)} for path, data in sorted(FILES.items())
        ]
        for path, data in FILES.items():
            answer = api.get(f"/reviews/{review.review_id}/files/{path}")
            assert answer.status_code == 200 and answer.content == data
        missing = api.get(f"/reviews/{review.review_id}/files/etc/passwd")
        assert missing.status_code == 404 and "has no file" in _error(missing)["message"]
    audit = world.site.services.oversight.audit
    sent = [
        r.entry
        for r in audit.page(
            AuditQuery(kind=AuditKind.TRANSFER, asset=str(world.result)), 500
        ).records
        if r.entry.details.get("path") == "sub/notes.txt"
    ]
    assert sent and sent[0].user == f"rita@{world.site.party.id}"
    assert sent[0].actor == world.site.party.id and sent[0].outcome == "complete"
    reads = audit.page(AuditQuery(kind=AuditKind.DECISION), 500).records
    assert any(r.entry.action == "review read" and r.entry.outcome == "allowed" for r in reads)
    assert not list((world.site.config.data_dir / "review-files").iterdir())


def test_a_reviewer_has_no_admin_powers(world: World, tmp_path: Path) -> None:
    ns = world.site.party.namespace
    with (
        world.site.client(world.reviewer) as reviewer,
        pytest.raises(PermissionDenied, match="not an admin"),
    ):
        reviewer.upload_asset(
            Asset(AssetId.parse(f"asset:{ns}:mine:{ns}:site"), AssetKind.DATA),
            write_image(tmp_path / "mine.tar"),
        )


def test_nobody_decides_a_review_whose_rule_was_revoked(world: World) -> None:
    """A review under a rule no longer in force stays pending: the refusal says why."""
    site = world.site
    ns = site.party.namespace
    signed = site.party.sign(
        {
            "type": "ReleaseReviewedBy",
            "asset": f"asset:{ns}:old:{ns}:site",
            "reviewer": site.party.id,
        }
    )
    with site.admin() as admin:
        admin.add_rule(signed)
    review = site.services.oversight.reviews.request(
        world.result,
        PartyId("p9.org", "late"),
        signed.rule_id,
        site.party.id,
        JobId("j-old"),
        world.digest,
        (PASSED,),
    )
    with site.admin() as admin:
        admin.revoke(sign_revocation(signed.rule, site.party.main_key))
    with world.api(world.reviewer) as api:
        refused = api.post(f"/reviews/{review.review_id}/approve", json={"reason": "ok"})
    assert refused.status_code == 403
    assert "is not in force here" in _error(refused)["message"]
    assert "nobody may decide" in _error(refused)["message"]
    assert site.services.oversight.reviews.get(review.review_id).state is ReviewState.PENDING


# --- the command line ---------------------------------------------------------------------


def _cli(world: World, identity: TlsIdentity, *args: str) -> tuple[int, str, str]:
    env = {
        "MAHIRU_SITE_URL": world.site.internal_url,
        "MAHIRU_CA": str(identity.ca),
        "MAHIRU_CERT": str(identity.cert),
        "MAHIRU_KEY": str(identity.key),
    }
    result = CliRunner().invoke(cli, ["reviews", *args], env=env)
    return result.exit_code, result.stdout, result.stderr


def test_mahiru_reviews_lists_shows_downloads_and_decides(world: World, tmp_path: Path) -> None:
    review = world.request(PASSED, FAILED)
    prefix = review.review_id[:6]
    code, out, _ = _cli(world, world.reviewer, "list", "--state", "pending", "--json")
    assert code == 0 and review.review_id in {r["review_id"] for r in json.loads(out)["reviews"]}
    code, out, _ = _cli(world, world.reviewer, "list", "--state", "pending")
    assert code == 0 and f"{review.review_id}  pending" in out and "failed: min_count" in out
    code, out, err = _cli(world, world.reviewer, "show", prefix, "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert "min_count: FAILED: column n has 3 < 10" in out and "/data/sub/notes.txt" in out
    for path, data in FILES.items():
        assert (tmp_path / "r" / path).read_bytes() == data
    code, _, err = _cli(world, world.reviewer, "show", prefix, "--out", str(tmp_path / "r"))
    assert code == 1 and "exists already" in err and "nothing was overwritten" in err
    code, _, err = _cli(world, world.reviewer, "approve", prefix, "--reason", "fine")
    assert code == 1 and "min_count failed" in err and "override" in err
    code, out, _ = _cli(
        world, world.reviewer, "approve", prefix, "--reason", "public counts", "--override"
    )
    assert (
        code == 0
        and out.strip() == f"review {review.review_id}: approved by rita@{world.site.party.id}"
    )
    code, _, err = _cli(world, world.reviewer, "reject", prefix, "--reason", "too late")
    assert code == 1 and "already approved" in err
    code, out, _ = _cli(world, world.reviewer, "show", prefix, "--json")
    assert code == 0 and json.loads(out)["review"]["state"] == "approved"


def test_mahiru_reviews_refuses_plain_users_and_unknown_ids(world: World) -> None:
    code, _, err = _cli(world, world.site.party.user, "list")
    assert code == 3 and "reviewer (or admin) role" in err
    code, _, err = _cli(world, world.reviewer, "show", "zzzz9999")
    assert code == 2 and "no review zzzz9999" in err


def test_mahiru_certs_user_issues_a_reviewer_certificate(world: World, tmp_path: Path) -> None:
    review = world.request()  # one this test knows is there, whatever ran before
    party_dir = tmp_path / "party"
    party_dir.mkdir()
    (party_dir / "user-ca.crt").write_bytes(world.site.party.user_ca.read_bytes())
    (party_dir / "user-ca.key").write_bytes(
        world.site.party.user_ca.with_suffix(".key").read_bytes()
    )
    result = CliRunner().invoke(
        cli,
        [
            "certs",
            "user",
            "--party-dir",
            str(party_dir),
            "--name",
            "vera",
            "--role",
            "reviewer",
            "--out",
            str(tmp_path / "users"),
        ],
    )
    assert result.exit_code == 0, result.output
    identity = user_identity(load_certificate(tmp_path / "users" / "vera.crt"))
    assert identity.role is Role.REVIEWER and not identity.is_admin
    vera = TlsIdentity(
        tmp_path / "users" / "vera.crt", tmp_path / "users" / "vera.key", world.site.party.admin.ca
    )
    code, out, err = _cli(world, vera, "list", "--json")
    assert code == 0, err
    assert review.review_id in {r["review_id"] for r in json.loads(out)["reviews"]}
