"""What keeps a site's processes in step: shared write counts and loop wake-ups.

Each "process" here is a separate set of objects on the same database and the
same counts file, as two web workers of one site build them.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from statistics import median

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mahiru.bootstrap.loop_wakes import WakeListener, forward_wakes, wake_address
from mahiru.model.identifiers import AssetId, SiteId
from mahiru.policy.permissions import primary
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import SignedRule, sign_revocation, sign_rule
from mahiru.services.background import BackgroundLoop
from mahiru.services.site import PolicyView
from mahiru.services.site.policy_catch_up import SharedRuleWrites
from mahiru.services.site.policy_view import Concerning
from mahiru.storage import BlobStore, Database, RuleRepository
from mahiru.storage.write_counts import SharedWriteCounts, WriteKind

pytestmark = pytest.mark.integration

_LOGGER = logging.getLogger("mahiru.test.wakes")

ASSET = AssetId.parse("asset:p1.example.org:data:p1.example.org:site1")
SITE2 = SiteId.parse("site:p2.example.org:site2")
KEY = Ed25519PrivateKey.generate()


class Worker:
    """One process's rule repository and policy view over the shared database and counts."""

    def __init__(self, db: Database, counts_file: Path) -> None:
        self.counts = SharedWriteCounts(counts_file)
        self.rules = RuleRepository(db, counts=self.counts)
        self.loads = 0  # how often the view read every rule
        self.view = PolicyView(
            self.all_rules,
            revocations=self.rules.revocations,
            shared=SharedRuleWrites(
                lambda: (
                    self.counts.count(WriteKind.OWN_RULES),
                    self.counts.count(WriteKind.PEER_RULES),
                ),
                self.rules.version,
                self.rules.changes_since,
            ),
        )

    def all_rules(self) -> list[SignedRule]:
        self.loads += 1
        return self.rules.active_rules()

    def allows(self, asset: AssetId = ASSET) -> bool:
        """The (audited) decision on releasing `asset` to SITE2."""
        about = Concerning("release to site", str(SITE2), asset=str(asset))
        return self.view.decide(
            lambda engine: engine.may_access(SITE2, primary(asset), str(asset)), about
        ).allowed


def grant(asset: AssetId = ASSET) -> SignedRule:
    """SITE2 may access `asset`, signed."""
    return sign_rule(
        rule_from_dict({"type": "MayAccess", "site": str(SITE2), "asset": str(asset)}), KEY
    )


def test_counts_written_in_one_process_are_read_in_another(tmp_path: Path) -> None:
    """Two maps of one counts file: each sees the other's writes, kind by kind."""
    first, second = SharedWriteCounts(tmp_path / "counts"), SharedWriteCounts(tmp_path / "counts")
    first.wrote(WriteKind.OWN_RULES)
    second.wrote(WriteKind.OWN_RULES)
    second.wrote(WriteKind.REGISTRY)
    assert [first.count(kind) for kind in WriteKind] == [2, 0, 1]
    assert [second.count(kind) for kind in WriteKind] == [2, 0, 1]


def test_a_rule_added_or_revoked_in_one_worker_decides_the_next_decision_in_the_other(
    db: Database, tmp_path: Path
) -> None:
    """Both orders, several times: the other worker's next decision follows each change."""
    a, b = Worker(db, tmp_path / "counts"), Worker(db, tmp_path / "counts")
    for round_ in range(4):
        writer, reader = (a, b) if round_ % 2 == 0 else (b, a)
        # A revoked rule can never come back: each round grants another data set.
        asset = AssetId.parse(f"asset:p1.example.org:data{round_}:p1.example.org:site1")
        assert not reader.allows(asset)
        assert not writer.allows(asset)
        rule = grant(asset)
        writer.rules.add(rule)
        assert reader.allows(asset)
        assert writer.allows(asset)
        writer.rules.revoke(sign_revocation(rule.rule, KEY))
        assert not reader.allows(asset)
        assert not writer.allows(asset)


def test_own_rules_are_followed_from_the_rule_log_and_peers_rules_make_a_reload(
    db: Database, tmp_path: Path
) -> None:
    """Another worker's rule and revocation reach this view without reading every rule; a
    write of peers' rules (a replication round elsewhere) makes it read them all again."""
    a, b = Worker(db, tmp_path / "counts"), Worker(db, tmp_path / "counts")
    assert not b.allows()
    assert b.loads == 1
    rule = grant()
    a.rules.add(rule)
    assert b.allows()
    a.rules.revoke(sign_revocation(rule.rule, KEY))
    assert not b.allows()
    assert b.loads == 1
    a.counts.wrote(WriteKind.PEER_RULES)
    assert not b.allows()
    assert b.loads == 2


def test_the_rule_feed_version_follows_a_write_in_another_process(
    db: Database, tmp_path: Path
) -> None:
    """The version one worker knows without reading is dropped once another worker writes."""
    a, b = Worker(db, tmp_path / "counts"), Worker(db, tmp_path / "counts")
    version = b.rules.version()
    assert b.rules.known_version() == version
    a.rules.add(grant())
    assert b.rules.known_version() is None
    assert b.rules.version() == version + 1


def test_a_wake_up_in_a_web_worker_runs_the_loop_in_the_loops_process(tmp_path: Path) -> None:
    """A wake-up of the worker's idle copy of a loop starts a round of the running one; the
    time from wake-up to round is printed."""
    rounds: list[float] = []
    ran = threading.Event()

    def round_() -> float | None:
        rounds.append(time.monotonic())
        ran.set()
        return 30.0

    running = BackgroundLoop("mahiru-steps", round_, 30.0, logger=_LOGGER)
    idle = BackgroundLoop("mahiru-steps", round_, 30.0, logger=_LOGGER)  # never started
    address = wake_address(tmp_path)
    listener = WakeListener({"mahiru-steps": running}, address)
    sender = forward_wakes({"mahiru-steps": idle}, address)
    listener.start()
    running.start()
    try:
        assert ran.wait(5)
        latencies = []
        for _ in range(20):
            ran.clear()
            sent = time.monotonic()
            idle.wake()
            assert ran.wait(5), "the loops process's loop was not woken"
            latencies.append(rounds[-1] - sent)
        print(f"wake-up to round across processes: median {median(latencies) * 1000:.2f} ms")
    finally:
        running.stop()
        listener.stop()
        sender.close()


def test_a_wake_up_with_no_loops_process_listening_is_dropped(tmp_path: Path) -> None:
    """No loops process (restarting): the wake-up is logged and dropped, the request goes on."""
    idle = BackgroundLoop("mahiru-steps", lambda: None, 30.0, logger=_LOGGER)
    sender = forward_wakes({"mahiru-steps": idle}, wake_address(tmp_path))
    try:
        idle.wake()  # raises nothing
    finally:
        sender.close()


def test_images_in_use_is_held_by_one_blob_store_of_the_folder_at_a_time(tmp_path: Path) -> None:
    """Two stores on one folder (two processes of a site): the second waits for the first."""
    first, second = BlobStore(tmp_path / "blobs"), BlobStore(tmp_path / "blobs")
    entered = threading.Event()

    def take_second() -> None:
        with second.images_in_use():
            entered.set()

    with first.images_in_use():
        waiter = threading.Thread(target=take_second)
        waiter.start()
        assert not entered.wait(0.3)  # a lock that did not exclude would be taken by now
    assert entered.wait(5)
    waiter.join(5)
