"""The audit log of a site under `/internal/audit`: list, show, verify.

Admins read every record; other users read the records of their own acts
(uploads, downloads, submissions, cancels) and about the jobs they submitted,
and get 403 for any other record. Listing
is paged newest first: pass a page's `next` as `before` for the one after it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, JsonValue

from mahiru.api.auth import UserCaller
from mahiru.api.routes.site.dependencies import Services, User
from mahiru.errors import InvalidInput, NotFound, NotKnown
from mahiru.model.audit import AuditKind, AuditRecord, ChainCheck
from mahiru.storage import AuditQuery

router = APIRouter(prefix="/internal/audit", tags=["audit"])


class AuditRecordOut(BaseModel):
    """One event of the site, in the hash chain."""

    seq: int
    at: datetime
    kind: str
    action: str
    outcome: str
    actor: str | None
    user: str | None
    party: str | None
    job: str | None
    step: str | None
    asset: str | None
    details: JsonValue
    prev: str
    hash: str

    @classmethod
    def of(cls, record: AuditRecord) -> AuditRecordOut:
        """The API form of a stored record."""
        entry = record.entry
        return cls(
            seq=record.seq,
            at=record.at,
            kind=entry.kind,
            action=entry.action,
            outcome=entry.outcome,
            actor=entry.actor,
            user=entry.user,
            party=entry.party,
            job=entry.job,
            step=entry.step,
            asset=entry.asset,
            details=dict(entry.details),
            prev=record.prev,
            hash=record.hash,
        )


class AuditPageOut(BaseModel):
    """Records newest first; `next` continues the list (as `before`), null at the end."""

    records: list[AuditRecordOut]
    next: int | None


class ChainCheckOut(BaseModel):
    """Whether the chain is whole; if not, the first broken record and why."""

    intact: bool
    records: int
    head: int
    head_hash: str
    broken_at: int | None
    problem: str | None
    verified_from: int

    @classmethod
    def of(cls, check: ChainCheck) -> ChainCheckOut:
        """The API form of a chain check."""
        return cls(**check.to_dict())


def audit_kind(text: str | None) -> AuditKind | None:
    """The kind named by a query parameter (None: any); InvalidInput naming the kinds."""
    if text is None:
        return None
    try:
        return AuditKind(text)
    except ValueError:
        kinds = ", ".join(kind.value for kind in AuditKind)
        raise InvalidInput(f"unknown audit record kind {text!r}; use one of {kinds}") from None


def readable_party(caller: UserCaller) -> str | None:
    """The only party whose records `caller` may read (None: any, for admins)."""
    return None if caller.is_admin else str(caller.party)


def readable_person(caller: UserCaller) -> str | None:
    """The person whose acts and jobs are the only records `caller` may read (None: any)."""
    return caller.person.jobs_submitted_by()


@router.get("", response_model=AuditPageOut, summary="List audit records")
def list_records(
    caller: User,
    services: Services,
    job: str | None = None,
    asset: str | None = None,
    kind: str | None = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 time")] = None,
    before: Annotated[int | None, Query(ge=1, description="a page's `next`")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPageOut:
    """Records matching every filter given, newest first (one party's for non-admins)."""
    if since is not None and since.tzinfo is None:
        raise InvalidInput("since must carry a time zone, e.g. 2026-12-06T10:00:00Z")
    query = AuditQuery(
        job=job,
        asset=asset,
        kind=audit_kind(kind),
        since=since,
        party=readable_party(caller),
        person=readable_person(caller),
        before=before,
    )
    page = services.oversight.audit.page(query, limit)
    return AuditPageOut(
        records=[AuditRecordOut.of(record) for record in page.records], next=page.next
    )


@router.get("/verify", response_model=ChainCheckOut, summary="Verify the audit chain")
def verify(
    caller: User,
    services: Services,
    full: Annotated[
        bool, Query(description="walk the whole chain, not only what was added since")
    ] = False,
) -> ChainCheckOut:
    """Recompute the hash chain from the last record verified (the whole chain with
    `full=true`); name the first broken record, if any."""
    return ChainCheckOut.of(services.oversight.audit.verify(full=full))


@router.get("/{seq}", response_model=AuditRecordOut, summary="Show an audit record")
def show(seq: int, caller: User, services: Services) -> AuditRecordOut:
    """One record; a record the caller may not read (neither their act nor about their
    job, unless the caller is an admin) is, to them, not there."""
    try:
        record = services.oversight.audit.get(seq)
    except NotFound:
        raise NotKnown("audit record", seq) from None
    if not caller.is_admin:
        # The same filter as listing, so that both agree on what a user reads.
        mine = AuditQuery(
            party=readable_party(caller), person=readable_person(caller), before=seq + 1
        )
        if services.oversight.audit.page(mine, 1).records[:1] != [record]:
            raise NotKnown("audit record", seq)
    return AuditRecordOut.of(record)
