"""The dashboard's audit page: the records the caller may read, newest first, filtered,
with the state of the hash chain."""

from __future__ import annotations

import json
import re
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from mahiru.api.routes.site.dashboard.formats import ID_CHARS, human_size, short_id
from mahiru.api.routes.site.dashboard.pages import BASE, RECORDS_PER_PAGE, Dashboard
from mahiru.api.routes.site.dependencies import Services, User
from mahiru.api.routes.site.internal.audit import audit_kind, readable_party, readable_person
from mahiru.model.audit import AuditKind, AuditRecord
from mahiru.storage import AuditQuery

router = APIRouter(prefix=BASE, include_in_schema=False)

#: The most characters of a record's line in its row (the details have the rest).
SUMMARY_CHARS = 120
#: A word too long for a table cell: an id, most likely (shown whole in the details).
_LONG_WORD = re.compile(rf"[^\s,;()]{{{ID_CHARS + 1},}}")


@router.get("/audit")
def audit(
    caller: User,
    dashboard: Dashboard,
    services: Services,
    job: str | None = None,
    asset: str | None = None,
    kind: str | None = None,
    before: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """One page of records matching the filters given, as the audit API lists them."""
    query = AuditQuery(
        job=job or None,
        asset=asset or None,
        kind=audit_kind(kind or None),
        party=readable_party(caller),
        person=readable_person(caller),
        before=before,
    )
    page = services.oversight.audit.page(query, RECORDS_PER_PAGE)
    filters = {"job": job or "", "asset": asset or "", "kind": kind or ""}
    more = f"{BASE}/audit?" + urlencode({**filters, "before": page.next or ""})
    return dashboard.render(
        "audit.html",
        caller,
        "Audit",
        "Audit log",
        check=services.oversight.audit.verify(full=False),
        query=query,
        kinds=[k.value for k in AuditKind],
        records=page.records,
        next=page.next,
        more=more,
        summary=_summary,
        details=_details,
    )


def _summary(record: AuditRecord) -> str:
    """A line about the record for its row: its decision, reason or rule (ids in it
    shortened), or what a transfer moved."""
    details = record.entry.details
    for key in ("decision", "reason", "rule"):
        value = details.get(key) if isinstance(details, dict) else None
        if value:
            line = _LONG_WORD.sub(lambda word: short_id(word.group()), str(value))
            return line if len(line) <= SUMMARY_CHARS else f"{line[: SUMMARY_CHARS - 1]}…"
    if record.entry.kind == AuditKind.TRANSFER and isinstance(details, dict):
        moved = details.get("bytes")
        size = human_size(moved) if isinstance(moved, int) else f"{moved} bytes"
        return f"{size} {details.get('from')} → {details.get('to')}"
    return "details"


def _details(record: AuditRecord) -> str:
    """Everything the record says, the ids its row shortens in full first."""
    entry = record.entry
    named = [
        f"{name}: {value}"
        for name, value in (
            ("actor", entry.actor),
            ("party", entry.party),
            ("user", entry.user),
            ("job", entry.job),
            ("step", entry.step),
            ("asset", entry.asset),
        )
        if value
    ]
    body = json.dumps(entry.details, indent=2, sort_keys=True)
    return "\n".join([*named, body])
