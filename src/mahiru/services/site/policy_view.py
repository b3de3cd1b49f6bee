"""The policy a site decides by: its own rules plus every peer's, held in memory.

Decisions never touch the network: the view keeps a `PolicyEngine` over a
`RuleStore` built from the rules in force (this site's own and those
replicated from its peers, less every known revocation), and rebuilds it
(swapping it in whole) after those rules change. A decision in progress keeps using the engine it
started with.

The replica may lag a replication round behind rules just published
elsewhere (a job planned at another site from fresher rules arrives here
seconds later). So a denial made through `decide` brings the replica up to
date once and decides again before it stands; refreshes are rate-limited so
that callers cannot make the site replicate on every request.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import MahiruError
from mahiru.model.audit import AuditEntry, AuditKind, shorten
from mahiru.model.identifiers import AssetId, PartyId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.workflow import Job
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.signing import SignedRule
from mahiru.policy.store import RuleStore
from mahiru.storage import AuditLog

logger = logging.getLogger("mahiru.site.policy")

#: The least time between two refreshes caused by denials (seconds).
MIN_REFRESH_INTERVAL = 1.0

#: A decision made with a given engine.
Evaluate = Callable[[PolicyEngine], Decision]


@dataclass(frozen=True, slots=True)
class Concerning:
    """What a decision is about and who asked, as the audit log records it.

    `action` names the decision path (`run step`, `receive steps`, `live
    grant`, `release to site`, `release to party`); `party` is the party
    whose job or download it is, which lets that party's users read the record;
    `user` the person (`name@party`) whose request it decides, if a person's.
    """

    action: str
    actor: str
    party: str | None = None
    job: str | None = None
    step: str | None = None
    asset: str | None = None
    user: str | None = None

    def entry(self, decision: Decision) -> AuditEntry:
        """The audit record of `decision` made about this."""
        return self.record(
            decision.allowed,
            {
                "decision": decision.headline(),
                "explanation": shorten(decision.explain()),
                "rules": decision.rule_ids(),
            },
        )

    def record(self, allowed: bool, details: dict[str, object]) -> AuditEntry:
        """The audit record of a decision about this, allowed or not, with `details`."""
        return AuditEntry(
            AuditKind.DECISION,
            self.action,
            "allowed" if allowed else "denied",
            actor=self.actor,
            party=self.party,
            job=self.job,
            step=self.step,
            asset=self.asset,
            details=details,
            user=self.user,
        )


class PolicyView:
    """This site's view of all valid, unrevoked rules, and decisions made from it.

    `invalidate` (called after every change to the stored rules) only marks
    the view stale; the next decision rebuilds it once, so publishing many
    rules in a row costs one rebuild, not one per rule.
    """

    def __init__(
        self,
        rules: Callable[[], Iterable[SignedRule]],
        *,
        min_refresh_interval: float = MIN_REFRESH_INTERVAL,
        clock: Clock = SYSTEM_CLOCK,
        audit: AuditLog | None = None,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        self._rules = rules
        self._audit = audit
        self._on_decision = on_decision
        self._lock = threading.Lock()
        self._stale = True
        self._engine: PolicyEngine | None = None
        self._refresher: Callable[[], object] | None = None
        self._refresh_lock = threading.Lock()
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._last_refresh: float | None = None

    def use_refresher(self, refresher: Callable[[], object]) -> None:
        """How to bring the replica up to date now (one replication round)."""
        self._refresher = refresher

    def refresh(self) -> bool:
        """Replicate now, unless that happened less than the minimum interval ago.

        Returns whether a refresh ran (False also without a refresher).
        """
        if self._refresher is None:
            return False
        with self._refresh_lock:
            now = self._clock.monotonic()
            last = self._last_refresh
            if last is not None and now - last < self._min_refresh_interval:
                return False
            self._last_refresh = now
        try:
            self._refresher()
        except MahiruError as error:
            logger.warning("cannot refresh the policy replica: %s", error.message)
            return False
        return True

    def decide(self, evaluate: Evaluate, about: Concerning) -> Decision:
        """`evaluate` with the current engine; a denial is decided again after a refresh.

        The decision that stands is written to the audit log, with `about`.
        """
        decision = evaluate(self.engine)
        if not decision.allowed and self.refresh():
            decision = evaluate(self.engine)
        if self._audit is not None:
            self._audit.record(about.entry(decision))
        if self._on_decision is not None:
            self._on_decision(decision)
        return decision

    def planned(self, about: Concerning, allowed: bool, explanation: str) -> None:
        """Record the planner's decision on a job submitted here (it plans with `engine`)."""
        if self._audit is not None:
            self._audit.record(about.record(allowed, {"explanation": shorten(explanation)}))

    @property
    def engine(self) -> PolicyEngine:
        """The current engine (a snapshot: keep using it for one related set of decisions).

        Never a half-built one: before the first build completes every caller
        waits for it; during a rebuild the others keep the previous engine.
        """
        engine = self._engine
        if engine is not None and not self._stale:
            return engine
        with self._lock:
            if self._engine is None or self._stale:
                # Cleared before reading, so a change committed during the
                # read marks the view stale again instead of being lost.
                self._stale = False
                try:
                    self._engine = self._build()
                except BaseException:
                    self._stale = True
                    raise
            return self._engine

    def invalidate(self) -> None:
        """Note that the stored rules changed; the next decision sees the change."""
        self._stale = True

    def _build(self) -> PolicyEngine:
        store = RuleStore(signed.rule for signed in self._rules())
        logger.info("policy loaded", extra={"rules": len(store)})
        return PolicyEngine(store)

    def rule_count(self) -> int:
        """How many distinct rules decisions are made from."""
        return len(self.engine.store)

    def may_access_asset(self, site: SiteId, asset: AssetId) -> Decision:
        """May `site` access (download) the primary asset `asset`?"""
        return self.decide(
            lambda engine: engine.may_access_asset(site, asset),
            Concerning("release to site", str(site), asset=str(asset)),
        )

    def explain(
        self,
        job: Job,
        item: WorkflowItem,
        *,
        site: SiteId | None = None,
        party: PartyId | None = None,
    ) -> Decision:
        """The access (with `site`) or use (with `party`) decision for one item of `job`."""
        return self.engine.explain_item(job, item, site=site, party=party)
