"""The indexed rule store: membership, idempotence, index buckets and transitive up()."""

from __future__ import annotations

import pytest

from mahiru.model.identifiers import Identifier, parse_identifier
from mahiru.policy.rules import (
    InAssetCategory,
    InAssetCollection,
    InPartyCategory,
    InSiteCategory,
    MayAccess,
    MayUse,
    ResultOfComputeIn,
    ResultOfDataIn,
    Rule,
    rule_from_dict,
)
from mahiru.policy.store import GroupingRule, RuleStore

DATA = "asset:p1:data:p1:site1"
SCRIPT = "asset:p2:script:p2:site2"


def r(type_name: str, **fields: str) -> Rule:
    return rule_from_dict({"type": type_name, **fields})


def i(text: str) -> Identifier:
    return parse_identifier(text)


def in_collection(member: str, collection: str) -> Rule:
    return r("InAssetCollection", asset=member, collection=f"asset_collection:p:{collection}")


def collection(name: str) -> Identifier:
    return i(f"asset_collection:p:{name}")


MAY_ACCESS = r("MayAccess", site="*", asset=DATA)
MAY_USE = r("MayUse", party="party:p1:p1", asset=DATA, conditions="")
DATA_IN = r(
    "ResultOfDataIn", data=DATA, compute="*", output="*", collection="asset_collection:p1:r"
)
COMPUTE_IN = r(
    "ResultOfComputeIn", data="*", compute=SCRIPT, output="o", collection="asset_collection:p2:r"
)


# --- membership -------------------------------------------------------------------------


def test_new_store_is_empty() -> None:
    """An empty store holds nothing and every asset is only in itself."""
    store = RuleStore()
    assert len(store) == 0
    assert store.rules() == []
    assert store.up(InAssetCollection, i(DATA)) == {i(DATA): ()}


def test_added_rules_are_held_in_insertion_order() -> None:
    """add() stores rules; rules() lists them as added; `in` finds them."""
    store = RuleStore()
    for rule in (MAY_ACCESS, DATA_IN, MAY_USE):
        store.add(rule)
    assert store.rules() == [MAY_ACCESS, DATA_IN, MAY_USE]
    assert len(store) == 3
    assert MAY_ACCESS in store
    assert COMPUTE_IN not in store


def test_store_can_be_built_from_rules() -> None:
    """RuleStore(rules) is the same as adding them one by one."""
    store = RuleStore([MAY_ACCESS, COMPUTE_IN, MAY_ACCESS])
    assert store.rules() == [MAY_ACCESS, COMPUTE_IN]


def test_adding_a_rule_twice_changes_nothing() -> None:
    """add() is idempotent: one copy, one index entry, no new version."""
    store = RuleStore([MAY_ACCESS])
    version = store.version
    store.add(r("MayAccess", site="*", asset=DATA))
    assert len(store) == 1
    assert store.indexed(MayAccess, i(DATA)) == [MAY_ACCESS]
    assert store.version == version


def test_removing_a_rule_drops_it_and_its_index_entry() -> None:
    """remove() undoes add()."""
    store = RuleStore([MAY_ACCESS, MAY_USE])
    store.remove(MAY_ACCESS)
    assert store.rules() == [MAY_USE]
    assert MAY_ACCESS not in store
    assert list(store.indexed(MayAccess, i(DATA))) == []
    assert store.indexed(MayUse, i(DATA)) == [MAY_USE]


def test_removing_an_absent_rule_changes_nothing() -> None:
    """remove() of a rule that is not there is a no-op, also the second time."""
    store = RuleStore([MAY_ACCESS])
    version = store.version
    store.remove(MAY_USE)
    assert store.version == version
    store.remove(MAY_ACCESS)
    store.remove(MAY_ACCESS)
    assert len(store) == 0


def test_version_changes_with_every_change() -> None:
    """Each effective add or remove bumps the version (caches key on it)."""
    store = RuleStore()
    versions = [store.version]
    store.add(MAY_ACCESS)
    versions.append(store.version)
    store.add(MAY_USE)
    versions.append(store.version)
    store.remove(MAY_ACCESS)
    versions.append(store.version)
    assert versions == sorted(set(versions))


def test_rule_can_be_added_again_after_removal() -> None:
    """A removed rule can come back (e.g. re-published)."""
    store = RuleStore([MAY_ACCESS])
    store.remove(MAY_ACCESS)
    store.add(MAY_ACCESS)
    assert store.indexed(MayAccess, i(DATA)) == [MAY_ACCESS]


# --- index buckets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        (MAY_ACCESS, DATA),
        (r("MayAccess", site="site:p:s", asset="asset_collection:p:c"), "asset_collection:p:c"),
        (MAY_USE, DATA),
        (DATA_IN, DATA),
        (COMPUTE_IN, SCRIPT),
    ],
)
def test_grants_and_result_rules_are_indexed_by_what_they_are_about(rule: Rule, key: str) -> None:
    """MayAccess/MayUse by asset, ResultOfDataIn by data, ResultOfComputeIn by compute."""
    store = RuleStore([rule])
    assert type(rule).index_field in {"asset", "data", "compute"}
    assert store.indexed(type(rule), i(key)) == [rule]
    for other in (MayAccess, MayUse, ResultOfDataIn, ResultOfComputeIn):
        if other is not type(rule):
            assert list(store.indexed(other, i(key))) == []


def test_buckets_hold_every_rule_about_the_same_id() -> None:
    """Several grants for one asset share its bucket, in insertion order."""
    first = r("MayAccess", site="site:p:a", asset=DATA)
    second = r("MayAccess", site="site_category:p:b", asset=DATA)
    store = RuleStore([first, second])
    assert store.indexed(MayAccess, i(DATA)) == [first, second]


def test_result_rules_are_not_indexed_by_their_wildcards() -> None:
    """A `*` in the non-indexed field does not put the rule under `*`."""
    store = RuleStore([DATA_IN, COMPUTE_IN])
    assert list(store.indexed(ResultOfDataIn, i("*"))) == []
    assert list(store.indexed(ResultOfComputeIn, i("*"))) == []
    assert store.indexed(ResultOfDataIn, i(DATA)) == [DATA_IN]
    assert store.indexed(ResultOfComputeIn, i(SCRIPT)) == [COMPUTE_IN]


# --- up() -------------------------------------------------------------------------------


def test_up_follows_groupings_transitively_with_shortest_paths() -> None:
    """up(x) is x and every group reachable upward, each with the rules that lead there."""
    a_in_b = in_collection(DATA, "b")
    b_in_c = in_collection("asset_collection:p:b", "c")
    c_in_d = in_collection("asset_collection:p:c", "d")
    store = RuleStore([c_in_d, a_in_b, b_in_c])
    assert store.up(InAssetCollection, i(DATA)) == {
        i(DATA): (),
        collection("b"): (a_in_b,),
        collection("c"): (a_in_b, b_in_c),
        collection("d"): (a_in_b, b_in_c, c_in_d),
    }
    assert set(store.up(InAssetCollection, collection("c"))) == {collection("c"), collection("d")}


def test_up_takes_the_shortest_path_when_there_are_several() -> None:
    """A group reachable directly is reported with the direct rule, not the detour."""
    direct = in_collection(DATA, "top")
    via_1 = in_collection(DATA, "mid")
    via_2 = in_collection("asset_collection:p:mid", "top")
    store = RuleStore([via_1, via_2, direct])
    assert store.up(InAssetCollection, i(DATA))[collection("top")] == (direct,)


def test_up_terminates_on_a_two_collection_cycle() -> None:
    """a <-> b: both are reached once, and the search stops."""
    a_in_b = in_collection("asset_collection:p:a", "b")
    b_in_a = in_collection("asset_collection:p:b", "a")
    data_in_a = in_collection(DATA, "a")
    store = RuleStore([a_in_b, b_in_a, data_in_a])
    assert store.up(InAssetCollection, collection("a")) == {
        collection("a"): (),
        collection("b"): (a_in_b,),
    }
    assert store.up(InAssetCollection, collection("b")) == {
        collection("b"): (),
        collection("a"): (b_in_a,),
    }
    assert store.up(InAssetCollection, i(DATA)) == {
        i(DATA): (),
        collection("a"): (data_in_a,),
        collection("b"): (data_in_a, a_in_b),
    }


def test_up_terminates_on_self_loops_and_long_cycles() -> None:
    """A collection in itself, and a ring of 50 collections, still terminate."""
    ring = [in_collection(f"asset_collection:p:c{n}", f"c{(n + 1) % 50}") for n in range(50)]
    self_loop = in_collection("asset_collection:p:c0", "c0")
    store = RuleStore([*ring, self_loop])
    reached = store.up(InAssetCollection, collection("c0"))
    assert set(reached) == {collection(f"c{n}") for n in range(50)}
    assert reached[collection("c0")] == ()
    assert len(reached[collection("c49")]) == 49


@pytest.mark.parametrize(
    ("kind", "rules", "start", "groups"),
    [
        (
            InAssetCategory,
            [r("InAssetCategory", asset=SCRIPT, category="asset_category:p:tools")],
            SCRIPT,
            ["asset_category:p:tools"],
        ),
        (
            InAssetCategory,
            [
                r("InAssetCategory", asset=SCRIPT, category="asset_category:p:a"),
                r("InAssetCategory", asset="asset_category:p:a", category="asset_category:p:b"),
                r("InAssetCategory", asset="asset_category:p:b", category="asset_category:p:a"),
            ],
            SCRIPT,
            ["asset_category:p:a", "asset_category:p:b"],
        ),
        (
            InSiteCategory,
            [
                r("InSiteCategory", site="site:p:s", category="site_category:p:eu"),
                r("InSiteCategory", site="site_category:p:eu", category="site_category:p:all"),
            ],
            "site:p:s",
            ["site_category:p:eu", "site_category:p:all"],
        ),
        (
            InPartyCategory,
            [
                r("InPartyCategory", party="party:p:p", category="party_category:p:a"),
                r("InPartyCategory", party="party_category:p:a", category="party_category:p:b"),
                r("InPartyCategory", party="party_category:p:b", category="party_category:p:a"),
            ],
            "party:p:p",
            ["party_category:p:a", "party_category:p:b"],
        ),
    ],
    ids=["asset-category", "asset-category-cycle", "site-category", "party-category-cycle"],
)
def test_up_works_for_every_grouping_relation(
    kind: type[GroupingRule], rules: list[Rule], start: str, groups: list[str]
) -> None:
    """Categories of assets, sites and parties are followed upward the same way."""
    store = RuleStore(rules)
    assert set(store.up(kind, i(start))) == {i(start), *map(i, groups)}


def test_up_follows_only_the_requested_relation() -> None:
    """Collections and categories are separate relations; up() never mixes them."""
    in_coll = in_collection(SCRIPT, "tools")
    in_cat = r("InAssetCategory", asset=SCRIPT, category="asset_category:p:tools")
    store = RuleStore([in_coll, in_cat])
    assert set(store.up(InAssetCollection, i(SCRIPT))) == {i(SCRIPT), collection("tools")}
    assert set(store.up(InAssetCategory, i(SCRIPT))) == {
        i(SCRIPT),
        i("asset_category:p:tools"),
    }
    assert set(store.up(InSiteCategory, i(SCRIPT))) == {i(SCRIPT)}


def test_up_does_not_go_down() -> None:
    """Members of x are not in up(x)."""
    store = RuleStore([in_collection(DATA, "c")])
    assert store.up(InAssetCollection, collection("c")) == {collection("c"): ()}


def test_up_sees_rules_added_and_removed_after_a_query() -> None:
    """Cached answers are dropped when the rules change."""
    link = in_collection("asset_collection:p:b", "c")
    store = RuleStore([in_collection(DATA, "b")])
    assert set(store.up(InAssetCollection, i(DATA))) == {i(DATA), collection("b")}
    store.add(link)
    assert set(store.up(InAssetCollection, i(DATA))) == {
        i(DATA),
        collection("b"),
        collection("c"),
    }
    store.remove(link)
    assert set(store.up(InAssetCollection, i(DATA))) == {i(DATA), collection("b")}


def test_up_of_a_wide_fan_reaches_every_group() -> None:
    """An asset in many collections, each in a shared parent, reaches all of them once."""
    rules = [in_collection(DATA, f"c{n}") for n in range(100)]
    rules += [in_collection(f"asset_collection:p:c{n}", "parent") for n in range(100)]
    reached = RuleStore(rules).up(InAssetCollection, i(DATA))
    assert len(reached) == 102
    assert len(reached[collection("parent")]) == 2
