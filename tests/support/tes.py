"""Talking to a site's TES endpoint as a TRE's tools do, and checking each answer against
the GA4GH TES 1.1 schemas (this module holds no tests).

`TesClient` is `py-tes` with the client certificate the internal API asks for (as in
docs/tes.md); `tes_get`/`tes_post` are plain HTTPS calls with the same certificate, for
what `py-tes` cannot ask (tag and state filters, the validation extension). The schemas
are the copies under tests/standards/tes/ (their README names source and licence).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs
import requests
import tes
import yaml

from mahiru.client.http import TlsIdentity

STANDARDS = Path(__file__).resolve().parents[1] / "standards" / "tes"
_SERVICE_INFO = "https://raw.githubusercontent.com/ga4gh-discovery/ga4gh-service-info/v1.0.0/service-info.yaml#/components/schemas/"
#: The TES objects that list all their fields: an answer may carry no other field.
_CLOSED = (
    "tesTask", "tesExecutor", "tesInput", "tesOutput", "tesResources", "tesTaskLog",
    "tesExecutorLog", "tesOutputFileLog", "tesListTasksResponse", "tesCreateTaskResponse",
)  # fmt: skip


class TesClient(tes.HTTPClient):  # type: ignore[misc]
    """py-tes presenting a user's certificate and trusting the network CA."""

    def __init__(self, url: str, identity: TlsIdentity, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.identity = identity

    def _request_params(
        self, data: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = super()._request_params(data=data, params=params)
        kwargs.update(
            cert=(str(self.identity.cert), str(self.identity.key)), verify=str(self.identity.ca)
        )
        return kwargs


def _call(method: str, url: str, identity: TlsIdentity, **kwargs: Any) -> requests.Response:
    return requests.request(
        method,
        url,
        cert=(str(identity.cert), str(identity.key)),
        verify=str(identity.ca),
        timeout=60,
        **kwargs,
    )


def tes_get(
    internal_url: str, path: str, identity: TlsIdentity, **params: Any
) -> requests.Response:
    """GET `<internal URL>/ga4gh/tes/v1<path>` with `params`."""
    return _call("GET", f"{internal_url}/ga4gh/tes/v1{path}", identity, params=params)


def tes_post(
    internal_url: str, path: str, identity: TlsIdentity, body: Any = None
) -> requests.Response:
    """POST `body` (JSON) to `<internal URL>/ga4gh/tes/v1<path>`."""
    return _call(
        "POST",
        f"{internal_url}/ga4gh/tes/v1{path}",
        identity,
        json=body,
        headers={"Content-Type": "application/json"},
    )


@functools.cache
def _components() -> dict[str, Any]:
    # Through JSON, so the examples YAML reads as dates become text again.
    text = (STANDARDS / "tes-1.1.0-components.yaml").read_text()
    document = json.loads(json.dumps(yaml.safe_load(text), default=str))
    service_info = yaml.safe_load((STANDARDS / "service-info-1.0.0.yaml").read_text())
    components: dict[str, Any] = document["components"]
    schemas = components["schemas"]
    for name in ("tesServiceType", "tesServiceInfo"):
        for branch in schemas[name]["allOf"]:
            ref = branch.get("$ref", "")
            if ref.startswith(_SERVICE_INFO):
                branch["$ref"] = "#/components/schemas/" + ref.removeprefix(_SERVICE_INFO)
    schemas.update(service_info)
    for name in _CLOSED:
        schemas[name]["additionalProperties"] = False
    return components


def check_tes(instance: Any, name: str, *, minimal: bool = False) -> None:
    """Raise if `instance` is not a valid TES `name` (e.g. `tesTask`) with no unknown field.

    A MINIMAL task view is only its id and state (TES 1.1, `view`): it is checked
    against `tesTask` without the fields the full object requires."""
    components = copy.deepcopy(_components())
    if minimal:
        components["schemas"]["tesTask"].pop("required")
    schema = {"$ref": f"#/components/schemas/{name}", "components": components}
    jsonschema_rs.Draft4Validator(schema, validate_formats=False).validate(instance)


def check_task(task: dict[str, Any], view: str) -> None:
    """Check a task as shown in `view` against the schemas and the view's rules."""
    check_tes(task, "tesTask", minimal=view == "MINIMAL")
    if view == "MINIMAL":
        assert set(task) == {"id", "state"}, task
        return
    for log in task["logs"]:
        assert ("system_logs" in log) == (view == "FULL"), log
        for executor in log["logs"]:
            if view == "BASIC":
                assert "stdout" not in executor and "stderr" not in executor, executor


def check_list(answer: dict[str, Any], view: str) -> None:
    """Check a task list whose tasks are shown in `view`."""
    check_tes(answer, "tesListTasksResponse", minimal=view == "MINIMAL")
    for task in answer["tasks"]:
        check_task(task, view)
