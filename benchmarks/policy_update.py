"""What a policy update costs a site: from one rule added or revoked to the next decision seeing it.

Usage: .venv/bin/python benchmarks/policy_update.py [--quick] [--repeats N]

For 1,000, 10,000 and 100,000 rules in force (grants on distinct assets,
assets in collections, sites in categories), a site's `PolicyView` is built
once, then one new grant is told to it (`rules_changed`, as the rule service
does after storing a rule) and the time until the next decision (`decide`,
the audited path, here without an audit log) allows it is measured; then the
same for revoking that grant until a decision denies it. Each figure is the
median (and the worst) of `--repeats` rounds. For comparison the table also
gives what a full rebuild of the same rules in memory costs (what every
change cost before; reading and parsing the rules from the database came on
top of that).

(The issue's figures, 1.4 / 32 / 231 ms, are the store-and-engine column.)

Then, with 100,000 rules in force, 10,000 new rules are replicated in, in
pages of 500 (as `Replicator` stores and tells them), on one thread, while
another thread keeps deciding: the decision latency (p50, p99, worst) while
replicating is printed beside the same figures with nothing else going on.
Signatures are not made (the site checks them when rules arrive, before the
view is told). `--quick` uses 1,000 rules and 1,000 replicated (smoke runs).
Timings are printed, never asserted. The worst decision while replicating
includes whatever else stops a Python process (a full garbage collection,
another process taking the core).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import threading
import time
from collections.abc import Callable

from mahiru.model.identifiers import AssetId, SiteId
from mahiru.policy.decisions import Decision
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.permissions import primary
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import Revocation, SignedRule
from mahiru.policy.store import RuleStore
from mahiru.services.site.policy_snapshot import PolicySnapshot
from mahiru.services.site.policy_view import Concerning, PolicyView

NS = "bench.example.org"
SITES = 50
COLLECTIONS = 100
SIGNATURE = b"\x00" * 64
GOAL_MS = 10.0
PAGE = 500
SIZES = (1_000, 10_000, 100_000)


def site(i: int) -> SiteId:
    return SiteId(NS, f"site{i}")


def asset(i: int) -> AssetId:
    return AssetId(NS, f"data{i}", site(i % SITES))


def signed(data: dict[str, str]) -> SignedRule:
    return SignedRule(rule_from_dict(data), SIGNATURE)


def rules(count: int, offset: int = 0) -> list[SignedRule]:
    """`count` distinct rules: per asset a grant to a site, to a site category or to a
    party, or a collection membership; the first `SITES` put each site in a category."""
    made: list[SignedRule] = []
    if offset == 0:
        for i in range(min(SITES, count)):
            category = f"site_category:{NS}:cat{i % 10}"
            made.append(
                signed({"type": "InSiteCategory", "site": str(site(i)), "category": category})
            )
    for i in range(offset + len(made), offset + count):
        a, kind = str(asset(i)), i % 4
        if kind == 0:
            made.append(signed({"type": "MayAccess", "site": str(site(i % SITES)), "asset": a}))
        elif kind == 1:
            category = f"site_category:{NS}:cat{i % 10}"
            made.append(signed({"type": "MayAccess", "site": category, "asset": a}))
        elif kind == 2:
            collection = f"asset_collection:{NS}:c{i % COLLECTIONS}"
            made.append(signed({"type": "InAssetCollection", "asset": a, "collection": collection}))
        else:
            party = f"party:{NS}:p{i % 20}"
            made.append(signed({"type": "MayUse", "party": party, "asset": a, "conditions": ""}))
    return made


def access(target: AssetId, who: SiteId) -> Callable[[PolicyEngine], Decision]:
    return lambda engine: engine.may_access(who, primary(target), str(target))


def decide(view: PolicyView, target: AssetId, who: SiteId) -> bool:
    return view.decide(access(target, who), Concerning("release to site", str(who))).allowed


def ms(seconds: float) -> float:
    return seconds * 1000


def measure_updates(count: int, repeats: int) -> list[float]:
    """Rebuilds of the store and engine, and of the view's snapshot (ids too), then
    add median and worst, revoke median and worst: all in ms."""
    base = rules(count)
    started = time.perf_counter()
    PolicyEngine(RuleStore(s.rule for s in base))
    store = time.perf_counter() - started
    started = time.perf_counter()
    PolicySnapshot.built(base, [], None)
    rebuild = time.perf_counter() - started
    view = PolicyView(lambda: base)
    view.rule_count()  # the first build, from "storage"
    adds: list[float] = []
    revokes: list[float] = []
    who = site(0)
    for r in range(repeats):
        target = AssetId(NS, f"new{r}", site(1))
        grant = signed({"type": "MayAccess", "site": str(who), "asset": str(target)})
        assert not decide(view, target, who)
        started = time.perf_counter()
        view.rules_changed([grant])
        assert decide(view, target, who)
        adds.append(time.perf_counter() - started)
        revocation = Revocation(grant.rule_id, NS, SIGNATURE)
        started = time.perf_counter()
        view.rules_changed([], [revocation])
        assert not decide(view, target, who)
        revokes.append(time.perf_counter() - started)
    return [
        ms(store),
        ms(rebuild),
        ms(statistics.median(adds)),
        ms(max(adds)),
        ms(statistics.median(revokes)),
        ms(max(revokes)),
    ]


def latencies(view: PolicyView, stop: threading.Event, limit: int) -> list[float]:
    """Decision latencies until `stop` is set (or `limit` decisions)."""
    seen: list[float] = []
    i = 0
    while not stop.is_set() and len(seen) < limit:
        i += 1
        started = time.perf_counter()
        decide(view, asset(i % 1000), site(i % SITES))
        seen.append(time.perf_counter() - started)
    return seen


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return (
        f"p50 {ms(statistics.median(ordered)):6.3f} ms  p99 {ms(p99):6.3f} ms"
        f"  worst {ms(ordered[-1]):6.2f} ms  ({len(ordered)} decisions)"
    )


class FullCollections:
    """How many full (generation 2) garbage collections ran while watched, the longest."""

    def __init__(self) -> None:
        self.durations: list[float] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.durations.append(time.perf_counter() - self._started)

    def __str__(self) -> str:
        longest = ms(max(self.durations)) if self.durations else 0.0
        return f"{len(self.durations)}, the longest {longest:.0f} ms"


def measure_replication(count: int, incoming: int) -> None:
    """Decision latency idle, then while `incoming` rules arrive in pages."""
    base = rules(count)
    arriving = rules(incoming, offset=count)
    view = PolicyView(lambda: base)
    view.rule_count()
    gc.collect()  # start from the same heap each run (a full collection is machine noise)
    idle_stop = threading.Event()
    idle = latencies(view, idle_stop, 2000)
    stop = threading.Event()
    during: list[float] = []
    decider = threading.Thread(target=lambda: during.extend(latencies(view, stop, 10**9)))
    collections = FullCollections()
    gc.callbacks.append(collections)
    decider.start()
    started = time.perf_counter()
    for page in range(0, incoming, PAGE):
        view.rules_changed(arriving[page : page + PAGE])
    applied = time.perf_counter() - started
    stop.set()
    decider.join()
    gc.callbacks.remove(collections)
    assert view.rule_count() == count + incoming
    print(f"\n{incoming:,} rules replicated in over {count:,} (pages of {PAGE}):")
    print(
        f"  applied in {ms(applied):.0f} ms in all, {ms(applied) / (incoming / PAGE):.1f} ms a page"
    )
    print(f"  decisions idle:              {summary(idle)}")
    print(f"  decisions while replicating: {summary(during)}")
    print(f"  full garbage collections meanwhile (they stop every thread): {collections}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 rules only (smoke runs)")
    parser.add_argument("--repeats", type=int, default=21, help="rounds per size (median)")
    args = parser.parse_args()
    sizes = SIZES[:1] if args.quick else SIZES
    repeats = 5 if args.quick else args.repeats
    print(f"one rule added or revoked until the next decision sees it (median of {repeats})")
    print("rebuilt: what one change cost before, in memory (store and engine; whole snapshot)")
    print(
        f"{'rules':>8} {'rebuilt: store':>15} {'snapshot':>11}"
        f" {'add':>9} {'worst':>8} {'revoke':>9} {'worst':>8}"
    )
    for count in sizes:
        store, rebuild, add, add_worst, revoke, revoke_worst = measure_updates(count, repeats)
        print(
            f"{count:>8,} {store:>12.1f} ms {rebuild:>8.1f} ms {add:>6.3f} ms"
            f" {add_worst:>5.2f} ms {revoke:>6.3f} ms {revoke_worst:>5.2f} ms"
        )
    print(f"(goal: under {GOAL_MS:.0f} ms at 100,000 rules)")
    if args.quick:
        measure_replication(1_000, 1_000)
    else:
        measure_replication(100_000, 10_000)


if __name__ == "__main__":
    main()
