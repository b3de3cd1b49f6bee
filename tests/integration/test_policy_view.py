"""A site's policy view: a denial is decided again after one (rate-limited) refresh."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mahiru.errors import Unavailable
from mahiru.model.audit import AuditKind
from mahiru.model.identifiers import AssetId, SiteId
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.permissions import primary
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import SignedRule, sign_revocation, sign_rule
from mahiru.services.site import PolicyView
from mahiru.services.site.policy_view import Concerning
from mahiru.storage import AuditLog, AuditQuery, Database, RuleRepository

pytestmark = pytest.mark.integration

ASSET = AssetId.parse("asset:p1.example.org:data:p1.example.org:site1")
SITE2 = SiteId.parse("site:p2.example.org:site2")
KEY = Ed25519PrivateKey.generate()
GRANT = {"type": "MayAccess", "site": str(SITE2), "asset": str(ASSET)}


def access(asset: AssetId = ASSET) -> Callable[[PolicyEngine], Decision]:
    """The question a site asks before it lets SITE2 have `asset`: may SITE2 access it?"""
    return lambda engine: engine.may_access(SITE2, primary(asset), str(asset))


def release(view: PolicyView, asset: AssetId = ASSET) -> Decision:
    """The (audited) decision on releasing `asset` to SITE2, as the site's egress takes it."""
    return view.decide(access(asset), Concerning("release to site", str(SITE2), asset=str(asset)))


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def view(db: Database, clock: Clock) -> PolicyView:
    return PolicyView(RuleRepository(db).active_rules, clock=clock)


class Refresher:
    """Stands for a replication round: the first call brings the missing rule in."""

    def __init__(self, db: Database, view: PolicyView, fail: bool = False) -> None:
        self.db, self.view, self.fail = db, view, fail
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        if self.fail:
            raise Unavailable("the registry does not answer")
        if self.calls == 1:
            rule = rule_from_dict({"type": "MayAccess", "site": str(SITE2), "asset": str(ASSET)})
            RuleRepository(self.db).add(sign_rule(rule, KEY))
            self.view.invalidate()


def test_a_denial_is_decided_again_after_a_refresh(db: Database, view: PolicyView) -> None:
    """The rule arrives with the refresh: the second decision, made after it, allows."""
    refresher = Refresher(db, view)
    view.use_refresher(refresher)
    assert release(view).allowed
    assert refresher.calls == 1


def test_an_allowed_decision_never_refreshes(db: Database, view: PolicyView) -> None:
    refresher = Refresher(db, view)
    view.use_refresher(refresher)
    assert release(view).allowed
    assert release(view).allowed
    assert refresher.calls == 1  # only the first, denied, decision refreshed


def test_denials_refresh_at_most_once_per_interval(
    db: Database, view: PolicyView, clock: Clock
) -> None:
    """Callers cannot make the site replicate on every request."""
    other = AssetId.parse("asset:p1.example.org:other:p1.example.org:site1")
    refresher = Refresher(db, view)
    view.use_refresher(refresher)
    assert not release(view, other).allowed
    assert not release(view, other).allowed
    clock.now += 0.5
    assert not release(view, other).allowed
    assert refresher.calls == 1
    clock.now += 1.0
    assert not release(view, other).allowed
    assert refresher.calls == 2


def test_without_a_refresher_a_denial_stands(view: PolicyView) -> None:
    assert not view.refresh()
    decision = release(view)
    assert not decision.allowed
    assert decision.failures()


def test_a_failing_refresh_leaves_the_denial_and_is_logged(
    db: Database, view: PolicyView, caplog: pytest.LogCaptureFixture
) -> None:
    refresher = Refresher(db, view, fail=True)
    view.use_refresher(refresher)
    with caplog.at_level(logging.WARNING, logger="mahiru.site.policy"):
        assert not release(view).allowed
    assert refresher.calls == 1
    assert "the registry does not answer" in caplog.text


def test_a_fresh_view_never_decides_from_a_half_built_engine(db: Database) -> None:
    """Threads asking a fresh view at once all wait for the first build: none sees 0 rules."""
    grant = {"type": "MayAccess", "site": str(SITE2), "asset": str(ASSET)}
    rules = [sign_rule(rule_from_dict(grant), KEY)]

    def slow_rules() -> list[SignedRule]:
        time.sleep(0.3)  # a slow build is the case under test: the askers must wait for it
        return rules

    view = PolicyView(slow_rules)
    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = list(pool.map(lambda _: view.rule_count(), range(4)))
        allowed = list(pool.map(lambda _: release(view).allowed, range(4)))
    assert counts == [1, 1, 1, 1]
    assert allowed == [True] * 4


def test_every_decision_that_stands_is_audited_with_what_it_concerned(
    db: Database, clock: Clock
) -> None:
    """The denial before a refresh is not recorded; the decision after it is, with its
    context, explanation and allowing rules; a denial that stands is recorded as denied."""
    audit = AuditLog(db)
    view = PolicyView(RuleRepository(db).active_rules, clock=clock, audit=audit)
    about = Concerning("run step", str(SITE2), party="party:p1.example.org:p1", job="j1", step="s")
    assert not view.decide(access(), about)
    view.use_refresher(Refresher(db, view))
    clock.now += 10
    assert view.decide(access(), about)
    decisions = audit.page(AuditQuery(kind=AuditKind.DECISION)).records
    denied, allowed = (r.entry for r in reversed(decisions))
    assert (denied.outcome, allowed.outcome) == ("denied", "allowed")
    for entry in (denied, allowed):
        assert (entry.kind, entry.action, entry.actor, entry.party, entry.job, entry.step) == (
            "decision",
            "run step",
            str(SITE2),
            "party:p1.example.org:p1",
            "j1",
            "s",
        )
    assert "no MayAccess" in denied.details["explanation"] and not denied.details["rules"]
    assert allowed.details["decision"] == f"{SITE2} may access {ASSET}"
    assert len(allowed.details["rules"]) == 1
    assert audit.verify().intact


def _decisions(audit: AuditLog) -> list[str]:
    """The outcomes of the decisions recorded, oldest first."""
    return [
        r.entry.outcome for r in reversed(audit.page(AuditQuery(kind=AuditKind.DECISION)).records)
    ]


def test_decide_once_takes_a_decision_again_only_when_something_it_rests_on_changed(
    db: Database, clock: Clock
) -> None:
    """Asked again about the same thing: answered from memory while the rules and the basis
    are the same; decided (and recorded) anew for another basis, after `forget`, and after
    a rule change."""
    audit = AuditLog(db)
    view = PolicyView(RuleRepository(db).active_rules, clock=clock, audit=audit)
    RuleRepository(db).add(sign_rule(rule_from_dict(GRANT), KEY))
    about = Concerning("run step", str(SITE2), job="j1", step="s")

    def ask(basis: object) -> bool:
        decision = view.decide_once(access(), about, basis=basis)
        return decision.allowed

    assert all(ask("plan 1") for _ in range(5))
    assert _decisions(audit) == ["allowed"]
    assert ask("plan 2") and ask("plan 2")
    assert _decisions(audit) == ["allowed"] * 2
    view.forget(job="j1", step="s")
    assert ask("plan 2") and ask("plan 2")
    assert _decisions(audit) == ["allowed"] * 3
    other = AssetId.parse("asset:p1.example.org:other:p1.example.org:site1")
    RuleRepository(db).add(sign_rule(rule_from_dict({**GRANT, "asset": str(other)}), KEY))
    view.invalidate()
    assert ask("plan 2") and ask("plan 2")
    assert _decisions(audit) == ["allowed"] * 4


def test_decide_once_remembers_no_denial(db: Database, clock: Clock) -> None:
    """A denial is decided anew each time it is asked (a refresh may have changed it)."""
    audit = AuditLog(db)
    view = PolicyView(RuleRepository(db).active_rules, clock=clock, audit=audit)
    about = Concerning("run step", str(SITE2), job="j1", step="s")
    for _ in range(3):
        decision = view.decide_once(access(), about, basis="plan")
        assert not decision.allowed
    assert _decisions(audit) == ["denied"] * 3


def test_a_rule_change_told_to_the_view_is_seen_next_without_reading_storage(
    db: Database,
) -> None:
    """`rules_changed` makes the next decision see an added or revoked rule at once; a
    decision holding the engine from before keeps deciding as before."""
    reads = 0

    def rules() -> list[SignedRule]:
        nonlocal reads
        reads += 1
        return RuleRepository(db).active_rules()

    view = PolicyView(rules)
    assert not release(view).allowed
    before = view.reader()
    grant = sign_rule(rule_from_dict(GRANT), KEY)
    RuleRepository(db).add(grant)
    view.rules_changed([grant])
    assert release(view).allowed
    assert not before.may_access(SITE2, primary(ASSET), str(ASSET)).allowed
    view.rules_changed([], [sign_revocation(grant.rule, KEY)])
    assert not release(view).allowed
    view.rules_changed([grant])  # the same rule replicated again from a peer
    assert not release(view).allowed  # a revoked rule never comes back
    assert reads == 1
