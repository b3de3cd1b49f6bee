"""Each value's dict form is valid under the JSON Schema of the parser that reads it back,
and parses back equal: the schema the API documents describes what the model writes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.support.jobs import one_step_job
from tests.unit.test_signing import RULES

from mahiru.errors import InvalidInput
from mahiru.model.assets import Asset, AssetKind
from mahiru.model.fields import Schema, Shape
from mahiru.model.identifiers import AssetId, JobId, PartyId, SiteId
from mahiru.model.items import WorkflowItem
from mahiru.model.jobs import ResultProvenance, StepAssignment, step_provenance
from mahiru.model.jobs.handover import RESULT_PROVENANCE_SHAPE, STEP_ASSIGNMENT_SHAPE
from mahiru.model.live import (
    LIVE_GRANT_REQUEST_SHAPE,
    LIVE_READER_SHAPE,
    LiveGrantRequest,
    LiveReader,
)
from mahiru.model.questions import POLICY_QUESTION_SHAPE, PolicyQuestion
from mahiru.model.registration_forms import (
    DOCUMENT_SHAPES,
    SIGNED_DOCUMENT_SCHEMA,
    SIGNED_DOCUMENT_SHAPES,
)
from mahiru.model.registrations import Registration, SignedRegistration
from mahiru.model.registry import (
    PARTY_RECORD_SHAPE,
    SITE_ENDPOINTS_SHAPE,
    SITE_RECORD_SHAPE,
    PartyRecord,
    SiteEndpoints,
    SiteRecord,
)
from mahiru.model.serialization import (
    ASSET_DESCRIPTION_SHAPE,
    ASSET_SHAPE,
    JOB_SHAPE,
    JOB_SUBMISSION_SHAPE,
    SITE_SHAPE,
    STEP_SHAPE,
    WORKFLOW_SHAPE,
    asset_description_from_dict,
    asset_description_to_dict,
    job_from_dict,
    job_to_dict,
    submitted_job,
    workflow_from_dict,
    workflow_to_dict,
)
from mahiru.model.workflow import Plan
from mahiru.policy.rules import RULE_SHAPES, rule_from_dict
from mahiru.policy.signing import (
    REVOCATION_SHAPE,
    SIGNED_RULE_SCHEMA,
    Revocation,
    SignedRule,
    sign_revocation,
    sign_rule,
)

SITE1 = SiteId("p1.org", "site1")
SITE2 = SiteId("p2.org", "site2")
JOB = one_step_job(
    "party:p1.org:p1",
    "asset:p1.org:minmax:p1.org:site1",
    "asset:p2.org:data:p2.org:site2",
    "asset:p1.org:base:p1.org:site1",
)
JOB_ID = JobId("job-1")
KEY = Ed25519PrivateKey.generate()


@dataclass(frozen=True)
class Case:
    """A value, its dict form's writer and reader, and the schema the reader documents."""

    name: str
    schema: Schema
    value: object
    write: Callable[[Any], Any]
    read: Callable[[Any], Any]


CASES = [
    Case("job", JOB_SHAPE.json_schema(), JOB, job_to_dict, job_from_dict),
    Case(
        "workflow",
        WORKFLOW_SHAPE.json_schema(),
        JOB.workflow,
        workflow_to_dict,
        workflow_from_dict,
    ),
    Case(
        "job submission",
        JOB_SUBMISSION_SHAPE.json_schema(),
        JOB,
        lambda job: {"job": job_to_dict(job)},
        submitted_job,
    ),
    Case(
        "step assignment",
        STEP_ASSIGNMENT_SHAPE.json_schema(),
        StepAssignment(JOB_ID, SITE1, SITE2, JOB, Plan({"compute": SITE2})),
        StepAssignment.to_dict,
        StepAssignment.from_dict,
    ),
    Case(
        "result provenance",
        RESULT_PROVENANCE_SHAPE.json_schema(),
        step_provenance(JOB_ID, JOB, "compute")[0],
        ResultProvenance.to_dict,
        ResultProvenance.from_dict,
    ),
    Case(
        "live grant request",
        LIVE_GRANT_REQUEST_SHAPE.json_schema(),
        LiveGrantRequest(
            JOB_ID, JOB, SITE1, "compute", "input0", AssetId.parse("asset:p2.org:data:p2.org:site2")
        ),
        LiveGrantRequest.to_dict,
        LiveGrantRequest.from_dict,
    ),
    Case(
        "live reader",
        LIVE_READER_SHAPE.json_schema(),
        LiveReader("compute", SITE2),
        LiveReader.to_dict,
        LiveReader.from_dict,
    ),
    Case(
        "policy question (site)",
        POLICY_QUESTION_SHAPE.json_schema(),
        PolicyQuestion(JOB, WorkflowItem.parse("compute.input0", JOB.workflow), site=SITE2),
        PolicyQuestion.to_dict,
        PolicyQuestion.from_dict,
    ),
    Case(
        "policy question (party)",
        POLICY_QUESTION_SHAPE.json_schema(),
        PolicyQuestion(JOB, WorkflowItem.parse("result", JOB.workflow), party=PartyId("a", "b")),
        PolicyQuestion.to_dict,
        PolicyQuestion.from_dict,
    ),
]

CASES += [
    Case(
        f"signed {type_name} rule",
        SIGNED_RULE_SCHEMA,
        sign_rule(rule_from_dict({"type": type_name, **fields}), KEY),
        SignedRule.to_dict,
        SignedRule.from_dict,
    )
    for type_name, fields in RULES.items()
]
CASES += [
    Case(
        "revocation",
        REVOCATION_SHAPE.json_schema(),
        sign_revocation(rule_from_dict({"type": "MayAccess", **RULES["MayAccess"]}), KEY),
        Revocation.to_dict,
        Revocation.from_dict,
    ),
    Case(
        "asset description",
        ASSET_DESCRIPTION_SHAPE.json_schema(),
        Asset(
            AssetId.parse("asset:p1.org:data:p1.org:site1"),
            AssetKind.COMPUTE,
            {"size": 3, "live_access": True, "outputs": {"o": "x"}},
        ),
        asset_description_to_dict,
        asset_description_from_dict,
    ),
]

PARTY = PartyRecord(PartyId("p1.org", "p1"), "p1.org", "-----BEGIN KEY-----", "-----BEGIN CA-----")
SITE = SiteRecord(
    SITE1,
    PARTY.id,
    PARTY.id,
    SiteEndpoints("https://site1/internal", None),
    "-----BEGIN CERTIFICATE-----",
    has_store=True,
    has_runner=False,
)
NOW = datetime(2025, 1, 31, 12, 0, tzinfo=UTC)
CASES += [
    Case(
        "party record",
        PARTY_RECORD_SHAPE.json_schema(),
        PARTY,
        PartyRecord.to_dict,
        PartyRecord.from_dict,
    ),
    Case(
        "site record",
        SITE_RECORD_SHAPE.json_schema(),
        SITE,
        SiteRecord.to_dict,
        SiteRecord.from_dict,
    ),
]
CASES += [
    Case(
        f"{registration.action} document",
        SIGNED_DOCUMENT_SCHEMA,
        registration.sign(KEY),
        SignedRegistration.to_dict,
        SignedRegistration.from_dict,
    )
    for registration in (
        Registration.put_party(PARTY, base_version=0, issued_at=NOW),
        Registration.put_site(SITE, base_version=3, issued_at=NOW),
        Registration.remove_party(PARTY.id, base_version=4, issued_at=NOW),
        Registration.remove_site(SITE.id, base_version=5, issued_at=NOW),
    )
]

SHAPES: list[Shape] = [
    JOB_SHAPE,
    WORKFLOW_SHAPE,
    STEP_SHAPE,
    JOB_SUBMISSION_SHAPE,
    STEP_ASSIGNMENT_SHAPE,
    RESULT_PROVENANCE_SHAPE,
    LIVE_GRANT_REQUEST_SHAPE,
    LIVE_READER_SHAPE,
    POLICY_QUESTION_SHAPE,
    REVOCATION_SHAPE,
    ASSET_DESCRIPTION_SHAPE,
    ASSET_SHAPE,
    SITE_SHAPE,
    *RULE_SHAPES.values(),
    PARTY_RECORD_SHAPE,
    SITE_ENDPOINTS_SHAPE,
    SITE_RECORD_SHAPE,
    *DOCUMENT_SHAPES.values(),
    *SIGNED_DOCUMENT_SHAPES.values(),
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: shape.what)
def test_every_shape_has_a_valid_json_schema(shape: Shape) -> None:
    """The schema is valid JSON Schema and refuses a field the shape does not have."""
    schema = shape.json_schema()
    jsonschema_rs.meta.validate(schema)
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) <= set(schema["properties"])


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_dict_form_is_valid_under_its_parsers_schema_and_reads_back_equal(case: Case) -> None:
    """to_dict -> valid under the schema -> from_dict gives the value back."""
    jsonschema_rs.meta.validate(dict(case.schema))
    data = case.write(case.value)
    jsonschema_rs.validate(dict(case.schema), data)
    assert case.read(data) == case.value


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_a_dict_form_with_an_unknown_field_is_refused_by_schema_and_parser(case: Case) -> None:
    """One field more: the schema and the parser both refuse it."""
    data = {**case.write(case.value), "colour": "red"}
    assert not jsonschema_rs.is_valid(dict(case.schema), data)
    with pytest.raises(InvalidInput, match="colour"):
        case.read(data)


@pytest.mark.parametrize(
    "case", [case for case in CASES if "oneOf" in case.schema], ids=lambda case: case.name
)
def test_a_form_of_several_kinds_is_valid_under_exactly_one_branch(case: Case) -> None:
    """The branches are told apart by their discriminator: a value matches its own only."""
    data = case.write(case.value)
    key = case.schema["discriminator"]["propertyName"]
    matching = [
        branch["properties"][key]["const"]
        for branch in case.schema["oneOf"]
        if jsonschema_rs.is_valid(branch, data)
    ]
    assert matching == [data[key]]
