"""Validate an RO-Crate with roc-validator, offline, and print what it found as JSON.

Run with the Python of the validator's own environment (`make crate-validator`
makes `.venv-rocrate`; roc-validator pins an older `rich` than the project's
tools, so it cannot share their environment):

    .venv-rocrate/bin/python tests/support/rocrate_offline.py PROFILE CRATE REPORT.json

The JSON-LD contexts the validator would fetch from w3id.org are answered from
tests/standards/rocrate/; any other URL is refused. Every check of PROFILE (and
the profiles it builds on) runs down to the RECOMMENDED level; the output lists
each executed check with its severity and whether it passed, and the issues
(written to REPORT.json: the validator also prints to standard output).
Imports nothing of Mahiru.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

CONTEXTS = Path(__file__).resolve().parents[1] / "standards" / "rocrate"
LOCAL = {
    "https://w3id.org/ro/crate/1.1/context": "ro-crate-1.1-context.jsonld",
    "https://w3id.org/ro/terms/workflow-run/context": "workflow-run-context.jsonld",
}


def _offline_send(
    self: HTTPAdapter, request: requests.PreparedRequest, **_: object
) -> requests.Response:
    url = (request.url or "").rstrip("/")
    name = LOCAL.get(url)
    if name is None:
        raise requests.ConnectionError(f"offline: no local copy of {request.url}")
    response = requests.Response()
    response.status_code = 200
    response._content = (CONTEXTS / name).read_bytes()
    response.headers["Content-Type"] = "application/ld+json"
    response.url = url
    response.request = request
    response.encoding = "utf-8"
    return response


def main(profile: str, crate: str, report: str) -> int:
    HTTPAdapter.send = _offline_send  # type: ignore[method-assign]
    from rocrate_validator import services
    from rocrate_validator.models import Severity

    result = services.validate(
        {
            "rocrate_uri": str(Path(crate).resolve()),
            "profile_identifier": profile,
            "requirement_severity": Severity.RECOMMENDED,
            "enable_profile_inheritance": True,
            "abort_on_first": False,
            "no_cache": True,  # every context through the patched adapter, none from a cache
            "cache_max_age": -1,
        }
    )
    failed = {issue.check.identifier for issue in result.issues}
    checks = [
        {
            "id": check.identifier,
            "name": check.name,
            "profile": check.requirement.profile.identifier,
            "severity": check.severity.name,
            "passed": check.identifier not in failed,
        }
        for check in sorted(result.executed_checks, key=lambda c: c.identifier)
    ]
    issues = [
        {
            "check": issue.check.identifier,
            "severity": issue.severity.name,
            "message": issue.message,
            "entity": issue.violatingEntity,
        }
        for issue in result.issues
    ]
    Path(report).write_text(json.dumps({"checks": checks, "issues": issues}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3]))
