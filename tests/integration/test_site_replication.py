"""Replication between a real registry and three real sites over mutual TLS.

Every site pulls the registry, then every other site's rules; each rule is
checked on its own against the registry's keys, so bad rules are rejected one
by one while the good ones around them replicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.sites import (
    DATABASE_PARAMS,
    DatabaseUrls,
    Network,
    SiteServer,
    database_urls,
    may_access,
    network,
)

from mahiru.errors import Conflict, MahiruError, PermissionDenied
from mahiru.model.identifiers import AssetId, SiteId
from mahiru.policy.permissions import primary
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import SignedRule, sign_revocation, sign_rule
from mahiru.services.site.policy_view import Concerning
from mahiru.storage import RuleRepository, create_database

pytestmark = pytest.mark.integration


@pytest.fixture(params=DATABASE_PARAMS)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseUrls]:
    """Fresh databases on each backend in turn."""
    with database_urls(request, tmp_path_factory) as urls:
        yield urls


@pytest.fixture
def net(tmp_path: Path, databases: DatabaseUrls) -> Iterator[Network]:
    """A registry and the sites of p1, p2 and p3, registered and replicated once."""
    with network(tmp_path, databases) as running:
        running.replicate_all()
        yield running


def _data(party: str, name: str) -> str:
    return f"asset:{party}.org:{name}:{party}.org:site"


def _rules_at(site: SiteServer) -> set[str]:
    """The ids of the rules a site decides by (its own and replicated ones)."""
    with site.client(site.party.user) as user:
        return {entry["rule_id"] for entry in user.list_rules(include_replicated=True)}


def _status(site: SiteServer) -> dict[str, dict[str, object]]:
    with site.client(site.party.user) as user:
        return {source["source"]: source for source in user.status()["replication"]}


def _publish(site: SiteServer, *rules: SignedRule) -> None:
    with site.admin() as admin:
        for rule in rules:
            admin.add_rule(rule)


def _inject(site: SiteServer, *rules: SignedRule) -> None:
    """Store rules in a site's log without any check, as a broken or hostile peer would."""
    database = create_database(site.config.database_url)
    try:
        for rule in rules:
            RuleRepository(database).add(rule)
    finally:
        database.close()


def test_rules_published_at_each_site_reach_every_other_site(net: Network) -> None:
    """Each party's rules, added at its own site, reach every site's policy; revocations too."""
    published: dict[str, SignedRule] = {}
    for name, site in net.sites.items():
        others = [s.id for s in net.sites.values() if s is not site]
        rules = [site.party.sign(may_access(other, _data(name, "data"))) for other in others]
        _publish(site, *rules)
        published.update({rule.rule_id: rule for rule in rules})
    net.replicate_all()
    for site in net.sites.values():
        assert _rules_at(site) == set(published)
        sources = _status(site)
        assert all(s["last_error"] is None for s in sources.values()), sources
    # Site 3 decides about p1's data from its replica, without asking anyone.
    assert _releases(net.sites["p3"], net.sites["p2"], _data("p1", "data"))
    revoked = next(r for r in published.values() if str(r.rule.site) == net.sites["p2"].id)
    with net.sites["p1"].admin() as admin:
        admin.revoke(sign_revocation(revoked.rule, net.parties["p1"].main_key))
    net.replicate_all()
    for site in net.sites.values():
        assert _rules_at(site) == set(published) - {revoked.rule_id}
    assert not _releases(net.sites["p3"], net.sites["p2"], _data("p1", "data"))


def test_bad_rules_are_rejected_one_by_one(net: Network, caplog: pytest.LogCaptureFixture) -> None:
    """A bad signature, the wrong signer and an unknown namespace are each rejected alone."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    p1, p2 = net.parties["p1"], net.parties["p2"]
    first = p1.sign(may_access(site2.id, _data("p1", "first")))
    last = p1.sign(may_access(site2.id, _data("p1", "last")))
    forged = SignedRule(p1.sign(may_access(site2.id, _data("p1", "forged"))).rule, bytes(64))
    wrong_signer = p2.sign(may_access(site2.id, _data("p1", "wrong")))
    unknown = sign_rule(
        rule_from_dict(may_access(site2.id, "asset:p9.org:data:p9.org:site")), p1.main_key
    )
    _publish(site1, first)
    _inject(site1, forged, wrong_signer, unknown)
    _publish(site1, last)
    caplog.set_level(logging.WARNING, logger="mahiru.site.replication")
    status = site2.replicate()
    assert status["rejected_rules"] == 3
    assert {first.rule_id, last.rule_id} <= _rules_at(site2)
    assert not {forged.rule_id, wrong_signer.rule_id, unknown.rule_id} & _rules_at(site2)
    with site2.client(site2.party.user) as user:
        reasons = {entry["rule_id"]: entry["reason"] for entry in user.rejected_rules()}
    assert reasons[forged.rule_id].startswith("bad signature")
    assert reasons[wrong_signer.rule_id].startswith("signed by the wrong party")
    assert "party:p2.org:p2" in reasons[wrong_signer.rule_id]
    assert reasons[unknown.rule_id].startswith("unknown namespace")
    logged = [r for r in caplog.records if r.getMessage() == "rejected a rule from a peer"]
    assert {getattr(r, "rule_id", None) for r in logged} == set(reasons)
    # The next round neither re-reads nor re-rejects them.
    assert site2.replicate()["rejected_rules"] == 3


def test_sites_keep_replicating_while_the_registry_is_down(
    net: Network, tmp_path: Path, databases: DatabaseUrls
) -> None:
    """After a first sync the persisted replica carries on; the registry's news arrives later."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    net.registry.stop()
    during = site1.party.sign(may_access(site2.id, _data("p1", "during")))
    _publish(site1, during)
    site2.replicate()
    assert during.rule_id in _rules_at(site2)
    assert "Unavailable" in str(_status(site2)["registry"]["last_error"])
    # Even a restarted site knows its peers from its persisted replica.
    site2.stop()
    site2.start()
    later = site1.party.sign(may_access(site2.id, _data("p1", "later")))
    _publish(site1, later)
    site1.replicate()  # site1 still accepts site2 as a registered peer
    site2.replicate()
    assert {during.rule_id, later.rule_id} <= _rules_at(site2)
    # The registry comes back, with a new party and site that site2 then learns about.
    net.registry.start()
    p4 = net.certs.party("p4")
    site4 = SiteServer(
        net.certs,
        p4,
        "site",
        database_url=databases("site-p4"),
        data_dir=tmp_path / "data-p4",
        registry_url=net.registry.url,
    )
    net.register(p4, site4)
    site4.start()
    try:
        site4.replicate()  # to learn its own party's key from the registry
        news = p4.sign(may_access(site2.id, _data("p4", "data")))
        _publish(site4, news)
        site2.replicate()
        site2.replicate()
        assert _status(site2)["registry"]["last_error"] is None
        assert news.rule_id in _rules_at(site2)
    finally:
        site4.stop()


def test_a_peer_that_is_down_does_not_stop_the_others(net: Network) -> None:
    """Site 3 being unreachable is logged in the status; site 1's rules still arrive."""
    site1, site2, site3 = (net.sites[name] for name in ("p1", "p2", "p3"))
    site3.stop()
    rule = site1.party.sign(may_access(site2.id, _data("p1", "data")))
    _publish(site1, rule)
    site2.replicate()
    status = _status(site2)
    assert "Unavailable" in str(status[site3.id]["last_error"])
    assert status[site1.id]["last_error"] is None
    assert rule.rule_id in _rules_at(site2)
    site3.start()
    site2.replicate()
    assert _status(site2)[site3.id]["last_error"] is None


def test_a_reset_peer_is_replicated_again_from_the_start(
    net: Network, databases: DatabaseUrls
) -> None:
    """A peer whose log starts over (a lower version) is forgotten and read again from 0."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    old = [site1.party.sign(may_access(site2.id, _data("p1", f"old{i}"))) for i in range(3)]
    _publish(site1, *old)
    site2.replicate()
    assert _status(site2)[site1.id]["version"] == 3
    assert _decides(site2, site2, _data("p1", "old0"))
    site1.stop()
    site1.config = site1.config.model_copy(update={"database_url": databases("site-p1-new")})
    site1.start()
    site1.replicate()  # the new database knows no keys yet
    new = site1.party.sign(may_access(site2.id, _data("p1", "new")))
    _publish(site1, new)
    site2.replicate()
    assert _status(site2)[site1.id]["version"] == 1
    rules = _rules_at(site2)
    assert new.rule_id in rules
    assert not {rule.rule_id for rule in old} & rules
    # The policy the site decides by forgot them too (it reloads after a forgotten source).
    assert _decides(site2, site2, _data("p1", "new"))
    assert not _decides(site2, site2, _data("p1", "old0"))


def test_replication_runs_in_the_background(net: Network) -> None:
    """With replication on, a site picks up its peers' new rules by itself."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    site2.stop()
    site2.config = site2.config.model_copy(update={"replication_interval_seconds": 0.2})
    site2.start(replication=True)
    rule = site1.party.sign(may_access(site2.id, _data("p1", "data")))
    _publish(site1, rule)
    deadline = time.monotonic() + 15
    while rule.rule_id not in _rules_at(site2):
        assert time.monotonic() < deadline, "the rule was not replicated in the background"
        time.sleep(0.1)


def _decides(site: SiteServer, grantee: SiteServer, asset: str) -> bool:
    """Whether `site`'s policy lets `grantee` access `asset` (no refresh, no record: the view
    as it is)."""
    grantee_id, asset_id = SiteId.parse(grantee.id), AssetId.parse(asset)
    reader = site.services.policy.reader()
    return reader.may_access(grantee_id, primary(asset_id), asset).allowed


def _releases(site: SiteServer, grantee: SiteServer, asset: str) -> bool:
    """Whether `site` would release `asset` to `grantee`: the audited decision its egress
    takes (refreshing the rules first if they deny it)."""
    grantee_id, asset_id = SiteId.parse(grantee.id), AssetId.parse(asset)
    decision = site.services.policy.decide(
        lambda engine: engine.may_access(grantee_id, primary(asset_id), asset),
        Concerning("release to site", grantee.id, asset=asset),
    )
    return decision.allowed


def test_a_site_takes_only_its_owners_rules(net: Network) -> None:
    """Copying another party's signed rule to one's own site is refused (403), in any form."""
    site1, site2, site3 = (net.sites[name] for name in ("p1", "p2", "p3"))
    p2_rule = net.parties["p2"].sign(may_access(site1.id, _data("p2", "data")))
    _publish(site2, p2_rule)
    p3_rule = net.parties["p3"].sign(may_access(site1.id, _data("p3", "data")))
    unknown = sign_rule(
        rule_from_dict(may_access(site1.id, "asset:p9.org:data:p9.org:site")),
        net.parties["p1"].main_key,
    )
    for site, rule in ((site1, p2_rule), (site1, p3_rule), (site3, p2_rule), (site1, unknown)):
        with site.admin() as admin, pytest.raises(PermissionDenied, match="stores only rules of"):
            admin.add_rule(rule)
    assert p2_rule.rule_id not in {r["rule_id"] for r in site1.admin().list_rules()}


@pytest.mark.parametrize("relay", ["own log", "third site"])
def test_a_revocation_beats_every_re_published_copy(net: Network, relay: str) -> None:
    """party2 revokes its rule at site2: every copy, whichever site relays it, loses force,
    at every site, and the rule can never be added again."""
    site1, site2, site3 = (net.sites[name] for name in ("p1", "p2", "p3"))
    p2 = net.parties["p2"]
    asset = _data("p2", "data")
    rule = p2.sign(may_access(site1.id, asset))
    _publish(site2, rule)
    # A copy published elsewhere, as a site from before the namespace check (or a
    # hostile one) would hold it: in site1's own log, or in site3's.
    _inject(site1 if relay == "own log" else site3, rule)
    net.replicate_all()
    assert all(_decides(site, site1, asset) for site in net.sites.values())
    with site2.admin() as admin:
        admin.revoke(sign_revocation(rule.rule, p2.main_key))
    net.replicate_all()
    for site in net.sites.values():
        assert rule.rule_id not in _rules_at(site), site.id
        assert not _decides(site, site1, asset), site.id
        assert not _releases(site, site1, asset), site.id
    # Never again: not at the owner's site, and a restarted site still knows it.
    with site2.admin() as admin, pytest.raises(Conflict, match="revoked"):
        admin.add_rule(rule)
    site1.stop()
    site1.start()
    assert not _decides(site1, site1, asset)


def test_a_revocation_from_another_namespace_undoes_nothing(net: Network) -> None:
    """A revocation counts only when signed for the rule's own namespace."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    asset = _data("p2", "data")
    rule = net.parties["p2"].sign(may_access(site1.id, asset))
    _publish(site2, rule)
    net.replicate_all()
    with site1.admin() as admin, pytest.raises(MahiruError):
        admin.revoke(sign_revocation(rule.rule, net.parties["p1"].main_key))
    net.replicate_all()
    assert _decides(site1, site1, asset)
