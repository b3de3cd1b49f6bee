"""A review whose reviewer is a party category, with real sites on loopback: p1's site
holds the result and offers the review to every site of every party in the category (p2's
site, and both sites of p3), none to a party outside it (p4); the first decision reported
wins and is recorded naming its site, and a later one from another member's site is
refused as conflicting, given up there after a few tries with an audit record."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from tests.support.reviews import review_at, reviewed_result
from tests.support.sites import Network, SiteServer, client_as, network
from tests.support.waiting import wait_until

from mahiru.client.http import TlsIdentity
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import JobId, PartyId, ResultId, SiteId
from mahiru.model.reviews import Review, ReviewState
from mahiru.pki.names import Role
from mahiru.services.jobs.review_exchange import CONFLICTING_REPORTS
from mahiru.storage import AuditQuery

pytestmark = pytest.mark.integration

FILES = {"counts.csv": b"n\n30\n"}
PASSED = {"check": "max_bytes", "passed": True, "detail": "5 bytes"}
CATEGORY = "party_category:p1.org:stewards"


@dataclass
class World:
    net: Network
    holder: SiteServer
    #: The sites of the parties in the category, by name: p2, p3 and p3's second site.
    members: dict[str, SiteServer]
    #: A reviewer of each party in the category, by its name (p2, p3).
    reviewers: dict[str, TlsIdentity]
    result: ResultId
    digest: str
    rule_id: str

    def request(self) -> Review:
        """A new review at p1's site, for the category to decide."""
        return self.holder.services.oversight.reviews.request(
            self.result,
            PartyId("p9.org", f"r{secrets.token_hex(4)}"),
            self.rule_id,
            CATEGORY,
            JobId(secrets.token_hex(16)),
            self.digest,
            (PASSED,),
        )

    def held(self, review_id: str) -> Review:
        """The review as the holder keeps it now."""
        return self.holder.services.oversight.reviews.get(review_id)

    def reviewer(self, name: str) -> TlsIdentity:
        """A reviewer of the party of member site `name`."""
        return self.reviewers[name.removesuffix("b")]


def _second_site(net: Network, name: str, root: Path) -> SiteServer:
    """A second site, `site2`, of party `name`: registered, started, in `net.sites`."""
    party = net.parties[name]
    site = SiteServer(
        net.certs,
        party,
        "site2",
        database_url=f"sqlite:///{root / name}-site2.db",
        data_dir=root / f"data-{name}-site2",
        registry_url=net.registry.url,
    )
    with net.registry.client(party.client) as registry:
        registry.register_site(site.record(), party.main_key)
    site.start()
    net.sites[f"{name}b"] = site  # stopped with the others
    return site


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("category-reviews")
    names = ("p1", "p2", "p3", "p4")
    with network(root, lambda name: f"sqlite:///{root / name}.db", names) as net:
        p3b = _second_site(net, "p3", root)
        net.replicate_all()  # every site knows the parties and their sites
        holder = net.sites["p1"]
        with holder.admin() as admin:
            for member in ("p2", "p3"):
                category: dict[str, Any] = {
                    "type": "InPartyCategory",
                    "party": net.parties[member].id,
                    "category": CATEGORY,
                }
                admin.add_rule(holder.party.sign(category))
        made = reviewed_result(holder, FILES, CATEGORY)
        net.replicate_all()  # every site knows the rule, the category and every other site
        members = {"p2": net.sites["p2"], "p3": net.sites["p3"], "p3b": p3b}
        reviewers = {
            name: net.certs.user(net.parties[name], "rita", Role.REVIEWER.value)
            for name in ("p2", "p3")
        }
        yield World(net, holder, members, reviewers, made.result, made.digest, made.rule_id)


def test_the_review_is_offered_to_every_site_of_every_party_in_the_category(
    world: World,
) -> None:
    """p2's site and both of p3's keep the review and list it to their reviewers; p4,
    outside the category, gets nothing, and its site is answered as for no review."""
    review = world.request()
    for name, site in world.members.items():
        mirror = wait_until(lambda site=site: review_at(site, review.review_id), 60, name)
        assert mirror == replace(review, held_at=SiteId.parse(world.holder.id))
        with client_as(world.reviewer(name), site.internal_url) as api:
            listed = api.get("/reviews", params={"state": "pending"}).json()["reviews"]
        assert review.review_id in {r["review_id"] for r in listed}
    exchange = world.holder.site.jobs.loops.review_exchange
    offered = wait_until(lambda: exchange.offered_to(review.review_id), 60, "all offered")
    assert offered == tuple(sorted(SiteId.parse(site.id) for site in world.members.values()))
    p4 = world.net.sites["p4"]
    assert review_at(p4, review.review_id) is None
    with client_as(p4.identity, world.holder.external_url) as peer:
        refused = peer.get(f"/reviews/{review.review_id}/files")
    assert refused.status_code == 404, refused.text
    with client_as(world.reviewer("p3b"), world.members["p3b"].internal_url) as api:
        files = api.get(f"/reviews/{review.review_id}/files")
    assert files.status_code == 200 and files.json()["files"] == [
        {"path": "counts.csv", "size": len(FILES["counts.csv"])}
    ]


def test_the_first_decision_wins_naming_its_site_and_a_later_one_is_given_up(
    world: World,
) -> None:
    """p3's reviewer approves at p3's second site: p1 records the approval for p3,
    signed by that site, its audit record naming it. p2's reviewer then rejects at p2's
    site: p1 refuses it as decided, and p2's site stops reporting it after a few tries,
    recording that it was refused; the result stays approved."""
    review = world.request()
    for name, site in world.members.items():
        wait_until(lambda site=site: review_at(site, review.review_id), 60, name)
    p3b = world.members["p3b"]
    with client_as(world.reviewer("p3b"), p3b.internal_url) as api:
        approved = api.post(f"/reviews/{review.review_id}/approve", json={"reason": "fine"})
    assert approved.status_code == 200, approved.text
    held = wait_until(
        lambda: (r := world.held(review.review_id)).state.decided and r, 60, "the approval"
    )
    assert (held.state, held.decided_by_party) == (
        ReviewState.APPROVED,
        PartyId.parse(p3b.party.id),
    )
    approval = world.holder.services.oversight.reviews.approval(held)
    assert approval is not None and approval.statement.site == SiteId.parse(p3b.id)
    (decided,) = _records(world.holder, "decide", review.review_id)
    assert decided.details["site"] == p3b.id and decided.actor == p3b.party.id

    p2 = world.members["p2"]
    with client_as(world.reviewer("p2"), p2.internal_url) as api:
        rejected = api.post(f"/reviews/{review.review_id}/reject", json={"reason": "no"})
    assert rejected.status_code == 200, rejected.text  # decided there: the mirror is p2's
    (given_up,) = wait_until(
        lambda: _records(p2, "report", review.review_id), 60, "the report given up"
    )
    assert given_up.outcome == "refused" and given_up.details["tries"] == CONFLICTING_REPORTS
    assert "already approved" in given_up.details["why"]
    assert world.held(review.review_id) == held


def _records(site: SiteServer, action: str, review_id: str) -> list[Any]:
    """The review audit records of `action` about review `review_id` at `site`."""
    page = site.services.oversight.audit.page(AuditQuery(kind=AuditKind.REVIEW), 500)
    return [
        r.entry
        for r in page.records
        if r.entry.action == action and r.entry.details.get("review_id") == review_id
    ]
