"""The audit records of refused callers, folded so that a flood costs a bounded log.

The first refusal of an identity for a reason is recorded at once. Further
ones within `interval` seconds are only counted, and written as one summary
record (with the count and the last request's method and path) when the
interval has ended, at the next refusal or request after it, or when the
site stops. Every text a caller chooses is cut to a fixed length, and at
most `max_folds` (identity, reason) pairs are followed at once; refusals
beyond them fold into one pair for all others. So an interval adds at most
2 x (max_folds + 1) records, each of at most MAX_RECORD_BYTES (docs/security.md).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from mahiru.clock import Clock
from mahiru.model.audit import AuditEntry, AuditKind
from mahiru.storage import AuditLog

#: The longest text kept from a refused request's field (path, reason, names).
MAX_FIELD = 256
#: What one refusal record's fields add up to at most, in bytes of JSON (see the tests).
MAX_RECORD_BYTES = 4096
#: The key of the pair that stands for every identity beyond `max_folds`.
OTHERS = ("(other identities)", "(refused)")


def cut(text: str, limit: int = MAX_FIELD) -> str:
    """`text` cut to `limit` characters, saying how long it was."""
    if len(text) <= limit:
        return text
    note = f"... ({len(text)} characters)"
    return text[: limit - len(note)] + note


@dataclass(frozen=True, slots=True)
class Refusal:
    """One refused request: who (a certificate fingerprint or an address), why, and what."""

    identity: str
    reason: str
    actor: str
    #: method, path and the certificate's subject, issuer and fingerprint, as presented.
    details: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class _Fold:
    started: float
    last: Refusal
    count: int = 0


class RefusalRecorder:
    """Writes refusals to the audit log, one record per (identity, reason) per interval
    plus one summary of the rest."""

    def __init__(
        self, audit: AuditLog, clock: Clock, *, interval: float, max_folds: int = 1000
    ) -> None:
        self._audit = audit
        self._clock = clock
        self._interval = interval
        self._max_folds = max_folds
        self._lock = threading.Lock()
        self._folds: dict[tuple[str, str], _Fold] = {}
        self._next_due: float | None = None

    def refused(self, refusal: Refusal) -> None:
        """Note one refusal: recorded now if it is the first of its interval, else counted."""
        refusal = _bounded(refusal)
        now = self._clock.monotonic()
        due = self._take_due(now)
        with self._lock:
            key = (refusal.identity, refusal.reason)
            if key not in self._folds and len(self._folds) >= self._max_folds:
                key = OTHERS
                refusal = Refusal(OTHERS[0], OTHERS[1], OTHERS[0], refusal.details)
            fold = self._folds.get(key)
            if fold is not None:
                fold.count += 1
                fold.last = refusal
                first = False
            else:
                self._folds[key] = _Fold(now, refusal)
                first = True
                if self._next_due is None or now + self._interval < self._next_due:
                    self._next_due = now + self._interval
        for ended in due:
            self._write(ended.last, ended.count, summary=True)
        if first:
            self._write(refusal, 1, summary=False)

    def due(self) -> bool:
        """Whether an interval has ended whose summary is not written yet."""
        due = self._next_due
        return due is not None and self._clock.monotonic() >= due

    def flush_due(self) -> None:
        """Write the summaries of the intervals that have ended (cheap when none has)."""
        for ended in self._take_due(self._clock.monotonic()):
            self._write(ended.last, ended.count, summary=True)

    def flush(self) -> None:
        """Write every pending summary now (when the site stops)."""
        with self._lock:
            pending = list(self._folds.values())
            self._folds.clear()
            self._next_due = None
        for fold in pending:
            if fold.count:
                self._write(fold.last, fold.count, summary=True)

    def _take_due(self, now: float) -> list[_Fold]:
        with self._lock:
            if self._next_due is None or now < self._next_due:
                return []
            ended = [
                key for key, fold in self._folds.items() if now - fold.started >= self._interval
            ]
            folds = [self._folds.pop(key) for key in ended]
            self._next_due = min(
                (fold.started + self._interval for fold in self._folds.values()), default=None
            )
        return [fold for fold in folds if fold.count]

    def _write(self, refusal: Refusal, count: int, *, summary: bool) -> None:
        details: dict[str, object] = {
            **refusal.details,
            "reason": refusal.reason,
            "count": count,
        }
        if summary:
            details["folded"] = f"refusals after the first within {self._interval:g} s"
        self._audit.record(
            AuditEntry(
                AuditKind.REFUSAL, "authenticate", "refused", actor=refusal.actor, details=details
            )
        )


def _bounded(refusal: Refusal) -> Refusal:
    return Refusal(
        cut(refusal.identity),
        cut(refusal.reason),
        cut(refusal.actor),
        {cut(key, 32): cut(value) for key, value in list(refusal.details.items())[:8]},
    )
