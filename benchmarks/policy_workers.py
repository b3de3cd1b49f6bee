"""What keeping a site's policy right across web workers costs (docs/architecture.md, Processes).

Usage: .venv/bin/python benchmarks/policy_workers.py [--quick] [--rules N] [--repeats N]

Two "workers" (each its own rule repository and policy view, as two processes
of a site build them) share one SQLite database and one write-counts file.
With N rules stored (default 2,000; each is stored in its own transaction):

- a decision when nothing changed, in a view that checks the shared counts
  and in one that does not (one process): the cost of the check;
- a grant added, then revoked, through worker A (stored and committed), and
  the time worker B's next decision takes to see it (reading the site's rule
  log after its version and applying the change);
- a write of peers' rules counted, and the time B's next decision takes (a
  reload of every rule from the database).

Each figure is the median (and worst) of `--repeats` rounds. `--quick` uses
300 rules (smoke runs). Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from mahiru.model.identifiers import AssetId, SiteId
from mahiru.policy.permissions import primary
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import Revocation, SignedRule
from mahiru.services.site.policy_catch_up import PAGE, SharedRuleWrites
from mahiru.services.site.policy_view import Concerning, PolicyView
from mahiru.storage import RuleRepository, create_database
from mahiru.storage.db import Database
from mahiru.storage.write_counts import SharedWriteCounts, WriteCounts, WriteKind

NS = "bench.example.org"
SIGNATURE = b"\x00" * 64
ASKER = SiteId(NS, "asker")


def asset(i: int) -> AssetId:
    return AssetId(NS, f"data{i}", SiteId(NS, "site"))


def grant(i: int) -> SignedRule:
    rule = rule_from_dict({"type": "MayAccess", "site": str(ASKER), "asset": str(asset(i))})
    return SignedRule(rule, SIGNATURE)


class Worker:
    """One process's repository and view over the shared database (and counts, if any)."""

    def __init__(self, db: Database, counts: WriteCounts) -> None:
        self.counts = counts
        self.rules = RuleRepository(db, counts=counts)
        shared = None
        if counts.shared:
            shared = SharedRuleWrites(
                lambda: (counts.count(WriteKind.OWN_RULES), counts.count(WriteKind.PEER_RULES)),
                self.rules.version,
                lambda since: self.rules.changes_since(since, limit=PAGE),
            )
        self.view = PolicyView(
            self.rules.active_rules, revocations=self.rules.revocations, shared=shared
        )

    def allows(self, i: int) -> bool:
        target = asset(i)
        return self.view.decide(
            lambda engine: engine.may_access(ASKER, primary(target), str(target)),
            Concerning("release to site", str(ASKER), asset=str(target)),
        ).allowed


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def summary(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:8.3f} ms (worst {max(values) * 1000:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 rules (smoke runs)")
    parser.add_argument("--rules", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=21)
    args = parser.parse_args()
    count = 300 if args.quick else args.rules
    repeats = 5 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        db = create_database(f"sqlite:///{root / 'site.db'}")
        try:
            store = RuleRepository(db)
            for i in range(count):
                store.add(grant(i))
            a = Worker(db, SharedWriteCounts(root / "counts"))
            b = Worker(db, SharedWriteCounts(root / "counts"))
            alone = Worker(db, WriteCounts())
            for worker in (a, b, alone):
                assert worker.allows(0)
            print(f"{count:,} rules stored; medians of {repeats} rounds")
            unchanged = [timed(lambda: b.allows(1)) for _ in range(repeats * 10)]
            single = [timed(lambda: alone.allows(1)) for _ in range(repeats * 10)]
            print(f"decision, nothing changed, checking shared counts: {summary(unchanged)}")
            print(f"decision, nothing changed, one process:            {summary(single)}")
            added, revoked = [], []
            for n in range(repeats):
                i = count + n
                rule = grant(i)
                a.rules.add(rule)
                added.append(timed(lambda i=i: b.allows(i)))  # type: ignore[misc]
                assert b.allows(i)
                a.rules.revoke(Revocation(rule.rule_id, NS, SIGNATURE))
                revoked.append(timed(lambda i=i: b.allows(i)))  # type: ignore[misc]
                assert not b.allows(i)
            print(f"added in A, B's next decision:   {summary(added)}")
            print(f"revoked in A, B's next decision: {summary(revoked)}")
            reloads = []
            for _ in range(max(3, repeats // 4)):
                a.counts.wrote(WriteKind.PEER_RULES)
                reloads.append(timed(lambda: b.allows(0)))
            print(f"peers' rules written, B's next decision (reload): {summary(reloads)}")
        finally:
            db.close()


if __name__ == "__main__":
    main()
