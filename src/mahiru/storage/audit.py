"""A site's audit log: appended inside the transactions whose changes it records.

`AuditLog.record` adds an entry to the current transaction (or to a new
one). The entry is numbered and chained just before that transaction commits,
after every other lock it took, so the log's order is commit order and a
rolled-back change leaves no record behind. Readers page through it newest
first; `verify` walks the whole chain oldest first, in batches, or (not
`full`) only the records after the last one this process verified: a page
that shows the chain's state on every load costs the records added since.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.engine import Row
from sqlalchemy.orm import Session

from mahiru.clock import SYSTEM_CLOCK, Clock
from mahiru.errors import NotFound
from mahiru.model.audit import (
    GENESIS,
    AuditEntry,
    AuditKind,
    AuditRecord,
    ChainCheck,
    check_chain,
    record_hash,
)
from mahiru.model.jobs import JobStatus, StepStatus
from mahiru.model.workflow import Job
from mahiru.storage.changelog import begin_change, current_version, next_version
from mahiru.storage.db import Database, positive_limit
from mahiru.storage.schema import AUDIT_LOG, audit_log, jobs

#: The most records one page holds.
MAX_PAGE = 500
#: Records read per query while verifying.
VERIFY_BATCH = 2_000


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Which records to list: all filters must match (None: any)."""

    job: str | None = None
    asset: str | None = None
    kind: AuditKind | None = None
    since: datetime | None = None
    #: Only records about this party (set for callers who may see no others).
    party: str | None = None
    #: Only records of this person's acts and about the jobs they submitted here
    #: (set for plain users, who see only their own jobs).
    person: str | None = None
    #: Only records older than this number (the `next` of the previous page).
    before: int | None = None


@dataclass(frozen=True, slots=True)
class AuditPage:
    """Records, newest first, and the `before` that continues the list (None: no more)."""

    records: list[AuditRecord]
    next: int | None


class AuditLog:
    """The append-only, hash-chained log of one site's events."""

    def __init__(self, database: Database, *, clock: Clock = SYSTEM_CLOCK) -> None:
        self._db = database
        self._clock = clock
        # The newest record a check found intact, and its hash (in memory, per process).
        self._checkpoint_lock = threading.Lock()
        self._checkpoint: tuple[int, str] = (0, GENESIS)

    def record(self, entry: AuditEntry) -> None:
        """Log `entry` with the current (or a new) transaction; it is kept only if that commits."""
        at = self._clock.now().astimezone(UTC)

        def append(session: Session) -> None:
            _append(session, entry, at)

        if self._db.writing:
            self._db.defer(append)
            return
        with self._db.transaction():
            self._db.defer(append)

    def page(self, query: AuditQuery, limit: int = 100) -> AuditPage:
        """The newest records matching `query`, at most `limit` (up to MAX_PAGE)."""
        limit = min(positive_limit(limit), MAX_PAGE)
        statement = _filtered(select(audit_log), query).order_by(audit_log.c.seq.desc())
        with self._db.read() as session:
            rows = session.execute(statement.limit(limit + 1)).all()
        records = [_record_from_row(row) for row in rows[:limit]]
        more = len(rows) > limit
        return AuditPage(records, records[-1].seq if more and records else None)

    def get(self, seq: int) -> AuditRecord:
        """One record by its number; NotFound if there is none."""
        with self._db.read() as session:
            row = session.execute(select(audit_log).where(audit_log.c.seq == seq)).one_or_none()
        if row is None:
            raise NotFound(f"there is no audit record {seq}", {"seq": seq})
        return _record_from_row(row)

    def head(self) -> int:
        """The number of the newest record (0 when the log is empty)."""
        with self._db.read() as session:
            return current_version(session, AUDIT_LOG)

    def verify(self, *, full: bool = True) -> ChainCheck:
        """Walk the chain and name the first record where it breaks, if any.

        Not `full`: walk only the records after the checkpoint (the newest
        record found intact before), after checking that record is still
        there and unchanged; changes further back are found by a full walk.
        A broken chain drops the checkpoint, so every later check walks it
        all and reports the break again.
        """
        with self._checkpoint_lock:
            after, after_hash = (0, GENESIS) if full else self._checkpoint
        with self._db.read() as session:
            head = current_version(session, AUDIT_LOG)
            check = _checkpoint_check(session, head, after, after_hash) or check_chain(
                _all_records(session, after), head, after=after, after_hash=after_hash
            )
        with self._checkpoint_lock:
            if not check.intact:
                self._checkpoint = (0, GENESIS)
            elif check.head >= self._checkpoint[0]:
                self._checkpoint = (check.head, check.head_hash)
        return check


def rule_entry(
    outcome: str,
    rule_id: str,
    rule: str | None = None,
    *,
    source: str | None = None,
    actor: str | None = None,
    reason: str | None = None,
    user: str | None = None,
) -> AuditEntry:
    """The record of a rule `added`, `revoked` or `rejected` (from `source`, a peer, if any),
    at the request of `user` (None: arrived by replication)."""
    details = {"rule_id": rule_id, "rule": rule, "source": source, "reason": reason}
    return AuditEntry(
        AuditKind.RULE,
        "rule",
        outcome,
        actor=actor if actor is not None else source,
        details={key: value for key, value in details.items() if value is not None},
        user=user,
    )


def job_entry(old: JobStatus | None, new: JobStatus, user: str | None = None) -> AuditEntry:
    """The record of a job submitted here entering a state (`old` None: just created),
    by the act of `user` (None: the site moved it along)."""
    details: dict[str, str | None] = {"from": None if old is None else old.state.value}
    if new.reason:
        details["reason"] = new.reason
    return AuditEntry(
        AuditKind.JOB,
        "state",
        new.state.value,
        actor=str(new.submitter_site),
        party=str(new.submitter),
        job=new.job_id,
        details=details,
        user=user,
    )


def step_entry(
    job: Job, old: StepStatus | None, new: StepStatus, user: str | None = None
) -> AuditEntry:
    """The record of a step of `job` entering a state (`old` None: just handed over),
    by the act of `user` (None: the site moved it along)."""
    details: dict[str, object] = {"from": None if old is None else old.state.value}
    if new.reason:
        details["reason"] = new.reason
    if new.exit_code is not None:
        details["exit_code"] = new.exit_code
    if new.results:
        details["results"] = {output: str(rid) for output, rid in new.results.items()}
    return AuditEntry(
        AuditKind.STEP,
        "state",
        new.state.value,
        actor=str(new.site),
        party=str(job.submitter),
        job=new.job_id,
        step=new.step,
        details=details,
        user=user,
    )


def _append(session: Session, entry: AuditEntry, at: datetime) -> None:
    last = begin_change(session, AUDIT_LOG)
    prev = GENESIS
    if last:
        stored = session.execute(
            select(audit_log.c.hash).where(audit_log.c.seq == last)
        ).scalar_one_or_none()
        # A missing head row is tampering; chaining to GENESIS keeps it visible.
        prev = stored if stored is not None else GENESIS
    seq = next_version(session, AUDIT_LOG, last)
    values: dict[str, Any] = entry.to_dict()
    values.update(seq=seq, at=at, prev=prev, hash=record_hash(seq, at, entry, prev))
    session.execute(audit_log.insert().values(values))


def _filtered(statement: Select[Any], query: AuditQuery) -> Select[Any]:
    for column, value in (
        (audit_log.c.job, query.job),
        (audit_log.c.asset, query.asset),
        (audit_log.c.kind, None if query.kind is None else query.kind.value),
        (audit_log.c.party, query.party),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if query.person is not None:
        own_jobs = select(jobs.c.id).where(jobs.c.submitted_by == query.person)
        statement = statement.where(
            or_(audit_log.c.user == query.person, audit_log.c.job.in_(own_jobs))
        )
    if query.since is not None:
        statement = statement.where(audit_log.c.at >= query.since)
    if query.before is not None:
        statement = statement.where(audit_log.c.seq < query.before)
    return statement


def _checkpoint_check(session: Session, head: int, seq: int, hash: str) -> ChainCheck | None:
    """A broken check if the checkpoint record `seq` is gone or changed; None if it stands."""
    if seq == 0:
        return None

    def broken(problem: str) -> ChainCheck:
        return ChainCheck(0, head, hash, seq, problem, seq)

    if head < seq:
        return broken(f"records {head + 1} to {seq} are missing: the log is shorter than before")
    row = session.execute(select(audit_log).where(audit_log.c.seq == seq)).one_or_none()
    if row is None:
        return broken(f"record {seq} is missing")
    record = _record_from_row(row)
    if record.hash != hash or record_hash(seq, record.at, record.entry, record.prev) != hash:
        return broken(f"record {seq} was changed since it was last verified")
    return None


def _all_records(session: Session, after: int = 0) -> Iterator[AuditRecord]:
    while True:
        rows = session.execute(
            select(audit_log)
            .where(audit_log.c.seq > after)
            .order_by(audit_log.c.seq)
            .limit(VERIFY_BATCH)
        ).all()
        for row in rows:
            yield _record_from_row(row)
        if len(rows) < VERIFY_BATCH:
            return
        after = rows[-1]._mapping["seq"]


def _record_from_row(row: Row[Any]) -> AuditRecord:
    data = row._mapping
    entry = AuditEntry(
        kind=data["kind"],
        action=data["action"],
        outcome=data["outcome"],
        actor=data["actor"],
        party=data["party"],
        job=data["job"],
        step=data["step"],
        asset=data["asset"],
        details=data["details"],
        user=data["user"],
    )
    return AuditRecord(data["seq"], data["at"], entry, data["prev"], data["hash"])
