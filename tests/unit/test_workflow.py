"""Workflows, jobs, result identity, plans and workflow items.

See docs/reference.md, "Assets, workflows, jobs and results".
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from mahiru.errors import InvalidInput
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.items import ItemKind, WorkflowItem
from mahiru.model.workflow import (
    Job,
    Plan,
    Source,
    StepOutputRef,
    Workflow,
    WorkflowStep,
    check_name,
    parse_source,
)
from mahiru.policy.engine import PolicyEngine
from mahiru.policy.store import RuleStore

SITE = SiteId("p1.example.org", "site1")
DATA1 = AssetId("p1.example.org", "data1", SITE)
DATA2 = AssetId("p1.example.org", "data2", SITE)
SCRIPT = AssetId("p2.example.org", "script", SiteId("p2.example.org", "site2"))
OTHER_SCRIPT = AssetId("p2.example.org", "other", SiteId("p2.example.org", "site2"))
BASE = AssetId("p2.example.org", "base", SiteId("p2.example.org", "site2"))
PARTY = PartyId("p1.example.org", "party1")


def ref(text: str) -> StepOutputRef:
    step, output = text.split(".")
    return StepOutputRef(step, output)


def step(
    name: str,
    inputs: Mapping[str, Source] | None = None,
    outputs: Mapping[str, AssetId | None] | None = None,
    compute: AssetId = SCRIPT,
) -> WorkflowStep:
    return WorkflowStep(name, compute, dict(inputs or {}), dict(outputs or {"out": None}))


def chain() -> Workflow:
    """input -> a -> b -> result."""
    return Workflow(
        ["input"],
        {"result": ref("b.out")},
        [step("a", {"x": "input"}), step("b", {"x": ref("a.out")})],
    )


def diamond() -> Workflow:
    """input -> top -> (left, right) -> bottom -> result."""
    return Workflow(
        ["input"],
        {"result": ref("bottom.out")},
        [
            step("bottom", {"l": ref("left.out"), "r": ref("right.out")}),
            step("right", {"x": ref("top.out")}),
            step("left", {"x": ref("top.out")}),
            step("top", {"x": "input"}),
        ],
    )


# --- names and sources -------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "A9", "step_1", "out-put", "_", "-"])
def test_legal_names_are_accepted(name: str) -> None:
    """Names use letters, digits, '_' and '-'."""
    assert check_name(name, "step") == name


@pytest.mark.parametrize("name", ["", "a.b", "a b", "a:b", "é", "a@b", None, 3, ["a"]])
def test_illegal_names_are_rejected_naming_the_name(name: object) -> None:
    """Dots (item separators), other characters and non-strings are not names."""
    with pytest.raises(InvalidInput) as error:
        check_name(name, "step")
    assert repr(name) in error.value.message
    assert "step" in error.value.message


def test_source_is_a_workflow_input_or_a_step_output() -> None:
    """`name` is a workflow input; `step.output` is a step output."""
    assert parse_source("input", "here") == "input"
    assert parse_source("s.o", "here") == StepOutputRef("s", "o")
    assert str(StepOutputRef("s", "o")) == "s.o"


@pytest.mark.parametrize("text", ["", "s.", ".o", "s.o.x", "s.@o", "a b", 5, None])
def test_malformed_source_is_rejected(text: object) -> None:
    """Sources are strict: one optional dot, legal names on both sides, text only."""
    with pytest.raises(InvalidInput):
        parse_source(text, "step 'x' input 'i'")


# --- steps ------------------------------------------------------------------------------


def test_step_normalises_its_mappings_by_name() -> None:
    """Steps keep inputs and outputs sorted, so equal steps compare and hash equal."""
    one = WorkflowStep("s", SCRIPT, {"b": "x", "a": "y"}, {"o2": None, "o1": BASE})
    two = WorkflowStep("s", SCRIPT, {"a": "y", "b": "x"}, {"o1": BASE, "o2": None})
    assert list(one.inputs) == ["a", "b"]
    assert list(one.outputs) == ["o1", "o2"]
    assert one == two
    assert hash(one) == hash(two)


@pytest.mark.parametrize(
    ("name", "inputs", "outputs", "culprit"),
    [
        ("a.b", {}, {"o": None}, "a.b"),
        ("s", {"in.x": "i"}, {"o": None}, "in.x"),
        ("s", {}, {"o.x": None}, "o.x"),
        ("s", {"": "i"}, {"o": None}, "''"),
    ],
)
def test_step_rejects_illegal_names(
    name: str, inputs: dict[str, Source], outputs: dict[str, AssetId | None], culprit: str
) -> None:
    """Step, input and output names are checked when the step is built."""
    with pytest.raises(InvalidInput) as error:
        WorkflowStep(name, SCRIPT, inputs, outputs)
    assert culprit in error.value.message


def test_step_rejects_a_name_used_as_both_input_and_output() -> None:
    """`s.x` must name one item, so x cannot be both an input and an output of s."""
    with pytest.raises(InvalidInput) as error:
        WorkflowStep("s", SCRIPT, {"x": "i", "y": "i"}, {"x": None, "z": None})
    assert "'s'" in error.value.message
    assert "x" in error.value.message
    assert error.value.details == {"step": "s", "names": ["x"]}


# --- workflow validation -----------------------------------------------------------------


def test_valid_workflow_keeps_its_parts() -> None:
    """A valid workflow exposes its inputs, outputs and steps by name."""
    workflow = chain()
    assert workflow.inputs == ("input",)
    assert workflow.outputs == {"result": StepOutputRef("b", "out")}
    assert set(workflow.steps) == {"a", "b"}
    assert workflow.predecessors("b") == {"a"}
    assert workflow.predecessors("a") == set()


def test_empty_workflow_is_valid() -> None:
    """A workflow without steps is trivially a DAG."""
    assert Workflow([], {}, []).topological_order() == ()


@pytest.mark.parametrize("build", [chain, diamond])
def test_topological_order_puts_every_step_after_its_sources(build: object) -> None:
    """Every step comes after all the steps whose outputs it consumes."""
    workflow = build()  # type: ignore[operator]
    order = workflow.topological_order()
    assert sorted(order) == sorted(workflow.steps)
    for name in order:
        for predecessor in workflow.predecessors(name):
            assert order.index(predecessor) < order.index(name)


def test_topological_order_does_not_depend_on_step_order() -> None:
    """The order is deterministic: listing the steps differently gives the same order."""
    first = diamond()
    steps = list(first.steps.values())
    again = Workflow(first.inputs, first.outputs, list(reversed(steps)))
    assert again.topological_order() == first.topological_order()


def test_workflow_equality_and_hash_do_not_depend_on_listing_order() -> None:
    """Equal workflows hash equal, however their steps and outputs were listed."""
    steps = [step("a", {"x": "i"}, {"o": None, "p": None})]
    one = Workflow(["i"], {"r": ref("a.o"), "s": ref("a.p")}, steps)
    two = Workflow(["i"], {"s": ref("a.p"), "r": ref("a.o")}, steps)
    assert one == two
    assert hash(one) == hash(two)
    first = diamond()
    again = Workflow(first.inputs, first.outputs, list(reversed(first.steps.values())))
    assert again == first
    assert hash(again) == hash(first)
    assert len({first, again}) == 1


@pytest.mark.parametrize(
    ("inputs", "outputs", "steps", "culprits"),
    [
        (["i"], {}, [step("s", {"x": "missing"})], ["s.x <- missing"]),
        (["i"], {}, [step("s", {"x": ref("nostep.out")})], ["s.x <- nostep.out"]),
        (
            ["i"],
            {},
            [step("a", {"x": "i"}), step("s", {"x": ref("a.nothere")})],
            ["s.x <- a.nothere"],
        ),
        (["i"], {"r": ref("nostep.out")}, [step("s", {"x": "i"})], ["output r <- nostep.out"]),
        (["i"], {"r": ref("s.nothere")}, [step("s", {"x": "i"})], ["output r <- s.nothere"]),
        (
            ["i"],
            {"r": ref("t.o")},
            [step("s", {"x": "j", "y": "k"})],
            ["s.x <- j", "s.y <- k", "output r <- t.o"],
        ),
    ],
    ids=["unknown-input", "unknown-step", "unknown-output", "out-step", "out-output", "several"],
)
def test_unknown_sources_are_rejected_naming_each(
    inputs: list[str],
    outputs: dict[str, StepOutputRef],
    steps: list[WorkflowStep],
    culprits: list[str],
) -> None:
    """Every dangling reference is listed, with where it is used."""
    with pytest.raises(InvalidInput) as error:
        Workflow(inputs, outputs, steps)
    for culprit in culprits:
        assert culprit in error.value.message
    assert error.value.details == {"unknown": culprits}


def test_workflow_input_used_as_workflow_output_source_is_rejected() -> None:
    """A workflow output must come from a step output, not straight from an input."""
    with pytest.raises(InvalidInput):
        Workflow(["i"], {"r": "i"}, [step("s", {"x": "i"})])  # type: ignore[dict-item]


@pytest.mark.parametrize(
    ("inputs", "outputs", "steps", "duplicates"),
    [
        (["i", "i"], {}, [], ["i"]),
        (["i"], {}, [step("s", {"x": "i"}), step("s", {"y": "i"})], ["s"]),
        (["s"], {}, [step("s", {"x": "s"})], ["s"]),
        (["i"], {"s": ref("s.out")}, [step("s", {"x": "i"})], ["s"]),
        (["i"], {"i": ref("s.out")}, [step("s", {"x": "i"})], ["i"]),
        (
            ["i", "j", "i"],
            {"j": ref("s.out")},
            [step("s", {"x": "i"}), step("s", {"x": "i"})],
            ["i", "j", "s"],
        ),
    ],
    ids=["inputs", "steps", "input-step", "output-step", "output-input", "several"],
)
def test_duplicate_names_are_rejected_naming_them(
    inputs: list[str],
    outputs: dict[str, StepOutputRef],
    steps: list[WorkflowStep],
    duplicates: list[str],
) -> None:
    """Inputs, outputs and steps share one namespace; each clash is named once."""
    with pytest.raises(InvalidInput) as error:
        Workflow(inputs, outputs, steps)
    prefix = "duplicate names in workflow (inputs, outputs and steps must all be distinct)"
    assert error.value.message == f"{prefix}: {', '.join(duplicates)}"
    assert error.value.details == {"duplicates": duplicates}


@pytest.mark.parametrize("bad", ["a.b", "", "a b"])
def test_illegal_workflow_input_or_output_names_are_rejected(bad: str) -> None:
    """Workflow input and output names follow the same rule as step names."""
    with pytest.raises(InvalidInput):
        Workflow([bad], {}, [])
    with pytest.raises(InvalidInput):
        Workflow(["i"], {bad: ref("s.out")}, [step("s", {"x": "i"})])


@pytest.mark.parametrize(
    ("steps", "cycle"),
    [
        ([step("a", {"x": ref("a.out")})], ["a"]),
        ([step("a", {"x": ref("b.out")}), step("b", {"x": ref("a.out")})], ["a", "b"]),
        (
            [
                step("a", {"x": ref("c.out")}),
                step("b", {"x": ref("a.out")}),
                step("c", {"x": ref("b.out")}),
            ],
            ["a", "b", "c"],
        ),
        (
            [
                step("start", {"x": "i"}),
                step("a", {"x": ref("b.out"), "y": ref("start.out")}),
                step("b", {"x": ref("a.out")}),
                step("after", {"x": ref("b.out")}),
                step("later", {"x": ref("after.out")}),
            ],
            ["a", "b"],
        ),
        (
            [
                step("a", {"x": ref("b.out")}),
                step("b", {"x": ref("a.out")}),
                step("between", {"x": ref("b.out"), "y": "i"}),
                step("c", {"x": ref("d.out"), "y": ref("between.out")}),
                step("d", {"x": ref("c.out")}),
            ],
            ["a", "b", "c", "d"],
        ),
    ],
    ids=["self-loop", "two", "three", "with-bystanders", "two-cycles"],
)
def test_cycles_are_rejected_naming_exactly_the_steps_on_them(
    steps: list[WorkflowStep], cycle: list[str]
) -> None:
    """The error lists the steps on a cycle, not the innocent steps around it."""
    with pytest.raises(InvalidInput) as error:
        Workflow(["i"], {}, steps)
    assert error.value.message == f"workflow has a cycle through steps: {', '.join(cycle)}"
    assert error.value.details == {"cycle": cycle}


def test_workflow_is_frozen() -> None:
    """A validated workflow cannot be changed into an invalid one."""
    workflow = chain()
    with pytest.raises(AttributeError):
        workflow.inputs = ()  # type: ignore[misc]


# --- jobs -------------------------------------------------------------------------------


def test_job_binds_every_workflow_input() -> None:
    """A job whose inputs match the workflow is valid; its inputs are kept sorted."""
    workflow = Workflow(["b", "a"], {}, [step("s", {"x": "a", "y": "b"})])
    job = Job(PARTY, workflow, {"b": DATA2, "a": DATA1})
    assert list(job.inputs) == ["a", "b"]
    assert job == Job(PARTY, workflow, {"a": DATA1, "b": DATA2})
    assert hash(job) == hash(Job(PARTY, workflow, {"a": DATA1, "b": DATA2}))


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ({}, "unbound inputs: input"),
        ({"input": DATA1, "extra": DATA2}, "unknown inputs: extra"),
        ({"other": DATA1}, "unbound inputs: input; unknown inputs: other"),
    ],
)
def test_job_inputs_must_match_the_workflow(inputs: dict[str, AssetId], expected: str) -> None:
    """Missing and surplus bindings are rejected, each named."""
    with pytest.raises(InvalidInput) as error:
        Job(PARTY, chain(), inputs)
    assert error.value.message == f"job inputs do not match the workflow: {expected}"


# --- result identity --------------------------------------------------------------------


def test_every_step_output_gets_a_result_id() -> None:
    """result_ids covers exactly the step outputs, each a distinct result:<sha256>."""
    workflow = Workflow(["input"], {}, [step("a", {"x": "input"}, {"o1": None, "o2": BASE})])
    ids = Job(PARTY, workflow, {"input": DATA1}).result_ids()
    assert set(ids) == {StepOutputRef("a", "o1"), StepOutputRef("a", "o2")}
    assert all(isinstance(i, ResultId) for i in ids.values())
    assert len(set(ids.values())) == 2
    for result in ids.values():
        assert ResultId.parse(str(result)) == result


def test_result_ids_are_deterministic() -> None:
    """Computing the ids twice, or for an equal job, gives the same ids."""
    job = Job(PARTY, diamond(), {"input": DATA1})
    again = Job(PARTY, diamond(), {"input": DATA1})
    assert job.result_ids() == job.result_ids() == again.result_ids()


def test_same_computation_has_the_same_id_whatever_the_step_or_job() -> None:
    """Step names, workflow names and the submitter do not enter the identity."""
    one = Job(PARTY, chain(), {"input": DATA1})
    renamed = Workflow(
        ["data"],
        {"final": ref("second.out")},
        [step("first", {"x": "data"}), step("second", {"x": ref("first.out")})],
    )
    other_party = PartyId("p9.example.org", "someone")
    two = Job(other_party, renamed, {"data": DATA1})
    assert one.result_ids()[ref("a.out")] == two.result_ids()[ref("first.out")]
    assert one.result_ids()[ref("b.out")] == two.result_ids()[ref("second.out")]


def test_shared_prefix_of_two_workflows_has_the_same_ids() -> None:
    """A step computed the same way in a bigger workflow has the same id (reusable)."""
    small = Job(PARTY, chain(), {"input": DATA1}).result_ids()
    bigger_workflow = Workflow(
        ["input"],
        {},
        [step("a", {"x": "input"}), step("b", {"x": ref("a.out")}), step("c", {"x": ref("b.out")})],
    )
    bigger = Job(PARTY, bigger_workflow, {"input": DATA1}).result_ids()
    assert bigger[ref("a.out")] == small[ref("a.out")]
    assert bigger[ref("b.out")] == small[ref("b.out")]


def test_different_input_gives_different_ids_downstream() -> None:
    """Changing an input asset changes the id of every result computed from it."""
    one = Job(PARTY, chain(), {"input": DATA1}).result_ids()
    two = Job(PARTY, chain(), {"input": DATA2}).result_ids()
    assert one[ref("a.out")] != two[ref("a.out")]
    assert one[ref("b.out")] != two[ref("b.out")]


def test_result_as_job_input_enters_the_identity() -> None:
    """A stored result can be a job input, and its id feeds the ids computed from it."""
    result = ResultId("ab" * 32)
    other = ResultId("cd" * 32)
    one = Job(PARTY, chain(), {"input": result}).result_ids()
    two = Job(PARTY, chain(), {"input": other}).result_ids()
    assert one[ref("a.out")] != two[ref("a.out")]


@pytest.mark.parametrize(
    "changed",
    [
        step("a", {"x": "input"}, compute=OTHER_SCRIPT),
        step("a", {"x": "input"}, {"out": BASE}),
        step("a", {"renamed": "input"}),
    ],
    ids=["compute", "output-base", "input-name"],
)
def test_different_computation_gives_a_different_id(changed: WorkflowStep) -> None:
    """Another compute asset, output base or input binding is another computation."""
    original = Workflow(["input"], {}, [step("a", {"x": "input"})])
    variant = Workflow(["input"], {}, [changed])
    one = Job(PARTY, original, {"input": DATA1}).result_ids()[ref("a.out")]
    two = Job(PARTY, variant, {"input": DATA1}).result_ids()[ref("a.out")]
    assert one != two


def test_outputs_of_one_step_have_different_ids() -> None:
    """The output name enters the identity."""
    workflow = Workflow(["input"], {}, [step("a", {"x": "input"}, {"o1": None, "o2": None})])
    ids = Job(PARTY, workflow, {"input": DATA1}).result_ids()
    assert ids[ref("a.o1")] != ids[ref("a.o2")]


def test_swapping_inputs_between_input_names_changes_the_id() -> None:
    """Which asset is bound to which step input matters."""
    workflow = Workflow(["i", "j"], {}, [step("a", {"x": "i", "y": "j"})])
    one = Job(PARTY, workflow, {"i": DATA1, "j": DATA2}).result_ids()[ref("a.out")]
    two = Job(PARTY, workflow, {"i": DATA2, "j": DATA1}).result_ids()[ref("a.out")]
    assert one != two


# --- plans ------------------------------------------------------------------------------


def test_plan_maps_steps_to_sites_in_name_order() -> None:
    """A plan is a sorted, hashable mapping from step name to site."""
    other = SiteId("p2.example.org", "site2")
    plan = Plan({"b": other, "a": SITE})
    assert list(plan) == ["a", "b"]
    assert plan["b"] == other
    assert plan == Plan({"a": SITE, "b": other})
    assert hash(plan) == hash(Plan({"a": SITE, "b": other}))


# --- workflow items ---------------------------------------------------------------------

ITEM_WORKFLOW = Workflow(
    ["input"],
    {"result": ref("compute.output0")},
    [step("compute", {"input0": "input"}, {"output0": BASE, "log": None})],
)


@pytest.mark.parametrize(
    ("text", "item"),
    [
        ("input", WorkflowItem(ItemKind.WORKFLOW_INPUT, "input")),
        ("compute", WorkflowItem(ItemKind.STEP, "compute")),
        ("compute.input0", WorkflowItem(ItemKind.STEP_INPUT, "compute", "input0")),
        ("compute.@output0", WorkflowItem(ItemKind.OUTPUT_BASE, "compute", "output0")),
        ("compute.@log", WorkflowItem(ItemKind.OUTPUT_BASE, "compute", "log")),
        ("compute.output0", WorkflowItem(ItemKind.STEP_OUTPUT, "compute", "output0")),
        ("result", WorkflowItem(ItemKind.WORKFLOW_OUTPUT, "result")),
    ],
)
def test_each_item_kind_parses_and_round_trips(text: str, item: WorkflowItem) -> None:
    """Every item text form resolves to its item and prints back."""
    assert WorkflowItem.parse(text, ITEM_WORKFLOW) == item
    assert str(item) == text


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "invalid workflow item"),
        (None, "invalid workflow item"),
        (5, "invalid workflow item"),
        ("nothing", "names no input, output or step"),
        ("nostep.output0", "no step named 'nostep'"),
        ("compute.nothing", "has no input or output 'nothing'"),
        ("compute.@input0", "has no input or output '@input0'"),
        ("compute.@nothing", "has no input or output '@nothing'"),
        ("compute.", "has no input or output ''"),
        ("compute.@", "has no input or output '@'"),
        ("input.x", "no step named 'input'"),
    ],
)
def test_item_texts_that_name_nothing_are_rejected(text: object, fragment: str) -> None:
    """An item text must name something in this workflow; the error says what is missing."""
    with pytest.raises(InvalidInput) as error:
        WorkflowItem.parse(text, ITEM_WORKFLOW)
    assert fragment in error.value.message


def items_of(workflow: Workflow) -> list[WorkflowItem]:
    """Every item of `workflow`, as the policy engine lists them for a job that runs it."""
    job = Job(PARTY, workflow, dict.fromkeys(workflow.inputs, DATA1))
    return list(PolicyEngine(RuleStore([])).job_permissions(job).items())


def test_a_jobs_permissions_list_every_item_once_in_order() -> None:
    """Inputs first, then each step (in topological order) with its items, then outputs."""
    texts = [str(item) for item in items_of(chain())]
    assert texts == [
        "input",
        "a",
        "a.x",
        "a.@out",
        "a.out",
        "b",
        "b.x",
        "b.@out",
        "b.out",
        "result",
    ]


@pytest.mark.parametrize("build", [chain, diamond, lambda: ITEM_WORKFLOW])
def test_every_listed_item_round_trips_through_its_text(build: object) -> None:
    """The items listed are distinct, and each parses back from its text."""
    workflow = build()  # type: ignore[operator]
    items = items_of(workflow)
    assert len(set(items)) == len(items)
    assert len({str(item) for item in items}) == len(items)
    for item in items:
        assert WorkflowItem.parse(str(item), workflow) == item
