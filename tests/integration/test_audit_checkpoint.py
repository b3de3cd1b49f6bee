"""Verifying the audit log walks only what was added since the last check, still finds any
change from the checkpoint on, and a full walk stays available (and finds the rest)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, update
from tests.support.db import sqlite_urls
from tests.support.sites import network

from mahiru.model.audit import AuditEntry, AuditKind
from mahiru.storage import AuditLog, Database
from mahiru.storage.schema import AUDIT_LOG, audit_log, change_heads

pytestmark = pytest.mark.integration


def _add(log: AuditLog, count: int) -> None:
    for n in range(count):
        log.record(AuditEntry(AuditKind.JOB, "state", "running", details={"n": n}))


def test_a_check_walks_only_the_records_added_since_the_last_one(db: Database) -> None:
    """After a check of 50 records, the next walks none, and after 5 more, those 5."""
    log = AuditLog(db)
    _add(log, 50)
    first = log.verify(full=False)
    assert (first.intact, first.records, first.verified_from) == (True, 50, 1)
    again = log.verify(full=False)
    assert (again.intact, again.records, again.head) == (True, 0, 50)
    _add(log, 5)
    later = log.verify(full=False)
    assert (later.intact, later.records, later.verified_from, later.head) == (True, 5, 51, 55)
    assert later.head_hash == log.verify().head_hash and log.verify().records == 55


@pytest.mark.parametrize(
    ("seq", "change", "problem"),
    [
        (20, "modified", "was changed since it was last verified"),  # the checkpoint itself
        (20, "deleted", "missing"),
        (23, "modified", "changed"),  # after the checkpoint
        (25, "deleted", "missing"),
        (22, "deleted", "missing"),
    ],
)
def test_a_change_from_the_checkpoint_on_is_found_without_a_full_walk(
    db: Database, seq: int, change: str, problem: str
) -> None:
    """The checkpoint record and every record after it are checked on each partial check."""
    log = AuditLog(db)
    _add(log, 20)
    assert log.verify(full=False).intact
    _add(log, 5)
    with db.transaction() as session:
        if change == "modified":
            session.execute(update(audit_log).where(audit_log.c.seq == seq).values(outcome="x"))
        else:
            session.execute(delete(audit_log).where(audit_log.c.seq == seq))
    check = log.verify(full=False)
    assert (check.intact, check.broken_at) == (False, seq)
    assert problem in (check.problem or "")


def test_a_change_before_the_checkpoint_is_found_by_a_full_walk_and_then_always(
    db: Database,
) -> None:
    """A record changed behind the checkpoint: the full walk names it, and every partial
    check after that walks the whole chain again and names it too."""
    log = AuditLog(db)
    _add(log, 10)
    assert log.verify(full=False).intact
    with db.transaction() as session:
        session.execute(update(audit_log).where(audit_log.c.seq == 3).values(outcome="x"))
    assert log.verify().broken_at == 3
    assert log.verify(full=False).broken_at == 3


def test_a_log_cut_short_behind_the_checkpoint_is_found(db: Database) -> None:
    """Deleting the newest records, checkpoint included, is a break, not a shorter chain."""
    log = AuditLog(db)
    _add(log, 10)
    assert log.verify(full=False).intact
    with db.transaction() as session:
        session.execute(delete(audit_log).where(audit_log.c.seq > 7))
        session.execute(
            update(change_heads).where(change_heads.c.log == AUDIT_LOG).values(version=7)
        )
    check = log.verify(full=False)
    assert (check.intact, check.broken_at) == (False, 10)
    assert "the log is shorter than before" in (check.problem or "")


def test_the_api_verifies_from_the_checkpoint_and_in_full_on_request(tmp_path: Path) -> None:
    """`/internal/audit/verify` walks only what is new; `?full=true` walks everything."""
    with network(tmp_path, sqlite_urls(tmp_path), ("p1",)) as net:
        site = net.sites["p1"]
        with httpx.Client(verify=site.party.admin.ssl_context(), timeout=30) as client:
            url = f"{site.internal_url}/audit/verify"
            client.get(url).raise_for_status()
            again = client.get(url).json()
            full = client.get(url, params={"full": "true"}).json()
        assert again["intact"] and again["verified_from"] == again["head"] + 1
        assert full["intact"] and full["verified_from"] == 1 and full["records"] == full["head"]
