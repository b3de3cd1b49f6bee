"""The audit log's records and the hash chain that makes tampering visible.

A site writes one record for every policy decision it takes, every image it
sends or receives, every rule it adds, revokes or rejects, every job and step
state change, every review of a release asked for and decided, and every
caller it refuses. Each record carries the SHA-256 of the record before it
(`prev`) and its own hash over its whole content, so changing, deleting or
inserting a record breaks the chain at that record;
`check_chain` walks a log and names the first record where it breaks.

A chain proves the log is whole only up to its newest hash: someone who can
rewrite the database can also rewrite every hash after a change. Writing the
head hash (`ChainCheck.head_hash`) somewhere else now and then anchors it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from mahiru.model.canonical import canonical_json

#: The `prev` of the first record.
GENESIS = "0" * 64

#: The longest explanation kept in a record; longer ones are cut there.
MAX_EXPLANATION = 16_000


class AuditKind(StrEnum):
    """What a record is about."""

    DECISION = "decision"
    TRANSFER = "transfer"
    RULE = "rule"
    JOB = "job"
    STEP = "step"
    REFUSAL = "refusal"
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """What happened, as the writer states it (the log adds order, time and hashes).

    `party` is the party the event concerns (a job's submitter, a party that
    receives an image). `actor` is who asked or acted (a site, party or
    certificate); `user` is the person (`Person`'s text form, `name@party`)
    whose request it was, for every act of a user: an upload, a rule added or
    revoked, a job submitted or cancelled, a download.
    """

    #: An `AuditKind` (kept as text, so a tampered row still reads and fails its check).
    kind: str
    action: str
    outcome: str
    actor: str | None = None
    party: str | None = None
    job: str | None = None
    step: str | None = None
    asset: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)
    user: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the fields every record hash covers, less order and time)."""
        return {
            "kind": str(self.kind),
            "action": self.action,
            "outcome": self.outcome,
            "actor": self.actor,
            "user": self.user,
            "party": self.party,
            "job": self.job,
            "step": self.step,
            "asset": self.asset,
            "details": dict(self.details) if isinstance(self.details, Mapping) else self.details,
        }


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An entry as stored: its place in the log, its time, and its links in the chain."""

    seq: int
    at: datetime
    entry: AuditEntry
    prev: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as the API serves it."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            **self.entry.to_dict(),
            "prev": self.prev,
            "hash": self.hash,
        }


def record_hash(seq: int, at: datetime, entry: AuditEntry, prev: str) -> str:
    """The SHA-256 (hex) of a record: its number, time, content and the hash before it.

    A record without a `user` is hashed without that key, as every record was
    before records named the user: those keep verifying, and a user given to
    one of them (or taken from a newer one) changes its hash.
    """
    content = entry.to_dict()
    if content["user"] is None:
        del content["user"]
    document = {"seq": seq, "at": at.isoformat(), "prev": prev, **content}
    return hashlib.sha256(canonical_json(document)).hexdigest()


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The outcome of walking a log: whole, or broken first at `broken_at` and why."""

    records: int
    head: int
    head_hash: str
    broken_at: int | None = None
    problem: str | None = None
    #: The first record this check walked (1: the whole chain; more: from a checkpoint).
    verified_from: int = 1

    @property
    def intact(self) -> bool:
        """Whether every record is there, unchanged and in order."""
        return self.broken_at is None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "intact": self.intact,
            "records": self.records,
            "head": self.head,
            "head_hash": self.head_hash,
            "broken_at": self.broken_at,
            "problem": self.problem,
            "verified_from": self.verified_from,
        }


def check_chain(
    records: Iterable[AuditRecord], head: int, *, after: int = 0, after_hash: str = GENESIS
) -> ChainCheck:
    """Walk `records` (oldest first) against the log's last number `head`.

    Names the first record that is missing, out of place, changed, or not
    linked to the one before it; records after `head` were added behind the
    log's back. With `after`, the walk starts at the record after that one,
    trusting it to hash to `after_hash` (a checkpoint verified before).
    """
    expected, prev, count = after + 1, after_hash, 0

    def broken(at: int, problem: str) -> ChainCheck:
        return ChainCheck(count, head, prev, at, problem, after + 1)

    for record in records:
        if record.seq > head:
            return broken(record.seq, f"record {record.seq} is beyond the log's head ({head})")
        if record.seq != expected:
            return broken(expected, f"record {expected} is missing")
        if record.prev != prev:
            return broken(
                record.seq,
                f"record {record.seq} does not follow record {record.seq - 1}: a record"
                " before it was changed, removed or inserted",
            )
        if record_hash(record.seq, record.at, record.entry, record.prev) != record.hash:
            return broken(
                record.seq, f"record {record.seq} was changed: its content does not match its hash"
            )
        expected, prev, count = expected + 1, record.hash, count + 1
    if expected <= head:
        return broken(expected, f"records {expected} to {head} are missing")
    return ChainCheck(count, head, prev, verified_from=after + 1)


def shorten(text: str, limit: int = MAX_EXPLANATION) -> str:
    """`text`, cut at `limit` characters with a note saying so."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... ({len(text) - limit} more characters)"
