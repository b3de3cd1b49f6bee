"""Dict forms of jobs, workflows, sites, assets and plans: strict parsing, exact round trips."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from mahiru.errors import InvalidInput
from mahiru.model.assets import Asset, AssetKind, SiteDescription
from mahiru.model.identifiers import AssetId, PartyId, ResultId, SiteId
from mahiru.model.serialization import (
    asset_from_dict,
    job_from_dict,
    job_to_dict,
    load_yaml_text,
    plan_from_dict,
    plan_to_dict,
    site_from_dict,
    step_from_dict,
    to_json,
    workflow_from_dict,
    workflow_to_dict,
)
from mahiru.model.workflow import Plan, StepOutputRef

SCRIPT = "asset:p1.example.org:script:p1.example.org:site1"
DATA = "asset:p1.example.org:data1:p1.example.org:site1"
BASE = "asset:p2.example.org:base:p2.example.org:site2"
RESULT = "result:" + "ab" * 32

#: The JOB.yaml example of reference: Command line, verbatim.
DESIGN_JOB_YAML = """\
submitter: "party:p1.example.org:p1"
workflow:
  inputs: [input]
  outputs: {result: "compute.output0"}
  steps:
    - {name: compute, compute_asset: "asset:p1.example.org:script:p1.example.org:site1", \
inputs: {input0: input}, outputs: {output0: null}}
inputs: {input: "asset:p1.example.org:data1:p1.example.org:site1"}
"""


def job_dict() -> dict[str, Any]:
    """A two-step job with an output base, a result input and two workflow outputs."""
    return {
        "submitter": "party:p1.example.org:p1",
        "workflow": {
            "inputs": ["input", "previous"],
            "outputs": {"result": "combine.out", "log": "prepare.log"},
            "steps": [
                {
                    "name": "prepare",
                    "compute_asset": SCRIPT,
                    "inputs": {"data": "input"},
                    "outputs": {"log": None, "out": BASE},
                },
                {
                    "name": "combine",
                    "compute_asset": SCRIPT,
                    "inputs": {"a": "prepare.out", "b": "previous"},
                    "outputs": {"out": None},
                },
            ],
        },
        "inputs": {"input": DATA, "previous": RESULT},
    }


# --- jobs and workflows -----------------------------------------------------------------


def test_design_example_job_parses() -> None:
    """The JOB.yaml of reference: Command line is a valid job with the meaning it shows."""
    job = job_from_dict(load_yaml_text(DESIGN_JOB_YAML, "job"))
    assert job.submitter == PartyId("p1.example.org", "p1")
    assert job.workflow.inputs == ("input",)
    assert job.workflow.outputs == {"result": StepOutputRef("compute", "output0")}
    step = job.workflow.steps["compute"]
    assert str(step.compute_asset) == SCRIPT
    assert step.inputs == {"input0": "input"}
    assert step.outputs == {"output0": None}
    assert str(job.inputs["input"]) == DATA


def test_job_dict_form_round_trips_exactly() -> None:
    """to_dict(from_dict(d)) == d and from_dict(to_dict(job)) == job."""
    data = job_dict()
    job = job_from_dict(data)
    assert job.inputs["previous"] == ResultId("ab" * 32)
    assert job.workflow.steps["prepare"].outputs["out"] == AssetId.parse(BASE)
    out = job_to_dict(job)
    assert job_from_dict(out) == job
    assert out["submitter"] == data["submitter"]
    assert out["inputs"] == data["inputs"]
    assert out["workflow"]["outputs"] == data["workflow"]["outputs"]
    assert {s["name"]: s for s in out["workflow"]["steps"]} == {
        s["name"]: s for s in data["workflow"]["steps"]
    }


@pytest.mark.parametrize(
    ("dump", "load"),
    [
        (to_json, json.loads),
        (lambda d: yaml.safe_dump(d, sort_keys=False), lambda text: load_yaml_text(text, "job")),
        (lambda d: json.dumps(d), lambda text: load_yaml_text(text, "job")),
    ],
    ids=["json", "yaml", "json-read-as-yaml"],
)
def test_job_round_trips_through_text(
    dump: Callable[[Any], str], load: Callable[[str], Any]
) -> None:
    """A job survives JSON and YAML text unchanged (YAML also reads JSON)."""
    job = job_from_dict(job_dict())
    assert job_from_dict(load(dump(job_to_dict(job)))) == job


def test_workflow_dict_form_round_trips() -> None:
    """A workflow alone round-trips through its dict form."""
    workflow = job_from_dict(job_dict()).workflow
    assert workflow_from_dict(workflow_to_dict(workflow)) == workflow
    assert workflow_from_dict(json.loads(to_json(workflow_to_dict(workflow)))) == workflow


def test_optional_workflow_parts_default_to_empty() -> None:
    """A workflow may omit inputs and outputs; a step may omit inputs and outputs."""
    workflow = workflow_from_dict({"steps": [{"name": "s", "compute_asset": SCRIPT}]})
    assert workflow.inputs == ()
    assert workflow.outputs == {}
    assert workflow.steps["s"].inputs == {}
    assert workflow.steps["s"].outputs == {}
    nulls = {"inputs": None, "outputs": None, "steps": []}
    assert workflow_from_dict(nulls).inputs == ()


def _set(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A deep copy of `data` with the value at `path` replaced (or added)."""
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return data


def _delete(data: dict[str, Any], path: tuple[Any, ...]) -> dict[str, Any]:
    data = copy.deepcopy(data)
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return data


@pytest.mark.parametrize(
    ("path", "culprit"),
    [
        (("extra",), "extra"),
        (("workflow", "extra"), "extra"),
        (("workflow", "steps", 0, "extra"), "extra"),
        (("workflow", "steps", 1, "image"), "image"),
    ],
    ids=["job", "workflow", "step", "step-2"],
)
def test_unknown_fields_are_rejected_at_every_level(path: tuple[Any, ...], culprit: str) -> None:
    """Strict parsing: a field that means nothing is an error naming it, never ignored."""
    with pytest.raises(InvalidInput) as error:
        job_from_dict(_set(job_dict(), path, "x"))
    assert f"unknown field(s) {culprit}" in error.value.message


@pytest.mark.parametrize(
    ("path", "culprit"),
    [
        (("submitter",), "submitter"),
        (("workflow",), "workflow"),
        (("inputs",), "inputs"),
        (("workflow", "steps"), "steps"),
        (("workflow", "steps", 0, "name"), "name"),
        (("workflow", "steps", 0, "compute_asset"), "compute_asset"),
    ],
)
def test_missing_required_fields_are_rejected(path: tuple[Any, ...], culprit: str) -> None:
    """Every required field is required, and the error names it."""
    with pytest.raises(InvalidInput) as error:
        job_from_dict(_delete(job_dict(), path))
    assert f"missing {culprit}" in error.value.message


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("submitter",), "site:p1.example.org:site1", "job submitter: 'site:p1.example.org:site1'"),
        (("submitter",), "party:p1", "job submitter: 'party:p1'"),
        (("submitter",), 5, "job submitter: expected a party identifier, got 5"),
        (
            ("inputs", "input"),
            "party:p1.example.org:p1",
            "job input 'input': 'party:p1.example.org:p1'",
        ),
        (
            ("inputs", "input"),
            "asset_collection:p1.example.org:c",
            "job input 'input': 'asset_collection",
        ),
        (("inputs", "input"), "*", "job input 'input': '*'"),
        (("inputs", "input"), None, "job input 'input': expected an identifier text, got None"),
        (("inputs",), ["input"], "job inputs must be a mapping of names"),
        (("inputs",), {1: DATA}, "job inputs must be a mapping of names"),
        (("workflow",), ["steps"], "workflow must be a mapping, got list"),
        (("workflow", "inputs"), "input", "workflow inputs must be a list of names"),
        (("workflow", "inputs"), ["input", "in.put"], "invalid workflow name 'in.put'"),
        (("workflow", "steps"), {"name": "x"}, "workflow steps must be a list"),
        (("workflow", "steps", 0), "prepare", "workflow step must be a mapping, got str"),
        (("workflow", "outputs"), ["result"], "workflow outputs must be a mapping of names"),
        (
            ("workflow", "outputs", "result"),
            "input",
            "workflow output 'result' must name a step output",
        ),
        (
            ("workflow", "outputs", "result"),
            7,
            "workflow output 'result': source must be a string, got 7",
        ),
        (("workflow", "outputs", "result"), "nothere.out", "output result <- nothere.out"),
        (("workflow", "steps", 0, "name"), "pre.pare", "invalid step name 'pre.pare'"),
        (("workflow", "steps", 0, "name"), 5, "invalid step name 5"),
        (
            ("workflow", "steps", 0, "compute_asset"),
            "asset:p1:script",
            "step 'prepare' compute_asset: 'asset:p1:script'",
        ),
        (
            ("workflow", "steps", 0, "compute_asset"),
            "asset_collection:p1:scripts",
            "step 'prepare' compute_asset: 'asset_collection:p1:scripts'",
        ),
        (
            ("workflow", "steps", 0, "inputs"),
            ["data"],
            "step 'prepare' inputs must be a mapping of names",
        ),
        (
            ("workflow", "steps", 0, "inputs", "data"),
            5,
            "step 'prepare' input 'data': source must be a string, got 5",
        ),
        (("workflow", "steps", 0, "inputs", "data"), "nothere", "prepare.data <- nothere"),
        (
            ("workflow", "steps", 0, "outputs"),
            "out",
            "step 'prepare' outputs must be a mapping of names",
        ),
        (
            ("workflow", "steps", 0, "outputs", "out"),
            "asset:p2:base",
            "step 'prepare' output 'out' base: 'asset:p2:base'",
        ),
        (
            ("workflow", "steps", 0, "outputs", "out"),
            5,
            "step 'prepare' output 'out' base: expected a asset identifier, got 5",
        ),
        (("workflow", "steps", 1, "inputs", "a"), "combine.out", "cycle through steps: combine"),
    ],
)
def test_wrong_values_are_rejected(path: tuple[Any, ...], value: Any, message: str) -> None:
    """Wrong types, bad identifiers, kinds and references are InvalidInput naming the field."""
    with pytest.raises(InvalidInput) as error:
        job_from_dict(_set(job_dict(), path, value))
    assert message in error.value.message


def test_bad_compute_asset_error_names_the_step_and_field() -> None:
    """An identifier error inside a step says which step and field it is in."""
    data = _set(job_dict(), ("workflow", "steps", 0, "compute_asset"), "asset:bad")
    with pytest.raises(InvalidInput) as error:
        job_from_dict(data)
    assert "step 'prepare' compute_asset" in error.value.message
    assert "'asset:bad'" in error.value.message


def test_workflow_output_must_name_a_step_output() -> None:
    """A workflow output bound to a workflow input is rejected, naming the output."""
    data = {"inputs": ["i"], "outputs": {"r": "i"}, "steps": []}
    with pytest.raises(InvalidInput) as error:
        workflow_from_dict(data)
    assert "workflow output 'r'" in error.value.message


@pytest.mark.parametrize("value", [None, "steps", 5, ["steps"]])
def test_non_mapping_documents_are_rejected(value: Any) -> None:
    """A job, workflow or step must be a mapping."""
    for parse in (job_from_dict, workflow_from_dict, step_from_dict):
        with pytest.raises(InvalidInput) as error:
            parse(value)
        assert "must be a mapping" in error.value.message


def test_workflow_validation_applies_to_parsed_workflows() -> None:
    """Cycles found while parsing are reported like any workflow error."""
    data = {
        "steps": [
            {"name": "a", "compute_asset": SCRIPT, "inputs": {"x": "b.o"}, "outputs": {"o": None}},
            {"name": "b", "compute_asset": SCRIPT, "inputs": {"x": "a.o"}, "outputs": {"o": None}},
        ]
    }
    with pytest.raises(InvalidInput) as error:
        workflow_from_dict(data)
    assert "cycle through steps: a, b" in error.value.message


# --- sites ------------------------------------------------------------------------------


def test_site_defaults_admin_to_owner_and_capabilities_to_true() -> None:
    """A minimal site has runner and store, and is administered by its owner."""
    site = site_from_dict({"id": "site:p1:s1", "owner": "party:p1:p1"})
    assert site == SiteDescription(SiteId("p1", "s1"), PartyId("p1", "p1"))
    assert site.admin == PartyId("p1", "p1")
    assert site.runner and site.store
    assert site.endpoint is None


@pytest.mark.parametrize(
    "data",
    [
        {"id": "site:p1:s1", "owner": "party:p1:p1"},
        {"id": "site:p1:s1", "owner": "party:p1:p1", "admin": "party:p2:p2"},
        {"id": "site:p1:s1", "owner": "party:p1:p1", "runner": False, "store": True},
        {"id": "site:p1:s1", "owner": "party:p1:p1", "store": False, "endpoint": "https://s1"},
    ],
)
def test_site_round_trips(data: dict[str, Any]) -> None:
    """A site description keeps every field of its dict form, read from JSON or YAML text too."""
    site = site_from_dict(data)
    assert (str(site.id), str(site.owner)) == (data["id"], data["owner"])
    assert str(site.admin) == data.get("admin", data["owner"])  # the owner, unless named
    assert (site.runner, site.store) == (data.get("runner", True), data.get("store", True))
    assert site.endpoint == data.get("endpoint")
    assert site_from_dict(json.loads(to_json(data))) == site
    assert site_from_dict(load_yaml_text(yaml.safe_dump(data, sort_keys=False), "site")) == site


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"id": "site:p1:s1"}, "missing owner"),
        ({"owner": "party:p1:p1"}, "missing id"),
        ({"id": "site:p1:s1", "owner": "party:p1:p1", "cpu": 4}, "unknown field(s) cpu"),
        ({"id": "site:p1:s1", "owner": "party:p1:p1", "runner": "yes"}, "runner must be"),
        ({"id": "site:p1:s1", "owner": "party:p1:p1", "store": 1}, "store must be"),
        ({"id": "site:p1:s1", "owner": "party:p1:p1", "endpoint": 443}, "endpoint must be"),
        ({"id": "party:p1:s1", "owner": "party:p1:p1"}, "'party:p1:s1'"),
        ({"id": "site:p1:s1", "owner": "site:p1:s1"}, "'site:p1:s1'"),
        ({"id": "site:p1:s1", "owner": "party:p1:p1", "admin": "x"}, "'x'"),
        ("site:p1:s1", "must be a mapping"),
    ],
)
def test_bad_sites_are_rejected(data: Any, fragment: str) -> None:
    """Missing, unknown and wrongly typed site fields are named in the error."""
    with pytest.raises(InvalidInput) as error:
        site_from_dict(data)
    assert fragment in error.value.message


# --- assets -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        {"id": DATA, "kind": "data", "metadata": {}},
        {"id": SCRIPT, "kind": "compute", "metadata": {"outputs": {"o": BASE}}},
        {
            "id": RESULT,
            "kind": "data",
            "metadata": {"size": 10},
            "image_digest": "sha256:" + "0" * 64,
        },
    ],
)
def test_asset_round_trips(data: dict[str, Any]) -> None:
    """An asset keeps every field of its dict form, read from JSON or YAML text too."""
    asset = asset_from_dict(data)
    assert (str(asset.id), asset.kind.value) == (data["id"], data["kind"])
    assert dict(asset.metadata) == data["metadata"]
    assert asset.image_digest == data.get("image_digest")
    assert asset_from_dict(json.loads(to_json(data))) == asset
    assert asset_from_dict(load_yaml_text(yaml.safe_dump(data, sort_keys=False), "asset")) == asset


def test_asset_defaults_to_data_without_metadata() -> None:
    """Only the id is required."""
    asset = asset_from_dict({"id": DATA})
    assert asset == Asset(AssetId.parse(DATA), AssetKind.DATA, {}, None)
    assert asset.size is None


def test_asset_size_field_goes_into_metadata() -> None:
    """`size` may be given at top level; it lands in metadata for the planner."""
    asset = asset_from_dict({"id": DATA, "size": 1234})
    assert asset.size == 1234
    assert asset.metadata["size"] == 1234


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"kind": "data"}, "missing id"),
        ({"id": DATA, "owner": "x"}, "unknown field(s) owner"),
        ({"id": DATA, "kind": "model"}, "kind must be"),
        ({"id": DATA, "kind": ["data"]}, "kind must be"),
        ({"id": DATA, "size": -1}, "size must be"),
        ({"id": DATA, "size": "10"}, "size must be"),
        ({"id": DATA, "size": True}, "size must be"),
        ({"id": DATA, "metadata": ["a"]}, "metadata"),
        ({"id": DATA, "image_digest": 5}, "image_digest must be"),
        ({"id": "asset_collection:p1:c"}, "asset_collection"),
        ({"id": "party:p1:p1"}, "party"),
        ({"id": "asset:p1:x"}, "'asset:p1:x'"),
    ],
)
def test_bad_assets_are_rejected(data: dict[str, Any], fragment: str) -> None:
    """Unknown fields, bad kinds, bad sizes and non-asset ids are named in the error."""
    with pytest.raises(InvalidInput) as error:
        asset_from_dict(data)
    assert fragment in error.value.message


# --- plans ------------------------------------------------------------------------------


def test_plan_round_trips() -> None:
    """A plan is step name -> site id text, and back."""
    plan = Plan({"b": SiteId("p2", "s2"), "a": SiteId("p1", "s1")})
    assert plan_to_dict(plan) == {"a": "site:p1:s1", "b": "site:p2:s2"}
    assert plan_from_dict(plan_to_dict(plan)) == plan
    assert plan_from_dict(json.loads(to_json(plan_to_dict(plan)))) == plan


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (None, "plan must be a mapping of step names, got NoneType"),
        (["a"], "plan must be a mapping of step names, got list"),
        ("a", "plan must be a mapping of step names, got str"),
        ({"a": "party:p1:p1"}, "plan step 'a': 'party:p1:p1' is not a site identifier"),
        ({"a": "site:p1"}, "plan step 'a': 'site:p1' has 1 segments"),
        ({"a": 5}, "plan step 'a': expected a site identifier, got 5"),
        ({1: "site:p1:s1"}, "plan must be a mapping of names"),
    ],
)
def test_bad_plans_are_rejected(data: Any, message: str) -> None:
    """A plan must map step names to site ids; anything else is InvalidInput saying where."""
    with pytest.raises(InvalidInput) as error:
        plan_from_dict(data)
    assert message in error.value.message


# --- text helpers -----------------------------------------------------------------------


def test_json_text_is_deterministic() -> None:
    """to_json sorts keys, so equal data gives identical text."""
    assert to_json({"b": 1, "a": [2, 3]}) == to_json({"a": [2, 3], "b": 1})
    assert to_json({"b": 1, "a": 2}).index('"a"') < to_json({"b": 1, "a": 2}).index('"b"')


def test_yaml_text_reads_back_equal() -> None:
    """Block-style YAML, keys in the order a person wrote them, reads back equal."""
    text = "submitter: x\ninputs: {}\n"
    assert load_yaml_text(text, "doc") == {"submitter": "x", "inputs": {}}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: [1, 2\n", "invalid YAML"),
        ("a: b\n  c: d\n", "at line 2"),
        ("{unclosed", "invalid YAML"),
    ],
)
def test_yaml_syntax_errors_are_invalid_input_with_a_location(text: str, fragment: str) -> None:
    """Broken YAML is InvalidInput naming the document, not a parser traceback."""
    with pytest.raises(InvalidInput) as error:
        load_yaml_text(text, "rules file")
    assert error.value.message.startswith("rules file: invalid YAML")
    assert fragment in error.value.message


def test_yaml_loading_is_safe() -> None:
    """Python object tags are refused: YAML never constructs arbitrary objects."""
    with pytest.raises(InvalidInput):
        load_yaml_text("!!python/object/apply:os.system ['true']", "doc")
