"""The audit hash chain: a change, removal or insertion is named at the first broken record."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mahiru.model.audit import (
    GENESIS,
    AuditEntry,
    AuditKind,
    AuditRecord,
    check_chain,
    record_hash,
    shorten,
)

START = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def chain(count: int) -> list[AuditRecord]:
    """`count` records, each linked to the one before."""
    records: list[AuditRecord] = []
    prev = GENESIS
    for seq in range(1, count + 1):
        entry = AuditEntry(
            AuditKind.STEP, "state", "running", job=f"job-{seq}", details={"n": seq, "x": "é"}
        )
        at = START + timedelta(seconds=seq)
        digest = record_hash(seq, at, entry, prev)
        records.append(AuditRecord(seq, at, entry, prev, digest))
        prev = digest
    return records


def test_a_whole_chain_is_intact_and_reports_its_newest_hash() -> None:
    records = chain(5)
    check = check_chain(records, head=5)
    assert check.intact
    assert (check.records, check.head, check.head_hash) == (5, 5, records[-1].hash)


def test_an_empty_log_is_intact() -> None:
    check = check_chain([], head=0)
    assert check.intact and check.head_hash == GENESIS


@pytest.mark.parametrize(
    "change",
    [
        lambda e: replace(e, outcome="succeeded"),
        lambda e: replace(e, details={"n": 3, "x": "e"}),
        lambda e: replace(e, party="party:evil.org:evil"),
        lambda e: replace(e, kind="job"),
    ],
)
def test_a_changed_record_is_named(change: object) -> None:
    """Changing any field of record 3 without fixing its hash breaks the chain at 3."""
    records = chain(5)
    records[2] = replace(records[2], entry=change(records[2].entry))  # type: ignore[operator]
    check = check_chain(records, head=5)
    assert (check.broken_at, check.records) == (3, 2)
    assert check.problem == "record 3 was changed: its content does not match its hash"


def test_a_changed_time_is_named() -> None:
    records = chain(4)
    records[1] = replace(records[1], at=records[1].at + timedelta(microseconds=1))
    assert check_chain(records, head=4).broken_at == 2


def test_a_record_rehashed_after_a_change_breaks_the_link_to_the_next() -> None:
    """Someone who also recomputes the changed record's hash is caught at the next record."""
    records = chain(5)
    entry = replace(records[2].entry, outcome="succeeded")
    records[2] = replace(
        records[2], entry=entry, hash=record_hash(3, records[2].at, entry, records[2].prev)
    )
    check = check_chain(records, head=5)
    assert check.broken_at == 4
    assert "does not follow record 3" in (check.problem or "")


def test_a_deleted_record_is_named() -> None:
    records = chain(5)
    del records[1]
    check = check_chain(records, head=5)
    assert (check.broken_at, check.problem) == (2, "record 2 is missing")


def test_deleted_newest_records_are_named_against_the_head() -> None:
    records = chain(5)
    check = check_chain(records[:3], head=5)
    assert (check.broken_at, check.problem) == (4, "records 4 to 5 are missing")


def test_an_inserted_record_is_named() -> None:
    """A forged record slipped in after 2 (later ones renumbered) breaks the chain."""
    records = chain(5)
    forged_entry = AuditEntry(AuditKind.DECISION, "run step", "allowed")
    forged_at = records[1].at
    forged = AuditRecord(
        3,
        forged_at,
        forged_entry,
        records[1].hash,
        record_hash(3, forged_at, forged_entry, records[1].hash),
    )
    shifted = [replace(record, seq=record.seq + 1) for record in records[2:]]
    check = check_chain([*records[:2], forged, *shifted], head=6)
    assert check.broken_at == 4
    assert "does not follow record 3" in (check.problem or "")


def test_a_record_appended_behind_the_log_s_back_is_named() -> None:
    """A record past the log's head (its counter not moved) is reported."""
    records = chain(4)
    check = check_chain(records, head=3)
    assert (check.broken_at, check.problem) == (4, "record 4 is beyond the log's head (3)")


def test_long_explanations_are_cut_with_a_note() -> None:
    assert shorten("abc", 5) == "abc"
    assert shorten("abcdefgh", 5) == "abcde\n... (3 more characters)"
