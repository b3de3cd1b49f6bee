"""Every route that reads a JSON body documents it: the site's and the registry's OpenAPI
documents give each such operation a request schema with its fields, never a bare object."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from fastapi import FastAPI

from mahiru.api.routes.registry import REGISTRY_ROUTERS
from mahiru.api.routes.site import SITE_ROUTERS

#: The JSON-body operations of the issue: each must be among the typed ones.
EXPECTED = {
    "site": {
        "POST /internal/assets",
        "POST /internal/rules",
        "POST /internal/rules/revocations",
        "POST /internal/policy/explain",
        "POST /internal/jobs",
        "POST /external/jobs/{job_id}/assignment",
        "POST /external/live/grants",
        "POST /internal/reviews/{review_id}/approve",
        "POST /internal/reviews/{review_id}/reject",
    },
    "registry": {"POST /registrations"},
}


def _openapi(name: str) -> dict[str, Any]:
    app = FastAPI()
    for router in SITE_ROUTERS if name == "site" else REGISTRY_ROUTERS:
        app.include_router(router)
    return app.openapi()


def _objects(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The object schemas a body may match: the schema, or each branch of its `oneOf`."""
    branches: list[dict[str, Any]] = schema.get("oneOf", [schema])
    return branches


def _json_bodies(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                found[f"{method.upper()} {path}"] = content["application/json"]["schema"]
    return found


@pytest.mark.parametrize("name", ["site", "registry"])
def test_every_json_body_is_described_field_by_field(name: str) -> None:
    """Each JSON body schema is valid JSON Schema whose objects list their fields, say
    which are required and refuse others; the bodies of the issue are all among them."""
    bodies = _json_bodies(_openapi(name))
    assert EXPECTED[name] <= set(bodies)
    for operation, schema in bodies.items():
        jsonschema_rs.meta.validate(schema)
        for branch in _objects(schema):
            assert branch.get("type") == "object", operation
            assert branch.get("properties"), f"{operation}: a body without fields"
            assert branch.get("additionalProperties") is False, operation
            assert set(branch["required"]) <= set(branch["properties"]), operation


@pytest.mark.parametrize("name", ["site", "registry"])
def test_no_post_or_put_takes_an_undocumented_body(name: str) -> None:
    """A POST or PUT either takes no body or documents one: JSON (above) or an image
    stream; none says only `object`."""
    for path, operations in _openapi(name)["paths"].items():
        for method in ("post", "put", "patch"):
            operation = operations.get(method)
            if operation is None or "requestBody" not in operation:
                continue
            for media, content in operation["requestBody"]["content"].items():
                schema = content.get("schema", {})
                assert schema not in ({}, {"type": "object"}), f"{method} {path} {media}"
                if media != "application/json":
                    assert schema.get("format") == "binary", f"{method} {path} {media}"
