"""The policy a site decides by: its own rules plus every peer's, held in memory.

Decisions never touch the network: the view keeps a `PolicyEngine` over a
`RuleStore` built from the rules in force (this site's own and those
replicated from its peers, less every known revocation). A change to those
rules (`rules_changed`: rules added here or replicated, revocations) makes the
next engine from the current one at the cost of the change, and swaps it in
whole; a decision in progress keeps using the engine it started with, and no
decision waits for a change to be applied. `invalidate` (for what cannot be
told as a change, such as a peer's rules forgotten) rebuilds from storage.

The replica may lag a replication round behind rules just published
elsewhere (a job planned at another site from fresher rules arrives here
seconds later). So a denial made through `decide` brings the replica up to
date once and decides again before it stands; refreshes are rate-limited so
that callers cannot make the site replicate on every request.

The engine never leaves the view. Decisions that act (and are audited) go
through `decide`, which hands the engine to the evaluation for that one
decision; a job is planned through `plan`; questions that only read
(explanations, who may access or use an asset, which log a reader may see) go
through a `PolicyReader`, which can answer but never audits. `decide_once`
takes a decision about the same thing on the same basis once per set of rules
in force: asked again before the rules change, it answers from memory and
writes nothing. `decide_ahead` and `decide_announced` make one record of a
decision that two requests act on, one right after the other (a peer reads an
asset's record, then fetches its image).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import MahiruError, PermissionDenied
from mahiru.model.assets import SiteDescription
from mahiru.model.audit import shorten
from mahiru.model.identifiers import PartyId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.workflow import Job, Plan
from mahiru.planner import plan_job
from mahiru.planner.costs import Sizes
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.rules import Rule
from mahiru.policy.signing import Revocation, SignedRule
from mahiru.services.site.concerning import Concerning
from mahiru.services.site.policy_catch_up import SharedRuleWrites, caught_up
from mahiru.services.site.policy_reader import PolicyReader
from mahiru.services.site.policy_snapshot import PolicySnapshot
from mahiru.storage import AuditLog

__all__ = ["Concerning", "Evaluate", "PolicyReader", "PolicyView"]

logger = logging.getLogger("mahiru.site.policy")

#: The least time between two refreshes caused by denials (seconds).
MIN_REFRESH_INTERVAL = 1.0

#: How many decisions `decide_once` remembers at most (the oldest are forgotten first).
MAX_REMEMBERED = 10_000

#: How long a decision taken ahead of its act waits for that act (seconds).
AHEAD_SECONDS = 60.0

#: A decision made with a given engine.
Evaluate = Callable[[PolicyEngine], Decision]


@dataclass(frozen=True, slots=True)
class _Remembered:
    """A decision `decide_once` took, with the rules version and basis it was taken on."""

    version: int
    basis: object
    decision: Decision


@dataclass(frozen=True, slots=True)
class _Ahead:
    """The basis of a decision `decide_ahead` kept: when (monotonic) it was taken."""

    at: float


class PolicyView:
    """This site's view of all valid, unrevoked rules, and decisions made from it.

    `rules_changed` (called after every change to the stored rules, with the
    change) makes the next snapshot at once, at the cost of the change.
    `invalidate` only marks the view stale; the next decision rebuilds it from
    `rules()` and `revocations()`.
    """

    def __init__(
        self,
        rules: Callable[[], Iterable[SignedRule]],
        *,
        revocations: Callable[[], Iterable[Revocation]] = tuple,
        min_refresh_interval: float = MIN_REFRESH_INTERVAL,
        clock: Clock = SYSTEM_CLOCK,
        audit: AuditLog | None = None,
        on_decision: Callable[[Decision], None] | None = None,
        shared: SharedRuleWrites | None = None,
    ) -> None:
        self._rules = rules
        # Rule writes of every process of the site (None with one process, which learns
        # of each change through `rules_changed`); the counts the snapshot was read at,
        # and the version of the site's rule log it holds (policy_catch_up.py).
        self._shared = shared
        self._read_at: tuple[int, int] | None = None
        self._own_version = 0
        self._revocations = revocations
        self._audit = audit
        self._on_decision = on_decision
        self._lock = threading.Lock()
        self._stale = True
        self._snapshot: PolicySnapshot | None = None
        self._refresher: Callable[[], object] | None = None
        self._refresh_lock = threading.Lock()
        self._min_refresh_interval = min_refresh_interval
        self._clock = clock
        self._last_refresh: float | None = None
        self._remembered: OrderedDict[Concerning, _Remembered] = OrderedDict()
        self._remembered_lock = threading.Lock()

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
        return self._decide(evaluate, about)[0]

    def decide_once(self, evaluate: Evaluate, about: Concerning, *, basis: object) -> Decision:
        """`decide`, unless this was allowed before on the same rules: then that decision.

        A decision about `about` taken on an equal `basis` (what the decision
        depends on besides the rules, such as the job and its plan) is taken
        again, and audited, only after the rules in force changed. Denials are
        not remembered: each one is decided (and refreshed) anew.
        """
        version = self._current().version
        with self._remembered_lock:
            remembered = self._remembered.get(about)
        if remembered is not None and remembered.version == version and remembered.basis == basis:
            return remembered.decision
        decision, version = self._decide(evaluate, about)
        with self._remembered_lock:
            self._remembered.pop(about, None)
            if decision.allowed:
                self._remembered[about] = _Remembered(version, basis, decision)
                while len(self._remembered) > MAX_REMEMBERED:
                    self._remembered.popitem(last=False)
        return decision

    def decide_ahead(self, evaluate: Evaluate, about: Concerning) -> Decision:
        """`decide`, for what announces an act (a record before its image): an allowed
        decision is kept for that one act, which `decide_announced` then takes."""
        decision, version = self._decide(evaluate, about)
        if decision.allowed:
            ahead = _Ahead(self._clock.monotonic())
            with self._remembered_lock:
                self._remembered[about] = _Remembered(version, ahead, decision)
                while len(self._remembered) > MAX_REMEMBERED:
                    self._remembered.popitem(last=False)
        return decision

    def decide_announced(self, evaluate: Evaluate, about: Concerning) -> Decision:
        """`decide`, except that the record `decide_ahead` wrote about `about` stands
        for this act too (used up) if the rules in force are the same and it is at most
        AHEAD_SECONDS old: one act, one record.

        `evaluate` runs either way, on the rules in force: the caller acts on what it
        read from them beside the decision (a result's review rules, say), so a kept
        decision never stands in for the evaluation itself.
        """
        with self._remembered_lock:
            kept = self._remembered.get(about)
            if kept is not None and isinstance(kept.basis, _Ahead):
                del self._remembered[about]
            else:
                kept = None
        snapshot = self._current()
        if (
            kept is not None
            and isinstance(kept.basis, _Ahead)
            and kept.version == snapshot.version
            and self._clock.monotonic() - kept.basis.at <= AHEAD_SECONDS
        ):
            decision = evaluate(snapshot.engine)
            if decision.allowed:  # as recorded ahead: the same rules decided it
                return decision
        return self._decide(evaluate, about)[0]

    def forget(self, *, job: str, step: str | None = None) -> None:
        """Drop the decisions `decide_once` remembers about `job` (or one step of it): settled.

        Remembered decisions are bounded anyway (`MAX_REMEMBERED`); this keeps
        the memory to what is still undecided.
        """
        with self._remembered_lock:
            for about in list(self._remembered):
                if about.job == job and (step is None or about.step == step):
                    del self._remembered[about]

    def _decide(self, evaluate: Evaluate, about: Concerning) -> tuple[Decision, int]:
        """The decision that stands and the version of the rules it was made from; audited."""
        snapshot = self._current()
        decision = evaluate(snapshot.engine)
        if not decision.allowed and self.refresh():
            snapshot = self._current()
            decision = evaluate(snapshot.engine)
        if self._audit is not None:
            self._audit.record(about.entry(decision))
        if self._on_decision is not None:
            self._on_decision(decision)
        return decision, snapshot.version

    def plan(
        self,
        job: Job,
        sites: Callable[[], Sequence[SiteDescription]],
        sizes: Sizes | None = None,
    ) -> Plan:
        """The planner's plan for `job` on `sites()` under the current rules.

        A job no plan is permitted for is planned again after one refresh (the
        replica may lag behind rules just added elsewhere), on the sites as
        they are then. The caller records the outcome (`planned`).
        """
        try:
            return plan_job(job, sites(), self._current().engine, sizes)
        except PermissionDenied:
            if not self.refresh():
                raise
            return plan_job(job, sites(), self._current().engine, sizes)

    def planned(self, about: Concerning, allowed: bool, explanation: str) -> None:
        """Record the outcome of planning a job submitted here (see `plan`)."""
        if self._audit is not None:
            self._audit.record(about.record(allowed, {"explanation": shorten(explanation)}))

    def reader(self) -> PolicyReader:
        """Read-only, unaudited answers from the current rules (one snapshot: keep it for
        one related set of questions)."""
        return PolicyReader(self._current().engine)

    def _current(self) -> PolicySnapshot:
        """The current snapshot (keep using it for one related set of decisions).

        Never a half-built one: before the first build completes every caller
        waits for it; during a rebuild the others keep the previous one.
        """
        snapshot = self._snapshot
        if snapshot is not None and not self._stale and not self._written_elsewhere():
            return snapshot
        with self._lock:
            shared = self._shared
            counts = None if shared is None else shared.counts()
            read_at = self._read_at
            if self._snapshot is not None and not self._stale:
                if counts == read_at:
                    return self._snapshot
                if shared is not None and counts and read_at and counts[1] == read_at[1]:
                    # Only this site's own rules moved: follow its rule log.
                    self._snapshot, self._own_version = caught_up(
                        self._snapshot, self._own_version, shared.own_changes
                    )
                    self._read_at = counts
                    return self._snapshot
            # Cleared (and the counts read) before reading, so a change committed
            # during the read marks the view stale again instead of being lost.
            self._stale = False
            own_version = 0 if shared is None else shared.own_version()
            try:
                self._snapshot = self._build(self._snapshot)
            except BaseException:
                self._stale = True
                raise
            self._read_at, self._own_version = counts, own_version
            return self._snapshot

    def _written_elsewhere(self) -> bool:
        """Whether rules were written (by any process) since the snapshot was read."""
        return self._shared is not None and self._shared.counts() != self._read_at

    def invalidate(self) -> None:
        """Note that the stored rules changed; the next decision sees the change."""
        self._stale = True

    def rules_changed(
        self, added: Iterable[SignedRule] = (), revoked: Iterable[Revocation] = ()
    ) -> None:
        """Rules were stored (`added`) or revoked (`revoked`); the next decision sees it.

        Call it after the change is committed: the next snapshot is made from
        the current one at the cost of the change, while decisions go on with
        the current one. A view not built yet, or about to be rebuilt, reads
        the change from storage instead (as does one whose rules are written by
        several processes: the count of writes moved).
        """
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or self._stale or self._shared is not None:
                return
            self._snapshot = snapshot.changed(added, revoked)

    def _build(self, previous: PolicySnapshot | None) -> PolicySnapshot:
        snapshot = PolicySnapshot.built(self._rules(), self._revocations(), previous)
        logger.info("policy loaded", extra={"rules": len(snapshot.by_id)})
        return snapshot

    def rule(self, rule_id: str) -> Rule | None:
        """The rule in force with this id; None if there is none (never added, or revoked)."""
        signed = self.signed_rule(rule_id)
        return None if signed is None else signed.rule

    def signed_rule(self, rule_id: str) -> SignedRule | None:
        """The rule in force with this id as its owner signed it; None if there is none."""
        return self._current().by_id.get(rule_id)

    def rule_count(self) -> int:
        """How many distinct rules decisions are made from."""
        return self.reader().rule_count()

    def explain(
        self,
        job: Job,
        item: WorkflowItem,
        *,
        site: SiteId | None = None,
        party: PartyId | None = None,
    ) -> Decision:
        """The access (with `site`) or use (with `party`) decision for one item of `job`.

        An explanation only: not audited, and nothing may act on it."""
        return self.reader().explain(job, item, site=site, party=party)
