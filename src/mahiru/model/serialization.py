"""Dict forms of the domain objects, for JSON and YAML, that round-trip exactly.

`*_from_dict` functions are the edge where untrusted data becomes typed
values: they reject unknown fields, wrong types and bad identifiers with
InvalidInput naming the culprit.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from mahiru.errors import InvalidInput
from mahiru.model.assets import Asset, AssetKind, SiteDescription
from mahiru.model.canonical import canonical_json
from mahiru.model.fields import (
    ANY,
    BOOLEAN,
    Field,
    Shape,
    array,
    choice,
    name_map,
    names_to,
    nullable,
    optional,
    string,
    whole,
)
from mahiru.model.identifiers import (
    AssetId,
    PartyId,
    ResultId,
    SiteId,
    identifier_pattern,
    parse_identifier,
)
from mahiru.model.workflow import (
    NAME_PATTERN,
    SOURCE_PATTERN,
    Job,
    Plan,
    StepOutputRef,
    Workflow,
    WorkflowStep,
    parse_source,
)

T = TypeVar("T")

_ASSET = string(pattern=identifier_pattern("asset"))

STEP_SHAPE = Shape(
    "workflow step",
    "A workflow step: a compute asset run on inputs, making outputs.",
    (
        Field("name", string(pattern=NAME_PATTERN)),
        Field("compute_asset", _ASSET),
        optional(
            "inputs",
            names_to(
                string(
                    pattern=SOURCE_PATTERN,
                    description="a workflow input's name, or 'step.output'",
                ),
                keys=NAME_PATTERN,
            ),
        ),
        optional(
            "outputs",
            names_to(
                nullable({**_ASSET, "description": "the output's base asset"}), keys=NAME_PATTERN
            ),
        ),
    ),
)
WORKFLOW_SHAPE = Shape(
    "workflow",
    "A workflow: its inputs, its outputs (each a step's output) and its steps.",
    (
        Field("steps", array(STEP_SHAPE.json_schema())),
        optional("inputs", array(string(pattern=NAME_PATTERN))),
        optional(
            "outputs",
            names_to(
                string(pattern=SOURCE_PATTERN, description="'step.output'"), keys=NAME_PATTERN
            ),
        ),
    ),
)
#: What a job input may be bound to.
JOB_INPUT = string(pattern=identifier_pattern("asset", "result"))
#: A plan: which site runs each step.
PLAN_SCHEMA = names_to(string(pattern=identifier_pattern("site")), keys=NAME_PATTERN)
JOB_SHAPE = Shape(
    "job",
    "A job: the party submitting it, the workflow and the assets bound to its inputs.",
    (
        Field("submitter", string(pattern=identifier_pattern("party"))),
        Field("workflow", WORKFLOW_SHAPE.json_schema()),
        Field("inputs", names_to(JOB_INPUT, keys=NAME_PATTERN)),
    ),
)
JOB_SUBMISSION_SHAPE = Shape(
    "job submission", "A job to plan and run.", (Field("job", JOB_SHAPE.json_schema()),)
)


def _named(what: str, parse: Callable[[Any], T], text: object) -> T:
    """`parse(text)`, its InvalidInput prefixed with the field `what` being parsed."""
    try:
        return parse(text)
    except InvalidInput as error:
        raise InvalidInput(f"{what}: {error.message}") from None


def _asset_id(text: object, what: str) -> AssetId:
    return _named(what, AssetId.parse, text)


def step_from_dict(data: object) -> WorkflowStep:
    """Parse one workflow step."""
    d = STEP_SHAPE.check(data)
    name = d["name"]
    where = f"step {name!r}"
    inputs = {
        k: parse_source(v, f"{where} input {k!r}")
        for k, v in name_map(d.get("inputs"), f"{where} inputs").items()
    }
    outputs = {
        k: (None if v is None else _asset_id(v, f"{where} output {k!r} base"))
        for k, v in name_map(d.get("outputs"), f"{where} outputs").items()
    }
    return WorkflowStep(
        name, _asset_id(d["compute_asset"], f"{where} compute_asset"), inputs, outputs
    )


def workflow_from_dict(data: object) -> Workflow:
    """Parse and validate a workflow."""
    d = WORKFLOW_SHAPE.check(data)
    inputs = d.get("inputs") or []
    if not isinstance(inputs, list):
        raise InvalidInput("workflow inputs must be a list of names")
    steps = d["steps"]
    if not isinstance(steps, list):
        raise InvalidInput("workflow steps must be a list")
    outputs: dict[str, StepOutputRef] = {}
    for name, source in name_map(d.get("outputs"), "workflow outputs").items():
        ref = parse_source(source, f"workflow output {name!r}")
        if not isinstance(ref, StepOutputRef):
            raise InvalidInput(
                f"workflow output {name!r} must name a step output 'step.output', got {source!r}"
            )
        outputs[name] = ref
    return Workflow(inputs, outputs, [step_from_dict(s) for s in steps])


def workflow_to_dict(workflow: Workflow) -> dict[str, Any]:
    """The dict form of a workflow."""
    return {
        "inputs": list(workflow.inputs),
        "outputs": {name: str(ref) for name, ref in workflow.outputs.items()},
        "steps": [
            {
                "name": step.name,
                "compute_asset": str(step.compute_asset),
                "inputs": {k: str(v) for k, v in step.inputs.items()},
                "outputs": {
                    k: (str(v) if v is not None else None) for k, v in step.outputs.items()
                },
            }
            for step in workflow.steps.values()
        ],
    }


def _job_input(text: str) -> AssetId | ResultId:
    value = parse_identifier(text, ("asset", "result"))
    assert isinstance(value, AssetId | ResultId)
    return value


def job_from_dict(data: object) -> Job:
    """Parse and validate a job."""
    d = JOB_SHAPE.check(data)
    submitter = _named("job submitter", PartyId.parse, d["submitter"])
    inputs: dict[str, AssetId | ResultId] = {}
    for name, text in name_map(d["inputs"], "job inputs").items():
        inputs[name] = _named(f"job input {name!r}", _job_input, text)
    return Job(submitter, workflow_from_dict(d["workflow"]), inputs)


def submitted_job(data: object) -> Job:
    """Parse a job submission (`JOB_SUBMISSION_SHAPE`): the job in it."""
    return job_from_dict(JOB_SUBMISSION_SHAPE.check(data)["job"])


def job_to_dict(job: Job) -> dict[str, Any]:
    """The dict form of a job."""
    return {
        "submitter": str(job.submitter),
        "workflow": workflow_to_dict(job.workflow),
        "inputs": {k: str(v) for k, v in job.inputs.items()},
    }


def job_digest(job: Job) -> str:
    """The hex SHA-256 of the job's canonical JSON: equal jobs, equal digests."""
    return hashlib.sha256(canonical_json(job_to_dict(job))).hexdigest()


SITE_SHAPE = Shape(
    "site",
    "A site as a scenario or conformance file describes it.",
    (
        Field("id", string(pattern=identifier_pattern("site"))),
        Field("owner", string(pattern=identifier_pattern("party"))),
        optional("admin", nullable(string(pattern=identifier_pattern("party")))),
        optional("runner", BOOLEAN),
        optional("store", BOOLEAN),
        optional("endpoint", nullable(string(description="the site's external API URL"))),
    ),
)


def site_from_dict(data: object) -> SiteDescription:
    """Parse a site description."""
    d = SITE_SHAPE.check(data)
    for flag in ("runner", "store"):
        if not isinstance(d.get(flag, True), bool):
            raise InvalidInput(f"site {d['id']!r}: {flag} must be true or false")
    endpoint = d.get("endpoint")
    if endpoint is not None and not isinstance(endpoint, str):
        raise InvalidInput(f"site {d['id']!r}: endpoint must be a URL")
    return SiteDescription(
        SiteId.parse(d["id"]),
        PartyId.parse(d["owner"]),
        PartyId.parse(d["admin"]) if d.get("admin") is not None else None,
        runner=d.get("runner", True),
        store=d.get("store", True),
        endpoint=endpoint,
    )


ASSET_DESCRIPTION_SHAPE = Shape(
    "asset",
    "An asset to describe at a site; its image is uploaded separately.",
    (
        Field(
            "id",
            string(
                pattern=identifier_pattern("asset"),
                description="asset:<namespace>:<name>:<site namespace>:<site name>",
            ),
        ),
        optional("kind", choice(*(kind.value for kind in AssetKind))),
        optional("metadata", names_to(ANY)),
    ),
)


def asset_description_to_dict(asset: Asset) -> dict[str, Any]:
    """The dict form a site is asked to describe an asset with: id, kind and metadata."""
    return {"id": str(asset.id), "kind": asset.kind.value, "metadata": dict(asset.metadata)}


def asset_description_from_dict(data: object) -> Asset:
    """Parse an asset to describe (`ASSET_DESCRIPTION_SHAPE`): kind data and no metadata
    unless given; no image yet."""
    d = ASSET_DESCRIPTION_SHAPE.check(data)
    identifier = _asset_id(d["id"], "asset field 'id'")
    return Asset(
        identifier,
        _asset_kind(d, str(identifier)),
        dict(name_map(d.get("metadata"), f"asset {identifier} metadata")),
    )


def _asset_kind(d: Mapping[str, Any], name: str) -> AssetKind:
    try:
        return AssetKind(d.get("kind", "data"))
    except ValueError:
        raise InvalidInput(f"asset {name}: kind must be 'data' or 'compute'") from None


#: An asset as a scenario file describes it: an asset or a result, maybe with its image.
ASSET_SHAPE = ASSET_DESCRIPTION_SHAPE.with_fields(
    Field("id", string(pattern=identifier_pattern("asset", "result"))),
    optional("image_digest", nullable(string())),
    optional("size", whole(minimum=0)),
    what="asset",
    description="An asset or result as a file describes it, with its image digest and size.",
)


def asset_from_dict(data: object) -> Asset:
    """Parse an asset description."""
    d = ASSET_SHAPE.check(data)
    identifier = parse_identifier(d["id"], ("asset", "result"))
    assert isinstance(identifier, AssetId | ResultId)
    kind = _asset_kind(d, d["id"])
    metadata = dict(name_map(d.get("metadata"), f"asset {d['id']} metadata"))
    if "size" in d:
        metadata["size"] = d["size"]
    image_digest = d.get("image_digest")
    if image_digest is not None and not isinstance(image_digest, str):
        raise InvalidInput(f"asset {d['id']}: image_digest must be text")
    asset = Asset(identifier, kind, metadata, image_digest)
    if "size" in metadata and asset.size is None:
        raise InvalidInput(f"asset {d['id']}: size must be a non-negative integer")
    return asset


def plan_to_dict(plan: Plan) -> dict[str, str]:
    """The dict form of a plan: step name -> site id text."""
    return {step: str(site) for step, site in plan.assignments.items()}


def plan_from_dict(data: object) -> Plan:
    """Parse a plan."""
    if not isinstance(data, Mapping):
        raise InvalidInput(f"plan must be a mapping of step names, got {type(data).__name__}")
    return Plan(
        {
            step: _named(f"plan step {step!r}", SiteId.parse, site)
            for step, site in name_map(data, "plan").items()
        }
    )


def to_json(data: Any) -> str:
    """Deterministic JSON text."""
    return json.dumps(data, sort_keys=True, indent=2)


def load_yaml_text(text: str, what: str) -> Any:
    """Parse YAML (a superset of JSON), turning syntax errors into InvalidInput."""
    # Imported here: most users of this module (the `mahiru` command's clients) never
    # parse YAML, and would pay for loading it at every start.
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise InvalidInput(f"{what}: invalid YAML{where}: {problem}") from None
