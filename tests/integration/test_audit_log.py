"""The audit log: hash-chained in commit order, tamper-evident, party-scoped, and written by
every decision, transfer, rule change and refusal of a site (jobs: tests/e2e/test_audit_jobs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, insert, select, update
from tests.support.db import sqlite_urls
from tests.support.images import write_image
from tests.support.sites import Network, SiteServer, may_access, network

from mahiru.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.audit import AuditEntry, AuditKind, record_hash
from mahiru.model.identifiers import AssetId
from mahiru.policy.signing import sign_revocation
from mahiru.storage import AuditLog, AuditQuery, Database, create_database
from mahiru.storage.schema import audit_log

pytestmark = pytest.mark.integration

MAHIRU = str(Path(sys.executable).parent / "mahiru")


def _entry(n: int, **fields: Any) -> AuditEntry:
    return AuditEntry(
        fields.pop("kind", AuditKind.JOB), "state", "running", details={"n": n}, **fields
    )


# --- the log itself, on each backend -------------------------------------------------


def test_a_rolled_back_change_leaves_no_record_and_order_is_commit_order(db: Database) -> None:
    log = AuditLog(db)
    with pytest.raises(Conflict), db.transaction():
        log.record(_entry(1))
        raise Conflict("changed my mind")
    with db.transaction():
        log.record(_entry(2))
        with pytest.raises(Conflict), db.transaction():  # a savepoint that rolls back
            log.record(_entry(3))
            raise Conflict("not this part")
        log.record(_entry(4))
    log.record(_entry(5))  # no transaction open: one of its own
    page = log.page(AuditQuery())
    assert [record.entry.details["n"] for record in page.records] == [5, 4, 2]
    assert [record.seq for record in page.records] == [3, 2, 1]
    check = log.verify()
    assert check.intact and check.records == 3 and check.head_hash == page.records[0].hash


def _filled(db: Database, count: int = 6) -> AuditLog:
    log = AuditLog(db)
    for n in range(1, count + 1):
        log.record(_entry(n, job=f"job{n % 2}"))
    assert log.verify().intact
    return log


def test_a_modified_record_is_named(db: Database) -> None:
    log = _filled(db)
    with db.transaction() as session:
        session.execute(update(audit_log).where(audit_log.c.seq == 3).values(outcome="failed"))
    check = log.verify()
    assert (check.intact, check.broken_at) == (False, 3)
    assert "changed" in (check.problem or "")


def test_a_modified_record_with_a_recomputed_hash_is_named_at_the_next(db: Database) -> None:
    log = _filled(db)
    old = log.get(3)
    forged = AuditEntry(**{**old.entry.to_dict(), "outcome": "failed"})  # type: ignore[arg-type]
    with db.transaction() as session:
        session.execute(
            update(audit_log)
            .where(audit_log.c.seq == 3)
            .values(outcome="failed", hash=record_hash(3, old.at, forged, old.prev))
        )
    check = log.verify()
    assert check.broken_at == 4 and "does not follow record 3" in (check.problem or "")


@pytest.mark.parametrize("seq", [1, 4, 6])
def test_a_deleted_record_is_named(db: Database, seq: int) -> None:
    log = _filled(db)
    with db.transaction() as session:
        session.execute(delete(audit_log).where(audit_log.c.seq == seq))
    check = log.verify()
    assert check.broken_at == seq
    assert "missing" in (check.problem or "")


def test_an_inserted_record_is_named(db: Database) -> None:
    """A forged record linked correctly to record 2, the later ones renumbered, is caught."""
    log = _filled(db)
    second = log.get(2)
    with db.transaction() as session:
        for seq in range(6, 2, -1):  # one by one, newest first: no key collides
            session.execute(update(audit_log).where(audit_log.c.seq == seq).values(seq=seq + 1))
        forged = AuditEntry(AuditKind.DECISION, "run step", "allowed")
        at = second.at + timedelta(milliseconds=1)
        values = forged.to_dict()
        values.update(seq=3, at=at, prev=second.hash, hash=record_hash(3, at, forged, second.hash))
        session.execute(insert(audit_log).values(values))
    check = log.verify()
    assert check.broken_at == 4 and "does not follow record 3" in (check.problem or "")


def test_a_record_added_behind_the_log_s_back_is_named(db: Database) -> None:
    log = _filled(db, 2)
    last = log.get(2)
    entry = _entry(3)
    at = datetime.now(UTC)
    values = entry.to_dict()
    values.update(seq=3, at=at, prev=last.hash, hash=record_hash(3, at, entry, last.hash))
    with db.transaction() as session:
        session.execute(insert(audit_log).values(values))
    check = log.verify()
    assert check.broken_at == 3 and "beyond the log's head" in (check.problem or "")


def test_concurrent_writers_make_one_unbroken_chain(open_db: Any) -> None:
    """Four threads on their own connections append 25 records each: numbers 1..100, intact."""
    databases = [open_db() for _ in range(4)]
    errors: list[BaseException] = []

    def write(database: Database, worker: int) -> None:
        log = AuditLog(database)
        try:
            for n in range(25):
                log.record(_entry(n, job=f"w{worker}"))
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=write, args=(d, i)) for i, d in enumerate(databases)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    log = AuditLog(databases[0])
    check = log.verify()
    assert check.intact and check.records == 100
    with databases[0].read() as session:
        seqs = session.execute(select(audit_log.c.seq).order_by(audit_log.c.seq)).scalars().all()
    assert list(seqs) == list(range(1, 101))


def test_pages_run_newest_first_and_filters_combine(db: Database) -> None:
    log = AuditLog(db)
    for n in range(1, 8):
        log.record(_entry(n, job=f"job{n % 2}", party="party:p1.org:p1" if n < 5 else None))
    log.record(_entry(8, kind=AuditKind.RULE, asset="asset:p1.org:a:p1.org:site"))
    first = log.page(AuditQuery(job="job1"), limit=2)
    assert [r.entry.details["n"] for r in first.records] == [7, 5]
    second = log.page(AuditQuery(job="job1", before=first.next), limit=2)
    assert [r.entry.details["n"] for r in second.records] == [3, 1] and second.next is None
    assert [r.seq for r in log.page(AuditQuery(party="party:p1.org:p1")).records] == [4, 3, 2, 1]
    assert [r.seq for r in log.page(AuditQuery(kind=AuditKind.RULE)).records] == [8]
    assert [r.seq for r in log.page(AuditQuery(asset="asset:p1.org:a:p1.org:site")).records] == [8]
    later = datetime.now(UTC) + timedelta(hours=1)
    assert log.page(AuditQuery(since=later)).records == []


# --- what a site records, and who reads it ------------------------------------------------


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Network]:
    with network(tmp_path, sqlite_urls(tmp_path)) as running:
        running.replicate_all()
        yield running


def _records(site: SiteServer, **filters: Any) -> list[dict[str, Any]]:
    with site.admin() as admin:
        records: list[dict[str, Any]] = admin.audit_records(limit=500, **filters)["records"]
    return records


def _one(records: list[dict[str, Any]], **expected: Any) -> dict[str, Any]:
    found = [r for r in records if all(r.get(k) == v for k, v in expected.items())]
    assert found, f"no record with {expected} in {json.dumps(records, indent=1)[:3000]}"
    return found[0]


def test_asset_decisions_and_transfers_are_recorded(net: Network, tmp_path: Path) -> None:
    """Peer downloads, allowed or denied, and the owner's own each leave a decision; images a
    transfer."""
    site1, site2, site3 = (net.sites[name] for name in ("p1", "p2", "p3"))
    asset_id = AssetId.parse("asset:p1.org:data1:p1.org:site")
    image = write_image(tmp_path / "data1.tar", 300_000)
    size = image.stat().st_size
    with site1.admin() as admin:
        admin.upload_asset(Asset(asset_id, AssetKind.DATA), image)
        admin.add_rule(site1.party.sign(may_access(site2.id, str(asset_id))))
    with site1.peer(site2.identity) as peer:
        peer.download_image(asset_id, tmp_path / "got.tar")
    with site1.peer(site3.identity) as peer, pytest.raises(PermissionDenied):
        peer.download_image(asset_id, tmp_path / "stolen.tar")
    with site1.client(site1.party.user) as user:
        user.download_image(asset_id, tmp_path / "mine.tar")

    records = _records(site1, asset=str(asset_id))
    allowed = _one(records, action="release to site", outcome="allowed", actor=site2.id)
    assert allowed["kind"] == "decision" and allowed["details"]["rules"]
    assert "may access" in allowed["details"]["explanation"]
    denied = _one(records, action="release to site", outcome="denied", actor=site3.id)
    assert "no MayAccess" in denied["details"]["explanation"]
    own = _one(records, action="release to party", outcome="allowed", party=site1.party.id)
    assert "the asset is its own" in own["details"]["explanation"]
    upload = _one(records, kind="transfer", action="receive")
    assert upload["details"]["bytes"] == size and upload["details"]["from"] == site1.party.id
    to_peer = _one(records, kind="transfer", action="send", actor=site2.id)
    assert to_peer["outcome"] == "complete"
    assert (to_peer["details"]["bytes"], to_peer["details"]["to"]) == (size, site2.id)
    assert to_peer["details"]["digest"] == upload["details"]["digest"]
    assert to_peer["details"]["seconds"] >= 0
    _one(records, kind="transfer", action="send", actor=site1.party.id, outcome="complete")
    assert not [r for r in records if r["kind"] == "transfer" and r["actor"] == site3.id]


def test_rule_changes_and_refusals_are_recorded(net: Network) -> None:
    """Rules added, revoked and rejected here, rules replicated from a peer, refused callers."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    rule = site1.party.sign(may_access(site2.id, "asset:p1.org:x:p1.org:site"))
    foreign = site2.party.sign(may_access(site1.id, "asset:p2.org:y:p2.org:site"))
    with site1.admin() as admin:
        admin.add_rule(rule)
        with pytest.raises(PermissionDenied):
            admin.add_rule(foreign)
        with pytest.raises(InvalidInput):
            admin.revoke(sign_revocation(rule.rule, site2.party.main_key))
        admin.revoke(sign_revocation(rule.rule, site1.party.main_key))
    records = _records(site1, kind="rule")
    _one(records, outcome="added", details={"rule_id": rule.rule_id, "rule": str(rule.rule)})
    revoked = _one(records, outcome="revoked")
    assert revoked["details"]["rule_id"] == rule.rule_id and revoked["actor"] == "p1.org"
    rejected = _one(records, outcome="rejected")
    assert rejected["details"]["rule_id"] == foreign.rule_id
    assert "stores only rules of" in rejected["details"]["reason"]
    _one(records, outcome="revocation rejected")

    site2.replicate()
    replicated = _records(site2, kind="rule")
    _one(replicated, outcome="added", actor=site1.id)
    _one(replicated, outcome="revoked", actor=site1.id)

    with httpx.Client(verify=site2.identity.ssl_context(), timeout=30) as raw:
        assert raw.get(f"{site1.internal_url}/assets").status_code == 403
    with httpx.Client(verify=site1.party.user.ssl_context(), timeout=30) as raw:
        assert raw.get(f"{site1.external_url}/rules/changes?since=0").status_code == 403
    refusals = _records(site1, kind="refusal")
    paths = {r["details"]["path"]: r for r in refusals}
    assert "/internal/assets" in paths and "/external/rules/changes" in paths
    assert site2.id in paths["/internal/assets"]["actor"]
    assert paths["/internal/assets"]["details"]["fingerprint"]
    assert "internal API" in paths["/internal/assets"]["details"]["reason"]


def test_users_read_only_the_records_of_their_own_acts(net: Network, tmp_path: Path) -> None:
    """A plain user lists the records of their own acts only (not the admin's upload, not
    another site's download); others are, to them, not there; admins read all (jobs:
    test_people.py)."""
    site1, site2 = net.sites["p1"], net.sites["p2"]
    asset_id = AssetId.parse("asset:p1.org:data1:p1.org:site")
    with site1.admin() as admin:
        admin.upload_asset(Asset(asset_id, AssetKind.DATA), write_image(tmp_path / "d.tar"))
        admin.add_rule(site1.party.sign(may_access(site2.id, str(asset_id))))
    with site1.peer(site2.identity) as peer:
        peer.get_asset(asset_id)  # a decision about a download by another site
    with site1.client(site1.party.user) as user:
        user.download_image(asset_id, tmp_path / "mine.tar")
    everything = _records(site1)
    theirs = _one(everything, action="release to site", actor=site2.id)
    assert theirs["party"] is None
    upload = _one(everything, kind="transfer", action="receive", user=f"admin@{site1.party.id}")
    assert upload["party"] == site1.party.id  # the admin's act, about the user's party
    with site1.client(site1.party.user) as user:
        own = user.audit_records(limit=500)["records"]
        assert {r["action"] for r in own} == {"release to party", "send"}
        assert all(
            r["party"] == site1.party.id and r["user"] == f"user@{site1.party.id}" for r in own
        )
        for other in (theirs, upload):
            with pytest.raises(NotFound, match=f"audit record {other['seq']} is not known here"):
                user.audit_record(other["seq"])
        assert user.audit_record(own[0]["seq"])["hash"] == own[0]["hash"]
        assert user.verify_audit()["intact"]
    with site1.admin() as admin:
        assert admin.audit_record(theirs["seq"]) == theirs
    with httpx.Client(verify=site2.identity.ssl_context(), timeout=30) as raw:
        response = raw.get(f"{site1.internal_url}/audit/{theirs['seq']}")
        assert response.status_code == 403


def test_bad_audit_queries_are_refused_with_the_reason(net: Network) -> None:
    site = net.sites["p1"]
    with httpx.Client(verify=site.party.admin.ssl_context(), timeout=30) as raw:
        for query, text in (
            ("kind=gossip", "unknown audit record kind 'gossip'"),
            ("since=2026-12-06T10:00:00", "time zone"),
            ("limit=0", "limit"),
            ("before=-3", "before"),
        ):
            response = raw.get(f"{site.internal_url}/audit?{query}")
            assert response.status_code in (400, 422), query
            assert text in json.dumps(response.json()), query
        assert raw.get(f"{site.internal_url}/audit/999999").status_code == 404


def test_the_audit_commands_list_show_and_verify(net: Network) -> None:
    """`mahiru audit list|show|verify` with --json and as text, naming the acting user; a
    broken chain exits 1."""
    site = net.sites["p1"]
    with site.admin() as admin:
        admin.add_rule(site.party.sign(may_access(site.id, "asset:p1.org:x:p1.org:site")))
    identity = site.party.admin
    env = {
        **os.environ,
        "MAHIRU_SITE_URL": site.internal_url,
        "MAHIRU_CERT": str(identity.cert),
        "MAHIRU_KEY": str(identity.key),
        "MAHIRU_CA": str(identity.ca),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MAHIRU, "audit", *args], env=env, capture_output=True, text=True, timeout=60
        )

    listed = run("list", "--kind", "rule", "--json")
    assert listed.returncode == 0, listed.stderr
    records = json.loads(listed.stdout)["records"]
    assert [r["outcome"] for r in records] == ["added"]
    text = run("list", "--kind", "rule")
    assert text.returncode == 0 and "rule" in text.stdout and "added" in text.stdout
    assert f"user=admin@{site.party.id}" in text.stdout  # who added it
    shown = run("show", str(records[0]["seq"]))
    assert shown.returncode == 0 and records[0]["hash"] in shown.stdout
    assert f"user:     admin@{site.party.id}" in shown.stdout
    assert json.loads(run("show", str(records[0]["seq"]), "--json").stdout) == records[0]
    verified = run("verify")
    assert verified.returncode == 0 and "intact" in verified.stdout
    assert run("list", "--kind", "gossip").returncode == 2
    missing = run("show", "999999")
    assert missing.returncode == 2 and "audit record 999999 is not known here" in missing.stderr

    # Someone edits the database behind the site's back.
    with create_database(site.config.database_url) as database, database.transaction() as session:
        session.execute(update(audit_log).where(audit_log.c.seq == 1).values(outcome="x"))
    broken = run("verify")
    assert broken.returncode == 1
    assert "broken at record 1" in broken.stderr
    assert json.loads(run("verify", "--json").stdout)["broken_at"] == 1
