"""A real two-site job as an RO-Crate: fetched with the CLI, validated, verified offline.

The compute-to-data job runs its step at site2 (only it may read the input) for
party1, submitted at site1. `mahiru jobs crate` writes its crate; roc-validator
finds no issue at the REQUIRED level of the Provenance Run Crate profile (and
the test prints which RECOMMENDED checks pass); `mahiru results verify` passes
on it, and fails on a crate with one output byte changed or a receipt removed.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from tests.support.crates import validate_crate
from tests.support.db import sqlite_urls
from tests.support.jobs import Scenario, compute_to_data
from tests.support.sites import Network, network

from mahiru.cli.main import cli
from mahiru.client.jobs import JobsClient
from mahiru.data_archives import extract_data_files
from mahiru.model.crates import METADATA_FILE
from mahiru.model.jobs import JobState
from mahiru.runtime import DockerRuntime
from mahiru.runtime.assets import INPUT_ASSET, MINMAX_ASSET, OUTPUT_BASE_ASSET

pytestmark = pytest.mark.e2e

WAIT = 120.0
PROFILE = "provenance-run-crate-0.5"


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A registry and the sites of party1 and party2."""
    root = tmp_path_factory.mktemp("crate")
    with network(root, sqlite_urls(root), ("party1", "party2")) as running:
        running.replicate_all()
        yield running


@pytest.fixture(scope="module")
def scenario(
    net: Network, container_runtime: DockerRuntime, scenario_archives: dict[str, Path]
) -> Scenario:
    """The compute-to-data assets and rules."""
    computes = {"minmax": scenario_archives[MINMAX_ASSET]}
    return compute_to_data(
        net, scenario_archives[INPUT_ASSET], scenario_archives[OUTPUT_BASE_ASSET], computes
    )


@pytest.fixture(scope="module")
def crate(scenario: Scenario, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """The id of a succeeded compute-to-data job and its crate, written by the CLI."""
    with JobsClient(scenario.site1.internal_url, scenario.site1.party.user, timeout=60) as client:
        job_id = client.submit(scenario.job()).status.job_id
        view = client.wait(job_id, WAIT)
    assert view.status.state is JobState.SUCCEEDED, view.to_json()
    out = tmp_path_factory.mktemp("crate") / "job.zip"
    done = _jobs(scenario, "crate", job_id[:8], "--out", str(out), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["size"] == out.stat().st_size
    return job_id, out


@pytest.fixture(scope="module")
def registry(net: Network, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The registry's records, as `mahiru register show --json` writes them."""
    party = net.parties["party1"].client
    shown = CliRunner().invoke(
        cli,
        ["register", "show", "--json"],
        env={
            "MAHIRU_REGISTRY_URL": net.registry.url,
            "MAHIRU_CA": str(party.ca),
            "MAHIRU_CERT": str(party.cert),
            "MAHIRU_KEY": str(party.key),
        },
    )
    assert shown.exit_code == 0, shown.output
    path = tmp_path_factory.mktemp("registry") / "registry.json"
    path.write_text(shown.stdout)
    return path


def _jobs(scenario: Scenario, *args: str) -> Result:
    identity = scenario.site1.party.user
    env = {
        "MAHIRU_SITE_URL": scenario.site1.internal_url,
        "MAHIRU_CERT": str(identity.cert),
        "MAHIRU_KEY": str(identity.key),
        "MAHIRU_CA": str(identity.ca),
    }
    return CliRunner().invoke(cli, ["jobs", *args], env=env, catch_exceptions=False)


def _verify(location: Path, registry: Path) -> Result:
    arguments = ["results", "verify", str(location), "--registry", str(registry), "--json"]
    return CliRunner().invoke(cli, arguments, catch_exceptions=False)


def _graph(zipped: Path) -> dict[str, dict[str, Any]]:
    with zipfile.ZipFile(zipped) as archive:
        metadata = json.loads(archive.read(METADATA_FILE))
    return {entity["@id"]: entity for entity in metadata["@graph"]}


def _ids(value: Any) -> list[str]:
    return [item["@id"] for item in (value if isinstance(value, list) else [value])]


def _rewrite(source: Path, dest: Path, change: dict[str, bytes | None]) -> Path:
    """A copy of the zip `source` with the files in `change` replaced (None: left out)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(dest, "w") as new:
        for info in old.infolist():
            if info.filename not in change:
                new.writestr(info, old.read(info.filename))
            elif (data := change[info.filename]) is not None:
                new.writestr(info, data)
    return dest


def test_the_crate_describes_the_run_at_site2_and_holds_the_output(
    scenario: Scenario, crate: tuple[str, Path], tmp_path: Path
) -> None:
    """The step's run at site2 (owner party2) with its times and image; the job's run by the
    user; the output [1, 34] inside; party2's input named only by id and digest."""
    job_id, zipped = crate
    entities = _graph(zipped)
    run = entities["#run-step-compute"]
    assert run["@type"] == "CreateAction" and run["startTime"] and run["endTime"]
    assert _ids(run["agent"]) == [f"urn:mahiru:{scenario.site2.id}"]
    site2 = entities[f"urn:mahiru:{scenario.site2.id}"]
    assert _ids(site2["parentOrganization"]) == [f"urn:mahiru:{scenario.party2}"]
    tool = entities[_ids(run["instrument"])[0]]
    assert tool["identifier"] == scenario.computes["minmax"]
    assert tool["softwareVersion"].startswith("sha256:")
    data = entities[f"urn:mahiru:{scenario.input}"]
    assert len(data["sha256"]) == 64  # the input: by id and digest, its data not included
    job_run = entities[f"#run-{job_id}"]
    user = entities[_ids(job_run["agent"])[0]]
    assert user["@type"] == "Person" and user["name"].endswith(scenario.party1)
    (output,) = [p for p in _ids(entities["./"]["hasPart"]) if p.startswith("outputs/")]
    with zipfile.ZipFile(zipped) as archive:
        archive.extract(output, tmp_path)
        names = set(archive.namelist())
    (written,) = extract_data_files(tmp_path / output, tmp_path / "data")
    assert json.loads(written.read_text()) == [1, 34]
    assert {"receipts/result.json", "provenance.json", "workflow.json"} <= names
    # Of the images the step ran on, only party1's own output base (stored at site1) is in.
    assert sorted(n for n in names if n.startswith("inputs/")) == [
        "inputs/party1.org-output_base.tar"
    ]


def test_roc_validator_finds_no_required_issue(crate: tuple[str, Path], tmp_path: Path) -> None:
    """The crate conforms to the Provenance Run Crate profile at the REQUIRED level."""
    _, zipped = crate
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(tmp_path / "crate")
    found = validate_crate(tmp_path / "crate", PROFILE, tmp_path / "report.json")
    assert found.checks, "the validator ran no check"
    assert any(c["profile"] == PROFILE for c in found.checks)
    assert found.failed("REQUIRED") == []
    passed = found.passed("RECOMMENDED")
    total = sum(1 for c in found.checks if c["severity"] == "RECOMMENDED")
    print(f"\nRECOMMENDED checks passed: {len(passed)} of {total}")
    for line in passed:
        print(f"  pass {line}")
    for issue in found.failed("RECOMMENDED"):
        print(f"  not  {issue['check']} {issue['message']} ({issue['entity']})")


def test_results_verify_passes_on_the_crate_zipped_and_unpacked(
    crate: tuple[str, Path], registry: Path, tmp_path: Path
) -> None:
    """Every receipt verifies and the output has the digest its receipt signs."""
    _, zipped = crate
    done = _verify(zipped, registry)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["verified"] is True
    assert any(line.startswith("outputs/") for line in report["checked"])
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(tmp_path / "crate")
    unpacked = _verify(tmp_path / "crate", registry)
    assert unpacked.exit_code == 0, unpacked.output
    told = CliRunner().invoke(cli, ["results", "verify", str(zipped), "--registry", str(registry)])
    assert told.exit_code == 0 and f"{zipped} verifies:" in told.stdout, told.output
    print(f"\ncrate of {zipped.stat().st_size} bytes:\n{told.stdout}")


def test_results_verify_fails_when_one_output_byte_is_changed(
    crate: tuple[str, Path], registry: Path, tmp_path: Path
) -> None:
    """One byte of the output image changed: its digest is no longer the signed one."""
    _, zipped = crate
    with zipfile.ZipFile(zipped) as archive:
        (output,) = [n for n in archive.namelist() if n.startswith("outputs/")]
        data = bytearray(archive.read(output))
    data[len(data) // 2] ^= 0x01
    changed = _rewrite(zipped, tmp_path / "changed.zip", {output: bytes(data)})
    done = _verify(changed, registry)
    assert done.exit_code == 1, done.output
    report = json.loads(done.stdout)
    assert report["verified"] is False and output in report["reason"]
    assert "the receipts sign" in report["reason"]


def test_results_verify_fails_when_a_receipt_is_removed(
    crate: tuple[str, Path], registry: Path, tmp_path: Path
) -> None:
    """The receipt chain file left out (named or not by the metadata): the output is no
    longer vouched for."""
    _, zipped = crate
    receipt = "receipts/result.json"
    removed = _rewrite(zipped, tmp_path / "removed.zip", {receipt: None})
    done = _verify(removed, registry)
    assert done.exit_code == 1, done.output
    assert receipt in json.loads(done.stdout)["reason"]

    with zipfile.ZipFile(zipped) as archive:
        metadata = json.loads(archive.read(METADATA_FILE))
    for entity in metadata["@graph"]:
        if entity["@id"] == "./":
            entity["hasPart"] = [p for p in entity["hasPart"] if p["@id"] != receipt]
    unnamed = _rewrite(
        zipped,
        tmp_path / "unnamed.zip",
        {receipt: None, METADATA_FILE: json.dumps(metadata).encode()},
    )
    done = _verify(unnamed, registry)
    assert done.exit_code == 1, done.output
    assert "no verified receipt" in json.loads(done.stdout)["reason"]
