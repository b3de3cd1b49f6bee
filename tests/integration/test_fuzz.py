"""Schemathesis fuzzes every operation of the registry and the site, in-process.

Requests reach the apps through schemathesis' ASGI transport, whose client
address ("testclient") is configured as the trusted proxy, so a certificate
header gets them past authentication: a network certificate for the registry,
an admin's certificate for the internal API, a registered peer's for the
external one. Some runs send no certificate at all. Every response must be
free of server errors, come in the JSON error shape when it is an error, and
conform to the OpenAPI document. Bounded and deterministic: a few derandomized
examples per operation.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.transport import Response
from schemathesis.generation.case import Case
from schemathesis.generation.modes import GenerationMode
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.support.apps import Apps

from mahiru.api.auth import CLIENT_CERT_HEADER
from mahiru.client.http import CLIENT_HEADER

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 12
NEGATIVE_EXAMPLES = 6
#: Cases with the ids of things that exist, so that the success paths are fuzzed too.
KNOWN_EXAMPLES = 6


@schemathesis.check
def error_shape(ctx: Any, response: Response, case: Case) -> bool | None:
    """Every 4xx and 5xx body is `{"error": {"type", "message", "details"}}`."""
    if response.status_code < 400:
        return None
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, f"not the error shape: {body!r}"
    error = body["error"]
    assert isinstance(error, dict) and set(error) == {"type", "message", "details"}, error
    assert isinstance(error["type"], str) and isinstance(error["message"], str), error
    assert error["message"], "an error without a message"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    error_shape,
]


def _operations(app: FastAPI) -> list[APIOperation]:
    schema = schemathesis.openapi.from_dict(app.openapi())
    schema.app = app
    found = [result.ok() for result in schema.get_all_operations()]
    # Deletions last, so the other operations still find the known asset.
    return sorted(found, key=lambda operation: operation.method.lower() == "delete")


def _fuzz(
    operation: APIOperation,
    headers: dict[str, str],
    *,
    mode: GenerationMode,
    max_examples: int,
    statuses: list[int] | None = None,
    path_parameters: dict[str, str] | None = None,
) -> None:
    """Run `max_examples` derandomized cases of `operation` and check every response."""
    seen: list[int] = []

    @hypothesis.settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        known = {
            name: value
            for name, value in (path_parameters or {}).items()
            if "{" + name + "}" in operation.path
        }
        strategy = operation.as_strategy(generation_mode=mode, path_parameters=known or None)
        case = data.draw(strategy)
        response = case.call(headers=headers)
        seen.append(response.status_code)
        if statuses is not None:
            assert response.status_code in statuses, (
                f"{operation.label}: HTTP {response.status_code} {response.text[:300]}"
            )
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()
    assert seen, f"{operation.label}: no requests were made"


#: Schema keys that say nothing about a value.
_LABELS = {"title", "description"}


def _free_text(schema: dict[str, Any]) -> bool:
    """Whether `schema` allows any text: a bare string, maybe optional (`anyOf` with null)."""
    bare = {key: value for key, value in schema.items() if key not in _LABELS}
    if set(bare) == {"anyOf"}:
        branches = [branch for branch in bare["anyOf"] if branch != {"type": "null"}]
        return len(branches) == 1 and _free_text(branches[0])
    return bare == {"type": "string"}


def _can_be_invalid(operation: APIOperation) -> bool:
    """Whether the operation has a request that breaks its schema: a body, or a parameter
    that constrains its value or must be present. Every request to one whose only
    parameters are free path text is valid, and a search for an invalid one only burns
    hypothesis' whole budget of rejected draws (seconds per operation)."""
    raw = operation.definition.raw
    if "requestBody" in raw:
        return True
    for parameter in raw.get("parameters", []):
        if not _free_text(parameter.get("schema", {})):
            return True
        if parameter.get("in") != "path" and parameter.get("required"):
            return True
    return False


def _fuzz_operation(
    operation: APIOperation, headers: dict[str, str], known: dict[str, str]
) -> None:
    """Valid cases; invalid ones where there are any; valid ones with ids that exist."""
    _fuzz(operation, headers, mode=GenerationMode.POSITIVE, max_examples=MAX_EXAMPLES)
    if _can_be_invalid(operation):
        _fuzz(operation, headers, mode=GenerationMode.NEGATIVE, max_examples=NEGATIVE_EXAMPLES)
    if any("{" + name + "}" in operation.path for name in known):
        _fuzz(
            operation,
            headers,
            mode=GenerationMode.POSITIVE,
            max_examples=KNOWN_EXAMPLES,
            path_parameters=known,
        )


def _site_headers(apps: Apps, operation: APIOperation) -> dict[str, str]:
    # Marked as our clients mark their requests, so the fuzz reaches the routes themselves.
    if operation.path.startswith("/external/"):
        return {CLIENT_CERT_HEADER: apps.peer_cert, CLIENT_HEADER: "1"}
    return {CLIENT_CERT_HEADER: apps.admin_cert, CLIENT_HEADER: "1"}


def test_the_registry_holds_up_to_fuzzing(apps: Apps) -> None:
    """Valid and invalid requests from a network member: no 5xx, the error shape, the schema."""
    headers = {CLIENT_CERT_HEADER: apps.network_cert, CLIENT_HEADER: "1"}
    for operation in _operations(apps.registry):
        _fuzz_operation(operation, headers, apps.known)


def test_the_site_holds_up_to_fuzzing(apps: Apps) -> None:
    """Both APIs, as the owner's admin and as a registered peer: the same checks."""
    for operation in _operations(apps.site):
        _fuzz_operation(operation, _site_headers(apps, operation), apps.known)


@pytest.mark.parametrize("app_name", ["registry", "site"])
def test_without_a_certificate_every_operation_is_refused(apps: Apps, app_name: str) -> None:
    """No certificate header (or the TLS scope): 401 in the error shape, whatever the request."""
    app = apps.registry if app_name == "registry" else apps.site
    for operation in _operations(app):
        _fuzz(operation, {}, mode=GenerationMode.POSITIVE, max_examples=4, statuses=[401])
