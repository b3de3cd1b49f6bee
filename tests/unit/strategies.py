"""Hypothesis strategies for small policy worlds and the jobs that run in them.

A world has a few parties (one namespace each), sites, categories, data and
compute assets stored at sites, collections and a random rule set over all
nine rule types, with wildcards and transitive or cyclic groupings. Jobs
run small DAG workflows over the world's assets.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from mahiru.model.assets import SiteDescription
from mahiru.model.identifiers import (
    WILDCARD,
    AssetCategoryId,
    AssetCollectionId,
    AssetId,
    Identifier,
    PartyCategoryId,
    PartyId,
    SiteCategoryId,
    SiteId,
)
from mahiru.model.workflow import Job, StepOutputRef, Workflow, WorkflowStep
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.rules import (
    InAssetCategory,
    InAssetCollection,
    InPartyCategory,
    InSiteCategory,
    MayAccess,
    MayUse,
    ReleaseReviewedBy,
    ResultOfComputeIn,
    ResultOfDataIn,
    Rule,
)
from mahiru.policy.store import RuleStore

#: Output names that steps use, plus one that no step has, for ResultOf rules.
STEP_OUTPUT_NAMES = ("out0", "out1")
RULE_OUTPUT_NAMES = ("*", "out0", "out1", "other")


@dataclass(frozen=True)
class World:
    """Everything a policy question can be about, and the rules about it."""

    parties: tuple[PartyId, ...]
    party_categories: tuple[PartyCategoryId, ...]
    sites: tuple[SiteDescription, ...]
    site_categories: tuple[SiteCategoryId, ...]
    data_assets: tuple[AssetId, ...]
    compute_assets: tuple[AssetId, ...]
    collections: tuple[AssetCollectionId, ...]
    asset_categories: tuple[AssetCategoryId, ...]
    rules: tuple[Rule, ...]

    @property
    def site_ids(self) -> tuple[SiteId, ...]:
        """The ids of all sites."""
        return tuple(site.id for site in self.sites)

    def engine(self) -> PolicyEngine:
        """A fresh engine over this world's rules."""
        return PolicyEngine(RuleStore(self.rules))

    def submitter_site(self, party: PartyId) -> SiteId:
        """The party's own site with a store, first by id (reference: Command line)."""
        own = sorted(str(s.id) for s in self.sites if s.owner == party and s.store)
        return SiteId.parse(own[0])


#: Strategies used in every world, built once: hypothesis validates and labels each
#: strategy object on its first draw, which costs more than the draw itself.
_RULE_OUTPUTS = st.sampled_from(RULE_OUTPUT_NAMES)
_RULE_TYPES = st.integers(0, 8)
_QUARTERS = st.integers(0, 3)
_BOOLEANS = st.booleans()


class Pools:
    """A world's identifiers by kind, with one `sampled_from` per union of kinds drawn
    from (made on first use, then reused by every draw in the world)."""

    def __init__(self, pools: dict[str, list[Identifier]]) -> None:
        self._pools = pools
        self._samplers: dict[tuple[str, ...], st.SearchStrategy[Identifier]] = {}

    def __getitem__(self, name: str) -> list[Identifier]:
        return self._pools[name]

    def sampler(self, *names: str) -> st.SearchStrategy[Identifier]:
        """`sampled_from` the identifiers of `names`, in that order."""
        made = self._samplers.get(names)
        if made is None:
            made = st.sampled_from([x for name in names for x in self._pools[name]])
            self._samplers[names] = made
        return made


@st.composite
def _rules(draw: st.DrawFn, pools: Pools) -> Rule:
    """One rule of a random type, its fields drawn from the world's identifiers."""

    def pick(*names: str) -> Identifier:
        return draw(pools.sampler(*names))

    def output() -> str:
        return draw(_RULE_OUTPUTS)

    rule_type = draw(_RULE_TYPES)
    if rule_type == 0:
        return InAssetCollection(pick("assets", "collections"), pick("collections"))
    if rule_type == 1:
        return InAssetCategory(pick("assets", "categories"), pick("categories"))
    if rule_type == 2:
        return InPartyCategory(pick("parties", "party_categories"), pick("party_categories"))
    if rule_type == 3:
        return InSiteCategory(pick("sites", "site_categories"), pick("site_categories"))
    if rule_type == 4:
        return MayAccess(pick("sites", "site_categories", "*"), pick("assets", "collections"))
    if rule_type == 5:
        return MayUse(
            pick("parties", "party_categories", "*"),
            pick("assets", "collections"),
            "for testing",
        )
    if rule_type == 6:
        return ResultOfDataIn(
            pick("assets", "collections"),
            pick("compute", "categories", "*"),
            output(),
            pick("collections"),
        )
    if rule_type == 7:
        return ResultOfComputeIn(
            pick("data", "categories", "*"),
            pick("compute", "collections"),
            output(),
            pick("collections"),
        )
    # Review rules decide nothing the reference decides: they must change no answer.
    return ReleaseReviewedBy(pick("assets", "collections"), pick("parties", "party_categories"))


@st.composite
def _flow_rules(draw: st.DrawFn, pools: Pools, min_openness: int) -> list[Rule]:
    """Rules that let results flow: assets in collections, and per collection result
    rules and grants, mostly with wildcards.

    Uniformly random rules almost never permit a step output (it takes a data
    side, a compute side and grants for both, for every source), so worlds
    mix these in. How open a world is is drawn first; it shrinks to closed.
    """
    openness = draw(st.integers(min_openness, 4))

    def likely() -> bool:
        return draw(_QUARTERS) < openness

    def pick(*names: str) -> Identifier:
        return draw(pools.sampler(*names))

    def wild_or(*names: str) -> Identifier:
        return WILDCARD if likely() else pick(*names)

    def output() -> str:
        return "*" if likely() else draw(_RULE_OUTPUTS)

    rules: list[Rule] = [
        InAssetCollection(asset, pick("collections")) for asset in pools["assets"] if likely()
    ]
    for c in pools["collections"]:
        if likely():
            rules.append(ResultOfDataIn(c, wild_or("compute"), output(), pick("collections")))
        if likely():
            rules.append(ResultOfComputeIn(wild_or("categories"), c, output(), pick("collections")))
        if likely():
            rules.append(MayAccess(wild_or("site_categories", "sites"), c))
        if likely():
            rules.append(MayUse(wild_or("party_categories", "parties"), c, "for testing"))
    return rules


@st.composite
def worlds(draw: st.DrawFn, max_rules: int = 30, min_openness: int = 0) -> World:
    """A small world: 2-4 parties and sites, a few categories, assets and collections.

    `min_openness` (0-4) makes permissive worlds, and so permitted jobs, likelier.
    """
    n_parties = draw(st.integers(2, 4))
    namespaces = [f"ns{i}.example.org" for i in range(n_parties)]
    parties = tuple(PartyId(ns, f"p{i}") for i, ns in enumerate(namespaces))

    namespace = st.sampled_from(namespaces)

    def ns() -> str:
        return draw(namespace)

    # Site i belongs to party i (mod the number of parties), so party 0 always has one.
    sites = tuple(
        SiteDescription(
            SiteId(namespaces[i % n_parties], f"site{i}"),
            parties[i % n_parties],
            runner=draw(_BOOLEANS) or i == 0,
            store=True,
        )
        for i in range(draw(st.integers(2, 4)))
    )
    site_ids = [s.id for s in sites]
    site = st.sampled_from(site_ids)

    def asset(name: str) -> AssetId:
        return AssetId(ns(), name, draw(site))

    data_assets = tuple(asset(f"d{i}") for i in range(draw(st.integers(2, 4))))
    compute_assets = tuple(asset(f"k{i}") for i in range(draw(st.integers(1, 3))))
    collections = tuple(AssetCollectionId(ns(), f"c{i}") for i in range(draw(st.integers(1, 4))))
    categories = tuple(AssetCategoryId(ns(), f"t{i}") for i in range(draw(st.integers(1, 3))))
    party_categories = tuple(
        PartyCategoryId(ns(), f"pc{i}") for i in range(draw(st.integers(1, 2)))
    )
    site_categories = tuple(SiteCategoryId(ns(), f"sc{i}") for i in range(draw(st.integers(1, 2))))
    pools = Pools(
        {
            "parties": list(parties),
            "party_categories": list(party_categories),
            "sites": list(site_ids),
            "site_categories": list(site_categories),
            "data": list(data_assets),
            "compute": list(compute_assets),
            "assets": [*data_assets, *compute_assets],
            "collections": list(collections),
            "categories": list(categories),
            "*": [WILDCARD],
        }
    )
    # Lists default to about five elements; draw the size to get richer rule sets.
    n_random = draw(st.integers(0, max_rules))
    rules = [
        *draw(_flow_rules(pools, min_openness)),
        *draw(st.lists(_rules(pools), min_size=n_random, max_size=n_random)),
    ]
    return World(
        parties,
        party_categories,
        sites,
        site_categories,
        data_assets,
        compute_assets,
        collections,
        categories,
        tuple(rules),
    )


def _bases(world: World) -> st.SearchStrategy[AssetId | None]:
    """No output base, or a data asset of `world` as the base."""
    return st.one_of(st.none(), st.sampled_from(world.data_assets))


def _output_bases(
    draw: st.DrawFn, bases: st.SearchStrategy[AssetId | None], count: int
) -> dict[str, AssetId | None]:
    """`count` outputs, each with its base drawn from `bases` (see `_bases`)."""
    return {name: draw(bases) for name in STEP_OUTPUT_NAMES[:count]}


def _outputs_of(steps: list[WorkflowStep]) -> list[StepOutputRef]:
    return [StepOutputRef(s.name, o) for s in steps for o in s.outputs]


@st.composite
def jobs(draw: st.DrawFn, world: World, shape: str = "dag", max_steps: int = 5) -> Job:
    """A job over `world`: 1-3 workflow inputs bound to data assets, 1-`max_steps` steps.

    `shape` is "dag" (any acyclic wiring: fan-in and fan-out), "tree" (the
    outputs of each step feed at most one other step) or "chain" (each step
    after the first consumes an output of the one before it).
    """
    inputs = [f"in{i}" for i in range(draw(st.integers(1, 3)))]
    compute, bases = st.sampled_from(world.compute_assets), _bases(world)
    steps: list[WorkflowStep] = []
    consumed: set[str] = set()  # steps whose outputs feed a step already (for trees)
    for i in range(draw(st.integers(1, max_steps))):
        if shape == "dag":
            feeders = steps
        elif shape == "tree":
            feeders = [s for s in steps if s.name not in consumed]
        else:
            feeders = steps[-1:]
        # Step outputs twice over: more diamonds and fan-in from earlier steps.
        pool: list[str | StepOutputRef] = [*inputs, *_outputs_of(feeders) * 2]
        sources = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))
        if shape == "chain" and steps:
            sources[0] = draw(st.sampled_from(_outputs_of(feeders)))
        consumed.update(src.step for src in sources if isinstance(src, StepOutputRef))
        steps.append(
            WorkflowStep(
                f"s{i}",
                draw(compute),
                {f"x{j}": src for j, src in enumerate(sources)},
                _output_bases(draw, bases, draw(st.integers(1, len(STEP_OUTPUT_NAMES)))),
            )
        )
    last = steps[-1]
    outputs = {"r0": StepOutputRef(last.name, draw(st.sampled_from(sorted(last.outputs))))}
    if draw(st.booleans()):
        step = draw(st.sampled_from(steps))
        outputs["r1"] = StepOutputRef(step.name, draw(st.sampled_from(sorted(step.outputs))))
    submitter = draw(st.sampled_from(sorted({site.owner for site in world.sites})))
    return Job(
        submitter,
        Workflow(inputs, outputs, steps),
        {name: draw(st.sampled_from(world.data_assets)) for name in inputs},
    )


@st.composite
def long_chains(draw: st.DrawFn, world: World, length: int) -> Job:
    """A chain of `length` steps, each consuming out0 of the one before it."""
    compute, bases = st.sampled_from(world.compute_assets), _bases(world)
    steps = []
    for i in range(length):
        source: str | StepOutputRef = StepOutputRef(f"s{i - 1}", "out0") if i else "in0"
        steps.append(
            WorkflowStep(
                f"s{i}",
                draw(compute),
                {"x0": source},
                _output_bases(draw, bases, 1),
            )
        )
    return Job(
        world.parties[0],
        Workflow(["in0"], {"r0": StepOutputRef(f"s{length - 1}", "out0")}, steps),
        {"in0": draw(st.sampled_from(world.data_assets))},
    )
