"""Every route that reads a JSON body refuses a wrong one with a 4xx naming the field: a
field left out, a field it does not know, a field of the wrong type. Never a 500.

The routes are found in the apps' OpenAPI documents, so a new JSON-body route without a
valid body here fails the test; each valid body must also be valid under its documented
schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import jsonschema_rs
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from tests.support.apps import Apps
from tests.support.jobs import one_step_job

from mahiru.api.auth import CLIENT_CERT_HEADER
from mahiru.client.http import CLIENT_HEADER
from mahiru.model.identifiers import AssetId, JobId, PartyId, ResultId, SiteId
from mahiru.model.jobs import StepAssignment
from mahiru.model.live import LiveGrantRequest
from mahiru.model.registrations import Registration
from mahiru.model.review_exchange import report_body
from mahiru.model.reviews import Review, ReviewState
from mahiru.model.serialization import job_to_dict
from mahiru.model.workflow import Plan
from mahiru.policy.rules import rule_from_dict
from mahiru.policy.signing import sign_revocation, sign_rule

pytestmark = pytest.mark.integration

KEY = Ed25519PrivateKey.generate()
P1_SITE = SiteId("p1.org", "site")
P2_SITE = SiteId("p2.org", "site")
DATA = "asset:p1.org:data1:p1.org:site"
JOB = one_step_job(
    "party:p1.org:p1", "asset:p1.org:c:p1.org:site", DATA, "asset:p1.org:b:p1.org:site"
)
RULE = rule_from_dict({"type": "MayAccess", "site": str(P2_SITE), "asset": DATA})
#: A review held at p1's site for p2 to decide, as offered, and as p2 rejected it.
REVIEW = Review(
    review_id="3f2a9c4d",
    result=ResultId("ab" * 32),
    receiving_party=PartyId("p1.org", "p1"),
    rule_id="c0ffee" * 4,
    reviewer="party:p2.org:p2",
    job_id=JobId("job-1"),
    digest="sha256:" + "cd" * 32,
    checks=(),
    state=ReviewState.PENDING,
    requested_at=datetime(2026, 1, 1, tzinfo=UTC),
)
REJECTED = REVIEW.decide(
    ReviewState.REJECTED,
    at=datetime(2026, 1, 2, tzinfo=UTC),
    by="rita@party:p2.org:p2",
    party=PartyId("p2.org", "p2"),
    reason="names in it",
)

#: JOB as a GA4GH TES task.
TASK = {
    "name": "minmax",
    "executors": [{"image": "asset:p1.org:c:p1.org:site", "command": []}],
    "inputs": [{"url": DATA, "path": "/mahiru/inputs/input0", "type": "DIRECTORY"}],
    "outputs": [
        {
            "url": "asset:p1.org:b:p1.org:site",
            "path": "/mahiru/outputs/output0",
            "type": "DIRECTORY",
        }
    ],
    "tags": {"Project": "tests"},
}

#: A valid body for each JSON-body operation (the path as the OpenAPI document has it).
VALID: dict[str, Callable[[], dict[str, Any]]] = {
    "POST /internal/assets": lambda: {
        "id": "asset:p1.org:new:p1.org:site",
        "kind": "data",
        "metadata": {"purpose": "tests"},
    },
    "POST /internal/rules": lambda: sign_rule(RULE, KEY).to_dict(),
    "POST /internal/rules/revocations": lambda: sign_revocation(RULE, KEY).to_dict(),
    "POST /internal/policy/explain": lambda: {
        "job": job_to_dict(JOB),
        "item": "input",
        "site": str(P2_SITE),
        "party": None,
    },
    "POST /internal/jobs": lambda: {"job": job_to_dict(JOB)},
    "POST /internal/ga4gh/tes/v1/tasks": lambda: TASK,
    "POST /internal/ga4gh/tes/v1/tasks:validate": lambda: TASK,
    "POST /internal/reviews/{review_id}/approve": lambda: {"reason": "aggregates only"},
    "POST /internal/reviews/{review_id}/reject": lambda: {"reason": "names in it"},
    "POST /external/reviews": lambda: {"review": REVIEW.to_dict()},
    "POST /external/reviews/{review_id}/decision": lambda: report_body(REJECTED, None),
    "POST /external/jobs/{job_id}/assignment": lambda: StepAssignment(
        JobId("job-1"), P1_SITE, P2_SITE, JOB, Plan({"compute": P2_SITE})
    ).to_dict(),
    "POST /external/live/grants": lambda: LiveGrantRequest(
        JobId("job-1"), JOB, P1_SITE, "compute", "input0", AssetId.parse(DATA)
    ).to_dict(),
    "POST /registrations": lambda: (
        Registration.remove_site(P2_SITE, base_version=0, issued_at=datetime.now(UTC))
        .sign(KEY)
        .to_dict()
    ),
}


def _json_operations(app: FastAPI) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(method, path, body schema) of every operation that reads a JSON body."""
    for path, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                yield method.upper(), path, content["application/json"]["schema"]


def _branch(schema: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """The object schema `body` is valid under (one branch of a `oneOf`)."""
    jsonschema_rs.validate(schema, body)
    branches: list[dict[str, Any]] = schema.get("oneOf", [schema])
    [branch] = [b for b in branches if jsonschema_rs.is_valid(b, body)]
    return branch


def _wrong_type(value: object) -> object:
    return "12345" if isinstance(value, int) else 12345


def _wrong_bodies(body: dict[str, Any], required: list[str]) -> Iterator[tuple[str, Any]]:
    """(the field the error must name, a body wrong in that field)."""
    for name in required:
        yield name, {key: value for key, value in body.items() if key != name}
    yield "colour", {**body, "colour": "red"}
    for name, value in body.items():
        yield name, {**body, name: _wrong_type(value)}


def _names(message: str, field: str) -> bool:
    """Whether `message` names `field`, as a word (`job_id` may be written "job id")."""
    return any(
        re.search(rf"\b{re.escape(name)}\b", message) for name in (field, field.replace("_", " "))
    )


@pytest.mark.parametrize("app_name", ["site", "registry"])
def test_every_json_body_route_refuses_a_wrong_body_naming_the_field(
    apps: Apps,
    app_name: str,
) -> None:
    """Missing, unknown and wrongly typed fields: a 4xx in the error shape naming the field."""
    app = apps.site if app_name == "site" else apps.registry
    problems = []
    tried = 0
    with TestClient(app) as client:
        for method, path, schema in _json_operations(app):
            operation = f"{method} {path}"
            assert operation in VALID, f"{operation}: add a valid body to VALID"
            body = VALID[operation]()
            branch = _branch(schema, body)
            if path.startswith("/external/"):
                cert = apps.peer_cert
            elif app_name == "site":
                cert = apps.admin_cert
            else:
                cert = apps.network_cert
            headers = {CLIENT_CERT_HEADER: cert, CLIENT_HEADER: "1"}
            url = path.replace("{job_id}", "job-1").replace("{review_id}", "review-1")
            for field, wrong in _wrong_bodies(body, branch["required"]):
                tried += 1
                answer = client.request(method, url, json=wrong, headers=headers)
                error = answer.json().get("error", {})
                if not 400 <= answer.status_code < 500 or not _names(
                    str(error.get("message")), field
                ):
                    problems.append(f"{operation} wrong in {field}: {answer.status_code} {error}")
    assert not problems, "\n".join(problems)
    assert tried >= (40 if app_name == "site" else 8)
