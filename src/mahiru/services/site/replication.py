"""Replication: pulling the registry and every other site's rules into this site's replica.

A round first brings the registry replica up to date, then asks each other
registered site for its rule changes since the version last applied from it.
Every rule and revocation is checked on its own against the keys of the
registry replica; good ones are stored, bad ones are recorded with the reason
and logged, and neither kind stops the other. A source that is down is
logged and retried next round; the persisted replica keeps the site working
meanwhile. A source reporting a lower version than the one applied was reset:
its replica is forgotten and replicated again from 0.

Each source stands alone: whatever one peer answers (malformed, hostile, or
something no one foresaw), only that peer's replication fails, with the
error in the status, and the round goes on to the next. A source that keeps
failing is tried less often (back-off), so a dead or hung peer does not slow
every round down.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import Conflict, InvalidSignature, MahiruError
from mahiru.model.identifiers import SiteId
from mahiru.model.registry import ChangeBatch, RegistryChange, SiteRecord
from mahiru.policy.changes import PeerRuleBatch, RejectedRule, RuleChange, UnreadableRuleChange
from mahiru.policy.signing import Revocation, SignedRule
from mahiru.retry import Backoff
from mahiru.services.background import Unexpected, guarded
from mahiru.services.site.validation import KeyRing
from mahiru.storage import REGISTRY_SOURCE, ReplicaRepository

logger = logging.getLogger("mahiru.site.replication")

#: How many changes are asked for at a time.
PAGE_SIZE = 500
#: At most this many pages are pulled from one source per round, so a round ends.
MAX_PAGES = 200
#: Failures in a row after which a source is skipped for a while, and the longest wait.
BACKOFF_AFTER = 3
MAX_BACKOFF_SECONDS = 300.0
#: From one second, doubling, once a source has failed `BACKOFF_AFTER` times.
SOURCE_BACKOFF = Backoff(1.0, cap=MAX_BACKOFF_SECONDS)
#: Rejected bodies larger than this, or not plain JSON text, are kept only as a note.
MAX_REJECTED_BODY = 64 * 1024


class RegistryFeed(Protocol):
    """Where registry changes come from (the registry client)."""

    def changes_since(
        self, version: int, limit: int | None = None
    ) -> ChangeBatch[RegistryChange]: ...


class RuleFeed(Protocol):
    """Where a peer's rule changes come from (its external API's client)."""

    def rule_changes(self, since: int, limit: int | None = None) -> PeerRuleBatch: ...


#: Gives the feed of a registered site's rules (usually a client for its external API).
RuleFeedFactory = Callable[[SiteRecord], RuleFeed]


@dataclass(frozen=True, slots=True)
class SourceStatus:
    """How replication from one source (the registry or a peer) went lately."""

    source: str
    version: int = 0
    last_attempt: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    applied: int = 0
    rejected: int = 0
    failures: int = 0  # failed attempts in a row
    next_attempt: datetime | None = None  # while backing off: not tried before this


def backoff_seconds(failures: int) -> float:
    """How long a source that failed `failures` times in a row is left alone."""
    if failures < BACKOFF_AFTER:
        return 0.0
    return SOURCE_BACKOFF.delay(failures - BACKOFF_AFTER + 1)


class Replicator:
    """Brings this site's replica of the registry and of its peers' rules up to date.

    `on_rules`, if given, is called with each page of a peer's rules and
    revocations once it is stored, so the policy view applies just that; then
    `on_change` is called only after a round that forgot a source (whose rules
    no longer count), so the view reloads. Without `on_rules`, `on_change` is
    called after every round that stored anything. `run_once` may be called
    from several threads; rounds take turns.
    """

    def __init__(
        self,
        site: SiteId,
        replica: ReplicaRepository,
        registry: RegistryFeed,
        peers: RuleFeedFactory,
        *,
        on_change: Callable[[], None],
        on_rules: Callable[[Sequence[SignedRule], Sequence[Revocation]], None] | None = None,
        page_size: int = PAGE_SIZE,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.site = site
        self._replica = replica
        self._registry = registry
        self._peers = peers
        self._on_change = on_change
        self._on_rules = on_rules
        self._forgot = False  # whether this round forgot a source's rules
        self._page_size = page_size
        self._clock = clock
        self._round_lock = threading.Lock()
        self._status_lock = threading.Lock()
        self._status: dict[str, SourceStatus] = {}

    def round(self) -> None:
        """One round, for the background loop (which logs what escapes it)."""
        self.run_once()

    def run_once(self, *, eager: bool = False) -> list[SourceStatus]:
        """Replicate the registry, then every other registered site's rules; return the status.

        Failures of single sources are logged and recorded in the status,
        never raised. A source that failed several times in a row is left
        alone for a while by the background rounds; `eager` tries it anyway,
        for when someone waits on the answer (an admin's "replicate now", or
        a denial about to stand that the source's rules might lift).
        """
        with self._round_lock:
            self._forgot = False
            changed = self._replicate(REGISTRY_SOURCE, self._pull_registry, eager)
            sites = self._replica.sites()
            registered = {str(site.id) for site in sites}
            with self._status_lock:
                registry_current = self._status[REGISTRY_SOURCE].last_error is None
            for source in self._replica.sources():
                # Only a registry replica fresh from this round says who left the network.
                if registry_current and source != REGISTRY_SOURCE and source not in registered:
                    # A site that left the network: its rules no longer count.
                    logger.info(
                        "forgetting a site that is no longer registered", extra={"source": source}
                    )
                    self._replica.forget(source)
                    with self._status_lock:
                        self._status.pop(source, None)
                    changed = self._forgot = True
            for site in sites:
                if site.id == self.site:
                    continue
                if not site.endpoints.external:
                    self._record(str(site.id), error="the site registered no external endpoint")
                    continue
                changed |= self._replicate(str(site.id), partial(self._pull_peer, site), eager)
            if self._forgot if self._on_rules is not None else changed:
                self._on_change()
        return self.status()

    def status(self) -> list[SourceStatus]:
        """The status of every source, the registry first, with the versions applied."""
        versions = self._replica.sources()
        # A batch is applied at the end of every successful round, by whichever process
        # of the site ran it (the loops process, when web workers ask): the latest counts.
        applied = self._replica.applied_at()
        with self._status_lock:
            known = dict(self._status)
        names = sorted(set(versions) | set(known), key=lambda s: (s != REGISTRY_SOURCE, s))
        statuses = []
        for name in names:
            status = known.get(name, SourceStatus(name))
            success = max(
                (at for at in (status.last_success, applied.get(name)) if at is not None),
                default=None,
            )
            statuses.append(replace(status, version=versions.get(name, 0), last_success=success))
        return statuses

    # --- one source ----------------------------------------------------------

    def _replicate(
        self, source: str, pull: Callable[[], tuple[int, int]], eager: bool = False
    ) -> bool:
        """Run `pull` for `source`, recording how it went; return whether anything changed.

        Nothing a source does escapes this: its failure is recorded in its own
        status and the round goes on with the next source.
        """
        started = self._clock.now()
        with self._status_lock:
            waiting = self._status.get(source, SourceStatus(source)).next_attempt
        if waiting is not None and started < waiting and not eager:
            return False  # backing off: tried again once the wait is over
        outcome = guarded(pull)
        if isinstance(outcome, Unexpected):
            error = outcome.error
            if isinstance(error, MahiruError):
                logger.warning(
                    "replication failed; retrying next round",
                    extra={"source": source, "error_type": error.type_name, "error": error.message},
                )
                reason = f"{error.type_name}: {error.message}"
            else:
                logger.error(
                    "replication failed unexpectedly; retrying next round",
                    exc_info=error,
                    extra={"source": source},
                )
                reason = f"Internal: {outcome.describe()}"[:500]
            self._record(source, attempt=started, error=reason)
            return False
        applied, rejected = outcome
        self._record(
            source, attempt=started, success=self._clock.now(), applied=applied, rejected=rejected
        )
        if applied or rejected:
            logger.info(
                "replicated",
                extra={"source": source, "applied": applied, "rejected": rejected},
            )
        return applied > 0

    def _record(
        self,
        source: str,
        *,
        attempt: datetime | None = None,
        success: datetime | None = None,
        error: str | None = None,
        applied: int = 0,
        rejected: int = 0,
    ) -> None:
        with self._status_lock:
            old = self._status.get(source, SourceStatus(source))
            when = attempt or self._clock.now()
            failures = old.failures + 1 if error is not None else 0
            wait = backoff_seconds(failures)
            self._status[source] = SourceStatus(
                source,
                old.version,
                when,
                success or old.last_success,
                error,
                applied,
                rejected,
                failures,
                when + timedelta(seconds=wait) if wait else None,
            )
        if wait:
            logger.warning(
                "backing off a failing source",
                extra={"source": source, "failures": failures, "seconds": wait},
            )

    def _pull_registry(self) -> tuple[int, int]:
        """Apply the registry's changes page by page; return (applied, 0)."""
        source = REGISTRY_SOURCE
        version = self._replica.last_version(source)
        applied = 0
        reset = False
        for _ in range(MAX_PAGES):
            batch = self._registry.changes_since(version, limit=self._page_size)
            if batch.version < version and not reset:
                version, reset = self._forget_reset(source, version, batch.version), True
                continue
            try:
                applied += self._replica.apply_registry_changes(batch.changes, batch.version)
            except Conflict:
                break  # another worker applied newer changes meanwhile
            version = batch.version
            if len(batch.changes) < self._page_size:
                break
        return applied, 0

    def _pull_peer(self, site: SiteRecord) -> tuple[int, int]:
        """Check and apply a peer's rule changes page by page; return (applied, rejected)."""
        source = str(site.id)
        feed = self._peers(site)
        keys = KeyRing.of(self._replica.parties())
        version = self._replica.last_version(source)
        applied = rejected_count = 0
        reset = False
        for _ in range(MAX_PAGES):
            batch = feed.rule_changes(version, limit=self._page_size)
            if batch.version < version and not reset:
                version, reset = self._forget_reset(source, version, batch.version), True
                continue
            accepted, rejected = self._check(source, batch.changes, keys)
            try:
                applied += self._replica.apply_rule_changes(
                    source, accepted, batch.version, rejected
                )
            except Conflict:
                break
            rejected_count += len(rejected)
            version = batch.version
            if self._on_rules is not None and accepted:
                self._on_rules(
                    [c.rule for c in accepted if c.rule is not None],
                    [c.revocation for c in accepted if c.revocation is not None],
                )
            if len(batch.changes) < self._page_size:
                break
        return applied, rejected_count

    def _check(
        self, source: str, changes: list[RuleChange | UnreadableRuleChange], keys: KeyRing
    ) -> tuple[list[RuleChange], list[RejectedRule]]:
        """Split a peer's changes into those to store and those rejected (each logged)."""
        accepted: list[RuleChange] = []
        rejected: list[RejectedRule] = []
        for change in changes:
            if isinstance(change, UnreadableRuleChange):
                reason = f"unreadable: {change.reason}"[:2000]
                rejected.append(
                    RejectedRule(
                        source,
                        change.version,
                        _plain_id(change.rule_id),
                        _storable(change.body),
                        reason,
                        self._clock.now(),
                    )
                )
            else:
                try:
                    keys.check_change(change)
                except InvalidSignature as error:
                    reason = error.message
                    rejected.append(
                        RejectedRule(
                            source,
                            change.version,
                            change.rule_id,
                            change.body(),
                            reason,
                            self._clock.now(),
                        )
                    )
                else:
                    accepted.append(change)
                    continue
            logger.warning(
                "rejected a rule from a peer",
                extra={
                    "source": source,
                    "version": change.version,
                    "rule_id": change.rule_id,
                    "reason": reason,
                },
            )
        return accepted, rejected

    def _forget_reset(self, source: str, applied: int, reported: int) -> int:
        logger.warning(
            "source was reset; replicating it again from the start",
            extra={"source": source, "applied": applied, "reported": reported},
        )
        self._replica.forget(source)
        self._forgot = True
        return 0


def _plain_text(text: str) -> bool:
    return "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)


def _plain_id(rule_id: str | None) -> str | None:
    return rule_id if rule_id is not None and len(rule_id) <= 128 and _plain_text(rule_id) else None


def _storable(body: Mapping[str, Any]) -> Mapping[str, Any]:
    """A rejected body as it can be kept: itself if small plain JSON text, else a note."""
    try:
        text = json.dumps(body, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return {"unstorable": "not plain JSON"}
    if len(text) > MAX_REJECTED_BODY or not _plain_text(text):
        return {"unstorable": f"{len(text)} characters, or text that cannot be stored"}
    return body
