"""The database layer and its repositories, on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect, text
from tests.support.db import OpenDb

from mahiru.clock import utc_now
from mahiru.errors import Conflict, InvalidInput, InvalidSignature, NotFound
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.registry import (
    ChangeAction,
    PartyRecord,
    RegistryChange,
    SiteEndpoints,
    SiteRecord,
)
from mahiru.policy.changes import RejectedRule, RuleChange
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import Revocation, SignedRule, sign_revocation, sign_rule
from mahiru.storage import (
    REGISTRY_SOURCE,
    AssetRepository,
    Database,
    RegistryRepository,
    ReplicaRepository,
    RuleRepository,
    create_database,
)
from mahiru.storage.db import head_revision
from mahiru.storage.schema import metadata

pytestmark = pytest.mark.integration


def party(name: str, namespace: str | None = None, key: str = "KEY") -> PartyRecord:
    namespace = namespace or f"{name}.example.org"
    return PartyRecord(
        PartyId(namespace, name),
        namespace,
        f"-----PUBLIC {key} {name}-----",
        f"-----CA {name}-----",
    )


def site(name: str, owner: PartyRecord, **changes: Any) -> SiteRecord:
    values: dict[str, Any] = {
        "id": SiteId(owner.namespace, name),
        "owner": owner.id,
        "admin": owner.id,
        "endpoints": SiteEndpoints(f"https://{name}:8443", f"https://{name}:9443"),
        "tls_cert_pem": f"-----CERT {name}-----",
        "has_store": True,
        "has_runner": True,
    }
    values.update(changes)
    return SiteRecord(**values)


KEY = Ed25519PrivateKey.generate()


def signed_rule(collection: str = "public", namespace: str = "p1.example.org") -> SignedRule:
    rule = rule_from_dict(
        {
            "type": "MayAccess",
            "site": "*",
            "asset": f"asset_collection:{namespace}:{collection}",
        }
    )
    return sign_rule(rule, KEY)


def revocation(signed: SignedRule) -> Revocation:
    return sign_revocation(signed.rule, KEY)


# --- the database ------------------------------------------------------------


def test_migrations_bring_an_empty_database_to_head(open_db: OpenDb) -> None:
    """Opening an empty database creates exactly the schema the code expects."""
    db = open_db()
    assert db.current_revision() == head_revision()
    tables = set(inspect(db.engine).get_table_names())
    assert set(metadata.tables) <= tables
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_data_survives_reopening_the_database(open_db: OpenDb) -> None:
    """Everything written is there after closing and opening the database again."""
    first = open_db()
    p1 = party("p1")
    RegistryRepository(first).put_party(p1)
    RuleRepository(first).add(signed_rule())
    AssetRepository(first).add(
        Asset(AssetId.parse("asset:p1.example.org:d:p1.example.org:s1"), AssetKind.DATA)
    )
    first.close()
    again = open_db()
    assert again.current_revision() == head_revision()
    assert RegistryRepository(again).parties() == [p1]
    assert RegistryRepository(again).version() == 1
    assert RuleRepository(again).active_rules() == [signed_rule()]
    assert len(AssetRepository(again).list()) == 1


def test_concurrent_opening_of_a_fresh_database_migrates_once(db_url: str) -> None:
    """Several processes starting at once on an empty database all end up at head."""
    script = (
        "import sys; from mahiru.storage import create_database\n"
        "create_database(sys.argv[1]).close()\n"
    )
    processes = [
        subprocess.Popen([sys.executable, "-c", script, db_url], stderr=subprocess.PIPE)
        for _ in range(4)
    ]
    failures = [p.stderr.read() if p.stderr else b"" for p in processes if p.wait(60) != 0]
    assert failures == []
    with create_database(db_url) as database:
        assert database.current_revision() == head_revision()


def test_a_failing_transaction_leaves_nothing_behind(db: Database) -> None:
    """An exception inside a transaction undoes every write made in it."""
    registry = RegistryRepository(db)
    with pytest.raises(RuntimeError), db.transaction():
        registry.put_party(party("p1"))
        RuleRepository(db).add(signed_rule())
        raise RuntimeError("boom")
    assert registry.parties() == []
    assert registry.version() == 0
    assert RuleRepository(db).version() == 0


def test_repository_calls_in_one_transaction_commit_together(db: Database) -> None:
    """Calls inside an outer transaction join it, and a caught inner failure is undone alone."""
    registry = RegistryRepository(db)
    p1 = party("p1")
    with db.transaction():
        registry.put_party(p1)
        with pytest.raises(Conflict):
            registry.put_party(party("other", namespace="p1.example.org"))
        registry.put_site(site("s1", p1))
    assert registry.parties() == [p1]
    assert [s.id for s in registry.sites()] == [SiteId("p1.example.org", "s1")]
    assert registry.version() == 2


def test_sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout(db: Database) -> None:
    """Every SQLite connection is in WAL mode, checks foreign keys and waits for locks."""
    if db.dialect != "sqlite":
        pytest.skip("SQLite pragmas")
    with db.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert connection.execute(text("PRAGMA busy_timeout")).scalar() == 5000


def test_an_unsupported_database_url_is_invalid_input(tmp_path: Any) -> None:
    """Only SQLite and PostgreSQL URLs are accepted."""
    with pytest.raises(InvalidInput, match="unsupported database"):
        create_database(f"mysql://user@host/db{tmp_path}")
    with pytest.raises(InvalidInput, match="not a database URL"):
        create_database("not a url")


def test_concurrent_writers_get_distinct_increasing_versions(db: Database) -> None:
    """Parallel rule additions each get their own version, with no gaps."""
    rules = RuleRepository(db)
    versions: list[int | None] = []
    lock = threading.Lock()

    def add(index: int) -> None:
        for round_ in range(5):
            version = rules.add(signed_rule(f"c{index}-{round_}"))
            with lock:
                versions.append(version)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(v for v in versions if v is not None) == list(range(1, 21))
    changes, head = rules.changes_since(0)
    assert [c.version for c in changes] == list(range(1, 21))
    assert head == 20


# --- the registry ------------------------------------------------------------


def test_adding_the_same_party_twice_changes_nothing(db: Database) -> None:
    """put_party is idempotent: the second identical call logs no change."""
    registry = RegistryRepository(db)
    assert registry.put_party(party("p1")) == 1
    assert registry.put_party(party("p1")) is None
    assert registry.version() == 1
    assert registry.party(PartyId("p1.example.org", "p1")) == party("p1")
    assert registry.party_for_namespace("p1.example.org") == party("p1")


def test_a_namespace_has_one_owner(db: Database) -> None:
    """Registering a second party for a taken namespace is a Conflict naming both."""
    registry = RegistryRepository(db)
    registry.put_party(party("p1"))
    with pytest.raises(Conflict) as caught:
        registry.put_party(party("intruder", namespace="p1.example.org"))
    assert "p1.example.org" in caught.value.message
    assert "party:p1.example.org:p1" in caught.value.message
    assert caught.value.details == {
        "namespace": "p1.example.org",
        "owner": "party:p1.example.org:p1",
    }
    assert registry.parties() == [party("p1")]
    assert registry.version() == 1


def test_a_party_cannot_move_to_another_namespace(db: Database) -> None:
    """A registered party keeps its namespace; updating its keys is fine."""
    registry = RegistryRepository(db)
    registry.put_party(party("p1"))
    moved = PartyRecord(PartyId("p1.example.org", "p1"), "elsewhere.org", "k", "ca")
    with pytest.raises(Conflict, match="cannot change"):
        registry.put_party(moved)
    assert registry.put_party(party("p1", key="NEW")) == 2
    updated = registry.party(PartyId("p1.example.org", "p1"))
    assert updated.public_key_pem.startswith("-----PUBLIC NEW")


def test_sites_need_registered_parties_and_block_their_removal(db: Database) -> None:
    """A site's owner and admin must be registered, and stay registered while it exists."""
    registry = RegistryRepository(db)
    p1, p2 = party("p1"), party("p2")
    with pytest.raises(NotFound, match=r"owner party:p1\.example\.org:p1"):
        registry.put_site(site("s1", p1))
    registry.put_party(p1)
    with pytest.raises(NotFound, match=r"admin party:p2\.example\.org:p2"):
        registry.put_site(site("s1", p1, admin=p2.id))
    registry.put_party(p2)
    registry.put_site(site("s1", p1, admin=p2.id))
    with pytest.raises(Conflict, match=r"site:p1\.example\.org:s1"):
        registry.remove_party(p2.id)
    registry.remove_site(SiteId("p1.example.org", "s1"))
    registry.remove_party(p2.id)
    assert registry.parties() == [p1]


def test_removing_what_is_not_registered_is_not_found(db: Database) -> None:
    """Removals of unknown parties and sites fail and log nothing."""
    registry = RegistryRepository(db)
    with pytest.raises(NotFound):
        registry.remove_party(PartyId("x.org", "x"))
    with pytest.raises(NotFound):
        registry.remove_site(SiteId("x.org", "s"))
    with pytest.raises(NotFound):
        registry.site(SiteId("x.org", "s"))
    with pytest.raises(NotFound):
        registry.party_for_namespace("x.org")
    assert registry.version() == 0


def test_registry_changes_since_returns_exactly_the_later_changes(db: Database) -> None:
    """Every change gets the next version; changes_since(n) returns those after n, in order."""
    registry = RegistryRepository(db)
    p1 = party("p1")
    s1 = site("s1", p1)
    versions = [
        registry.put_party(p1),
        registry.put_site(s1),
        registry.put_site(site("s1", p1, has_runner=False)),
        registry.remove_site(s1.id),
        registry.put_party(party("p2")),
    ]
    assert versions == [1, 2, 3, 4, 5]
    changes, head = registry.changes_since(0)
    assert head == 5
    assert [(c.version, c.action, str(c.subject)) for c in changes] == [
        (1, ChangeAction.ADDED, "party:p1.example.org:p1"),
        (2, ChangeAction.ADDED, "site:p1.example.org:s1"),
        (3, ChangeAction.UPDATED, "site:p1.example.org:s1"),
        (4, ChangeAction.REMOVED, "site:p1.example.org:s1"),
        (5, ChangeAction.ADDED, "party:p2.example.org:p2"),
    ]
    assert changes[2].record == site("s1", p1, has_runner=False)
    assert changes[3].record is None
    later, head = registry.changes_since(3)
    assert [c.version for c in later] == [4, 5] and head == 5
    assert registry.changes_since(5) == ([], 5)
    page, until = registry.changes_since(1, limit=2)
    assert [c.version for c in page] == [2, 3] and until == 3
    with pytest.raises(InvalidInput):
        registry.changes_since(0, limit=0)
    for change in changes:
        assert RegistryChange.from_dict(change.to_dict()) == change


# --- rules -------------------------------------------------------------------


def test_adding_the_same_rule_twice_changes_nothing(db: Database) -> None:
    """add is idempotent by rule id."""
    rules = RuleRepository(db)
    rule = signed_rule()
    assert rules.add(rule) == 1
    assert rules.add(rule) is None
    assert rules.add(signed_rule("other")) == 2
    assert rules.active_rules() == [rule, signed_rule("other")]
    assert rules.get(rule.rule_id) == rule
    assert rules.changes_since(0).version == 2


def test_revoked_rules_are_inactive_and_stay_revoked(db: Database) -> None:
    """revoke hides a rule, is idempotent, and the rule cannot be added back."""
    rules = RuleRepository(db)
    keep, drop = signed_rule("keep"), signed_rule("drop")
    rules.add(keep)
    rules.add(drop)
    assert rules.revoke(revocation(drop)) == 3
    assert rules.revoke(revocation(drop)) is None
    assert rules.active_rules() == [keep]
    # Revoked, not forgotten: still stored, and its revocation is a change in the log.
    assert rules.get(drop.rule_id) == drop
    assert [c.action for c in rules.changes_since(2).changes] == [ChangeAction.REVOKED]
    assert [c.revocation for c in rules.changes_since(2).changes] == [revocation(drop)]
    with pytest.raises(Conflict, match="revoked"):
        rules.add(drop)
    assert rules.version() == 3


def test_revoking_needs_the_rule_and_its_namespace(db: Database) -> None:
    """Revoking an unknown rule is NotFound; one for another namespace is InvalidSignature."""
    rules = RuleRepository(db)
    rule = signed_rule()
    with pytest.raises(NotFound):
        rules.revoke(revocation(rule))
    rules.add(rule)
    foreign = Revocation(rule.rule_id, "p2.example.org", b"sig")
    with pytest.raises(InvalidSignature):
        rules.revoke(foreign)
    assert rules.active_rules() == [rule]
    with pytest.raises(NotFound):
        rules.get("0" * 64)


def test_rule_changes_since_returns_exactly_the_later_changes(db: Database) -> None:
    """Rule log versions strictly increase; changes_since(n) returns the ones after n."""
    rules = RuleRepository(db)
    a, b = signed_rule("a"), signed_rule("b")
    rules.add(a)
    rules.add(b)
    rules.revoke(revocation(a))
    changes, head = rules.changes_since(0)
    assert head == 3
    assert [(c.version, c.action, c.rule_id) for c in changes] == [
        (1, ChangeAction.ADDED, a.rule_id),
        (2, ChangeAction.ADDED, b.rule_id),
        (3, ChangeAction.REVOKED, a.rule_id),
    ]
    assert changes[0].rule == a and changes[2].revocation == revocation(a)
    assert [c.version for c in rules.changes_since(1).changes] == [2, 3]
    assert rules.changes_since(3) == ([], 3)
    for change in changes:
        assert RuleChange.from_dict(change.to_dict()) == change


def test_review_rules_with_and_without_checks_are_stored_replicated_and_revoked(
    db: Database,
) -> None:
    """A rule's nested checks (numbers, lists, a mapping) come back as they were signed,
    from the site's own store, its change log and a peer's replica; revoking works alike."""
    base = {
        "type": "ReleaseReviewedBy",
        "asset": "asset_collection:p1.example.org:results",
        "reviewer": "party_category:p1.example.org:stewards",
    }
    checks = {
        "max_bytes": 2**40,
        "file_types": ["csv", "json"],
        "min_count": {"column": "n", "at_least": 10},
    }
    checked = sign_rule(rule_from_dict({**base, "checks": checks}), KEY)
    plain = sign_rule(rule_from_dict(base), KEY)
    rules, replica = RuleRepository(db), ReplicaRepository(db)
    assert rules.add(checked) == 1 and rules.add(plain) == 2
    assert rules.get(checked.rule_id) == checked
    assert rules.get(checked.rule_id).rule.to_dict()["checks"] == checks
    assert rules.active_rules() == [checked, plain]
    changes, head = rules.changes_since(0)
    assert [change.rule for change in changes] == [checked, plain]
    for change in changes:
        assert RuleChange.from_dict(change.to_dict()) == change
    source = "site:p1.example.org:s1"
    replica.apply_rule_changes(source, changes, head)
    assert replica.rules(source) == [checked, plain]
    rules.revoke(revocation(checked))
    replica.apply_rule_changes(source, *rules.changes_since(head))
    assert rules.active_rules() == [plain] and replica.rules(source) == [plain]


# --- replicas ----------------------------------------------------------------


def filled_registry(db: Database) -> RegistryRepository:
    registry = RegistryRepository(db)
    p1, p2 = party("p1"), party("p2")
    registry.put_party(p1)
    registry.put_party(p2)
    registry.put_site(site("s1", p1))
    registry.put_site(site("s2", p2))
    return registry


def test_a_replica_follows_the_registry_incrementally(db: Database) -> None:
    """Applying changes_since batches reproduces the registry, remembering the version."""
    registry = filled_registry(db)
    replica = ReplicaRepository(db)
    assert replica.last_version(REGISTRY_SOURCE) == 0
    assert replica.apply_registry_changes(*registry.changes_since(0)) == 4
    assert replica.parties() == registry.parties()
    assert replica.sites() == registry.sites()
    registry.remove_site(SiteId("p2.example.org", "s2"))
    registry.put_party(party("p1", key="NEW"))
    batch = registry.changes_since(replica.last_version(REGISTRY_SOURCE))
    assert [c.version for c in batch.changes] == [5, 6]
    replica.apply_registry_changes(*batch)
    assert replica.last_version(REGISTRY_SOURCE) == 6
    assert replica.parties() == registry.parties()
    assert replica.sites() == registry.sites()
    assert replica.party_for_namespace("p1.example.org") == party("p1", key="NEW")
    assert replica.site(SiteId("p1.example.org", "s1")) == site("s1", party("p1"))
    with pytest.raises(NotFound):
        replica.site(SiteId("p2.example.org", "s2"))
    assert replica.apply_registry_changes(*registry.changes_since(0)) == 0  # replayed: skipped
    assert replica.sources() == {REGISTRY_SOURCE: 6}


def test_an_exception_mid_batch_keeps_the_old_version_and_data(db: Database) -> None:
    """A batch is all or nothing: a failure part-way leaves the replica as it was."""
    registry = filled_registry(db)
    replica = ReplicaRepository(db)
    first = registry.changes_since(0, limit=2)
    replica.apply_registry_changes(*first)
    rest, head = registry.changes_since(first.version)

    def failing() -> Iterator[RegistryChange]:
        yield rest[0]
        raise ConnectionError("peer went away mid-batch")

    with pytest.raises(ConnectionError):
        replica.apply_registry_changes(failing(), head)
    broken = RegistryChange(rest[1].version, ChangeAction.ADDED, rest[1].subject, None, utc_now())
    with pytest.raises(InvalidInput, match="does not carry"):
        replica.apply_registry_changes([rest[0], broken], head)
    with pytest.raises(InvalidInput, match="beyond"):
        replica.apply_registry_changes(rest, head - 1)
    assert replica.last_version(REGISTRY_SOURCE) == 2
    assert replica.parties() == registry.parties()
    assert replica.sites() == []
    replica.apply_registry_changes(rest, head)
    assert replica.sites() == registry.sites()


def test_a_reset_source_is_a_conflict_until_forgotten(db: Database) -> None:
    """A version lower than the one applied means the source was reset."""
    registry = filled_registry(db)
    replica = ReplicaRepository(db)
    replica.apply_registry_changes(*registry.changes_since(0))
    with pytest.raises(Conflict, match="reset"):
        replica.apply_registry_changes([], 1)
    replica.forget(REGISTRY_SOURCE)
    assert replica.parties() == [] and replica.last_version(REGISTRY_SOURCE) == 0
    replica.apply_registry_changes(*registry.changes_since(0, limit=1))
    assert replica.last_version(REGISTRY_SOURCE) == 1


def test_peer_rules_are_replicated_with_revocations_and_rejections(db: Database) -> None:
    """Accepted rules become active, revocations hide them, rejections are kept with a reason."""
    peer = RuleRepository(db)
    replica = ReplicaRepository(db)
    source = "site:p1.example.org:s1"
    a, b = signed_rule("a"), signed_rule("b")
    peer.add(a)
    peer.add(b)
    changes, head = peer.changes_since(0)
    bad = RejectedRule(source, 2, b.rule_id, b.to_dict(), "signature does not verify", utc_now())
    assert replica.apply_rule_changes(source, [changes[0]], head, [bad]) == 1
    assert replica.rules() == [a]
    assert replica.rejected_rules(source) == [bad]
    peer.revoke(revocation(a))
    changes, head = peer.changes_since(replica.last_version(source))
    replica.apply_rule_changes(source, changes, head)
    assert replica.rules() == [] and replica.last_version(source) == 3
    # A revocation counts only for rules signed for its namespace.
    other = "site:p2.example.org:s2"
    c = signed_rule("c")
    forged = Revocation(c.rule_id, "p2.example.org", b"sig")
    now = utc_now()
    replica.apply_rule_changes(
        other,
        [
            RuleChange(1, ChangeAction.ADDED, c.rule_id, c, None, now),
            RuleChange(2, ChangeAction.ADDED, b.rule_id, b, None, now),
            RuleChange(3, ChangeAction.REVOKED, c.rule_id, None, forged, now),
        ],
        3,
    )
    assert replica.rules() == [c, b]
    assert replica.rules(source) == []
    assert replica.sources() == {source: 3, other: 3}
    replica.forget(other)
    assert replica.rules() == [] and replica.rejected_rules() == [bad]
    assert replica.rejected_count() == 1
    with pytest.raises(InvalidInput):
        replica.apply_rule_changes("not-a-site", [], 1)


def test_a_failed_rule_batch_keeps_nothing(db: Database) -> None:
    """An invalid change in a rule batch undoes the whole batch, rejections included."""
    replica = ReplicaRepository(db)
    source = "site:p1.example.org:s1"
    a = signed_rule("a")
    now = utc_now()
    good = RuleChange(1, ChangeAction.ADDED, a.rule_id, a, None, now)
    mismatched = RuleChange(2, ChangeAction.ADDED, "f" * 64, a, None, now)
    bad = RejectedRule(source, 3, None, {"type": "Nonsense"}, "unknown rule type", now)
    with pytest.raises(InvalidInput):
        replica.apply_rule_changes(source, [good, mismatched], 3, [bad])
    assert replica.rules() == [] and replica.rejected_rules() == []
    assert replica.rejected_count() == 0
    assert replica.last_version(source) == 0


def test_replicas_survive_reopening(open_db: OpenDb) -> None:
    """A restarted site finds its replicas as they were, without asking anyone."""
    first = open_db()
    registry = filled_registry(first)
    ReplicaRepository(first).apply_registry_changes(*registry.changes_since(0))
    first.close()
    replica = ReplicaRepository(open_db())
    assert replica.last_version(REGISTRY_SOURCE) == 4
    assert [p.id for p in replica.parties()] == [party("p1").id, party("p2").id]


# --- assets ------------------------------------------------------------------

DATA_ID = AssetId.parse("asset:p1.example.org:data:p1.example.org:s1")
RESULT_ID = ResultId("ab" * 32)


def test_assets_are_added_listed_and_deleted(db: Database) -> None:
    """The asset record round-trips; list filters by kind; delete removes it."""
    assets = AssetRepository(db)
    data = Asset(DATA_ID, AssetKind.DATA, {"size": 10, "tags": ["x"]}, "cd" * 32)
    result = Asset(RESULT_ID, AssetKind.DATA, {}, "cd" * 32)
    compute = Asset(AssetId.parse("asset:p1.example.org:c:p1.example.org:s1"), AssetKind.COMPUTE)
    stored = assets.add(data, size=1234)
    assets.add(result, size=1234)
    assets.add(compute)
    assert assets.get(DATA_ID) == stored
    assert stored.asset == data and stored.size == 1234
    assert stored.created_at.tzinfo is not None
    assert [r.asset.id for r in assets.list()] == [compute.id, DATA_ID, RESULT_ID]
    assert [r.asset.id for r in assets.list(AssetKind.COMPUTE)] == [compute.id]
    assert assets.image_users("cd" * 32) == 2
    assert assets.delete(DATA_ID) == stored
    assert not assets.has(DATA_ID) and assets.has(RESULT_ID)
    assert assets.image_users("cd" * 32) == 1
    with pytest.raises(NotFound):
        assets.get(DATA_ID)
    with pytest.raises(NotFound):
        assets.delete(DATA_ID)


def test_adding_an_asset_again_is_idempotent_unless_it_differs(db: Database) -> None:
    """The same record again is a no-op; a different one under the same id is a Conflict."""
    assets = AssetRepository(db)
    first = assets.add(Asset(DATA_ID, AssetKind.DATA, {"a": (1, 2)}, "cd" * 32), size=5)
    again = assets.add(Asset(DATA_ID, AssetKind.DATA, {"a": [1, 2]}, "cd" * 32), size=5)
    assert again == first
    with pytest.raises(Conflict, match="different content"):
        assets.add(Asset(DATA_ID, AssetKind.DATA, {"a": [1, 2]}, "ef" * 32), size=5)
    with pytest.raises(Conflict):
        assets.add(Asset(DATA_ID, AssetKind.DATA, {"a": [1, 2]}, "cd" * 32), size=6)
    with pytest.raises(InvalidInput, match="not JSON"):
        assets.add(Asset(RESULT_ID, AssetKind.DATA, {"a": object()}))
    assert [r.asset.id for r in assets.list()] == [DATA_ID]
