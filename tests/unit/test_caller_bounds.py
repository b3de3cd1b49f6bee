"""Rate limits per identity and the folding of refusal records, against a clock the test
moves (the integration tests run them over TLS: tests/integration/test_bounded_callers.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from mahiru.api.rate_limits import RateLimit
from mahiru.errors import RateLimited
from mahiru.model.audit import AuditEntry
from mahiru.services.site.refusals import MAX_FIELD, OTHERS, Refusal, RefusalRecorder


class Clock:
    """A clock that moves only when told."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.seconds, UTC)

    def monotonic(self) -> float:
        return self.seconds

    def sleep(self, seconds: float) -> None:
        self.seconds += seconds


class Log:
    """Collects what would be written to the audit log."""

    def __init__(self) -> None:
        self.entries: list[AuditEntry] = []

    def record(self, entry: AuditEntry) -> None:
        self.entries.append(entry)


def test_a_bucket_allows_its_burst_then_refuses_until_it_refills() -> None:
    """Five at once pass, the sixth is RateLimited with a whole-second Retry-After."""
    clock = Clock()
    limit = RateLimit("requests", burst=5, per_second=0.5, tracked=10, clock=clock)
    for _ in range(5):
        limit.check("a")
    with pytest.raises(RateLimited) as refused:
        limit.check("a")
    assert refused.value.retry_after == 2
    assert refused.value.details == {"retry_after_seconds": 2}
    clock.sleep(2)
    limit.check("a")


def test_one_identity_s_flood_leaves_the_others_their_own_buckets() -> None:
    """Another identity is not limited by a flooding one."""
    limit = RateLimit("requests", burst=2, per_second=0.001, tracked=10, clock=Clock())
    for _ in range(2):
        limit.check("flood")
    with pytest.raises(RateLimited):
        limit.check("flood")
    limit.check("quiet")
    limit.check("quiet")


def test_only_the_most_recent_identities_are_tracked() -> None:
    """A flood of new identities never grows the buckets beyond `tracked`."""
    limit = RateLimit("requests", burst=1, per_second=0.001, tracked=100, clock=Clock())
    for n in range(10_000):
        limit.check(f"identity {n}")
    assert len(limit) == 100


def _refusal(identity: str = "fp1", reason: str = "not a site", path: str = "/x") -> Refusal:
    return Refusal(identity, reason, f"CN={identity}", {"method": "GET", "path": path})


def _recorder(clock: Clock, log: Log, **options: Any) -> RefusalRecorder:
    return RefusalRecorder(log, clock, interval=60, **options)  # type: ignore[arg-type]


def test_the_first_refusal_is_written_at_once_and_the_rest_as_one_summary() -> None:
    """1,000 refusals in an interval: one record at once, one summary with 999 after it."""
    clock, log = Clock(), Log()
    recorder = _recorder(clock, log)
    for n in range(1000):
        recorder.refused(_refusal(path=f"/x/{n}"))
    assert [entry.details["count"] for entry in log.entries] == [1]
    clock.sleep(59)
    assert not recorder.due()
    clock.sleep(1)
    assert recorder.due()
    recorder.flush_due()
    assert [entry.details["count"] for entry in log.entries] == [1, 999]
    assert log.entries[1].details["path"] == "/x/999" and "folded" in log.entries[1].details
    recorder.refused(_refusal())  # a new interval starts with a record of its own
    assert [entry.details["count"] for entry in log.entries] == [1, 999, 1]


def test_pending_summaries_are_written_when_the_site_stops() -> None:
    """Nothing counted is lost: `flush` writes every pending summary."""
    clock, log = Clock(), Log()
    recorder = _recorder(clock, log)
    for reason in ("a", "b"):
        for _ in range(3):
            recorder.refused(_refusal(reason=reason))
    recorder.flush()
    assert sorted(entry.details["count"] for entry in log.entries) == [1, 1, 2, 2]


def test_caller_chosen_text_is_cut_and_identities_beyond_the_bound_fold_together() -> None:
    """A 60 kB path is cut to MAX_FIELD; the 11th identity and later share one record."""
    clock, log = Clock(), Log()
    recorder = _recorder(clock, log, max_folds=10)
    for n in range(1000):
        recorder.refused(_refusal(identity=f"fp{n}", path="/" + "x" * 60_000))
    assert len(log.entries) == 11
    assert all(len(entry.details["path"]) <= MAX_FIELD for entry in log.entries)
    assert log.entries[-1].actor == OTHERS[0]
    recorder.flush()
    assert sum(entry.details["count"] for entry in log.entries) == 1000
